"""A loss that overflows far from its minimiser (+inf from an exp of a large logit, NaN from
inf/inf): a fit backs off from such a trial point instead of stopping the verification,
while an overflow at the fit's start and -inf anywhere (a loss unbounded below) stay errors."""
import math

import numpy as np
import pytest
from scipy.special import logsumexp

from numerics import InvalidInputError
from numerics import LossOverflow
from numerics.batch_fit import fit_batch
from numerics.encoders import LinearEncoders, nested_sample, population_minimizer
from numerics.models import random_gaussian_model
from numerics.user_loss import UserLoss


def _clip(F):
    d = np.diag(F)
    return 0.5 * (np.mean(logsumexp(F, axis=1) - d) + np.mean(logsumexp(F, axis=0) - d))


@pytest.mark.parametrize("value, overflow", [(math.inf, True), (math.nan, True), (-math.inf, False)])
def test_minus_infinity_is_no_overflow(value, overflow):
    with pytest.raises(InvalidInputError, match=r"^loss=.*expected a finite value on every batch") as info:
        UserLoss(lambda F: value).value(np.eye(2), None, np.zeros(0))
    assert isinstance(info.value, LossOverflow) is overflow


def test_a_fit_backs_off_from_an_overflow_at_a_trial_point():
    """CLIP scaled by 200 (the same minimiser, a gradient 200 times larger) and +inf once a
    logit exceeds 12 times the largest at the start (the minimiser's are about twice the
    start's, far inside): BFGS's first trial step, of the gradient's length, lands out there.
    The fit must not raise, must have met the overflow, and must still reach the minimiser:
    converged, by the smooth certificate, inside the wall, below the start's value."""
    m = random_gaussian_model(np.random.default_rng(3), 2, 2, n_e=1, min_gap=0.1)
    fam = LinearEncoders(m, "dot")
    U, V = nested_sample(m, (3, 0, 0), 64)
    x0 = 0.5 * population_minimizer(fam)
    F0 = fam.logits(x0, U, V)[0]
    limit, overflows = 12 * float(np.max(np.abs(F0))), []

    def loss(F):
        if np.max(np.abs(F)) > limit:
            overflows.append(1)
            return math.inf
        return 200.0 * _clip(F)

    fit = fit_batch(fam, U, V, x0, UserLoss(loss))
    assert overflows, "the test's start did not reach the overflow: it tests nothing"
    assert fit.converged and fit.nonsmooth is None
    assert math.isfinite(fit.value) and fit.value < 200.0 * _clip(F0)
    assert np.max(np.abs(fam.logits(np.concatenate([fit.G_u.ravel(), fit.G_v.ravel()]), U, V)[0])) <= limit


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_an_overflow_at_the_start_of_a_fit_is_the_loss_s_error(bad):
    m = random_gaussian_model(np.random.default_rng(3), 2, 2, n_e=1, min_gap=0.1)
    fam = LinearEncoders(m, "dot")
    U, V = nested_sample(m, (3, 0, 0), 32)
    with pytest.raises(LossOverflow, match=r"^loss=.*expected a finite value on every batch"):
        fit_batch(fam, U, V, population_minimizer(fam), UserLoss(lambda F: bad))


def test_minus_infinity_in_a_fit_is_an_error():
    """A loss unbounded below is never backed off from: the first -inf stops the fit."""
    m = random_gaussian_model(np.random.default_rng(3), 2, 2, n_e=1, min_gap=0.1)
    fam = LinearEncoders(m, "dot")
    U, V = nested_sample(m, (3, 0, 0), 32)
    x0 = population_minimizer(fam)
    limit = 2 * float(np.max(np.abs(fam.logits(x0, U, V)[0])))

    def loss(F):
        return -math.inf if np.max(np.abs(F)) > limit else -float(np.mean(np.diag(F)))

    with pytest.raises(InvalidInputError, match=r"^loss=-inf") as info:
        fit_batch(fam, U, V, x0, UserLoss(loss))
    assert not isinstance(info.value, LossOverflow)
