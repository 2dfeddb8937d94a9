"""Input validation shared by every public entry point.

Public functions validate and coerce here, then call private ``_fn`` helpers
that do the mathematics and do no checking (the SciPy layering).
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

__all__ = [
    "InvalidInputError",
    "LossOverflow",
    "fail",
    "as_float_array",
    "as_covariance",
    "as_dimension",
    "as_latent_dim",
    "as_bilinear",
    "as_temperature",
    "as_lambda",
    "as_choice",
    "as_count",
    "as_rng",
    "as_covariance_batch",
    "check_conditioning",
    "CONDITIONING_LIMIT",
    "PD_FACTOR",
]


class InvalidInputError(ValueError):
    """Raised for any invalid argument of the public API.

    The message names the argument, shows its value (or shape) and says what
    was expected.  It subclasses :class:`ValueError` so that generic handlers
    keep working.
    """


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class LossOverflow(InvalidInputError):
    r"""The loss is :math:`+\infty` or NaN at these encoders: it overflowed (an ``exp`` of a
    large logit, ``inf/inf`` of two).  At a fit's trial point far out, the fit backs off
    from it (:func:`numerics.batch_fit.batch_objective` with ``back_off``); at the start of a
    fit, or in a check, it is the error it says.  :math:`-\infty` (a loss unbounded below)
    is a plain :class:`InvalidInputError`."""


def fail(name: str, value, expected: str) -> InvalidInputError:
    """Build the toolkit's error for argument ``name``; the caller raises it."""
    return InvalidInputError(f"{name}={_describe(value)}: expected {expected}")


