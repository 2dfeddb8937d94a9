#!/usr/bin/env python
r"""Run every command of the README, as written, and report each block's status.

    python docs/run_readme.py                  # run every block (install lines included)
    python docs/run_readme.py --skip-install   # the package is already installed
    python docs/run_readme.py --list           # print the blocks, run nothing
    python docs/run_readme.py --only 3 5       # only these blocks (numbers from --list)

What is run, block by block, in the order of the README:

* `` ```bash ``, `` ```sh `` and `` ```console `` blocks: a shell script run with
  ``bash -e`` (a ``console`` block: only its ``$ `` lines, the rest is output);
* `` ```python `` blocks: ``python -c``;
* a `` ```python `` block whose first line is a comment naming a Python file
  (``# my_loss.py``) is that file: it is compiled and written to the working
  directory, where the later blocks find it;
* every other block (``text``, ``yaml``, no tag) is shown output or
  illustration, and is not run;
* a block preceded by the line ``<!-- readme: skip -->`` is not run.

The working directory is a fresh temporary directory whose entries are
symbolic links to the repository root's files and folders (nothing is
copied; ``.git`` and run outputs such as ``build/``, ``out/`` or
``.pytest_cache`` are left out).  So the commands run as if typed in the
repository root, and whatever new files they write (reports, ``my_loss.py``,
``.pytest_cache``) land in the temporary directory, deleted at the end
(``--keep`` keeps it).  The package metadata ``*.egg-info`` that an install
leaves in the repository root is linked like the sources: an in-process
pytest run finds the toolkit's pytest plugin through it, as it does in the
repository root.  ``python``
and ``pip`` resolve to the interpreter that runs this script.

With ``--skip-install``, each ``pip install ...`` command is dropped from the
shell blocks (``pip install . && python -m proofs_checks`` runs
``python -m proofs_checks``).  Each block has a timeout (``--timeout``,
seconds).  The exit status is 0 when every block that was run succeeded, 1
otherwise, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELL_LANGS = {"bash", "sh", "shell", "console"}
PYTHON_LANGS = {"python", "py"}
SKIP_MARK = "<!-- readme: skip -->"
FILE_HEADER = re.compile(r"^#\s*([\w./-]+\.py)\b")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
INSTALL = re.compile(r"^\s*(?:python\d*(?:\.\d+)?\s+-m\s+)?pip\d*\s+install\b")
# left out of the working directory: git and the outputs of earlier runs
NOT_LINKED = (".git", "build", "dist", ".pytest_cache", ".hypothesis", ".mutation",
              "ci-out", "out", "report*", "__pycache__", ".venv*")


@dataclass
class Block:
    number: int
    line: int  # line of the opening fence, 1-based
    lang: str
    code: str
    skip_marked: bool

    @property
    def file_name(self) -> str | None:
        """The file this block is, for a python block headed ``# NAME.py``."""
        if self.lang not in PYTHON_LANGS:
            return None
        first = self.code.splitlines()[0] if self.code.strip() else ""
        m = FILE_HEADER.match(first)
        return m.group(1) if m else None

    @property
    def kind(self) -> str:
        if self.lang in SHELL_LANGS:
            return "shell"
        if self.lang in PYTHON_LANGS:
            return "file" if self.file_name else "python"
        return "not run"


def extract_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with its language tag."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line)
            i += 1
        i += 1  # the closing fence
        prev = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        blocks.append(Block(len(blocks) + 1, start + 1, lang, "\n".join(body) + "\n",
                            prev == SKIP_MARK))
    return blocks


def console_commands(code: str) -> str:
    """The ``$ `` lines of a console block (with their ``\\`` continuations)."""
    out: list[str] = []
    continuing = False
    for line in code.splitlines():
        if line.startswith("$ "):
            out.append(line[2:])
        elif continuing:
            out.append(line)
        else:
            continue
        continuing = line.rstrip().endswith("\\")
    return "\n".join(out) + "\n"


def drop_installs(script: str) -> str:
    """The script without its ``pip install`` commands (one per line or joined by ``&&``)."""
    kept: list[str] = []
    for line in script.splitlines():
        parts = [p for p in line.split("&&") if not INSTALL.match(p)]
        if parts:
            kept.append("&&".join(parts).strip() if len(parts) < len(line.split("&&")) else line)
    return "\n".join(kept) + "\n"


def shell_script(block: Block, skip_install: bool) -> str:
    script = console_commands(block.code) if block.lang == "console" else block.code
    return drop_installs(script) if skip_install else script


