r"""Every citation of MATH.md in the code names something docs/MATH.md contains.

The docstrings cite the specification as ``MATH.md §n`` (lists such as
``§3, §4.1``, ranges such as ``§1-§3`` or ``§3–§4.1``, trailing dots as in
``§3.``), by a bare ``§n`` inside the cited packages (e.g. the ``section``
field of :class:`theory.statements.Statement`), and by the names of statements
(``Theorem 2.8``, ``Propositions N1 and N2``, ``statement="Landscape"``, ...).
These tests collect all of them from the ``.py`` files of the packages below
and check them against the headings and the bold statement labels of
docs/MATH.md.  They only read text (and parse Python with :mod:`ast`); nothing
of the toolkit is imported.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MATH_MD = ROOT / "docs" / "MATH.md"
#: Packages whose citations are checked.
CITING_DIRS = ("theory", "numerics", "proofs_checks", "notebooks", "benchmarks")
#: The section numbers of the source specification; the docstrings use exactly these.
EXPECTED_SECTIONS = ("1", "2", "3", "4", "4.1", "4.2", "4.3", "5", "6")

_NUM = r"\d+(?:\.\d+)*"  # "4.1"; a trailing dot ("§3.") is not part of the number
_DASH = r"[-\u2013\u2014]"  # hyphen, en dash, em dash
#: ``§a`` or a range ``§a-§b`` / ``§a–b``.
_SECTION_REF = re.compile(rf"§\s*(?P<a>{_NUM})(?:\s*{_DASH}\s*§?\s*(?P<b>{_NUM}))?")
#: ``MATH.md`` followed by a list of section numbers: ``MATH.md §3, §4.1``,
#: ``MATH.md end of §3``, ``MATH.md §1-§3``, and the bare ``MATH.md 4.1``.
_ANCHORED = re.compile(
    rf"MATH\.md(?P<tail>(?:[ \t]*(?:,|;|and|end of|{_DASH})?[ \t]*§?[ \t]*{_NUM})+)")
_KINDS = r"Theorem|Proposition|Lemma|Corollary"
#: ``Theorem 2.8``, ``Theorems 2.8, 3.2``, ``Propositions N1 and N2``, ``Propositions G2-G4``.
_STATEMENT_REF = re.compile(
    rf"\b(?P<kind>{_KINDS})(?P<plural>s?)\s+(?P<first>[A-Z]?{_NUM})"
    rf"(?P<rest>(?:\s*(?:,|and|{_DASH})\s*[A-Z]?{_NUM}\b)*)")
_HEADING = re.compile(rf"^#{{1,6}}\s+(?P<num>{_NUM})\.?(?:\s|$)", re.MULTILINE)
_BOLD = re.compile(r"\*\*(?P<text>[^*\n]+?)\*\*")


# --------------------------------------------------------------------------
# collectors (pure functions of text, tested on synthetic input below)
# --------------------------------------------------------------------------
def doc_sections(text: str) -> list[str]:
    """Section numbers of the numbered markdown headings, in document order."""
    return [m["num"] for m in _HEADING.finditer(text)]


def doc_statements(text: str) -> dict[str, list[str]]:
    """Bold labels of the document -> the sections (innermost numbered heading) they occur in.

    A statement is *defined* by a bold span whose whole text is its name,
    e.g. ``**Theorem 2.8**``.
    """
    heads = [(m.start(), m["num"]) for m in _HEADING.finditer(text)]
    out: dict[str, list[str]] = {}
    for m in _BOLD.finditer(text):
        section = None
        for pos, num in heads:
            if pos > m.start():
                break
            section = num
        out.setdefault(m["text"].strip(), []).append(section)
    return out


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _section_refs(fragment: str):
    """Yield ``(a, b)`` for each ``§a`` (``b`` None) or range ``§a-§b`` in ``fragment``."""
    for m in _SECTION_REF.finditer(fragment):
        yield m["a"], m["b"]


def anchored_citations(text: str) -> list[tuple[int, str, str | None]]:
    """``(line, a, b)`` for every section named right after ``MATH.md`` in ``text``.

    ``b`` is the end of a range (else None).  The list after ``MATH.md`` stops
    at the first item that is not a section number, so ``MATH.md §3, §4.1;
    Theorems 2.8, 3.2`` gives §3 and §4.1 only.
    """
    out = []
    for m in _ANCHORED.finditer(text):
        tail = m["tail"]
        line = _line(text, m.start())
        refs = list(_section_refs(tail))
        if not refs:  # the bare form "MATH.md 4.1"
            refs = [(re.search(_NUM, tail).group(0), None)]
        elif not tail.lstrip().startswith("§") and not tail.lstrip().startswith("end of"):
            first = re.search(_NUM, tail).group(0)
            refs.insert(0, (first, None))
        out += [(line, a, b) for a, b in refs]
    return out


def bare_citations(text: str) -> list[tuple[int, str, str | None]]:
    """``(line, a, b)`` for every ``§a`` / ``§a-§b`` anywhere in ``text``."""
    return [(_line(text, m.start()), m["a"], m["b"]) for m in _SECTION_REF.finditer(text)]


def _expand_ids(first: str, rest: str) -> list[str]:
    """``"2.8", ", 3.2"`` -> ["2.8", "3.2"]; ``"G2", "-G4"`` -> ["G2", "G3", "G4"].

    A continuation must look like the first identifier (letter prefix or not,
    dotted or not), so ``Proposition G1, 3 starts`` does not yield ``Proposition 3``.
    """
    def shape(x):
        return (x[0].isalpha(), "." in x)

    ids = [first]
    for sep, ident in re.findall(rf"\s*(,|and|{_DASH})\s*([A-Z]?{_NUM})", rest):
        if shape(ident) != shape(first):
            break
        if re.fullmatch(_DASH, sep) and ident[0].isalpha() and ident[0] == ids[-1][0] \
                and ids[-1][1:].isdigit() and ident[1:].isdigit():
            ids += [f"{ident[0]}{k}" for k in range(int(ids[-1][1:]) + 1, int(ident[1:]) + 1)]
        else:
            ids.append(ident)
    return ids


def statement_citations(text: str) -> list[tuple[int, str]]:
    """``(line, name)`` for every ``Theorem/Proposition/Lemma/Corollary X`` in prose,
    lists and ranges expanded to single names."""
    out = []
    for m in _STATEMENT_REF.finditer(text):
        line = _line(text, m.start())
        ids = _expand_ids(m["first"], m["rest"]) if m["plural"] else [m["first"]]
        out += [(line, f"{m['kind']} {i}") for i in ids]
    return out


def registry_names(source: str) -> list[tuple[int, str, str | None]]:
    """``(line, name, section)`` of the statements a Python module names in code:
    ``Statement(name=..., section=...)``, ``statement="..."`` keywords and
    ``Proof("...", ...)`` (section None where the call gives none)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        kw = {k.arg: k.value.value for k in node.keywords
              if isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)}
        if func == "Statement" and "name" in kw:
            out.append((node.lineno, kw["name"], kw.get("section")))
        elif "statement" in kw:
            out.append((node.lineno, kw["statement"], None))
        elif func == "Proof" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            out.append((node.lineno, node.args[0].value, None))
    return out


