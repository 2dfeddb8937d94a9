r"""Proposition G4 made quantitative: the two-sided L2 minimum pair by pair (MATH.md §4.2).

Setting
-------
:math:`\mu = N(0, C)`, L2 logit :math:`f = -|G_uu - G_vv|^2/(2\tau)`, and the
two-sided loss :math:`L^{L2}_{1/2} = \tfrac12(E_uKL(\mu_{v|u}\|\nu_{v|u})
+ E_vKL(\mu_{u|v}\|\nu_{u|v}))`.  It depends on the encoders only through
:math:`H = G/\sqrt\tau`, and is invariant under :math:`u \to C_{uu}^{-1/2}u`,
:math:`v \to C_{vv}^{-1/2}v` followed by the rotations of the SVD
:math:`K = U\Sigma V^T`; so take :math:`\tau = 1`, :math:`C_{uu} = I`,
:math:`C_{vv} = I`, :math:`C_{uv} = \Sigma`.

Step 1 (derived by hand; held numerically against the general Gaussian KL of
``numerics.variants.l2_kl_terms`` by the tests and by ``g4-closed-form``).  With :math:`P = G_u^TG_u`,
:math:`Q = G_v^TG_v`, :math:`M = G_u^TG_v`, the model conditional is
:math:`\nu_{v|u} = N((I+Q)^{-1}M^Tu, (I+Q)^{-1})`, and the Gaussian KL gives

.. math:: E_uKL_{v|u} = \tfrac12\big[\operatorname{tr}Q - 2\langle K, M\rangle
          + \operatorname{tr}(M(I+Q)^{-1}M^T) - \log\det(I+Q) - \log\det(I-K^TK)\big]

(the terms :math:`\operatorname{tr}((I+Q)K^TK)` cancel), and symmetrically for
:math:`u|v`.  For one canonical pair (:math:`K = \sigma`, scalar encoders
:math:`a, b`) this is :func:`pair_loss`.

Step 2 (proved).  On the diagonal :math:`a = b`, with :math:`w = 1 + a^2`, the
pair loss is :math:`\tfrac12[2(1-\sigma)w + 1/w - \log w - 1 - 2(1-\sigma)
- \log(1-\sigma^2)]`, strictly convex in :math:`w > 0` (second derivative
:math:`(w^{-3}\cdot 2 + w^{-2})/2 > 0`), minimised at the root of
:math:`2(1-\sigma)w^2 - w - 1 = 0`,
:math:`w(\sigma) = (1 + \sqrt{9 - 8\sigma})/(4(1-\sigma)) \ge 1`; its value is
:math:`\varphi(\sigma)` (:data:`PHI`).

Step 3 (proved).  Encoders that are diagonal in canonical coordinates
decouple the pairs (the Gaussian factorises), so :math:`\sum_i\varphi(\sigma_i)`
is attained, by :math:`a_i = b_i = \sqrt{w(\sigma_i) - 1}`.

Step 4 (observed, not proved).  (a) The scalar problem in :math:`(a, b)` has
its minimum on the diagonal :math:`a = b` (two-dimensional minimisation from
random starts, every :math:`\sigma` tried); (b) the minimum over all encoders,
of any latent dimension, is :math:`\sum_i\varphi(\sigma_i)`: the canonical
encoders are stationary with a positive semidefinite Hessian (its kernel the
rotations of the latent space) even with :math:`n_e = n_u + n_v`, and
optimisation from random starts finds nothing lower.

Step 5 (proved, series by sympy).  :math:`\varphi(0) = 0`,
:math:`\varphi(\sigma) = \sigma^2/6 - 16\sigma^3/81 + O(\sigma^4)` and
:math:`\varphi(\sigma) = (1-\sigma)/4 - 15(1-\sigma)^2/16 + O((1-\sigma)^3)`.

This module imports neither ``numerics`` nor ``proofs_checks``.
"""
from __future__ import annotations

import sympy as sp

from .statements import Statement
from .identities import IDENTITY_PROVED, UNDECIDED
from .symbolic import Proof, Verdict

__all__ = ["sigma", "a", "b", "w", "pair_loss", "diagonal_loss", "W_OPT", "PHI",
           "PHI_SMALL", "PHI_NEAR_ONE", "G4_QUANTITATIVE", "g4_derivation_proofs"]

sigma = sp.Symbol("sigma", positive=True)
a, b = sp.symbols("a b", real=True)
w = sp.Symbol("w", positive=True)
_eps = sp.Symbol("epsilon", positive=True)

#: Two-sided L2 loss of one canonical pair with scalar encoders a, b (tau = 1).
pair_loss = (sp.Rational(1, 4) * (a**2 + b**2 - 4 * sigma * a * b
                                  + a**2 * b**2 * (1 / (1 + a**2) + 1 / (1 + b**2))
                                  - sp.log(1 + a**2) - sp.log(1 + b**2))
             - sp.log(1 - sigma**2) / 2)
