"""numerics.optimize: the factor minimiser finds Proposition G1's optimum without the SVD."""
import re
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


# ---------------------------------------------------------------- finite differences

def test_finite_difference_grad_scales_its_step_with_the_entries():
    """f = sum A^3 / 3 at entries ~1e3: the step eps^(1/3) max(1, |A|) keeps the error near
    eps^(2/3) relative (~1e-11); a step without the max(1, |A|) factor would lose ~1e-7
    to rounding of f ~ 1e9."""
    A = np.array([[1000.0, -1500.0], [2000.0, 1200.0]])
    g = finite_difference_grad(lambda X: float(np.sum(X**3)) / 3, A)
    np.testing.assert_allclose(g, A**2, rtol=1e-9)
    v = np.array([0.3, -2.0, 7.0])                                # any shape
    np.testing.assert_allclose(finite_difference_grad(lambda x: float(np.sin(x).sum()), v), np.cos(v), rtol=1e-9)


def test_finite_difference_hessian_step_symmetry_and_accuracy():
    from numerics.optimize import finite_difference_hessian
    a = np.array([1.0, 2.0, 3.0])
    grad = lambda x: np.array([3 * x[0] ** 2 + x[1], x[0] + a[1] * x[1], np.exp(x[2])])  # noqa: E731
    x0 = np.array([0.5, -5.0, 0.2])
    H, h = finite_difference_hessian(grad, x0, step=1e-5)
    assert h == pytest.approx(5e-5, rel=1e-15, abs=0)                   # step * max(1, |x0|_inf)
    exact = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, np.exp(0.2)]])
    np.testing.assert_array_equal(H, H.T)
    np.testing.assert_allclose(H, exact, atol=1e-9)
    H1, h1 = finite_difference_hessian(grad, np.array([0.1, 0.2, 0.3]))
    assert h1 == pytest.approx(1e-5, rel=1e-15, abs=0)                  # default step, |x0| < 1
    np.testing.assert_allclose(H1[0, 0], 6 * 0.1, atol=1e-9)


def test_finite_difference_objective_against_the_analytic_gradient():
    from numerics.optimize import finite_difference_objective
    W = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, 1.5]])

    def value(G_u, G_v):
        return float(np.sum((G_u.T @ G_v - W) ** 2)) + float(np.sum(G_u**4))

    obj = finite_difference_objective(value)
    rng = np.random.default_rng(0)
    G_u, G_v = rng.standard_normal((1, 2)), rng.standard_normal((1, 3))
    val, (dGu, dGv) = obj(G_u, G_v)
    R = G_u.T @ G_v - W
    assert val == value(G_u, G_v)
    np.testing.assert_allclose(dGu, 2 * G_v @ R.T + 4 * G_u**3, atol=1e-8)
    np.testing.assert_allclose(dGv, 2 * G_u @ R, atol=1e-8)
    assert dGu.shape == (1, 2) and dGv.shape == (1, 3)


def test_bilinear_objective_chain_rule_and_arguments():
    W = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, 1.5]])
    loss = lambda A: float(np.sum((A - W) ** 2))  # noqa: E731
    rng = np.random.default_rng(1)
    G_u, G_v = rng.standard_normal((2, 2)), rng.standard_normal((2, 3))
    R = G_u.T @ G_v - W
    for obj in (bilinear_objective(loss, lambda A: 2 * (A - W)), bilinear_objective(loss)):
        val, (dGu, dGv) = obj(G_u, G_v)
        assert val == pytest.approx(float(np.sum(R**2)), rel=1e-15)
        np.testing.assert_allclose(dGu, 2 * G_v @ R.T, atol=1e-7)
        np.testing.assert_allclose(dGv, 2 * G_u @ R, atol=1e-7)
    with pytest.raises(InvalidInputError, match="^loss="):
        bilinear_objective(3.0)
    with pytest.raises(InvalidInputError, match="^grad="):
        bilinear_objective(loss, grad="no")


