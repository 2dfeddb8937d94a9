r"""``python -m proofs_checks verify FILE:FUNCTION --claim CLAIM``: verify a loss variant.

Exit codes: 0 the claim is confirmed, 1 refuted, 2 a usage or loading error
(bad path, missing function, unknown claim or similarity, a loss that raises).
Progress goes to stderr, one line per model, replicate and batch size
(``--quiet`` silences it); the verdict summary goes to stdout.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from numerics._validation import InvalidInputError

__all__ = ["main", "build_parser", "load_callable"]


class LoadError(Exception):
    """The ``FILE:FUNCTION`` target could not be loaded."""


def build_parser() -> argparse.ArgumentParser:
    from .verify import CLAIMS, DIRECTIONS, SIMILARITIES

    p = argparse.ArgumentParser(
        prog="python -m proofs_checks verify",
        description="Verify a contrastive loss variant loss(F) -> float of the N x N logit "
                    "matrix F (positives on the diagonal) against a claim, on generated "
                    "Gaussian models. Exit 0 confirmed, 1 refuted, 2 usage/loading error.",
    )
    p.add_argument("target", metavar="FILE.py:FUNCTION",
                   help="path to a Python file and the name of the loss function in it "
                        "(a 'grad' attribute of the function, F -> dL/dF, is used if present)")
    p.add_argument("--claim", required=True, choices=CLAIMS)
    p.add_argument("--similarity", default="dot", choices=SIMILARITIES)
    p.add_argument("--direction", default="both", choices=DIRECTIONS,
                   help="conditionals concerned by the matches-* claims (rows of F: v|u)")
    p.add_argument("--grad", metavar="FUNCTION",
                   help="name of a gradient function F -> dL/dF in the same file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", type=int, default=3, help="number of Gaussian models (default 3)")
    p.add_argument("--sizes", type=int, nargs="+", metavar="N",
                   help="batch sizes, increasing (default depends on the similarity)")
    p.add_argument("--replicates", type=int, default=2)
    p.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH")
    p.add_argument("--report", metavar="DIR",
                   help="write report.md, result.json and PNG figures to DIR")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def load_callable(target: str):
    """Load ``FILE.py:FUNCTION``; return ``(function, module)``.  Raises :class:`LoadError`."""
    path_str, sep, func_name = target.rpartition(":")
    if not sep or not path_str or not func_name:
        raise LoadError(f"target={target!r}: expected FILE.py:FUNCTION")
    path = Path(path_str)
    if not path.is_file():
        raise LoadError(f"file {str(path)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"_cp_variant_{abs(hash(str(path.resolve())))}",
                                                  path)
    if spec is None or spec.loader is None:
        raise LoadError(f"file {str(path)!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # the user's file may import its neighbours
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise LoadError(f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.pop(0)
    func = getattr(module, func_name, None)
    if func is None:
        raise LoadError(f"{str(path)!r} has no attribute {func_name!r}")
    if not callable(func):
        raise LoadError(f"{func_name!r} in {str(path)!r} is not callable")
    return func, module


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``verify`` subcommand; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        loss, module = load_callable(args.target)
        grad = None
        if args.grad:
            grad = getattr(module, args.grad, None)
            if not callable(grad):
                raise LoadError(f"{args.target.rpartition(':')[0]!r} has no callable {args.grad!r}")
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .verify import verify_variant

    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        result = verify_variant(loss, claim=args.claim, similarity=args.similarity, seed=args.seed,
                                grad=grad, n_models=args.models, sizes=args.sizes,
                                replicates=args.replicates, direction=args.direction,
                                name=args.target, progress=progress)
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    if args.report:
        report = result.write_report(args.report)
        if not args.quiet:
            print(f"report written to {report}", file=sys.stderr)
    return 0 if result.passed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
