"""Decoupled contrastive loss: the positive pair removed from both denominators.

    L = -(1/N) sum_i F_ii + (1/2N) sum_i log sum_{j != i} exp F_ij
                          + (1/2N) sum_j log sum_{i != j} exp F_ij

The removed term is one of N in each normaliser, so the loss minus log(N - 1)
has the same population limit as CLIP's: a correct variant (its finite-N bias
differs from CLIP's at order 1/N).
"""
import numpy as np
from scipy.special import logsumexp


def _masked(F):
    return np.where(np.eye(F.shape[0], dtype=bool), -np.inf, F)


def decoupled_contrastive(F):
    G = _masked(F)
    return float(-np.mean(np.diag(F)) + 0.5 * np.mean(logsumexp(G, axis=1))
                 + 0.5 * np.mean(logsumexp(G, axis=0)))


def _grad(F):
    N = F.shape[0]
    G = _masked(F)
    P = np.exp(G - logsumexp(G, axis=1, keepdims=True))
    Q = np.exp(G - logsumexp(G, axis=0, keepdims=True))
    return (0.5 * (P + Q) - np.eye(N)) / N


decoupled_contrastive.grad = _grad
