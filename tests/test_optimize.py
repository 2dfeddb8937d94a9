"""numerics.optimize: the factor minimiser finds Proposition G1's optimum without the SVD."""
import warnings

import numpy as np
import pytest

from numerics import InvalidInputError, gaussian
from numerics.models import random_gaussian_model
from numerics.optimize import (balanced_factors, bilinear_objective, finite_difference_grad,
                              is_converged, minimize_factors, minimize_over_factors)


def test_finite_difference_grad_matches_analytic():
    rng = np.random.default_rng(0)
    m = random_gaussian_model(rng, 3, 2)
    A = rng.standard_normal((3, 2))
    g = finite_difference_grad(lambda X: gaussian.population_clip_loss(X, m.cov, 3), A)
    # central differences: error ~ eps^(2/3) * scale of the loss (~10 here)
    np.testing.assert_allclose(g, gaussian.population_clip_loss_grad(A, m.cov, 3), atol=1e-8)


def test_reaches_lowrank_value_from_random_starts():
    rng = np.random.default_rng(1)
    m = random_gaussian_model(rng, 4, 3, n_e=2, min_gap=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = minimize_over_factors(lambda A: gaussian.population_clip_loss(A, m.cov, 4), 4, 3, 2,
                                    grad=lambda A: gaussian.population_clip_loss_grad(A, m.cov, 4),
                                    starts=5, rng=np.random.default_rng(2))
    target = gaussian.lowrank_minimum(m.cov, 4, 2)
    # landscape (MATH.md §4.1): every start reaches the global value
    assert np.all(np.abs(fit.start_values - target) < 1e-10)
    assert np.linalg.matrix_rank(fit.A) <= 2
    assert fit.G_u.shape == (2, 4) and fit.G_v.shape == (2, 3)


def test_invalid_arguments():
    f = lambda A: 0.0  # noqa: E731
    with pytest.raises(InvalidInputError, match="n_e"):
        minimize_over_factors(f, 2, 3, 3)
    with pytest.raises(InvalidInputError, match="starts"):
        minimize_over_factors(f, 2, 3, 1, starts=0)


def test_balanced_factors_reproduce_a_rank_ne_matrix_with_equal_spectra():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((4, 2)) @ rng.standard_normal((2, 3))  # rank 2
    G_u, G_v = balanced_factors(A, 2)
    assert G_u.shape == (2, 4) and G_v.shape == (2, 3)
    np.testing.assert_allclose(G_u.T @ G_v, A, atol=1e-12)
    # balanced: G_u G_u^T = G_v G_v^T (both equal diag(s))
    np.testing.assert_allclose(G_u @ G_u.T, G_v @ G_v.T, atol=1e-12)
    # for a full-rank A, the product is the truncated SVD (Eckart-Young): its error is the
    # discarded singular value
    B = rng.standard_normal((3, 3))
    H_u, H_v = balanced_factors(B, 1)
    assert np.linalg.norm(H_u.T @ H_v - B, 2) == pytest.approx(np.linalg.svd(B, compute_uv=False)[1])


def test_converged_means_stationary_and_a_stalled_fit_is_reported():
    """A quadratic with minimum at G_u = G_v = 1: a full run converges with a gradient at
    gtol; one BFGS iteration does not, and says so (flag and warning)."""
    def objective(G_u, G_v):
        return float(np.sum((G_u - 1) ** 2) + np.sum((G_v - 1) ** 2)), (2 * (G_u - 1), 2 * (G_v - 1))

    fit = minimize_factors(objective, 2, 2, 1, starts=2, rng=np.random.default_rng(0))
    assert fit.converged and fit.grad_norm <= 1e-10
    np.testing.assert_allclose(fit.x, 1.0, atol=1e-10)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        stalled = minimize_factors(objective, 2, 2, 1, starts=1, maxiter=1, restarts=0,
                                   rng=np.random.default_rng(0))
    assert not stalled.converged


def test_is_converged_precision_loss_only_at_the_rounding_floor():
    msg = "Desired error not necessarily achieved due to precision loss."
    assert is_converged(False, msg, 1e-9, 1.0, 1e-11)       # below sqrt(2 eps) ~ 2.1e-8
    assert not is_converged(False, msg, 1e-3, 1.0, 1e-11)   # a failed line search far from 0
    assert not is_converged(False, "Maximum number of iterations has been exceeded.", 1e-12, 1.0, 1e-11)
    assert is_converged(True, "Optimization terminated successfully.", 1e-12, 1.0, 1e-11)


def test_warm_start_and_hessian_seed_save_iterations():
    """Starting at the optimum with its inverse Hessian: (almost) no iterations left."""
    rng = np.random.default_rng(5)
    m = random_gaussian_model(rng, 3, 3, n_e=1, min_gap=0.2)
    obj = bilinear_objective(lambda A: gaussian.population_clip_loss(A, m.cov, 3),
                             lambda A: gaussian.population_clip_loss_grad(A, m.cov, 3))
    cold = minimize_factors(obj, 3, 3, 1, starts=1, rng=rng, gtol=1e-8)
    warm = minimize_factors(obj, 3, 3, 1, starts=1, init=(cold.G_u, cold.G_v),
                            hess_inv=cold.hess_inv, gtol=1e-8)
    assert warm.n_iter <= 2 < cold.n_iter
    assert warm.value == pytest.approx(gaussian.lowrank_minimum(m.cov, 3, 1), abs=1e-12)
