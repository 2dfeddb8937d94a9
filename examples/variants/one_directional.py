"""One-directional InfoNCE: only the row-wise cross-entropy (image -> text retrieval).

A correct variant: its population loss -E f + E_u log Z_v(u) is the lambda = 0
balanced loss minus I, whose bilinear minimiser is CLIP's (Proposition G2).

    python -m proofs_checks verify examples/variants/one_directional.py:one_directional_infonce \
        --claim same-minimizers-as-clip
"""
import numpy as np
from scipy.special import logsumexp


def one_directional_infonce(F):
    """-(1/N) sum_i F_ii + (1/N) sum_i log sum_j exp F_ij."""
    return float(-np.mean(np.diag(F)) + np.mean(logsumexp(F, axis=1)))


def _grad(F):
    N = F.shape[0]
    P = np.exp(F - logsumexp(F, axis=1, keepdims=True))
    return (P - np.eye(N)) / N


# verify_variant uses the gradient in the logits when the loss carries one
one_directional_infonce.grad = _grad
