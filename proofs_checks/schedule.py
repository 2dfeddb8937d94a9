r"""The verifier's schedule: batch sizes and replicates of the first round, how an
undecided model gets more data, and the nominal cost model that spends the budget.

The budget is spent by a cost model, not a clock, so that a verdict does not depend
on the machine's load: a round costs :math:`\sum N^2 \times` (loss evaluations per
step) / rate seconds.  While a model's verdict is undecided its replicates are
doubled up to :data:`MAX_REPLICATES`, then its largest batch, up to :data:`MAX_SIZE`.
"""
from __future__ import annotations

__all__ = ["DEFAULT_SIZES", "DEFAULT_REPLICATES", "DEFAULT_BUDGET", "RATES", "NOMINAL_RATE", "AUTOGRAD_RATE",
           "MAX_REPLICATES", "MAX_SIZE", "next_data", "round_cost"]

#: Default batch sizes per similarity (L2 invariants are estimated with about
#: twice the error of bilinear ones at equal N).
DEFAULT_SIZES = {"dot": (64, 128, 256), "l2": (128, 256, 512), "cosine": (64, 128, 256)}
DEFAULT_REPLICATES = 8
#: Default time budget (seconds) for the adaptive rounds after the first.
DEFAULT_BUDGET = 60.0
#: Nominal rates, in sum(N^2) x evaluations per second, by how the variant's gradient is
#: obtained: a NumPy loss with its own gradient, a NumPy loss by central differences
#: (2 evaluations per parameter and step), torch autograd, JAX autograd.  Measured on 2
#: idle cores by ``benchmarks/calibrate_cost.py`` (a first round at N = 64-256 and a round
#: at N = 512 on the default models; the rate is the geometric mean of the two rounds'
#: rates, since adaptive rounds are of both kinds): nominal/real was then 0.6-1.8 over
#: the kinds and the two rounds, against 3-20 with the single rates below (docs/verifier.md).  Constants, not clocks: a verdict does not depend on
#: the load, only the real seconds do.
RATES = {"numpy": 3.6e6, "numpy-fd": 3.5e6, "torch": 5.8e6, "jax": 2.7e6}
#: The first calibration's single rates (NumPy, autograd), kept for reference: measured at
#: a load of 2, they made a round's nominal cost 3-20 times its real cost on an idle machine.
NOMINAL_RATE = 1.2e6
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
               backend: str = "numpy") -> float:
    """Nominal seconds of an adaptive round for one model: ``reps`` replicates fitted at
    ``new_sizes`` (or, for new replicates, at every size so far), each fit costing the
    control's and the variant's evaluations (``2 n_params`` per step by differences,
    ``n_params`` counting the loss's learned scalars), at the rate of the gradient's kind
    (:data:`RATES`: ``backend`` is ``"numpy"``, ``"torch"`` or ``"jax"``)."""
    if backend not in ("numpy", "torch", "jax"):
        raise ValueError(f"backend={backend!r}: expected 'numpy', 'torch' or 'jax'")
    sizes = sorted(set(sizes_so_far)) if not new_sizes else list(new_sizes)
    per_fit = 1.0 + (2 * n_params if finite_differences else 1.0)  # control + variant
    rate = RATES["numpy-fd" if finite_differences and backend == "numpy" else backend]
    return len(reps) * sum(N * N for N in sizes) * per_fit / rate
