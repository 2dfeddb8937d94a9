"""numerics.nonsmooth: the min-norm element of a hull, differences that know a kink, gradient
sampling to a Clarke certificate, and the nonsmooth phase of a batch fit (kinked losses),
against independent computations."""
import math

import numpy as np
import pytest
from scipy.optimize import minimize

from numerics.batch_fit import PairedFit, fit_batch, paired_fits
from numerics.encoders import LinearEncoders, nested_sample, population_minimizer
from numerics.models import random_gaussian_model
from numerics.nonsmooth import (CAUSES, CLARKE_TOL, FD_RADII, checked_finite_difference_grad, gradient_sampling,
                                min_norm_element, straddles_kink)
from numerics.optimize import finite_difference_grad
from numerics.user_loss import ClipControl, UserLoss


# --------------------------------------------------------------------------
# the min-norm element
# --------------------------------------------------------------------------
def _slsqp_min_norm(G):
    """The same QP by a general solver: min |lam G|^2 over the simplex."""
    m = G.shape[0]
    res = minimize(lambda l: float((l @ G) @ (l @ G)), np.full(m, 1 / m), jac=lambda l: 2 * G @ (l @ G),
                   bounds=[(0, 1)] * m, constraints=[{"type": "eq", "fun": lambda l: l.sum() - 1}],
                   method="SLSQP", options={"ftol": 1e-15, "maxiter": 500})
    return res.x @ G


@pytest.mark.parametrize("seed", range(6))
def test_min_norm_element_matches_a_general_qp_solver(seed):
    rng = np.random.default_rng(seed)
    m, n = rng.integers(2, 12), rng.integers(2, 8)
    G = rng.standard_normal((m, n)) + rng.standard_normal(n)  # shifted: 0 often outside the hull
    g, lam = min_norm_element(G)
    assert np.all(lam >= 0) and math.isclose(lam.sum(), 1.0, rel_tol=1e-12)
    np.testing.assert_allclose(g, lam @ G, atol=1e-14)
    ref = _slsqp_min_norm(G)
    assert np.linalg.norm(g) <= np.linalg.norm(ref) + 1e-7
    np.testing.assert_allclose(g, ref, atol=1e-5)


def test_min_norm_element_closed_forms():
    # two points: the projection of 0 on the segment; 0 inside the hull: 0
    a, b = np.array([1.0, 1.0]), np.array([-1.0, 3.0])
    t = float(np.clip(-(a @ (b - a)) / ((b - a) @ (b - a)), 0, 1))
    np.testing.assert_allclose(min_norm_element(np.array([a, b]))[0], a + t * (b - a), atol=1e-14)
    assert np.linalg.norm(min_norm_element(np.array([[1.0, 0], [-1, 1], [-1, -1]]))[0]) < 1e-14
    np.testing.assert_allclose(min_norm_element(np.array([[2.0, -1.0]]))[0], [2.0, -1.0])


# --------------------------------------------------------------------------
# differences that know a kink
# --------------------------------------------------------------------------
H = np.finfo(np.float64).eps ** (1 / 3)


@pytest.mark.parametrize("d_over_h", [0.0, 1e-6, 0.3, 2 / 3, 1.0, 1.5, 1.9])
def test_a_kink_inside_the_stencil_is_flagged_wherever_it_sits(d_over_h):
    """|x_0 - c| with the kink c at distance d from x_0, inside the stencil (d < 2h): the slope
    test is blind at d = 0 and the curvature test at d = 2h/3; never both."""
    c = 0.3
    x = np.array([c - d_over_h * H, 0.7])
    g, kinked = checked_finite_difference_grad(lambda y: abs(y[0] - c) + y[1] ** 2, x)
    assert kinked[0] and not kinked[1]


@pytest.mark.parametrize("f", [lambda y: math.exp(3 * y[0]) + 50 * y[1] ** 2 + y[0] * y[1] ** 3,
                               lambda y: math.log1p(math.exp(20 * y[0])) + math.cos(5 * y[1])])
def test_smooth_functions_are_not_flagged_and_the_gradient_is_the_central_difference(f):
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal(2) * 0.5
        g, kinked = checked_finite_difference_grad(f, x)
        assert not kinked.any()
        np.testing.assert_array_equal(g, finite_difference_grad(f, x))


