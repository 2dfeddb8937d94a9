r"""Rendering check results: the terminal table, JSON, JUnit XML and a report folder."""
from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

__all__ = ["format_table", "results_to_json", "write_json", "write_junit", "write_report",
           "variant_summary", "variant_figures", "write_variant_report"]


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def format_table(results) -> str:
    """Plain-text table: statement, method, cases, worst error, tolerance, verdict."""
    rows = [("statement", "method", "check", "cases", "worst error", "tolerance", "verdict")]
    for r in results:
        d = r.to_dict()
        rows.append((d["statement"], d["method"], d["check"], str(d["cases"]),
                     _fmt(d["max_error"]), _fmt(d["tolerance"]), "PASS" if d["passed"] else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    n_fail = sum(not r.passed for r in results)
    lines.append("")
    lines.append(f"{len(results) - n_fail} of {len(results)} checks passed"
                 + ("" if n_fail == 0 else f"; {n_fail} FAILED"))
    return "\n".join(lines)


def results_to_json(results, *, seed: int, cases: int) -> dict:
    """The main job's JSON document (deterministic: no timings, no paths)."""
    return {
        "seed": seed,
        "cases": cases,
        "passed": all(r.passed for r in results),
        "results": [r.to_dict() for r in results],
    }


def write_json(path, results, *, seed: int, cases: int) -> None:
    doc = results_to_json(results, seed=seed, cases=cases)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=False)
        fh.write("\n")


def write_junit(path, results) -> None:
    """JUnit XML: one testsuite, one testcase per check, failures listing failing cases."""
    suite = ET.Element("testsuite", name="contrastive-proofs", tests=str(len(results)),
                       failures=str(sum(not r.passed for r in results)))
    for r in results:
        tc = ET.SubElement(suite, "testcase", classname=r.statement, name=r.name,
                           time=f"{r.seconds:.3f}")
        if not r.passed:
            bad = [c for c in r.cases if not c.passed][:20]
            msg = "; ".join(f"{c.label}: error {c.error:.3e} > tol {c.tolerance:.3e}" for c in bad)
            ET.SubElement(tc, "failure", message=f"{r.statement} ({r.method}) failed").text = (
                msg or "no cases")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def write_report(folder, results, *, seed: int, cases: int) -> list:
    """Write ``report.md``, ``results.json`` and ``error_ratios.png`` into ``folder``.

    The figure shows, per check, every case's error divided by its tolerance on
    a log scale: a check passes when all its points lie left of 1.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "results.json", results, seed=seed, cases=cases)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(results) + 1.5))
    floor = 1e-12
    for k, r in enumerate(results):
        ratios = np.array([max(c.ratio, floor) if np.isfinite(c.ratio) else 1e6 for c in r.cases])
        y = k + 0.25 * (np.random.default_rng(k).random(len(ratios)) - 0.5)
        ax.scatter(ratios, y, s=10, color="tab:green" if r.passed else "tab:red", alpha=0.7)
    ax.axvline(1.0, color="k", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(range(len(results)), [r.name for r in results])
    ax.set_xlabel(f"error / tolerance (pass: < 1; exact results are drawn at {floor:g})")
    ax.set_title(f"contrastive-proofs verification (seed {seed}, {cases} models)")
    fig.tight_layout()
    fig.savefig(folder / "error_ratios.png", dpi=120)
    plt.close(fig)
    with open(folder / "report.md", "w", encoding="utf-8") as fh:
        fh.write(f"# Verification report\n\nseed {seed}, {cases} default models\n\n")
        fh.write("| statement | method | check | cases | worst error | tolerance | verdict |\n")
        fh.write("|---|---|---|---:|---:|---:|---|\n")
        for r in results:
            d = r.to_dict()
            fh.write(f"| {d['statement']} | {d['method']} | {d['check']} | {d['cases']} | "
                     f"{_fmt(d['max_error'])} | {_fmt(d['tolerance'])} | "
                     f"{'PASS' if d['passed'] else 'FAIL'} |\n")
        fh.write("\n![error ratios](error_ratios.png)\n\n## Checks\n\n")
        for r in results:
            fh.write(f"- **{r.name}** ({r.statement}, {r.method}): {r.description}; "
                     f"worst case `{r.worst.label if r.worst else '-'}`\n")
    return [folder / "report.md", folder / "results.json", folder / "error_ratios.png"]


# --------------------------------------------------------------------------
# variant verification (proofs_checks.verify)
# --------------------------------------------------------------------------
_VERDICT_WORD = {"confirmed": "CONFIRMED", "refuted": "REFUTED", "inconclusive": "INCONCLUSIVE"}


def _model_line(m) -> str:
    e = m.estimate
    rel = 1.0 / m.target_norm if m.target_norm > 0 else float("nan")
    line = (f"  [{m.verdict}] {m.label}: delta = {e.delta:.3g} "
            f"(CI [{e.lower:.3g}, {e.upper:.3g}]; {e.delta * rel:.1%} of |target| "
            f"[{e.lower * rel:.1%}, {e.upper * rel:.1%}]), margin {m.margin:.3g}, "
            f"N <= {m.sizes[-1]}, {m.differences.shape[0]} replicates, "
            f"paired spread {m.paired_spread[-1]:.2g} vs control error {m.control_error[-1]:.2g}")
    if m.drifting:
        line += f"; DRIFTING: moves by {e.drift:.3g} at N = {m.sizes[-1]}"
    if m.n_to_decide is not None:
        line += f"; N ~ {m.n_to_decide} would likely decide"
    if m.control_gap > 0:
        line += f"; CLIP's own distance to the target {m.control_gap:.3g}"
    return line


def variant_summary(result) -> str:
    """Readable report of a :class:`proofs_checks.verify.VariantVerification`."""
    v = result.verdict
    counts = {k: sum(m.verdict == k for m in result.models) for k in _VERDICT_WORD}
    head = (f"{result.loss_name}: claim '{result.claim}' ({result.similarity} similarity"
            + (f", direction {result.direction}" if result.claim != "same-minimizers-as-clip" else "")
            + f") {_VERDICT_WORD[v]}")
    if v == "confirmed":
        head += (f": within the margin ({result.margin}) on all {len(result.models)} models, "
                 "with 95 % confidence")
    elif v == "refuted":
        head += (f": a difference finite-N bias cannot explain on {counts['refuted']} of "
                 f"{len(result.models)} models (99.7 % confidence each)")
    elif not result.models:
        head += f" ({result.reason}): no fits were run"
    else:
        head += (f": the data cannot tell a difference from the margin ({result.margin}) on "
                 f"{counts['inconclusive']} of {len(result.models)} models ({result.reason})")
    lines = [head,
             f"  seed {result.seed}, gradient: {result.gradient}, {result.rounds} round(s), "
             f"{result.seconds:.1f} s (adaptive budget {result.budget:g} s)",
             "  delta: distance of the variant's population statistic from the claim's target "
             "(whitened Frobenius), extrapolated in 1/N from paired fits"][: 3 if result.models else 2]
    lines += [_model_line(m) for m in result.models]
    notes = aggregate_notes(result.notes, [m.label for m in result.models])
    if len(notes) > MAX_SUMMARY_NOTES:
        extra = len(notes) - MAX_SUMMARY_NOTES + 1
        notes = notes[: MAX_SUMMARY_NOTES - 1] + [f"... {extra} more: every note is in to_dict()['notes']"]
    lines += [f"  note: {n}" for n in notes]
    if result.advice:
        lines.append(f"  why, and what to run instead: {result.advice}")
    pointer = getattr(result, "fingerprint_hint", None)
    if v == "refuted" and pointer:
        lines.append(f"  what it learns instead: {pointer}")
    return "\n".join(lines)


#: Notes the default summary shows (after aggregation); the JSON keeps every note.
MAX_SUMMARY_NOTES = 8
_PER_FIT = re.compile(r"^(?P<label>.+?), replicate (?P<r>\d+), N=(?P<N>\d+): (?P<text>.*)$")


def aggregate_notes(notes, labels) -> list:
    """The notes as the summary shows them: one line per cause, with counts and the models.

    A note about one fit (``"<model>, replicate r, N=n: <cause>"``; numbers in parentheses
    after a ``;`` dropped, as in "moved 75.5 from its start") is counted with the others of the
    same cause; a note about one model (``"<model>: <text>"``) is merged with the identical
    text on other models.  Order: first appearance."""
    groups, order = {}, []
    for note in notes:
        m = _PER_FIT.match(note)
        if m:
            text = re.sub(r"(\([^()]*?)(?:;\s*)?moved [^)]*\)", r"\1)", m["text"]).replace(" ()", "")
            key = ("fit", text)
            label = m["label"]
        else:
            label = next((lb for lb in labels if note.startswith(lb + ": ")), None)
            key = ("model", note[len(label) + 2:]) if label else ("other", note)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(label)
    out = []
    for kind, text in order:
        seen = list(dict.fromkeys(lb for lb in groups[(kind, text)] if lb))
        if kind == "fit":
            n = len(groups[(kind, text)])
            out.append(f"{text}: {n} fit(s) on {len(seen)} model(s) ({'; '.join(seen)})")
        elif kind == "model":
            out.append(f"{'; '.join(seen)}: {text}" if len(seen) < 3 else f"{len(seen)} models: {text}")
        else:
            out.append(text)
    return out


def variant_figures(result) -> list:
    """One figure per model: the paired difference and errors against N, and the
    largest principal angle against N."""
    import matplotlib.pyplot as plt
    import numpy as np

    figs = []
    for m in result.models:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.8))
        n = np.asarray(m.sizes, dtype=float)
        D = np.linalg.norm(m.differences, axis=2)  # (replicates, sizes)
        for r in range(D.shape[0]):
            ax1.loglog(n, np.maximum(D[r], 1e-16), "-", color="C0", alpha=0.3, lw=0.8)
        ax1.loglog(n, np.maximum(D.mean(axis=0), 1e-16), "o-", color="C0",
                   label="|variant - control| (paired)")
        ax1.loglog(n, np.maximum(m.control_error, 1e-16), "s--", color="C1",
                   label="control's own error")
        e = m.estimate
        ax1.axhline(m.margin, color="grey", ls=":", label=f"margin {m.margin:.2g}")
        ax1.axhspan(max(e.lower, 1e-16), max(e.upper, 1e-16), color="C2", alpha=0.2,
                    label=f"delta CI [{e.lower:.2g}, {e.upper:.2g}]")
        ax1.set_xlabel("N (pairs per batch)")
        ax1.set_ylabel("whitened Frobenius norm")
        ax1.set_title(f"{_VERDICT_WORD[m.verdict]}: {m.label}", fontsize=9)
        ax1.legend(fontsize=7)
        ax2.semilogx(n, np.degrees(m.angles_user.mean(axis=1)), "o-", label="variant")
        ax2.semilogx(n, np.degrees(m.angles_control.mean(axis=1)), "s--", label="CLIP control")
        ax2.set_xlabel("N (pairs per batch)")
        ax2.set_ylabel("largest principal angle (deg)")
        ax2.set_title("u-encoder subspace vs top canonical subspace", fontsize=9)
        ax2.legend(fontsize=7)
        fig.tight_layout()
        figs.append(fig)
    return figs


def write_variant_report(result, directory) -> Path:
    """Write ``report.md``, ``result.json`` and ``model_<k>.png``; return the path of ``report.md``."""
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    lines = [f"# Variant verification: {result.loss_name}", "",
             f"**Claim** `{result.claim}` with `{result.similarity}` similarity: "
             f"**{_VERDICT_WORD[result.verdict]}** (margin {result.margin})", "",
             "```", variant_summary(result), "```", ""]
    for k, (m, fig) in enumerate(zip(result.models, variant_figures(result))):
        name = f"model_{k}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        lines += [f"## Model {k}: {m.label}", "",
                  f"canonical correlations {[round(float(s), 3) for s in m.sigma]}; "
                  f"verdict **{m.verdict}**, delta {m.estimate.delta:.3g} "
                  f"[{m.estimate.lower:.3g}, {m.estimate.upper:.3g}], margin {m.margin:.3g}",
                  "", f"![model {k}]({name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
