"""N1 and N2 by quadrature and by control-variate Monte Carlo: agreement with plain
sampling, and each check catching wrong formulas."""
import numpy as np
import pytest

from numerics import finite_sample as fs
from numerics import gaussian, montecarlo
from numerics.gaussian import batch_loss_bias
from numerics.models import default_models, small_bilinear
from proofs_checks.checks import finite_sample_second as fss


def _passed(cases):
    return len(cases) > 0 and all(c.passed for c in cases)


@pytest.fixture(scope="module")
def models():
    return default_models(0, 6)


def test_quadrature_matches_monte_carlo_at_small_batches():
    rng = np.random.default_rng(3)
    a, rho = 0.4, 0.6
    q = fs.scalar_expected_batch_loss(fs.bilinear_scalar_logit(a), rho, [1, 2, 3, 5])
    cov = np.array([[1.0, rho], [rho, 1.0]])
    sample = montecarlo.gaussian_sampler(cov, 1)
    enc_u, enc_v = montecarlo.linear_encoder([[a]]), montecarlo.linear_encoder([[1.0]])
    for N, value in zip(q.sizes[1:], q.values[1:]):
        est = montecarlo.expected_batch_loss_mc(sample, enc_u, enc_v, 1.0, "dot", int(N), 40000, rng)
        assert abs(est.estimate - value) < 5 * est.standard_error
    assert abs(q.values[0]) < 1e-13  # L_1 = 0


def test_quadrature_rejects_an_asymmetric_logit():
    with pytest.raises(ValueError):
        fs.scalar_expected_batch_loss(lambda u, v: u + 0 * v, 0.5, [2])


def test_influence_has_mean_L_clip_plus_one():
    rng = np.random.default_rng(1)
    m = default_models(2, 1)[0]
    A = small_bilinear(m, rng)
    u, v = montecarlo.gaussian_sampler(m.cov, m.n_u)(rng, 200000)
    psi = fs.bilinear_batch_influence(A, m.cov, m.n_u)(u, v)
    target = gaussian.population_clip_loss(A, m.cov, m.n_u) + 1.0
    assert abs(psi.mean() - target) < 5 * psi.std() / np.sqrt(psi.size)


def test_control_variate_reduces_the_standard_error():
    m = default_models(0, 1)[0]
    rng = np.random.default_rng(0)
    A = small_bilinear(m, rng)
    est = fs.expected_batch_loss_bias_cv(A, m.cov, m.n_u, 16, 1024, rng)
    assert est.standard_error < 0.5 * est.detail["plain_se"]


def test_richardson_recovers_a_polynomial_limit():
    N = 2.0 ** np.arange(3, 8)
    limit, _, _ = fs.richardson_limit(N, 0.7 + 0.3 / N - 2.0 / N**2, orders=2)
    assert abs(limit - 0.7) < 1e-13


# ----------------------------------------------------------------- n1-quadrature
def test_n1_quadrature_passes(models):
    assert _passed(fss.check_n1_quadrature(models, np.random.default_rng(0)))


@pytest.mark.parametrize("wrong", [
    lambda A, C, n: -batch_loss_bias(A, C, n),                 # wrong sign of b
    lambda A, C, n: batch_loss_bias(A, C, n) * (1 + 1e-4),     # b off by 1e-4 relative
    lambda A, C, n: batch_loss_bias(A, C, n) + 0.5,            # the -1/2 of b_row dropped
])
def test_n1_quadrature_catches_wrong_bias(models, wrong):
    assert not _passed(fss.check_n1_quadrature(models, np.random.default_rng(0), bias=wrong))


def test_n1_quadrature_catches_wrong_clip_loss(models):
    wrong = lambda A, C, n: gaussian.population_clip_loss(A, C, n) + 1e-7  # noqa: E731
    assert not _passed(fss.check_n1_quadrature(models, np.random.default_rng(0), clip_loss=wrong))


# -------------------------------------------------------------- n1-monte-carlo-cv
def test_n1_control_variate_passes_and_catches_a_wrong_sign(models):
    assert _passed(fss.check_n1_control_variate(models, np.random.default_rng(0)))
    wrong = lambda A, C, n: -batch_loss_bias(A, C, n)  # noqa: E731
    cases = fss.check_n1_control_variate(models, np.random.default_rng(0), bias=wrong)
    # every model, not only one, sees the wrong sign
    failing = {c.label.rsplit(" N=", 1)[0] for c in cases if not c.passed}
    assert len(failing) == 3


# ----------------------------------------------------------------- n2-quadrature
def test_n2_quadrature_passes(models):
    assert _passed(fss.check_n2_quadrature(models, np.random.default_rng(0)))


@pytest.mark.parametrize("factor", [0.999, 1.001])
def test_n2_quadrature_pins_mutual_information_from_both_sides(models, factor):
    # an understated I breaks the bound, an overstated one the tightness
    wrong = lambda C, n: factor * gaussian.mutual_information(C, n)  # noqa: E731
    assert not _passed(fss.check_n2_quadrature(models, np.random.default_rng(0),
                                               mutual_information=wrong))


def test_n2_quadrature_catches_a_low_expected_loss(models):
    # the power of the one-sided bound: the smallest gap (the PMI critic at N = 4096)
    cases = fss.check_n2_quadrature(models, np.random.default_rng(0))
    power = min(c.detail["min_gap"] for c in cases if "min_gap" in c.detail)

    def low(logit, rho, sizes):
        q = fs.scalar_expected_batch_loss(logit, rho, sizes)
        return fs.QuadratureEstimate(q.sizes, q.values - 1.01 * power, q.error)

    assert not _passed(fss.check_n2_quadrature(models, np.random.default_rng(0), expected_loss=low))


def test_n2_quadrature_catches_a_wrong_chi_square(models):
    wrong = lambda C, n: 0.25 * fs.pmi_bias_coefficient(C, n)  # noqa: E731
    assert not _passed(fss.check_n2_quadrature(models, np.random.default_rng(0), chi2_half=wrong))
