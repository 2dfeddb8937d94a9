r"""Hypothesis strategies for the objects of MATH.md (public; use them in your own tests).

In Hypothesis's house style: nouns that return strategies, bounds as
keyword-only ``min_*`` / ``max_*`` arguments, eager validation with an error
naming the argument and its value (:class:`numerics.InvalidInputError`).

Covariances are built from drawn parameters through
:func:`numerics.gaussian.joint_covariance`:
marginal spectra, rotations (products of Givens rotations) and canonical
correlations.  Every parameter shrinks towards the simplest model: unit
spectra, identity rotations and the smallest correlations allowed, so a failing
example shrinks to a near-diagonal covariance.

Example
-------
>>> from hypothesis import given
>>> from numerics.gaussian import mutual_information
>>> from proofs_checks.strategies import joint_covariances
>>> @given(joint_covariances(2, 3, max_condition=100.0, min_gap=0.1, gap_at=1))
... def test_mi_nonnegative(cov):
...     assert mutual_information(cov, 2) >= 0
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from numerics._validation import fail
from numerics.gaussian import joint_covariance
from numerics.models import GaussianModel

__all__ = ["joint_covariances", "gaussian_models", "bilinear_matrices", "embeddings"]


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (
        hi is not None and value > hi
    ):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise fail(name, value, f"an integer {rng}")
    return int(value)


def _check_float(name, value, lo, hi, *, lo_open=False, hi_open=False):
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise fail(name, value, f"a number in {left}{lo}, {hi}{right}")
    return float(value)


def _between(draw, lo, hi):
    """A float in [lo, hi] that shrinks to ``lo`` (Hypothesis shrinks the fraction to 0)."""
    t = draw(st.floats(0.0, 1.0, allow_nan=False))
    return min(hi, lo + (hi - lo) * t)


@st.composite
def _rotations(draw, n):
    """Orthogonal n x n matrix as a product of Givens rotations; angles shrink to 0."""
    Q = np.eye(n)
    for i in range(n - 1):
        for j in range(i + 1, n):
            t = draw(st.floats(-math.pi, math.pi, allow_nan=False))
            c, s = math.cos(t), math.sin(t)
            G = np.eye(n)
            G[i, i] = G[j, j] = c
            G[i, j], G[j, i] = -s, s
            Q = Q @ G
    return Q


@st.composite
def _spd(draw, n, max_condition):
    """SPD matrix with eigenvalues in [1, max_condition]; shrinks to the identity."""
    top = math.log10(max_condition)
    w = np.array([10.0 ** _between(draw, 0.0, top) for _ in range(n)])
    Q = draw(_rotations(n))
    S = (Q * w) @ Q.T
    return 0.5 * (S + S.T)


def joint_covariances(n_u: int, n_v: int, *, max_condition: float = 100.0,
                      max_correlation: float = 0.95, min_correlation: float = 0.0,
                      gap_at: int | None = None, min_gap: float = 0.0, rank: int | None = None):
    r"""Strategy for symmetric positive definite joint covariances of :math:`(u, v)`.

    Draws arrays of shape ``(n_u + n_v, n_u + n_v)``.

    Parameters
    ----------
    n_u, n_v : int
        Sizes of :math:`u` and :math:`v` (>= 1).
    max_condition : float
        Upper bound on the condition number of each marginal block
        :math:`C_{uu}`, :math:`C_{vv}` (>= 1).
    max_correlation : float
        Upper bound on the canonical correlations, in ``(0, 1)``; it keeps
        :math:`C` positive definite with :math:`\lambda_{min}(C) \ge (1 - \text{max\_correlation})\lambda_{min}`
        of the marginals.
    min_correlation : float
        Lower bound on the nonzero canonical correlations (the first ``rank``).
    gap_at, min_gap : int, float
        Enforce :math:`\sigma_{\text{gap\_at}} - \sigma_{\text{gap\_at}+1} \ge` ``min_gap``
        (1-based index, ``1 <= gap_at <= min(n_u, n_v)``; past ``rank`` the next
        correlation is 0).  Use ``gap_at = n_e`` to make the rank-:math:`n_e`
        minimiser of Proposition G1 unique and well conditioned.
    rank : int, optional
        :math:`\operatorname{rank} C_{uv}`; drawn in ``1..min(n_u, n_v)`` if omitted.

    Shrinking: towards identity marginals, identity canonical directions, the
    smallest allowed correlations and the smallest rank.
    """
    n_u = _check_int("n_u", n_u, 1)
    n_v = _check_int("n_v", n_v, 1)
    k = min(n_u, n_v)
    max_condition = _check_float("max_condition", max_condition, 1.0, 1e12)
    max_correlation = _check_float("max_correlation", max_correlation, 0.0, 1.0,
                                   lo_open=True, hi_open=True)
    min_correlation = _check_float("min_correlation", min_correlation, 0.0, max_correlation)
    min_gap = _check_float("min_gap", min_gap, 0.0, max_correlation)
    if gap_at is not None:
        gap_at = _check_int("gap_at", gap_at, 1, k)
    if rank is not None:
        rank = _check_int("rank", rank, 1, k)
    if gap_at is not None and min_gap > 0:
        # the correlations above the gap must fit in [min_correlation + min_gap, max_correlation]
        if min_correlation + min_gap > max_correlation and (rank is None or gap_at < rank):
            raise fail("min_gap", min_gap,
                       f"at most max_correlation - min_correlation = {max_correlation - min_correlation}")

    need = gap_at if gap_at is not None and min_gap > 0 else 1
    if rank is not None and rank < need:
        raise fail("rank", rank, f"at least gap_at={gap_at} when min_gap > 0 (a gap needs "
                   "sigma_gap_at > 0)")

    @st.composite
    def build(draw):
        r = rank if rank is not None else draw(st.integers(need, k))
        # Correlations as cumulative decrements from the top; shrinking every
        # decrement to 0 gives equal correlations at the smallest allowed value.
        lo_top = min_correlation
        g = gap_at if gap_at is not None and min_gap > 0 else None
        if g is not None and g < r:
            # tail in [min_correlation, t], head in [t + min_gap, max_correlation]
            t = _between(draw, min_correlation, max_correlation - min_gap)
            tail = sorted((_between(draw, min_correlation, t) for _ in range(r - g - 1)),
                          reverse=True)
            tail = [t] + tail
            head = sorted((_between(draw, t + min_gap, max_correlation) for _ in range(g)),
                          reverse=True)
            sigma = np.array(head + tail)
        else:
            lo = max(lo_top, min_gap if g is not None else 0.0)
            sigma = np.array(sorted((_between(draw, lo, max_correlation) for _ in range(r)),
                                    reverse=True))
        C_uu = draw(_spd(n_u, max_condition))
        C_vv = draw(_spd(n_v, max_condition))
        U = draw(_rotations(n_u))
        V = draw(_rotations(n_v))
        return joint_covariance(C_uu, C_vv, sigma, U, V)

    return build()


def gaussian_models(*, min_dim: int = 1, max_dim: int = 4, max_condition: float = 100.0,
                    max_correlation: float = 0.95, min_gap: float = 0.0):
    r"""Strategy for :class:`numerics.models.GaussianModel` with drawn sizes and latent dimension.

    ``n_u``, ``n_v`` are drawn in ``min_dim..max_dim`` and ``n_e`` in
    ``1..min(n_u, n_v)``; the canonical correlations have a gap of at least
    ``min_gap`` at ``n_e``.  Shrinks towards ``n_u = n_v = n_e = min_dim`` and
    the simplest covariance (see :func:`joint_covariances`).
    """
    min_dim = _check_int("min_dim", min_dim, 1)
    max_dim = _check_int("max_dim", max_dim, min_dim)
    max_condition = _check_float("max_condition", max_condition, 1.0, 1e12)
    max_correlation = _check_float("max_correlation", max_correlation, 0.0, 1.0,
                                   lo_open=True, hi_open=True)
    min_gap = _check_float("min_gap", min_gap, 0.0, max_correlation)

    @st.composite
    def build(draw):
        n_u = draw(st.integers(min_dim, max_dim))
        n_v = draw(st.integers(min_dim, max_dim))
        n_e = draw(st.integers(1, min(n_u, n_v)))
        cov = draw(joint_covariances(n_u, n_v, max_condition=max_condition,
                                     max_correlation=max_correlation, gap_at=n_e, min_gap=min_gap))
        return GaussianModel(cov=cov, n_u=n_u, n_e=n_e, label=f"n_u={n_u} n_v={n_v} n_e={n_e}")

    return build()


def bilinear_matrices(n_u: int, n_v: int, *, max_value: float = 10.0):
    r"""Strategy for bilinear matrices ``A`` of shape ``(n_u, n_v)`` with entries in
    ``[-max_value, max_value]``; shrinks towards the zero matrix."""
    n_u = _check_int("n_u", n_u, 1)
    n_v = _check_int("n_v", n_v, 1)
    max_value = _check_float("max_value", max_value, 0.0, 1e6, lo_open=True)
    return st.lists(st.floats(-max_value, max_value, allow_nan=False, allow_infinity=False),
                    min_size=n_u * n_v, max_size=n_u * n_v).map(
        lambda xs: np.array(xs, dtype=np.float64).reshape(n_u, n_v))


def embeddings(n: int, n_e: int, *, max_value: float = 10.0, dtype=np.float64):
    r"""Strategy for an embedding batch of shape ``(n, n_e)`` with entries in
    ``[-max_value, max_value]``; shrinks towards zeros (note: zero rows are invalid
    under cosine similarity, filter them if you use it)."""
    n = _check_int("n", n, 1)
    n_e = _check_int("n_e", n_e, 1)
    max_value = _check_float("max_value", max_value, 0.0, 1e6, lo_open=True)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise fail("dtype", dtype, "numpy.float32 or numpy.float64") from None
    if dtype not in (np.float32, np.float64):
        raise fail("dtype", dtype, "numpy.float32 or numpy.float64")
    width = 32 if dtype == np.float32 else 64
    if width == 32:
        # Hypothesis needs float32 bounds to be exactly representable
        max_value = float(np.nextafter(np.float32(max_value), np.float32(0))
                          if float(np.float32(max_value)) > max_value else np.float32(max_value))
    return st.lists(st.floats(-max_value, max_value, allow_nan=False, allow_infinity=False,
                              width=width), min_size=n * n_e, max_size=n * n_e).map(
        lambda xs: np.array(xs, dtype=dtype).reshape(n, n_e))
