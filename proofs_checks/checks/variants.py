r"""Checks of the balanced and flexible variants: Propositions G2, G3, G4
(MATH.md end of §3, §4.1, §4.2).

Each check function takes the implementations it tests as keyword
arguments, so that a test can feed it a perturbed formula and watch it fail.
Optimisation checks use a subset of the models they are given (at most
``max_models``) to stay within a few seconds in the main job.

Minimisers are found by :func:`numerics.optimize.minimize_factors` with the
settings :data:`_FIT` (no restarts, as these objectives are smooth and their
optimum is judged by the checks' own tolerances).
"""
from __future__ import annotations

import math
import numpy as np

from numerics import gaussian, variants
from numerics.optimize import bilinear_objective, minimize_factors

from ..registry import CaseResult, register
from ..tolerances import (closed_form_tolerance, covariance_tolerance, mean_map_tolerance,
                          minimiser_tolerance, optimum_value_tolerance)

__all__ = [
    "G2_VARIANTS",
    "check_g2_closed_form",
    "check_g2_optimization",
    "check_g3_closed_form",
    "check_g3_optimization",
    "check_g4_optimization",
]

#: (divergence, lambda) pairs of Proposition G2: the one-sided losses and the
#: reverse-KL losses (one-sided and balanced).
#: Settings of :func:`numerics.optimize.minimize_factors` for the variant fits.
_FIT = {"init_scale": 0.7, "gtol": 1e-10, "maxiter": 5000, "restarts": 0}

G2_VARIANTS = (("forward", 0.0), ("forward", 1.0), ("reverse", 0.0), ("reverse", 1.0),
               ("reverse", 0.5))


def _untied(models, max_models):
    """Models with a resolvable minimiser (no tie), at most ``max_models``."""
    out = [m for m in models if m.eigengap > 0.02 * max(m.sigma[m.n_e - 1], 1e-12)
           and m.sigma[m.n_e - 1] > 0]
    return out[:max_models]


def _projector_v(m):
    r""":math:`P_v = C_{vv}^{1/2} V_{n_e}V_{n_e}^T C_{vv}^{-1/2}`, built from the canonical
    directions (not from :func:`numerics.variants.projected_regression_maps`)."""
    _, _, C_vv = gaussian.split_covariance(m.cov, m.n_u)
    _, _, Vt = gaussian.canonical_directions(m.cov, m.n_u)
    Vk = Vt[: m.n_e].T
    return gaussian.sym_power(C_vv, 0.5) @ Vk @ Vk.T @ gaussian.sym_power(C_vv, -0.5)


def _projector_u(m):
    C_uu, _, _ = gaussian.split_covariance(m.cov, m.n_u)
    U, _, _ = gaussian.canonical_directions(m.cov, m.n_u)
    Uk = U[:, : m.n_e]
    return gaussian.sym_power(C_uu, 0.5) @ Uk @ Uk.T @ gaussian.sym_power(C_uu, -0.5)


# --------------------------------------------------------------------------
# Proposition G2
# --------------------------------------------------------------------------
def check_g2_closed_form(models, rng, *, minimizer=gaussian.lowrank_minimizer,
                         conditionals=gaussian.bilinear_model_conditionals):
    r"""Proposition G2 at :math:`A^*`: the model mean maps equal the true regression maps
    projected on the top canonical directions, :math:`C_{vv}A^{*T} = P_v C_{vu}C_{uu}^{-1}`
    and :math:`C_{uu}A^* = P_u C_{uv}C_{vv}^{-1}`, and the model covariances are
    :math:`C_{vv}`, :math:`C_{uu}`, not :math:`S_v`, :math:`S_u`.

    The covariance part is recorded as an error when the model covariance
    differs from :math:`C_{vv}` or happens to equal :math:`S_v` (their
    distance :math:`\|C_{vu}C_{uu}^{-1}C_{uv}\|_F` is positive whenever
    :math:`K \ne 0`).
    """
    cases = []
    for m in models:
        A = minimizer(m.cov, m.n_u, m.n_e)
        N_v, Sig_v, N_u, Sig_u = conditionals(A, m.cov, m.n_u)
        M_v, S_v, M_u, S_u = gaussian.true_conditionals(m.cov, m.n_u)
        C_uu, _, C_vv = gaussian.split_covariance(m.cov, m.n_u)
        mean_err = max(float(np.linalg.norm(N_v - _projector_v(m) @ M_v)),
                       float(np.linalg.norm(N_u - _projector_u(m) @ M_u)))
        cov_err = max(float(np.linalg.norm(Sig_v - C_vv)), float(np.linalg.norm(Sig_u - C_uu)))
        gap = min(float(np.linalg.norm(Sig_v - S_v)), float(np.linalg.norm(Sig_u - S_u)))
        scale = max(float(np.max(np.abs(m.cov))), 1.0)
        tol = closed_form_tolerance(m.cov.shape[0], m.condition_number, scale)
        # the covariance gap must be positive when K != 0: report its absence as an error
        missing_gap = (1.0 if gap <= tol and m.sigma[0] > 0 else 0.0)
        cases.append(CaseResult(m.label, max(mean_err, cov_err, missing_gap), tol,
                                {"mean_error": mean_err, "covariance_gap": gap}))
    return cases


