"""Mutation score of the maths: mutmut, one module at a time, with that module's tests.

Usage (from the project root, in an environment with ``pip install -e ".[test]" mutmut==3.8.1``)::

    CI=true nice -n 10 python benchmarks/mutation_score.py                       # every module
    CI=true nice -n 10 python benchmarks/mutation_score.py numerics/gaussian.py  # some modules
    python benchmarks/mutation_score.py --report                                 # reprint last results

This is a separate command, never part of ``python -m pytest``.  The modules,
their test selections, environments and hidden decorators are configured in
``pyproject.toml`` under ``[tool.mutmut.per_module."<path>"]``.  For each module
the script

1. copies the project (packages, tests, ``pyproject.toml``) into
   ``.mutation/<module>/`` and writes there a ``[tool.mutmut]`` section that
   mutates only that module and runs only its test selection;
2. rewrites, in that copy only, the decorators listed under ``undecorate``
   (mutmut skips decorated functions): ``@deco`` above ``def f`` becomes
   ``f = deco(f)`` at the end of the module -- the same behaviour, now visible
   to mutmut.  The numba kernels (``@njit``) are mutated this way with
   ``NUMBA_DISABLE_JIT=1``, so they run as plain Python;
3. runs ``mutmut run --max-children N`` there (default ``N = 1``) and reads
   the per-mutant exit codes mutmut stores in ``mutants/<module>.meta``.

Score = killed / (mutants - equivalent), where "killed" counts mutants the
tests failed on or timed out on, and "equivalent" counts the mutants listed in
``docs/mutation_equivalents.md`` (one line each, with the reason) that are
present in this run.  Results are kept in ``.mutation/<module>/result.json``.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import io
import time
import tokenize
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
EQUIVALENTS = ROOT / "docs" / "mutation_equivalents.md"
COPY = ["numerics", "proofs_checks", "theory", "tests"]
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


# Written to tests/conftest.py of the scratch copy only: mutmut runs each mutant's tests
# with -x, so running the fastest first (durations mutmut measured on the clean code)
# makes a killed mutant cost its fastest failing test, not every test before it.
FAST_FIRST = '''"""Scratch copy only (benchmarks/mutation_score.py): fastest tests first."""
import json
from pathlib import Path


def pytest_collection_modifyitems(config, items):
    path = Path(__file__).resolve().parents[1] / "mutmut-stats.json"  # mutants/
    if not path.exists():
        return
    durations = json.loads(path.read_text("utf-8")).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))
'''


def load_config():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    base = dict(data["tool"]["mutmut"])
    per_module = base.pop("per_module", {})
    return base, per_module


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


def strip_mutmut_sections(text):
    """pyproject.toml without its [tool.mutmut...] tables."""
    out, skip = [], False
    for line in text.splitlines():
        header = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if header:
            skip = header.group(1).strip().startswith("tool.mutmut")
        if not skip:
            out.append(line)
    return "\n".join(out) + "\n"


def undecorate(source, names):
    """Move decorators named in ``names`` (``@name`` or ``@name(...)``) from their
    top-level functions to ``f = name(...)(f)`` statements at the end of the module."""
    tree = ast.parse(source)
    lines = source.splitlines()
    drop, tail = set(), []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        keep_any = False
        applied = []
        for dec in node.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
            if name in names:
                applied.append(ast.get_source_segment(source, dec))
                drop.update(range(dec.lineno - 1, dec.end_lineno))
            else:
                keep_any = True
        if applied and keep_any:
            raise SystemExit(f"{node.name}: mixes undecorated and kept decorators; not supported")
        for dec in reversed(applied):  # innermost decorator applies first
            tail.append(f"{node.name} = {dec}({node.name})")
    kept = [line for i, line in enumerate(lines) if i not in drop]
    note = "# moved by benchmarks/mutation_score.py so that mutmut sees the functions"
    return "\n".join(kept + ["", "", note] + tail) + "\n"


def equivalent_names(module):
    """Mutant names listed in docs/mutation_equivalents.md for ``module``."""
    if not EQUIVALENTS.exists():
        return set()
    prefix = module[:-3].replace("/", ".") + "."
    names = set(re.findall(r"`([\w.]+__mutmut_\d+)`", EQUIVALENTS.read_text("utf-8")))
    return {n for n in names if n.startswith(prefix)}


def _tokens(line):
    try:
        return [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline)
                if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def _is_message(tok):
    """An f-string or a string with a space: the text of an error message, not a name or a choice."""
    kind, text = tok
    if kind == tokenize.STRING:
        return " " in text or text[:2].lower() in ("f'", 'f"')
    return kind in (tokenize.FSTRING_START, tokenize.FSTRING_MIDDLE, tokenize.FSTRING_END) \
        if hasattr(tokenize, "FSTRING_START") else False


def _same_failed_name(a, b):
    """Both lines raise the toolkit's error for the same argument name: the mutant can only
    change how the value or the expectation is described (``raise fail(name, value, text)``)."""
    pat = re.compile(r"^\s*raise fail\(([^,]+),")
    ma, mb = pat.match(a), pat.match(b)
    return bool(ma and mb and ma.group(1) == mb.group(1) and ma.group(1) not in ("None",))


def message_only(diff):
    """True if the mutant only rewords an error message: every changed line pair either
    raises ``fail`` for the same argument name (only the description changes), or differs
    in string literals alone, each of them message text (f-string or with a space)."""
    minus = [l[1:] for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    plus = [l[1:] for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    if not minus or len(minus) != len(plus):
        return False
    for a, b in zip(minus, plus):
        if _same_failed_name(a, b):
            continue
        ta, tb = _tokens(a), _tokens(b)
        if ta is None or tb is None:  # a fragment (continuation line): compare without strings
            lit = re.compile(r"""[fFrRbB]{0,2}("[^"]*"|'[^']*')""")
            sa, sb = lit.findall(a), lit.findall(b)
            if lit.sub("S", a) != lit.sub("S", b) or len(sa) != len(sb):
                return False
            if not all(x == y or " " in x for x, y in zip(sa, sb)):
                return False
            continue
        if len(ta) != len(tb):
            return False
        for x, y in zip(ta, tb):
            if x != y and not (_is_message(x) and x[0] == y[0]):
                return False
    return True


