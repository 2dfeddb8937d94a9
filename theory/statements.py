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

from . import gaussian_sym as gs

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
    symbols : dict
        The symbols the formula uses, by name.
    expressions : dict
        Named sympy expressions the statement is about (definitions of the
        losses, the closed forms it asserts), rendered after the formula.
    notes : tuple of str
        Remarks on scope or reading of the claim (printed by :meth:`text`).
    """

    name: str
    title: str
    section: str
    hypotheses: tuple
    claim: str
    formula: sp.Basic | None = None
    derived: bool = False
    symbols: dict = field(default_factory=dict, compare=False, repr=False)
    expressions: dict = field(default_factory=dict, compare=False, repr=False)
    notes: tuple = ()

    def latex(self) -> str:
        """The formula rendered as LaTeX (empty string if there is none)."""
        return sp.latex(self.formula) if self.formula is not None else ""

    def latex_full(self) -> str:
        """The whole statement as a LaTeX paragraph: name, hypotheses, claim,
        formula and the named expressions."""
        tag = " (derived)" if self.derived else ""
        out = [rf"\paragraph{{{self.name}{tag}: {_latex_text(self.title)}}}"
               rf" (MATH.md {_latex_text(self.section)})"]
        if self.hypotheses:
            out.append(r"\begin{itemize}")
            out += [rf"\item Assume: {_latex_text(h)}" for h in self.hypotheses]
            out.append(r"\end{itemize}")
        out.append(rf"Claim: {_latex_text(self.claim)}")
        if self.formula is not None:
            out.append(rf"\[ {self.latex()} \]")
        for key, expr in self.expressions.items():
            out.append(rf"\[ {_latex_text(key)} = {sp.latex(expr)} \]")
        return "\n".join(out)

    def text(self) -> str:
        """Plain-text rendering: name, title, hypotheses, claim, formula, expressions, notes."""
        tag = ", derived" if self.derived else ""
        lines = [f"{self.name} ({self.title}, MATH.md {self.section}{tag})"]
        lines += [f"  assume: {h}" for h in self.hypotheses]
        lines.append(f"  claim: {self.claim}")
        if self.formula is not None:
            lines.append(f"  formula: {sp.sstr(self.formula)}")
        lines += [f"  where {key} = {sp.sstr(expr)}" for key, expr in self.expressions.items()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
                   "$": r"\$", "{": r"\{", "}": r"\}", "^": r"\^{}", "~": r"\~{}"}


def _latex_text(s: str) -> str:
    """Escape plain text for LaTeX."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in s)


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
# One Symbol each: ``sp.symbols`` would read the "\," of the thin space as an escaped comma.
KL_vu = sp.Symbol(r"E_u\,KL_{v|u}", nonnegative=True)
KL_uv = sp.Symbol(r"E_v\,KL_{u|v}", nonnegative=True)
L_star = sp.Symbol("L^*", real=True)
n_e = sp.Symbol("n_e", integer=True, positive=True)
i = sp.Symbol("i", integer=True, positive=True)
sigma = sp.IndexedBase("sigma")

# Pointwise quantities of MATH.md §3 (functions of the pair (u, v)).
_u, _v = sp.symbols("u v")
f_logit = sp.Function("f")(_u, _v)
log_Z_v = sp.log(sp.Function("Z_v")(_u))
log_Z_u = sp.log(sp.Function("Z_u")(_v))
E_mu, E_u, E_v = sp.Function("E_mu"), sp.Function("E_{mu_u}"), sp.Function("E_{mu_v}")
log_nu_v = f_logit + sp.log(sp.Function("p_v")(_v)) - log_Z_v
log_nu_u = f_logit + sp.log(sp.Function("p_u")(_u)) - log_Z_u

#: Definitions of MATH.md §3 as expressions (E_* are unevaluated expectations).
L_CLIP_DEFINITION = -E_mu(f_logit) + E_u(log_Z_v) / 2 + E_v(log_Z_u) / 2
L_COND_DEFINITION = -E_mu(log_nu_v + log_nu_u) / 2
KL_VU_DEFINITION = E_mu(sp.log(sp.Function("p")(_u, _v)) - sp.log(sp.Function("p_u")(_u)) - log_nu_v)
KL_UV_DEFINITION = E_mu(sp.log(sp.Function("p")(_u, _v)) - sp.log(sp.Function("p_v")(_v)) - log_nu_u)
I_DEFINITION = E_mu(sp.log(sp.Function("p")(_u, _v)) - sp.log(sp.Function("p_u")(_u))
                    - sp.log(sp.Function("p_v")(_v)))
