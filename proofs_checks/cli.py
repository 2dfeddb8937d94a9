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
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


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
    from .report import format_table, write_json, write_junit, write_report
    from numerics.models import default_models

    try:
        checks = select_checks(args.only)
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
