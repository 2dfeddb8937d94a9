"""CLIP with the alignment term counted twice: a WRONG variant.

Its population loss -2 E f + (E log Z_u + E log Z_v)/2 has, for bilinear
encoders, the minimiser B = 2 K truncated: twice CLIP's.
"""
import numpy as np
from scipy.special import logsumexp


def reweighted_alignment(F):
    return float(-2.0 * np.mean(np.diag(F)) + 0.5 * np.mean(logsumexp(F, axis=1))
                 + 0.5 * np.mean(logsumexp(F, axis=0)))


def _grad(F):
    N = F.shape[0]
    P = np.exp(F - logsumexp(F, axis=1, keepdims=True))
    Q = np.exp(F - logsumexp(F, axis=0, keepdims=True))
    return (0.5 * (P + Q) - 2.0 * np.eye(N)) / N


reweighted_alignment.grad = _grad
