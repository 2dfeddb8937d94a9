"""Unit tests of proofs_checks/verify_result.py on hand-built results: the JSON keys and
values of ModelVerdict and VariantVerification (against sums computed here), the
verdict combination, exit codes and truth value."""
import json
import math

import numpy as np
import pytest

from numerics.flat import FlatDirections
from proofs_checks.verdict import DeltaEstimate
from proofs_checks.verify_result import EXIT_CODES, REASONS, ModelVerdict, VariantVerification

MODEL_KEYS = {
    "label", "n_u", "n_v", "n_e", "sigma", "sizes", "replicates", "verdict", "passed", "drifting",
    "margin", "relative_margin", "delta", "delta_ci", "relative_delta", "relative_delta_ci",
    "drift_at_n_max", "n_to_decide", "replicates_set_aside", "fits_usable", "flat_directions", "target_norm",
    "control_gap", "user_error", "control_error", "paired_spread", "max_angle_user", "max_angle_control",
    "scale_factor", "unidentified_flat", "rank", "spread_exponent", "split_fits",
}
RESULT_KEYS = {"claim", "similarity", "direction", "seed", "loss", "gradient", "margin", "budget", "rounds",
               "verdict", "passed", "reason", "advice", "objective", "models", "notes"}


def _estimate(delta=0.01, lower=0.0, upper=0.03, drift=0.001):
    return DeltaEstimate(delta=delta, lower=lower, upper=upper, half_width_refute=0.02,
                         half_width_confirm=0.02, drift=drift, drift_significant=False, drift_ratio=0.01,
                         effective_dimension=1.5, replicates=3, n_max=128)


def model_verdict(verdict="confirmed", rng=None, R=3, sizes=(32, 64, 128), d=4, target_norm=0.8,
                  margin=0.04, flat=None, **kw):
    """A ModelVerdict with random arrays of the documented shapes."""
    rng = np.random.default_rng(0) if rng is None else rng
    k = len(sizes)
    args = dict(label="toy", n_u=2, n_v=2, n_e=1, sigma=[0.8, 0.5], sizes=list(sizes),
                differences=rng.standard_normal((R, k, d)) * 0.01,
                user_errors=rng.uniform(0, 0.1, (k, R)), control_errors=rng.uniform(0, 0.1, (k, R)),
                angles_user=rng.uniform(0, 0.2, (k, R)), angles_control=rng.uniform(0, 0.2, (k, R)),
                target_norm=target_norm, margin=margin, control_gap=0.0, estimate=_estimate(),
                verdict=verdict, drifting=False, n_to_decide=None if verdict != "inconclusive" else 512)
    if flat is not None:
        args["flat"] = flat
    args.update(kw)
    return ModelVerdict(**args)


def variant(verdicts, **kw):
    rng = np.random.default_rng(1)
    args = dict(claim="same-minimizers-as-clip", similarity="dot", direction="both", seed=0,
                loss_name="toy_loss", gradient="user", margin="5% of the target's norm", budget=60.0,
                models=[model_verdict(v, rng) for v in verdicts])
    args.update(kw)
    return VariantVerification(**args)


# --------------------------------------------------------------------------
# ModelVerdict
# --------------------------------------------------------------------------
def test_model_to_dict_keys_and_values_by_hand():
    rng = np.random.default_rng(2)
    flat = FlatDirections(count=2, names=["a", "b"], moving=["1 of the 2 flat dimension(s)"],
                          tangents=np.ones((4, 1)))
    m = model_verdict(rng=rng, flat=flat, set_aside=1)
    d = m.to_dict()
    assert set(d) == MODEL_KEYS
    assert d["replicates"] == 3 and d["replicates_set_aside"] == 1 and d["sizes"] == [32, 64, 128]
    assert d["fits_usable"] is True and model_verdict(usable=False).to_dict()["fits_usable"] is False
    assert d["passed"] is True and d["verdict"] == "confirmed"
    assert d["relative_margin"] == pytest.approx(0.04 / 0.8, rel=1e-15)
    assert d["delta_ci"] == [0.0, 0.03] and d["relative_delta"] == pytest.approx(0.01 / 0.8, rel=1e-15)
    assert d["relative_delta_ci"] == pytest.approx([0.0, 0.03 / 0.8], rel=1e-15)
    assert d["flat_directions"] == {"count": 2, "names": ["a", "b"],
                                    "moving_the_statistic": ["1 of the 2 flat dimension(s)"]}
    # RMS over replicates (axis 1 of the (sizes, replicates) arrays), by loops
    for key, arr in (("user_error", m.user_errors), ("control_error", m.control_errors)):
        want = [math.sqrt(sum(e * e for e in row) / len(row)) for row in arr]
        assert d[key] == pytest.approx(want, rel=1e-12)
    assert d["max_angle_user"] == [max(row) for row in m.angles_user.tolist()]
    assert d["max_angle_control"] == [max(row) for row in m.angles_control.tolist()]
    # paired spread: RMS over replicates of |D_r(N) - mean_r D_r(N)|
    D = m.differences
    want = []
    for j in range(D.shape[1]):
        mean = sum(D[r, j] for r in range(D.shape[0])) / D.shape[0]
        want.append(math.sqrt(sum(float(np.sum((D[r, j] - mean) ** 2)) for r in range(D.shape[0])) / D.shape[0]))
    assert d["paired_spread"] == pytest.approx(want, rel=1e-12)
    json.dumps(d)  # plain JSON types


