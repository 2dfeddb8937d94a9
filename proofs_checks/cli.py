r"""Command line: ``python -m proofs_checks`` (the main job) and its subcommands.

``python -m proofs_checks`` with no arguments verifies every statement on the
embedded default set of Gaussian models, prints a table and exits 0 iff every
check passes (1 otherwise, 2 on a usage error).

``python -m proofs_checks verify FILE:FUNCTION --claim CLAIM`` verifies a
user's loss variant (see :func:`proofs_checks.verify_variant`).
"""
from __future__ import annotations

import argparse
import sys

from numerics._validation import InvalidInputError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m proofs_checks",
        description="Verify the statements of MATH.md (Theorems 2.8, 3.2, Propositions ...) "
                    "on generated Gaussian models. Subcommands: 'verify' (a loss variant), "
                    "'list' (the checks).",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the model set and checks (default 0)")
    p.add_argument("--cases", type=int, default=24,
                   help="number of generated Gaussian models (default 24)")
    p.add_argument("--only", action="append", metavar="SELECTOR",
                   help="run only checks whose statement ('Theorem 3.2'), method ('symbolic') "
                        "or name ('g1-optimization') matches; repeatable")
    p.add_argument("--json", metavar="PATH", help="write machine-readable results to PATH")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML to PATH")
    p.add_argument("--report", metavar="DIR", help="write report.md, results.json and figures to DIR")
    p.add_argument("--workers", type=int, default=1,
                   help="run the checks on a local Dask cluster of this many processes")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the checks on an existing Dask cluster (tcp://HOST:PORT)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _run_named(task):
    """Worker task: one check by name (each check is seeded by the seed and its name)."""
    from .registry import run_check, select_checks

    name, seed, cases = task
    return run_check(select_checks([name])[0], seed=seed, cases=cases)


def _list_checks() -> int:
    from .registry import all_checks

    for c in all_checks():
        print(f"{c.name:28s} {c.statement:16s} {c.method:13s} {c.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "verify":
        from .verify_cli import main as verify_main

        return verify_main(argv[1:])
    if argv and argv[0] == "fingerprint":
        from .fingerprint_cli import main as fingerprint_main

        return fingerprint_main(argv[1:])
    if argv and argv[0] == "list":
        return _list_checks()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.cases < 1:
        parser.print_usage(sys.stderr)
        print(f"error: --cases={args.cases}: expected an integer >= 1", file=sys.stderr)
        return 2

    from .registry import run_check, select_checks
    from numerics.models import default_models

    try:
        checks = select_checks(args.only)
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.workers != 1 or args.scheduler:
        from .parallel import executor

        try:
            with executor(args.workers, args.scheduler) as ex:
                results = ex.map(_run_named, [(c.name, args.seed, args.cases) for c in checks])
        except (InvalidInputError, ImportError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return _finish(args, results)
    models = default_models(args.seed, args.cases)
    results = []
    for k, check in enumerate(checks, 1):
        if not args.quiet:
            print(f"[{k}/{len(checks)}] {check.statement} · {check.method} · {check.name} ...",
                  end="", file=sys.stderr, flush=True)
        res = run_check(check, seed=args.seed, cases=args.cases, models=models)
        results.append(res)
        if not args.quiet:
            print(f" {'ok' if res.passed else 'FAIL'} ({res.seconds:.1f} s)", file=sys.stderr,
                  flush=True)
    return _finish(args, results)


def _finish(args, results) -> int:
    """Print the table, write the requested files, return the exit code."""
    from .report import format_table, write_json, write_junit, write_report

    print(format_table(results))
    if args.json:
        write_json(args.json, results, seed=args.seed, cases=args.cases)
    if args.junit:
        write_junit(args.junit, results)
    if args.report:
        paths = write_report(args.report, results, seed=args.seed, cases=args.cases)
        if not args.quiet:
            print("report: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1
