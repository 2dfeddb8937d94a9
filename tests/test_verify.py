"""Tests of proofs_checks/verify.py and proofs_checks/verify_cli.py (the variant verifier)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from numerics import InvalidInputError
from proofs_checks import verify_variant
from proofs_checks.verify import default_variant_models
from proofs_checks.verify_cli import main as verify_main

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


FAST = dict(n_models=2, sizes=(128, 256, 512), replicates=2)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss", [ONE_DIRECTIONAL, DECOUPLED], ids=["one-directional", "decoupled"])
def test_correct_variants_confirmed_on_every_seed(loss, seed):
    res = verify_variant(loss, claim="same-minimizers-as-clip", seed=seed, **FAST)
    assert res.passed, res.summary()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss,grad", [(REWEIGHTED, None), (PENALTY, _penalty_grad)],
                         ids=["reweighted-alignment", "positive-penalty"])
def test_wrong_variants_refuted_on_every_seed(loss, grad, seed):
    res = verify_variant(loss, claim="same-minimizers-as-clip", seed=seed, grad=grad, **FAST)
    assert not res.passed, res.summary()
    assert all(not m.passed for m in res.models), res.summary()


def test_finite_difference_path_refutes_penalty():
    res = verify_variant(PENALTY, claim="same-minimizers-as-clip", seed=3, n_models=1,
                         sizes=(128, 256), replicates=2)
    assert res.gradient == "finite differences"
    assert not res.passed


def test_finite_differences_agree_with_user_gradient():
    """The same fit with and without the gradient: identical errors up to optimiser accuracy."""
    kw = dict(claim="same-minimizers-as-clip", seed=4, n_models=1, sizes=(64, 128), replicates=1)
    a = verify_variant(ONE_DIRECTIONAL, **kw)
    b = verify_variant(lambda F: ONE_DIRECTIONAL(F), **kw)
    assert a.gradient == "user" and b.gradient == "finite differences"
    np.testing.assert_allclose(a.models[0].user_errors, b.models[0].user_errors, atol=1e-4)


def test_conditional_claims_bilinear():
    """G2: CLIP's bilinear minimiser matches projected conditional means, never covariances."""
    res = verify_variant(ONE_DIRECTIONAL, claim="matches-conditional-means", seed=0, **FAST)
    assert res.passed, res.summary()
    res = verify_variant(ONE_DIRECTIONAL, claim="matches-conditionals", seed=0, **FAST)
    assert not res.passed and res.notes
    assert all(m.control_gap > 0.1 for m in res.models)


def test_result_object_summary_json_and_report(tmp_path):
    res = verify_variant(ONE_DIRECTIONAL, claim="same-minimizers-as-clip", seed=5, n_models=1,
                         sizes=(64, 128), replicates=2, name="one-dir")
    text = str(res)
    assert "one-dir" in text and "CONFIRMED" in text and res.summary() == text
    doc = json.loads(json.dumps(res.to_dict()))
    assert doc["passed"] is True and doc["claim"] == "same-minimizers-as-clip"
    assert len(doc["models"][0]["user_error"]) == 2
    figs = res.figures()
    assert len(figs) == 1
    path = res.write_report(tmp_path / "rep")
    assert path.read_text().startswith("# Variant verification")
    assert (tmp_path / "rep" / "model_0.png").stat().st_size > 1000
    assert json.loads((tmp_path / "rep" / "result.json").read_text())["passed"] is True


def test_progress_lines():
    lines = []
    verify_variant(ONE_DIRECTIONAL, claim="same-minimizers-as-clip", n_models=1, sizes=(32, 64),
                   replicates=1, progress=lines.append)
    assert len(lines) == 2 and "N=64" in lines[1]


def test_default_models_have_a_healthy_gap():
    for m in default_variant_models(0, 3):
        assert m.eigengap >= 0.25 - 1e-12


@pytest.mark.parametrize("kwargs", [
    dict(claim="same-minimisers"),
    dict(claim="same-minimizers-as-clip", similarity="cosine"),
    dict(claim="matches-conditionals", direction="v->u"),
    dict(claim="same-minimizers-as-clip", sizes=(256, 128)),
    dict(claim="same-minimizers-as-clip", sizes=(128,)),
    dict(claim="same-minimizers-as-clip", replicates=0),
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


TINY = dict(claim="same-minimizers-as-clip", n_models=1, sizes=(16, 32), replicates=1)


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
# command line
# --------------------------------------------------------------------------
SMALL = ["--models", "1", "--sizes", "128", "256", "--quiet"]


def test_cli_confirmed_exit_0_with_json_and_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = verify_main([f"{EXAMPLES}/one_directional.py:one_directional_infonce",
                        "--claim", "same-minimizers-as-clip", "--json", str(out),
                        "--report", str(tmp_path / "rep"), *SMALL])
    assert code == 0
    assert json.loads(out.read_text())["passed"] is True
    assert (tmp_path / "rep" / "report.md").exists()
    assert "CONFIRMED" in capsys.readouterr().out


def test_cli_refuted_exit_1(capsys):
    code = verify_main([f"{EXAMPLES}/reweighted_alignment.py:reweighted_alignment",
                        "--claim", "same-minimizers-as-clip", *SMALL])
    assert code == 1
    assert "REFUTED" in capsys.readouterr().out


def test_cli_progress_on_stderr(capsys):
    verify_main([f"{EXAMPLES}/one_directional.py:one_directional_infonce",
                 "--claim", "same-minimizers-as-clip", "--models", "1", "--sizes", "32", "64",
                 "--replicates", "1"])
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "model 1/1" in err


@pytest.mark.parametrize("argv", [
    ["does/not/exist.py:f", "--claim", "same-minimizers-as-clip"],
    [f"{EXAMPLES}/clip.py:missing", "--claim", "same-minimizers-as-clip"],
    [f"{EXAMPLES}/clip.py", "--claim", "same-minimizers-as-clip"],
    [f"{EXAMPLES}/clip.py:clip_loss", "--claim", "no-such-claim"],
    [f"{EXAMPLES}/clip.py:clip_loss"],
    [f"{EXAMPLES}/clip.py:clip_loss", "--claim", "same-minimizers-as-clip", "--grad", "missing"],
    [f"{EXAMPLES}/clip.py:clip_loss", "--claim", "same-minimizers-as-clip", "--sizes", "64", "32"],
])
def test_cli_usage_errors_exit_2(argv, capsys):
    assert verify_main(argv) == 2


def test_cli_broken_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    assert verify_main([f"{bad}:f", "--claim", "same-minimizers-as-clip"]) == 2
    assert "boom" in capsys.readouterr().err


def test_dispatch_from_main_cli():
    from proofs_checks.cli import main

    assert main(["verify", f"{EXAMPLES}/clip.py:missing", "--claim",
                 "same-minimizers-as-clip"]) == 2
