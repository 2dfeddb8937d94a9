"""The tolerances of proofs_checks.tolerances: each one against what its docstring says it bounds.

(``pytest.approx`` is given ``abs=0`` throughout: its default absolute tolerance of
1e-12 would swallow every rounding budget here, all of them below 1e-12.)

Two kinds of test.  The bounds derived from an inequality (mean map, covariance,
minimiser, finite-difference Hessian) are checked on the quantity they bound,
computed independently (a Gaussian KL, a quadratic loss, a Hessian by central
differences), including the case where the inequality is tight.  The rounding
budgets are checked through their documented scaling laws (linear in the
dimension, the condition number and the scale, proportional to the dtype's eps)
and their documented formula at one point, written out by hand.
"""
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from proofs_checks import tolerances as T

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def _rotation(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


# ---------------------------------------------------------------- rounding budgets

def test_closed_form_tolerance_scaling_laws():
    base = T.closed_form_tolerance(3, 10.0, 2.0)
    assert base == pytest.approx(32 * 3 * EPS64 * 10.0 * 2.0, rel=1e-15, abs=0)  # the documented formula
    assert T.closed_form_tolerance(6, 10.0, 2.0) == pytest.approx(2 * base, rel=1e-15, abs=0)
    assert T.closed_form_tolerance(3, 40.0, 2.0) == pytest.approx(4 * base, rel=1e-15, abs=0)
    assert T.closed_form_tolerance(3, 10.0, -2.0) == base           # |scale|
    # kappa < 1 and |scale| < 1 are clamped to 1 (errors relative to an O(1) term at least)
    one = T.closed_form_tolerance(3, 1.0, 1.0)
    assert one == pytest.approx(32 * 3 * EPS64, rel=1e-15, abs=0)
    assert T.closed_form_tolerance(3, 1.0) == one                   # default scale 1
    assert T.closed_form_tolerance(3, 0.25, 0.5) == one
    assert T.closed_form_tolerance(3, 1.0, 0.0) == one
    ratio = T.closed_form_tolerance(3, 10.0, 2.0, dtype=np.float32) / base
    assert ratio == pytest.approx(EPS32 / EPS64, rel=1e-15, abs=0)          # 2**29
    assert T.optimum_value_tolerance(3, 10.0, 2.0) == base
    assert T.optimum_value_tolerance(3, 10.0) == T.closed_form_tolerance(3, 10.0, 1.0)


def test_kernel_tolerance_is_the_kernels_own_factor():
    from numerics import kernels
    for dtype, eps in ((np.float64, EPS64), (np.float32, EPS32)):
        assert T.kernel_tolerance(dtype, 3.0) == pytest.approx(kernels._ERROR_FACTOR * eps * 3.0, rel=1e-15, abs=0)
        assert T.kernel_tolerance(dtype, 0.1) == pytest.approx(64 * eps, rel=1e-15, abs=0)  # scale clamped to 1


def test_monte_carlo_tolerance_and_detectable_effect():
    assert T.monte_carlo_tolerance(0.02) == pytest.approx(0.1, rel=1e-15, abs=0)
    assert T.monte_carlo_tolerance(0.02, k=3.0) == pytest.approx(0.06, rel=1e-15, abs=0)
    # z_0.8 from scipy, not from the module
    assert T.Z_POWER == pytest.approx(stats.norm.ppf(0.8), rel=1e-13, abs=0)
    assert T.monte_carlo_mde(0.02) == pytest.approx((5 + stats.norm.ppf(0.8)) * 0.02, rel=1e-13, abs=0)
    assert T.monte_carlo_mde(0.02, k=2.0, z_power=1.0) == pytest.approx(0.06, rel=1e-15, abs=0)


def test_monte_carlo_mde_is_detected_with_power_0_8():
    """A shift of one MDE, measured with unit standard error, lands beyond k standard
    errors with probability 0.8 (normal CDF, computed by scipy)."""
    mde = T.monte_carlo_mde(1.0)
    assert stats.norm.sf(T.monte_carlo_tolerance(1.0) - mde) == pytest.approx(0.8, abs=1e-12)


def test_richardson_tolerance():
    assert T.richardson_tolerance(1e-6, 2e-7) == pytest.approx(1.2e-5, rel=1e-15, abs=0)
    assert T.richardson_tolerance(0.0, 0.0) == 0.0


# ---------------------------------------------------------------- bounds from inequalities

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_map_tolerance_bounds_the_mean_part_and_is_tight(seed):
    """0.5 tr(D^T S^-1 D C) <= v implies ||D||_F <= tol(v), with equality for D = u w^T,
    u the top eigenvector of S and w the bottom eigenvector of C."""
    rng = np.random.default_rng(seed)
    m, n = 3, 4
    P = _rotation(rng, m)
    S = P @ np.diag([0.5, 1.0, 3.0]) @ P.T
    S = (S + S.T) / 2
    Q = _rotation(rng, n)
    C = Q @ np.diag([0.2, 1.0, 2.0, 5.0]) @ Q.T
    C = (C + C.T) / 2

    def mean_part(D):
        return 0.5 * np.trace(D.T @ np.linalg.solve(S, D) @ C)

    for _ in range(20):
        D = rng.standard_normal((m, n))
        assert np.linalg.norm(D) <= T.mean_map_tolerance(mean_part(D), S, C) * (1 + 1e-12)
    u = P[:, -1]  # eigenvalue 3, the largest of S
    w = Q[:, 0]  # eigenvalue 0.2, the smallest of C
    D = 0.3 * np.outer(u, w)
    assert T.mean_map_tolerance(mean_part(D), S, C) == pytest.approx(0.3, rel=1e-10, abs=0)


def _kl_zero_mean(Sig, S):
    """KL(N(0, Sig) || N(0, S)) from its definition (slogdet, solve)."""
    n = S.shape[0]
    M = np.linalg.solve(S, Sig)
    return 0.5 * (np.trace(M) - n - np.linalg.slogdet(M)[1])


@pytest.mark.parametrize("seed", [0, 1])
def test_covariance_tolerance_bounds_the_kl_and_has_its_factor_two(seed):
    rng = np.random.default_rng(seed)
    n = 4
    Q = _rotation(rng, n)
    lam = np.array([0.5, 1.0, 2.0, 4.0])
    S = Q @ np.diag(lam) @ Q.T
    S = (S + S.T) / 2
    for _ in range(20):
        E = rng.standard_normal((n, n))
        E = 0.05 * (E + E.T)
        Sig = S + E
        assert np.linalg.norm(E) <= T.covariance_tolerance(_kl_zero_mean(Sig, S), S)
    # Along the top eigenvector the quadratic bound is tight; the documented factor 2 on it
    # leaves the tolerance at twice the true distance (up to the cubic term, O(eps)).
    v = Q[:, -1]
    eps = 1e-3
    Sig = S + eps * np.outer(v, v)
    ratio = T.covariance_tolerance(_kl_zero_mean(Sig, S), S) / eps
    assert ratio == pytest.approx(2.0, rel=1e-3, abs=0)


def test_minimiser_tolerance_from_the_eigengap():
    # sigma = (1, 0.5), n_e = 1: gamma = 0.5, tol = sqrt(2 v / gamma) = sqrt(4 v)
    assert T.minimiser_tolerance(1e-8, np.array([1.0, 0.5]), 1) == pytest.approx(2e-4, rel=1e-12, abs=0)
    # every singular value kept: the next one is 0, gamma = 1
    assert T.minimiser_tolerance(1e-8, np.array([1.0, 0.5]), 2) == pytest.approx(math.sqrt(2e-8), rel=1e-12, abs=0)
    # a tie at the cut or a vanishing kept value: the minimiser is not unique (an infinite
    # tolerance, not a division by zero)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert T.minimiser_tolerance(1e-8, np.array([0.7, 0.7, 0.1]), 1) == math.inf
    assert T.minimiser_tolerance(1e-8, np.array([0.7, 0.0]), 2) == math.inf
    assert T.minimiser_tolerance(1e-8, np.array([0.7, 0.8]), 1) == math.inf  # gamma < 0


def test_minimiser_tolerance_bounds_a_quadratic_with_that_curvature():
    """A loss growing like gamma/2 ||x||^2 with value excess v is within the tolerance; at the
    worst direction (curvature exactly gamma) the bound is attained."""
    rng = np.random.default_rng(3)
    sigma = np.array([2.0, 1.5, 0.6])
    gamma = (1.5 - 0.6) / 1.5
    curv = np.array([gamma, 1.0, 3.0])
    for _ in range(20):
        x = rng.standard_normal(3) * 1e-3
        v = 0.5 * np.sum(curv * x * x)
        assert np.linalg.norm(x) <= T.minimiser_tolerance(v, sigma, 2) * (1 + 1e-12)
    assert T.minimiser_tolerance(0.5 * gamma * 1e-6, sigma, 2) == pytest.approx(1e-3, rel=1e-12, abs=0)


def test_finite_difference_hessian_tolerance_covers_central_differences():
    """Eigenvalues of a Hessian built by central differences of an exact gradient are within
    the tolerance of the exact ones; the formula at one point by hand."""
    a = np.array([1.0, -2.0, 0.5])
    x0 = np.array([0.3, 0.1, -0.4])

    def grad(x):   # f = sum exp(a x) + (x0 . x)^2 / 2
        return a * np.exp(a * x) + x0 * (x0 @ x)

    H = np.diag(a * a * np.exp(a * x0)) + np.outer(x0, x0)
    for h in (1e-2, 1e-4, 1e-6):
        Hfd = np.column_stack([(grad(x0 + h * e) - grad(x0 - h * e)) / (2 * h) for e in np.eye(3)])
        Hfd = (Hfd + Hfd.T) / 2
        err = np.max(np.abs(np.linalg.eigvalsh(Hfd) - np.linalg.eigvalsh(H)))
        tol = T.finite_difference_hessian_tolerance(np.linalg.norm(H, 2), np.linalg.norm(x0), h)
        assert err <= tol, (h, err, tol)
    assert T.finite_difference_hessian_tolerance(2.0, 3.0, 1e-3) == pytest.approx(
        8 * (EPS64 * 2.0 * 3.0 / 1e-3 + 1e-6 * 2.0), rel=1e-14, abs=0)
    # ||H|| and |x| below 1 are clamped to 1
    assert T.finite_difference_hessian_tolerance(0.1, 0.2, 1e-3) == pytest.approx(
        8 * (EPS64 / 1e-3 + 1e-6), rel=1e-14, abs=0)