def as_float_array(name: str, value, *, ndim: int | None = None) -> np.ndarray:
    """Coerce ``value`` to a finite float64 (or float32) array."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise fail(name, value, "an array of real numbers") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == bool
    ):
        raise fail(name, value, "an array of real numbers")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise fail(name, arr, f"a {ndim}-dimensional array")
    if not np.all(np.isfinite(arr)):
        raise fail(name, arr, "finite entries (found NaN or inf)")
    return arr


#: Factor :math:`c` of the positive-definiteness rule
#: :math:`\lambda_{min} > c\, n\, \epsilon\, \lambda_{max}` (see :func:`as_covariance`).
PD_FACTOR = 100.0

#: Largest accepted ``n * eps * kappa``: beyond it fewer than 3 significant
#: digits survive the solves and log-determinants of the closed forms.
CONDITIONING_LIMIT = 1e-3

_EPS = np.finfo(np.float64).eps
_TINY = np.finfo(np.float64).tiny  # smallest normal float64, 2.2e-308


def _scale_exponents(arr: np.ndarray) -> np.ndarray:
    """Even exponents ``e`` (one per matrix of a stack) with ``max|2^-e C|`` in [1/2, 2) (0 for
    a zero matrix): the scaling is exact (even, so square roots scale exactly too) and keeps
    matrices near the float64 limits away from over- and underflow in ``eigvalsh``."""
    top = np.max(np.abs(arr), axis=(-2, -1)) if arr.size else np.zeros(arr.shape[:-2])
    return 2 * (np.frexp(top)[1] // 2)


def _spectrum(sym: np.ndarray):
    """Ascending eigenvalues of ``2^-e sym`` and ``e`` (per matrix of a stack, ``eigvalsh``)."""
    e = _scale_exponents(sym)
    return np.linalg.eigvalsh(np.ldexp(sym, -e[..., None, None])), e


def _not_positive_definite(w: np.ndarray, e) -> np.ndarray:
    r"""The rule of :func:`as_covariance` on the ascending eigenvalues ``w`` (last axis) of
    ``2^-e C``: True where :math:`w_{min} \le c\, n\, \epsilon\, w_{max}` or where
    :math:`2^e w_{min}` is below the normal float64 range (NaN counts as refused)."""
    n = w.shape[-1]
    with np.errstate(under="ignore"):
        normal = np.ldexp(w[..., 0], e) >= _TINY
    return ~((w[..., 0] > PD_FACTOR * n * _EPS * w[..., -1]) & normal)


def _span(w: np.ndarray, e) -> str:
    with np.errstate(over="ignore"):  # a span beyond the float64 range prints as inf
        lo, hi = np.ldexp(w[0], int(e)), np.ldexp(w[-1], int(e))
    return f"[{lo:.3g}, {hi:.3g}]"


def _symmetrised(name: str, arr: np.ndarray, what: str = "a symmetric matrix") -> np.ndarray:
    """``(C + C^T)/2`` of a stack of square matrices after the symmetry test (per matrix)."""
    scale = np.max(np.abs(arr), axis=(-2, -1)) if arr.size else np.zeros(arr.shape[:-2])
    with np.errstate(over="ignore", invalid="ignore"):  # huge entries: judged below
        asym = np.max(np.abs(arr - np.swapaxes(arr, -1, -2)), axis=(-2, -1)) if arr.size \
            else np.zeros(arr.shape[:-2])
    bad = asym > 64 * _EPS * np.maximum(scale, np.finfo(np.float64).tiny)
    if np.any(bad):
        worst = float(np.max(asym))
        raise fail(name, arr, f"{what} (max |C - C^T| = {worst:.3g})")
    return 0.5 * arr + 0.5 * np.swapaxes(arr, -1, -2)  # no overflow near the float64 maximum


def _pd_expected(n: int, w: np.ndarray, e, what: str = "a positive definite matrix",
                 which: str = "this one") -> str:
    return (f"{what}, smallest eigenvalue > {PD_FACTOR:g}*n*eps*largest and >= {_TINY:.3g} "
            f"(n = {n}; {which} is numerically singular or indefinite: eigenvalues span {_span(w, e)})")


def as_covariance(cov, name: str = "cov", *, min_size: int = 2, conditioning: bool = False) -> np.ndarray:
    r"""Validate a symmetric positive definite matrix and return it as float64.

    **Symmetry** is tested with a tolerance of ``64 * eps * max|C_ij|``
    (rounding in products such as :math:`X X^T` is a few ulps of the largest
    entry); the returned matrix is the exact symmetrisation :math:`(C + C^T)/2`.

    **Positive definiteness: one rule for every covariance the toolkit takes.**
    With :math:`w` the eigenvalues of the symmetrised matrix (``eigvalsh``, after
    an exact scaling by an even power of two), the matrix is refused as
    *numerically singular or indefinite* when

    .. math:: w_{min} \le c\, n\, \epsilon\, w_{max}, \qquad c = \text{PD\_FACTOR} = 100,

    or when :math:`w_{min}` is below the normal float64 range (2.2e-308;
    subnormal numbers carry fewer than 53 bits, and Cholesky factors and
    square roots computed at the matrix's own scale then underflow: Cholesky
    failed on 1 % of matrices scaled into the subnormal range that the
    relative test alone accepts).

    Reason: ``eigvalsh`` is backward stable, so each computed eigenvalue is off
    by at most :math:`\|E\|_2 = O(n\epsilon\|C\|_2)` (Weyl), with rounding whose
    *sign* depends on the LAPACK/BLAS kernels.  A singular matrix therefore
    comes out with :math:`w_{min}` of either sign (``eigvalsh`` of the 3x3
    ``[[.03, .03, .03], [.03, 1, .03], [.03, .03, .03]]`` gives -2.4e-17 with
    OpenBLAS's Haswell kernels, +2.2e-18 with SkylakeX; Cholesky succeeds on
    both), and a rule that looks at the sign of :math:`w_{min}` or at the
    success of a Cholesky factorisation gives a verdict that changes with the
    machine.  Measured: over 4.6e5 matrices whose smallest eigenvalue is 0
    (sizes 2..128; half exactly singular as stored -- products :math:`XX^T`
    of integer :math:`X`, duplicated rows -- half singular up to the rounding
    of their construction -- :math:`XX^T` of Gaussian :math:`X`,
    :math:`Q\,\mathrm{diag}(w)\,Q^T` with zeros in :math:`w`), each under
    OpenBLAS's Haswell, Sandybridge and Katmai (Prescott) kernels and, up to
    size 8, SkylakeX: :math:`|w_{min}| < n\epsilon w_{max}` always, at most
    :math:`0.80\, n\epsilon w_{max}` from ``eigvalsh`` and
    :math:`0.98\, n\epsilon w_{max}` from ``eigh`` (both at :math:`n = 3`;
    never more than :math:`3\epsilon w_{max}` in absolute terms, whatever
    :math:`n`).  So :math:`n\epsilon w_{max}` bounds the rounding, and with
    :math:`c = 100` every matrix that is exactly singular or indefinite sits
    100 such units below the threshold: refused whatever the sign of the
    rounding.  Consequences for accepted matrices: the
    eigenvalues that ``eigh`` computes (the square roots
    :math:`C^{\pm 1/2}` of the closed forms) are positive, and Cholesky
    succeeds, since :math:`\lambda_{min}(D^{-1}CD^{-1}) \ge w_{min}/w_{max}`
    for :math:`D = \mathrm{diag}(C)^{1/2}` exceeds the
    :math:`\approx n(n+1)\epsilon/2` that guarantees it (Demmel's condition,
    Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
    Thm 10.7) for :math:`n \le 190` (measured: no failure up to
    :math:`n = 256` even at a tenth of the threshold).
    Cost: nothing for the closed forms, whose conditioning rule below is ten
    times stricter; elsewhere (marginals, ``S``, ``S1``, ``S2``,
    ``GaussianModel``, samplers) matrices with
    :math:`n\epsilon\kappa(C) \ge 1/c = 10^{-2}`, which would leave fewer
    than two correct digits, are refused.

    **Conditioning** (``conditioning=True``, every closed form on a joint
    covariance): :math:`n\,\epsilon\,\kappa(C) >` ``CONDITIONING_LIMIT`` is
    refused, see :func:`check_conditioning`; it is tested after the rule
    above, from the same eigenvalues.
    """
    arr = as_float_array(name, cov, ndim=2).astype(np.float64, copy=False)
    if arr.shape[0] != arr.shape[1]:
        raise fail(name, arr, "a square matrix")
    if arr.shape[0] < min_size:
        what = "a joint covariance of size >= 2 (n_u >= 1 and n_v >= 1)" if min_size == 2 else f"a matrix of size >= {min_size}"
        raise fail(name, arr, what)
    sym = _symmetrised(name, arr)
    if sym.shape[0] == 0:
        return sym
    w, e = _spectrum(sym)
    if _not_positive_definite(w, e):
        raise fail(name, arr, _pd_expected(sym.shape[0], w, e))
    if conditioning:
        _check_kappa(name, sym, w)
    return sym


def as_covariance_batch(S, name: str) -> np.ndarray:
    """:func:`as_covariance` for a stack ``(B, n, n)`` (already a float64 array):
    the same symmetry test and positive-definiteness rule, matrix by matrix."""
    sym = _symmetrised(name, S, "symmetric matrices")
    if sym.shape[0] == 0 or sym.shape[-1] == 0:
        return sym
    w, e = _spectrum(sym)
    bad = np.flatnonzero(_not_positive_definite(w, e))
    if bad.size:
        k = int(bad[0])
        raise fail(name, S, _pd_expected(sym.shape[-1], w[k], e[k], "positive definite matrices",
                                         f"matrix {k}"))
    return sym


def _check_kappa(name: str, cov: np.ndarray, w: np.ndarray) -> float:
    with np.errstate(over="ignore", divide="ignore"):  # an overflowing ratio is an infinite condition number
        kappa = float(w[-1] / w[0]) if w[0] > 0 else math.inf
    n = cov.shape[0]
    if not kappa * n * _EPS <= CONDITIONING_LIMIT:
        limit = CONDITIONING_LIMIT / (n * _EPS)
        raise fail(name, cov, f"a condition number <= {limit:.2g} for float64 closed forms "
                              f"(got {kappa:.3g}; fewer than 3 digits would be correct)")
    return kappa


def check_conditioning(cov: np.ndarray, name: str = "cov") -> float:
    r"""Reject covariances too ill-conditioned for float64 closed forms.

    The closed forms of ``numerics.gaussian`` lose about
    :math:`\log_{10}(n\,\kappa(C))` digits (measured: relative error
    :math:`\lesssim n\,\epsilon\,\kappa(C)`); when
    :math:`n\,\epsilon\,\kappa(C)` exceeds ``CONDITIONING_LIMIT`` = 1e-3 the
    answer would have fewer than three correct digits, so the matrix is refused
    with an error rather than answered with a confident wrong number.  In
    eigenvalues: refused when :math:`w_{min} < 1000\, n\,\epsilon\, w_{max}`,
    ten times stricter than the positive-definiteness rule of
    :func:`as_covariance` (``as_covariance(..., conditioning=True)`` applies
    both, that rule first).  Returns :math:`\kappa(C)`.
    """
    w, _ = _spectrum(np.asarray(cov, dtype=np.float64))
    return _check_kappa(name, cov, w)


def as_dimension(n_u, dim: int, name: str = "n_u") -> int:
    """Validate the size of the first block of a joint covariance of size ``dim``."""
    if isinstance(n_u, bool) or not isinstance(n_u, Integral):
        raise fail(name, n_u, f"an integer in 1..{dim - 1}")
    n_u = int(n_u)
    if not 1 <= n_u <= dim - 1:
        raise fail(name, n_u, f"an integer in 1..{dim - 1} (the joint covariance has size {dim})")
    return n_u


def as_latent_dim(n_e, n_u: int, n_v: int, name: str = "n_e") -> int:
    """Validate a latent dimension ``1 <= n_e <= min(n_u, n_v)``."""
    top = min(n_u, n_v)
    if isinstance(n_e, bool) or not isinstance(n_e, Integral):
        raise fail(name, n_e, f"an integer in 1..{top}")
    n_e = int(n_e)
    if not 1 <= n_e <= top:
        raise fail(name, n_e, f"an integer in 1..min(n_u, n_v) = 1..{top}")
    return n_e


def as_bilinear(A, n_u: int, n_v: int, name: str = "A") -> np.ndarray:
    """Validate the bilinear matrix ``A`` of shape ``(n_u, n_v)`` (f = u^T A v)."""
    arr = as_float_array(name, A).astype(np.float64, copy=False)
    if arr.ndim != 2 or arr.shape != (n_u, n_v):
        raise fail(name, arr, f"a matrix of shape (n_u, n_v) = ({n_u}, {n_v})")
    return arr


def as_temperature(tau, name: str = "tau") -> float:
    """Validate a temperature: a finite real number > 0."""
    if isinstance(tau, bool) or not isinstance(tau, (Real, np.floating, np.integer)):
        raise fail(name, tau, "a finite real number > 0")
    tau = float(tau)
    if not math.isfinite(tau) or tau <= 0:
        raise fail(name, tau, "a finite real number > 0")
    return tau


def as_lambda(lam, name: str = "lam") -> float:
    """Validate a balance parameter in [0, 1]."""
    if isinstance(lam, bool) or not isinstance(lam, (Real, np.floating, np.integer)):
        raise fail(name, lam, "a real number in [0, 1]")
    lam = float(lam)
    if not (0.0 <= lam <= 1.0):
        raise fail(name, lam, "a real number in [0, 1]")
    return lam


def as_choice(value, choices, name: str) -> str:
    """Validate a name among ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise fail(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def as_count(value, name: str, minimum: int = 1) -> int:
    """An integer count ``>= minimum`` (booleans refused), returned as ``int``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise fail(name, value, f"an integer >= {minimum}")
    return int(value)


def as_rng(rng, name: str = "rng") -> np.random.Generator:
    """A :class:`numpy.random.Generator` (``np.random.default_rng(seed)``); nothing else."""
    if not isinstance(rng, np.random.Generator):
        raise fail(name, rng, "a numpy.random.Generator (np.random.default_rng(seed))")
    return rng