def make_workdir(root: Path) -> Path:
    """A temporary directory of symbolic links to the repository root's entries."""
    work = Path(tempfile.mkdtemp(prefix="run_readme_"))
    for entry in sorted(root.iterdir()):
        if any(fnmatch.fnmatch(entry.name, pat) for pat in NOT_LINKED):
            continue
        (work / entry.name).symlink_to(entry)
    return work


def run(cmd: list[str], cwd: Path, env: dict, timeout: float) -> tuple[int | None, str]:
    """Run ``cmd``; return (exit status or None on timeout, combined output)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the block's whole process group, nothing else
        out, _ = proc.communicate()
        return None, out


def summary_line(block: Block) -> str:
    first = next((ln.strip() for ln in block.code.splitlines()
                  if ln.strip() and not (block.kind == "python" and ln.startswith("#"))), "")
    return first if len(first) <= 70 else first[:67] + "..."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("readme", nargs="?", default=str(ROOT / "README.md"),
                   help="the Markdown file (default: README.md); its folder is the repository root")
    p.add_argument("--list", action="store_true", help="print the blocks and what would be done")
    p.add_argument("--skip-install", action="store_true",
                   help="drop the 'pip install ...' commands (the package is installed)")
    p.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS",
                   help="timeout of each block (default 1800)")
    p.add_argument("--only", type=int, nargs="+", metavar="N",
                   help="run only these blocks (file blocks are always written)")
    p.add_argument("--verbose", "-v", action="store_true", help="print every block's output")
    p.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    args = p.parse_args(argv)

    readme = Path(args.readme).resolve()
    if not readme.is_file():
        print(f"error: {readme} does not exist", file=sys.stderr)
        return 2
    blocks = extract_blocks(readme.read_text(encoding="utf-8"))
    if args.only and not set(args.only) <= {b.number for b in blocks}:
        print(f"error: --only {args.only}: the blocks are 1..{len(blocks)}", file=sys.stderr)
        return 2

    def action(b: Block) -> str:
        if b.kind == "not run":
            return f"not run ({b.lang or 'no tag'})"
        if b.skip_marked:
            return "skip (marked)"
        if b.kind == "file":
            return f"write {b.file_name}"
        if args.only and b.number not in args.only:
            return "not selected"
        return f"run ({b.kind})"

    if args.list:
        for b in blocks:
            print(f"--- block {b.number}, line {b.line}, ```{b.lang}: {action(b)}")
            code = shell_script(b, args.skip_install) if b.kind == "shell" else b.code
            print(code, end="")
        return 0

    root = readme.parent
    work = make_workdir(root)
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    print(f"README: {readme}\nworking directory: {work} (links to {root})\n", flush=True)
    failed = 0
    ran = 0
    try:
        for b in blocks:
            what = action(b)
            label = f"block {b.number:2d} (line {b.line:3d}, {b.lang or 'no tag'})"
            if not what.startswith(("run", "write")):
                print(f"{label:34s} {what.upper() if what.startswith('skip') else what:16s}"
                      f"  {summary_line(b)}", flush=True)
                continue
            t0 = time.perf_counter()
            if b.kind == "file":
                try:
                    compile(b.code, b.file_name, "exec")
                except SyntaxError as exc:
                    status, out = 1, f"{exc}\n"
                else:
                    target = work / b.file_name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(b.code, encoding="utf-8")
                    status, out = 0, ""
                ok_word = "WRITTEN"
            elif b.kind == "python":
                status, out = run([sys.executable, "-c", b.code], work, env, args.timeout)
                ok_word = "PASS"
            else:
                script = shell_script(b, args.skip_install)
                status, out = run(["bash", "-e", "-c", script], work, env, args.timeout)
                ok_word = "PASS"
            seconds = time.perf_counter() - t0
            ran += b.kind != "file"
            if status == 0:
                word = ok_word
            elif status is None:
                word, failed = "TIMEOUT", failed + 1
            else:
                word, failed = f"FAIL (exit {status})", failed + 1
            print(f"{label:34s} {word:16s} {seconds:7.1f} s  {summary_line(b)}", flush=True)
            if args.verbose or status != 0:
                tail = out.splitlines()[-40:] if status != 0 and not args.verbose else out.splitlines()
                for line in tail:
                    print(f"    | {line}")
    finally:
        if args.keep:
            print(f"\nworking directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{ran} block(s) run, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
