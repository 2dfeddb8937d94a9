"""The CLIP loss itself (symmetric InfoNCE), for comparison; no gradient given."""
import numpy as np
from scipy.special import logsumexp


def clip_loss(F):
    return float(-np.mean(np.diag(F)) + 0.5 * np.mean(logsumexp(F, axis=1))
                 + 0.5 * np.mean(logsumexp(F, axis=0)))
