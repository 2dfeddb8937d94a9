r"""Lemma 2.1 by a second method: exact symbolic proofs for small batches and a bridge
from the symbolic :math:`L_N` to the dense reference of ``numerics.kernels`` (MATH.md §2).

* **proof cases**: every identity of :func:`theory.finite_sample_sym.lemma_2_1_proofs`
  for :math:`N = 1, 2, 3` (value :math:`\log N`, shift and permutation invariance,
  non-negativity, gradient, the counterexample to the converse).  Error 0 and
  tolerance 0 when sympy proves it; a failed proof is an infinite error.
* **bridge cases**: the symbolic :math:`L_N` and :math:`\partial L_N/\partial F`,
  evaluated in 40-digit mpmath, against :func:`numerics.kernels.clip_loss_from_logits`
  and :func:`numerics.kernels.clip_loss_grad_from_logits` at random logits of
  growing spread, within the kernel tolerance.  A wrong formula in either place
  fails them.

The kernel check (``lemma2.1-kernel``) holds the streaming kernel against the
same facts numerically; this one proves the facts of the formula itself.
"""
from __future__ import annotations

import numpy as np

from numerics import kernels
from theory import finite_sample_sym as fss

from ..registry import CaseResult, register
from .symbolic import proof_case
from ..tolerances import kernel_tolerance

__all__ = ["check_lemma_2_1_symbolic"]

#: Spreads of the random logits of the bridge cases (max |F_ij| about 3 * spread).
SPREADS = (0.1, 1.0, 10.0)


def check_lemma_2_1_symbolic(models, rng, *, loss_from_logits=kernels.clip_loss_from_logits,
                             grad_from_logits=kernels.clip_loss_grad_from_logits,
                             proofs=fss.lemma_2_1_proofs, bridge_sizes=(2, 3)):
    r"""Lemma 2.1: symbolic proofs for :math:`N \le 3` and the symbolic-to-numeric bridge."""
    cases = []
    for N in fss.BATCH_SIZES:
        for pr in proofs(N):
            cases.append(proof_case(pr))
    for N in bridge_sizes:
        sym_loss, sym_grad = fss.lambdified_loss(N)
        for spread in SPREADS:
            F = spread * rng.standard_normal((N, N))
            scale = float(np.max(np.abs(F))) + np.log(N)
            err = max(abs(sym_loss(F.tolist()) - float(loss_from_logits(F))),
                      float(np.max(np.abs(np.array(sym_grad(F.tolist())) - grad_from_logits(F)))))
            cases.append(CaseResult(f"bridge N={N} spread={spread:g}", err,
                                    kernel_tolerance(np.float64, scale), {"scale": scale}))
    return cases


register("lemma2.1-symbolic", statement="Lemma 2.1", method="symbolic",
         description="exact (sympy, N <= 3): >= 0, = log N, shift/permutation invariance, gradient; "
                     "symbolic L_N and dL_N/dF vs the dense numerics",
         )(check_lemma_2_1_symbolic)
