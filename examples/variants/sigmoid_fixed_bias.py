"""A pairwise sigmoid loss (SigLIP-style) with a FIXED bias: no N-independent limit.

    L(F) = (1/N) sum_ij log(1 + exp(-z_ij (F_ij + b))),   z_ii = +1, z_ij = -1 (i != j).

Each of the N positives is pulled up, each of the N(N - 1) negatives pushed down;
with the bias b fixed (SigLIP learns it) the negatives outweigh the positives
more and more as N grows, so the minimising encoders shrink toward 0 like 1/N.
The verifier flags such a loss as drifting and never confirms it.
"""
import numpy as np

BIAS = -2.0


def sigmoid_fixed_bias(F):
    N = F.shape[0]
    z = 2.0 * np.eye(N) - 1.0
    return float(np.sum(np.logaddexp(0.0, -z * (F + BIAS))) / N)


def _grad(F):
    N = F.shape[0]
    z = 2.0 * np.eye(N) - 1.0
    # d/dF log(1 + exp(-z (F + b))) = -z sigmoid(-z (F + b))
    return -z / (1.0 + np.exp(z * (F + BIAS))) / N


sigmoid_fixed_bias.grad = _grad
