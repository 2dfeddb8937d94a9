r"""The verifier's schedule: batch sizes and replicates of the first round, how an
undecided model gets more data, and the nominal cost model that spends the budget.

The budget is spent by a cost model, not a clock, so that a verdict does not depend
on the machine's load: a round costs :math:`\sum N^2 \times` (loss evaluations per
step) / rate seconds.  While a model's verdict is undecided its replicates are
doubled up to :data:`MAX_REPLICATES`, then its largest batch, up to :data:`MAX_SIZE`.
"""
from __future__ import annotations

__all__ = ["DEFAULT_SIZES", "DEFAULT_REPLICATES", "DEFAULT_BUDGET", "NOMINAL_RATE", "AUTOGRAD_RATE",
           "MAX_REPLICATES", "MAX_SIZE", "next_data", "round_cost"]

#: Default batch sizes per similarity (L2 invariants are estimated with about
#: twice the error of bilinear ones at equal N).
DEFAULT_SIZES = {"dot": (64, 128, 256), "l2": (128, 256, 512), "cosine": (64, 128, 256)}
DEFAULT_REPLICATES = 8
#: Default time budget (seconds) for the adaptive rounds after the first.
DEFAULT_BUDGET = 60.0
#: Nominal rate of a NumPy loss, in sum(N^2) x evaluations per second, measured on 2
#: cores (benchmarks/calibrate_verifier.py prints the real seconds).  Measured again
#: after the dense InfoNCE moved off SciPy's array dispatch: 1.25e6 (round 1) and
#: 1.36e6 (a round at N = 512) units per second on 2 cores at a load of 2; the old
#: 4e5 stopped one-directional InfoNCE one round short of a verdict on 10 of 70 seeds.
NOMINAL_RATE = 1.2e6
#: The same for a torch or JAX loss, whose calls carry the framework's overhead
#: and often more work per logit (in-view negatives double N): 4e5, with which
#: open_clip's and lightly's losses gave their verdicts within 5 minutes on 2
#: busy cores (benchmarks/verify_real_losses.py).
AUTOGRAD_RATE = 4.0e5
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


def round_cost(sizes_so_far, reps, new_sizes, n_params: int, finite_differences: bool,
               autograd: bool) -> float:
    """Nominal seconds of an adaptive round for one model: ``reps`` replicates fitted at
    ``new_sizes`` (or, for new replicates, at every size so far), each fit costing the
    control's and the variant's evaluations (``2 n_params`` per step by differences)."""
    sizes = sorted(set(sizes_so_far)) if not new_sizes else list(new_sizes)
    per_fit = 1.0 + (2 * n_params if finite_differences else 1.0)  # control + variant
    rate = AUTOGRAD_RATE if autograd else NOMINAL_RATE
    return len(reps) * sum(N * N for N in sizes) * per_fit / rate
