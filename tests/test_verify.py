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


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss", [ONE_DIRECTIONAL, DECOUPLED], ids=["one-directional", "decoupled"])
def test_correct_variants_confirmed(loss, seed):
    res = verify_variant(loss, seed=seed, **ONE)
    assert res.verdict == "confirmed" and res.passed and res.exit_code == 0, res.summary()
    m = res.models[0]
    assert m.estimate.upper <= m.margin == pytest.approx(0.05 * m.target_norm)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("loss,grad", [(REWEIGHTED, None), (PENALTY, _penalty_grad),
                                       (_kappa(0.1), None)],
                         ids=["reweighted-alignment", "positive-penalty", "kappa-0.1"])
def test_wrong_variants_refuted(loss, grad, seed):
    res = verify_variant(loss, seed=seed, grad=grad, **ONE)
    assert res.verdict == "refuted" and not res.passed and res.exit_code == 1, res.summary()


def test_kappa_family_delta_is_estimated():
    """The weighted-alignment family has delta = kappa |K_ne| exactly: the interval covers it."""
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
    decided = verify_variant(_kappa(0.5), seed=0, **ONE)
    assert decided.rounds == 1
    undecided = verify_variant(ONE_DIRECTIONAL, seed=0, replicates=2, sizes=(32, 64), budget=60, **ONE)
    assert undecided.rounds > 1
    assert undecided.models[0].differences.shape[0] > 2


def test_drifting_loss_is_flagged_and_never_confirmed():
    loss = _load("sigmoid_fixed_bias", "sigmoid_fixed_bias")
    res = verify_variant(loss, seed=0, **ONE)
    assert res.verdict != "confirmed"
    assert res.models[0].drifting
    assert any("no N-independent limit" in n for n in res.notes)
    assert res.to_dict()["models"][0]["drifting"] is True


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
    """G2: CLIP's bilinear minimiser matches projected conditional means, never covariances."""
    res = verify_variant(ONE_DIRECTIONAL, claim="matches-conditional-means", seed=0, n_models=1)
    assert res.verdict == "confirmed", res.summary()
    res = verify_variant(ONE_DIRECTIONAL, claim="matches-conditionals", seed=0, n_models=1)
    assert res.verdict == "refuted" and res.notes
    assert all(m.control_gap > 0.1 for m in res.models)


def test_absolute_margin_is_used_and_printed():
    res = verify_variant(_kappa(0.1), seed=0, margin=0.5, **ONE)
    assert res.models[0].margin == 0.5 and "0.5 (absolute)" in res.summary()
    assert res.verdict == "confirmed"  # a 10 % change is within an absolute margin of 0.5


def test_result_object_summary_json_and_report(tmp_path):
    res = verify_variant(ONE_DIRECTIONAL, seed=5, name="one-dir", **ONE)
    text = str(res)
    assert "one-dir" in text and "CONFIRMED" in text and res.summary() == text
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
# command line
# --------------------------------------------------------------------------
SMALL = ["--models", "1", "--quiet"]


def test_cli_confirmed_exit_0_with_json_and_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = verify_main([f"{EXAMPLES}/one_directional.py:one_directional_infonce",
                        "--claim", "same-minimizers-as-clip", "--json", str(out),
                        "--report", str(tmp_path / "rep"), *SMALL])
    assert code == 0
    assert json.loads(out.read_text())["verdict"] == "confirmed"
    assert (tmp_path / "rep" / "report.md").exists()
    assert "CONFIRMED" in capsys.readouterr().out


def test_cli_refuted_exit_1(capsys):
    code = verify_main([f"{EXAMPLES}/reweighted_alignment.py:reweighted_alignment",
                        "--claim", "same-minimizers-as-clip", *SMALL])
    assert code == 1
    assert "REFUTED" in capsys.readouterr().out


def test_cli_inconclusive_exit_3(capsys):
    code = verify_main([f"{EXAMPLES}/one_directional.py:one_directional_infonce",
                        "--claim", "same-minimizers-as-clip", "--sizes", "16", "32",
                        "--replicates", "2", "--budget", "0", *SMALL])
    assert code == 3
    assert "INCONCLUSIVE" in capsys.readouterr().out


def test_cli_margin_option(capsys):
    code = verify_main([f"{EXAMPLES}/reweighted_alignment.py:reweighted_alignment",
                        "--claim", "same-minimizers-as-clip", "--margin", "100", *SMALL])
    assert code == 0  # a factor 2 is within an absolute margin of 100
    assert "100 (absolute)" in capsys.readouterr().out


