r"""``python -m proofs_checks verify TARGET --claim CLAIM``: verify a loss variant.

``TARGET`` is ``path/to/file.py:NAME`` or an importable ``package.module:NAME``;
a class is instantiated with no arguments (``open_clip.loss:ClipLoss``).
``--inputs embeddings`` passes the two encoder outputs instead of the logit
matrix, ``--param NAME=VALUE`` the loss's own scalars (``--learn NAME`` those
learned with the encoders; default all), ``--backend torch|jax`` the framework
(auto-detected by default), ``--objective value|training-field`` what the
variant's fits solve (default ``auto``: the training field iff the autograd
gradient is not the value's, as with a ``detach()`` in the loss).

Exit codes: 0 the claim is confirmed, 1 refuted, 3 inconclusive, and 2 for
everything that is not a verdict — a usage or loading error (bad path, missing
name, unknown claim or similarity, a loss that raises), or an infrastructure
failure (dask missing for ``--workers``, no scheduler answering within
``--connect-timeout`` seconds, default 10, an unwritable ``--json`` or
``--report`` path, checked before any work).  Exit 1 means REFUTED and nothing
else.  Errors are one line on stderr, never a traceback.  Progress goes to
stderr, one line per round and model (``--quiet`` silences it); the verdict
summary goes to stdout.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path

from numerics._validation import InvalidInputError

__all__ = ["main", "build_parser", "load_callable", "LoadError", "EXIT_ERROR"]

#: Exit code of every outcome that is not a verdict (usage, loading, infrastructure).
EXIT_ERROR = 2


class LoadError(Exception):
    """The ``TARGET`` could not be loaded."""


def _param(text: str):
    name, sep, value = text.partition("=")
    try:
        if not sep or not name.strip().isidentifier():
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--param {text!r}: expected NAME=VALUE, "
                                         "a Python identifier and a number") from None


def _workers(text: str):
    if text == "auto":
        return text
    try:
        return int(text)  # judged (>= 1) with the other arguments, by the verifier
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers {text!r}: expected an integer >= 1 or 'auto'") from None


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2)."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m proofs_checks verify``."""
    from .parallel import DEFAULT_CONNECT_TIMEOUT
    from .schedule import DEFAULT_BUDGET, DEFAULT_REPLICATES
    from .verify_args import BACKEND_NAMES, CLAIMS, DIRECTIONS, INPUTS, OBJECTIVE_NAMES, SIMILARITY_NAMES

    p = _Parser(
        prog="python -m proofs_checks verify",
        description="Verify a contrastive loss, loss(F, **params) of the N x N logit matrix F "
                    "(positives on the diagonal) or loss(za, zb, **params) of the two encoder "
                    "outputs, in NumPy, PyTorch or JAX, against a claim, on generated "
                    "Gaussian models. Exit 0 confirmed, 1 refuted, 3 inconclusive, "
                    "2 usage, loading or infrastructure error.",
    )
    p.add_argument("target", metavar="TARGET",
                   help="path/to/file.py:NAME or package.module:NAME (a class is instantiated "
                        "with no arguments; a 'grad' attribute, F -> dL/dF, is used if present)")
    p.add_argument("--claim", required=True, choices=CLAIMS)
    p.add_argument("--inputs", default="logits", choices=INPUTS,
                   help="what the loss takes: the logit matrix F, or the embeddings (za, zb)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", type=_param,
                   help="initial value of one of the loss's scalars (repeat for several)")
    p.add_argument("--learn", nargs="*", action="extend", metavar="NAME",
                   help="the --param names learned with the encoders (default: all; "
                        "--learn alone: none, every --param stays fixed)")
    p.add_argument("--similarity", default="dot", choices=SIMILARITY_NAMES,
                   help="logit family (bilinear is a synonym of dot)")
    p.add_argument("--backend", default="auto", choices=BACKEND_NAMES)
    p.add_argument("--objective", default="auto", choices=OBJECTIVE_NAMES,
                   help="what the variant's fits solve: the loss's value, or the training field its "
                        "autograd gradient defines (stop-gradients); auto: the field iff the gradient "
                        "check fails (default auto)")
    p.add_argument("--grad", metavar="NAME",
                   help="name of a gradient function F -> dL/dF next to the target")
    p.add_argument("--direction", default="both", choices=DIRECTIONS,
                   help="conditionals concerned by the matches-* claims (rows of F: v|u)")
    p.add_argument("--margin", type=float, default=None,
                   help="absolute margin on the whitened distance (default: 5%% of the target's norm)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                   help=f"time for adaptive rounds after the first (default {DEFAULT_BUDGET:g})")
    p.add_argument("--models", type=int, default=3, help="number of Gaussian models (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sizes", type=int, nargs="+", metavar="N",
                   help="batch sizes of the first round, increasing (default depends on the similarity)")
    p.add_argument("--replicates", type=int, default=DEFAULT_REPLICATES)
    p.add_argument("--workers", type=_workers, default="auto",
                   help="'auto' (default): one forked process per core (serial for a JAX loss); "
                        "1: serially; K > 1: a local Dask cluster of K processes")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the fits on an existing Dask cluster (tcp://HOST:PORT)")
    p.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT, metavar="SECONDS",
                   help=f"seconds to wait for --scheduler (default {DEFAULT_CONNECT_TIMEOUT:g}); exit 2 past it")
    p.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH")
    p.add_argument("--report", metavar="DIR",
                   help="write report.md, the JSON document and PNG figures to DIR")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _load_module(spec_str: str):
    """A module from a file path (``.py``) or an importable dotted name."""
    path = Path(spec_str)
    if spec_str.endswith(".py") or path.is_file() or "/" in spec_str or "\\" in spec_str:
        if not path.is_file():
            raise LoadError(f"file {str(path)!r} does not exist")
        spec = importlib.util.spec_from_file_location(
            f"_cp_variant_{abs(hash(str(path.resolve())))}", path)
        if spec is None or spec.loader is None:
            raise LoadError(f"file {str(path)!r} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))  # the user's file may import its neighbours
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise LoadError(f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            sys.path.pop(0)
        return module, str(path)
    try:
        return importlib.import_module(spec_str), spec_str
    except Exception as exc:
        raise LoadError(f"importing module {spec_str!r} failed: {type(exc).__name__}: {exc}") from exc


def load_callable(target: str):
    """Load ``path/file.py:NAME`` or ``package.module:NAME``; return ``(callable, module)``.

    A class is instantiated with no arguments.  Raises :class:`LoadError`.
    """
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        raise LoadError(f"target={target!r}: expected path/file.py:NAME or package.module:NAME")
    module, shown = _load_module(where)
    obj = getattr(module, name, None)
    if obj is None:
        raise LoadError(f"{shown!r} has no attribute {name!r}")
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise LoadError(f"{name}() in {shown!r} cannot be built with no arguments: "
                            f"{type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise LoadError(f"{name!r} in {shown!r} is not callable")
    return obj, module


def _writable(path: str, option: str, directory: bool) -> Path:
    """``path`` made ready to write (parents created), or a :class:`LoadError` naming ``option``."""
    p = Path(path)
    folder = p if directory else p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LoadError(f"{option} {path!r}: cannot create {str(folder)!r} ({exc.strerror or exc})") from None
    if (not directory and p.is_dir()) or not os.access(folder, os.W_OK | os.X_OK) or \
            (p.exists() and not directory and not os.access(p, os.W_OK)):
        raise LoadError(f"{option} {path!r}: not a writable {'folder' if directory else 'file'}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``verify`` subcommand; returns the exit code (module docstring).
    Every failure that is not a verdict returns :data:`EXIT_ERROR` with one line on stderr."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback, and never exit 1 (which means REFUTED)
        print(f"error: {type(exc).__name__}: {exc} (an internal error of the verifier; "
              "please report it with the command that raised it)", file=sys.stderr)
        return EXIT_ERROR


def load_target(args):
    """``(json_path, report_dir, loss, grad)`` from parsed arguments (``target``, ``grad``,
    ``json``, ``report``): the output paths checked before any work, the loss loaded, and its
    gradient function when ``--grad`` names one; :class:`LoadError` otherwise."""
    json_path = _writable(args.json, "--json", False) if args.json else None
    report_dir = _writable(args.report, "--report", True) if args.report else None
    loss, module = load_callable(args.target)
    grad = None
    if args.grad:
        grad = getattr(module, args.grad, None)
        if not callable(grad):
            raise LoadError(f"{args.target.rpartition(':')[0]!r} has no callable {args.grad!r}")
    return json_path, report_dir, loss, grad


def parse_and_load(parser, argv):
    """``(args, json_path, report_dir, loss, grad, progress)`` from the command line, or the exit
    code when parsing or loading failed (argparse's 2 or 0 for ``--help``; :data:`EXIT_ERROR`
    with one line on stderr)."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        json_path, report_dir, loss, grad = load_target(args)
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    return args, json_path, report_dir, loss, grad, progress


def _main(argv):
    from .parallel import ClusterError

    argv = list(sys.argv[1:] if argv is None else argv)
    loaded = parse_and_load(build_parser(), argv)
    if isinstance(loaded, int):
        return loaded
    args, json_path, report_dir, loss, grad, progress = loaded
    common = dict(similarity=args.similarity, seed=args.seed, inputs=args.inputs,
                  params=dict(args.param) or None, learn=args.learn, backend=args.backend, grad=grad,
                  sizes=args.sizes, replicates=args.replicates, name=args.target, workers=args.workers,
                  scheduler=args.scheduler, connect_timeout=args.connect_timeout, progress=progress,
                  objective=args.objective)
    from .verify import verify_variant

    try:
        result = verify_variant(loss, claim=args.claim, n_models=args.models, margin=args.margin,
                                budget=args.budget, direction=args.direction, **common)
    except (InvalidInputError, ImportError, ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    rest = list(argv)
    rest.remove(args.target)
    result.command = [args.target] + rest  # the summary's pointer to the fingerprint repeats the loss's options
    return write_outputs(result, json_path, report_dir, args.quiet) or result.exit_code


def write_outputs(result, json_path, report_dir, quiet: bool) -> int:
    """Print ``result.summary()`` and write its JSON and report folder (paths checked
    earlier by :func:`load_target`); :data:`EXIT_ERROR` if writing fails, else 0."""
    print(result.summary())
    try:
        if json_path is not None:
            json_path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
        if report_dir is not None:
            written = result.write_report(report_dir)
            if not quiet:
                print(f"report written to {written}", file=sys.stderr)
    except OSError as exc:
        print(f"error: writing the result failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
