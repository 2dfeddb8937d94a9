"""numerics.gradient_check: a gradient that is not the value's (stop-gradients, a wrong user
grad) is caught against central differences, a kink is not mistaken for one, and the training
field's stable zero is found and its stability judged, against independent computations."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from numerics.batch_fit import ValueOnly, batch_objective, check_batch_gradient, fit_batch, fit_field  # noqa: E402
from numerics.encoders import LinearEncoders, nested_sample, population_minimizer  # noqa: E402
from numerics.gradient_check import (GRADCHECK_RTOL, check_gradient, field_jacobian,  # noqa: E402
                                     stable_zero)
from numerics.models import random_gaussian_model  # noqa: E402
from numerics.user_loss import UserLoss  # noqa: E402


def _f(x):
    return float(np.sum(np.exp(0.3 * x)) + x[0] * x[1] ** 2)


def _g(x):
    g = 0.3 * np.exp(0.3 * x)
    g[0] += x[1] ** 2
    g[1] += 2 * x[0] * x[1]
    return g


def test_a_true_gradient_passes_and_a_slightly_wrong_one_fails():
    rng = np.random.default_rng(0)
    pts = [rng.standard_normal(3) for _ in range(2)]
    ok = check_gradient(_f, _g, pts, np.random.default_rng(1))
    assert ok.passed and ok.worst < 1e-7 and ok.directions == 6
    # a 1e-3 relative error is 10 x the relative tolerance: caught, and measured
    bad = check_gradient(_f, lambda x: 1.001 * _g(x), pts, np.random.default_rng(1))
    assert not bad.passed and bad.worst == pytest.approx(1e-3, rel=1e-2)
    assert 9 * GRADCHECK_RTOL <= bad.worst  # 0.001/1.001 relative to the larger
    assert "largest mismatch" in bad.describe()


def test_a_kink_is_not_taken_for_a_wrong_gradient():
    # |x_0| at x_0 = 0: every direction straddles the kink; the point is moved off it
    f = lambda x: abs(x[0]) + x[1] ** 2  # noqa: E731
    g = lambda x: np.array([np.sign(x[0]) or 1.0, 2 * x[1]])  # noqa: E731
    res = check_gradient(f, g, [np.array([0.0, 0.5])], np.random.default_rng(0))
    assert res.passed and res.kinked >= 3 and res.directions == 3


def _dclw_one(a, b, sigma=0.5):
    """lightly's DCLW computation (its weights under detach()), without the row
    normalisation, temperature 1: written here from lightly/loss/dcl_loss.py."""
    N = a.shape[0]
    eye = torch.eye(N, dtype=torch.bool)
    s00 = (a @ a.T).masked_fill(eye, float("-inf"))
    s01 = a @ b.T
    w = 2 - N * torch.softmax((a.detach() * b.detach()).sum(dim=1) / sigma, dim=0)
    neg = torch.cat([s00, s01.masked_fill(eye, float("-inf"))], dim=1)
    return (-torch.diagonal(s01) * w + torch.logsumexp(neg, dim=1)).mean()


def dclw_detached(za, zb):
    return 0.5 * (_dclw_one(za, zb) + _dclw_one(zb, za))


def dclw_attached(za, zb):
    """The same value with the weights differentiated: its autograd gradient is the value's."""
    def one(a, b, sigma=0.5):
        N = a.shape[0]
        eye = torch.eye(N, dtype=torch.bool)
        s00 = (a @ a.T).masked_fill(eye, float("-inf"))
        s01 = a @ b.T
        w = 2 - N * torch.softmax((a * b).sum(dim=1) / sigma, dim=0)
        neg = torch.cat([s00, s01.masked_fill(eye, float("-inf"))], dim=1)
        return (-torch.diagonal(s01) * w + torch.logsumexp(neg, dim=1)).mean()
    return 0.5 * (one(za, zb) + one(zb, za))


def _setup(N=64, n_e=1):
    model = random_gaussian_model(np.random.default_rng([0, 7919]), 2, 2, n_e=n_e, max_correlation=0.8,
                                  min_gap=0.25, max_condition=4.0)
    fam = LinearEncoders(model, "dot")
    return fam, population_minimizer(fam, np.random.default_rng(0)), *nested_sample(model, (0, 0, 0), N)