def dangling_sections(citations, sections, where: str) -> list[str]:
    """``"where:line §x"`` for each citation whose section (or range end) is not in
    ``sections``, or whose range runs backwards."""
    order = {s: k for k, s in enumerate(sections)}
    bad = []
    for line, a, b in citations:
        for x in (a, b):
            if x is not None and x not in order:
                bad.append(f"{where}:{line} §{x}")
        if a in order and b in order and order[a] > order[b]:
            bad.append(f"{where}:{line} §{a}-§{b} (backwards range)")
    return bad


# --------------------------------------------------------------------------
# the repository
# --------------------------------------------------------------------------
def _citing_files() -> list[Path]:
    files = []
    for d in CITING_DIRS:
        files += sorted((ROOT / d).rglob("*.py"))
    return files


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.fixture(scope="module")
def math_md() -> str:
    assert MATH_MD.is_file(), f"{MATH_MD} is missing: the code cites it about 160 times"
    return MATH_MD.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    files = _citing_files()
    assert files, f"no .py files under {CITING_DIRS} in {ROOT}"
    return {_rel(p): p.read_text(encoding="utf-8") for p in files}


def test_math_md_keeps_the_section_numbers_of_the_specification(math_md):
    sections = doc_sections(math_md)
    assert sorted(set(sections), key=sections.index) == sections, f"duplicate sections: {sections}"
    missing = [s for s in EXPECTED_SECTIONS if s not in sections]
    assert not missing, f"docs/MATH.md lacks sections {missing} (has {sections})"
    assert [s for s in sections if s in EXPECTED_SECTIONS] == list(EXPECTED_SECTIONS)


def test_every_math_md_section_citation_exists(math_md, sources):
    sections = doc_sections(math_md)
    cited = 0
    bad = []
    for rel, text in sources.items():
        cites = anchored_citations(text)
        cited += len(cites)
        bad += dangling_sections(cites, sections, rel)
    assert cited > 100, f"only {cited} 'MATH.md §n' citations found: is the collector broken?"
    assert not bad, ("citations of sections docs/MATH.md does not have:\n  " + "\n  ".join(bad)
                     + f"\n(sections: {', '.join(sections)})")


def test_every_bare_section_sign_names_a_math_md_section(math_md, sources):
    # Inside the cited packages "§n" always means MATH.md (docs/MATH.md, "How the code
    # cites this file"), e.g. Statement(section="§3") or "model conditionals (§4.1, §4.2)".
    sections = doc_sections(math_md)
    bad = []
    for rel, text in sources.items():
        bad += dangling_sections(bare_citations(text), sections, rel)
    assert not bad, "'§' references to missing sections of docs/MATH.md:\n  " + "\n  ".join(bad)


