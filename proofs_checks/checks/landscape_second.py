r"""Landscape by second methods: the strict-saddle property of the factorised
objective :math:`\ell(G_u, G_v) = L_{clip}(G_u^TG_v)` (MATH.md §4.1; :mod:`theory.landscape`).

* ``landscape-closed-form``: for every model and every set :math:`S` of canonical
  pairs with :math:`|S| \le n_e`, at the balanced stationary point
  (:func:`numerics.landscape.canonical_stationary_point`) the gradient vanishes, the
  exact Hessian (:func:`numerics.landscape.factor_hessian`) carried to whitened
  factors has the closed-form spectrum (:func:`stationary_spectrum`: the statement
  :func:`theory.landscape.predicted_spectrum` in floats),
  its smallest eigenvalue is negative iff the point is not a global minimum, and
  the number of negative eigenvalues is unchanged at a random point
  :math:`(MG_u, M^{-T}G_v)` of the same orbit (Sylvester's law of inertia).
* ``landscape-symbolic``: the proofs of :func:`theory.landscape.strict_saddle_proofs`
  in 2x2 (every stationary point for :math:`n_e = 1`, spectra for :math:`n_e \le 2`).
"""
from __future__ import annotations

import numpy as np

from numerics import landscape as ls
from theory import landscape as tl

from ..registry import CaseResult, register
from ..tolerances import closed_form_tolerance
from .symbolic import proof_case


def stationary_spectrum(sigma, n_u, n_v, n_e, subset):
    """The claimed Hessian spectrum at a canonical stationary point, sorted, in float64."""
    values = tl.predicted_spectrum([float(x) for x in sigma], n_u, n_v, n_e, list(subset))
    return np.sort(np.array([float(v) for v in values]))

__all__ = ["check_landscape_closed_form", "check_landscape_symbolic"]


def _random_gauge(rng, n, max_condition=10.0):
    r"""An invertible :math:`M` with condition number at most ``max_condition``."""
    Q1, _ = np.linalg.qr(rng.standard_normal((n, n)))
    Q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (Q1 * np.exp(rng.uniform(0, np.log(max_condition), n))) @ Q2


def check_landscape_closed_form(models, rng, *, hessian=ls.factor_hessian,
                                gradient=ls.factor_gradient, spectrum=stationary_spectrum,
                                point=ls.canonical_stationary_point):
    r"""Strict saddle: Hessian eigenvalues at every stationary point built from canonical pairs.

    The error of a case is the largest of: :math:`\|T^T\nabla\ell\|` (whitened gradient),
    :math:`\max_k|\lambda_k - \hat\lambda_k|` (sorted whitened spectrum against the
    closed form), and a classification error (1) when the sign of the smallest
    eigenvalue disagrees with "global minimum" or when the orbit point has another
    number of negative eigenvalues.  Tolerance:
    :func:`~proofs_checks.tolerances.closed_form_tolerance` on the scale of the
    spectrum; the orbit count uses that tolerance times :math:`\kappa(M)^2`, the
    most a congruence by :math:`M` can shrink an eigenvalue.
    """
    cases = []
    for m in models:
        n_v = m.n_v
        T = ls.whitening_map(m.cov, m.n_u, m.n_e)
        best = ls.stationary_value(m.sigma, range(min(m.n_e, int(np.sum(m.sigma > 0)))))
        for S in ls.stationary_subsets(m.sigma, m.n_e):
            G_u, G_v = point(m.cov, m.n_u, m.n_e, S)
            gu, gv = gradient(G_u, G_v, m.cov, m.n_u)
            H = hessian(G_u, G_v, m.cov, m.n_u)
            ev = np.linalg.eigvalsh(T.T @ H @ T)
            pred = spectrum(m.sigma, m.n_u, n_v, m.n_e, S)
            scale = max(1.0, float(np.max(np.abs(pred))))
            tol = closed_form_tolerance(m.cov.shape[0], m.condition_number, scale)
            g_w = T.T @ np.concatenate([gu.ravel(), gv.ravel()])
            err = max(float(np.linalg.norm(g_w)), float(np.max(np.abs(ev - pred))))
            value = ls.stationary_value(m.sigma, S)
            optimal = value <= best + tol
            wrong_class = (optimal and ev[0] < -tol) or (not optimal and ev[0] >= -tol)
            M = _random_gauge(rng, m.n_e)
            kappa2 = float(np.linalg.cond(M)) ** 2
            H_g = hessian(M @ G_u, np.linalg.solve(M.T, G_v), m.cov, m.n_u)
            ev_g = np.linalg.eigvalsh(T.T @ H_g @ T)
            n_neg = int(np.sum(pred < -tol))
            n_neg_g = int(np.sum(ev_g < -tol * kappa2))
            wrong_class = wrong_class or n_neg_g != n_neg
            names = "{" + ", ".join(str(i + 1) for i in S) + "}"
            cases.append(CaseResult(f"{m.label} S={names}", err + (1.0 if wrong_class else 0.0), tol,
                                    {"min_eigenvalue": float(ev[0]), "predicted_min": float(pred[0]),
                                     "global_minimum": bool(optimal), "negatives": n_neg,
                                     "negatives_in_gauge": n_neg_g}))
    return cases


def check_landscape_symbolic(models, rng, *, proofs=tl.strict_saddle_proofs):
    """The 2x2 proofs of :func:`theory.landscape.strict_saddle_proofs` as cases."""
    return [proof_case(pr) for pr in proofs()]


register("landscape-closed-form", statement="Landscape", method="closed-form",
         description="strict saddle: at every stationary point from canonical pairs, Hessian "
                     "spectrum = closed form; negative eigenvalue iff not a global minimum",
         )(check_landscape_closed_form)
register("landscape-symbolic", statement="Landscape", method="symbolic",
         description="exact 2x2: all stationary points (n_e=1), Hessian spectra (n_e<=2), "
                     "strict saddles in every gauge, PSD at the minimum",
         )(check_landscape_symbolic)
