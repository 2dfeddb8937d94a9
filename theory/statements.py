r"""The statements the toolkit checks, as objects (MATH.md §2–§4).

Each :class:`Statement` carries its name, hypotheses, the claim in words and
as a formula (a sympy expression where one fits), and the MATH.md section.
Checks in ``proofs_checks`` cite statements by ``name``; the report prints
``name`` and ``claim``.  This module imports neither ``numerics`` nor
``proofs_checks``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

__all__ = ["Statement", "STATEMENTS", "get_statement", "register_statement"]


@dataclass(frozen=True)
class Statement:
    """A theorem or proposition of MATH.md.

    Attributes
    ----------
    name : str
        The citation used everywhere, e.g. ``"Theorem 3.2"``.
    title : str
        Short title.
    section : str
        MATH.md section, e.g. ``"§3"``.
    hypotheses : tuple of str
        Assumptions under which the claim holds.
    claim : str
        The claim in words.
    formula : sympy.Basic or None
        The claim as a sympy relation (``Eq``/``Ge``) in the symbols of MATH.md.
    derived : bool
        True for statements MATH.md marks **(derived)** (ours, not the paper's).
    """

    name: str
    title: str
    section: str
    hypotheses: tuple
    claim: str
    formula: sp.Basic | None = None
    derived: bool = False
    symbols: dict = field(default_factory=dict, compare=False, repr=False)

    def latex(self) -> str:
        """The formula rendered as LaTeX (empty string if there is none)."""
        return sp.latex(self.formula) if self.formula is not None else ""

    def text(self) -> str:
        """Plain-text rendering: name, title, hypotheses, claim, formula."""
        lines = [f"{self.name} ({self.title}, MATH.md {self.section})"]
        lines += [f"  assume: {h}" for h in self.hypotheses]
        lines.append(f"  claim: {self.claim}")
        if self.formula is not None:
            lines.append(f"  formula: {sp.sstr(self.formula)}")
        return "\n".join(lines)


STATEMENTS: dict[str, Statement] = {}


def register_statement(statement: Statement) -> Statement:
    """Add ``statement`` to :data:`STATEMENTS` (its name must be new)."""
    if statement.name in STATEMENTS:
        raise ValueError(f"statement name={statement.name!r}: expected a new name")
    STATEMENTS[statement.name] = statement
    return statement


def get_statement(name: str) -> Statement:
    """Look a statement up by name, e.g. ``get_statement("Theorem 2.8")``."""
    try:
        return STATEMENTS[name]
    except KeyError:
        raise KeyError(
            f"name={name!r}: expected one of {', '.join(sorted(STATEMENTS))}"
        ) from None


# Scalar symbols standing for the functionals of MATH.md §3.  The symbolic
# derivations of ``theory.symbolic`` substitute concrete expressions for them.
L_clip, L_cond, I_uv = sp.symbols("L_clip L_cond I", real=True)
h_u, h_v = sp.symbols("h_u h_v", real=True)
KL_vu, KL_uv = sp.symbols(r"E_u\,KL_{v|u} E_v\,KL_{u|v}", nonnegative=True)
L_star = sp.Symbol("L^*", real=True)
n_e = sp.Symbol("n_e", integer=True, positive=True)
i = sp.Symbol("i", integer=True, positive=True)
sigma = sp.IndexedBase("sigma")

THEOREM_2_8 = register_statement(Statement(
    name="Theorem 2.8",
    title="identical minimisers of L_clip and L_cond",
    section="§3",
    hypotheses=(
        "(u, v) ~ mu with finite differential entropies h(mu_u), h(mu_v)",
        "logit f(u, v) = s(u, v)/tau with E exp f finite (any similarity)",
    ),
    claim=(
        "L_cond(g) = L_clip(g) + (h(mu_u) + h(mu_v))/2: the difference does not depend on "
        "the encoders, so L_clip and L_cond have the same minimisers over any encoder class"
    ),
    formula=sp.Eq(L_cond, L_clip + sp.Rational(1, 2) * (h_u + h_v)),
    symbols={"L_clip": L_clip, "L_cond": L_cond, "h_u": h_u, "h_v": h_v},
))

THEOREM_3_2 = register_statement(Statement(
    name="Theorem 3.2",
    title="L_clip as a sum of expected conditional KL divergences",
    section="§3",
    hypotheses=(
        "(u, v) ~ mu with finite mutual information I(u; v)",
        "model conditionals nu_{v|u}, nu_{u|v}: exponential tilts of the marginals by exp f",
    ),
    claim=(
        "L_clip = (E_u KL(mu_{v|u} || nu_{v|u}) + E_v KL(mu_{u|v} || nu_{u|v}))/2 - I(u; v); "
        "hence L_clip >= -I, with equality iff f is the pointwise mutual information + const"
    ),
    formula=sp.Eq(L_clip, sp.Rational(1, 2) * (KL_vu + KL_uv) - I_uv),
    symbols={"L_clip": L_clip, "KL_vu": KL_vu, "KL_uv": KL_uv, "I": I_uv},
))

PROPOSITION_G1 = register_statement(Statement(
    name="Proposition G1",
    title="latent identification is low-rank approximation (CCA)",
    section="§4.1",
    hypotheses=(
        "mu = N(0, C) with C symmetric positive definite",
        "bilinear logit f = u^T A v with A = G_u^T G_v / tau, rank A <= n_e",
    ),
    claim=(
        "the minimisers of L_clip over rank A <= n_e are "
        "A* = C_uu^{-1/2} U_ne Sigma_ne V_ne^T C_vv^{-1/2} (truncated SVD of K), with minimum "
        "-1/2 sum_{i<=n_e} sigma_i^2; unique iff sigma_ne > sigma_(ne+1)"
    ),
    formula=sp.Eq(L_star, -sp.Rational(1, 2) * sp.Sum(sigma[i] ** 2, (i, 1, n_e))),
    symbols={"L_star": L_star, "sigma": sigma, "n_e": n_e},
))