#: Balanced / flexible forward-KL loss of MATH.md §3.
L_LAMBDA_FORWARD = I_uv - E_mu(f_logit) + gs.lam * E_v(log_Z_u) + (1 - gs.lam) * E_u(log_Z_v)

_GAUSSIAN = "mu = N(0, C) with C = [[C_uu, C_uv], [C_vu, C_vv]] symmetric positive definite"
_BILINEAR = "bilinear logit f = u^T A v, A = G_u^T G_v / tau, rank A <= n_e"
_L2 = "L2 logit f = -|G_u u - G_v v|^2 / (2 tau), linear encoders G_u (n_e x n_u), G_v (n_e x n_v)"

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
    expressions={
        "L_clip": L_CLIP_DEFINITION,
        "L_cond": L_COND_DEFINITION,
        "L_clip (Gaussian, bilinear)": gs.clip_loss_closed_form,
        "L_cond (Gaussian, bilinear)": gs.conditional_loss_closed_form,
        "h_u (Gaussian)": gs.entropy_closed_form(gs.C_uu, gs.n_u),
    },
    notes=("the finite-sample L_N has the same minimisers only as N -> oo (rate O(N^-1/2))",),
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
    expressions={
        "L_clip": L_CLIP_DEFINITION,
        "E_u KL_v|u": KL_VU_DEFINITION,
        "E_v KL_u|v": KL_UV_DEFINITION,
        "I": I_DEFINITION,
        "L_lambda (forward KL)": L_LAMBDA_FORWARD,
        "L_clip (Gaussian, bilinear)": gs.clip_loss_closed_form,
        "E_u KL_v|u (Gaussian, bilinear)": gs.kl_vu_closed_form,
        "E_v KL_u|v (Gaussian, bilinear)": gs.kl_uv_closed_form,
        "I (Gaussian)": gs.mutual_information_closed_form,
    },
    notes=("lambda = 1/2 in L_lambda gives L_clip + I; the identity holds for every similarity",),
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
    expressions={
        "A": gs.A_of_encoders,
        "K": gs.K_whitened,
        "L_clip(A)": gs.clip_loss_closed_form,
        "B": gs.B_whitened,
    },
    notes=("L_clip(A) = ||B - K||_F^2/2 - ||K||_F^2/2; the encoders span the top-n_e "
           "canonical subspaces",),
))

# --------------------------------------------------------------------------
# MATH.md §2: the finite-sample loss
# --------------------------------------------------------------------------
_N = gs.N
_Fm = sp.MatrixSymbol("F", _N, _N)
_P = sp.MatrixSymbol("P", _N, _N)
_c = sp.Symbol("c", real=True)
_J = sp.OneMatrix(_N, _N)
L_N = sp.Function("L_N", real=True)

LEMMA_2_1 = register_statement(Statement(
    name="Lemma 2.1",
    title="facts of the finite-sample CLIP loss",
    section="§2",
    hypotheses=("F in R^{N x N} (F_ij = f(u_i, v_j)), N >= 1", "P an N x N permutation matrix"),
    claim=(
        "L_N >= 0; L_N = log N when all F_ij are equal; L_N(F + c) = L_N(F) for a constant c; "
        "L_N(P F P^T) = L_N(F) (permuting the pairs)"
    ),
    formula=sp.And(sp.Ge(L_N(_Fm), 0), sp.Eq(L_N(_c * _J), sp.log(_N)),
                   sp.Eq(L_N(_Fm + _c * _J), L_N(_Fm)), sp.Eq(L_N(_P * _Fm * _P.T), L_N(_Fm))),
    symbols={"N": _N, "F": _Fm, "P": _P, "c": _c},
    expressions={"L_N": gs.finite_sample_loss},
    notes=("gradient dL_N/dF = (P + Q)/(2N) - I/N with P, Q the row / column softmax",
           "the converse of the second fact fails: N = 2, F = [[0, log 2], [-log 3, 0]] "
           "also gives L_2 = log 2"),
))

