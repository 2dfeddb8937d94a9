"""The foundation checks pass on correct numerics and fail on perturbed formulas."""
import numpy as np
import pytest

from numerics import gaussian
from numerics.models import default_models, random_gaussian_model
from proofs_checks.checks import gaussian_closed_form as cf
from proofs_checks.checks import optimization as opt


@pytest.fixture(scope="module")
def models():
    return default_models(seed=11, cases=8)


def _passed(cases):
    return len(cases) > 0 and all(c.passed for c in cases)


def test_closed_form_checks_pass(models):
    rng = np.random.default_rng(0)
    assert _passed(cf.check_theorem_3_2_closed_form(models, rng))
    assert _passed(cf.check_theorem_2_8_closed_form(models, rng))
    assert _passed(cf.check_g1_closed_form(models, rng))


def _scaled(f, factor):
    return lambda *a: factor * f(*a)


@pytest.mark.parametrize("perturb", [
    # the alignment term with a wrong sign or weight, the log-partition half missing
    lambda A, C, n: gaussian.population_clip_loss(A, C, n) + 1e-6 * np.sum(A),
    lambda A, C, n: -np.sum(A * C[:n, n:]) + 0.25 * np.trace(A @ C[n:, n:] @ A.T @ C[:n, :n]),
    lambda A, C, n: gaussian.population_clip_loss(A, C, n) * (1 + 1e-9),
])
def test_theorem_3_2_check_catches_wrong_clip_loss(models, perturb):
    cases = cf.check_theorem_3_2_closed_form(models, np.random.default_rng(0), clip_loss=perturb)
    assert not _passed(cases)


def test_theorem_3_2_check_catches_wrong_mutual_information(models):
    wrong = lambda C, n: 1.01 * gaussian.mutual_information(C, n)  # noqa: E731
    assert not _passed(cf.check_theorem_3_2_closed_form(models, np.random.default_rng(0),
                                                        mutual_information=wrong))


def test_theorem_3_2_check_catches_swapped_kl_direction(models):
    def reversed_kl(A, C, n):
        # KL(nu || mu) instead of KL(mu || nu) for the v|u term
        M_v, S_v, _, _ = gaussian.true_conditionals(C, n)
        N_v, T_v, _, _ = gaussian.bilinear_model_conditionals(A, C, n)
        C_uu = C[:n, :n]
        D = M_v - N_v
        L = np.linalg.cholesky(S_v)
        W = np.linalg.solve(L, D)
        rev = 0.5 * (np.trace(np.linalg.solve(S_v, T_v)) - T_v.shape[0]
                     + np.sum((W @ C_uu) * W) + np.linalg.slogdet(S_v)[1] - np.linalg.slogdet(T_v)[1])
        return rev, gaussian.expected_kl_terms(A, C, n)[1]

    assert not _passed(cf.check_theorem_3_2_closed_form(models, np.random.default_rng(0),
                                                        kl_terms=reversed_kl))


def test_theorem_2_8_check_catches_encoder_dependent_difference(models):
    wrong = lambda A, C, n: gaussian.conditional_loss(A, C, n) + 1e-8 * np.sum(A**2)  # noqa: E731
    assert not _passed(cf.check_theorem_2_8_closed_form(models, np.random.default_rng(0),
                                                        cond_loss=wrong))


def test_g1_closed_form_catches_wrong_minimizer(models):
    def untruncated(C, n, n_e):  # forgets the rank constraint
        return gaussian.lowrank_minimizer(C, n, min(n, C.shape[0] - n))

    def transposed_whitening(C, n, n_e):  # C_uu^{-1} instead of C_uu^{-1/2}
        C_uu = C[:n, :n]
        return np.linalg.solve(gaussian.sym_power(C_uu, 0.5), gaussian.lowrank_minimizer(C, n, n_e))

    rng = np.random.default_rng(0)
    assert not _passed(cf.check_g1_closed_form(models, rng, minimizer=untruncated))
    assert not _passed(cf.check_g1_closed_form(models, rng, minimizer=transposed_whitening))


def test_optimization_checks_pass_and_catch_a_wrong_prediction():
    rng = np.random.default_rng(2)
    ms = [random_gaussian_model(rng, 3, 2, n_e=1, min_gap=0.2),
          random_gaussian_model(rng, 2, 2, n_e=1, rank=2, tie=True),
          random_gaussian_model(rng, 2, 3, n_e=2)]
    assert _passed(opt.check_g1_optimization(ms, np.random.default_rng(0)))
    assert _passed(opt.check_theorem_2_8_optimization(ms, np.random.default_rng(0)))

    # a minimiser that uses sigma_2's direction instead of sigma_1's
    def wrong_direction(C, n, n_e):
        U, s, Vt = gaussian.canonical_directions(C, n)
        B = s[1] * np.outer(U[:, 1], Vt[1]) if n_e == 1 else (U * s) @ Vt
        C_uu, _, C_vv = gaussian.split_covariance(C, n)
        return gaussian.sym_power(C_uu, -0.5) @ B @ gaussian.sym_power(C_vv, -0.5)

    assert not _passed(opt.check_g1_optimization(ms[:1], np.random.default_rng(0),
                                                 minimizer=wrong_direction))
    # a predicted minimum off by a relative 1e-8
    wrong_min = lambda C, n, k: gaussian.lowrank_minimum(C, n, k) * (1 + 1e-8)  # noqa: E731
    assert not _passed(opt.check_g1_optimization(ms[:1], np.random.default_rng(0), minimum=wrong_min))
    # an L_cond whose minimiser moves (an encoder-dependent term)
    shifted = lambda A, C, n: gaussian.conditional_loss(A, C, n) + 0.05 * np.sum(A)  # noqa: E731
    assert not _passed(opt.check_theorem_2_8_optimization(ms[:1], np.random.default_rng(0),
                                                          cond_loss=shifted))


def test_tied_model_compares_values_only():
    rng = np.random.default_rng(9)
    m = random_gaussian_model(rng, 3, 3, n_e=1, rank=3, tie=True)
    cases = opt.check_g1_optimization([m], np.random.default_rng(1))
    assert [c.label.split()[-1] for c in cases] == ["value"]
    assert _passed(cases)
