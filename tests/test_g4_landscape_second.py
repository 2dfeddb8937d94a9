"""G4 in closed form and the strict-saddle Landscape: derivations, numerics, and checks
that fail on wrong formulas."""
import numpy as np
import pytest

from numerics import InvalidInputError
from numerics import l2_two_sided as lt
from numerics import landscape as ls
from numerics import variants
from numerics.models import default_models
from numerics.optimize import finite_difference_hessian
from proofs_checks.checks import g4_closed_form as g4
from proofs_checks.checks import landscape_second as lsc
from theory import l2_two_sided as tl2
from theory import landscape as tls


def _passed(cases):
    return len(cases) > 0 and all(c.passed for c in cases)


@pytest.fixture(scope="module")
def models():
    return default_models(0, 8)


def test_pair_loss_formula_matches_the_general_gaussian_kl():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b, s = rng.normal(), rng.normal(), rng.uniform(0, 0.99)
        kv, ku = variants.l2_kl_terms([[a]], [[b]], 1.0, np.array([[1, s], [s, 1.0]]), 1)
        assert abs(lt.two_sided_pair_loss(a, b, s) - 0.5 * (kv + ku)) < 1e-12 / (1 - s)


def test_phi_closed_form_and_asymptotics():
    s = np.linspace(0.0, 0.999, 500)
    w = lt.two_sided_pair_precision(s)
    phi = lt.two_sided_pair_minimum(s)
    assert np.allclose(phi, lt.two_sided_pair_loss(np.sqrt(w - 1), np.sqrt(w - 1), s), atol=1e-13)
    assert np.all(phi[1:] > 0) and phi[0] == 0
    assert abs(lt.two_sided_pair_minimum(1e-3) / (1e-6 / 6) - 1) < 2e-3
    assert abs(lt.two_sided_pair_minimum(1 - 1e-4) / (1e-4 / 4) - 1) < 1e-3
    assert abs(lt.two_sided_pair_minimum(0.99) - 0.0024) < 1e-4
    for p in tl2.g4_derivation_proofs():
        assert p.verdict.proved, p.claim


def test_g4_closed_form_passes(models):
    assert _passed(g4.check_g4_closed_form(models, np.random.default_rng(0)))


@pytest.mark.parametrize("wrong", [
    lambda C, n: lt.two_sided_minimum(C, n) * (1 + 1e-9),
    lambda C, n: lt.two_sided_minimum(C, n) + 1e-10,
])
def test_g4_closed_form_catches_a_wrong_minimum(models, wrong):
    assert not _passed(g4.check_g4_closed_form(models, np.random.default_rng(0), minimum=wrong,
                                               max_hessian_models=0, max_pair_models=0))


def test_g4_closed_form_catches_wrong_encoders_and_a_saddle(models):
    def off(C, n):  # a_i 0.1 % off the optimum: the loss rises above sum phi
        G_u, G_v = lt.two_sided_canonical_encoders(C, n)
        return 1.001 * G_u, 1.001 * G_v

    assert not _passed(g4.check_g4_closed_form(models, np.random.default_rng(0), encoders=off,
                                               max_hessian_models=0, max_pair_models=0))

    def saddle(C, n):  # the one-sided (G3) minimiser: not stationary for the two-sided loss
        return variants.l2_one_sided_minimizer(C, n, min(n, C.shape[0] - n), 1.0)

    cases = g4.check_g4_closed_form(models, np.random.default_rng(0), encoders=saddle,
                                    max_pair_models=0)
    assert any(not c.passed for c in cases if c.label.endswith("stationary"))


def test_g4_closed_form_catches_a_pair_minimum_off_the_diagonal(models):
    wrong = lambda s: lt.two_sided_pair_minimum(s) + 1e-6  # noqa: E731 (phi too high)
    cases = g4.check_g4_closed_form(models, np.random.default_rng(0), pair_minimum=wrong,
                                    max_hessian_models=0)
    assert any(not c.passed for c in cases if "observed" in c.label)


