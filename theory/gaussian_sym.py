r"""The objects of MATH.md §1–§4 as sympy symbols and expressions.

Two layers:

* dimension-free *matrix symbols* (:class:`sympy.MatrixSymbol` with symbolic
  sizes ``n_u``, ``n_v``, ``n_e``): the covariance blocks, the encoders
  :math:`G_u, G_v`, the temperature :math:`\tau`, the bilinear matrix
  :math:`A = G_u^T G_v / \tau`, and the closed forms MATH.md §4.1 *states*
  for :math:`L_{clip}`, :math:`L_{cond}`, the two expected KL terms and
  :math:`I`.  These are the claims; :mod:`theory.symbolic` derives the same
  quantities from Gaussian integrals and proves them equal in small
  dimensions.
* the finite-sample loss :math:`L_N` of MATH.md §2 as an indexed sum.

Nothing here evaluates anything numerically; this module imports neither
``numerics`` nor ``proofs_checks``.
"""
from __future__ import annotations

import sympy as sp

__all__ = [
    "n_u", "n_v", "n_e", "tau", "lam",
    "C_uu", "C_uv", "C_vv", "C_vu", "C_joint",
    "G_u", "G_v", "A", "A_of_encoders",
    "K_whitened", "B_whitened",
    "clip_loss_closed_form",
    "kl_vu_closed_form", "kl_uv_closed_form",
    "mutual_information_closed_form",
    "conditional_loss_closed_form",
    "entropy_closed_form",
    "instantiate",
    "N", "F", "finite_sample_loss",
]

# --------------------------------------------------------------------------
# sizes, temperature
# --------------------------------------------------------------------------
n_u, n_v, n_e = sp.symbols("n_u n_v n_e", integer=True, positive=True)
tau = sp.Symbol("tau", positive=True)
lam = sp.Symbol("lambda", nonnegative=True)

# --------------------------------------------------------------------------
# covariance blocks and encoders (MATH.md §1, §4)
# --------------------------------------------------------------------------
C_uu = sp.MatrixSymbol("C_uu", n_u, n_u)
C_uv = sp.MatrixSymbol("C_uv", n_u, n_v)
C_vv = sp.MatrixSymbol("C_vv", n_v, n_v)
C_vu = C_uv.T
C_joint = sp.BlockMatrix([[C_uu, C_uv], [C_vu, C_vv]])

G_u = sp.MatrixSymbol("G_u", n_e, n_u)
G_v = sp.MatrixSymbol("G_v", n_e, n_v)
A = sp.MatrixSymbol("A", n_u, n_v)
#: Bilinear matrix of linear encoders, :math:`A = G_u^T G_v/\tau` (MATH.md §1).
A_of_encoders = G_u.T * G_v / tau

#: Whitened cross-covariance and whitened bilinear matrix (MATH.md §4, §4.1).
K_whitened = sp.MatPow(C_uu, -sp.Rational(1, 2)) * C_uv * sp.MatPow(C_vv, -sp.Rational(1, 2))
B_whitened = sp.MatPow(C_uu, sp.Rational(1, 2)) * A * sp.MatPow(C_vv, sp.Rational(1, 2))


def _logdet(M):
    return sp.log(sp.Determinant(M))


# --------------------------------------------------------------------------
# closed forms stated in MATH.md §4.1 (the claims, not derivations)
# --------------------------------------------------------------------------
#: :math:`L_{clip}(A) = -\operatorname{tr}(A C_{vu}) + \tfrac12\operatorname{tr}(A C_{vv} A^T C_{uu})`.
clip_loss_closed_form = (-sp.Trace(A * C_vu)
                         + sp.Rational(1, 2) * sp.Trace(A * C_vv * A.T * C_uu))

_S_v = C_vv - C_vu * C_uu.I * C_uv      # covariance of mu_{v|u}
_S_u = C_uu - C_uv * C_vv.I * C_vu      # covariance of mu_{u|v}
_D_v = C_vv * A.T - C_vu * C_uu.I       # model minus true mean map, v|u
_D_u = C_uu * A - C_uv * C_vv.I         # model minus true mean map, u|v

