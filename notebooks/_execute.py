r"""Execute the experiment notebooks as notebooks: jupytext to ``.ipynb``, then nbclient.

``python notebooks/_execute.py [--quick] [--outdir DIR] [NAME ...]`` converts each
``notebooks/NAME.py`` (py:percent) to a notebook, runs it in a fresh Jupyter
kernel whose working directory is ``notebooks/``, and writes the executed
notebook, its figures and its JSON to ``DIR``.  The notebook's own options
reach it through the environment variable ``NOTEBOOK_ARGS`` (see
``_common.setup``).  The kernel draws figures with the inline backend whatever
``MPLBACKEND`` says, so the executed notebook holds them as outputs.

A run fails (exit status 1) if a cell raises, if a notebook shows no figure,
or if its JSON carries an ``acceptance`` entry that is false.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("synthetic_gaussian", "labeled_digits", "ocean_lagrangian")
INLINE = "module://matplotlib_inline.backend_inline"


def count_figures(nb) -> int:
    """Number of PNG outputs in an executed notebook."""
    return sum("image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
               for out in cell.get("outputs", []))


def failed_acceptance(metrics: dict) -> list[str]:
    """Names of the false entries of the ``acceptance`` block of a notebook's metrics."""
    return [name for name, ok in metrics.get("acceptance", {}).items() if not ok]


def execute(name: str, outdir: Path, *, quick: bool, timeout: int) -> tuple[float, int, list[str]]:
    """Convert, run and save one notebook; returns (seconds, figures, failed acceptance entries)."""
    import jupytext
    from nbclient import NotebookClient

    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    json_path = outdir / f"{name}.json"
    nb = jupytext.read(HERE / f"{name}.py")
    options = (["--quick"] if quick else []) + ["--outdir", str(outdir), "--json", str(json_path)]
    saved = {key: os.environ.get(key) for key in ("NOTEBOOK_ARGS", "MPLBACKEND")}
    os.environ["NOTEBOOK_ARGS"] = shlex.join(options)
    os.environ["MPLBACKEND"] = INLINE
    t0 = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(HERE)}})
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        jupytext.write(nb, outdir / f"{name}.ipynb")
    seconds = time.perf_counter() - t0
    return seconds, count_figures(nb), failed_acceptance(json.loads(json_path.read_text()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(NOTEBOOKS), help=f"notebooks to run (default: {' '.join(NOTEBOOKS)})")
    parser.add_argument("--quick", action="store_true", help="run each notebook in its quick mode")
    parser.add_argument("--outdir", type=Path, default=Path("out") / "notebooks")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed to one cell")
    args = parser.parse_args(argv)
    status = 0
    for name in args.names:
        seconds, figures, failed = execute(name, args.outdir, quick=args.quick, timeout=args.timeout)
        problems = ([] if figures else ["no figure in the executed notebook"]) + [f"acceptance failed: {f}" for f in failed]
        print(f"{name}: executed as a notebook in {seconds:.0f} s, {figures} figure(s)"
              + ("" if not problems else "; " + "; ".join(problems)), flush=True)
        status |= bool(problems)
    return status


if __name__ == "__main__":
    sys.exit(main())
