"""Lemma 2.1 by symbolic proofs: the proofs hold, the bridge catches wrong numerics."""
import numpy as np
import pytest

from numerics import kernels
from proofs_checks.checks import lemma_2_1_symbolic as l21
from theory import finite_sample_sym as fss
from theory.symbolic import Proof, Verdict


def _passed(cases):
    return len(cases) > 0 and all(c.passed for c in cases)


def test_every_proof_holds_and_check_passes():
    for N in fss.BATCH_SIZES:
        assert all(p.verdict.proved for p in fss.lemma_2_1_proofs(N))
    assert _passed(l21.check_lemma_2_1_symbolic([], np.random.default_rng(0)))


def test_lambdified_loss_matches_the_direct_formula():
    loss, grad = fss.lambdified_loss(2)
    F = [[0.3, -1.2], [0.7, 2.0]]
    assert abs(loss(F) - kernels.clip_loss_from_logits(np.array(F))) < 1e-15


@pytest.mark.parametrize("wrong", [
    # one direction only (the row cross-entropy), a missing 1/2, a shifted value
    lambda F: float(-np.trace(F) / len(F) + np.mean(np.log(np.exp(F).sum(axis=1)))),
    lambda F: kernels.clip_loss_from_logits(F) * (1 + 1e-11),
    lambda F: kernels.clip_loss_from_logits(F) + 1e-11,
])
def test_bridge_catches_wrong_loss(wrong):
    cases = l21.check_lemma_2_1_symbolic([], np.random.default_rng(0), loss_from_logits=wrong)
    assert not _passed(cases)


def test_bridge_catches_wrong_gradient():
    def row_softmax_only(F):  # forgets the column softmax Q
        P = np.exp(F - np.log(np.exp(F).sum(axis=1, keepdims=True)))
        return P / len(F) - np.eye(len(F)) / len(F)

    cases = l21.check_lemma_2_1_symbolic([], np.random.default_rng(0), grad_from_logits=row_softmax_only)
    assert not _passed(cases)


def test_a_failed_proof_fails_the_check():
    def broken(N):
        return fss.lemma_2_1_proofs(N) + (Proof("Lemma 2.1", "false", None,
                                                 Verdict("undecided", float("inf"))),)

    assert not _passed(l21.check_lemma_2_1_symbolic([], np.random.default_rng(0), proofs=broken))


def test_normal_form_refutes_a_false_identity():
    F = fss.logit_matrix(2)
    import sympy as sp

    # L_N(2F) != L_N(F): the normal form must not call it zero
    wrong = fss.finite_sample_loss(2 * F) - fss.finite_sample_loss(F)
    assert not fss._zero(wrong).proved
    wrong = fss.finite_sample_loss(F + sp.ones(2, 2)) - fss.finite_sample_loss(F) - sp.Rational(1, 10**30)
    assert not fss._zero(wrong).proved
