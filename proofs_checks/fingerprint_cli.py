r"""``python -m proofs_checks fingerprint TARGET``: the spectral fingerprint of a loss.

``TARGET`` is ``path/to/file.py:NAME`` or an importable ``package.module:NAME``, loaded as
``python -m proofs_checks verify`` loads it (:func:`proofs_checks.verify_cli.load_callable`);
the loss options are the verifier's (``--inputs``, ``--param``, ``--learn``,
``--similarity``, ``--backend``, ``--grad``, ``--seed``, ``--sizes``, ``--replicates``).
``--sigmas`` sets the grid, ``--json PATH`` writes the result, ``--report DIR`` writes
``report.md``, ``result.json`` and ``fingerprint.png``.

Exit codes: 0 when the fingerprint was measured (whatever its kind: the kind is in the
summary and the JSON), 2 on a usage, loading or infrastructure error (one line on
stderr, never a traceback).
"""
from __future__ import annotations

import sys

from numerics._validation import InvalidInputError

from .verify_cli import EXIT_ERROR, _param, _Parser, parse_and_load, write_outputs

__all__ = ["main", "build_parser"]


def build_parser() -> _Parser:
    """The parser of ``python -m proofs_checks fingerprint``."""
    from .spectral_fingerprint import DEFAULT_FINGERPRINT_REPLICATES
    from .verify_args import BACKEND_NAMES, INPUTS, SIMILARITY_NAMES

    p = _Parser(
        prog="python -m proofs_checks fingerprint",
        description="The spectral fingerprint of a contrastive loss: the map g(sigma) its minimiser "
                    "applies to each canonical correlation (CLIP: g = sigma), with separability, mixing, "
                    "rank, drift and a diagnosis. Exit 0 when measured, 2 on a usage, loading or "
                    "infrastructure error.",
    )
    p.add_argument("target", metavar="TARGET",
                   help="path/to/file.py:NAME or package.module:NAME (a class is instantiated with no "
                        "arguments; a 'grad' attribute, F -> dL/dF, is used if present)")
    p.add_argument("--inputs", default="logits", choices=INPUTS,
                   help="what the loss takes: the logit matrix F, or the embeddings (za, zb)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", type=_param,
                   help="initial value of one of the loss's scalars (repeat for several)")
    p.add_argument("--learn", nargs="*", action="extend", metavar="NAME",
                   help="the --param names learned with the encoders (default: all; --learn alone: none)")
    p.add_argument("--similarity", default="dot", choices=SIMILARITY_NAMES,
                   help="logit family: dot or l2 (cosine has no canonical map and is refused)")
    p.add_argument("--backend", default="auto", choices=BACKEND_NAMES)
    p.add_argument("--grad", metavar="NAME", help="name of a gradient function F -> dL/dF next to the target")
    p.add_argument("--sigmas", type=float, nargs="+", metavar="SIGMA",
                   help="the grid of canonical correlations (default: nine points in (0, 0.9))")
    p.add_argument("--no-pairs", action="store_true",
                   help="skip the multi-pair models (no separability, mixing or rank; faster)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sizes", type=int, nargs="+", metavar="N", help="nested batch sizes, increasing")
    p.add_argument("--replicates", type=int, default=DEFAULT_FINGERPRINT_REPLICATES)
    p.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH")
    p.add_argument("--report", metavar="DIR", help="write report.md, result.json and fingerprint.png to DIR")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fingerprint`` subcommand; returns the exit code (module docstring)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback
        print(f"error: {type(exc).__name__}: {exc} (an internal error of the fingerprint; please report "
              "it with the command that raised it)", file=sys.stderr)
        return EXIT_ERROR


def _main(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    loaded = parse_and_load(build_parser(), argv)
    if isinstance(loaded, int):
        return loaded
    args, json_path, report_dir, loss, grad, progress = loaded
    from .spectral_fingerprint import fingerprint

    kwargs = dict(inputs=args.inputs, params=dict(args.param) or None, learn=args.learn,
                  similarity=args.similarity, backend=args.backend, seed=args.seed, grad=grad,
                  sizes=args.sizes, replicates=args.replicates, level=args.level, name=args.target,
                  progress=progress)
    if args.sigmas is not None:
        kwargs["sigmas"] = args.sigmas
    if args.no_pairs:
        kwargs["pair_sigmas"] = ()
    try:
        result = fingerprint(loss, **kwargs)
    except (InvalidInputError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return write_outputs(result, json_path, report_dir, args.quiet)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
