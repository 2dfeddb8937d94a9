"""Benchmark of the streaming CLIP loss+gradient kernel against dense peers.

Usage: python benchmarks/bench_clip_kernel.py [--quick] [--sizes 4096,16384] [--json PATH]

Each configuration runs in its own subprocess so that its peak resident
memory (``ru_maxrss`` of that process, which includes the Python interpreter,
numpy and numba, ~100-200 MiB) is measured in isolation.  Times are the best of
``--repeats`` runs after one warm-up call (which also loads the numba cache).
Peers: dense NumPy/SciPy (logits, logsumexp, softmax, two GEMMs) and, when
torch is importable, the open_clip-style dense loss with autograd and a
hand-chunked two-pass torch version; all with 2 threads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

THREADS = 2


def _dense_numpy(za, zb, tau):
    import numpy as np
    from scipy.special import logsumexp
    N = za.shape[0]
    F = (za @ zb.T) / tau
    r = logsumexp(F, axis=1)
    c = logsumexp(F, axis=0)
    loss = (-np.trace(F) + 0.5 * (r.sum() + c.sum())) / N
    W = np.exp(F - r[:, None])
    W += np.exp(F - c[None, :])
    W /= 2 * N
    W[np.diag_indices(N)] -= 1.0 / N
    return loss, W @ zb / tau, W.T @ za / tau


def _torch_dense(za, zb, tau):
    import torch
    a = torch.from_numpy(za).requires_grad_(True)
    b = torch.from_numpy(zb).requires_grad_(True)
    logits = a @ b.T / tau
    labels = torch.arange(a.shape[0])
    loss = 0.5 * (torch.nn.functional.cross_entropy(logits, labels)
                  + torch.nn.functional.cross_entropy(logits.T, labels))
    loss.backward()
    return float(loss), a.grad.numpy(), b.grad.numpy()


def _torch_chunked(za, zb, tau, block=1024):
    import torch
    with torch.no_grad():
        a, b = torch.from_numpy(za), torch.from_numpy(zb)
        N = a.shape[0]
        r = torch.empty(N, dtype=a.dtype)
        cm = torch.full((N,), -torch.inf, dtype=a.dtype)
        cs = torch.zeros(N, dtype=a.dtype)
        for s in range(0, N, block):
            F = a[s:s + block] @ b.T / tau
            r[s:s + block] = torch.logsumexp(F, dim=1)
            m = torch.maximum(cm, F.max(dim=0).values)
            cs = cs * torch.exp(cm - m) + torch.exp(F - m).sum(dim=0)
            cm = m
        c = cm + torch.log(cs)
        diag = (a * b).sum(dim=1) / tau
        loss = (-diag.sum() + 0.5 * (r.sum() + c.sum())) / N
        ga = torch.empty_like(a)
        gb = torch.zeros_like(b)
        for s in range(0, N, block):
            F = a[s:s + block] @ b.T / tau
            W = (torch.exp(F - r[s:s + block, None]) + torch.exp(F - c[None, :])) / (2 * N)
            idx = torch.arange(s, min(N, s + block))
            W[idx - s, idx] -= 1.0 / N
            ga[s:s + block] = W @ b / tau
            gb += W.T @ a[s:s + block] / tau
    return float(loss), ga.numpy(), gb.numpy()


def _child(cfg):
    """Run one configuration in this process and print a JSON line."""
    import resource
    import numba
    import numpy as np

    numba.set_num_threads(THREADS)
    if cfg["impl"].startswith("torch"):
        import torch
        torch.set_num_threads(THREADS)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from numerics.kernels import clip_loss_and_grad

    rng = np.random.default_rng(0)
    dt = np.dtype(cfg["dtype"])
    N, n_e, tau = cfg["N"], cfg["n_e"], 0.07
    za = rng.standard_normal((N, n_e)).astype(dt)
    zb = rng.standard_normal((N, n_e)).astype(dt)
    za /= np.linalg.norm(za, axis=1, keepdims=True)
    zb /= np.linalg.norm(zb, axis=1, keepdims=True)
    fn = {"kernel": lambda: clip_loss_and_grad(za, zb, tau, "dot"),
          "numpy-dense": lambda: _dense_numpy(za, zb, tau),
          "torch-dense": lambda: _torch_dense(za, zb, tau),
          "torch-chunked": lambda: _torch_chunked(za, zb, tau)}[cfg["impl"]]
    if cfg["warmup"]:
        fn()
    best = float("inf")
    for _ in range(cfg["repeats"]):
        t0 = time.perf_counter()
        loss = fn()[0]
        best = min(best, time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB -> MiB on Linux
    print(json.dumps({**cfg, "seconds": best, "peak_rss_mib": rss, "loss": float(loss)}))


def _run(cfg):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS),
               NUMBA_NUM_THREADS=str(THREADS))
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(cfg)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {**cfg, "error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (1024, 4096; kernel-only 16384)")
    p.add_argument("--sizes", default=None, help="comma-separated N with peers (default 4096,16384)")
    p.add_argument("--big", type=int, default=None, help="kernel-only N (default 65536)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", default=None, help="write all results to this path")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        _child(json.loads(a.child))
        return 0
    sizes = [1024, 4096] if a.quick else [4096, 16384]
    if a.sizes:
        sizes = [int(s) for s in a.sizes.split(",")]
    big = a.big or (16384 if a.quick else 65536)
    try:
        import torch  # noqa: F401
        peers = ["numpy-dense", "torch-dense", "torch-chunked"]
    except ImportError:
        peers = ["numpy-dense"]
    results = []
    print(f"loss+grad, n_e=64, {THREADS} threads, best of {a.repeats}; peak RSS per process (ru_maxrss)")
    print(f"{'dtype':8} {'N':>6} {'impl':14} {'seconds':>9} {'x kernel':>9} {'peak MiB':>9}")
    for dtype in ("float64", "float32"):
        for N in sizes + [big]:
            impls = ["kernel"] + (peers if N in sizes else [])
            base = None
            for impl in impls:
                r = _run({"impl": impl, "N": N, "n_e": 64, "dtype": dtype,
                          "repeats": 1 if N == big and impl == "kernel" and N > 16384 else a.repeats,
                          "warmup": not (N == big and N > 16384)})
                results.append(r)
                if "error" in r:
                    print(f"{dtype:8} {N:6d} {impl:14} failed: {r['error']}")
                    continue
                base = r["seconds"] if impl == "kernel" else base
                ratio = r["seconds"] / base if base else float("nan")
                print(f"{dtype:8} {N:6d} {impl:14} {r['seconds']:9.3f} {ratio:9.2f} {r['peak_rss_mib']:9.0f}",
                      flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