def test_is_converged_boundaries():
    msg = "Desired error not necessarily achieved due to precision loss."
    eps = np.finfo(float).eps
    assert is_converged(True, "ok", 1e-10, 1.0, 1e-10)                 # grad == gtol
    assert not is_converged(True, "ok", 2e-10, 1.0, 1e-10)
    # the rounding floor sqrt(2 eps max(1, |f|)) grows with |f|: 2.1e-5 at f = -1e6
    assert is_converged(False, msg, 1e-5, -1e6, 1e-11)
    assert not is_converged(False, msg, 1e-5, 1.0, 1e-11)
    floor = np.sqrt(2 * eps)
    assert is_converged(False, msg, floor, 0.5, 1e-11)                 # |f| < 1 uses 1
    assert not is_converged(False, msg, 1.001 * floor, 0.5, 1e-11)
    assert is_converged(False, msg, 1e-3, 1.0, 1e-3)                   # or gtol, if larger


# ---------------------------------------------------------------- minimize_factors

def _quadratic(G_u, G_v):
    return float(np.sum((G_u - 1) ** 2) + np.sum((G_v + 2) ** 2)), (2 * (G_u - 1), 2 * (G_v + 2))


@pytest.mark.parametrize("kwargs, name", [
    (dict(objective=3), "objective"), (dict(n_u=0), "n_u"), (dict(n_v=1.5), "n_v"), (dict(n_e=3), "n_e"),
    (dict(starts=0), "starts"), (dict(maxiter=0), "maxiter"), (dict(restarts=-1), "restarts"),
    (dict(init_scale=0.0), "init_scale"), (dict(init_scale=float("nan")), "init_scale"),
    (dict(init_scale=True), "init_scale"), (dict(init_scale="1"), "init_scale"), (dict(gtol=-1e-8), "gtol"),
    (dict(gtol=float("inf")), "gtol"), (dict(rng=0), "rng"), (dict(n_extra=-1), "n_extra"),
    (dict(n_extra=1, rebalance=True), "rebalance"),
    (dict(init=np.zeros((2, 2))), "init"), (dict(init=(np.zeros((2, 2)),)), "init"),
    (dict(init=(np.zeros((2, 2)), np.zeros((2, 3)))), r"init\[0\]"),
    (dict(init=(np.zeros((1, 2)), np.zeros((2, 3)))), r"init\[1\]"),
    (dict(init=(np.zeros((1, 2)), np.full((1, 3), np.nan))), r"init\[1\]"),
    (dict(init=(np.zeros((1, 2)), np.zeros((1, 3))), n_extra=1), "init"),
    (dict(init=(np.zeros((1, 2)), np.zeros((1, 3)), np.zeros(2)), n_extra=1), r"init\[2\]"),
    (dict(method="Newton-CG"), "method"), (dict(method="L-BFGS-B", hess_inv=np.eye(5)), "hess_inv"),
    (dict(stages=(3,)), "stages"), (dict(stages="ab"), "stages"), (dict(stages=_quadratic), "stages"),
    (dict(init_scale=(1.0,)), "init_scale"), (dict(init_scale=(1.0, -1.0)), "init_scale"),
    (dict(init_scale=(1.0, 2.0, 3.0)), "init_scale"), (dict(n_e=0, wide=True), "n_e"),
    (dict(n_e=4, wide=True, rebalance=True), "rebalance"),
])
def test_minimize_factors_names_a_bad_argument(kwargs, name):
    args = dict(objective=_quadratic, n_u=2, n_v=3, n_e=1)
    args.update(kwargs)
    objective, n_u, n_v, n_e = (args.pop(k) for k in ("objective", "n_u", "n_v", "n_e"))
    with pytest.raises(InvalidInputError, match=f"^{name}="):
        minimize_factors(objective, n_u, n_v, n_e, **args)


