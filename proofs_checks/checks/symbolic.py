r"""Symbolic checks: exact proofs in small dimensions, and the bridge to numerics
(MATH.md §3, §4.1; Theorems 2.8, 3.2, Proposition G1).

Two kinds of case:

* **proof cases** (``*-symbolic``): one identity of :mod:`theory.symbolic`
  each, for :math:`n_u = n_v \in \{1, 2\}` with a generic SPD covariance.
  Error 0 and tolerance 0 when sympy proves the residual zero; when
  simplification cannot decide, the residual is evaluated exactly at random
  rational points and the case says so in ``detail["method"]``
  (``"rational-points"``: evidence, not a proof); a nonzero residual fails
  with its value at a witness point as the error.
* **bridge cases** (``*-symbolic-bridge``): the derived expressions are
  evaluated (lambdified, 40-digit mpmath) and compared with the closed forms
  of :mod:`numerics.gaussian` on the models of the run with
  :math:`n_u = n_v \in \{1, 2\}` plus models drawn here.  A wrong closed form
  in ``numerics`` or a wrong derivation in ``theory`` makes them fail.

Check functions take the implementations under test as keyword arguments so
that a test can feed a perturbed formula and watch the check fail.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from numerics import gaussian
from numerics.models import GaussianModel, random_gaussian_model
from theory import symbolic

from ..registry import CaseResult, register
from ..tolerances import closed_form_tolerance

__all__ = [
    "proof_cases",
    "bridge_models",
    "check_theorem_3_2_bridge",
    "check_theorem_2_8_bridge",
    "check_g1_bridge",
]


def proof_cases(statement: str) -> list:
    """The proofs of ``statement`` from :func:`theory.symbolic.proofs_for` as cases."""
    cases = []
    for pr in symbolic.proofs_for(statement):
        v = pr.verdict
        cases.append(CaseResult(pr.label, float(v.error), 0.0,
                                {"method": v.method, "proved": v.zero and v.method != "rational-points",
                                 "seconds": v.seconds}))
    return cases


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
        f_clip, f_kv, f_ku = (symbolic.lambdified(k, n) for k in ("L_clip", "KL_v", "KL_u"))
        f_I = symbolic.lambdified("I", n)
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
        f_cond, f_hu, f_hv = (symbolic.lambdified(k, n) for k in ("L_cond", "h_u", "h_v"))
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
        A_sym = symbolic.lambdified("A_star", n)(m.cov)
        A_num = minimizer(m.cov, n, n)
        norm = max(np.linalg.norm(A_sym), np.finfo(float).tiny)
        errs.append(np.linalg.norm(A_num - A_sym) / norm)
        lo = symbolic.lambdified("min_full", n)(m.cov)
        errs.append(abs(minimum(m.cov, n, n) - lo))
        if n == 2:
            lo1 = symbolic.lambdified("min_rank1", 2)(m.cov)
            A1 = minimizer(m.cov, 2, 1)
            G = symbolic.lambdified("grad_A", 2)(A1, m.cov)
            C_uu, _, C_vv = gaussian.split_covariance(m.cov, 2)
            denom = max(np.linalg.norm(C_uu, 2) * np.linalg.norm(C_vv, 2)
                        * np.linalg.norm(A1) ** 2, np.finfo(float).tiny)
            s = np.linalg.svd(A1, compute_uv=False)
            errs += [abs(minimum(m.cov, 2, 1) - lo1),
                     abs(symbolic.lambdified("L_clip", 2)(A1, m.cov) - lo1),
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
