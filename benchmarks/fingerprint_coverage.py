"""Coverage of the spectral fingerprint's intervals on the alignment-weighted family.

For seeds 0..S-1 the loss is CLIP with its alignment term weighted by kappa (cycling through
``--kappas``), whose map is exactly g = kappa * sigma (MATH.md §4.4).  Each seed runs
:func:`proofs_checks.fingerprint` at the default grid, sizes and replicates (the multi-pair
models off: they do not enter g), and records, per grid point, whether the interval covers
kappa * sigma, and the diagnosis.  Prints per grid point the coverage rate with its 95 %
Clopper-Pearson interval, the rate of correct kinds ("proportional" with c's interval
covering kappa), and the seconds per run.  Records: ``benchmarks/results/fingerprint_coverage.jsonl``.

    nice python benchmarks/fingerprint_coverage.py --seeds 51            # about 15 s per seed
    nice python benchmarks/fingerprint_coverage.py --summary-only        # re-read the records
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import logsumexp
from scipy.stats import beta

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def aligned(kappa):
    """CLIP with the alignment term weighted kappa, with its gradient in the logits."""
    def loss(F):
        return float(-kappa * np.mean(np.diag(F)) + 0.5 * np.mean(logsumexp(F, axis=1))
                     + 0.5 * np.mean(logsumexp(F, axis=0)))

    def grad(F):
        N = F.shape[0]
        P = np.exp(F - logsumexp(F, axis=1, keepdims=True))
        Q = np.exp(F - logsumexp(F, axis=0, keepdims=True))
        return (0.5 * (P + Q) - kappa * np.eye(N)) / N

    loss.grad = grad
    loss.__name__ = f"aligned_{kappa:g}"
    return loss


def clopper_pearson(k, n, level=0.95):
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def summarise(records):
    if not records:
        print("no records")
        return
    sig = np.array(records[0]["sigma"])
    cover = np.array([r["covered"] for r in records])
    n = cover.shape[0]
    print(f"{n} fingerprints (kappa in {sorted({r['kappa'] for r in records})}); 95 % Clopper-Pearson intervals")
    print(f"{'sigma':>6}  {'coverage':>8}  interval")
    for i, s in enumerate(sig):
        k = int(cover[:, i].sum())
        lo, hi = clopper_pearson(k, n)
        print(f"{s:6.2f}  {k / n:8.3f}  [{lo:.3f}, {hi:.3f}]")
    k = int(cover.all(axis=1).sum())
    lo, hi = clopper_pearson(k, n)
    print(f"all grid points covered at once: {k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}]")
    right = sum(r["kind"] == "proportional" and r["factor_ci"][0] <= r["kappa"] <= r["factor_ci"][1]
                for r in records)
    lo, hi = clopper_pearson(right, n)
    print(f"kind 'proportional' with c's interval covering kappa: {right}/{n} [{lo:.3f}, {hi:.3f}]")
    kinds = {}
    for r in records:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    print("kinds:", kinds)
    sec = np.array([r["seconds"] for r in records])
    print(f"seconds per fingerprint: median {np.median(sec):.1f}, max {sec.max():.1f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=51)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--kappas", type=float, nargs="+", default=[0.8, 0.9, 1.1])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fingerprint_coverage.jsonl")
    p.add_argument("--summary-only", action="store_true")
    args = p.parse_args(argv)
    from proofs_checks import fingerprint

    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        with args.out.open("a", encoding="utf-8") as fh:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                kappa = args.kappas[seed % len(args.kappas)]
                t0 = time.perf_counter()
                r = fingerprint(aligned(kappa), seed=seed, pair_sigmas=())
                truth = kappa * r.sigma
                rec = {"seed": seed, "kappa": kappa, "sigma": r.sigma.tolist(), "g": r.g.tolist(),
                       "g_ci": r.g_ci.tolist(),
                       "covered": [bool(lo <= t <= hi) for t, (lo, hi) in zip(truth, r.g_ci)],
                       "kind": r.kind, "factor_ci": r.factor["ci"], "seconds": time.perf_counter() - t0}
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                print(f"seed {seed} kappa {kappa}: {r.kind}, c in [{r.factor['ci'][0]:.4f}, "
                      f"{r.factor['ci'][1]:.4f}], covered {sum(rec['covered'])}/{len(truth)}, "
                      f"{rec['seconds']:.1f} s", flush=True)
    records = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
    summarise(records)


if __name__ == "__main__":
    main()
