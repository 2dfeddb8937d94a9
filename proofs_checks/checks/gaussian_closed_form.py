r"""Closed-form checks in the bilinear Gaussian model (MATH.md §4.1).

Each check function takes the implementations it tests as keyword
arguments, so that a test can feed it a perturbed formula and watch it fail.
"""
from __future__ import annotations

import numpy as np

from numerics import gaussian
from numerics.optimize import balanced_factors
from numerics.models import GaussianModel

from ..registry import CaseResult, register
from ..tolerances import closed_form_tolerance

__all__ = [
    "check_theorem_3_2_closed_form",
    "check_theorem_2_8_closed_form",
    "check_g1_closed_form",
    "random_bilinear",
]


def random_bilinear(model: GaussianModel, rng: np.random.Generator, count: int = 4) -> list:
    r"""``count`` test matrices ``A``: random of varying scale, plus the minimiser :math:`A^*`."""
    out = [10.0 ** rng.uniform(-1, 0.5) * rng.standard_normal((model.n_u, model.n_v))
           for _ in range(count - 1)]
    out.append(gaussian.lowrank_minimizer(model.cov, model.n_u, model.n_e))
    return out


def check_theorem_3_2_closed_form(models, rng, *, clip_loss=gaussian.population_clip_loss,
                                  kl_terms=gaussian.expected_kl_terms,
                                  mutual_information=gaussian.mutual_information):
    r"""Theorem 3.2: :math:`L_{clip}(A) - [\tfrac12(E KL_{v|u} + E KL_{u|v}) - I] = 0`
    at random ``A`` and at :math:`A^*`, and :math:`L_{clip} \ge -I`."""
    cases = []
    for m in models:
        I = mutual_information(m.cov, m.n_u)
        worst, scale = 0.0, abs(I)
        for A in random_bilinear(m, rng):
            lc = clip_loss(A, m.cov, m.n_u)
            kv, ku = kl_terms(A, m.cov, m.n_u)
            rhs = 0.5 * (kv + ku) - I
            scale = max(scale, abs(lc), abs(kv), abs(ku))
            # L_clip >= -I is part of the claim: a violation counts as an error.
            worst = max(worst, abs(lc - rhs), max(0.0, -I - lc), max(0.0, -kv), max(0.0, -ku))
        tol = closed_form_tolerance(m.cov.shape[0], m.condition_number, scale)
        cases.append(CaseResult(m.label, worst, tol, {"I": I}))
    return cases


def check_theorem_2_8_closed_form(models, rng, *, clip_loss=gaussian.population_clip_loss,
                                  cond_loss=gaussian.conditional_loss):
    r"""Theorem 2.8: :math:`L_{cond}(A) - L_{clip}(A) = \tfrac12(h(\mu_u) + h(\mu_v))` for
    every ``A`` (the difference is free of the encoders)."""
    cases = []
    for m in models:
        C_uu, _, C_vv = gaussian.split_covariance(m.cov, m.n_u)
        h = 0.5 * (gaussian.gaussian_entropy(C_uu) + gaussian.gaussian_entropy(C_vv))
        worst, scale = 0.0, abs(h)
        for A in random_bilinear(m, rng):
            lc, lk = clip_loss(A, m.cov, m.n_u), cond_loss(A, m.cov, m.n_u)
            scale = max(scale, abs(lc), abs(lk))
            worst = max(worst, abs((lk - lc) - h))
        tol = closed_form_tolerance(m.cov.shape[0], m.condition_number, scale)
        cases.append(CaseResult(m.label, worst, tol, {"entropy_term": h}))
    return cases


def check_g1_closed_form(models, rng, *, clip_loss=gaussian.population_clip_loss,
                         minimizer=gaussian.lowrank_minimizer):
    r"""Proposition G1 (closed form): :math:`L_{clip}(A^*) = -\tfrac12\sum_{i\le n_e}\sigma_i^2`,
    :math:`\operatorname{rank} A^* \le n_e`, and no rank-:math:`n_e` perturbation
    of :math:`A^*` lowers the loss (first-order optimality on the rank manifold).

    The value is computed by the trace formula of :func:`population_clip_loss`,
    the prediction from the canonical correlations: two independent routes.
    """
    cases = []
    for m in models:
        A = minimizer(m.cov, m.n_u, m.n_e)
        predicted = -0.5 * float(np.sum(m.sigma[: m.n_e] ** 2))
        value = clip_loss(A, m.cov, m.n_u)
        s = np.linalg.svd(A, compute_uv=False)
        rank_excess = float(np.sum(s[m.n_e:])) / max(float(s[0]), 1e-300) if s.size > m.n_e else 0.0
        # Perturb the factors of A* = G_u^T G_v: any rank-n_e neighbour must not be lower
        # than the minimum by more than rounding.
        G_u, G_v = balanced_factors(A, m.n_e)
        drop = 0.0
        for _ in range(4):
            eps = 1e-4
            Gu2 = G_u + eps * rng.standard_normal(G_u.shape)
            Gv2 = G_v + eps * rng.standard_normal(G_v.shape)
            drop = max(drop, predicted - clip_loss(Gu2.T @ Gv2, m.cov, m.n_u))
        tol = closed_form_tolerance(m.cov.shape[0], m.condition_number, 1.0)
        err = max(abs(value - predicted), rank_excess, max(0.0, drop))
        cases.append(CaseResult(m.label, err, tol, {"value": value, "predicted": predicted}))
    return cases


register("thm3.2-closed-form", statement="Theorem 3.2", method="closed-form",
         description="L_clip = (E KL_v|u + E KL_u|v)/2 - I at random A and at A*; L_clip >= -I",
         )(check_theorem_3_2_closed_form)
register("thm2.8-closed-form", statement="Theorem 2.8", method="closed-form",
         description="L_cond - L_clip = (h_u + h_v)/2 at random A (free of the encoders)",
         )(check_theorem_2_8_closed_form)
register("g1-closed-form", statement="Proposition G1", method="closed-form",
         description="L_clip(A*) = -1/2 sum_{i<=n_e} sigma_i^2, rank A* <= n_e, no lower neighbour",
         )(check_g1_closed_form)
