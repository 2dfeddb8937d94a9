"""CLIP plus a penalty on the positive logits, c * mean(F_ii^2): a WRONG variant.

The penalty adds c E f(u, v)^2 to the population loss and shrinks the
minimiser towards 0.  This file gives no gradient: verify_variant falls back
to finite differences in the encoder parameters.
"""
import numpy as np
from scipy.special import logsumexp

PENALTY = 0.5


def positive_penalty(F):
    d = np.diag(F)
    return float(-np.mean(d) + 0.5 * np.mean(logsumexp(F, axis=1))
                 + 0.5 * np.mean(logsumexp(F, axis=0)) + PENALTY * np.mean(d**2))
