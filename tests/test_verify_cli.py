"""The variant verifier's command line, proofs_checks/verify_cli.py (``python -m proofs_checks
verify``): exit codes 0/1/3 for the three verdicts and 2 for everything else, the JSON and
report outputs, progress lines, the targets it loads and the options that reach the loss.
(Misuse of every option is swept in tests/test_verify_args.py.)"""
import json
from pathlib import Path

import pytest

from proofs_checks.verify_cli import main as verify_main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "variants"

SMALL = ["--models", "1", "--quiet"]
# First round only.  A loss that is CLIP reparametrised has the control's batch minimisers
# (paired differences ~1e-7): the smallest data confirm it.
TINY = ["--sizes", "32", "64", "--replicates", "2", "--budget", "0"]
# The positive penalty (finite differences): lower bound 0.45 of delta on seed 0, upper 0.78.
PENALTY = [f"{EXAMPLES}/positive_penalty.py:positive_penalty", "--sizes", "64", "128", "--replicates", "4",
           "--budget", "0"]


@pytest.mark.acceptance
def test_cli_confirmed_exit_0_with_json_and_report(tmp_path, capsys):
    """The command of the README at its default settings (one model)."""
    out = tmp_path / "r.json"
    code = verify_main([f"{EXAMPLES}/one_directional.py:one_directional_infonce",
                        "--claim", "same-minimizers-as-clip", "--json", str(out),
                        "--report", str(tmp_path / "rep"), *SMALL])
    assert code == 0
    assert json.loads(out.read_text())["verdict"] == "confirmed"
    assert (tmp_path / "rep" / "report.md").exists()
    assert "CONFIRMED" in capsys.readouterr().out


def test_cli_refuted_exit_1(capsys):
    code = verify_main([*PENALTY, "--claim", "same-minimizers-as-clip", *SMALL])
    assert code == 1
    assert "REFUTED" in capsys.readouterr().out


def test_cli_inconclusive_exit_3(capsys):
    code = verify_main([f"{EXAMPLES}/one_directional.py:one_directional_infonce",
                        "--claim", "same-minimizers-as-clip", "--sizes", "16", "32",
                        "--replicates", "2", "--budget", "0", *SMALL])
    assert code == 3
    assert "INCONCLUSIVE" in capsys.readouterr().out


def test_cli_margin_option(capsys):
    code = verify_main([*PENALTY, "--claim", "same-minimizers-as-clip", "--margin", "100", *SMALL])
    assert code == 0  # the penalty's delta of 0.6 (refuted above) is within an absolute margin of 100
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
        "def symmetric_infonce(F):\n"
        "    return float(-np.mean(np.diag(F)) + 0.5 * np.mean(logsumexp(F, axis=1))"
        " + 0.5 * np.mean(logsumexp(F, axis=0)))\n"
        "class Penalised:\n"
        "    def __call__(self, F):\n"
        "        return symmetric_infonce(F) + 0.5 * float(np.mean(np.diag(F) ** 2))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # a function (CLIP itself: confirmed) and a class, instantiated (CLIP with the positive
    # penalty: refuted), both without a gradient: the exit codes tell which one was loaded
    assert verify_main(["mylosses.losses:symmetric_infonce", "--claim", "same-minimizers-as-clip",
                        *TINY, *SMALL]) == 0
    assert verify_main(["mylosses.losses:Penalised", "--claim", "same-minimizers-as-clip",
                        *PENALTY[1:], *SMALL]) == 1
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
                        *TINY, *SMALL]) == 0
    doc = json.loads(out.read_text())
    assert any("temperature: temperature" in n for n in doc["notes"])
    assert doc["inputs"] == "embeddings" and doc["roles"] == {"temperature": "temperature"}
    assert doc["learned"] == ["temperature"] and doc["params"] == {"temperature": 0.5}
    assert verify_main([f"{f}:clip_t", "--claim", "same-minimizers-as-clip", "--inputs", "embeddings",
                        "--param", "temperature=0.5", "--learn", *TINY, *SMALL]) == 0   # fixed: still CLIP
    assert verify_main([f"{f}:clip_t", "--claim", "same-minimizers-as-clip", "--param", "temperature",
                        *SMALL]) == 2
    assert verify_main([f"{f}:clip_t", "--claim", "same-minimizers-as-clip", "--inputs", "embeddings",
                        "--param", "temperature=0.5", "--learn", "tau", *SMALL]) == 2
    assert "learn" in capsys.readouterr().err


def test_cli_torch_module_example():
    pytest.importorskip("torch", reason="torch is an optional extra (pip install '.[torch]')")
    code = verify_main([f"{EXAMPLES}/torch_learned_temperature.py:LearnedTemperatureClip",
                        "--claim", "same-minimizers-as-clip", "--inputs", "embeddings", *TINY, *SMALL])
    assert code == 0


def test_cli_jax_example_is_confirmed(tmp_path):
    """The example's own claim (its docstring): a sigmoid loss keeps CLIP's top canonical
    subspace.  Confirmed at (64, 128) x 4, upper bound 0.45 of the angle margin (0.33 at the
    default sizes), with the roles of its two scalars found and both learned."""
    pytest.importorskip("jax", reason="jax is an optional extra (pip install '.[jax]')")
    out = tmp_path / "r.json"
    code = verify_main([f"{EXAMPLES}/jax_sigmoid_learned_bias.py:sigmoid_loss",
                        "--claim", "same-subspace-as-clip", "--inputs", "embeddings",
                        "--param", "logit_scale=1", "--param", "logit_bias=-2", "--sizes", "64", "128",
                        "--replicates", "4", "--budget", "0", "--json", str(out), *SMALL])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "confirmed" and doc["backend"] == "jax" and doc["gradient"] == "jax autograd"
    assert doc["roles"] == {"logit_scale": "scale", "logit_bias": "bias"}
    assert doc["learned"] == ["logit_scale", "logit_bias"]


def test_cli_broken_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    assert verify_main([f"{bad}:f", "--claim", "same-minimizers-as-clip"]) == 2
    assert "boom" in capsys.readouterr().err


def test_dispatch_from_main_cli():
    from proofs_checks.cli import main

    assert main(["verify", f"{EXAMPLES}/clip.py:missing", "--claim",
                 "same-minimizers-as-clip"]) == 2