def test_a_kink_outside_the_stencil_is_not_flagged():
    x = np.array([0.3 - 3 * H])
    assert not checked_finite_difference_grad(lambda y: abs(y[0] - 0.3), x)[1].any()
    assert straddles_kink(*[abs(k * 1e-3) for k in (-2, -1, 0, 1, 2)], 1e-3)
    assert not straddles_kink(*[(k * 1e-3) ** 2 for k in (-2, -1, 0, 1, 2)], 1e-3)


# --------------------------------------------------------------------------
# gradient sampling
# --------------------------------------------------------------------------
A = np.array([[1.5, -0.5], [-0.5, 1.5]])


def _maxq(x):
    """max of two affine pieces + a quadratic + |x_1 - 0.3|: minimiser 0, value 0.3
    (along x_1 = x_2 = s < 0.3 it is 0.3 + 0.2 s^2; across, the two kinks are sharp)."""
    return max(A[0] @ x, A[1] @ x) + 0.1 * x @ x + abs(x[0] - 0.3)


def _maxq_grad(x):
    g = A[int(A[1] @ x > A[0] @ x)] + 0.2 * x
    g[0] += np.sign(x[0] - 0.3)
    return g, True


@pytest.mark.parametrize("seed", range(3))
def test_gradient_sampling_certifies_the_kinked_minimiser(seed):
    res = gradient_sampling(_maxq, _maxq_grad, np.array([1.0, 2.0]), rng=np.random.default_rng(seed), tol=1e-6)
    assert res.converged and res.cause is None and res.stationarity <= 1e-6
    # within the last radius (2e-6) of the minimiser, where the loss is 3-Lipschitz
    assert np.linalg.norm(res.x) < 1e-4 and 0.3 <= res.value < 0.3 + 3 * 2e-6
    # BFGS alone stalls there without a certificate
    bfgs = minimize(lambda x: (_maxq(x), _maxq_grad(x)[0]), np.array([1.0, 2.0]), jac=True, method="BFGS",
                    options={"gtol": 1e-6})
    assert np.max(np.abs(_maxq_grad(bfgs.x)[0])) > 1e-3


def test_gradient_sampling_with_differenced_gradients():
    def grad(x):
        g, kinked = checked_finite_difference_grad(_maxq, x)
        return g, not kinked.any()

    res = gradient_sampling(_maxq, grad, np.array([1.0, 2.0]), rng=np.random.default_rng(0), tol=1e-6,
                            radii=FD_RADII)
    assert res.converged and np.linalg.norm(res.x) < 1e-3


def test_gradient_sampling_causes():
    rng = np.random.default_rng(0)
    down = gradient_sampling(lambda x: -abs(x[0]) + abs(x[1]),
                             lambda x: (np.array([-np.sign(x[0]), np.sign(x[1])]), True),
                             np.array([1.0, 2.0]), rng=rng, tol=1e-6)
    assert down.cause == "unbounded direction" and not down.converged
    few = gradient_sampling(_maxq, _maxq_grad, np.array([1.0, 2.0]), rng=rng, tol=1e-6, maxiter=2)
    assert few.cause == "iteration limit" and not few.converged
    # a gradient that lies (it points uphill): no descent along it, at any radius
    liar = gradient_sampling(_maxq, lambda x: (-_maxq_grad(x)[0], True), np.array([1.0, 2.0]), rng=rng, tol=1e-6)
    assert liar.cause == "kink not resolved" and not liar.converged
    assert {down.cause, few.cause, liar.cause} == set(CAUSES)


def test_a_metric_does_not_change_the_certificate():
    res = gradient_sampling(_maxq, _maxq_grad, np.array([1.0, 2.0]), rng=np.random.default_rng(0), tol=1e-6,
                            metric=np.diag([0.5, 2.0]))
    assert res.converged and np.linalg.norm(res.x) < 1e-4


# --------------------------------------------------------------------------
# the nonsmooth phase of batch fits
# --------------------------------------------------------------------------
TAU_PLUS, T = 0.1, 0.5


