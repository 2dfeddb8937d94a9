"""Measured error rates of the loss verifier (python -m proofs_checks verify).

Runs :func:`proofs_checks.verify_variant` with its default settings on many
seeds, for loss variants whose true answer to ``same-minimizers-as-clip`` is
known:

* correct variants (true delta = 0): CLIP itself, one-directional InfoNCE, and
  InfoNCE with the positives removed from the denominators (decoupled);
* a family of wrong variants with a known gap: the alignment term weighted
  (1 + kappa), whose bilinear population minimiser is exactly (1 + kappa) A*,
  so that the relative distance is delta / |target| = kappa.

``--kinds`` adds the families of :mod:`calibration_families` (kinked losses, stop-gradient
losses, a norm-invariant loss, a reparametrised temperature, batch-standardised losses),
whose truths are derived there; ``smooth`` is the set above.

Every verdict is appended to a JSON-lines file as soon as it is known, so an
interrupted run resumes where it stopped.  Verdicts are independent tasks
(seeded by variant and seed) and can run on a Dask cluster
(``--workers K`` or ``--scheduler tcp://HOST:PORT``).  The summary, with
Clopper-Pearson 95 % intervals, is written as JSON next to the records and as
a figure of P(refuted) and P(confirmed) against delta.

    python benchmarks/calibrate_verifier.py --correct-seeds 70 --kappa-seeds 50 --workers 2
    python benchmarks/calibrate_verifier.py --summary-only     # re-summarise the records
    python benchmarks/calibrate_verifier.py --kinds kinked stopgrad reparametrised --seeds 50
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proofs_checks.parallel import executor  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from calibration_families import FAMILIES  # noqa: E402

EXAMPLES = ROOT / "examples" / "variants"
OUT = ROOT / "benchmarks" / "results"
KAPPAS = (0.02, 0.05, 0.1, 0.2, 0.5)
CORRECT = {"clip": ("clip", "clip_loss"), "one-directional": ("one_directional", "one_directional_infonce"),
           "decoupled": ("decoupled", "decoupled_contrastive")}


def _example(name, func):
    spec = importlib.util.spec_from_file_location(f"_calib_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, func)


def _kappa_loss(kappa):
    from numerics.infonce import infonce_grad, infonce_loss

    def loss(F):
        return infonce_loss(F) - kappa * float(np.mean(np.diag(F)))

    def grad(F):
        return infonce_grad(F) - kappa * np.eye(F.shape[0]) / F.shape[0]

    loss.grad = grad
    return loss


def _loss(variant):
    if variant.startswith("kappa="):
        return _kappa_loss(float(variant.split("=")[1]))
    if variant == "clip":
        from numerics.infonce import infonce_grad, infonce_loss

        loss = _example(*CORRECT["clip"])
        loss.grad = infonce_grad if getattr(loss, "grad", None) is None else loss.grad
        return loss
    return _example(*CORRECT[variant])


def _family(variant):
    for kind, family in FAMILIES.items():
        if variant in family:
            return kind, family[variant]
    return None, None


def run_family(variant, seed):
    """One verdict on a variant of :data:`calibration_families.FAMILIES`."""
    from proofs_checks.verify import verify_variant

    kind, (factory, kwargs, truth, rel) = _family(variant)
    truth = truth(seed) if callable(truth) else truth
    t0 = time.perf_counter()
    res = verify_variant(factory(), seed=seed, **kwargs)
    return {"variant": variant, "kind": kind, "seed": seed, "truth": truth, "true_relative_delta": rel,
            "verdict": res.verdict, "reason": res.reason, "seconds": time.perf_counter() - t0,
            "rounds": res.rounds, "objective": res.objective}


def run_one(task):
    """One verdict (a Dask task): ``task = (variant, seed)``."""
    from proofs_checks.verify import verify_variant

    variant, seed = task
    if _family(variant)[0] is not None:
        return run_family(variant, seed)
    t0 = time.perf_counter()
    res = verify_variant(_loss(variant), claim="same-minimizers-as-clip", seed=seed)
    kappa = float(variant.split("=")[1]) if variant.startswith("kappa=") else 0.0
    return {"variant": variant, "seed": seed, "true_relative_delta": kappa, "verdict": res.verdict,
            "seconds": time.perf_counter() - t0, "rounds": res.rounds,
            "models": [{"relative_delta": m.to_dict()["relative_delta"],
                        "relative_delta_ci": m.to_dict()["relative_delta_ci"],
                        "verdict": m.verdict, "replicates": int(m.differences.shape[0]),
                        "n_max": int(m.sizes[-1]), "drifting": m.drifting} for m in res.models]}


def clopper_pearson(k, n, level=0.95):
    """Exact binomial interval for k successes in n trials."""
    from scipy.stats import beta

    if n == 0:
        return [math.nan, math.nan]
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return [lo, hi]


def _rate(records, verdict):
    k = sum(r["verdict"] == verdict for r in records)
    return {"count": k, "n": len(records), "rate": k / len(records) if records else math.nan,
            "ci95": clopper_pearson(k, len(records))}


def summarise_families(records) -> dict:
    """Per family variant: the rates that matter for its truth, and seconds per verdict."""
    out = {}
    for variant in sorted({r["variant"] for r in records}):
        rs = [r for r in records if r["variant"] == variant]
        kept = [r for r in rs if r["truth"] is not None]
        truth = kept[0]["truth"] if kept else None
        entry = {"kind": rs[0]["kind"], "truth": truth, "seeds": len(rs), "counted": len(kept),
                 "seconds": {"median": float(np.median([r["seconds"] for r in rs])),
                             "p90": float(np.percentile([r["seconds"] for r in rs], 90))},
                 "refuted": _rate(kept, "refuted"), "confirmed": _rate(kept, "confirmed"),
                 "inconclusive": _rate(kept, "inconclusive")}
        if truth == "ill-posed":
            k = sum(r["verdict"] == "inconclusive" and r["reason"] == "ill-posed" for r in kept)
            entry["ill_posed_answer"] = {"count": k, "n": len(kept), "rate": k / len(kept) if kept else math.nan,
                                         "ci95": clopper_pearson(k, len(kept))}
        out[variant] = entry
    return out


def summarise(records) -> dict:
    family = [r for r in records if "kind" in r]
    records = [r for r in records if "kind" not in r]
    if not records:
        return {"verdicts": 0, "correct": None, "kappa": {}, "families": summarise_families(family)}
    correct = [r for r in records if r["true_relative_delta"] == 0.0]
    out = {"verdicts": len(records),
           "seconds_per_verdict": {"median": float(np.median([r["seconds"] for r in records])),
                                   "p90": float(np.percentile([r["seconds"] for r in records], 90)),
                                   "max": float(np.max([r["seconds"] for r in records]))}
           if records else {},
           "correct": {"seeds": sorted({r["seed"] for r in correct}),
                       "variants": sorted({r["variant"] for r in correct}),
                       "false_refutation": _rate(correct, "refuted"),
                       "confirmed": _rate(correct, "confirmed"),
                       "inconclusive": _rate(correct, "inconclusive")},
           "kappa": {}}
    for kappa in sorted({r["true_relative_delta"] for r in records} - {0.0}):
        rs = [r for r in records if r["true_relative_delta"] == kappa]
        entry = {"seeds": len(rs), "refuted": _rate(rs, "refuted"), "confirmed": _rate(rs, "confirmed"),
                 "inconclusive": _rate(rs, "inconclusive")}
        if kappa > 0.05:  # above the default margin: a confirmation is false
            entry["false_confirmation"] = entry["confirmed"]
        out["kappa"][f"{kappa:g}"] = entry
    out["families"] = summarise_families(family)
    return out


def figure(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(float(k) for k in summary["kappa"])
    fig, ax = plt.subplots(figsize=(6, 3.8))
    c = summary["correct"]
    xs = [0.0] + ks
    for key, label, color in (("refuted", "P(refuted)", "C3"), ("confirmed", "P(confirmed)", "C0")):
        rows = [c["false_refutation"] if key == "refuted" else c["confirmed"]] + \
               [summary["kappa"][f"{k:g}"][key] for k in ks]
        p = [r["rate"] for r in rows]
        lo = [r["rate"] - r["ci95"][0] for r in rows]
        hi = [r["ci95"][1] - r["rate"] for r in rows]
        ax.errorbar(xs, p, yerr=[lo, hi], fmt="o-", color=color, capsize=3, label=label)
    ax.axvline(0.05, color="grey", ls=":", label="default margin (5 %)")
    ax.set_xscale("symlog", linthresh=0.02)
    ax.set_xlabel(r"true relative distance $\delta/\|T\|$ ($\kappa$; 0 = correct variants)")
    ax.set_ylabel("fraction of verdicts")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlim(-0.004, 0.7)
    ax.set_title(f"verifier calibration: {summary['verdicts']} verdicts, 95 % Clopper-Pearson", fontsize=9)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--correct-seeds", type=int, default=70, help="seeds per correct variant (default 70)")
    p.add_argument("--kappa-seeds", type=int, default=50, help="seeds per kappa (default 50)")
    p.add_argument("--records", type=Path, default=OUT / "calibration_records.jsonl")
    p.add_argument("--summary", type=Path, default=OUT / "calibration.json")
    p.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "verifier_calibration.png")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--scheduler", default=None)
    p.add_argument("--summary-only", action="store_true", help="summarise existing records only")
    p.add_argument("--kinds", nargs="+", default=["smooth"], choices=["smooth", *FAMILIES],
                   help="which families to run (default: smooth, the set of the first study)")
    p.add_argument("--seeds", type=int, default=50, help="seeds per variant of the other kinds (default 50)")
    p.add_argument("--from-seed", type=int, default=0,
                   help="first seed of the other kinds to run (default 0): a second process on the same "
                        "records can take the upper seeds")
    args = p.parse_args(argv)
    args.records.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if args.records.exists():
        for line in args.records.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                done[(rec["variant"], rec["seed"])] = rec
    if not args.summary_only:
        # Seed by seed, every variant: an interrupted run leaves a balanced sample.
        tasks = []
        if "smooth" in args.kinds:
            for s in range(max(args.correct_seeds, args.kappa_seeds)):
                tasks += [(v, s) for v in CORRECT if s < args.correct_seeds]
                tasks += [(f"kappa={k:g}", s) for k in KAPPAS if s < args.kappa_seeds]
        for s in range(args.from_seed, args.seeds):
            tasks += [(v, s) for kind in args.kinds if kind != "smooth" for v in FAMILIES[kind]]
        todo = [t for t in tasks if t not in done]
        print(f"{len(done)} verdicts on file, {len(todo)} to run", file=sys.stderr)
        chunk = 8 * max(1, args.workers)
        with executor(args.workers, args.scheduler) as ex:
            for start in range(0, len(todo), chunk):
                batch = todo[start:start + chunk]
                for rec in ex.map(run_one, batch):
                    with args.records.open("a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    done[(rec["variant"], rec["seed"])] = rec
                print(f"{len(done)} verdicts ({start + len(batch)}/{len(todo)} this run)",
                      file=sys.stderr, flush=True)
    records = sorted(done.values(), key=lambda r: (r["variant"], r["seed"]))
    summary = summarise(records)
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(json.dumps(summary, indent=2))
    if summary["kappa"] and summary.get("correct"):
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        figure(summary, args.figure)
    for name, e in summary["families"].items():
        extra = (f", ill-posed answer {e['ill_posed_answer']['rate']:.3f} {e['ill_posed_answer']['ci95']}"
                 if "ill_posed_answer" in e else "")
        print(f"{name} ({e['kind']}, truth {e['truth']}): {e['counted']} of {e['seeds']} seeds counted, refuted "
              f"{e['refuted']['rate']:.3f} {e['refuted']['ci95']}, confirmed {e['confirmed']['rate']:.3f} "
              f"{e['confirmed']['ci95']}, inconclusive {e['inconclusive']['rate']:.3f}{extra}; seconds median "
              f"{e['seconds']['median']:.1f}, p90 {e['seconds']['p90']:.1f}")
    c = summary["correct"]
    if c is None:
        return 0
    print(f"correct variants: {c['false_refutation']['n']} verdicts, false refutation "
          f"{c['false_refutation']['rate']:.3f} {c['false_refutation']['ci95']}, inconclusive "
          f"{c['inconclusive']['rate']:.3f}, confirmed {c['confirmed']['rate']:.3f}")
    for k, e in summary["kappa"].items():
        print(f"kappa {k}: {e['seeds']} verdicts, refuted {e['refuted']['rate']:.3f} {e['refuted']['ci95']}, "
              f"confirmed {e['confirmed']['rate']:.3f} {e['confirmed']['ci95']}, inconclusive "
              f"{e['inconclusive']['rate']:.3f}")
    if records:
        print(f"seconds per verdict: median {summary['seconds_per_verdict']['median']:.1f}, "
              f"p90 {summary['seconds_per_verdict']['p90']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