def test_two_sided_pair_fit_finds_phi_on_the_diagonal():
    """The pair search the check runs (numerics.variants.fit_two_sided_pair): BFGS over
    (a, b) ends at phi(s) (the closed form) with a = b; finite-difference gradients
    (eps^(2/3) on a loss of order 0.1) leave the value within ~1e-12 and the point within
    ~1e-5 of the minimiser (a flat valley: sqrt of the value error over the curvature)."""
    fit = variants.fit_two_sided_pair(0.8, np.random.default_rng(0))
    assert len(fit.start_values) == 3                                # starts=3 by default
    assert fit.value == pytest.approx(lt.two_sided_pair_minimum(0.8), abs=1e-10)
    a, b = abs(fit.G_u[0, 0]), abs(fit.G_v[0, 0])
    w = lt.two_sided_pair_precision(0.8)
    assert a == pytest.approx(b, abs=1e-4) and a == pytest.approx(np.sqrt(w - 1), abs=1e-4)
    # the divergences are the ones passed: twice the terms, twice the minimum
    doubled = lambda *args: tuple(2 * t for t in variants.l2_kl_terms(*args))  # noqa: E731
    fit = variants.fit_two_sided_pair(0.5, np.random.default_rng(0), starts=1, kl_terms=doubled)
    assert len(fit.start_values) == 1
    assert fit.value == pytest.approx(2 * lt.two_sided_pair_minimum(0.5), abs=1e-10)
    for bad in (1.0, -0.1, "0.5", [0.5]):
        with pytest.raises(InvalidInputError, match="^s="):
            variants.fit_two_sided_pair(bad)


# --------------------------------------------------------------------- landscape
def test_factor_hessian_matches_finite_differences(models):
    rng = np.random.default_rng(0)
    m = models[1]
    G_u, G_v = rng.normal(size=(m.n_e, m.n_u)), rng.normal(size=(m.n_e, m.n_v))
    H = ls.factor_hessian(G_u, G_v, m.cov, m.n_u)

    def grad(x):
        gu, gv = ls.factor_gradient(x[:G_u.size].reshape(G_u.shape), x[G_u.size:].reshape(G_v.shape),
                                    m.cov, m.n_u)
        return np.concatenate([gu.ravel(), gv.ravel()])

    Hfd, _ = finite_difference_hessian(grad, np.concatenate([G_u.ravel(), G_v.ravel()]), step=1e-6)
    assert np.max(np.abs(H - Hfd)) < 1e-6 * max(1.0, np.max(np.abs(H)))


def test_landscape_checks_pass(models):
    assert _passed(lsc.check_landscape_closed_form(models, np.random.default_rng(0)))
    assert _passed(lsc.check_landscape_symbolic(models, np.random.default_rng(0)))
    assert all(p.verdict.proved for p in tls.strict_saddle_proofs())


def test_landscape_closed_form_catches_a_wrong_spectrum(models):
    def no_swap_block(sigma, n_u, n_v, n_e, S):  # |sigma_i - sigma_j| instead of sigma_i - sigma_j
        return np.sort(np.abs(lsc.stationary_spectrum(sigma, n_u, n_v, n_e, S)))

    assert not _passed(lsc.check_landscape_closed_form(models, np.random.default_rng(0),
                                                       spectrum=no_swap_block))


def test_landscape_closed_form_catches_a_hessian_without_the_residual_coupling(models):
    def gauss_newton(G_u, G_v, C, n):  # the coupling 2 <R, dG_u^T dG_v> with R = 0 - C_uv
        H = ls.factor_hessian(G_u, G_v, C, n)
        Z = ls.factor_hessian(np.zeros_like(G_u), np.zeros_like(G_v), C, n)
        return H - Z  # at 0 the Hessian is the coupling through R = -C_uv alone

    assert not _passed(lsc.check_landscape_closed_form(models, np.random.default_rng(0),
                                                       hessian=gauss_newton))


def test_landscape_symbolic_fails_on_a_failed_proof():
    from theory.symbolic import Proof, Verdict

    broken = lambda: tls.strict_saddle_proofs() + (  # noqa: E731
        Proof("Landscape", "false", 2, Verdict("undecided", float("inf"))),)
    assert not _passed(lsc.check_landscape_symbolic([], np.random.default_rng(0), proofs=broken))
