"""Tests of theory.symbolic and proofs_checks.checks.symbolic: the proofs are proofs,
wrong claims are caught, evidence is not counted as a proof, and the bridge to
numerics fails on a perturbed formula."""
from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from numerics import gaussian
from numerics.models import random_gaussian_model
from proofs_checks.checks import symbolic as checks
from proofs_checks.registry import CheckResult, select_checks
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
        assert pr.verdict.proved, pr.label
        assert pr.verdict.kind in (S.IDENTITY_PROVED, S.POSITIVITY_PROVED), pr.label
        assert pr.verdict.error == 0.0


def test_positivity_proofs_are_labelled_as_positivity_not_identity():
    kinds = {pr.label: pr.verdict.kind for pr in S.proofs_for("Proposition G1")}
    positive = [label for label in kinds if "positive definite" in label]
    assert len(positive) == 2
    assert all(kinds[label] == S.POSITIVITY_PROVED for label in positive)
    assert all(kind == S.IDENTITY_PROVED for label, kind in kinds.items() if label not in positive)


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
    assert v.kind == S.NONZERO_AT_POINT and not v.proved and v.error > 1e-3


@pytest.mark.parametrize("n", [1, 2])
def test_wrong_entropy_factor_in_theorem_2_8_is_nonzero(n):
    d = S.derivations(n)
    v = S.prove_zero(d["L_cond"] - d["L_clip"] - (d["h_u"] + d["h_v"]), sampler=S.setting(n).sampler)
    assert v.kind == S.NONZERO_AT_POINT and not v.proved and v.error > 1e-3


def test_wrong_closed_form_of_kl_is_caught():
    # KL term without the factor 1/2 in front of the mean term.
    st, d = S.setting(2), S.derivations(2)
    wrong = gs.kl_vu_closed_form + sp.Rational(1, 2) * sp.Trace(
        (gs.C_vv * gs.A.T - gs.C_vu * gs.C_uu.I).T * gs.C_vv.I
        * (gs.C_vv * gs.A.T - gs.C_vu * gs.C_uu.I) * gs.C_uu)
    residual = d["KL_v"] - gs.instantiate(wrong, cuu=st.C_uu, cuv=st.C_uv, cvv=st.C_vv, a=st.A)
    v = S.prove_zero(residual, sampler=st.sampler)
    assert v.kind == S.NONZERO_AT_POINT and v.error > 0


def test_wrong_minimiser_is_caught():
    st = S.setting(2)
    wrong = st.C_uu.inv() * st.C_uv  # C_vv^{-1} missing
    v = S.prove_zero(S.full_rank_minimizer(2) - wrong, sampler=st.sampler)
    assert v.kind == S.NONZERO_AT_POINT and v.error > 0


def test_prove_zero_fallback_is_labelled():
    x = sp.Symbol("x", real=True)
    y, z = sp.symbols("y z", positive=True)
    # Log coefficients that are not constants: simplification does not decide,
    # the exact evaluation at rational points does, and the verdict says which.
    v = S.prove_zero(x * sp.log(y) + x * sp.log(z) - x * sp.log(y * z))
    assert v.kind == S.RATIONAL_POINTS_ONLY and v.evidence_only and not v.proved
    assert v.error == 0.0
    bad = S.prove_zero(x * sp.log(y) - x * sp.log(2 * y))
    assert bad.kind == S.NONZERO_AT_POINT and not bad.evidence_only and bad.error > 0


def test_prove_zero_proof_is_labelled_identity():
    x, y = sp.symbols("x y", real=True)
    v = S.prove_zero([(x + y) ** 2 - x**2 - 2 * x * y - y**2, sp.log(4) - 2 * sp.log(2)])
    assert v.kind == S.IDENTITY_PROVED and v.proved and not v.evidence_only and v.error == 0.0


def test_positive_by_factorisation():
    a, b = sp.symbols("a b", positive=True)
    c = sp.Symbol("c", real=True)
    det = a * b - c**2
    v = S.positive_by_factorisation(3 * a * det**2, [a, det])
    assert v.kind == S.POSITIVITY_PROVED and v.proved and v.error == 0.0
    assert S.positive_by_factorisation([a, 2 * det], [a, det]).kind == S.POSITIVITY_PROVED
    # Not shown positive (c may be negative): undecided, not refuted, not proved.
    for expr in (c * a, [a, c * a]):
        v = S.positive_by_factorisation(expr, [a, det])
        assert v.kind == S.UNDECIDED and not v.proved and v.error == math.inf


def test_verdict_kinds_are_validated_and_documented():
    assert set(S.VERDICT_KINDS) == {S.IDENTITY_PROVED, S.POSITIVITY_PROVED, S.RATIONAL_POINTS_ONLY,
                                    S.NONZERO_AT_POINT, S.UNDECIDED}
    assert set(S.PROOF_KINDS) == {S.IDENTITY_PROVED, S.POSITIVITY_PROVED}
    with pytest.raises(ValueError, match="kind='positive'"):
        S.Verdict("positive", 0.0)
    for kind in S.VERDICT_KINDS:
        assert f'"{kind}"' in S.Verdict.__doc__, kind


# --------------------------------------------------------------------------
# proof cases: only a proof passes
# --------------------------------------------------------------------------
def _fake_proofs(*verdicts):
    return lambda statement: tuple(S.Proof(statement, f"claim {k}", 2, v)
                                   for k, v in enumerate(verdicts))


def test_proof_case_passes_only_on_a_proof():
    for kind in S.PROOF_KINDS:
        case = checks.proof_case(S.Proof("Theorem 3.2", "c", 1, S.Verdict(kind, 0.0)))
        assert case.passed and case.error == 0.0 and case.detail["proved"]
        assert case.detail["verdict"] == kind and "reason" not in case.detail


def test_rational_points_evidence_fails_the_symbolic_check():
    proved = S.Verdict(S.IDENTITY_PROVED, 0.0)
    evidence = S.Verdict(S.RATIONAL_POINTS_ONLY, 0.0)
    cases = checks.proof_cases("Theorem 3.2", proofs_for=_fake_proofs(proved, evidence))
    assert [c.passed for c in cases] == [True, False]
    bad = cases[1]
    assert bad.error == math.inf and bad.tolerance == 0.0
    assert bad.detail["verdict"] == S.RATIONAL_POINTS_ONLY and not bad.detail["proved"]
    assert "not a proof" in bad.detail["reason"]
    result = CheckResult("thm3.2-symbolic", "Theorem 3.2", "symbolic", "", cases)
    assert not result.passed and result.worst is bad


def test_refuted_and_undecided_fail_the_symbolic_check():
    cases = checks.proof_cases("Proposition G1", proofs_for=_fake_proofs(
        S.Verdict(S.NONZERO_AT_POINT, 0.25), S.Verdict(S.UNDECIDED, math.inf)))
    assert not any(c.passed for c in cases)
    assert cases[0].error == 0.25 and "refuted" in cases[0].detail["reason"]
    assert cases[1].error == math.inf and "undecided" in cases[1].detail["reason"]


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
        assert abs(checks.lambdified(name, n)(A, cov) - exact) <= 2 * eps * abs(exact), name
    assert np.array_equal(checks.lambdified("A_star", n)(cov),
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
        return gaussian.sym_power(C_uu, -0.5) @ B @ gaussian.sym_power(C_vv, -0.5)
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