def check_g2_optimization(models, rng, *, loss=variants.bilinear_balanced_loss,
                          loss_grad=variants.bilinear_balanced_loss_grad,
                          minimizer=gaussian.lowrank_minimizer, max_models=10, starts=2):
    r"""Proposition G2 by optimisation: the one-sided and reverse-KL bilinear losses,
    minimised over rank-:math:`n_e` factors from random starts, reach :math:`A^*`.

    Model ``k`` of the subset is fitted with variant ``k mod 5`` of
    :data:`G2_VARIANTS`.  Minimisers are compared through the whitened invariant
    :math:`B = C_{uu}^{1/2}AC_{vv}^{1/2}` with
    :func:`~proofs_checks.tolerances.minimiser_tolerance`: each term is
    :math:`\tfrac12\|(B-K)R\|_F^2` + const with :math:`R^2 \succeq I`
    (:math:`R = I` forward, :math:`(I - K^TK)^{-1/2}` reverse), so its curvature
    is at least that of :math:`L_{clip}` and the tolerance is conservative.
    """
    cases = []
    for k, m in enumerate(_untied(models, max_models)):
        div, lam = G2_VARIANTS[k % len(G2_VARIANTS)]

        objective = bilinear_objective(
            lambda A, m=m, div=div, lam=lam: loss(A, m.cov, m.n_u, lam, divergence=div),
            lambda A, m=m, div=div, lam=lam: loss_grad(A, m.cov, m.n_u, lam, divergence=div))
        fit = minimize_factors(objective, m.n_u, m.n_v, m.n_e, warn=False, **_FIT, starts=starts,
                               rng=rng)
        A_fit = fit.G_u.T @ fit.G_v
        A_star = minimizer(m.cov, m.n_u, m.n_e)
        vtol = optimum_value_tolerance(m.cov.shape[0], m.condition_number, max(abs(fit.value), 1.0))
        mtol = minimiser_tolerance(vtol, m.sigma, m.n_e)
        dB = float(np.linalg.norm(gaussian.whitened_bilinear(A_fit, m.cov, m.n_u)
                                     - gaussian.whitened_bilinear(A_star, m.cov, m.n_u)))
        cases.append(CaseResult(f"{m.label} {div} lam={lam:g}", dB, mtol,
                                {"value": fit.value, "eigengap": m.eigengap}))
    return cases


