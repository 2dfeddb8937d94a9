r"""The verifier's schedule: batch sizes and replicates of the first round, how an
undecided model gets more data, and the nominal cost model that spends the budget.

The budget is spent by a cost model, not a clock, so that a verdict does not depend
on the machine's load: a round costs :math:`\sum N^2 \times` (loss evaluations per
paired fit, counted in the model's earlier rounds) / rate seconds.  While a model's verdict is undecided its replicates are
doubled up to :data:`MAX_REPLICATES`, then its largest batch, up to :data:`MAX_SIZE`.
"""
from __future__ import annotations

__all__ = ["DEFAULT_SIZES", "DEFAULT_REPLICATES", "DEFAULT_BUDGET", "RATES",
           "MAX_REPLICATES", "MAX_SIZE", "next_data", "round_cost"]

#: Default batch sizes per similarity (L2 invariants are estimated with about
#: twice the error of bilinear ones at equal N).
DEFAULT_SIZES = {"dot": (64, 128, 256), "l2": (128, 256, 512), "cosine": (64, 128, 256)}
DEFAULT_REPLICATES = 8
#: Default time budget (seconds) for the adaptive rounds after the first.
DEFAULT_BUDGET = 60.0
#: Nominal rates, in :math:`N^2` x loss evaluations per second, by backend.  A fit's work is
#: counted in loss evaluations (:class:`numerics.batch_fit.Counted`: a value is one, a value
#: and gradient two, a differenced gradient its 2n values; the control's evaluations count
#: alike), so the count sees what each fit really did: a kinked fit's gradient sampling,
#: a training field's flow and Jacobians.  The rate turns :math:`N^2` x evaluations into
#: seconds; measured on 2 idle cores by ``benchmarks/calibrate_cost.py`` (docs/verifier.md).
#: Constants, not clocks: a verdict does not depend on the load, only the real seconds do.
RATES = {"numpy": 3.0e7, "torch": 7.1e7, "jax": 3.3e7}
#: Adaptive rounds double the replicates up to this many, then the largest batch.
MAX_REPLICATES = 32
#: Largest batch the adaptive schedule will use (dense N x N logits: 128 MiB at 4096).
MAX_SIZE = 4096


def next_data(replicates_so_far: int, largest: int):
    """The data an undecided model gets next: ``(new replicate indices, new sizes)``, or
    None when the schedule is exhausted.  Set-aside replicates count: their indices are taken."""
    R = replicates_so_far
    if R < MAX_REPLICATES:
        return list(range(R, min(2 * R, MAX_REPLICATES))), []
    if 2 * largest <= MAX_SIZE:
        return list(range(R)), [2 * largest]
    return None


def round_cost(sizes_so_far, reps, new_sizes, evaluations, backend: str = "numpy") -> float:
    """Nominal seconds of an adaptive round for one model: ``reps`` replicates fitted at
    ``new_sizes`` (or, for new replicates, at every size so far), each paired fit (control
    and variant) costing :math:`N^2` x its evaluations at the backend's rate (:data:`RATES`).

    ``evaluations`` maps a batch size to the mean evaluations of the model's paired fits
    there so far (:attr:`numerics.batch_fit.PairedFit.evaluations`); a size not fitted yet
    costs what the largest fitted size did.  ``backend`` is ``"numpy"``, ``"torch"`` or ``"jax"``."""
    if backend not in RATES:
        raise ValueError(f"backend={backend!r}: expected 'numpy', 'torch' or 'jax'")
    if not evaluations:
        raise ValueError("evaluations={}: expected the evaluations per paired fit of at least one size")
    sizes = sorted(set(sizes_so_far)) if not new_sizes else list(new_sizes)
    largest = evaluations[max(evaluations)]
    work = sum(N * N * evaluations.get(N, largest) for N in sizes)
    return len(reps) * work / RATES[backend]
