r"""Rendering check results: the terminal table, JSON, JUnit XML and a report folder."""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

__all__ = ["format_table", "results_to_json", "write_json", "write_junit", "write_report"]


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
