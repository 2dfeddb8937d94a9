"""Invalid input gets one exception type whose message names the argument (table-driven)."""
import numpy as np
import pytest

from numerics import InvalidInputError, gaussian, montecarlo
from numerics.models import GaussianModel, random_gaussian_model, random_orthogonal, random_spd

GOOD = random_gaussian_model(np.random.default_rng(0), 2, 3, n_e=1).cov
A23 = np.ones((2, 3))
NOT_SYM = GOOD.copy()
NOT_SYM[0, 1] += 0.1
NOT_PD = GOOD.copy()
NOT_PD[0, 0] = -1.0
WITH_NAN = GOOD.copy()
WITH_NAN[1, 1] = np.nan
SINGULAR = np.array([[0.03, 0.03, 0.03], [0.03, 1.0, 0.03], [0.03, 0.03, 0.03]])  # Cholesky passes
SINGULAR_BLOCK = np.block([[np.eye(1), np.zeros((1, 3))], [np.zeros((3, 1)), SINGULAR]])

INVALID = [
    # (call, argument named in the message, fragment of what was expected)
    (lambda: gaussian.canonical_correlations(np.ones((2, 3)), 1), "cov", "square"),
    (lambda: gaussian.canonical_correlations(NOT_SYM, 2), "cov", "symmetric"),
    (lambda: gaussian.canonical_correlations(NOT_PD, 2), "cov", "positive definite"),
    (lambda: gaussian.mutual_information(WITH_NAN, 2), "cov", "finite"),
    (lambda: gaussian.mutual_information([[1.0]], 1), "cov", "size >= 2"),
    (lambda: gaussian.mutual_information("abc", 1), "cov", "real numbers"),
    (lambda: gaussian.mutual_information(GOOD, 0), "n_u", "1..4"),
    (lambda: gaussian.mutual_information(GOOD, 5), "n_u", "1..4"),
    (lambda: gaussian.mutual_information(GOOD, 2.0), "n_u", "integer"),
    (lambda: gaussian.lowrank_minimizer(GOOD, 2, 0), "n_e", "1..2"),
    (lambda: gaussian.lowrank_minimizer(GOOD, 2, 3), "n_e", "1..2"),
    (lambda: gaussian.lowrank_minimum(GOOD, 2, True), "n_e", "integer"),
    (lambda: gaussian.population_clip_loss(np.ones((3, 2)), GOOD, 2), "A", "(2, 3)"),
    (lambda: gaussian.expected_kl_terms(np.full((2, 3), np.inf), GOOD, 2), "A", "finite"),
    (lambda: gaussian.conditional_loss(np.ones(6), GOOD, 2), "A", "(2, 3)"),
    (lambda: gaussian.gaussian_kl([0.0], [[1.0]], [0.0, 1.0], [[1.0]]), "m2", "length 1"),
    (lambda: gaussian.gaussian_kl([0.0], [[1.0]], [0.0], [[0.0]]), "S2", "positive definite"),
    (lambda: gaussian.joint_covariance(np.eye(2), np.eye(2), [0.5, 0.5, 0.5]), "sigma", "at most 2"),
    (lambda: GaussianModel(cov=GOOD, n_u=2, n_e=5), "n_e", "1..2"),
    # singular, yet Cholesky succeeds (pivot 2.6e-9): its square root would be NaN
    (lambda: gaussian.joint_covariance([[1.0]], SINGULAR, 0), "C_vv", "positive definite"),
    (lambda: GaussianModel(cov=SINGULAR_BLOCK, n_u=1, n_e=1), "cov", "positive definite"),
    (lambda: montecarlo.expected_kl_terms_mc(SINGULAR_BLOCK, 1, montecarlo.linear_encoder(np.ones((1, 1))),
                                             montecarlo.linear_encoder(np.ones((1, 3))), 1.0, "dot", 10,
                                             np.random.default_rng(0)), "cov", "condition number"),
    (lambda: montecarlo.population_clip_loss_mc(montecarlo.gaussian_sampler(np.eye(3), 1),
                                                montecarlo.linear_encoder(np.ones((1, 1))),
                                                montecarlo.linear_encoder(np.ones((1, 1))), 1.0, "dot",
                                                10, np.random.default_rng(0)), "encode_v", "ValueError"),
    # KL(N(0, 1e300) || N(0, 1e-300)) ~ 1e600 and a mean gap of 2e300 overflow float64
    (lambda: gaussian.gaussian_kl([0.0], [[1e300]], [0.0], [[1e-300]]), "S2", "overflows"),
    (lambda: gaussian.gaussian_kl([1e300], [[1.0]], [-1e300], [[1.0]]), "m2", "finite"),
    (lambda: gaussian.gaussian_kl_batch([[0.0]], [[[1e300]]], [[0.0]], [[[1e-300]]]), "S2", "overflows"),
    (lambda: gaussian.gaussian_kl_batch([[1e300]], [[[1.0]]], [[-1e300]], [[[1.0]]]), "m2", "finite"),
]


@pytest.mark.parametrize("call, arg, expected", INVALID)
def test_invalid_calls_raise_named_errors(call, arg, expected):
    with pytest.raises(InvalidInputError) as info:
        call()
    msg = str(info.value)
    assert msg.startswith(f"{arg}="), msg
    assert expected in msg, msg
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("cond, smax", [(1e6, 0.9), (1e6, 1 - 1e-6), (1e9, 0.9), (1e12, 0.9),
                                        (1e6, 1 - 1e-9), (1e9, 1 - 1e-9), (1e12, 1 - 1e-9)])
def test_ill_conditioned_models_work_to_documented_accuracy_or_fail_clearly(cond, smax):
    # Documented accuracy (numerics._validation.check_conditioning): relative error
    # <= n * eps * kappa(C) * 32 on the closed-form identities; otherwise a clear error.
    rng = np.random.default_rng(1)
    cov = gaussian.joint_covariance(random_spd(rng, 3, max_condition=cond),
                                    random_spd(rng, 2, max_condition=cond), [smax, 0.3],
                                    random_orthogonal(rng, 3), random_orthogonal(rng, 2))
    try:
        A = gaussian.lowrank_minimizer(cov, 3, 1)
        lc = gaussian.population_clip_loss(A, cov, 3)
        kv, ku = gaussian.expected_kl_terms(A, cov, 3)
        I = gaussian.mutual_information(cov, 3)
    except InvalidInputError as exc:
        assert str(exc).startswith("cov=")
        return
    kappa = np.linalg.cond(cov)
    scale = max(abs(lc), abs(kv), abs(ku), abs(I), 1.0)
    bound = 32 * 5 * np.finfo(float).eps * kappa * scale
    assert np.all(np.isfinite([lc, kv, ku, I]))
    assert abs(lc - (0.5 * (kv + ku) - I)) <= bound
    assert abs(lc + 0.5 * smax**2) <= bound  # Proposition G1's minimum, sigma_1 = smax
