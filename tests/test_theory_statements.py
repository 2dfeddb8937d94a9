"""Tests of theory.statements and theory.gaussian_sym: every statement of MATH.md
exists under its cited name and renders; theory imports no numerics."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

from theory import STATEMENTS, Statement, get_statement, gaussian_sym as gs, register_statement

ROOT = Path(__file__).resolve().parents[1]

NAMES = ["Theorem 2.8", "Theorem 3.2", "Proposition G1", "Proposition G2", "Proposition G3",
         "Proposition G4", "Landscape", "Proposition N1", "Proposition N2", "Lemma 2.1"]
DERIVED = {"Proposition G2", "Proposition G3", "Proposition G4", "Landscape"}

# LaTeX every formula must contain, written by hand from the notation of MATH.md.
LATEX_TOKENS = {
    "Theorem 2.8": [r"L_{cond}", r"L_{clip}", r"h_{u}", r"h_{v}", r"\frac", "="],
    "Theorem 3.2": [r"L_{clip}", r"E_u\,KL_{v|u}", r"E_v\,KL_{u|v}", "I", "="],
    "Proposition G1": [r"L^{*}", r"\sum_{i=1}^{n_{e}}", r"\sigma}_{i}^{2}"],
    "Proposition G2": [r"A^*_{\lambda=0}", r"A^*_{\lambda=1}", r"A^*_{rev}", r"A^{*}", r"\wedge"],
    "Proposition G3": [r"\tau", r"\sigma}_{i}", r"\log", r"\sum_{i=n_{e} + 1}^{r}", r"\wedge"],
    "Proposition G4": [r"normK_{F} > 0", r"\Rightarrow", r"L^{L2}_{1/2}", r"G_{u}", r"G_{v}"],
    "Landscape": [r"\lim_{t \to \infty}", r"\sum_{i=1}^{n_{e}}", r"\sigma}_{i}^{2}"],
    "Proposition N1": [r"\lim_{N \to \infty}", r"L_{clip}", r"\log", r"\infty", r"\sqrt"],
    "Proposition N2": [r"\geq", r"\log", "I", "N"],
    "Lemma 2.1": [r"L_{N}", r"\geq 0", r"\log", r"P F P^{T}", r"\wedge"],
}
# Text of Python or sympy's string printer that must never reach LaTeX: operators,
# constructors, a Greek letter without its backslash, a thin space read as a comma.
NOT_LATEX = [r"\*\*", r"sqrt\(", r"Rational", r"Symbol\(", r"Eq\(", r"\boo\b",
             r"(?<!\\)\b(lambda|sigma|tau)\b", r"E_[uv],KL"]


def _balanced(latex: str) -> bool:
    depth = 0
    for prev, ch in zip(" " + latex, latex):
        if prev == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    left = len(re.findall(r"\\left(?![a-zA-Z])", latex))
    return depth == 0 and left == len(re.findall(r"\\right(?![a-zA-Z])", latex))


@pytest.mark.parametrize("name", NAMES)
def test_statement_exists_and_renders(name):
    st = get_statement(name)
    assert st.name == name
    assert st.derived == (name in DERIVED)
    text = st.text()
    assert text.startswith(name) and st.claim in text
    assert all(h in text for h in st.hypotheses)
    assert isinstance(st.formula, sp.Basic)
    latex = st.latex()
    missing = [tok for tok in LATEX_TOKENS[name] if tok not in latex]
    assert not missing, (missing, latex)
    leaked = [pat for pat in NOT_LATEX if re.search(pat, latex)]
    assert not leaked, (leaked, latex)
    assert _balanced(latex), latex
    full = st.latex_full()
    assert full.startswith(r"\paragraph{") and latex in full
    for key, expr in st.expressions.items():
        assert f"where {key} = " in text
        assert sp.latex(expr) in full


def test_registry_rejects_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="Theorem 3.2"):
        register_statement(Statement("Theorem 3.2", "t", "§3", (), "c"))
    with pytest.raises(KeyError, match="Theorem 9.9"):
        get_statement("Theorem 9.9")
    assert set(NAMES) <= set(STATEMENTS)


def test_formulas_at_hand_computed_points():
    # Values computed by hand from MATH.md §3, §4.1, not from the code under test.
    L_clip, L_cond, h_u, h_v = sp.symbols("L_clip L_cond h_u h_v", real=True)
    f28 = get_statement("Theorem 2.8").formula
    # L_cond = L_clip + (h_u + h_v)/2: 1.5 + (2 - 1)/2 = 2.
    assert f28.subs({L_clip: 1.5, h_u: 2, h_v: -1, L_cond: 2}) == sp.true
    assert f28.subs({L_clip: 1.5, h_u: 2, h_v: -1, L_cond: 2.5}) == sp.false
    th32 = get_statement("Theorem 3.2")
    kl_v, kl_u, mi = th32.symbols["KL_vu"], th32.symbols["KL_uv"], th32.symbols["I"]
    # L_clip = (KL_v + KL_u)/2 - I: (3 + 5)/2 - 1 = 3.
    assert th32.formula.subs({kl_v: 3, kl_u: 5, mi: 1, L_clip: 3}) == sp.true
    assert th32.formula.subs({kl_v: 3, kl_u: 5, mi: 1, L_clip: 7}) == sp.false
    g1 = get_statement("Proposition G1")
    sigma, n_e = g1.symbols["sigma"], g1.symbols["n_e"]
    # -(0.6^2 + 0.3^2)/2 = -0.225 for n_e = 2.
    rhs = g1.formula.rhs.subs(n_e, 2).doit().subs({sigma[1]: 0.6, sigma[2]: 0.3})
    assert abs(float(rhs) + 0.225) < 1e-15


def test_existing_formulas_unchanged():
    L_clip, L_cond, h_u, h_v = sp.symbols("L_clip L_cond h_u h_v", real=True)
    assert get_statement("Theorem 2.8").formula == sp.Eq(L_cond, L_clip + (h_u + h_v) / 2)
    f = get_statement("Theorem 3.2").formula
    assert isinstance(f, sp.Eq) and f.lhs == L_clip


def test_theory_imports_neither_numerics_nor_proofs_checks():
    code = ("import sys, theory, theory.symbolic, theory.gaussian_sym, theory.statements\n"
            "import theory.identities, theory.gaussian_derivations, theory.proofs\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('numerics', 'proofs_checks'))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_instantiated_closed_forms_in_one_dimension():
    # Hand-derived 1x1 values (not from the code under test):
    # L_clip = -a c + a^2 p q / 2, I = -log(1 - c^2/(p q))/2.
    p, q = sp.symbols("p q", positive=True)
    c, a = sp.symbols("c a", real=True)
    kw = dict(cuu=sp.Matrix([[p]]), cuv=sp.Matrix([[c]]), cvv=sp.Matrix([[q]]))
    clip = gs.instantiate(gs.clip_loss_closed_form, a=sp.Matrix([[a]]), **kw)
    assert sp.expand(clip - (-a * c + a**2 * p * q / 2)) == 0
    mi = gs.instantiate(gs.mutual_information_closed_form, **kw)
    point = {p: 2, q: 3, c: 1}
    assert abs(float(mi.subs(point)) + 0.5 * math.log(1 - 1 / 6)) < 1e-14


def _finite_sample_loss(F):
    N = len(F)
    lse = lambda xs: math.log(sum(math.exp(x) for x in xs))  # noqa: E731
    rows = sum(lse(F[i]) for i in range(N))
    cols = sum(lse([F[i][j] for i in range(N)]) for j in range(N))
    return -sum(F[i][i] for i in range(N)) / N + (rows + cols) / (2 * N)


def test_lemma_2_1_note_counterexample_holds():
    # The note in Lemma 2.1 says the converse of "all F equal => L_N = log N" fails.
    F = [[0.0, math.log(2.0)], [-math.log(3.0), 0.0]]
    assert abs(_finite_sample_loss(F) - math.log(2.0)) < 1e-15
    assert any("converse" in n for n in get_statement("Lemma 2.1").notes)


def test_finite_sample_loss_expression_matches_definition():
    # The sympy L_N of MATH.md §2 evaluated at N = 2 equals the direct formula.
    F = [[0.3, -1.2], [0.7, 2.0]]
    expr = gs.finite_sample_loss.subs(gs.N, 2).doit()
    expr = expr.subs({gs.F[i + 1, j + 1]: F[i][j] for i in range(2) for j in range(2)})
    assert abs(float(expr) - _finite_sample_loss(F)) < 1e-14
