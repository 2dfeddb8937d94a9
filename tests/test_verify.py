"""Tests of proofs_checks/verify.py, the variant verifier, end to end (its command line:
tests/test_verify_cli.py)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from numerics import InvalidInputError
from proofs_checks import verify_variant
from proofs_checks.verify import default_variant_models

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "variants"


def _load(name, func):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, func)


ONE_DIRECTIONAL = _load("one_directional", "one_directional_infonce")
DECOUPLED = _load("decoupled", "decoupled_contrastive")
REWEIGHTED = _load("reweighted_alignment", "reweighted_alignment")
PENALTY = _load("positive_penalty", "positive_penalty")
CLIP = _load("clip", "clip_loss")


def _penalty_grad(F):
    """dL/dF of the penalty example (so the every-seed test runs on exact gradients)."""
    from numerics.infonce import infonce_grad

    G = infonce_grad(F, 0.5)
    N = F.shape[0]
    G[np.diag_indices(N)] += 2 * 0.5 * np.diag(F) / N
    return G


def _kappa(kappa):
    """The alignment term weighted (1 + kappa): its bilinear population minimiser is
    (1 + kappa) A*, so delta = kappa |K_ne| (a wrong variant with a known gap)."""
    from numerics.infonce import infonce_grad

    def loss(F):
        return float(CLIP(F) - kappa * np.mean(np.diag(F)))

    def grad(F):
        return infonce_grad(F) - kappa * np.eye(F.shape[0]) / F.shape[0]

    loss.grad = grad
    loss.__name__ = f"alignment_x{1 + kappa:g}"
    return loss


ONE = dict(claim="same-minimizers-as-clip", n_models=1)
# First round only, at sizes where a verdict still has the power it needs (noted per test):
# the default schedule (64, 128, 256) x 8 replicates and 60 s of adaptive rounds is kept
# for the acceptance tests.
SMALL = dict(sizes=(64, 128), replicates=8, budget=0)


@pytest.mark.acceptance
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss", [ONE_DIRECTIONAL, DECOUPLED], ids=["one-directional", "decoupled"])
def test_correct_variants_confirmed(loss, seed):
    """Default settings: a correct variant needs them (one-directional InfoNCE is confirmed
    only after an adaptive round on seeds 0 and 1, with its upper bound at 0.75 of the
    margin; with (64, 128) x 8 it is inconclusive on every seed)."""
    res = verify_variant(loss, seed=seed, **ONE)
    assert res.verdict == "confirmed" and res.passed and res.exit_code == 0, res.summary()
    m = res.models[0]
    assert m.estimate.upper <= m.margin == pytest.approx(0.05 * m.target_norm)


@pytest.mark.acceptance
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reweighted_alignment_refuted(seed):
    """Default settings: the alignment counted twice has a finite-batch loss that runs off
    at small N (its fits diverge at N <= 128, drifting), so it is refuted only at N = 256,
    on seed 2 after adaptive rounds (replicates set aside)."""
    res = verify_variant(REWEIGHTED, seed=seed, **ONE)
    assert res.verdict == "refuted" and not res.passed and res.exit_code == 1, res.summary()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss,grad", [(PENALTY, _penalty_grad), (_kappa(0.1), None)],
                         ids=["positive-penalty", "kappa-0.1"])
def test_wrong_variants_refuted(loss, grad, seed):
    """(64, 128) x 8: refuted on seeds 0-3 as at the default sizes, the lower bound 0.66-0.72
    of delta for the penalty and 0.36-0.61 for kappa-0.1 (a 10 % change)."""
    res = verify_variant(loss, seed=seed, grad=grad, **ONE, **SMALL)
    assert res.verdict == "refuted" and not res.passed and res.exit_code == 1, res.summary()


def test_kappa_family_delta_is_estimated():
    """The weighted-alignment family has delta = kappa |K_ne| exactly: the interval covers it.
    (Default settings: a coverage check is not to be run on wider intervals; both models are
    refuted in the first round, so no adaptive round is spent.)"""
    res = verify_variant(_kappa(0.2), seed=3, n_models=2, claim="same-minimizers-as-clip")
    for m in res.models:
        assert m.estimate.lower <= 0.2 * m.target_norm <= m.estimate.upper + 1e-12, res.summary()


def test_clip_itself_has_zero_paired_spread():
    """The control against itself: every paired difference vanishes (to the optimiser's
    accuracy), so CLIP is confirmed with a degenerate interval."""
    res = verify_variant(CLIP, grad=lambda F: __import__("numerics").infonce.infonce_grad(F),
                         seed=0, replicates=2, sizes=(64, 128), budget=0, **ONE)
    m = res.models[0]
    assert res.verdict == "confirmed"
    assert m.estimate.upper < 1e-4 * m.target_norm


def test_inconclusive_when_the_data_cannot_tell():
    res = verify_variant(ONE_DIRECTIONAL, seed=0, replicates=2, sizes=(16, 32), budget=0, **ONE)
    assert res.verdict == "inconclusive" and res.exit_code == 3, res.summary()
    assert res.models[0].n_to_decide is not None and res.models[0].n_to_decide > 32
    assert "INCONCLUSIVE" in res.summary() and "would likely decide" in res.summary()


def test_adaptive_rounds_run_only_while_undecided():
    # decided (refuted, lower bound 0.45 of delta) in round 1 with the default budget to spend
    decided = verify_variant(_kappa(0.5), seed=0, sizes=(64, 128), replicates=8, **ONE)
    assert decided.verdict == "refuted" and decided.rounds == 1
    # undecided: rounds of doubled replicates, until the (nominal) budget runs out; a round
    # from 2 replicates at (32, 64) costs 0.017 s nominal, so 0.1 s pays for a few
    undecided = verify_variant(ONE_DIRECTIONAL, seed=0, replicates=2, sizes=(32, 64), budget=0.1, **ONE)
    assert undecided.verdict == "inconclusive"
    assert undecided.rounds > 1
    assert undecided.models[0].differences.shape[0] == 2 ** undecided.rounds
    assert any("would overrun the budget of 0.1 s" in n for n in undecided.notes)


def test_drifting_loss_is_flagged_and_never_confirmed():
    """(64, 128) x 4: the drift is flagged as at the default sizes; a correct variant on
    the same data is not flagged (the flag tells the two apart)."""
    loss = _load("sigmoid_fixed_bias", "sigmoid_fixed_bias")
    kw = dict(seed=0, sizes=(64, 128), replicates=4, budget=0, **ONE)
    res = verify_variant(loss, **kw)
    assert res.verdict != "confirmed"
    assert res.models[0].drifting
    assert any("no N-independent limit" in n for n in res.notes)
    assert res.to_dict()["models"][0]["drifting"] is True
    control = verify_variant(ONE_DIRECTIONAL, **kw)
    assert not control.models[0].drifting
    assert not any("no N-independent limit" in n for n in control.notes)


def test_finite_difference_path_refutes_penalty():
    res = verify_variant(PENALTY, seed=3, sizes=(64, 128), replicates=4, budget=0, **ONE)
    assert res.gradient == "finite differences"
    assert res.verdict == "refuted"


def test_finite_differences_agree_with_user_gradient():
    """The same fits with and without the gradient: the same differences up to optimiser accuracy."""
    kw = dict(seed=4, sizes=(64, 128), replicates=2, budget=0, **ONE)
    a = verify_variant(ONE_DIRECTIONAL, **kw)
    b = verify_variant(lambda F: ONE_DIRECTIONAL(F), **kw)
    assert a.gradient == "user" and b.gradient == "finite differences"
    np.testing.assert_allclose(a.models[0].differences, b.models[0].differences, atol=1e-4)


def test_conditional_claims_bilinear():
    """G2: CLIP's bilinear minimiser matches projected conditional means, never covariances.

    The means are confirmed for the decoupled loss (CLIP's minimiser) at (64, 128, 256) x 4,
    its upper bound 0.22 of the margin on this seed; the covariances are refuted at
    (64, 128) x 4 (lower bound 0.64 of delta), CLIP's own gap being the projected whitened
    covariance, sqrt(2 sum_k<=n_e sigma_k^4) for both directions."""
    res = verify_variant(DECOUPLED, claim="matches-conditional-means", seed=1, n_models=1,
                         sizes=(64, 128, 256), replicates=4, budget=0)
    assert res.verdict == "confirmed", res.summary()
    res = verify_variant(ONE_DIRECTIONAL, claim="matches-conditionals", seed=0, n_models=1,
                         sizes=(64, 128), replicates=4, budget=0)
    assert res.verdict == "refuted", res.summary()
    assert any("this claim can only hold when K = 0" in n for n in res.notes)
    for m in res.models:
        s = np.asarray(m.sigma)[: m.n_e]
        assert m.control_gap == pytest.approx(np.sqrt(2 * np.sum(s**4)), rel=1e-10)


def test_absolute_margin_is_used_and_printed():
    # (32, 64) x 4: the upper bound is 0.17, a third of the margin
    res = verify_variant(_kappa(0.1), seed=0, margin=0.5, sizes=(32, 64), replicates=4, budget=0, **ONE)
    assert res.models[0].margin == 0.5 and "0.5 (absolute)" in res.summary()
    assert res.verdict == "confirmed"  # a 10 % change is within an absolute margin of 0.5


def test_result_object_summary_json_and_report(tmp_path):
    # a confirmed result: the decoupled loss at (64, 128, 256) x 4, upper bound 0.59 of the margin
    res = verify_variant(DECOUPLED, seed=5, name="decoupled-loss", sizes=(64, 128, 256), replicates=4,
                         budget=0, **ONE)
    text = str(res)
    assert "decoupled-loss" in text and "CONFIRMED" in text and res.summary() == text
    doc = json.loads(json.dumps(res.to_dict()))
    assert doc["verdict"] == "confirmed" and doc["passed"] is True
    model = doc["models"][0]
    lo, hi = model["delta_ci"]
    assert lo <= model["delta"] <= hi and model["relative_delta_ci"][1] <= model["relative_margin"]
    assert len(res.figures()) == 1
    path = res.write_report(tmp_path / "rep")
    assert path.read_text().startswith("# Variant verification")
    assert (tmp_path / "rep" / "model_0.png").stat().st_size > 1000
    assert json.loads((tmp_path / "rep" / "result.json").read_text())["verdict"] == "confirmed"


def test_progress_lines():
    lines = []
    verify_variant(ONE_DIRECTIONAL, sizes=(32, 64), replicates=2, budget=0, progress=lines.append,
                   **ONE)
    assert len(lines) == 1 and "round 1, model 1/1" in lines[0]


def test_default_models_have_a_healthy_gap():
    for m in default_variant_models(0, 3):
        assert m.eigengap >= 0.25 - 1e-12


@pytest.mark.parametrize("kwargs", [
    dict(claim="same-minimisers"),
    dict(claim="same-minimizers-as-clip", similarity="angular"),
    dict(claim="matches-conditionals", direction="v->u"),
    dict(claim="same-minimizers-as-clip", sizes=(256, 128)),
    dict(claim="same-minimizers-as-clip", sizes=(128,)),
    dict(claim="same-minimizers-as-clip", replicates=1),
    dict(claim="same-minimizers-as-clip", margin=-0.1),
    dict(claim="same-minimizers-as-clip", margin=float("nan")),
    dict(claim="same-minimizers-as-clip", budget=-1),
    dict(claim="same-minimizers-as-clip", workers=0),
    dict(claim="same-minimizers-as-clip", scheduler=5),
    dict(claim="same-minimizers-as-clip", seed="zero"),
    dict(claim="same-minimizers-as-clip", grad=3),
    dict(claim="same-minimizers-as-clip", models=["not a model"]),
    dict(claim="same-minimizers-as-clip", models=5),
    dict(claim="same-minimizers-as-clip", models=[]),
    dict(claim="same-minimizers-as-clip", n_models="3"),
    dict(claim="same-minimizers-as-clip", n_models=0),
    dict(claim="same-minimizers-as-clip", n_models=1.5),
    dict(claim="same-minimizers-as-clip", progress=3),
])
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(InvalidInputError):
        verify_variant(CLIP, **kwargs)


def test_bad_loss_raises():
    with pytest.raises(InvalidInputError):
        verify_variant("not callable", claim="same-minimizers-as-clip")
    with pytest.raises(InvalidInputError, match="loss raised"):
        verify_variant(lambda F: 1 / 0, claim="same-minimizers-as-clip", sizes=(32, 64))
    with pytest.raises(InvalidInputError):
        verify_variant(lambda F: "x", claim="same-minimizers-as-clip", sizes=(32, 64))


TINY = dict(claim="same-minimizers-as-clip", n_models=1, sizes=(16, 32), replicates=2, budget=0)


@pytest.mark.parametrize("loss", [lambda F: 0.0, lambda F: 3.5, lambda F: float(F.shape[0])],
                         ids=["zero", "constant", "depends-on-N-only"])
def test_loss_independent_of_logits_is_rejected(loss):
    # A flat loss leaves BFGS where it starts; it must not be confirmed for
    # sitting at the control's fit.
    with pytest.raises(InvalidInputError, match="depends on the logit matrix"):
        verify_variant(loss, **TINY)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_loss_is_rejected_naming_loss(value):
    with pytest.raises(InvalidInputError, match=r"^loss=.*finite"):
        verify_variant(lambda F: value, **TINY)


def test_loss_non_finite_off_the_start_is_rejected():
    # Finite where it starts, NaN once the logits grow: still an error, not a verdict.
    loss = lambda F: float(CLIP(F)) if np.max(np.abs(F)) < 1.0 else float("nan")  # noqa: E731
    with pytest.raises(InvalidInputError, match=r"^loss="):
        verify_variant(loss, **TINY)


def test_non_finite_grad_is_rejected():
    with pytest.raises(InvalidInputError, match="^grad="):
        verify_variant(CLIP, grad=lambda F: np.full(F.shape, np.nan), **TINY)


# --------------------------------------------------------------------------
# same-subspace-as-clip
# --------------------------------------------------------------------------
def test_subspace_claim_is_free_of_scale():
    """The alignment weighted x1.5 has minimiser 1.5 A*: a different scale (refuted for
    same-minimizers) but CLIP's subspace (confirmed for same-subspace).  At (64, 128, 256)
    x 4 the lower bound is 0.32 of delta, and the upper bound 0.69 of the angle margin."""
    loss = _kappa(0.5)
    kw = dict(seed=1, n_models=1, sizes=(64, 128, 256), replicates=4, budget=0)
    assert verify_variant(loss, claim="same-minimizers-as-clip", **kw).verdict == "refuted"
    res = verify_variant(loss, claim="same-subspace-as-clip", **kw)
    assert res.verdict == "confirmed", res.summary()
    assert "principal angles <= 0.1 rad" in res.summary()


# --------------------------------------------------------------------------
# the notes on replicates set aside (hand-built verdicts)
# --------------------------------------------------------------------------
def _set_aside_note(rows, set_aside, verdict, usable):
    """The note on a verdict whose differences have ``rows`` replicates, ``set_aside`` set aside."""
    from numerics.user_loss import ClipControl
    from proofs_checks.verify import _model_notes

    from .test_verify_result import model_verdict

    v = model_verdict(verdict, R=rows, set_aside=set_aside, n_to_decide=None, usable=usable)
    (note,) = _model_notes("same-minimizers-as-clip", [], [v], ClipControl(1.0))
    return note


def test_set_aside_note_when_too_many_are_set_aside():
    # 3 of 5 set aside: 2 kept < ceil(5 / 2), so ModelRun.result keeps all 5 rows and gives no verdict
    note = _set_aside_note(rows=5, set_aside=3, verdict="inconclusive", usable=False)
    assert "3 of 5 replicates set aside" in note and note.endswith("; too many to decide")


def test_set_aside_note_when_few_are_set_aside():
    # 1 of 4 set aside: the verdict is made from the 3 kept
    note = _set_aside_note(rows=3, set_aside=1, verdict="refuted", usable=True)
    assert "1 of 4 replicates set aside" in note and "too many" not in note


def test_set_aside_note_when_a_verdict_was_still_made():
    # 3 of 8 set aside, 5 kept >= ceil(8 / 2): a verdict is made from them.  (The version of
    # _model_notes first read here reported '3 of 5 ...; too many to decide', inferring the
    # model's usability from 2 * set_aside > kept instead of reading it.)
    note = _set_aside_note(rows=5, set_aside=3, verdict="refuted", usable=True)
    assert "3 of 8 replicates set aside" in note and "too many" not in note


def test_a_slow_spread_is_named_with_its_exponent_and_the_batch_that_would_decide():
    from numerics.user_loss import ClipControl
    from proofs_checks.verify import _model_notes

    from .test_verify_result import model_verdict

    rng = np.random.default_rng(3)
    sizes = (64, 128, 256)
    slow = np.stack([N ** -0.1 * rng.standard_normal((32, 4)) for N in sizes], axis=1)
    usual = np.stack([N ** -0.5 * rng.standard_normal((32, 4)) for N in sizes], axis=1)
    v = model_verdict("inconclusive", sizes=sizes, differences=slow, n_to_decide=None)
    assert v.slow_spread and 0.0 < v.to_dict()["spread_exponent"] < 0.3
    (note,) = _model_notes("same-minimizers-as-clip", [], [v], ClipControl(1.0))
    assert f"shrinks like N^-{v.spread_exponent:.2f} between N = 64 and 256" in note
    assert "no feasible batch size" in note
    fine = model_verdict("inconclusive", sizes=sizes, differences=usual)
    assert not fine.slow_spread and _model_notes("same-minimizers-as-clip", [], [fine], ClipControl(1.0)) == []
    # a decided verdict needs no such note, and too few replicates cannot tell
    assert _model_notes("same-minimizers-as-clip", [], [model_verdict("confirmed", sizes=sizes, differences=slow)],
                        ClipControl(1.0)) == []
    assert not model_verdict("inconclusive", sizes=sizes, differences=slow[:8]).slow_spread
    # fits that cannot decide for another reason are not blamed on heavy tails
    for other in (dict(usable=False), dict(unidentified=True)):
        v = model_verdict("inconclusive", sizes=sizes, differences=slow, n_to_decide=None, **other)
        assert not any("shrinks like" in n for n in _model_notes("same-minimizers-as-clip", [], [v],
                                                                   ClipControl(1.0)))
