"""The verifier's nominal cost model against real seconds, per backend and gradient kind.

The adaptive schedule spends its budget by a nominal cost (:func:`proofs_checks.schedule.round_cost`),
not by a clock, so that a verdict does not depend on the machine's load.  This script
measures, for one loss of each kind (NumPy with its own gradient, NumPy by finite
differences, torch autograd, JAX autograd), the real seconds of the rounds the verifier
runs (the first round at the default sizes, then a round at twice the largest size) on
the default models, and prints them beside the nominal seconds and their ratio.
Run it on an idle machine; the rates in :mod:`proofs_checks.schedule` are set from it.

    python benchmarks/calibrate_cost.py            # every kind whose backend is installed
    python benchmarks/calibrate_cost.py --kinds numpy-user numpy-fd
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from numerics.user_loss import ClipControl, UserLoss  # noqa: E402
from proofs_checks.model_run import ModelRun, run_chain  # noqa: E402
from proofs_checks.schedule import DEFAULT_REPLICATES, DEFAULT_SIZES, round_cost  # noqa: E402
from proofs_checks.verify import default_variant_models  # noqa: E402

EXAMPLES = ROOT / "examples" / "variants"


def _example(name, func):
    spec = importlib.util.spec_from_file_location(f"_cost_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, func)


def _kinds():
    """name -> (loss, UserLoss keyword arguments)."""
    return {
        "numpy-user": lambda: (_example("one_directional", "one_directional_infonce"), {}),
        "numpy-fd": lambda: (_example("positive_penalty", "positive_penalty"), {}),
        "torch": lambda: (_example("torch_learned_temperature", "LearnedTemperatureClip")(),
                          {"inputs": "embeddings"}),
        "jax": lambda: (_example("jax_sigmoid_learned_bias", "sigmoid_loss"),
                        {"inputs": "embeddings", "params": {"logit_scale": 10.0, "logit_bias": -10.0}}),
    }


def measure(kind: str, seed: int = 0, similarity: str = "dot") -> list:
    """``[(round, nominal seconds, real seconds)]`` for the first round and a round at 2 N_max."""
    loss, kw = _kinds()[kind]()
    user = UserLoss(loss, name=kind, **kw)
    user.detect_roles(similarity, np.random.default_rng([seed, 31337]))
    control = ClipControl(1.0)
    sizes = list(DEFAULT_SIZES[similarity])
    reps = list(range(DEFAULT_REPLICATES))
    runs = [ModelRun(k, m, similarity, "same-minimizers-as-clip", "both", None, seed,
                     np.random.default_rng([seed, k, 104729]), user, control)
            for k, m in enumerate(default_variant_models(seed, 3, similarity))]
    fd = not user.has_gradient()
    out = []
    for label, new in (("first round", sizes), (f"round at N={2 * sizes[-1]}", [2 * sizes[-1]])):
        nominal = sum(round_cost(run.sizes, reps, new, run.fam.size, fd, user.backend) for run in runs)
        t0 = time.perf_counter()
        for run in runs:
            for r in reps:
                records, state = run_chain(run.task(similarity, seed, r, new, probe=False))
                run.add(r, records, state)
            run.sizes = sorted(set(run.sizes) | set(new))
        out.append((label, nominal, time.perf_counter() - t0))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", nargs="+", default=list(_kinds()), choices=list(_kinds()))
    args = p.parse_args(argv)
    print(f"{'kind':<12} {'round':<18} {'nominal s':>10} {'real s':>8} {'nominal/real':>13}")
    for kind in args.kinds:
        try:
            rows = measure(kind)
        except Exception as exc:  # a backend that is not installed: say so and go on
            print(f"{kind:<12} skipped: {type(exc).__name__}: {exc}")
            continue
        for label, nominal, real in rows:
            print(f"{kind:<12} {label:<18} {nominal:>10.1f} {real:>8.1f} {nominal / real:>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