def test_every_cited_statement_is_defined_in_math_md(math_md, sources):
    defined = doc_statements(math_md)
    cited: dict[str, list[str]] = {}
    for rel, text in sources.items():
        for line, name in statement_citations(text):
            cited.setdefault(name, []).append(f"{rel}:{line}")
        for line, name, _ in registry_names(text):
            cited.setdefault(name, []).append(f"{rel}:{line}")
    for required in ("Theorem 2.8", "Theorem 3.2"):
        assert required in cited, f"{required} no longer cited: is the collector broken?"
    missing = {name: where for name, where in cited.items() if name not in defined}
    assert not missing, ("statements cited in code but not defined (as **name**) in docs/MATH.md:\n  "
                         + "\n  ".join(f"{n}: {', '.join(sorted(set(w)))}" for n, w in sorted(missing.items())))
    twice = {name: defined[name] for name in cited if len(defined[name]) > 1}
    assert not twice, f"statements defined more than once in docs/MATH.md: {twice}"


def test_registered_statements_sit_in_their_sections(math_md, sources):
    defined = doc_statements(math_md)
    registered = [(rel, line, name, section) for rel, text in sources.items()
                  for line, name, section in registry_names(text) if section is not None]
    assert len(registered) >= 10, f"only {len(registered)} Statement(...) calls found"
    bad = []
    for rel, line, name, section in registered:
        where = defined.get(name, [None])[0]
        if where is None or f"§{where}" != section:
            bad.append(f"{rel}:{line} {name!r} has section={section!r}, docs/MATH.md defines it "
                       f"in {'§' + where if where else 'no section'}")
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------
# the collectors themselves: they must be able to fail
# --------------------------------------------------------------------------
_SYNTHETIC_DOC = """# Title
intro **Theorem 1.1** before any section
## 1. One
**Theorem 2.8** (a title) **(derived)**
### 1.1 Sub
**Proposition G4** and **Proposition G4 (quantitative)**
## 2. Two
"""

_SYNTHETIC_CODE = '''r"""Demo (MATH.md §1, §1.1; Theorems 2.8, 3.2, Proposition G1).

Uses MATH.md §7 and MATH.md §1–§2, MATH.md §2-§1, a trailing MATH.md §2.
Also MATH.md end of §1.1, MATH.md 1.1, and MATH.md §9.3–9.4 which do not all exist.
Propositions N1 and N2; Propositions G2-G4; Proposition G1, 3 starts.
"""
X = Statement(name="Theorem 2.8", title="t", section="§1")
Y = Statement(name="Lemma 9.9", title="t", section="§2")
register("c", statement="Landscape")(f)
P = Proof("Proposition G4", "claim", 1, v)
Z = thing(section="§5")
'''


def test_doc_collectors_on_a_synthetic_document():
    assert doc_sections(_SYNTHETIC_DOC) == ["1", "1.1", "2"]
    st = doc_statements(_SYNTHETIC_DOC)
    assert st["Theorem 1.1"] == [None]
    assert st["Theorem 2.8"] == ["1"]
    assert st["Proposition G4"] == ["1.1"]
    assert st["Proposition G4 (quantitative)"] == ["1.1"]
    assert "(derived)" in st and "Theorem 3.2" not in st


def test_anchored_collector_finds_dangling_references():
    cites = anchored_citations(_SYNTHETIC_CODE)
    got = {(a, b) for _, a, b in cites}
    assert {("1", None), ("1.1", None), ("7", None), ("1", "2"), ("2", "1"), ("2", None),
            ("9.3", "9.4")} <= got
    # the list stops at the first non-section item: "Theorems 2.8, 3.2" are not sections
    assert ("2.8", None) not in got and ("3.2", None) not in got
    bad = dangling_sections(cites, ["1", "1.1", "2"], "demo.py")
    assert "demo.py:3 §7" in bad
    assert "demo.py:3 §2-§1 (backwards range)" in bad
    assert "demo.py:4 §9.3" in bad and "demo.py:4 §9.4" in bad
    assert not any("§1.1" in b or b.endswith("§2") for b in bad), bad
    assert dangling_sections(anchored_citations("see MATH.md §1, §2."), ["1", "2"], "ok.py") == []


def test_bare_collector_and_statement_collectors():
    bare = dangling_sections(bare_citations(_SYNTHETIC_CODE), ["1", "1.1", "2"], "demo.py")
    assert "demo.py:11 §5" in bare  # Z = thing(section="§5")
    names = [n for _, n in statement_citations(_SYNTHETIC_CODE)]
    for n in ("Theorem 2.8", "Theorem 3.2", "Proposition G1", "Proposition N1", "Proposition N2",
              "Proposition G2", "Proposition G3", "Proposition G4"):
        assert n in names, (n, names)
    assert "Proposition 3" not in names
    reg = registry_names(_SYNTHETIC_CODE)
    assert (7, "Theorem 2.8", "§1") in reg and (8, "Lemma 9.9", "§2") in reg
    assert (9, "Landscape", None) in reg and (10, "Proposition G4", None) in reg
    defined = doc_statements(_SYNTHETIC_DOC)
    undefined = sorted({n for _, n, _ in reg} - set(defined))
    assert undefined == ["Landscape", "Lemma 9.9"]
