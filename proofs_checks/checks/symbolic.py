r"""Symbolic checks: exact proofs in small dimensions, and the bridge to numerics
(MATH.md §3, §4.1; Theorems 2.8, 3.2, Proposition G1).

Two kinds of case:

* **proof cases** (``*-symbolic``): one identity of :mod:`theory.symbolic`
  each, for :math:`n_u = n_v \in \{1, 2\}` with a generic SPD covariance;
  tolerance 0.  A case passes only on a proof (verdict kind
  ``"identity-proved"`` or ``"positivity-proved"``, error 0).  A residual
  nonzero at a rational point fails with that value as the error.  Evidence
  that is not a proof (``"rational-points-only"``: zero at the sampled
  rational points) and ``"undecided"`` fail with error ``inf``; the verdict
  kind and the reason are in ``detail["verdict"]``, ``detail["reason"]``.
* **bridge cases** (``*-symbolic-bridge``): the derived expressions are
  evaluated (:func:`lambdified`: 40-digit mpmath) and compared with the closed
  forms of :mod:`numerics.gaussian` on the models of the run with
  :math:`n_u = n_v \in \{1, 2\}` plus models drawn here.  A wrong closed form
  in ``numerics`` or a wrong derivation in ``theory`` makes them fail.

Check functions take the implementations under test as keyword arguments so
that a test can feed a perturbed formula and watch the check fail.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from numerics import gaussian
from numerics.models import GaussianModel, random_gaussian_model
from theory import symbolic

from ..registry import CaseResult, register
from ..tolerances import closed_form_tolerance

__all__ = [
    "WORKING_DIGITS",
    "lambdified",
    "proof_case",
    "proof_cases",
    "bridge_models",
    "check_theorem_3_2_bridge",
    "check_theorem_2_8_bridge",
    "check_g1_bridge",
]


# --------------------------------------------------------------------------
# proof cases
# --------------------------------------------------------------------------
_NOT_A_PROOF = {
    symbolic.RATIONAL_POINTS_ONLY: "evidence only: simplification did not decide and the residual "
                                   "is zero at the sampled rational points; not a proof",
    symbolic.NONZERO_AT_POINT: "refuted: the residual is nonzero at a rational point satisfying "
                               "the hypotheses",
    symbolic.UNDECIDED: "undecided: neither proved nor refuted",
}


def proof_case(proof) -> CaseResult:
    r"""One :class:`theory.symbolic.Proof` as a case with tolerance 0.

    The error is 0 for a proof (``proof.verdict.proved``); the residual's
    largest value for ``"nonzero-at-point"``; ``inf`` for evidence that is not
    a proof (``"rational-points-only"``) and for ``"undecided"``, so that only
    a proof passes.  ``detail`` holds ``verdict`` (the kind), ``proved``,
    ``seconds`` and, for a case that is not a proof, ``reason``.
    """
    v = proof.verdict
    detail = {"verdict": v.kind, "proved": v.proved, "seconds": v.seconds}
    if v.proved:
        error = 0.0
    else:
        detail["reason"] = _NOT_A_PROOF[v.kind]
        error = float(v.error) if v.error > 0 else math.inf
    return CaseResult(proof.label, error, 0.0, detail)


def proof_cases(statement: str, *, proofs_for=symbolic.proofs_for) -> list:
    """The proofs of ``statement`` (from ``proofs_for``, by default
    :func:`theory.symbolic.proofs_for`) as cases (:func:`proof_case`)."""
    return [proof_case(pr) for pr in proofs_for(statement)]


# --------------------------------------------------------------------------
# the numeric bridge: derived expressions evaluated in floating point
# --------------------------------------------------------------------------
#: Working precision (decimal digits) of :func:`lambdified`: the derived
#: expressions are evaluated in mpmath so that their own rounding (expanded
#: polynomials in the covariance entries cancel heavily) is negligible
#: against the float64 rounding of the implementation they are compared with.
WORKING_DIGITS = 40

_DERIVED = ("L_clip", "KL_v", "KL_u", "I", "L_cond", "h_u", "h_v")
_COV_ONLY = ("A_star", "min_full", "min_rank1")
_NAMES = _DERIVED + _COV_ONLY + ("grad_A",)


def _numeric_args(st, cov, A=None) -> list:
    """Float values of ``st.cov_symbols`` read from the ``2n x 2n`` array ``cov``
    (upper triangle), then of ``st.A_symbols`` from the ``n x n`` array ``A``."""
    n = st.n
    idx = {}
    for i in range(2 * n):
        for j in range(2 * n):
            s = st.C[i, j]
            if s not in idx:
                idx[s] = (i, j)
    vals = [float(cov[idx[s]]) for s in st.cov_symbols]
    if A is not None:
        vals += [float(A[i, j]) for i in range(n) for j in range(n)]
    return vals


@lru_cache(maxsize=None)
def _lambdified(name: str, n: int):
    st = symbolic.setting(n)
    if name == "A_star":
        expr = list(symbolic.full_rank_minimizer(n))
    elif name == "min_full":
        expr = symbolic.full_rank_minimum(n)
    elif name == "min_rank1":
        if n != 2:
            raise ValueError(f"n={n}: the rank-one minimum is stated for n=2")
        expr = symbolic.rank_one_minimum()
    elif name == "grad_A":
        expr = list(symbolic.derivations(n)["grad_A"])
    elif name in _DERIVED:
        expr = symbolic.derivations(n)[name]
    else:
        raise ValueError(f"name={name!r}: expected one of {_NAMES}")
    takes_A = name not in _COV_ONLY
    args = st.cov_symbols + st.A_symbols if takes_A else st.cov_symbols
    return sp.lambdify(args, expr, modules="mpmath", cse=True), takes_A


def lambdified(name: str, n: int):
    r"""A float function of the derived expression ``name`` in dimension ``n``.

    ``name`` is one of ``L_clip``, ``KL_v``, ``KL_u``, ``I``, ``L_cond``,
    ``h_u``, ``h_v``, ``grad_A`` (from :func:`theory.symbolic.derivations`,
    called as ``fn(A, cov)``), or ``A_star`` (full-rank minimiser, ``n x n``
    array), ``min_full`` (:math:`-\tfrac12\sum_i\sigma_i^2`), ``min_rank1``
    (:math:`-\tfrac12\sigma_1^2`, ``n = 2``), called as ``fn(cov)``.  ``cov``
    is the joint ``2n x 2n`` covariance (upper triangle read), ``A`` the
    ``n x n`` bilinear matrix.  Evaluation is in mpmath at
    :data:`WORKING_DIGITS` digits, from the exact binary values of the float
    inputs; the result is rounded to float64.

    Raises
    ------
    ValueError
        For an unknown ``name``, ``n`` outside ``SUPPORTED_DIMENSIONS``, or
        ``min_rank1`` with ``n != 2``.
    """
    fn, takes_A = _lambdified(name, n)
    st = symbolic.setting(n)
    matrix_valued = name in ("grad_A", "A_star")

    def evaluate(vals):
        with mpmath.workdps(WORKING_DIGITS):
            out = fn(*[mpmath.mpf(x) for x in vals])
            if matrix_valued:
                return np.array([float(x) for x in out], dtype=float).reshape(n, n)
            return float(out)

    if takes_A:
        def call(A, cov):
            return evaluate(_numeric_args(st, cov, A))
    else:
        def call(cov):
            return evaluate(_numeric_args(st, cov))
    call.__name__ = f"{name}_n{n}"
    return call


# --------------------------------------------------------------------------
# bridge cases
# --------------------------------------------------------------------------


def bridge_models(models, rng: np.random.Generator, *, extra: int = 2) -> list:
    r"""Models with :math:`n_u = n_v \in \{1, 2\}`: those given, plus ``extra`` drawn per
    size and one :math:`2\times2` model with tied correlations and :math:`n_e = 1`."""
    chosen = [m for m in models if m.n_u == m.n_v and m.n_u in symbolic.SUPPORTED_DIMENSIONS]
    drawn = []
    for n in symbolic.SUPPORTED_DIMENSIONS:
        for _ in range(extra):
            drawn.append(random_gaussian_model(
                rng, n, n, n_e=int(rng.integers(1, n + 1)),
                max_correlation=float(rng.uniform(0.3, 0.95)),
                max_condition=float(10 ** rng.uniform(0, 2))))
    drawn.append(random_gaussian_model(rng, 2, 2, n_e=1, tie=True,
                                       max_condition=float(10 ** rng.uniform(0, 2))))
    return chosen + [replace(m, label=f"drawn {m.label}") for m in drawn]


def _test_matrices(m: GaussianModel, rng, count=3):
    out = [10.0 ** rng.uniform(-1, 0.5) * rng.standard_normal((m.n_u, m.n_v)) for _ in range(count)]
    out.append(np.zeros((m.n_u, m.n_v)))
    return out


def _tol(m, scale):
    return closed_form_tolerance(m.cov.shape[0], m.condition_number, scale)


def check_theorem_3_2_bridge(models, rng, *, clip_loss=gaussian.population_clip_loss,
                             kl_terms=gaussian.expected_kl_terms,
                             mutual_information=gaussian.mutual_information):
    r"""Derived :math:`L_{clip}`, :math:`E\,KL_{v|u}`, :math:`E\,KL_{u|v}`, :math:`I`
    (from Gaussian integrals) against ``numerics`` at random :math:`A` and :math:`A = 0`."""
    cases = []
    for m in models:
        n = m.n_u
        f_clip, f_kv, f_ku = (lambdified(k, n) for k in ("L_clip", "KL_v", "KL_u"))
        f_I = lambdified("I", n)
        worst, scale = 0.0, 0.0
        for A in _test_matrices(m, rng):
            sym = [f_clip(A, m.cov), f_kv(A, m.cov), f_ku(A, m.cov), f_I(A, m.cov)]
            num = [clip_loss(A, m.cov, n), *kl_terms(A, m.cov, n), mutual_information(m.cov, n)]
            scale = max(scale, *(abs(x) for x in sym))
            worst = max(worst, *(abs(a - b) for a, b in zip(sym, num)))
        cases.append(CaseResult(m.label, worst, _tol(m, scale), {"scale": scale}))
    return cases


def check_theorem_2_8_bridge(models, rng, *, cond_loss=gaussian.conditional_loss,
                             entropy=gaussian.gaussian_entropy):
    r"""Derived :math:`L_{cond}` and :math:`h(\mu_u), h(\mu_v)` against ``numerics``."""
    cases = []
    for m in models:
        n = m.n_u
        f_cond, f_hu, f_hv = (lambdified(k, n) for k in ("L_cond", "h_u", "h_v"))
        C_uu, _, C_vv = gaussian.split_covariance(m.cov, n)
        worst, scale = 0.0, 0.0
        for A in _test_matrices(m, rng):
            sym = [f_cond(A, m.cov), f_hu(A, m.cov), f_hv(A, m.cov)]
            num = [cond_loss(A, m.cov, n), entropy(C_uu), entropy(C_vv)]
            scale = max(scale, *(abs(x) for x in sym))
            worst = max(worst, *(abs(a - b) for a, b in zip(sym, num)))
        cases.append(CaseResult(m.label, worst, _tol(m, scale), {"scale": scale}))
    return cases


def check_g1_bridge(models, rng, *, minimizer=gaussian.lowrank_minimizer,
                    minimum=gaussian.lowrank_minimum, clip_loss=gaussian.population_clip_loss):
    r"""Proposition G1: ``numerics`` minimiser and minimum against the symbolic solution.

    Full rank (:math:`n_e = n`): :math:`A^*` against the unique solution of the
    symbolic stationarity system (relative Frobenius error; :math:`A^*` is the
    invariant of the factors) and the minimum against
    :math:`-\tfrac12\operatorname{tr}(C_{uu}^{-1}C_{uv}C_{vv}^{-1}C_{vu})`.
    Rank one in 2x2 (every 2x2 model): the minimum against :math:`-\tfrac12\sigma_1^2`
    from the characteristic polynomial; the minimiser through invariants:
    its loss value, its rank, and stationarity on the rank-one manifold,
    :math:`\nabla L\, A^T = 0 = A^T \nabla L`, normalised by
    :math:`\|C_{uu}\|\|C_{vv}\|\|A\|_F^2` (a relative error of :math:`A` enters
    these residuals at most once).
    """
    cases = []
    for m in models:
        n = m.n_u
        errs, scale = [], 1.0
        A_sym = lambdified("A_star", n)(m.cov)
        A_num = minimizer(m.cov, n, n)
        norm = max(np.linalg.norm(A_sym), np.finfo(float).tiny)
        errs.append(np.linalg.norm(A_num - A_sym) / norm)
        lo = lambdified("min_full", n)(m.cov)
        errs.append(abs(minimum(m.cov, n, n) - lo))
        if n == 2:
            lo1 = lambdified("min_rank1", 2)(m.cov)
            A1 = minimizer(m.cov, 2, 1)
            G = lambdified("grad_A", 2)(A1, m.cov)
            C_uu, _, C_vv = gaussian.split_covariance(m.cov, 2)
            denom = max(np.linalg.norm(C_uu, 2) * np.linalg.norm(C_vv, 2)
                        * np.linalg.norm(A1) ** 2, np.finfo(float).tiny)
            s = np.linalg.svd(A1, compute_uv=False)
            errs += [abs(minimum(m.cov, 2, 1) - lo1),
                     abs(lambdified("L_clip", 2)(A1, m.cov) - lo1),
                     abs(clip_loss(A1, m.cov, 2) - lo1),
                     np.linalg.norm(G @ A1.T) / denom,
                     np.linalg.norm(A1.T @ G) / denom,
                     s[1] / max(s[0], np.finfo(float).tiny)]
        cases.append(CaseResult(m.label, float(max(errs)), _tol(m, scale),
                                {"n_e_checked": "1, 2" if n == 2 else "1"}))
    return cases


def _bridge(check):
    return lambda models, rng: check(bridge_models(models, rng), rng)


register("thm3.2-symbolic", statement="Theorem 3.2", method="symbolic",
         description="exact: MGF, tilts = Gaussian conditionals, closed forms, "
                     "L_clip - (KL sum/2 - I) = 0 (n_u=n_v=1,2, generic SPD C; any logit)",
         )(lambda models, rng: proof_cases("Theorem 3.2"))
register("thm2.8-symbolic", statement="Theorem 2.8", method="symbolic",
         description="exact: L_cond - L_clip = (h_u+h_v)/2 and d/dA_ij of it = 0 "
                     "(n_u=n_v=1,2, generic SPD C; any logit)",
         )(lambda models, rng: proof_cases("Theorem 2.8"))
register("g1-symbolic", statement="Proposition G1", method="symbolic",
         description="exact: stationary A* = C_uu^-1 C_uv C_vv^-1, min -sum sigma^2/2, Hessian "
                     "C_uu(x)C_vv PD; rank 1 in 2x2: stationary points = singular pairs",
         )(lambda models, rng: proof_cases("Proposition G1"))
register("thm3.2-symbolic-bridge", statement="Theorem 3.2", method="symbolic",
         description="lambdified derivations of L_clip, KL terms, I vs numerics (n_u=n_v<=2)",
         )(_bridge(check_theorem_3_2_bridge))
register("thm2.8-symbolic-bridge", statement="Theorem 2.8", method="symbolic",
         description="lambdified derivations of L_cond, h_u, h_v vs numerics (n_u=n_v<=2)",
         )(_bridge(check_theorem_2_8_bridge))
register("g1-symbolic-bridge", statement="Proposition G1", method="symbolic",
         description="symbolic A*, minima (full rank, rank 1) vs numerics lowrank_* (n_u=n_v<=2)",
         )(_bridge(check_g1_bridge))
