r"""Proposition G4 by a second method: the two-sided L2 minimum in closed form
(MATH.md §4.2; :mod:`theory.l2_two_sided`, :mod:`numerics.l2_two_sided`).

Per model with :math:`K \ne 0`:

* ``attained``: at the canonical diagonal encoders
  (:func:`numerics.l2_two_sided.two_sided_canonical_encoders`) the two-sided
  loss, evaluated by the general Gaussian KL of :func:`numerics.variants.l2_kl_terms`,
  equals :math:`\sum_i\varphi(\sigma_i)` from the closed form of :math:`\varphi`;
* ``bounded away``: :math:`\sum_i\varphi(\sigma_i) \ge \varphi(\sigma_1) > 0`
  (the error is the shortfall; tolerance 0);
* ``1-D variational`` (first ``max_variational_models`` models): the closed form against the one-dimensional problem solved
  numerically to ``xatol = 1e-10`` (:func:`numerics.variants.two_sided_diagonal_value`);
* ``stationary`` and ``second order`` (first ``max_hessian_models`` models): the
  gradient of the full objective (:func:`numerics.variants.l2_balanced_objective`,
  latent dimension :math:`n_u + n_v`: the canonical encoders padded with zero rows)
  vanishes there, and the Hessian, by central differences of that gradient, has no
  eigenvalue below :math:`-`tolerance (its kernel is the rotations of the latent
  space): a local minimum over all encoders, evidence for the observed step 4(b);
* ``pair minimum on the diagonal (observed)`` (first ``max_pair_models``): BFGS on the scalar pair problem
  in :math:`(a, b)` from random starts (:func:`numerics.variants.fit_two_sided_pair`, through
  :func:`numerics.variants.l2_kl_terms`) never goes below :math:`\varphi(\sigma_1)`: evidence
  for step 4(a).
"""
from __future__ import annotations

import numpy as np

from numerics import l2_two_sided as lt
from numerics import variants
from numerics.optimize import finite_difference_hessian

from ..registry import CaseResult, register
from ..tolerances import closed_form_tolerance, finite_difference_hessian_tolerance

__all__ = ["check_g4_closed_form"]


def check_g4_closed_form(models, rng, *, minimum=lt.two_sided_minimum,
                         pair_minimum=lt.two_sided_pair_minimum,
                         encoders=lt.two_sided_canonical_encoders, kl_terms=variants.l2_kl_terms,
                         objective=variants.l2_balanced_objective,
                         diagonal_value=variants.two_sided_diagonal_value,
                         max_hessian_models=6, pair_starts=3, max_pair_models=4,
                         max_variational_models=8):
    r"""Proposition G4: the two-sided L2 minimum is :math:`\sum_i\varphi(\sigma_i) > 0`."""
    cases = []
    used = [m for m in models if m.sigma[0] > 0]
    for k, m in enumerate(used):
        s = m.sigma
        phi_sum = float(minimum(m.cov, m.n_u))
        scale = max(1.0, 1.0 / (1.0 - s[0] ** 2))
        tol = closed_form_tolerance(m.cov.shape[0], m.condition_number, scale)
        G_u, G_v = encoders(m.cov, m.n_u)
        kv, ku = kl_terms(G_u, G_v, 1.0, m.cov, m.n_u)
        value = 0.5 * (kv + ku)
        detail = {"phi_sum": phi_sum, "sigma": s.tolist()}
        cases.append(CaseResult(f"{m.label} attained", abs(value - phi_sum), tol,
                                dict(detail, value=value)))
        phi_1 = float(pair_minimum(s[0]))
        cases.append(CaseResult(f"{m.label} bounded away", max(0.0, phi_1 - phi_sum)
                                + (0.0 if phi_1 > 0 else 1.0), 0.0, dict(detail, phi_1=phi_1)))
        kappa = float(max((1 + si) / (1 - si) for si in s))
        if k < max_variational_models:
                cases.append(CaseResult(f"{m.label} 1-D variational", abs(diagonal_value(s) - phi_sum),
                                    closed_form_tolerance(2, kappa, scale * len(s)), detail))
        if k < max_hessian_models:
            pad = m.n_u + m.n_v - G_u.shape[0]
            Hu = np.vstack([G_u, np.zeros((pad, m.n_u))])
            Hv = np.vstack([G_v, np.zeros((pad, m.n_v))])
            obj = objective(m.cov, m.n_u, 0.5)

            def grad(x, Hu=Hu, Hv=Hv, obj=obj):
                _, (gu, gv) = obj(x[: Hu.size].reshape(Hu.shape), x[Hu.size:].reshape(Hv.shape))
                return np.concatenate([gu.ravel(), gv.ravel()])

            x0 = np.concatenate([Hu.ravel(), Hv.ravel()])
            g0 = grad(x0)
            H, h = finite_difference_hessian(grad, x0)
            ev = np.linalg.eigvalsh(H)
            hs = float(np.max(np.abs(ev)))
            cases.append(CaseResult(f"{m.label} stationary", float(np.linalg.norm(g0)),
                                    closed_form_tolerance(m.cov.shape[0], m.condition_number,
                                                          hs * max(1.0, float(np.max(np.abs(x0))))),
                                    {"grad_norm": float(np.linalg.norm(g0))}))
            cases.append(CaseResult(f"{m.label} second order", max(0.0, -float(ev[0])),
                                    finite_difference_hessian_tolerance(hs, float(np.max(np.abs(x0))), h),
                                    {"min_eigenvalue": float(ev[0]),
                                     "smallest_positive": float(ev[ev > 1e-6][0]) if np.any(ev > 1e-6)
                                     else 0.0}))
        if k < max_pair_models:
            best = variants.fit_two_sided_pair(s[0], rng, starts=pair_starts, kl_terms=kl_terms).value
            cases.append(CaseResult(f"{m.label} pair minimum on the diagonal (observed)",
                                    max(0.0, phi_1 - best),
                                    closed_form_tolerance(2, (1 + s[0]) / (1 - s[0]), scale),
                                    {"best_2d": best, "phi_1": phi_1}))
    return cases


register("g4-closed-form", statement="Proposition G4", method="closed-form",
         description="two-sided L2 minimum = sum_i phi(sigma_i) > 0 (closed-form phi): attained, "
                     "stationary with PSD Hessian over all encoders, = 1-D variational value",
         )(check_g4_closed_form)
