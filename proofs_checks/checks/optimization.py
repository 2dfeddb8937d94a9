r"""Optimisation checks: minimisers found by BFGS over the encoder factors,
with no SVD formula (:func:`numerics.optimize.fit_population_clip`,
:func:`numerics.optimize.fit_population_cond`), held against Theorem 2.8 and
Proposition G1 (MATH.md §3, §4.1).

Minimisers are compared through the invariant :math:`A = G_u^T G_v` in
whitened coordinates :math:`B = C_{uu}^{1/2} A C_{vv}^{1/2}`, with a
tolerance scaled by the eigengap (:func:`~proofs_checks.tolerances.minimiser_tolerance`).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import subspace_angles

from numerics import gaussian
from numerics.optimize import fit_population_clip, fit_population_cond

from ..registry import CaseResult, register
from ..tolerances import minimiser_tolerance, optimum_value_tolerance

__all__ = ["check_g1_optimization", "check_theorem_2_8_optimization"]


def _unique(model, vtol):
    r"""Whether the minimiser is resolvable: its tolerance is below a tenth of
    :math:`\sigma_{n_e}` (otherwise the eigengap is, to working precision, a tie)."""
    mtol = minimiser_tolerance(vtol, model.sigma, model.n_e)
    return np.isfinite(mtol) and mtol < 0.1 * model.sigma[model.n_e - 1], mtol


def _u_subspace_whitened(m):
    r""":math:`\operatorname{span}(U_{n_e})`, the top left canonical directions of :math:`K`."""
    U, _, _ = gaussian.canonical_directions(m.cov, m.n_u)
    return U[:, : m.n_e]


def check_g1_optimization(models, rng, *, minimizer=gaussian.lowrank_minimizer,
                          minimum=gaussian.lowrank_minimum,
                          clip_loss=gaussian.population_clip_loss,
                          clip_grad=gaussian.population_clip_loss_grad):
    r"""Proposition G1 by optimisation.

    Per model, up to three comparisons (one case each):

    * value: the optimised minimum equals :math:`-\tfrac12\sum_{i\le n_e}\sigma_i^2`;
    * minimiser: when :math:`\sigma_{n_e} > \sigma_{n_e+1}`, the optimised invariant
      :math:`B = C_{uu}^{1/2} G_u^T G_v C_{vv}^{1/2}` equals :math:`B^*`;
    * subspace: the largest principal angle between :math:`C_{uu}^{1/2}\operatorname{range}(G_u^T)`
      and :math:`\operatorname{span}(U_{n_e})` (the encoder recovers the canonical subspace),
      with tolerance :math:`\text{tol}_B / \sigma_{n_e}` since a perturbation
      :math:`\delta B` turns the leading subspace by at most :math:`\|\delta B\| / \sigma_{n_e}`.

    With a tie only the value is compared: MATH.md allows every choice among
    the tied directions.
    """
    cases = []
    for m in models:
        fit = fit_population_clip(m, rng, clip_loss=clip_loss, clip_grad=clip_grad)
        target = minimum(m.cov, m.n_u, m.n_e)
        vtol = optimum_value_tolerance(m.cov.shape[0], m.condition_number, abs(target))
        cases.append(CaseResult(f"{m.label} value", abs(fit.value - target), vtol,
                                {"value": fit.value, "predicted": target}))
        unique, mtol = _unique(m, vtol)
        if unique:
            A_star = minimizer(m.cov, m.n_u, m.n_e)
            B_fit = gaussian.whitened_bilinear(fit.A, m.cov, m.n_u)
            dB = float(np.linalg.norm(B_fit - gaussian.whitened_bilinear(A_star, m.cov, m.n_u)))
            cases.append(CaseResult(f"{m.label} minimiser", dB, mtol, {"eigengap": m.eigengap}))
            C_uu, _, _ = gaussian.split_covariance(m.cov, m.n_u)
            enc = gaussian.sym_power(C_uu, 0.5) @ fit.G_u.T
            angle = float(np.max(subspace_angles(enc, _u_subspace_whitened(m))))
            cases.append(CaseResult(f"{m.label} subspace", angle, mtol / m.sigma[m.n_e - 1],
                                    {"eigengap": m.eigengap}))
    return cases


def check_theorem_2_8_optimization(models, rng, *, clip_loss=gaussian.population_clip_loss,
                                   clip_grad=gaussian.population_clip_loss_grad,
                                   cond_loss=gaussian._conditional_loss):
    r"""Theorem 2.8 by optimisation: minimising :math:`L_{cond}` and :math:`L_{clip}`
    separately gives the same minimiser (invariant :math:`B`) and minimum values that
    differ by :math:`\tfrac12(h_u + h_v)`.

    :math:`L_{cond}` is optimised with finite-difference gradients of its own
    formula, so it borrows nothing from :math:`L_{clip}`.  Tied models compare
    values only.
    """
    cases = []
    for m in models:
        f_clip = fit_population_clip(m, rng, clip_loss=clip_loss, clip_grad=clip_grad, starts=3)
        f_cond = fit_population_cond(m, rng, cond_loss=cond_loss)
        C_uu, _, C_vv = gaussian.split_covariance(m.cov, m.n_u)
        h = 0.5 * (gaussian.gaussian_entropy(C_uu) + gaussian.gaussian_entropy(C_vv))
        vtol = optimum_value_tolerance(m.cov.shape[0], m.condition_number,
                                       max(abs(f_cond.value), abs(h), 1.0))
        cases.append(CaseResult(f"{m.label} value", abs((f_cond.value - f_clip.value) - h), vtol,
                                {"clip_min": f_clip.value, "cond_min": f_cond.value,
                                 "entropy_term": h}))
        unique, mtol = _unique(m, vtol)
        if unique:
            dB = float(np.linalg.norm(gaussian.whitened_bilinear(f_clip.A, m.cov, m.n_u)
                                      - gaussian.whitened_bilinear(f_cond.A, m.cov, m.n_u)))
            cases.append(CaseResult(f"{m.label} minimiser", dB, mtol, {"eigengap": m.eigengap}))
    return cases


register("g1-optimization", statement="Proposition G1", method="optimization",
         description="BFGS over (G_u, G_v) reaches -1/2 sum sigma_i^2 and A* (invariant B, angles)",
         )(check_g1_optimization)
register("thm2.8-optimization", statement="Theorem 2.8", method="optimization",
         description="minimisers of L_cond and L_clip coincide; minima differ by (h_u + h_v)/2",
         )(check_theorem_2_8_optimization)
