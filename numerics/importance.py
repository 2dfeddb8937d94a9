r"""Self-normalised importance sampling of a bank: moments of a model conditional (MATH.md §5).

A model conditional is a tilt of a data marginal, :math:`\nu(dx \mid q) \propto e^{f(q, x)}\mu(dx)`.
With a bank :math:`x_1, \dots, x_M \sim \mu` and the logits :math:`F_{qj} = f(q, x_j)` of the
queries against it, its moments are estimated by weighting the bank with

.. math:: w_{qj} = \frac{c_j e^{F_{qj}}}{\sum_k c_k e^{F_{qk}}},

where the multiplicities :math:`c_j \ge 0` (default 1) let a resampled bank be used without
copying it (:math:`c_j` copies of item :math:`j`; 0 drops it).  The ratio estimator has a
bias of :math:`O(1/M)`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._validation import as_float_array, fail

__all__ = ["BankMoments", "self_normalised_moments"]


class BankMoments(NamedTuple):
    r"""Result of :func:`self_normalised_moments`.

    Attributes
    ----------
    means : ndarray, shape (n_q, d)
        :math:`\sum_j w_{qj} x_j`.
    covs : ndarray, shape (n_q, d, d), or None
        :math:`\sum_j w_{qj} (x_j - m_q)(x_j - m_q)^T` (None unless asked for).
    ess : ndarray, shape (n_q,)
        Effective sample size of each weighting, in bank items.
    """

    means: np.ndarray
    covs: np.ndarray | None
    ess: np.ndarray


def self_normalised_moments(logits, bank, *, weights=None, covariances: bool = False) -> BankMoments:
    r"""Conditional means (and covariances) of a tilted bank by self-normalised importance
    sampling (MATH.md §5).

    .. math:: w_{qj} = \frac{c_j e^{F_{qj} - m_q}}{\sum_k c_k e^{F_{qk} - m_q}},\qquad
              m_q = \max_{j: c_j > 0} F_{qj},

    (the shift by the row maximum over the kept items changes nothing but keeps every
    exponential in :math:`[0, 1]` with at least one equal to 1), then

    .. math:: \text{means}_q = \sum_j w_{qj} x_j,\qquad
              \text{covs}_q = \sum_j w_{qj} (x_j - \text{means}_q)(x_j - \text{means}_q)^T,

    .. math:: \text{ess}_q = \frac{(\sum_j c_j p_{qj})^2}{\sum_j c_j p_{qj}^2}
              = \Big(\sum_{j: c_j > 0} w_{qj}^2 / c_j\Big)^{-1},
              \qquad p_{qj} = w_{qj}/c_j,

    the effective size of the bank in which item :math:`j` appears :math:`c_j` times with
    weight :math:`p_{qj}` each: :math:`M` for equal weights, 1 when one item takes all the
    weight.  A small value means the bank is too small for that conditional.

    Parameters
    ----------
    logits : array_like, shape (n_q, M)
        :math:`F_{qj} = f(q, x_j)`, one row per query.
    bank : array_like, shape (M, d)
        The bank items :math:`x_j`, one per column of ``logits``.
    weights : array_like, shape (M,), optional
        Multiplicities :math:`c_j \ge 0`, not all 0 (default 1).
    covariances : bool
        Also return the weighted covariances.

    Returns
    -------
    BankMoments
        ``(means, covs, ess)``; ``covs`` is None unless ``covariances``.

    Raises
    ------
    numerics.InvalidInputError
        Non-finite or mis-shaped ``logits``/``bank``, a bank whose size is not the
        number of columns of ``logits``, negative or all-zero ``weights``.
    """
    F = as_float_array("logits", logits, ndim=2).astype(np.float64, copy=False)
    X = as_float_array("bank", bank, ndim=2).astype(np.float64, copy=False)
    if X.shape[0] != F.shape[1] or X.shape[0] < 1:
        raise fail("bank", X, f"{F.shape[1]} rows (at least 1), one per column of logits")
    if weights is None:
        c = np.ones(F.shape[1])
    else:
        c = as_float_array("weights", weights, ndim=1).astype(np.float64, copy=False)
        if c.shape != (F.shape[1],) or np.any(c < 0) or not np.any(c > 0):
            raise fail("weights", weights, f"{F.shape[1]} non-negative multiplicities, not all zero")
    keep = c > 0
    F, X, c = F[:, keep], X[keep], c[keep]
    E = np.exp(F - F.max(axis=1, keepdims=True)) * c
    W = E / E.sum(axis=1, keepdims=True)
    means = W @ X
    ess = 1.0 / np.sum(W**2 / c, axis=1)
    covs = None
    if covariances:
        covs = np.array([(X - m).T @ ((X - m) * w[:, None]) for m, w in zip(means, W)])
        covs = covs.reshape(F.shape[0], X.shape[1], X.shape[1])
    return BankMoments(means, covs, ess)