# --------------------------------------------------------------------------
# Proposition G3
# --------------------------------------------------------------------------
def check_g3_closed_form(models, rng, *, minimizer=variants.l2_one_sided_minimizer,
                         kl_terms=variants.l2_kl_terms, conditionals=variants.l2_conditionals,
                         minimum=variants.l2_one_sided_minimum,
                         infonce_terms=variants.l2_infonce_terms):
    r"""Proposition G3 at the canonical minimiser: with :math:`b_i^2 = \tau\sigma_i^2/(1-\sigma_i^2)`,
    :math:`a_ib_i = \tau\sigma_i/(1-\sigma_i^2)`, the one-sided loss
    :math:`L_0 = E_u KL(\mu_{v|u}\|\nu_{v|u})` equals
    :math:`-\tfrac12\sum_{i>n_e}\log(1-\sigma_i^2)` (at a random temperature), and
    when :math:`n_e \ge r` the model conditional is exactly :math:`\mu_{v|u}`
    (mean map :math:`C_{vu}C_{uu}^{-1}`, covariance :math:`S_v`).

    The value is the KL itself (MATH.md's :math:`L_\lambda` includes :math:`I`); the
    InfoNCE form :math:`-E f + E\log Z_v = L_0 - I`, computed by the independent
    route :func:`numerics.variants.l2_infonce_terms`, must equal
    :math:`\tfrac12\sum_{i\le n_e}\log(1-\sigma_i^2)` there.
    """
    cases = []
    for m in models:
        tau = float(10 ** rng.uniform(-1, 1))
        G_u, G_v = minimizer(m.cov, m.n_u, m.n_e, tau)
        kv, _ = kl_terms(G_u, G_v, tau, m.cov, m.n_u)
        predicted = -0.5 * float(np.sum(np.log1p(-m.sigma[m.n_e:] ** 2)))
        Ef, lzv, _ = infonce_terms(G_u, G_v, tau, m.cov, m.n_u)
        infonce_predicted = 0.5 * float(np.sum(np.log1p(-m.sigma[: m.n_e] ** 2)))
        err = max(abs(kv - predicted), abs(minimum(m.cov, m.n_u, m.n_e) - predicted),
                  abs((-Ef + lzv) - infonce_predicted))
        rank = int(np.sum(m.sigma > 1e-12))
        if m.n_e >= rank:
            N_v, Sig_v, _, _ = conditionals(G_u, G_v, tau, m.cov, m.n_u)
            M_v, S_v, _, _ = gaussian.true_conditionals(m.cov, m.n_u)
            err = max(err, float(np.linalg.norm(N_v - M_v)), float(np.linalg.norm(Sig_v - S_v)))
        scale = max(abs(predicted), float(np.max(np.abs(m.cov))), 1.0 / (1.0 - m.sigma[0] ** 2))
        tol = closed_form_tolerance(m.cov.shape[0], m.condition_number, scale)
        cases.append(CaseResult(m.label, err, tol, {"value": kv, "predicted": predicted,
                                                    "tau": tau}))
    return cases


def check_g3_optimization(models, rng, *, objective=variants.l2_balanced_objective,
                          kl_terms=variants.l2_kl_terms, conditionals=variants.l2_conditionals,
                          max_models=10, starts=3):
    r"""Proposition G3 by optimisation over L2 encoders :math:`(G_u, G_v, \tau)` from
    random starts (no canonical formula): the minimum of the one-sided loss
    equals :math:`-\tfrac12\sum_{i>n_e}\log(1-\sigma_i^2)`, and when
    :math:`n_e \ge r` the fitted model conditional is :math:`\mu_{v|u}`.

    The search minimises the InfoNCE form (:func:`numerics.variants.l2_infonce_terms`);
    the value compared is the KL from the model conditionals
    (:func:`numerics.variants.l2_kl_terms`) at the fitted encoders: two routes.
    The mean-map and covariance tolerances follow from the value tolerance
    (:func:`~proofs_checks.tolerances.mean_map_tolerance`,
    :func:`~proofs_checks.tolerances.covariance_tolerance`).
    """
    cases = []
    for m in models[:max_models]:
        fit = minimize_factors(objective(m.cov, m.n_u, 0.0), m.n_u, m.n_v, m.n_e, warn=False,
                               **_FIT, starts=starts, rng=rng)
        # The search runs over H = G / sqrt(tau): report the encoders at a random tau.
        tau = float(10 ** rng.uniform(-1, 1))
        G_u, G_v = np.sqrt(tau) * fit.G_u, np.sqrt(tau) * fit.G_v
        kv, _ = kl_terms(G_u, G_v, tau, m.cov, m.n_u)
        predicted = -0.5 * float(np.sum(np.log1p(-m.sigma[m.n_e:] ** 2)))
        scale = max(abs(predicted), 1.0 / (1.0 - m.sigma[0] ** 2))
        vtol = optimum_value_tolerance(m.cov.shape[0], m.condition_number, scale)
        cases.append(CaseResult(f"{m.label} value", abs(kv - predicted), vtol,
                                {"value": kv, "predicted": predicted,
                                 "start_values": fit.start_values.tolist()}))
        rank = int(np.sum(m.sigma > 1e-12))
        if m.n_e >= rank:
            N_v, Sig_v, _, _ = conditionals(G_u, G_v, tau, m.cov, m.n_u)
            M_v, S_v, _, _ = gaussian.true_conditionals(m.cov, m.n_u)
            C_uu, _, _ = gaussian.split_covariance(m.cov, m.n_u)
            e_mean = float(np.linalg.norm(N_v - M_v))
            e_cov = float(np.linalg.norm(Sig_v - S_v))
            cases.append(CaseResult(f"{m.label} mean map", e_mean,
                                    mean_map_tolerance(vtol, S_v, C_uu)))
            cases.append(CaseResult(f"{m.label} covariance", e_cov, covariance_tolerance(vtol, S_v)))
    return cases