#: The pair loss on the diagonal a = b as a function of w = 1 + a^2.
diagonal_loss = sp.Rational(1, 2) * (2 * (1 - sigma) * w + 1 / w - sp.log(w) - 1 - 2 * (1 - sigma)
                                     - sp.log(1 - sigma**2))
#: Optimal model precision w(sigma).
W_OPT = (1 + sp.sqrt(9 - 8 * sigma)) / (4 * (1 - sigma))
#: phi(sigma): the minimum of the pair loss (on the diagonal).
PHI = diagonal_loss.subs(w, W_OPT)
PHI_SMALL = sigma**2 / 6 - sp.Rational(16, 81) * sigma**3
PHI_NEAR_ONE = _eps / 4 - sp.Rational(15, 16) * _eps**2

_GAUSSIAN = "mu = N(0, C) with C symmetric positive definite, K = C_uu^-1/2 C_uv C_vv^-1/2"
_sigma_i = sp.IndexedBase("sigma")
_i = sp.Symbol("i", integer=True, positive=True)
_r = sp.Symbol("r", integer=True, positive=True)
_L_min = sp.Symbol("min L^{L2}_{1/2}", real=True)

#: The precise form of Proposition G4's "bounded away from zero" (not registered as a
#: separate statement: its checks cite Proposition G4).
G4_QUANTITATIVE = Statement(
    name="Proposition G4 (quantitative)",
    title="the two-sided L2 minimum is a sum of phi over canonical pairs",
    section="§4.2",
    hypotheses=(_GAUSSIAN, "L2 logit, lambda = 1/2, encoders of any latent dimension"),
    claim=(
        "min over encoders of L^{L2}_{1/2} = sum_i phi(sigma_i) [attained: proved; minimum: "
        "observed], with phi(s) = 1/2[2(1-s)w + 1/w - log w - 1 - 2(1-s) - log(1-s^2)], "
        "w = (1 + sqrt(9 - 8s))/(4(1-s)); phi > 0 on (0, 1), phi(s) ~ s^2/6 as s -> 0 and "
        "phi(s) ~ (1-s)/4 as s -> 1.  Hence the minimum is >= phi(sigma_1) > 0 for each K != 0, "
        "but it is not bounded away from 0 uniformly: it tends to 0 as sigma_1 -> 1 with the "
        "other sigma_i -> 0 (while I(u; v) -> oo), and as every sigma_i -> 0"
    ),
    formula=sp.Eq(_L_min, sp.Sum(sp.Function("phi")(_sigma_i[_i]), (_i, 1, _r))),
    derived=True,
    expressions={"phi(sigma)": PHI, "w(sigma)": W_OPT,
                 "phi, sigma -> 0": PHI_SMALL, "phi, sigma = 1 - epsilon": PHI_NEAR_ONE},
    notes=("observed: the scalar (a, b) problem has its minimum on a = b; the full minimum is "
           "the diagonal one (stationary, PSD Hessian, no lower optimum found)",),
)


def _verdict(expr_is_zero: bool, seconds: float) -> Verdict:
    return Verdict(IDENTITY_PROVED if expr_is_zero else UNDECIDED, 0.0 if expr_is_zero else float("inf"),
                   seconds)


def g4_derivation_proofs() -> tuple:
    """Symbolic proofs of steps 2 and 5 of the module docstring, as :class:`Proof` objects."""
    import time

    out = []

    def add(claim, expr_is_zero, t0):
        out.append(Proof("Proposition G4", claim, 1, _verdict(expr_is_zero, time.perf_counter() - t0)))

    t0 = time.perf_counter()
    diag = pair_loss.subs(b, a).subs(a, sp.sqrt(w - 1))
    add("pair loss at a = b equals the diagonal form in w = 1 + a^2",
        sp.simplify(sp.expand_log(diag - diagonal_loss, force=True)) == 0, t0)
    t0 = time.perf_counter()
    stationary = sp.diff(diagonal_loss, w).subs(w, W_OPT)
    add("d/dw of the diagonal loss vanishes at w(sigma)", sp.simplify(stationary) == 0, t0)
    t0 = time.perf_counter()
    convex = sp.diff(diagonal_loss, w, 2)
    add("the diagonal loss is convex in w > 0", sp.simplify(convex - (2 / w**3 + 1 / w**2) / 2) == 0, t0)
    t0 = time.perf_counter()
    add("phi(sigma) = sigma^2/6 - 16 sigma^3/81 + O(sigma^4)",
        sp.simplify(sp.series(PHI, sigma, 0, 4).removeO() - PHI_SMALL) == 0, t0)
    t0 = time.perf_counter()
    near = sp.series(PHI.subs(sigma, 1 - _eps), _eps, 0, 3).removeO()
    add("phi(1 - eps) = eps/4 - 15 eps^2/16 + O(eps^3)", sp.simplify(near - PHI_NEAR_ONE) == 0, t0)
    return tuple(out)