def test_a_detached_weight_is_caught_and_the_attached_one_passes():
    fam, x, U, V = _setup()
    det = check_batch_gradient(fam, U, V, [x], UserLoss(dclw_detached, inputs="embeddings", backend="torch"),
                               np.random.default_rng(0))
    att = check_batch_gradient(fam, U, V, [x], UserLoss(dclw_attached, inputs="embeddings", backend="torch"),
                               np.random.default_rng(0))
    assert not det.passed and det.worst > 0.01
    assert att.passed and att.worst < 1e-6


def test_value_only_withholds_the_gradient_and_fits_the_value():
    fam, x, U, V = _setup()
    user = UserLoss(dclw_detached, inputs="embeddings", backend="torch")
    wrapped = ValueOnly(user)
    assert not wrapped.has_gradient() and wrapped.inputs == "embeddings" and wrapped.size == 0
    fit = fit_batch(fam, U, V, x, wrapped)
    # the same fit under the attached loss (its gradient is the value's): the same minimiser
    ref = fit_batch(fam, U, V, fit.x, UserLoss(dclw_attached, inputs="embeddings", backend="torch"))
    assert fit.converged and ref.converged
    np.testing.assert_allclose(fam.invariant(fit.x), fam.invariant(ref.x), atol=1e-5)


# --------------------------------------------------------------------------
# the training field's stable zero
# --------------------------------------------------------------------------
def test_stable_zero_of_a_rotating_linear_field():
    # phi(x) = M (x - x*): eigenvalues 1 +- 2i (stable, not a gradient field)
    M = np.array([[1.0, 2.0], [-2.0, 1.0]])
    xs = np.array([0.3, -0.7])
    res = stable_zero(lambda x: M @ (x - xs), np.zeros(2), gtol=1e-10)
    assert res.converged and res.cause is None
    np.testing.assert_allclose(res.x, xs, atol=1e-9)
    np.testing.assert_allclose(sorted(res.eigenvalues, key=lambda z: z.imag), [1 - 2j, 1 + 2j], atol=1e-6)


def test_an_unstable_zero_is_left_for_a_stable_one():
    # phi = (x^3 - x, y): zeros at x in {-1, 0, 1}; x = 0 repels training
    phi = lambda z: np.array([z[0] ** 3 - z[0], z[1]])  # noqa: E731
    res = stable_zero(phi, np.array([0.0, 0.4]), gtol=1e-10)
    assert res.converged and abs(abs(res.x[0]) - 1) < 1e-9 and abs(res.x[1]) < 1e-9
    np.testing.assert_allclose(np.sort(res.eigenvalues.real), [1.0, 2.0], atol=1e-6)


def test_a_repelling_field_runs_off():
    res = stable_zero(lambda z: -z + np.array([0.1, 0.0]), np.array([1.0, 1.0]), gtol=1e-10)
    assert not res.converged and res.cause in ("unbounded direction", "unstable zero")


def test_field_jacobian_is_not_symmetrised():
    M = np.array([[1.0, 2.0], [0.0, 3.0]])
    np.testing.assert_allclose(field_jacobian(lambda x: M @ x, np.ones(2)), M, atol=1e-8)


def test_fit_field_reaches_a_zero_of_the_detached_field():
    fam, x, U, V = _setup()
    user = UserLoss(dclw_detached, inputs="embeddings", backend="torch")
    fit = fit_field(fam, U, V, x, user)
    assert fit.converged and fit.cause is None
    # independently: torch's own gradient of the loss at the fitted embeddings is ~0 after
    # the pull-back, and the value's gradient is not (the detached weights)
    fun = batch_objective(fam, U, V, user)
    assert np.max(np.abs(fun(fit.x)[1])) <= 1e-6
    value_grad = np.array([(fun.value(fit.x + 1e-6 * e) - fun.value(fit.x - 1e-6 * e)) / 2e-6
                           for e in np.eye(fit.x.size)])
    assert np.max(np.abs(value_grad)) > 1e-2
    # training itself (plain gradient steps with the field) ends at the same point
    y = x.copy()
    for _ in range(3000):
        y = y - 0.05 * fun(y)[1]
    np.testing.assert_allclose(fam.invariant(y), fam.invariant(fit.x), atol=1e-6)
    assert math.isfinite(fit.value)