_L_N_sym = sp.Symbol("L_N", real=True)
_E_LN = sp.Function("E", real=True)(_L_N_sym)
_Var_LN = sp.Function("Var", nonnegative=True)(_L_N_sym)

PROPOSITION_N1 = register_statement(Statement(
    name="Proposition N1",
    title="population limit of the finite-sample loss",
    section="§3",
    hypotheses=("pairs (u_i, v_i) i.i.d. from mu", "E exp(2 f) and E f^2 finite (integrability)"),
    claim=(
        "L_N - log N -> L_clip as N -> oo (law of large numbers); the bias "
        "E[L_N] - log N - L_clip is O(1/N) and the fluctuation sd(L_N) is O(N^{-1/2})"
    ),
    formula=sp.And(
        sp.Eq(sp.Limit(L_N(_Fm) - sp.log(_N), _N, sp.oo), L_clip),
        sp.Eq(_E_LN - sp.log(_N) - L_clip, sp.O(1 / _N, (_N, sp.oo))),
        sp.Eq(sp.sqrt(_Var_LN), sp.O(1 / sp.sqrt(_N), (_N, sp.oo))),
    ),
    symbols={"N": _N, "L_clip": L_clip, "E_LN": _E_LN, "Var_LN": _Var_LN},
    expressions={"L_N": gs.finite_sample_loss, "L_clip": L_CLIP_DEFINITION},
))

PROPOSITION_N2 = register_statement(Statement(
    name="Proposition N2",
    title="InfoNCE bound",
    section="§2",
    hypotheses=("pairs (u_i, v_i) i.i.d. from mu", "finite mutual information I(u; v)"),
    claim="E[L_N] >= log N - I(u; v) for every N",
    formula=sp.Ge(_E_LN, sp.log(_N) - I_uv),
    symbols={"N": _N, "E_LN": _E_LN, "I": I_uv},
    expressions={"L_N": gs.finite_sample_loss, "I": I_DEFINITION},
))

# --------------------------------------------------------------------------
# MATH.md §4.1, §4.2: the Gaussian propositions
# --------------------------------------------------------------------------
U_ne = sp.MatrixSymbol("U_{n_e}", gs.n_u, gs.n_e)
V_ne = sp.MatrixSymbol("V_{n_e}", gs.n_v, gs.n_e)
Sigma_ne = sp.MatrixSymbol("Sigma_{n_e}", gs.n_e, gs.n_e)
_half = sp.Rational(1, 2)
A_STAR = sp.MatPow(gs.C_uu, -_half) * U_ne * Sigma_ne * V_ne.T * sp.MatPow(gs.C_vv, -_half)
_A_lam0, _A_lam1, _A_rev = sp.symbols(r"A^*_{\lambda=0} A^*_{\lambda=1} A^*_{rev}")
_A_star_sym = sp.Symbol("A^*")

PROPOSITION_G2 = register_statement(Statement(
    name="Proposition G2",
    title="one-sided and reverse-KL losses share the minimiser A*",
    section="§4.1",
    hypotheses=(_GAUSSIAN, _BILINEAR, "lambda in {0, 1} (one-sided) or D = reverse KL"),
    claim=(
        "the one-sided losses (lambda = 0 or 1) and the reverse-KL losses have the minimiser A* "
        "of Proposition G1; at A* the model conditional means are the true conditional means "
        "projected on the top-n_e canonical directions, C_vv A*^T = C_vv^{1/2} V_ne Sigma_ne "
        "U_ne^T C_uu^{-1/2}, while the model covariances stay C_vv, C_uu (not S_v, S_u)"
    ),
    formula=sp.And(sp.Eq(_A_lam0, _A_star_sym), sp.Eq(_A_lam1, _A_star_sym),
                   sp.Eq(_A_rev, _A_star_sym)),
    derived=True,
    symbols={"A_star": _A_star_sym},
    expressions={
        "A^*": A_STAR,
        "model mean map at A^* (v|u)": gs.C_vv * A_STAR.T,
        "true mean map (v|u)": gs.C_vu * gs.C_uu.I,
    },
))

