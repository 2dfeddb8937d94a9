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
    "check_conditioning",
    "CONDITIONING_LIMIT",
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


def as_covariance(cov, name: str = "cov", *, min_size: int = 2) -> np.ndarray:
    r"""Validate a symmetric positive definite matrix and return it as float64.

    Symmetry is tested with a tolerance of ``64 * eps * max|C_ij|`` (rounding in
    products such as :math:`X X^T` is a few ulps of the largest entry); the
    returned matrix is the exact symmetrisation :math:`(C + C^T)/2`.
    Positive definiteness is decided by a Cholesky factorisation.
    """
    arr = as_float_array(name, cov, ndim=2).astype(np.float64, copy=False)
    if arr.shape[0] != arr.shape[1]:
        raise fail(name, arr, "a square matrix")
    if arr.shape[0] < min_size:
        what = "a joint covariance of size >= 2 (n_u >= 1 and n_v >= 1)" if min_size == 2 else f"a matrix of size >= {min_size}"
        raise fail(name, arr, what)
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    with np.errstate(over="ignore", invalid="ignore"):  # huge entries: judged below
        asym = float(np.max(np.abs(arr - arr.T)))
    if asym > 64 * np.finfo(np.float64).eps * max(scale, np.finfo(np.float64).tiny):
        raise fail(name, arr, f"a symmetric matrix (max |C - C^T| = {asym:.3g})")
    sym = 0.5 * arr + 0.5 * arr.T  # no overflow for entries near the float64 maximum
    try:
        np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        w = np.linalg.eigvalsh(sym)
        raise fail(
            name, arr, "a numerically positive definite matrix (Cholesky failed; eigenvalues "
                       f"span [{w[0]:.3g}, {w[-1]:.3g}])"
        ) from None
    return sym


#: Largest accepted ``n * eps * kappa``: beyond it fewer than 3 significant
#: digits survive the solves and log-determinants of the closed forms.
CONDITIONING_LIMIT = 1e-3


def check_conditioning(cov: np.ndarray, name: str = "cov") -> float:
    r"""Reject covariances too ill-conditioned for float64 closed forms.

    The closed forms of ``numerics.gaussian`` lose about
    :math:`\log_{10}(n\,\kappa(C))` digits (measured: relative error
    :math:`\lesssim n\,\epsilon\,\kappa(C)`); when
    :math:`n\,\epsilon\,\kappa(C)` exceeds ``CONDITIONING_LIMIT`` = 1e-3 the
    answer would have fewer than three correct digits, so the matrix is refused
    with an error rather than answered with a confident wrong number.
    Returns :math:`\kappa(C)`.
    """
    w = np.linalg.eigvalsh(cov)
    with np.errstate(over="ignore"):  # an overflowing ratio is an infinite condition number
        kappa = float(w[-1] / w[0]) if w[0] > 0 else math.inf
    n = cov.shape[0]
    if not kappa * n * np.finfo(np.float64).eps <= CONDITIONING_LIMIT:
        limit = CONDITIONING_LIMIT / (n * np.finfo(np.float64).eps)
        raise fail(name, cov, f"a condition number <= {limit:.2g} for float64 closed forms "
                              f"(got {kappa:.3g}; fewer than 3 digits would be correct)")
    return kappa


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