def test_cli_progress_on_stderr(capsys):
    verify_main([f"{EXAMPLES}/one_directional.py:one_directional_infonce",
                 "--claim", "same-minimizers-as-clip", "--models", "1", "--sizes", "32", "64",
                 "--replicates", "2", "--budget", "0"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model 1/1" in err


def test_cli_importable_module_and_class_targets(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "mylosses"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "losses.py").write_text(
        "import numpy as np\n"
        "from scipy.special import logsumexp\n"
        "def row_infonce(F):\n"
        "    return float(-np.mean(np.diag(F)) + np.mean(logsumexp(F, axis=1)))\n"
        "class Doubled:\n"
        "    def __call__(self, F):\n"
        "        return float(-2 * np.mean(np.diag(F)) + 0.5 * np.mean(logsumexp(F, axis=1))"
        " + 0.5 * np.mean(logsumexp(F, axis=0)))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert verify_main(["mylosses.losses:row_infonce", "--claim", "same-minimizers-as-clip",
                        *SMALL]) == 0
    assert verify_main(["mylosses.losses:Doubled", "--claim", "same-minimizers-as-clip",
                        *SMALL]) == 1
    assert verify_main(["mylosses.nosuch:f", "--claim", "same-minimizers-as-clip", *SMALL]) == 2


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


def test_cli_params_learn_and_embeddings(tmp_path, capsys):
    """--inputs embeddings, --param and --learn reach the loss as keywords; a learned
    temperature is CLIP (exit 0), and the roles are reported."""
    f = tmp_path / "emb.py"
    f.write_text(
        "import numpy as np\n"
        "from scipy.special import logsumexp\n"
        "def clip_t(za, zb, temperature):\n"
        "    F = za @ zb.T / temperature\n"
        "    d = np.diag(F)\n"
        "    return float(np.mean(logsumexp(F, axis=1) - d) + np.mean(logsumexp(F, axis=0) - d)) / 2\n")
    out = tmp_path / "r.json"
    assert verify_main([f"{f}:clip_t", "--claim", "same-minimizers-as-clip", "--inputs", "embeddings",
                        "--param", "temperature=0.5", "--learn", "temperature", "--json", str(out),
                        *SMALL]) == 0
    doc = json.loads(out.read_text())
    assert any("temperature: temperature" in n for n in doc["notes"])
    assert doc["inputs"] == "embeddings" and doc["roles"] == {"temperature": "temperature"}
    assert doc["learned"] == ["temperature"] and doc["params"] == {"temperature": 0.5}
    assert verify_main([f"{f}:clip_t", "--claim", "same-minimizers-as-clip", "--inputs", "embeddings",
                        "--param", "temperature=0.5", "--learn", *SMALL]) == 0   # fixed: still CLIP
    assert verify_main([f"{f}:clip_t", "--claim", "same-minimizers-as-clip", "--param", "temperature",
                        *SMALL]) == 2
    assert verify_main([f"{f}:clip_t", "--claim", "same-minimizers-as-clip", "--inputs", "embeddings",
                        "--param", "temperature=0.5", "--learn", "tau", *SMALL]) == 2
    assert "learn" in capsys.readouterr().err


def test_cli_torch_module_example():
    pytest.importorskip("torch", reason="torch is an optional extra (pip install '.[torch]')")
    code = verify_main([f"{EXAMPLES}/torch_learned_temperature.py:LearnedTemperatureClip",
                        "--claim", "same-minimizers-as-clip", "--inputs", "embeddings", *SMALL])
    assert code == 0


def test_cli_jax_example_gives_a_verdict():
    pytest.importorskip("jax", reason="jax is an optional extra (pip install '.[jax]')")
    code = verify_main([f"{EXAMPLES}/jax_sigmoid_learned_bias.py:sigmoid_loss",
                        "--claim", "same-subspace-as-clip", "--inputs", "embeddings",
                        "--param", "logit_scale=1", "--param", "logit_bias=-2", "--budget", "0", *SMALL])
    assert code in (0, 1, 3)


def test_cli_broken_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    assert verify_main([f"{bad}:f", "--claim", "same-minimizers-as-clip"]) == 2
    assert "boom" in capsys.readouterr().err


def test_dispatch_from_main_cli():
    from proofs_checks.cli import main

    assert main(["verify", f"{EXAMPLES}/clip.py:missing", "--claim",
                 "same-minimizers-as-clip"]) == 2


# --------------------------------------------------------------------------
# same-subspace-as-clip
# --------------------------------------------------------------------------
def test_subspace_claim_is_free_of_scale():
    """The alignment weighted x1.5 has minimiser 1.5 A*: a different scale (refuted for
    same-minimizers) but CLIP's subspace (confirmed for same-subspace)."""
    loss = _kappa(0.5)
    assert verify_variant(loss, seed=1, **ONE).verdict == "refuted"
    res = verify_variant(loss, claim="same-subspace-as-clip", seed=1, n_models=1)
    assert res.verdict == "confirmed", res.summary()
    assert "principal angles <= 0.1 rad" in res.summary()


def test_subspace_margin_bounds_the_largest_angle():
    """|P - P*|_F <= sqrt(2) sin(m) implies every principal angle <= m (random subspaces)."""
    from scipy.linalg import subspace_angles

    from proofs_checks.claims import _projector, subspace_margin

    rng = np.random.default_rng(0)
    for _ in range(200):
        A, B = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
        B = A + rng.uniform(0, 0.5) * B
        dist = np.linalg.norm(_projector(A) - _projector(B))
        theta = float(np.max(subspace_angles(A, B)))
        assert dist >= subspace_margin(theta) - 1e-12