def test_minimize_factors_reports_every_start_and_keeps_the_best():
    def bumpy(G_u, G_v):   # two minima, values 0 (x = +1) and 0.5 (x = -1), in one coordinate
        x = G_u[0, 0]
        val = (x * x - 1) ** 2 + 0.25 * (1 - x) + float(np.sum(G_v**2))
        return val, (np.array([[4 * x * (x * x - 1) - 0.25]]), 2 * G_v)

    fit = minimize_factors(bumpy, 1, 1, 1, starts=6, init_scale=1.5, rng=np.random.default_rng(4))
    assert len(fit.start_values) == 6 and len(fit.messages) == 6
    assert fit.value == min(fit.start_values)
    assert fit.value == pytest.approx(bumpy(fit.G_u, fit.G_v)[0], rel=1e-15)
    assert fit.G_u[0, 0] > 0                                     # the better of the two minima
    assert np.ptp(fit.start_values) > 0.1                         # some start found the other one
    np.testing.assert_allclose(fit.A, fit.G_u.T @ fit.G_v)
    np.testing.assert_array_equal(fit.x, np.concatenate([fit.G_u.ravel(), fit.G_v.ravel()]))
    assert fit.extra.shape == (0,)
    assert fit.hess_inv.shape == (2, 2)


def test_minimize_factors_init_is_the_first_start_and_restarts_continue_a_stalled_run():
    exact = (np.ones((1, 2)), -2 * np.ones((1, 3)))
    fit = minimize_factors(_quadratic, 2, 3, 1, starts=1, init=exact)
    assert fit.n_iter == 0 and fit.value == 0.0 and fit.converged
    # one iteration per run: the restarts carry on from each end point until converged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = minimize_factors(_quadratic, 2, 3, 1, starts=1, maxiter=1, restarts=30,
                               rng=np.random.default_rng(0))
    assert fit.converged and fit.n_iter > 1 and fit.value < 1e-18
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # warn=False: no warning for the stalled fit
        quiet = minimize_factors(_quadratic, 2, 3, 1, starts=1, maxiter=1, restarts=0, warn=False,
                                 rng=np.random.default_rng(0))
    assert not quiet.converged and quiet.n_iter == 1


def test_minimize_factors_random_starts_have_the_requested_scale():
    seen = []

    def recording(G_u, G_v):
        seen.append(np.concatenate([G_u.ravel(), G_v.ravel()]))
        return _quadratic(G_u, G_v)

    for scale in (0.01, 3.0):
        seen.clear()
        minimize_factors(recording, 20, 20, 10, starts=1, init_scale=scale, maxiter=1, restarts=0,
                         warn=False, rng=np.random.default_rng(1))
        # 400 entries N(0, scale^2): their standard deviation to ~4 % (5 standard errors of it: 18 %)
        assert np.std(seen[0]) == pytest.approx(scale, rel=0.18)
    # the default is 0.5, and the default rng is default_rng(0): two calls start alike
    seen.clear()
    minimize_factors(recording, 20, 20, 10, starts=1, maxiter=1, restarts=0, warn=False)
    first = seen[0]
    assert np.std(first) == pytest.approx(0.5, rel=0.18)
    seen.clear()
    minimize_factors(recording, 20, 20, 10, starts=1, maxiter=1, restarts=0, warn=False)
    np.testing.assert_array_equal(seen[0], first)


def test_rebalanced_restarts_start_from_balanced_factors():
    """With rebalance=True a restart begins at the balanced factorisation of the end point's
    A (G_u G_u^T = G_v G_v^T); without it, at the end point itself."""
    W = np.array([[1.0, 2.0], [0.5, -1.0]])
    calls = []

    def objective(G_u, G_v):
        calls.append((G_u.copy(), G_v.copy()))
        R = G_u.T @ G_v - W
        return float(np.sum(R**2)), (2 * G_v @ R.T, 2 * G_u @ R)

    def balanced_calls():
        return sum(np.allclose(Gu @ Gu.T, Gv @ Gv.T, atol=1e-12) for Gu, Gv in calls)

    init = (np.array([[3.0, 0.1], [0.2, 0.1]]), np.array([[0.1, 0.05], [1.0, 0.3]]))
    minimize_factors(objective, 2, 2, 2, starts=1, init=init, maxiter=1, restarts=1, warn=False,
                     rebalance=True)
    assert balanced_calls() >= 1
    calls.clear()
    minimize_factors(objective, 2, 2, 2, starts=1, init=init, maxiter=1, restarts=1, warn=False)
    assert balanced_calls() == 0