def test_model_with_zero_target_norm_has_nan_relative_values():
    d = model_verdict(target_norm=0.0).to_dict()
    assert math.isnan(d["relative_margin"]) and math.isnan(d["relative_delta"])
    assert all(math.isnan(v) for v in d["relative_delta_ci"])


@pytest.mark.parametrize("verdict, passed", [("confirmed", True), ("refuted", False), ("inconclusive", False)])
def test_model_passed(verdict, passed):
    assert model_verdict(verdict).passed is passed


def test_identical_replicates_have_zero_paired_spread():
    D = np.tile(np.arange(8.0).reshape(1, 2, 4), (3, 1, 1))
    assert model_verdict(sizes=(32, 64), differences=D).paired_spread.tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------
# VariantVerification
# --------------------------------------------------------------------------
@pytest.mark.parametrize("verdicts, combined", [
    (["confirmed"], "confirmed"),
    (["confirmed", "confirmed", "confirmed"], "confirmed"),
    (["confirmed", "inconclusive", "confirmed"], "inconclusive"),
    (["confirmed", "refuted", "inconclusive"], "refuted"),   # a refutation anywhere refutes the claim
    (["inconclusive", "refuted"], "refuted"),
    (["inconclusive"], "inconclusive"),
])
def test_verdict_combination_exit_code_and_truth(verdicts, combined):
    res = variant(verdicts)
    assert res.verdict == combined
    assert res.exit_code == {"confirmed": 0, "refuted": 1, "inconclusive": 3}[combined]
    assert res.passed is (combined == "confirmed")
    assert bool(res) is res.passed
    doc = res.to_dict()
    assert doc["verdict"] == combined and doc["passed"] is res.passed
    assert [m["verdict"] for m in doc["models"]] == verdicts


def test_exit_codes_are_the_documented_ones():
    assert EXIT_CODES == {"confirmed": 0, "refuted": 1, "inconclusive": 3}
    assert 2 not in EXIT_CODES.values()  # 2 is the command line's usage/loading error


def test_no_models_is_not_a_confirmation():
    res = variant([])
    assert res.verdict == "inconclusive" and not res.passed and not bool(res) and res.exit_code == 3
    # no fits, with advice: a claim the loss's invariances make ill-posed
    res = variant([], advice="ask same-subspace-as-clip")
    assert res.reason == "ill-posed" and res.to_dict()["advice"] == "ask same-subspace-as-clip"
    assert res.exit_code == 3


def _open(**kw):
    """An inconclusive model verdict with some attributes set."""
    return model_verdict("inconclusive", **kw)


def test_reason_of_an_inconclusive_verdict():
    assert set(REASONS) == {"ill-posed", "no-stationary-point", "drifting", "budget", "schedule-exhausted",
                            "unidentified-scale"}
    # decided verdicts have no reason, whatever else is true of their models
    for verdicts in (["confirmed"], ["refuted", "inconclusive"]):
        res = variant(verdicts, stopped_by_budget=True)
        assert res.reason is None and res.to_dict()["reason"] is None
    base = dict(claim="same-minimizers-as-clip", similarity="dot", direction="both", seed=0, loss_name="toy",
                gradient="user", margin="5%", budget=60.0)

    def reason(models, **kw):
        return VariantVerification(models=models, **base, **kw).reason

    # in order of precedence: an undecidable model, a drifting one, the budget, the schedule
    assert reason([_open(usable=False, drifting=True), _open()], stopped_by_budget=True) == "no-stationary-point"
    # a refutation withheld because a flat direction moving the statistic is unidentified
    withheld = _open(unidentified=True, estimate=_estimate(delta=0.1, lower=0.05, upper=0.15), drifting=True)
    assert reason([withheld, _open()], stopped_by_budget=True) == "unidentified-scale"
    # ... but an unidentified direction under an interval that reaches zero is not the reason
    assert reason([_open(unidentified=True), _open()], stopped_by_budget=True) == "budget"
    assert reason([_open(drifting=True), _open()], stopped_by_budget=True) == "drifting"
    assert reason([_open(), _open()], stopped_by_budget=True) == "budget"
    assert reason([_open(), _open()]) == "schedule-exhausted"
    # only the models still open count: a confirmed model that drifted does not make the reason
    assert reason([model_verdict("confirmed", drifting=True), _open()]) == "schedule-exhausted"


def test_variant_to_dict_keys_and_interface():
    res = variant(["confirmed", "refuted"], rounds=2, notes=["a note"],
                  interface={"inputs": "logits", "backend": "numpy", "params": {}, "learned": [],
                             "roles": {}})
    doc = res.to_dict()
    assert set(doc) == RESULT_KEYS | {"inputs", "backend", "params", "learned", "roles"}
    assert doc["loss"] == "toy_loss" and doc["rounds"] == 2 and doc["budget"] == 60.0
    assert doc["notes"] == ["a note"] and doc["notes"] is not res.notes
    assert doc["backend"] == "numpy"
    assert set(variant(["confirmed"]).to_dict()) == RESULT_KEYS
    assert json.loads(json.dumps(doc))["models"][1]["verdict"] == "refuted"


def test_summary_is_str():
    res = variant(["confirmed"])
    assert str(res) == res.summary() and res.summary().startswith("toy_loss: claim 'same-minimizers-as-clip'")
