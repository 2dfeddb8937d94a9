"""numerics.optimize: the factor minimiser finds Proposition G1's optimum without the SVD."""
import warnings

import numpy as np
import pytest

from numerics import InvalidInputError, gaussian
from numerics.models import random_gaussian_model
from numerics.optimize import finite_difference_grad, minimize_over_factors


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
