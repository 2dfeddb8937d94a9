"""Tests of theory.symbolic and proofs_checks.checks.symbolic: the proofs are proofs,
wrong claims are caught, and the bridge to numerics fails on a perturbed formula."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from numerics import gaussian
from numerics.models import random_gaussian_model
from proofs_checks.checks import symbolic as checks
from proofs_checks.registry import select_checks
from theory import gaussian_sym as gs
from theory import symbolic as S


# --------------------------------------------------------------------------
# the proofs
# --------------------------------------------------------------------------
@pytest.mark.parametrize("statement", ["Theorem 3.2", "Theorem 2.8", "Proposition G1"])
def test_every_identity_is_proved_not_sampled(statement):
    proofs = S.all_proofs()[statement]
    assert len(proofs) >= 4
    for pr in proofs:
        assert pr.verdict.zero, pr.label
        assert pr.verdict.method in ("simplification", "factorisation"), pr.label
        assert pr.verdict.error == 0.0


def test_both_dimensions_are_covered():
    for statement, proofs in S.all_proofs().items():
        dims = {pr.n for pr in proofs}
        assert {1, 2} <= dims, statement


def test_standard_normal_mgf_is_the_gaussian_integral():
    t = sp.Symbol("t", real=True)
    assert sp.simplify(S.standard_normal_mgf() - sp.exp(t**2 / 2)) == 0


def test_expectation_uses_mgf_moments():
    st = S.setting(2)
    u1, u2, v1, v2 = st.x
    assert S.expectation(u1**2, st) == st.C_uu[0, 0]
    assert S.expectation(u2 * v1, st) == st.C_uv[1, 0]
    assert S.expectation(3 * v1 * v2 + u1 + 5, st) == 3 * st.C_vv[0, 1] + 5
    with pytest.raises(ValueError, match="degree 3"):
        S.expectation(u1**2 * v1, st)


# --------------------------------------------------------------------------
# wrong claims are detected
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2])
def test_dropped_half_in_theorem_3_2_is_nonzero(n):
    d = S.derivations(n)
    v = S.prove_zero(d["L_clip"] - ((d["KL_v"] + d["KL_u"]) - d["I"]), sampler=S.setting(n).sampler)
    assert not v.zero and v.error > 1e-3


@pytest.mark.parametrize("n", [1, 2])
def test_wrong_entropy_factor_in_theorem_2_8_is_nonzero(n):
    d = S.derivations(n)
    v = S.prove_zero(d["L_cond"] - d["L_clip"] - (d["h_u"] + d["h_v"]), sampler=S.setting(n).sampler)
    assert not v.zero and v.error > 1e-3


def test_wrong_closed_form_of_kl_is_caught():
    # KL term without the factor 1/2 in front of the mean term.
    st, d = S.setting(2), S.derivations(2)
    wrong = gs.kl_vu_closed_form + sp.Rational(1, 2) * sp.Trace(
        (gs.C_vv * gs.A.T - gs.C_vu * gs.C_uu.I).T * gs.C_vv.I
        * (gs.C_vv * gs.A.T - gs.C_vu * gs.C_uu.I) * gs.C_uu)
    residual = d["KL_v"] - gs.instantiate(wrong, cuu=st.C_uu, cuv=st.C_uv, cvv=st.C_vv, a=st.A)
    v = S.prove_zero(residual, sampler=st.sampler)
    assert not v.zero and v.error > 0


def test_wrong_minimiser_is_caught():
    st = S.setting(2)
    wrong = st.C_uu.inv() * st.C_uv  # C_vv^{-1} missing
    v = S.prove_zero(S.full_rank_minimizer(2) - wrong, sampler=st.sampler)
    assert not v.zero and v.error > 0


def test_prove_zero_fallback_is_labelled():
    x = sp.Symbol("x", real=True)
    y, z = sp.symbols("y z", positive=True)
    # Log coefficients that are not constants: simplification does not decide,
    # the exact evaluation at rational points does, and the verdict says which.
    v = S.prove_zero(x * sp.log(y) + x * sp.log(z) - x * sp.log(y * z))
    assert v.zero and v.method == "rational-points" and v.error == 0.0
    bad = S.prove_zero(x * sp.log(y) - x * sp.log(2 * y))
    assert not bad.zero and bad.method == "rational-points" and bad.error > 0


def test_positive_by_factorisation():
    a, b = sp.symbols("a b", positive=True)
    c = sp.Symbol("c", real=True)
    det = a * b - c**2
    assert S.positive_by_factorisation(3 * a * det**2, [a, det]).zero
    assert not S.positive_by_factorisation(c * a, [a, det]).zero


# --------------------------------------------------------------------------
# lambdified expressions and the bridge to numerics
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2])
def test_lambdified_matches_exact_rational_evaluation(n):
    # Dyadic rationals are exact in float64, so the only rounding left is that of
    # the final result (40-digit evaluation): a few ulps.
    st, d = S.setting(n), S.derivations(n)
    rng = np.random.default_rng(3)
    m = 2 * n
    L = sp.Matrix(m, m, lambda i, j: sp.Rational(int(rng.integers(1 if i == j else -6, 7)), 4)
                  if i >= j else 0)
    C_rat = L * L.T
    point = {s_: val for s_, val in zip(st.C, C_rat) if isinstance(s_, sp.Symbol)}
    cov = np.array(C_rat, dtype=float)
    A_rat = sp.Matrix(n, n, lambda i, j: sp.Rational(int(rng.integers(-9, 10)), 4))
    A = np.array(A_rat, dtype=float)
    point.update(zip(st.A_symbols, A_rat))
    eps = np.finfo(float).eps
    for name in ("L_clip", "KL_v", "KL_u", "I", "L_cond", "h_u", "h_v"):
        exact = float(d[name].xreplace(point).evalf(40))
        assert abs(S.lambdified(name, n)(A, cov) - exact) <= 2 * eps * abs(exact), name
    assert np.array_equal(S.lambdified("A_star", n)(cov),
                          np.array(S.full_rank_minimizer(n).xreplace(point).evalf(40), dtype=float))


def _models(seed):
    rng = np.random.default_rng(seed)
    models = [random_gaussian_model(rng, n, n, n_e=k, max_condition=30.0)
              for n in (1, 2) for k in range(1, n + 1)]
    return models, rng


def _all_pass(cases):
    return len(cases) > 0 and all(c.passed for c in cases)


def test_bridge_checks_pass_on_correct_numerics():
    models, rng = _models(0)
    assert _all_pass(checks.check_theorem_3_2_bridge(models, rng))
    assert _all_pass(checks.check_theorem_2_8_bridge(models, rng))
    assert _all_pass(checks.check_g1_bridge(models, rng))


def test_bridge_fails_on_perturbed_clip_loss():
    models, rng = _models(1)
    bad = lambda A, cov, n_u: gaussian.population_clip_loss(A, cov, n_u) * (1 + 1e-9)  # noqa: E731
    assert not _all_pass(checks.check_theorem_3_2_bridge(models, rng, clip_loss=bad))


def test_bridge_fails_on_kl_without_half():
    models, rng = _models(2)

    def bad(A, cov, n_u):
        kv, ku = gaussian.expected_kl_terms(A, cov, n_u)
        return 2 * kv, ku
    assert not _all_pass(checks.check_theorem_3_2_bridge(models, rng, kl_terms=bad))


def test_bridge_fails_on_perturbed_mutual_information_and_entropy():
    models, rng = _models(3)
    bad_I = lambda cov, n_u: gaussian.mutual_information(cov, n_u) + 1e-10  # noqa: E731
    assert not _all_pass(checks.check_theorem_3_2_bridge(models, rng, mutual_information=bad_I))
    bad_h = lambda S_: gaussian.gaussian_entropy(S_) * (1 + 1e-10)  # noqa: E731
    assert not _all_pass(checks.check_theorem_2_8_bridge(models, rng, entropy=bad_h))


def test_bridge_fails_on_perturbed_conditional_loss():
    models, rng = _models(4)
    bad = lambda A, cov, n_u: gaussian.conditional_loss(A, cov, n_u) + 1e-9  # noqa: E731
    assert not _all_pass(checks.check_theorem_2_8_bridge(models, rng, cond_loss=bad))


def test_g1_bridge_fails_on_second_singular_pair():
    # A stationary but not minimal rank-one matrix: built from sigma_2 instead of sigma_1.
    models, rng = _models(5)

    def bad(cov, n_u, n_e):
        if n_e == n_u:
            return gaussian.lowrank_minimizer(cov, n_u, n_e)
        C_uu, _, C_vv = gaussian.split_covariance(cov, n_u)
        U, s, Vt = gaussian.canonical_directions(cov, n_u)
        B = s[-1] * np.outer(U[:, -1], Vt[-1])
        return gaussian._sym_power(C_uu, -0.5) @ B @ gaussian._sym_power(C_vv, -0.5)
    assert not _all_pass(checks.check_g1_bridge(models, rng, minimizer=bad))


def test_g1_bridge_fails_on_perturbed_minimum():
    models, rng = _models(6)
    bad = lambda cov, n_u, n_e: gaussian.lowrank_minimum(cov, n_u, n_e) * (1 + 1e-9)  # noqa: E731
    assert not _all_pass(checks.check_g1_bridge(models, rng, minimum=bad))


def test_registered_symbolic_checks():
    found = {c.name: c for c in select_checks(["symbolic"])}
    expected = {"thm3.2-symbolic": "Theorem 3.2", "thm2.8-symbolic": "Theorem 2.8",
                "g1-symbolic": "Proposition G1", "thm3.2-symbolic-bridge": "Theorem 3.2",
                "thm2.8-symbolic-bridge": "Theorem 2.8", "g1-symbolic-bridge": "Proposition G1"}
    for name, statement in expected.items():
        assert found[name].statement == statement and found[name].method == "symbolic"
    cases = checks.proof_cases("Theorem 3.2")
    assert all(c.tolerance == 0.0 and c.error == 0.0 and c.detail["proved"] for c in cases)


def test_bridge_models_selects_small_square_models():
    rng = np.random.default_rng(7)
    given = [random_gaussian_model(rng, 1, 1), random_gaussian_model(rng, 2, 3),
             random_gaussian_model(rng, 2, 2)]
    out = checks.bridge_models(given, rng, extra=1)
    assert out[:2] == [given[0], given[2]]
    assert all(m.n_u == m.n_v and m.n_u in (1, 2) for m in out)
    assert sum(m.label.startswith("drawn") for m in out) == 3