def message_mutants(wd, module, names):
    """The mutants among ``names`` that only reword error messages (mutmut's own diffs)."""
    code = ("import json, sys\n"
            "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
            "out = {}\n"
            "for n in json.loads(sys.stdin.read()):\n"
            f"    out[n] = get_diff_for_mutant(n, path={module!r})\n"
            "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=wd, input=json.dumps(sorted(names)),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print("   (could not read mutant diffs: " + proc.stderr.strip().splitlines()[-1] + ")")
        return set()
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    return {n for n, d in diffs.items() if message_only(d)}


def workdir(module):
    return WORK / module.replace("/", "__")[:-3]


def prepare(module, spec, base, fresh, baseline=None):
    wd = workdir(module) if baseline is None else WORK / "baseline" / workdir(module).name
    if (fresh or baseline is not None) and wd.exists():
        shutil.rmtree(wd)
    seed = WORK / "baseline" / wd.name
    if baseline is None and not fresh and not wd.exists() and seed.exists():
        # start from the baseline run's results: --rerun-survivors then re-tests its survivors
        shutil.copytree(seed, wd, symlinks=True)
    wd.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    for name in COPY:
        dst = wd / name
        if dst.exists():
            shutil.rmtree(dst)
        if baseline is None:
            shutil.copytree(ROOT / name, dst, ignore=ignore)
    if baseline is not None:  # the packages and tests as they were at git ref `baseline`
        archive = subprocess.run(["git", "archive", baseline, *COPY], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(wd)], input=archive, check=True)
    (wd / "tests" / "conftest.py").write_text(FAST_FIRST, "utf-8")
    if spec.get("undecorate"):
        path = wd / module
        path.write_text(undecorate(path.read_text("utf-8"), set(spec["undecorate"])), "utf-8")
    cfg = dict(base)
    cfg["only_mutate"] = [module]
    cfg["pytest_add_cli_args_test_selection"] = list(spec["tests"])
    section = "[tool.mutmut]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in cfg.items())
    text = strip_mutmut_sections((ROOT / "pyproject.toml").read_text("utf-8"))
    (wd / "pyproject.toml").write_text(text + "\n" + section, "utf-8")
    # Same mutated source as the last run: keep mutmut's cache of results.
    # A changed module or test gives new mutants / re-runs through mutmut's own hashes.
    return wd