#: :math:`E_u KL(\mu_{v|u}\|\nu_{v|u})`, :math:`\nu_{v|u} = N(C_{vv}A^T u, C_{vv})`.
kl_vu_closed_form = sp.Rational(1, 2) * (
    sp.Trace(C_vv.I * _S_v) - n_v + sp.Trace(_D_v.T * C_vv.I * _D_v * C_uu)
    + _logdet(C_vv) - _logdet(_S_v))
#: :math:`E_v KL(\mu_{u|v}\|\nu_{u|v})`, :math:`\nu_{u|v} = N(C_{uu}A v, C_{uu})`.
kl_uv_closed_form = sp.Rational(1, 2) * (
    sp.Trace(C_uu.I * _S_u) - n_u + sp.Trace(_D_u.T * C_uu.I * _D_u * C_vv)
    + _logdet(C_uu) - _logdet(_S_u))

#: :math:`I = \tfrac12(\log\det C_{uu} + \log\det C_{vv} - \log\det C)`.
mutual_information_closed_form = sp.Rational(1, 2) * (
    _logdet(C_uu) + _logdet(C_vv) - _logdet(C_joint))


def entropy_closed_form(S, n):
    r""":math:`h(N(m, S)) = \tfrac12(n\log(2\pi e) + \log\det S)`, written with
    :math:`\log(2\pi e) = 1 + \log 2\pi`."""
    return sp.Rational(1, 2) * (n * (1 + sp.log(2 * sp.pi)) + _logdet(S))


def _expected_nll(M, S, C_x, C_y, C_xy, n):
    r""":math:`-E\log N(y; Mx, S)` for jointly Gaussian centred :math:`(x, y)`."""
    resid = C_y - M * C_xy - C_xy.T * M.T + M * C_x * M.T
    return sp.Rational(1, 2) * (n * sp.log(2 * sp.pi) + _logdet(S) + sp.Trace(S.I * resid))


#: :math:`L_{cond}(A) = -\tfrac12 E[\log\nu_{v|u}(v|u) + \log\nu_{u|v}(u|v)]` with the
#: Gaussian model conditionals of §4.1.
conditional_loss_closed_form = sp.Rational(1, 2) * (
    _expected_nll(C_vv * A.T, C_vv, C_uu, C_vv, C_uv, n_v)
    + _expected_nll(C_uu * A, C_uu, C_vv, C_uu, C_vu, n_u))


def instantiate(expr, *, cuu, cuv, cvv, a=None):
    r"""Substitute explicit matrices for the matrix symbols and evaluate.

    ``cuu``, ``cuv``, ``cvv`` (and optionally ``a``) are explicit sympy
    matrices; the symbolic sizes become their sizes.
    """
    nu, nv = cuu.shape[0], cvv.shape[0]
    # Sizes first, so that the matrix symbols match the explicit shapes.
    sizes = {n_u: nu, n_v: nv}
    e = expr.xreplace(sizes)
    reps = {C_uu.xreplace(sizes): cuu, C_uv.xreplace(sizes): cuv, C_vv.xreplace(sizes): cvv}
    if a is not None:
        reps[A.xreplace(sizes)] = a
    e = e.xreplace(reps)
    return e.doit()


# --------------------------------------------------------------------------
# the finite-sample loss (MATH.md §2)
# --------------------------------------------------------------------------
N = sp.Symbol("N", integer=True, positive=True)
F = sp.IndexedBase("F")
_i, _j = sp.symbols("i j", integer=True, positive=True)
#: :math:`L_N = -\frac1N\sum_i F_{ii} + \frac1{2N}\sum_i\log\sum_j e^{F_{ij}}
#: + \frac1{2N}\sum_j\log\sum_i e^{F_{ij}}`.
finite_sample_loss = (
    -sp.Sum(F[_i, _i], (_i, 1, N)) / N
    + sp.Sum(sp.log(sp.Sum(sp.exp(F[_i, _j]), (_j, 1, N))), (_i, 1, N)) / (2 * N)
    + sp.Sum(sp.log(sp.Sum(sp.exp(F[_i, _j]), (_i, 1, N))), (_j, 1, N)) / (2 * N)
)
