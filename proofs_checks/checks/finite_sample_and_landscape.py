r"""Checks of Lemma 2.1 (the streaming kernel's facts, MATH.md §2) and of the
Landscape statement (MATH.md §4.1)."""
from __future__ import annotations

import warnings

import numpy as np

from numerics import gaussian, kernels
from numerics.optimize import minimize_over_factors

from ..registry import CaseResult, register
from ..tolerances import kernel_tolerance, optimum_value_tolerance

__all__ = ["check_lemma_2_1", "check_landscape"]

#: (N, n_e) of the batches of the Lemma 2.1 check: a single pair, a tiny batch,
#: and batches spanning several kernel tiles (128 x 512) with ragged edges.
BATCHES = ((1, 3), (2, 2), (7, 4), (130, 5), (600, 3))


def check_lemma_2_1(models, rng, *, clip_loss=kernels.clip_loss):
    r"""Lemma 2.1 on the streaming kernel, for each similarity and batch size:

    * :math:`L_N \ge 0`;
    * :math:`L_N = \log N` when all logits are equal (identical embeddings);
    * shift invariance: an extra embedding coordinate ``c`` on the ``a`` side
      and 1 on the ``b`` side adds :math:`c/\tau` to every dot-product logit;
    * permutation equivariance: permuting the pairs leaves :math:`L_N` unchanged.

    The tolerance is the kernel's documented absolute accuracy
    (:func:`~proofs_checks.tolerances.kernel_tolerance`).
    """
    cases = []
    for N, n_e in BATCHES:
        for sim in kernels.SIMILARITIES:
            za = rng.standard_normal((N, n_e))
            zb = za + 0.5 * rng.standard_normal((N, n_e))
            tau = 0.3
            loss = float(clip_loss(za, zb, tau, sim))
            scale = 4.0 * float(np.max(np.abs(za)) * np.max(np.abs(zb))) / tau + np.log(N)
            tol = kernel_tolerance(np.float64, scale)
            errs = [max(0.0, -loss)]
            same = np.tile(rng.standard_normal((1, n_e)), (N, 1))
            errs.append(abs(float(clip_loss(same, same, tau, sim)) - np.log(N)))
            perm = rng.permutation(N)
            errs.append(abs(float(clip_loss(za[perm], zb[perm], tau, sim)) - loss))
            if sim == "dot":
                c = 3.7
                za_s = np.hstack([za, np.full((N, 1), c)])
                zb_s = np.hstack([zb, np.ones((N, 1))])
                zb_0 = np.hstack([zb, np.zeros((N, 1))])
                errs.append(abs(float(clip_loss(za_s, zb_s, tau, sim))
                                - float(clip_loss(za_s, zb_0, tau, sim))))
            cases.append(CaseResult(f"N={N} n_e={n_e} {sim}", max(errs), tol, {"loss": loss}))
    return cases


def check_landscape(models, rng, *, starts=6, max_models=12,
                    minimum=gaussian.lowrank_minimum):
    r"""Landscape (derived, MATH.md §4.1): every random start of a descent method on the
    factors :math:`(G_u, G_v)` reaches the global value :math:`-\tfrac12\sum_{i\le n_e}\sigma_i^2`.

    The descent method is BFGS (restarted from the balanced factorisation when
    its line search stalls).  Plain gradient descent reaches the same value but
    slowly when :math:`\sigma_{n_e}` is small: 5000 Armijo steps left an error of
    1e-2 on the default model ``n_u=2 n_v=4 n_e=2``, so it is not used here.
    A spurious local minimum would show up as a start stuck above the minimum.
    """
    cases = []
    for m in models[:max_models]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = minimize_over_factors(
                lambda A: gaussian._population_clip_loss(A, m.cov, m.n_u), m.n_u, m.n_v, m.n_e,
                grad=lambda A: gaussian.population_clip_loss_grad(A, m.cov, m.n_u),
                starts=starts, rng=rng)
        target = minimum(m.cov, m.n_u, m.n_e)
        tol = optimum_value_tolerance(m.cov.shape[0], m.condition_number, abs(target))
        worst = float(np.max(np.abs(fit.start_values - target)))
        cases.append(CaseResult(m.label, worst, tol, {"start_values": fit.start_values.tolist()}))
    return cases


register("lemma2.1-kernel", statement="Lemma 2.1", method="closed-form",
         description="streaming L_N: >= 0, = log N for equal logits, shift and permutation invariant",
         )(check_lemma_2_1)
register("landscape-optimization", statement="Landscape", method="optimization",
         description="every random BFGS start on (G_u, G_v) reaches -1/2 sum_{i<=n_e} sigma_i^2",
         )(check_landscape)