def summarize(module, wd, minutes):
    meta = wd / "mutants" / (module + ".meta")
    codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
    sys.path.insert(0, str(ROOT))
    from mutmut.stats import status_by_exit_code  # noqa: E402

    status = {k: status_by_exit_code[v] for k, v in codes.items()}
    listed = equivalent_names(module) & set(status)
    messages = message_mutants(wd, module, [k for k, s in status.items() if s not in KILLED and k not in listed])
    equiv = listed | messages
    killed = sorted(k for k, s in status.items() if s in KILLED)
    survivors = sorted(k for k, s in status.items() if s not in KILLED and k not in equiv)
    wrongly_listed = sorted(k for k in equiv if status[k] in KILLED)
    denom = len(status) - len(equiv) + len(wrongly_listed)
    result = {
        "module": module,
        "mutants": len(status),
        "killed": len(killed),
        "equivalent": len(equiv) - len(wrongly_listed),
        "message_text": len(messages),
        "score": len(killed) / denom if denom else 1.0,
        "minutes": minutes,
        "survivors": {k: status[k] for k in survivors},
        "listed_equivalent_but_killed": wrongly_listed,
    }
    (wd / "result.json").write_text(json.dumps(result, indent=1), "utf-8")
    return result


def run(module, spec, base, max_children, fresh, rerun, baseline=None):
    wd = prepare(module, spec, base, fresh, baseline)
    names = []
    if rerun and (wd / "result.json").exists():
        names = sorted(json.loads((wd / "result.json").read_text("utf-8"))["survivors"])
    env = dict(os.environ)
    env.setdefault("CI", "true")
    env.update({k: str(v) for k, v in spec.get("env", {}).items()})
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    # A plain run tests the mutants without a result (all of them the first time; after a
    # source change, those of the changed functions).  --rerun-survivors then re-tests the
    # last survivors by name (mutmut keeps earlier results otherwise).
    print(f"== {module}: {' '.join(cmd)}{' <survivors>' if names else ''}  "
          f"(in {wd.relative_to(ROOT)}, tests {spec['tests']})", flush=True)
    t0 = time.perf_counter()
    with open(wd / "mutmut.log", "w") as log:
        for step in ("all", "survivors"):
            if step == "survivors":
                # only those that the plain run did not just test
                meta = wd / "mutants" / (module + ".meta")
                tested = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
                names = [n for n in names if n in tested and n not in fresh_results]
                if not names:
                    break
            else:
                meta = wd / "mutants" / (module + ".meta")
                before = json.loads(meta.read_text("utf-8"))["exit_code_by_key"] if meta.exists() else {}
                fresh_results = {k for k, v in before.items() if v is None}
            proc = subprocess.run(cmd + (names if step == "survivors" else []), cwd=wd, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                print(f"   mutmut exited with {proc.returncode}; see {wd / 'mutmut.log'}", flush=True)
    minutes = (time.perf_counter() - t0) / 60
    return summarize(module, wd, minutes)


def table(results):
    rows = [("module", "mutants", "killed", "equivalent", "score", "minutes")]
    for r in results:
        rows.append((r["module"], str(r["mutants"]), str(r["killed"]), str(r["equivalent"]),
                     f"{100 * r['score']:.1f} %", f"{r['minutes']:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv=None):
    base, per_module = load_config()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"default: all of {list(per_module)}")
    ap.add_argument("--max-children", type=int, default=1,
                    help="parallel mutmut workers (default 1)")
    ap.add_argument("--fresh", action="store_true", help="discard cached mutmut results first")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="re-test only the last run's survivors (after adding tests); "
                         "the minutes are then those of the re-test")
    ap.add_argument("--baseline", metavar="GIT_REF",
                    help="score the packages and tests of GIT_REF instead (e.g. the commit before "
                         "new tests), in .mutation/baseline/; the current selection config is used")
    ap.add_argument("--report", action="store_true", help="only reprint the last results")
    ap.add_argument("--survivors", action="store_true", help="also list the surviving mutants")
    args = ap.parse_args(argv)
    modules = args.modules or list(per_module)
    unknown = [m for m in modules if m not in per_module]
    if unknown:
        ap.error(f"no [tool.mutmut.per_module] entry for {unknown}")
    results = []
    for module in modules:
        if args.report:
            wd = workdir(module) if args.baseline is None else WORK / "baseline" / workdir(module).name
            path = wd / "result.json"
            minutes = json.loads(path.read_text("utf-8"))["minutes"] if path.exists() else float("nan")
            if not (wd / "mutants" / (module + ".meta")).exists():
                print(f"(no result yet for {module})")
                continue
            r = summarize(module, wd, minutes)
        else:
            r = run(module, per_module[module], base, args.max_children, args.fresh,
                    args.rerun_survivors, args.baseline)
        results.append(r)
        if args.survivors:
            for k, s in r["survivors"].items():
                print(f"   {s:10s} {k}")
        for k in r["listed_equivalent_but_killed"]:
            print(f"   listed as equivalent but killed: {k}")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
