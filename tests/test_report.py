"""Unit tests of proofs_checks/report.py on hand-built results: the main job's table, JSON,
JUnit XML and report folder, and the variant verifier's summary, figures and report folder."""
import json
import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from proofs_checks import report  # noqa: E402
from proofs_checks.registry import CaseResult, CheckResult  # noqa: E402

from .test_verify_result import model_verdict, variant  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _checks():
    good = CheckResult("thm-a", "Theorem 3.2", "closed-form", "a passing check",
                       [CaseResult("m0", 1e-12, 1e-9), CaseResult("m1", 2e-10, 1e-9)], seconds=0.25)
    bad = CheckResult("prop-b", "Proposition G1", "optimization", "a failing check",
                      [CaseResult("m0", 1e-3, 1e-2), CaseResult("m1", 1.0, 0.5), CaseResult("m2", 0.9, 0.5)])
    empty = CheckResult("lemma-c", "Lemma 2.1", "symbolic", "no cases", [])
    return [good, bad, empty]


# --------------------------------------------------------------------------
# the main job
# --------------------------------------------------------------------------
def test_format_table():
    text = report.format_table(_checks())
    lines = text.splitlines()
    assert lines[0].split() == ["statement", "method", "check", "cases", "worst", "error", "tolerance", "verdict"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = {line.split()[3]: line for line in lines[2:5]}  # each statement is two words
    # worst case = largest error / tolerance: 2e-10 of 1e-9 for the good one, 1.0 of 0.5 for the bad one
    assert rows["thm-a"].split()[-4:] == ["2", "2.00e-10", "1.00e-09", "PASS"]
    assert rows["prop-b"].split()[-4:] == ["3", "1.00e+00", "5.00e-01", "FAIL"]
    assert rows["lemma-c"].split()[-4:] == ["0", "-", "-", "FAIL"]  # no cases never passes
    assert lines[-1] == "1 of 3 checks passed; 2 FAILED"
    assert report.format_table(_checks()[:1]).splitlines()[-1] == "1 of 1 checks passed"
    # columns are aligned: every row of the table has the same width before stripping
    assert len({len(line) for line in lines[:2]}) == 1


def test_results_to_json_and_write_json(tmp_path):
    doc = report.results_to_json(_checks(), seed=3, cases=2)
    assert doc["seed"] == 3 and doc["cases"] == 2 and doc["passed"] is False
    assert [r["check"] for r in doc["results"]] == ["thm-a", "prop-b", "lemma-c"]
    assert doc["results"][1]["worst_case"] == "m1"
    assert report.results_to_json(_checks()[:1], seed=0, cases=1)["passed"] is True
    path = tmp_path / "sub" / "r.json"
    report.write_json(path, _checks(), seed=3, cases=2)
    assert json.loads(path.read_text()) == json.loads(json.dumps(doc))
    assert path.read_text().endswith("}\n")


def test_write_junit(tmp_path):
    path = tmp_path / "j.xml"
    report.write_junit(path, _checks())
    root = ET.parse(path).getroot()
    assert root.tag == "testsuite" and root.get("tests") == "3" and root.get("failures") == "2"
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == ["thm-a", "prop-b", "lemma-c"]
    assert cases[0].get("time") == "0.250" and cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure.get("message") == "Proposition G1 (optimization) failed"
    # only the failing cases, each with its error and tolerance
    assert failure.text == "m1: error 1.000e+00 > tol 5.000e-01; m2: error 9.000e-01 > tol 5.000e-01"
    assert cases[2].find("failure").text == "no cases"


def test_write_report_folder(tmp_path):
    paths = report.write_report(tmp_path / "rep", _checks(), seed=1, cases=2)
    assert [p.name for p in paths] == ["report.md", "results.json", "error_ratios.png"]
    assert paths[2].read_bytes()[:8] == PNG_MAGIC
    md = paths[0].read_text()
    assert "| Theorem 3.2 | closed-form | thm-a | 2 | 2.00e-10 | 1.00e-09 | PASS |" in md
    assert "| Proposition G1 | optimization | prop-b | 3 | 1.00e+00 | 5.00e-01 | FAIL |" in md
    assert "worst case `m1`" in md and "worst case `-`" in md
    assert json.loads(paths[1].read_text())["passed"] is False


# --------------------------------------------------------------------------
# the variant verifier
# --------------------------------------------------------------------------
def test_model_line_by_hand():
    m = model_verdict("confirmed", sizes=(32, 64), R=2)
    line = report._model_line(m)
    assert line.startswith("  [confirmed] toy: delta = 0.01 (CI [0, 0.03]; 1.2% of |target| [0.0%, 3.8%]), "
                           "margin 0.04, N <= 64, 2 replicates, paired spread ")
    assert f"vs control error {m.control_error[-1]:.2g}" in line
    assert "DRIFTING" not in line and "would likely decide" not in line and "own distance" not in line
    m = model_verdict("inconclusive", drifting=True, control_gap=0.64)
    line = report._model_line(m)
    assert "; DRIFTING: moves by 0.001 at N = 128" in line
    assert "; N ~ 512 would likely decide" in line
    assert "; CLIP's own distance to the target 0.64" in line


@pytest.mark.parametrize("verdicts, head", [
    (["confirmed", "confirmed"], "CONFIRMED: within the margin (5% of the target's norm) on all 2 models, "
                                 "with 95 % confidence"),
    (["refuted", "confirmed", "refuted"], "REFUTED: a difference finite-N bias cannot explain on 2 of 3 "
                                          "models (99.7 % confidence each)"),
    (["inconclusive", "confirmed"], "INCONCLUSIVE: the data cannot tell a difference from the margin "
                                    "(5% of the target's norm) on 1 of 2 models (schedule-exhausted)"),
])
def test_variant_summary_head(verdicts, head):
    res = variant(verdicts, seconds=12.34, rounds=2, notes=["first note"])
    lines = res.summary().splitlines()
    assert lines[0] == f"toy_loss: claim 'same-minimizers-as-clip' (dot similarity) {head}"
    assert lines[1] == "  seed 0, gradient: user, 2 round(s), 12.3 s (adaptive budget 60 s)"
    assert [line.split("]")[0].strip() + "]" for line in lines[3:3 + len(verdicts)]] == \
        [f"[{v}]" for v in verdicts]
    assert lines[3 + len(verdicts)] == "  note: first note"
    if "refuted" in verdicts:  # the last line says what to run to see what the loss learns instead
        assert lines[-1].startswith("  what it learns instead: proofs_checks.fingerprint(toy_loss")
    else:
        assert lines[-1] == "  note: first note"


def test_variant_summary_without_fits_gives_the_reason_and_the_advice():
    res = variant([], advice="ask same-subspace-as-clip", notes=["a note"])
    lines = res.summary().splitlines()
    assert lines[0] == "toy_loss: claim 'same-minimizers-as-clip' (dot similarity) INCONCLUSIVE (ill-posed): " \
                       "no fits were run"
    assert lines[1].startswith("  seed 0, gradient: user, 1 round(s)")
    assert lines[2:] == ["  note: a note", "  why, and what to run instead: ask same-subspace-as-clip"]
    assert "why, and what" not in variant(["confirmed"]).summary()


def test_variant_summary_gives_the_budget_as_the_reason():
    head = variant(["inconclusive"], stopped_by_budget=True).summary().splitlines()[0]
    assert head.endswith("on 1 of 1 models (budget)")


def test_variant_summary_names_the_direction_of_conditional_claims():
    head = variant(["confirmed"], claim="matches-conditional-means", direction="v|u").summary().splitlines()[0]
    assert "(dot similarity, direction v|u) CONFIRMED" in head
    assert "direction" not in variant(["confirmed"]).summary().splitlines()[0]


def test_variant_figures_plot_the_data():
    res = variant(["confirmed", "refuted"])
    before = set(plt.get_fignums())
    figs = res.figures()
    try:
        assert len(figs) == 2 and all(isinstance(f, matplotlib.figure.Figure) for f in figs)
        for fig, m in zip(figs, res.models):
            ax1, ax2 = fig.axes
            assert ax1.get_title() == f"{m.verdict.upper()}: toy"
            paired = [ln for ln in ax1.lines if ln.get_label() == "|variant - control| (paired)"]
            np.testing.assert_allclose(paired[0].get_ydata(), np.linalg.norm(m.differences, axis=2).mean(axis=0))
            np.testing.assert_allclose(paired[0].get_xdata(), m.sizes)
            variant_line = [ln for ln in ax2.lines if ln.get_label() == "variant"][0]
            np.testing.assert_allclose(variant_line.get_ydata(), np.degrees(m.angles_user.mean(axis=1)))
            assert ax1.get_xscale() == "log" and ax2.get_xscale() == "log"
    finally:
        for f in figs:
            plt.close(f)
    assert set(plt.get_fignums()) == before


def test_write_variant_report(tmp_path, monkeypatch):
    res = variant(["confirmed", "inconclusive"])
    before = set(plt.get_fignums())
    path = report.write_variant_report(res, tmp_path / "out" / "rep")
    assert path == tmp_path / "out" / "rep" / "report.md"
    assert set(plt.get_fignums()) == before  # figures are closed once written
    folder = path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["model_0.png", "model_1.png", "report.md", "result.json"]
    for k in range(2):
        assert (folder / f"model_{k}.png").read_bytes()[:8] == PNG_MAGIC
    assert json.loads((folder / "result.json").read_text()) == json.loads(json.dumps(res.to_dict()))
    md = path.read_text()
    assert md.startswith("# Variant verification: toy_loss\n")
    assert "**INCONCLUSIVE** (margin 5% of the target's norm)" in md
    assert res.summary() in md
    assert "## Model 0: toy" in md and "![model 1](model_1.png)" in md
    assert "canonical correlations [0.8, 0.5]; verdict **inconclusive**" in md
    # the result object's method is this function
    calls = []
    monkeypatch.setattr(report, "write_variant_report", lambda r, d: calls.append((r, d)) or "done")
    assert res.write_report("somewhere") == "done" and calls == [(res, "somewhere")]


def test_notes_are_aggregated_one_line_per_cause():
    fit = "{}, replicate {}, N={}: the variant's fit did not reach a stationary point ({}; moved {} from its start)"
    notes = ["loss of logits, backend numpy"]
    notes += [fit.format("A", r, N, "unbounded direction", 1.5 * r + N) for r in range(8) for N in (64, 128)]
    notes += [fit.format("B", 3, 64, "kink not resolved", 0.2)]
    notes += ["A: 2 flat direction(s) x", "B: 2 flat direction(s) x", "C: 2 flat direction(s) x", "B: set aside"]
    out = report.aggregate_notes(notes, ["A", "B", "C"])
    assert out == [
        "loss of logits, backend numpy",
        "the variant's fit did not reach a stationary point (unbounded direction): 16 fit(s) on 1 model(s) (A)",
        "the variant's fit did not reach a stationary point (kink not resolved): 1 fit(s) on 1 model(s) (B)",
        "3 models: 2 flat direction(s) x",
        "B: set aside",
    ]


def test_summary_has_few_lines_and_the_json_every_note():
    res = variant(["inconclusive"] * 3)
    res.notes = [f"{m.label}, replicate {r}, N={N}: cause {r % 2}" for m in res.models
                 for r in range(32) for N in (64, 128, 256)] + [f"other note {i}" for i in range(20)]
    lines = res.summary().splitlines()
    assert len(lines) <= 3 + len(res.models) + report.MAX_SUMMARY_NOTES
    assert "every note is in to_dict()['notes']" in lines[-1]
    assert len(res.to_dict()["notes"]) == 3 * 32 * 3 + 20


def test_a_refuted_summary_ends_with_the_fingerprint_command():
    res = variant(["refuted", "confirmed"])
    res.command = ["open_clip.loss:SigLipLoss", "--claim", "same-minimizers-as-clip", "--inputs", "embeddings",
                   "--param", "logit_scale=10", "--param", "logit_bias=-10", "--learn", "logit_scale",
                   "--sizes", "64", "128", "--seed", "2", "--json=out.json", "--similarity", "l2", "--quiet"]
    last = res.summary().splitlines()[-1]
    # the loss's options kept (every value of --learn), the claim's and the run's dropped
    assert last == ("  what it learns instead: python -m proofs_checks fingerprint open_clip.loss:SigLipLoss "
                    "--inputs embeddings --param logit_scale=10 --param logit_bias=-10 --learn logit_scale "
                    "--seed 2 --similarity l2 --quiet")
    # and the command parses: the fingerprint's own parser accepts every option kept
    from proofs_checks.fingerprint_cli import build_parser
    build_parser().parse_args(last.split("fingerprint ", 1)[1].split())
    # cosine similarity has no canonical map: no pointer
    res.similarity = "cosine"
    assert "what it learns" not in res.summary()
    res.similarity = "dot"
    res.command = None
    assert res.summary().splitlines()[-1].startswith("  what it learns instead: proofs_checks.fingerprint(")
    assert "what it learns" not in variant(["confirmed"]).summary()