def test_extra_scalars_start_at_zero_and_are_learned():
    firsts = []

    def objective(G_u, G_v, extra):
        firsts.append(extra.copy())
        val, (gu, gv) = _quadratic(G_u, G_v)
        return val + float((extra[0] - 3.0) ** 2 + extra[1] ** 2), (gu, gv, 2 * (extra - [3.0, 0.0]))

    fit = minimize_factors(objective, 2, 3, 2, starts=2, n_extra=2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(firsts[0], 0.0)
    np.testing.assert_allclose(fit.extra, [3.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(fit.G_u, 1.0, atol=1e-9)
    np.testing.assert_allclose(fit.G_v, -2.0, atol=1e-9)
    assert fit.G_u.shape == (2, 2) and fit.G_v.shape == (2, 3)
    assert fit.x.shape == (4 + 6 + 2,) and fit.hess_inv.shape == (12, 12)
    warm = minimize_factors(objective, 2, 3, 2, starts=1, n_extra=2,
                            init=(fit.G_u, fit.G_v, fit.extra), hess_inv=fit.hess_inv)
    assert warm.n_iter == 0


def test_a_spoilt_inverse_hessian_seed_is_ignored():
    rng = np.random.default_rng(2)
    for H0 in (-np.eye(5), np.eye(4), np.full((5, 5), np.nan)):
        fit = minimize_factors(_quadratic, 2, 3, 1, starts=1, rng=rng, hess_inv=H0)
        assert fit.converged and fit.value < 1e-18


def test_finite_difference_steps_are_the_documented_ones():
    """Both central-difference helpers step entry i by eps^(1/3) max(1, |x_i|) (their
    docstrings): the evaluation points are recorded, and integer input is differenced in
    float64 (not truncated back to integers)."""
    from numerics.optimize import finite_difference_objective
    base = np.finfo(np.float64).eps ** (1 / 3)
    A = np.array([[0.25, -3.0], [40.0, 1.0]])
    points = []

    def loss(X):
        points.append(np.array(X, dtype=float))
        return float(np.sum(X**2))

    finite_difference_grad(loss, A)
    steps = np.array([np.max(np.abs(p - A)) for p in points]).reshape(-1, 2)  # (+h, -h) per entry
    want = base * np.maximum(1.0, np.abs(A)).ravel()
    np.testing.assert_allclose(steps[:, 0], want, rtol=1e-6)
    np.testing.assert_allclose(steps[:, 1], want, rtol=1e-6)
    g = finite_difference_grad(lambda X: float(np.sum(X**2)), np.array([[1, 2], [3, 4]]))
    np.testing.assert_allclose(g, [[2, 4], [6, 8]], rtol=1e-8)

    seen = []

    def value(G_u, G_v):
        seen.append(np.concatenate([G_u.ravel(), G_v.ravel()]))
        return float(np.sum(G_u**2) + np.sum(G_v**2))

    x = np.array([0.5, -7.0, 2.0])
    finite_difference_objective(value)(x[:1].reshape(1, 1), x[1:].reshape(1, 2))
    diffs = [np.max(np.abs(p - x)) for p in seen if np.max(np.abs(p - x)) > 0]
    np.testing.assert_allclose(diffs, np.repeat(base * np.maximum(1.0, np.abs(x)), 2), rtol=1e-6)


def test_balanced_factors_validate_by_name():
    with pytest.raises(InvalidInputError, match="^A="):
        balanced_factors(np.ones(3), 1)
    with pytest.raises(InvalidInputError, match="^A="):
        balanced_factors([[1.0, np.inf]], 1)
    with pytest.raises(InvalidInputError, match="^n_e="):
        balanced_factors(np.ones((1, 3)), 2)                     # n_e <= min(n_u, n_v) = 1
    G_u, G_v = balanced_factors(np.array([[1, 2], [3, 4]]), 2)   # integers are fine
    np.testing.assert_allclose(G_u.T @ G_v, [[1, 2], [3, 4]], atol=1e-12)


def test_minimize_over_factors_defaults():
    """Six starts, random entries of standard deviation 0.5 (docstring defaults)."""
    firsts = []

    def loss(A):
        firsts.append(A.copy())
        return float(np.sum((A - 1.0) ** 2))

    with pytest.warns(RuntimeWarning, match="did not converge"):
        fit = minimize_over_factors(loss, 12, 12, 12, grad=lambda A: 2 * (A - 1.0), maxiter=1, restarts=0)
    assert len(fit.start_values) == 6
    # A = G_u^T G_v of 12x12 N(0, s^2) factors: entries of variance 12 s^4 (std 0.87 at s = 0.5,
    # 7.8 at s = 1.5); 144 entries give its standard deviation to ~10 %
    assert np.std(firsts[0]) == pytest.approx(np.sqrt(12) * 0.25, rel=0.3)


def _scaled_quadratic(G_u, G_v, offset=0.0):
    c = np.array([1.0, 10.0, 100.0, 1000.0, 3.0])
    x = np.concatenate([G_u.ravel(), G_v.ravel()])
    g = 2 * c * (x - 1)
    return float(offset + np.sum(c * (x - 1) ** 2)), (g[:2].reshape(1, 2), g[2:].reshape(1, 3))


def test_an_inverse_hessian_seed_is_used_on_the_first_start():
    """On a quadratic with curvatures 1..1000, BFGS seeded with the exact inverse Hessian
    needs ~2 iterations from a distant start; from the identity it needs several."""
    init = (np.zeros((1, 2)), np.zeros((1, 3)))
    H = np.diag(1 / (2 * np.array([1.0, 10.0, 100.0, 1000.0, 3.0])))
    cold = minimize_factors(_scaled_quadratic, 2, 3, 1, starts=1, init=init)
    seeded = minimize_factors(_scaled_quadratic, 2, 3, 1, starts=1, init=init, hess_inv=H)
    assert seeded.converged and cold.converged
    assert seeded.n_iter <= 2 < 5 <= cold.n_iter
    # a non-symmetric seed is used through its symmetric part
    skew = H + np.triu(np.full((5, 5), 1e-3), 1) - np.tril(np.full((5, 5), 1e-3), -1)
    assert minimize_factors(_scaled_quadratic, 2, 3, 1, starts=1, init=init, hess_inv=skew).n_iter <= 2


def test_a_stop_on_precision_loss_at_the_rounding_floor_is_converged():
    """A loss offset by 1e8: BFGS stops on precision loss with a gradient ~1e-6, above gtol
    but below the floor sqrt(2 eps |f|) = 2e-4 (is_converged): converged, no warning, and
    SciPy's message recorded."""
    obj = lambda G_u, G_v: _scaled_quadratic(G_u, G_v, offset=1e8)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = minimize_factors(obj, 2, 3, 1, starts=2, rng=np.random.default_rng(0))
    assert fit.converged and fit.grad_norm > 1e-10
    assert len(fit.messages) == 2 and all("precision loss" in m for m in fit.messages)


def test_minimize_factors_defaults():
    seen = []

    def recording(G_u, G_v):
        seen.append(np.concatenate([G_u.ravel(), G_v.ravel()]))
        return _quadratic(G_u, G_v)

    fit = minimize_factors(recording, 2, 3, 1)
    assert len(fit.start_values) == 4                              # starts=4
    first = seen[0]
    seen.clear()
    minimize_factors(recording, 2, 3, 1, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(seen[0], first)                  # rng=None is default_rng(0)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        minimize_factors(_quadratic, 2, 3, 1, starts=1, maxiter=1, restarts=0)


# ---------------------------------------------------------------- L-BFGS-B, stages, wide encoders

def test_positive_definite_repairs_a_barely_indefinite_estimate():
    from numerics.optimize import _positive_definite
    H = np.diag([2.0, 1.0, -1e-14])
    P = _positive_definite(H)
    assert np.array_equal(P, P.T)
    np.linalg.cholesky(P)  # raises if not positive definite
    np.testing.assert_allclose(P[:2, :2], H[:2, :2], rtol=1e-12)
    assert np.linalg.eigvalsh(P)[0] == pytest.approx(2e-8, rel=1e-6)  # floor (1e-8) times the largest


def test_l_bfgs_b_reaches_the_minimum_and_returns_no_inverse_hessian():
    init = (np.zeros((1, 2)), np.zeros((1, 3)))
    fit = minimize_factors(_scaled_quadratic, 2, 3, 1, starts=2, init=init, method="L-BFGS-B",
                           rng=np.random.default_rng(0))
    assert fit.converged and fit.hess_inv is None
    # the quadratic's minimum is x = 1; curvatures 2..2000 and gtol 1e-10 put x within 1e-10
    np.testing.assert_allclose(fit.x, 1.0, atol=1e-10)
    assert all(m.startswith("CONVERGENCE") for m in fit.messages)  # L-BFGS-B's messages
    with pytest.warns(RuntimeWarning, match="did not converge"):
        stalled = minimize_factors(_scaled_quadratic, 2, 3, 1, starts=1, init=init, method="L-BFGS-B",
                                   maxiter=1, restarts=0)
    assert not stalled.converged and "ITERATIONS" in stalled.messages[0]


def test_is_converged_reads_the_l_bfgs_b_stops():
    """L-BFGS-B's relative-reduction stop (success) and abnormal line search are its stops
    on rounding: converged at the floor sqrt(2 eps max(1, |f|)) ~ 2.1e-8, not above."""
    rel, abnormal = "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH", "ABNORMAL: "
    assert is_converged(True, rel, 1e-9, 1.0, 1e-11) and not is_converged(True, rel, 1e-3, 1.0, 1e-11)
    assert is_converged(False, abnormal, 1e-9, 1.0, 1e-11) and not is_converged(False, abnormal, 1e-6, 1.0, 1e-11)
    assert not is_converged(False, "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT", 1e-12, 1.0, 1e-11)
    assert is_converged(True, "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL", 1e-11, 1.0, 1e-11)


def test_a_pair_of_scales_draws_each_encoder_at_its_own_scale():
    seen = []

    def recording(G_u, G_v):
        seen.append(np.concatenate([G_u.ravel(), G_v.ravel()]))
        return _quadratic(G_u, G_v)

    minimize_factors(recording, 2, 3, 1, starts=1, init_scale=(0.25, 4.0), maxiter=1, restarts=0,
                     warn=False, rng=np.random.default_rng(3))
    z = np.random.default_rng(3).standard_normal(5)   # one draw of all the entries, G_u first
    np.testing.assert_array_equal(seen[0], np.concatenate([0.25 * z[:2], 4.0 * z[2:]]))
    seen.clear()
    minimize_factors(recording, 2, 3, 1, starts=1, init_scale=0.25, maxiter=1, restarts=0,
                     warn=False, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(seen[0], 0.25 * z)


def _shifted_scaled_quadratic(m, tag, calls):
    """The scaled quadratic with its minimum at x = m; records (tag, x) of every evaluation."""
    c = np.array([1.0, 10.0, 100.0, 1000.0, 3.0])

    def objective(G_u, G_v):
        x = np.concatenate([G_u.ravel(), G_v.ravel()])
        calls.append((tag, x))
        g = 2 * c * (x - m)
        return float(np.sum(c * (x - m) ** 2)), (g[:2].reshape(1, 2), g[2:].reshape(1, 3))

    return objective


def test_stages_are_minimised_in_turn_each_from_where_the_last_ended():
    calls = []
    stages = [_shifted_scaled_quadratic(0.5, "a", calls), _shifted_scaled_quadratic(1.0, "b", calls)]
    final = _shifted_scaled_quadratic(2.0, "F", calls)
    fit = minimize_factors(final, 2, 3, 1, starts=2, stages=stages, rng=np.random.default_rng(0))
    tags = "".join(t for t, _ in calls)
    assert re.fullmatch("(a+b+F+){2}", tags), tags               # per start: a, then b, then F
    first = {t: x for t, x in reversed(calls[:tags.index("Fa") + 1])}
    # each stage starts at the minimum of the one before (gtol 1e-10: within 1e-10 of it)
    np.testing.assert_allclose(first["b"], 0.5, atol=1e-10)
    np.testing.assert_allclose(first["F"], 1.0, atol=1e-10)
    assert fit.converged and np.all(np.abs(fit.x - 2.0) < 1e-10)
    assert np.all(np.abs(fit.start_values) < 1e-18)           # values are the last objective's


def test_stages_carry_the_inverse_hessian_under_bfgs():
    """Same curvature in every stage: from stage b's minimum with its inverse-Hessian
    estimate, the last fit takes a few evaluations; from the identity it takes several
    times more (12 here)."""
    calls = []
    stages = [_shifted_scaled_quadratic(0.5, "a", calls), _shifted_scaled_quadratic(1.0, "b", calls)]
    final = _shifted_scaled_quadratic(2.0, "F", calls)
    minimize_factors(final, 2, 3, 1, starts=1, stages=stages, rng=np.random.default_rng(0))
    carried = sum(t == "F" for t, _ in calls)
    calls.clear()
    minimize_factors(final, 2, 3, 1, starts=1, init=(np.ones((1, 2)), np.ones((1, 3))))
    fresh = len(calls)
    assert carried <= 4 < 8 <= fresh
    calls.clear()
    fit = minimize_factors(final, 2, 3, 1, starts=1, stages=stages, method="L-BFGS-B",
                           rng=np.random.default_rng(0))
    assert fit.converged and [t for t, _ in calls][-1] == "F"   # no inverse Hessian to carry


def test_start_factors_are_the_final_encoders_of_every_start():
    def bumpy(G_u, G_v):   # two minima in one coordinate (as above)
        x = G_u[0, 0]
        return (x * x - 1) ** 2 + 0.25 * (1 - x) + float(np.sum(G_v**2)), \
            (np.array([[4 * x * (x * x - 1) - 0.25]]), 2 * G_v)

    fit = minimize_factors(bumpy, 1, 1, 1, starts=6, init_scale=1.5, rng=np.random.default_rng(4))
    assert len(fit.start_factors) == 6
    for (G_u, G_v), value in zip(fit.start_factors, fit.start_values):
        assert bumpy(G_u, G_v)[0] == value
    k = int(np.argmin(fit.start_values))
    np.testing.assert_array_equal(fit.start_factors[k][0], fit.G_u)


def test_wide_encoders_are_allowed_only_when_asked_for():
    # n_e = 4 > min(n_u, n_v) = 2: a function of the embeddings, not of A alone
    def objective(G_u, G_v):
        return float(np.sum((G_u - 1) ** 2) + np.sum(G_v**2)), (2 * (G_u - 1), 2 * G_v)

    fit = minimize_factors(objective, 2, 3, 4, starts=1, wide=True)
    assert fit.G_u.shape == (4, 2) and fit.G_v.shape == (4, 3) and fit.converged and np.allclose(fit.G_u, 1.0)
    with pytest.raises(InvalidInputError, match="^n_e="):
        minimize_factors(objective, 2, 3, 4)


def test_linear_encoder_objective_chain_rule():
    """L(za, zb) = sum(W_a * za^2) / 2 + sum(W_b * zb) with z = x G^T: the gradient in G
    against central differences of the lifted value (finite_difference_objective, tested
    above: error ~ eps^(2/3) times values of order 10, tolerance 1e-7)."""
    from numerics.optimize import finite_difference_objective, linear_encoder_objective
    rng = np.random.default_rng(6)
    xu, xv = rng.standard_normal((7, 3)), rng.standard_normal((5, 2))
    Wa, Wb = rng.standard_normal((7, 2)), rng.standard_normal((5, 2))
    obj = linear_encoder_objective(lambda za, zb: (0.5 * np.sum(Wa * za**2) + np.sum(Wb * zb), Wa * za, Wb),
                                   xu, xv)
    G_u, G_v = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    value, (dGu, dGv) = obj(G_u, G_v)
    za = xu @ G_u.T
    assert value == pytest.approx(0.5 * np.sum(Wa * za**2) + np.sum(Wb * (xv @ G_v.T)), rel=1e-15)
    _, (fu, fv) = finite_difference_objective(lambda Gu, Gv: obj(Gu, Gv)[0])(G_u, G_v)
    np.testing.assert_allclose(dGu, fu, rtol=0, atol=1e-7)
    np.testing.assert_allclose(dGv, fv, rtol=0, atol=1e-7)
    with pytest.raises(InvalidInputError, match="^objective="):
        linear_encoder_objective(None, xu, xv)
    with pytest.raises(InvalidInputError, match="^xv="):
        linear_encoder_objective(lambda za, zb: None, xu, np.ones(3))


# ---------------------------------------------------------------- the verifier's population fits

def test_population_fits_reach_the_closed_form_minimisers():
    from numerics.optimize import fit_population_clip, fit_population_cond
    m = random_gaussian_model(np.random.default_rng(7), 3, 2, n_e=1, min_gap=0.2)
    clip = fit_population_clip(m, np.random.default_rng(0))
    # Proposition G1, with the closed form of numerics.gaussian (an independent route)
    assert clip.value == pytest.approx(gaussian.lowrank_minimum(m.cov, 3, 1), abs=1e-10)
    np.testing.assert_allclose(clip.A, gaussian.lowrank_minimizer(m.cov, 3, 1), atol=1e-6)
    assert len(clip.start_values) == 4                                   # starts=4
    cond = fit_population_cond(m, np.random.default_rng(0))
    assert len(cond.start_values) == 3                                   # starts=3
    # Theorem 2.8: the same minimiser; finite-difference gradients (eps^(2/3) ~ 4e-11 on a
    # loss of order 1, over a Hessian of order 1) leave A within ~1e-5
    np.testing.assert_allclose(cond.A, clip.A, atol=1e-5)
    assert cond.value == pytest.approx(gaussian.conditional_loss(clip.A, m.cov, 3), abs=1e-9)
    # the losses are the ones passed: a quadratic with its minimum at A = W (rank 1)
    W = np.outer([1.0, 2.0, -1.0], [0.5, 1.0])
    fit = fit_population_clip(m, np.random.default_rng(1), clip_loss=lambda A, C, n: float(np.sum((A - W) ** 2)),
                              clip_grad=None, starts=2)
    np.testing.assert_allclose(fit.A, W, atol=1e-6)
    fit = fit_population_cond(m, np.random.default_rng(1), cond_loss=lambda A, C, n: float(np.sum((A - W) ** 2)))
    np.testing.assert_allclose(fit.A, W, atol=1e-6)
    with pytest.raises(InvalidInputError, match="^model="):
        fit_population_clip(m.cov, np.random.default_rng(0))
