r"""Every tolerance the checks use, with its reason (STYLE.md rule 7).

Tolerances are functions of the dtype, the dimension and the conditioning of
the model, never typed-in constants.  Monte Carlo comparisons use their own
standard error (:func:`monte_carlo_tolerance`).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = [
    "mean_map_tolerance",
    "covariance_tolerance",
    "EPS64",
    "closed_form_tolerance",
    "optimum_value_tolerance",
    "minimiser_tolerance",
    "monte_carlo_tolerance",
    "kernel_tolerance",
    "monte_carlo_mde",
    "richardson_tolerance",
    "finite_difference_hessian_tolerance",
]

EPS64 = float(np.finfo(np.float64).eps)

#: Safety factor on rounding-error bounds.  Forward error of a product of
#: ``n x n`` matrices is bounded by ``n * eps * |A||B|``; the formulas chain a
#: handful (<= 8) of such products, solves and log-determinants, each of which
#: contributes at most ``n * eps * kappa``.  32 covers that chain with a margin
#: of 4, and is still 1e11 times smaller than the O(1) error of a wrong formula.
ROUNDING_FACTOR = 32.0


def closed_form_tolerance(dim: int, condition_number: float, scale: float = 1.0,
                          dtype=np.float64) -> float:
    r"""Tolerance for an identity between two closed-form evaluations.

    .. math:: \text{tol} = 32\, n\, \epsilon\, \kappa(C)\, \max(1, \text{scale})

    ``n`` is the joint dimension, :math:`\kappa(C)` the condition number of
    the joint covariance (solves and log-determinants lose up to
    :math:`\log_{10}\kappa` digits) and ``scale`` the magnitude of the
    largest term being compared (errors are relative to it).
    """
    eps = float(np.finfo(dtype).eps)
    return ROUNDING_FACTOR * dim * eps * max(condition_number, 1.0) * max(1.0, abs(scale))


def optimum_value_tolerance(dim: int, condition_number: float, scale: float = 1.0) -> float:
    r"""Tolerance between the optimised minimum value and a predicted minimum.

    BFGS is run with ``gtol=1e-11``: it stops when the decrease reaches the
    rounding floor of the loss evaluation (a line search that can no longer
    decrease the loss), so the value error is that floor, the closed-form
    tolerance.  A second-order term
    :math:`\|g\|^2 / (2\mu)` with :math:`\|g\| \le 10^{-11}` is negligible
    against it for curvatures :math:`\mu > 10^{-8}`.  With finite-difference
    gradients the stationarity is only reached to
    :math:`\epsilon^{2/3}` relative, whose square is again below the floor.
    """
    return closed_form_tolerance(dim, condition_number, scale)


def minimiser_tolerance(value_tolerance: float, sigma: np.ndarray, n_e: int) -> float:
    r"""Tolerance on :math:`\|B - B^*\|_F` in whitened coordinates
    :math:`B = C_{uu}^{1/2} A C_{vv}^{1/2}`.

    Near the rank-:math:`n_e` minimiser the loss grows at least like
    :math:`\tfrac12 \gamma \|B - B^*\|_F^2` with relative eigengap
    :math:`\gamma = (\sigma_{n_e} - \sigma_{n_e+1})/\sigma_{n_e}` (rotating a
    kept singular direction towards a dropped one costs
    :math:`\sigma_{n_e}^2 - \sigma_{n_e+1}^2`, and moving along the kept
    directions costs 1).  A minimiser known to have value within
    ``value_tolerance`` of the minimum is therefore within

    .. math:: \sqrt{2\, \text{value\_tolerance} / \gamma}

    of :math:`B^*`.  This is the honest resolution of an optimiser that sees
    only loss values: it scales like :math:`\sqrt{\epsilon}`, and it blows up
    as the eigengap closes, where the minimiser stops being unique.
    """
    s = np.append(np.asarray(sigma, dtype=np.float64), 0.0)
    top, nxt = s[n_e - 1], s[n_e]
    if top <= 0:
        return math.inf
    gamma = (top - nxt) / top
    if gamma <= 0:
        return math.inf
    return math.sqrt(2.0 * value_tolerance / gamma)


def monte_carlo_tolerance(standard_error: float, k: float = 5.0) -> float:
    r"""Tolerance ``k * standard_error`` for a Monte Carlo comparison.

    With ``k = 5`` a correct statement fails by chance with probability
    :math:`\approx 6\cdot10^{-7}` per comparison under the CLT; the checks
    are seeded, so a given run is deterministic anyway.
    """
    return k * float(standard_error)


def kernel_tolerance(dtype, scale: float) -> float:
    r"""Absolute tolerance on the streaming loss :math:`L_N` (``numerics.kernels``).

    .. math:: \text{tol} = 64\, \epsilon\, \text{scale}

    where ``scale`` bounds :math:`\max(|\mathrm{LSE}|, |F_{ii}|)`: the loss is
    a difference of sums of such terms, each carrying a relative rounding
    error of a few :math:`\epsilon`; 64 is the kernel's documented factor
    (``numerics.kernels._ERROR_FACTOR``), measured against mpmath.
    """
    return 64.0 * float(np.finfo(dtype).eps) * max(float(scale), 1.0)


def mean_map_tolerance(value_tolerance, S_model, C_cond):
    r"""Tolerance on :math:`\|N - M\|_F` from a tolerance on an expected KL.

    The mean part of :math:`E_x KL` is :math:`\tfrac12\operatorname{tr}(D^T S^{-1} D C_{xx})
    \ge \tfrac12 \|D\|_F^2 / (\lambda_{max}(S)\, \lambda_{max}(C_{xx})^{-1})`,
    so an expected KL within ``value_tolerance`` of its zero bounds

    .. math:: \|D\|_F \le \sqrt{2\,\text{value\_tolerance}\;\lambda_{max}(S)/\lambda_{min}(C_{xx})}.
    """
    lmax = float(np.linalg.eigvalsh(S_model)[-1])
    lmin = float(np.linalg.eigvalsh(C_cond)[0])
    return math.sqrt(2.0 * value_tolerance * lmax / lmin)


def covariance_tolerance(value_tolerance, S_true):
    r"""Tolerance on :math:`\|\Sigma - S\|_F` from a tolerance on an expected KL.

    The covariance part of the KL is
    :math:`\tfrac14\|S^{-1/2}(\Sigma - S)S^{-1/2}\|_F^2 + O(\|\cdot\|^3)`, hence
    :math:`\|\Sigma - S\|_F \le 2\lambda_{max}(S)\sqrt{\text{value\_tolerance}}`
    (a factor 2 above the quadratic bound covers the cubic term).
    """
    return 4.0 * float(np.linalg.eigvalsh(S_true)[-1]) * math.sqrt(value_tolerance)


# --------------------------------------------------------------------------
# second methods: power of Monte Carlo checks, quadrature, finite differences
# --------------------------------------------------------------------------
#: One-sided normal quantile of the power used for minimum detectable effects (80 %).
Z_POWER = 0.8416212335729143


def monte_carlo_mde(standard_error: float, k: float = 5.0, z_power: float = Z_POWER) -> float:
    r"""Minimum detectable effect of a comparison held under ``k`` standard errors.

    .. math:: \text{MDE} = (k + z_{0.8})\,\text{se}

    A wrong formula that shifts the compared quantity by the MDE makes the
    case fail with probability 0.8 (the estimate lands beyond the tolerance
    unless the noise pulls it back by more than :math:`z_{0.8} = 0.84`
    standard errors); smaller shifts are caught less often.
    """
    return (k + z_power) * float(standard_error)


def richardson_tolerance(truncation: float, propagated: float) -> float:
    r"""Tolerance on a limit extrapolated by Richardson's table from exact-to-quadrature values.

    .. math:: \text{tol} = 10\,(\text{truncation} + \text{propagated})

    ``truncation`` is the difference between the last two orders of the table
    (the standard estimate of the error left); ``propagated`` the quadrature
    errors carried through the table.  The factor 10 covers expansions whose
    next term decays more slowly than the next integer power (the moments
    :math:`E e^{kf}` of a Gaussian bilinear logit exist only for small
    :math:`k`): on the scalar models of :mod:`numerics.finite_sample` with
    :math:`|a| \le 0.25` the error stayed within 3 times the estimate.
    """
    return 10.0 * (float(truncation) + float(propagated))


def finite_difference_hessian_tolerance(hessian_scale: float, point_scale: float,
                                        step: float) -> float:
    r"""Tolerance on the eigenvalues of a Hessian built by central differences of an
    exact gradient.

    .. math:: \text{tol} = 8\,\big(\epsilon\,\|H\|\max(1, |x|)/h + h^2\|H\|\big)

    the rounding error of the gradient divided by the step plus the
    :math:`O(h^2)` truncation (third derivatives of the size of :math:`\|H\|`
    on the unit scale); Weyl's inequality carries entry errors to eigenvalues.
    """
    s = max(float(hessian_scale), 1.0)
    return 8.0 * (EPS64 * s * max(1.0, float(point_scale)) / step + step * step * s)