def debiased(F):
    """Chuang et al.'s debiased contrastive loss, symmetric, its negative term clamped at
    (N - 1) e^{-1/t} (written here, not imported)."""
    def rows(F):
        n = F.shape[0] - 1
        pos = np.exp(np.diag(F))
        neg = np.exp(F).sum(axis=1) - pos
        Ng = np.maximum((-TAU_PLUS * n * pos + neg) / (1 - TAU_PLUS), n * math.exp(-1 / T))
        return np.mean(np.log1p(Ng / pos))
    return float(0.5 * (rows(F) + rows(F.T)))


def hinge(F, margin=1.0):
    """A symmetric margin (hinge) loss on the logits: max(0, margin - F_ii + F_ij)."""
    d = np.diag(F)
    return float(np.mean(np.maximum(0, margin - d[:, None] + F)) + np.mean(np.maximum(0, margin - d[None, :] + F))
                 + 0.05 * np.mean(F ** 2))


def _setup(seed=0, N=64):
    model = random_gaussian_model(np.random.default_rng([seed, 7919]), 2, 2, n_e=1, max_correlation=0.8,
                                  min_gap=0.25, max_condition=4.0)
    fam = LinearEncoders(model, "dot")
    x = population_minimizer(fam, np.random.default_rng(0))
    U, V = nested_sample(model, (seed, 0, 0), N)
    return fam, x, U, V


@pytest.mark.parametrize("loss", [debiased, hinge])
def test_kinked_losses_stall_in_bfgs_and_are_certified_after(loss):
    fam, x, U, V = _setup()
    user = UserLoss(loss)
    fit = fit_batch(fam, U, V, x, user)
    assert fit.converged and fit.cause is None and fit.nonsmooth is not None
    assert fit.nonsmooth.stationarity <= CLARKE_TOL
    # the certified point is a local minimum: no random nearby point is lower, beyond rounding
    rng = np.random.default_rng(1)
    fun = lambda y: loss(fam.logits(y, U, V)[0])  # noqa: E731
    assert all(fun(fit.x + 1e-3 * rng.standard_normal(fit.x.size)) >= fit.value - 1e-9 for _ in range(20))


def test_a_smooth_fit_is_returned_as_bfgs_left_it():
    fam, x, U, V = _setup()
    control = ClipControl(1.0)
    fit = fit_batch(fam, U, V, x, control)
    assert fit.converged and fit.nonsmooth is None and fit.cause is None


def test_paired_fits_carry_the_cause(monkeypatch):
    fam, x, U, V = _setup(N=128)
    recs, _ = paired_fits(fam, U, V, [64, 128], x, UserLoss(debiased), ClipControl(1.0),
                          rng=np.random.default_rng(0))
    assert all(isinstance(r, PairedFit) and r.converged and r.cause is None for r in recs)
    import numerics.batch_fit as bf
    monkeypatch.setattr(bf, "FIT_RADII", (1e-4,))
    monkeypatch.setattr(bf, "gradient_sampling", lambda *a, **k: _stub(a[2]))
    recs, _ = paired_fits(fam, U, V, [64], x, UserLoss(debiased, grad=None), ClipControl(1.0),
                          rng=np.random.default_rng(0))
    assert not recs[0].converged and recs[0].cause == "kink not resolved"


def _stub(x):
    from numerics.nonsmooth import NonsmoothResult
    return NonsmoothResult(np.asarray(x), 0.0, False, "kink not resolved", 1.0, 1e-6, 1, 1)


def test_an_iteration_limit_is_not_a_stall():
    """BFGS stopped by its iteration limit was still descending: no nonsmooth phase, and the
    cause says so (a smooth fit keeps its old meaning of not converged)."""
    fam, x, U, V = _setup()
    fit = fit_batch(fam, U, V, 2.0 * x + 0.5, UserLoss(debiased), maxiter=2)
    assert not fit.converged and fit.cause == "iteration limit" and fit.nonsmooth is None


def test_a_loss_unbounded_below_is_an_unbounded_direction():
    """-mean(diag F) decreases without bound as the encoders grow: BFGS runs off, and the
    fit says so instead of sampling gradients along the way."""
    fam, x, U, V = _setup()
    fit = fit_batch(fam, U, V, x, UserLoss(lambda F: float(-np.mean(np.diag(F)))))
    assert not fit.converged and fit.cause == "unbounded direction"
    assert np.linalg.norm(fit.x) > 10 * np.linalg.norm(x)
