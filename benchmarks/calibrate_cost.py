"""The verifier's nominal cost model against real seconds, per backend and gradient kind.

The adaptive schedule spends its budget by a nominal cost (:func:`proofs_checks.schedule.round_cost`),
not by a clock, so that a verdict does not depend on the machine's load.  This script
measures, for one loss of each kind (NumPy with its own gradient, NumPy by finite
differences, torch autograd, JAX autograd, a kinked NumPy loss, a torch training field),
the real seconds of the rounds the verifier runs (the first round at the default sizes,
then a round at twice the largest size) on the default models, the work they did
(:math:`N^2` x loss evaluations, counted), the rate (work per second), the nominal seconds
at :data:`proofs_checks.schedule.RATES` and their ratio to the real ones, and the nominal
seconds the verifier predicted for the second round from the first's counts.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from numerics.user_loss import ClipControl, UserLoss  # noqa: E402
from proofs_checks.model_run import ModelRun, run_chain  # noqa: E402
from proofs_checks.schedule import DEFAULT_REPLICATES, DEFAULT_SIZES, RATES, round_cost  # noqa: E402
from proofs_checks.verify import default_variant_models  # noqa: E402

EXAMPLES = ROOT / "examples" / "variants"


def _example(name, func):
    spec = importlib.util.spec_from_file_location(f"_cost_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, func)


def _kinds():
    """name -> (loss, UserLoss keyword arguments, objective)."""
    from calibration_families import kinked_max, stopgrad_linear

    return {
        "numpy-user": lambda: (_example("one_directional", "one_directional_infonce"), {}, "value"),
        "numpy-fd": lambda: (_example("positive_penalty", "positive_penalty"), {}, "value"),
        "torch": lambda: (_example("torch_learned_temperature", "LearnedTemperatureClip")(),
                          {"inputs": "embeddings"}, "value"),
        "jax": lambda: (_example("jax_sigmoid_learned_bias", "sigmoid_loss"),
                        {"inputs": "embeddings", "params": {"logit_scale": 10.0, "logit_bias": -10.0}}, "value"),
        "numpy-kinked": lambda: (kinked_max(0.1), {}, "value"),
        "torch-field": lambda: (stopgrad_linear(0.1), {}, "training-field"),
    }


def measure(kind: str, seed: int = 0, similarity: str = "dot") -> list:
    """``(backend, [(round, N^2 x evaluations, predicted nominal s, real s)])`` for the first round and a
    round at 2 N_max; the prediction of the second is the verifier's, from the first's counts
    (the first round is not budgeted: None)."""
    loss, kw, objective = _kinds()[kind]()
    user = UserLoss(loss, name=kind, **kw)
    user.detect_roles(similarity, np.random.default_rng([seed, 31337]))
    control = ClipControl(1.0)
    sizes = list(DEFAULT_SIZES[similarity])
    reps = list(range(DEFAULT_REPLICATES))
    runs = [ModelRun(k, m, similarity, "same-minimizers-as-clip", "both", None, seed,
                     np.random.default_rng([seed, k, 104729]), user, control)
            for k, m in enumerate(default_variant_models(seed, 3, similarity))]
    out = []
    for label, new in (("first round", sizes), (f"round at N={2 * sizes[-1]}", [2 * sizes[-1]])):
        predicted = (sum(round_cost(run.sizes, reps, new, run.evaluations(), user.backend) for run in runs)
                     if runs[0].chains else None)
        work, t0 = 0.0, time.perf_counter()
        for run in runs:
            for r in reps:
                task = run.task(similarity, seed, r, new, probe=False)
                task.objective = objective
                records, state = run_chain(task)
                run.add(r, records, state)
                work += sum(rec.N**2 * rec.evaluations for rec in records)
            run.sizes = sorted(set(run.sizes) | set(new))
        out.append((label, work, predicted, time.perf_counter() - t0))
    return user.backend, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", nargs="+", default=list(_kinds()), choices=list(_kinds()))
    args = p.parse_args(argv)
    print(f"{'kind':<13} {'round':<16} {'N^2 x evals':>12} {'real s':>7} {'rate':>8} {'nominal s':>10} "
          f"{'nominal/real':>13} {'predicted s':>12}")
    for kind in args.kinds:
        try:
            backend, rows = measure(kind)
        except Exception as exc:  # a backend that is not installed: say so and go on
            print(f"{kind:<13} skipped: {type(exc).__name__}: {exc}")
            continue
        for label, work, predicted, real in rows:
            nominal = work / RATES[backend]
            print(f"{kind:<13} {label:<16} {work:>12.3g} {real:>7.1f} {work / real:>8.2g} {nominal:>10.1f} "
                  f"{nominal / real:>13.2f} {'-' if predicted is None else f'{predicted:.1f}':>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
