"""Acceptance run of the verifier on published losses, taken as they are.

Runs ``python -m proofs_checks verify`` on open_clip's ``ClipLoss`` and
``SigLipLoss`` and lightly's ``NTXentLoss``, ``DCLLoss`` and ``DCLWLoss`` (no wrapper: the
classes are instantiated with no arguments), for every claim, under dot and
cosine similarity, and prints one line per run: exit code, verdict, seconds.  Two losses
of the tests come too, under dot: Chuang et al.'s debiased loss (a clamp) and lightly's
DCLW computation with its weights detached, on unnormalised embeddings (a stop-gradient).
Needs ``pip install ".[torch]" open-clip-torch lightly`` (open_clip and lightly
import torchvision).  Not part of the tests.

    python benchmarks/verify_real_losses.py                 # the matrix, seed 0
    python benchmarks/verify_real_losses.py --clip-seeds 5  # and ClipLoss on seeds 0-4
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = ("same-minimizers-as-clip", "same-subspace-as-clip", "matches-conditional-means",
          "matches-conditionals")
LOSSES = {
    "open_clip.loss:ClipLoss": ["--param", "logit_scale=10"],
    "open_clip.loss:ClipLoss (scale fixed)": ["--param", "logit_scale=10", "--learn"],
    "open_clip.loss:SigLipLoss": ["--param", "logit_scale=10", "--param", "logit_bias=-10"],
    "lightly.loss:NTXentLoss": [],
    "lightly.loss:DCLLoss": [],
    "lightly.loss:DCLWLoss": [],
    # the kinds of the verifier's kinks-and-stop-gradients section, as written in the tests
    "tests/test_verify_kinks_stopgrad.py:debiased_torch": ["--inputs", "logits"],
    "tests/test_verify_kinks_stopgrad.py:dclw_detached": [],
}


def run(target, extra, claim, similarity, seed, timeout):
    inputs = [] if "--inputs" in extra else ["--inputs", "embeddings"]
    cmd = [sys.executable, "-m", "proofs_checks", "verify", target.split(" ")[0], "--claim", claim,
           *inputs, "--similarity", similarity, "--seed", str(seed), "--quiet", *extra]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        code = proc.returncode
        head = (proc.stdout.splitlines() or proc.stderr.splitlines() or [""])[0]
    except subprocess.TimeoutExpired:
        code, head = None, f"timed out after {timeout} s"
    return code, head, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip-seeds", type=int, default=1, help="seeds for ClipLoss (default 1)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per run (default 300)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "real_losses.jsonl")
    p.add_argument("--claims", nargs="+", default=list(CLAIMS), choices=CLAIMS, help="claims to run (default all)")
    p.add_argument("--similarities", nargs="+", default=["dot", "cosine"], choices=["dot", "cosine"],
                   help="similarities to run (default both)")
    args = p.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    jobs = []
    for target, extra in LOSSES.items():
        for similarity in args.similarities:
            if ("fixed" in target or target.startswith("tests/")) and similarity == "cosine":
                continue  # a fixed scale is invisible under cosine; the test losses are dot ones
            for claim in args.claims:
                seeds = range(args.clip_seeds) if target.startswith("open_clip.loss:ClipLoss") \
                    and claim in CLAIMS[:2] else [0]
                jobs += [(target, extra, claim, similarity, s) for s in seeds]
    print(f"{len(jobs)} runs", flush=True)
    with args.out.open("a", encoding="utf-8") as fh:
        for target, extra, claim, similarity, seed in jobs:
            code, head, sec = run(target, extra, claim, similarity, seed, args.timeout)
            rec = {"target": target, "args": extra, "claim": claim, "similarity": similarity,
                   "seed": seed, "exit": code, "seconds": round(sec, 1), "summary": head}
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            print(f"exit {code}  {sec:6.1f} s  {target:40s} {similarity:6s} {claim:26s} seed {seed}: "
                  f"{head.split(': ', 1)[-1][:70]}", flush=True)


if __name__ == "__main__":
    main()