_L_l2_min = sp.Function("minL^{L2}_{0}", real=True)(gs.n_e)
_r = sp.Symbol("r", integer=True, positive=True)
_b, _a = sp.IndexedBase("b"), sp.IndexedBase("a")
_Sigma_v = (gs.C_vv.I + gs.G_v.T * gs.G_v / gs.tau).I

PROPOSITION_G3 = register_statement(Statement(
    name="Proposition G3",
    title="generative (L2, one-sided) loss recovers the conditional exactly",
    section="§4.2",
    hypotheses=(_GAUSSIAN, _L2, "lambda = 0 (only the v|u term)", "r = rank C_uv"),
    claim=(
        "the minimum over latent dimension n_e is -1/2 sum_{n_e < i <= r} log(1 - sigma_i^2), "
        "0 when n_e >= r (nu_{v|u} = mu_{v|u}, mean and covariance); in canonical coordinates "
        "the minimiser is diagonal with b_i^2 = tau sigma_i^2/(1 - sigma_i^2), "
        "a_i b_i = tau sigma_i/(1 - sigma_i^2)"
    ),
    formula=sp.And(
        sp.Eq(_L_l2_min, -_half * sp.Sum(sp.log(1 - sigma[i] ** 2), (i, gs.n_e + 1, _r))),
        sp.Eq(_b[i] ** 2, gs.tau * sigma[i] ** 2 / (1 - sigma[i] ** 2)),
        sp.Eq(_a[i] * _b[i], gs.tau * sigma[i] / (1 - sigma[i] ** 2)),
    ),
    derived=True,
    symbols={"sigma": sigma, "n_e": gs.n_e, "r": _r, "tau": gs.tau, "a": _a, "b": _b},
    expressions={
        "Sigma_v (model covariance of v|u)": _Sigma_v,
        "model mean map (v|u)": _Sigma_v * gs.G_v.T * gs.G_u / gs.tau,
    },
))

_L_l2_half = sp.Function("L^{L2}_{1/2}", real=True)(gs.G_u, gs.G_v)
_K_norm = sp.Symbol("normK_F", nonnegative=True)

PROPOSITION_G4 = register_statement(Statement(
    name="Proposition G4",
    title="the two-sided L2 loss cannot reach 0",
    section="§4.2",
    hypotheses=(_GAUSSIAN, _L2, "lambda = 1/2 (both conditional KL terms)"),
    claim=(
        "L^{L2}_{1/2}(G_u, G_v) > 0 for all encoders unless K = 0: the pointwise mutual "
        "information of a Gaussian is an indefinite quadratic form, while "
        "-|G_u u - G_v v|^2/2 is negative semidefinite"
    ),
    formula=sp.Implies(sp.Gt(_K_norm, 0), sp.Gt(_L_l2_half, 0)),
    derived=True,
    symbols={"K_norm": _K_norm},
    expressions={"K": gs.K_whitened,
                 "normK_F": sp.sqrt(sp.Trace(gs.K_whitened.T * gs.K_whitened))},
))

_t_gd = sp.Symbol("t", nonnegative=True)
#: The loss along the gradient-descent path of the factors, as a function of time t.
_L_gd = sp.Function("L_path", real=True)(_t_gd)

LANDSCAPE = register_statement(Statement(
    name="Landscape",
    title="gradient descent on the factors reaches the global value",
    section="§4.1",
    hypotheses=(_GAUSSIAN, _BILINEAR, "gradient descent on (G_u, G_v) from random starts"),
    claim=(
        "although L_clip(G_u^T G_v) is non-convex in the factors, gradient descent from random "
        "starts reaches the global value -1/2 sum_{i<=n_e} sigma_i^2"
    ),
    formula=sp.Eq(sp.Limit(_L_gd, _t_gd, sp.oo),
                  -_half * sp.Sum(sigma[i] ** 2, (i, 1, gs.n_e))),
    derived=True,
    symbols={"sigma": sigma, "n_e": gs.n_e, "t": _t_gd},
    expressions={"L_path(t)": gs.clip_loss_closed_form.subs(gs.A, gs.A_of_encoders)},
    notes=("G_u = G_u(t), G_v = G_v(t): the factors along the gradient-descent path",),
))
