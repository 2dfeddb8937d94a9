"""Scalars in a parametrisation the verifier does not know: the ``reparametrised_scale``
role of numerics.user_loss (found by its identity, solved numerically), the quotient
comparison of numerics.fit_statistics.common_factor, and the verdicts they make."""
import math

import numpy as np
import pytest
from scipy.special import expit, logsumexp

from numerics.fit_statistics import common_factor
from numerics.user_loss import UserLoss
from proofs_checks import verify_variant
from proofs_checks.verify import default_variant_models


def _clip(F):
    """Symmetric InfoNCE written out by hand (independent of numerics.infonce)."""
    d = np.diag(F)
    return float(np.mean(logsumexp(F, axis=1) - d) + np.mean(logsumexp(F, axis=0) - d)) / 2


def _softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


# (loss of F with one scalar p, its logit multiplier m(p) written independently, p0)
PARAMETRISATIONS = {
    "softplus temperature": (lambda F, p: _clip(F / (_softplus(p) + 0.01)),
                             lambda p: 1 / (_softplus(p) + 0.01), -1.0),
    "sigmoid scale": (lambda F, p: _clip(20 * expit(p) * F), lambda p: 20 * expit(p), 0.3),
    "squared scale": (lambda F, p: _clip(p * p * F), lambda p: p * p, 1.5),
    "exp(2p) scale": (lambda F, p: _clip(math.exp(2 * p) * F), lambda p: math.exp(2 * p), 0.2),
}


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("name", sorted(PARAMETRISATIONS))
def test_a_reparametrised_scale_is_found_and_solved(name, similarity):
    loss, m, p0 = PARAMETRISATIONS[name]
    u = UserLoss(loss, params={"p": p0})
    assert u.detect_roles(similarity, np.random.default_rng(1)) == {"p": "reparametrised_scale"}
    assert u.unidentified_scale == ["p"]
    for p in (p0 - 0.7, p0 + 0.4, p0 + 2.0):
        # the ratio m(p)/m(p0) is identified (Brent to 1e-13 in log c: ~1e-12 relative)
        assert u.multiplier(np.array([p])) == pytest.approx(m(p) / m(p0), rel=1e-9)
    assert u.multiplier(u.theta0) == 1.0


def _smoothed(F, eps):
    """Label smoothing eps of the symmetric InfoNCE (eps moves weight off the diagonal)."""
    N = F.shape[0]
    W = (1 - eps) * np.eye(N) + eps / N
    return float(np.mean(logsumexp(F, axis=1) - np.sum(W * F, axis=1))
                 + np.mean(logsumexp(F, axis=0) - np.sum(W * F, axis=0))) / 2


NOT_A_SCALE = {
    "label smoothing": (lambda F, p: _smoothed(F, p), 0.1),
    "margin on the positives": (lambda F, p: _clip(F - p * np.eye(F.shape[0])), 0.5),
    "a penalty on the scalar": (lambda F, p: _clip(F) + p * p, 0.7),
    "a power of the logits": (lambda F, p: _clip(np.sign(F) * np.abs(F) ** p), 1.2),
}


@pytest.mark.parametrize("name", sorted(NOT_A_SCALE))
def test_a_scalar_that_is_not_a_scale_gets_no_role(name):
    loss, p0 = NOT_A_SCALE[name]
    u = UserLoss(loss, params={"p": p0})
    assert u.detect_roles("dot", np.random.default_rng(2)) == {}
    assert u.unidentified_scale == [] and u.multiplier(np.array([p0 + 0.5])) == 1.0


def test_a_fixed_scalar_needs_no_role():
    loss, _, p0 = PARAMETRISATIONS["softplus temperature"]
    u = UserLoss(loss, params={"p": p0}, learn=[])
    assert u.detect_roles("dot", np.random.default_rng(1)) == {}


def test_common_factor_solves_a_linear_and_a_nonlinear_quotient():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(6), rng.standard_normal(6)
    # A minimum located by comparing values is known to about sqrt(eps) ~ 1.5e-8 relative
    # (the objective is flat to second order there): tolerance 1e-6.
    # linear: argmin |t a - b|^2 = <a, b>/<a, a> (taken positive here)
    b = b if a @ b > 0 else -b
    assert common_factor(lambda t: t * a, b) == pytest.approx((a @ b) / (a @ a), rel=1e-6)
    # non-linear: S(t) = tanh(t a) reaches tanh(2.5 a) exactly at t = 2.5
    assert common_factor(lambda t: np.tanh(t * a), np.tanh(2.5 * a)) == pytest.approx(2.5, rel=1e-6)


SMALL = dict(sizes=(32, 64), replicates=2, budget=0)


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_clip_with_a_softplus_temperature_is_confirmed(similarity):
    """CLIP with a learned temperature softplus(raw) + 0.01 has CLIP's minimisers: on the same
    batches its fits are the control's up to the scale, so the paired differences are the
    optimisers' error (upper bound far below the margin)."""
    loss, _, _ = PARAMETRISATIONS["softplus temperature"]
    models = default_variant_models(0, 1, similarity)
    res = verify_variant(loss, claim="same-minimizers-as-clip", params={"p": 0.5}, similarity=similarity, models=models, seed=0, **SMALL)
    assert res.verdict == "confirmed", res.summary()
    assert res.interface["roles"] == {"p": "reparametrised_scale"}
    assert res.models[0].scale_factor is not None and res.models[0].scale_factor > 0
    assert res.models[0].estimate.upper < 0.1 * res.models[0].margin


def test_a_non_proportional_change_under_a_softplus_temperature_is_not_hidden():
    """CLIP plus a penalty 0.5 mean(f_ii^2) on the effective logits f = F / (softplus(p) + 0.01)
    (examples/variants/positive_penalty.py, with a learned temperature) shrinks CLIP's
    minimiser in a way no common factor undoes (its two canonical pairs shrink by different
    factors).  On the quotient the residual difference is about 10-14 % of the target (72 %
    without the learned temperature, most of it a common factor), so the smallest data do not
    decide (N ~ 500 would: 99 s by finite differences, too slow here); what is asserted is that
    the quotient does not hide it: never confirmed, estimate above the margin.  (On a model
    that keeps one pair every change of the pair's correlation is a common factor.)"""
    def penalised_softplus(F, p):
        f = F / (_softplus(p) + 0.01)
        return _clip(f) + 0.5 * float(np.mean(np.diag(f) ** 2))

    models = default_variant_models(1, 3, "dot")[2:]  # two canonical pairs kept (n_e = 2)
    res = verify_variant(penalised_softplus, claim="same-minimizers-as-clip", params={"p": 0.5}, models=models,
                         seed=1, sizes=(64, 128), replicates=8, budget=0)
    assert res.interface["roles"] == {"p": "reparametrised_scale"}
    m = res.models[0]
    assert res.verdict != "confirmed" and m.estimate.delta > m.margin, res.summary()
