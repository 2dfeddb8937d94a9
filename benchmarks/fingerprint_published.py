"""Spectral fingerprints of published losses, with their closed-form maps (MATH.md §4.4).

Runs :func:`proofs_checks.fingerprint` (default grid, sizes, replicates and multi-pair model)
on CLIP, one-directional InfoNCE, label smoothing (eps = 0.1), SigLIP's sigmoid loss with a
learned scale and bias, the decoupled contrastive loss (positives removed from the
denominators), CLIP with an embedding-norm penalty (lambda = 0.2) and a sigmoid loss with a
fixed bias; prints each summary, writes ``benchmarks/results/fingerprint_published.json``
and the figure ``docs/figures/fingerprint_published.png``.

    nice python benchmarks/fingerprint_published.py            # about 5 minutes on 2 cores
    nice python benchmarks/fingerprint_published.py --plot-only
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "fingerprint_published.json"
FIG = ROOT / "docs" / "figures" / "fingerprint_published.png"


def _softmaxes(F):
    return (np.exp(F - logsumexp(F, axis=1, keepdims=True)), np.exp(F - logsumexp(F, axis=0, keepdims=True)))


def clip(F):
    return float(-np.mean(np.diag(F)) + 0.5 * np.mean(logsumexp(F, axis=1)) + 0.5 * np.mean(logsumexp(F, axis=0)))


def _clip_grad(F):
    P, Q = _softmaxes(F)
    return (0.5 * (P + Q) - np.eye(F.shape[0])) / F.shape[0]


clip.grad = _clip_grad


def one_directional(F):
    return float(-np.mean(np.diag(F)) + np.mean(logsumexp(F, axis=1)))


one_directional.grad = lambda F: (_softmaxes(F)[0] - np.eye(F.shape[0])) / F.shape[0]

EPS = 0.1


def label_smoothing(F):
    N = F.shape[0]
    T = (1 - EPS) * np.eye(N) + EPS / N
    return float(-0.5 * np.sum(T * (F - logsumexp(F, axis=1, keepdims=True))) / N
                 - 0.5 * np.sum(T * (F - logsumexp(F, axis=0, keepdims=True))) / N)


def _ls_grad(F):
    N = F.shape[0]
    P, Q = _softmaxes(F)
    return (0.5 * (P + Q) - ((1 - EPS) * np.eye(N) + EPS / N)) / N


label_smoothing.grad = _ls_grad


def siglip(za, zb, logit_scale, logit_bias):
    F = logit_scale * za @ zb.T + logit_bias
    z = 2.0 * np.eye(F.shape[0]) - 1.0
    return float(np.sum(np.logaddexp(0.0, -z * F)) / F.shape[0])


def decoupled(F):
    G = np.where(np.eye(F.shape[0], dtype=bool), -np.inf, F)
    return float(-np.mean(np.diag(F)) + 0.5 * np.mean(logsumexp(G, axis=1)) + 0.5 * np.mean(logsumexp(G, axis=0)))


def _dcl_grad(F):
    N = F.shape[0]
    G = np.where(np.eye(N, dtype=bool), -np.inf, F)
    P, Q = _softmaxes(G)
    return (0.5 * (P + Q) - np.eye(N)) / N


decoupled.grad = _dcl_grad
LAM = 0.2


def norm_penalty(za, zb):
    return clip(za @ zb.T) + 0.5 * LAM * float(np.mean(np.sum(za**2, 1) + np.sum(zb**2, 1)))


def _np_grad(za, zb):
    dF = _clip_grad(za @ zb.T)
    N = za.shape[0]
    return dF @ zb + LAM * za / N, dF.T @ za + LAM * zb / N


norm_penalty.grad = _np_grad


def sigmoid_fixed_bias(F):
    z = 2.0 * np.eye(F.shape[0]) - 1.0
    return float(np.sum(np.logaddexp(0.0, -z * (F - 2.0))) / F.shape[0])


sigmoid_fixed_bias.grad = lambda F: -(2.0 * np.eye(F.shape[0]) - 1.0) / (
    1.0 + np.exp((2.0 * np.eye(F.shape[0]) - 1.0) * (F - 2.0))) / F.shape[0]

LOSSES = {
    "CLIP": (clip, {}, lambda s: s),
    "one-directional InfoNCE": (one_directional, {}, lambda s: s),
    f"label smoothing eps={EPS:g}": (label_smoothing, {}, lambda s: (1 - EPS) * s),
    "SigLIP, learned scale and bias": (siglip, {"inputs": "embeddings",
                                               "params": {"logit_scale": 1.0, "logit_bias": -3.0}},
                                       lambda s: (math.sqrt(1 + 4 * s * s) - 1) / (2 * s)),
    "decoupled (DCL)": (decoupled, {}, lambda s: s),
    f"embedding-norm penalty lambda={LAM:g}": (norm_penalty, {"inputs": "embeddings"}, lambda s: max(s - LAM, 0.0)),
    "sigmoid, fixed bias -2": (sigmoid_fixed_bias, {}, None),
}


def plot(results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(14, 7), sharex=True, sharey=True)
    for ax, (name, r) in zip(axes.ravel(), results.items()):
        s = np.array(r["sigma"])
        ci = np.array(r["g_ci"])
        ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1)
        ax.fill_between(s, ci[:, 0], ci[:, 1], alpha=0.3, lw=0)
        ax.plot(s, r["g"], "o-", ms=3)
        if r.get("closed_form"):
            ax.plot(s, r["closed_form"]["values"], "k:", lw=1.2)
        ax.set_title(f"{name}\n{r['kind']}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.05, 1.05)
    for ax in axes[-1]:
        ax.set_xlabel("sigma")
    for ax in axes[:, 0]:
        ax.set_ylabel("g(sigma)")
    axes.ravel()[-1].axis("off")
    fig.suptitle("Spectral fingerprints (dashed: CLIP, g = sigma; dotted: closed form; band: 95 % intervals)")
    fig.tight_layout()
    FIG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIG, dpi=110)
    print(f"figure written to {FIG}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--only", nargs="*", help="names (substrings) of the losses to run")
    args = p.parse_args(argv)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    if not args.plot_only:
        from proofs_checks import fingerprint

        for name, (loss, kw, cf) in LOSSES.items():
            if args.only and not any(o in name for o in args.only):
                continue
            t0 = time.perf_counter()
            r = fingerprint(loss, name=name, closed_form=cf, **kw)
            print(r.summary(), flush=True)
            results[name] = r.to_dict()
            results[name]["wall_seconds"] = time.perf_counter() - t0
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(results, indent=1))
    plot({k: results[k] for k in LOSSES if k in results})


if __name__ == "__main__":
    main()