# --------------------------------------------------------------------------
# Proposition G4
# --------------------------------------------------------------------------
def check_g4_optimization(models, rng, *, objective=variants.l2_balanced_objective,
                          kl_terms=variants.l2_kl_terms, max_models=8, starts=3):
    r"""Proposition G4 by optimisation: the two-sided L2 loss
    :math:`\tfrac12(E_u KL(\mu_{v|u}\|\nu_{v|u}) + E_v KL(\mu_{u|v}\|\nu_{u|v}))`,
    minimised over full-rank encoders (:math:`n_e = \min(n_u, n_v)`, the most
    expressive class) from random starts, stays bounded away from 0 when :math:`K\ne0`.

    Two cases per model:

    * ``bounded away (shortfall below 100x resolution)``: the minimum reached
      must exceed the margin, 100 times the resolution of the optimiser
      (:func:`~proofs_checks.tolerances.optimum_value_tolerance`).  The case's
      error is the amount by which the claim is violated,
      :math:`\max(0, \text{margin} - \text{minimum})`, and its tolerance 0 (no
      allowance: the margin already is the allowance for optimisation error);
      it fails exactly when the optimiser gets within the margin of 0.  The
      minimum and the margin are in ``detail``;
    * ``feasible``: the minimum is at most the diagonal value
      :func:`numerics.variants.two_sided_diagonal_value` (any diagonal encoder is feasible), which
      shows the optimiser reached the bottom of the landscape it explores.
    """
    cases = []
    for m in models[:max_models]:
        if m.sigma[0] <= 0:
            continue
        k = min(m.n_u, m.n_v)
        fit = minimize_factors(objective(m.cov, m.n_u, 0.5), m.n_u, m.n_v, k, warn=False,
                               **_FIT, starts=starts, rng=rng)
        kv, ku = kl_terms(fit.G_u, fit.G_v, 1.0, m.cov, m.n_u)
        value = 0.5 * (kv + ku)
        vtol = optimum_value_tolerance(m.cov.shape[0], m.condition_number,
                                       1.0 / (1.0 - m.sigma[0] ** 2))
        diag = variants.two_sided_diagonal_value(m.sigma)
        margin = 100.0 * vtol
        detail = {"minimum": value, "margin": margin, "diagonal_value": diag,
                  "sigma_1": float(m.sigma[0])}
        cases.append(CaseResult(f"{m.label} bounded away (shortfall below 100x resolution)",
                                max(0.0, margin - value), 0.0, detail))
        cases.append(CaseResult(f"{m.label} feasible", max(0.0, value - diag), vtol, detail))
    return cases


register("g2-closed-form", statement="Proposition G2", method="closed-form",
         description="at A*: model means = P (true regression map); covariances C_vv != S_v",
         )(check_g2_closed_form)
register("g2-optimization", statement="Proposition G2", method="optimization",
         description="one-sided and reverse-KL bilinear losses minimised over factors reach A*",
         )(check_g2_optimization)
register("g3-closed-form", statement="Proposition G3", method="closed-form",
         description="one-sided L2 at the canonical minimiser: -1/2 sum_{i>n_e} log(1-sigma_i^2)",
         )(check_g3_closed_form)
register("g3-optimization", statement="Proposition G3", method="optimization",
         description="one-sided L2 minimised over (G_u, G_v, tau): value and exact conditional",
         )(check_g3_optimization)
register("g4-optimization", statement="Proposition G4", method="optimization",
         description="two-sided L2 minimum over full-rank encoders stays > 0 when K != 0",
         )(check_g4_optimization)
