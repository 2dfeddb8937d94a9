r"""Shared helpers of the experiment notebooks (MATH.md §1-§3, §5, §6): the one module a
notebook imports.

Here:

* :func:`setup`: the one bootstrap of every notebook (command line, output
  paths, seed, clock), the same whether the file runs as a script or as a
  notebook;
* :func:`show_figure`, :func:`write_json`, :func:`progress`: outputs.

Re-exported from the modules beside it:

* ``_losses``: :func:`logits`, :func:`clip_loss_and_grad`,
  :func:`one_sided_loss_and_grad`, :func:`grouped_infonce`, losses built on the
  library's logits, dense InfoNCE and streaming CLIP kernel
  (:mod:`numerics.infonce`, :mod:`numerics.kernels`);
* ``_training``: :class:`Encoder`, :class:`Adam`, :func:`train` (small encoders
  and a first-order training loop), :func:`fit_linear_encoders` (full-batch
  quasi-Newton over linear encoders, :func:`numerics.optimize.minimize_factors`);
* ``_stats``: :func:`loglog_slope`, :func:`percentile_interval`, the statistics
  of the reports.

From the library directly: :func:`numerics.infonce.logits_vjp` (gradients in the
logits pulled back to the embeddings) and
:func:`numerics.importance.self_normalised_moments` (importance-weighted bank
moments of a model conditional, MATH.md §5).

Linear encoders follow the library's convention (MATH.md §1, :mod:`numerics.gaussian`):
:math:`G_u` has shape ``(n_e, n_u)``, the embedding of a row ``u`` is :math:`G_u u`,
and with the bilinear similarity :math:`A = G_u^T G_v / \tau`, :math:`f(u, v) = u^T A v`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    # a source checkout without ``pip install -e .``
    sys.path.insert(0, str(_ROOT))

from numerics import infonce  # noqa: E402
from numerics._validation import InvalidInputError, fail  # noqa: E402

__all__ = [
    "BFGS_MAX_PARAMS",
    "InvalidInputError",
    "NOTEBOOK_ARGS",
    "SERIAL_KERNEL_BELOW",
    "SIMILARITIES",
    "Adam",
    "Encoder",
    "LinearFit",
    "Run",
    "clip_loss_and_grad",
    "fit_linear_encoders",
    "grouped_infonce",
    "in_notebook",
    "logits",
    "loglog_slope",
    "one_sided_loss_and_grad",
    "percentile_interval",
    "progress",
    "setup",
    "show_figure",
    "train",
    "write_json",
]

SIMILARITIES = infonce.SIMILARITIES

#: Environment variable read for the options when the file runs inside a
#: Jupyter kernel, whose own ``sys.argv`` is not ours (for example
#: ``NOTEBOOK_ARGS="--quick --outdir /tmp/nb"``).
NOTEBOOK_ARGS = "NOTEBOOK_ARGS"


# --------------------------------------------------------------------------
# the bootstrap of every notebook
# --------------------------------------------------------------------------
def in_notebook() -> bool:
    """Whether the code runs inside a Jupyter (IPython) kernel."""
    return "ipykernel" in sys.modules


@dataclass
class Run:
    """What :func:`setup` returns: the options and the paths of one run."""

    name: str
    args: argparse.Namespace
    quick: bool
    seed: int
    outdir: Path
    json_path: Path
    t0: float

    def elapsed(self) -> float:
        """Seconds since :func:`setup`."""
        return time.perf_counter() - self.t0


def _single_threaded_blas():
    """Keep NumPy's BLAS on one thread for the rest of the process.

    The notebooks multiply small matrices (a few thousand rows by at most 64
    columns), where BLAS threads cost more than they save: on a loaded 2-core
    machine a (1438, 64) x (64, 16) product and its transpose took 13 ms with
    the default threads and 0.9 ms with one.  The streaming kernel has its own
    (numba) threads and is not affected.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def setup(name: str, description: str, argv=None, *, extra=None) -> Run:
    r"""Parse ``[--quick] [--json PATH] [--outdir DIR] [--seed S]`` and start the clock.

    As a script the options come from the command line.  Inside a Jupyter
    kernel ``sys.argv`` holds the kernel's own arguments, so the options come
    from the environment variable :data:`NOTEBOOK_ARGS` instead (empty: full
    run, outputs in ``out/notebooks``).  ``extra`` is an optional callable
    that adds notebook-specific options to the parser.  NumPy's BLAS is kept
    on one thread from here on (:func:`_single_threaded_blas`).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small run for CI (< 3 minutes)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the metrics (default OUTDIR/NAME.json)")
    parser.add_argument("--outdir", type=Path, default=Path("out") / "notebooks", help="folder for figures and JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    if extra is not None:
        extra(parser)
    if argv is None:
        argv = shlex.split(os.environ.get(NOTEBOOK_ARGS, "")) if in_notebook() else sys.argv[1:]
    args = parser.parse_args(argv)
    _single_threaded_blas()
    return Run(name=name, args=args, quick=bool(args.quick), seed=int(args.seed), outdir=args.outdir,
               json_path=args.json or args.outdir / f"{name}.json", t0=time.perf_counter())


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if not math.isfinite(value):
            raise fail("metrics", value, "finite numbers only (JSON has no NaN)")
        return value
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path, metrics: dict) -> Path:
    """Write ``metrics`` as indented JSON (numpy scalars converted, NaN refused)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=False) + "\n")
    return path


def show_figure(fig, outdir, name: str, *, max_bytes: int = 300_000, dpi: int = 110) -> Path:
    """Save ``fig`` as ``OUTDIR/NAME.png`` (resolution lowered until below ``max_bytes``) and show it.

    In a notebook the figure stays open, so the inline backend draws it under
    the cell; in a script it is closed once saved.  No backend is chosen here:
    ``MPLBACKEND`` or matplotlib's default decides.
    """
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{name}.png"
    while True:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        if path.stat().st_size <= max_bytes or dpi <= 40:
            break
        dpi = int(dpi * 0.8)
    if path.stat().st_size > max_bytes:
        warnings.warn(f"{path} is {path.stat().st_size} bytes, above {max_bytes}", stacklevel=2)
    if not in_notebook():
        plt.close(fig)
    return path


# --------------------------------------------------------------------------
# the helpers of the modules beside this one (see the module docstring)
# --------------------------------------------------------------------------
from _losses import (  # noqa: E402
    SERIAL_KERNEL_BELOW,
    clip_loss_and_grad,
    grouped_infonce,
    logits,
    one_sided_loss_and_grad,
)
from _progress import progress  # noqa: E402
from _stats import loglog_slope, percentile_interval  # noqa: E402
from _training import BFGS_MAX_PARAMS, Adam, Encoder, LinearFit, fit_linear_encoders, train  # noqa: E402
