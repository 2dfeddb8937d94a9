r"""Second-order structure of the factorised CLIP objective (MATH.md §4.1, Landscape).

The objective is :math:`\ell(G_u, G_v) = L_{clip}(G_u^TG_v)` (temperature folded
into the encoders), with :math:`L_{clip}(A) = -\operatorname{tr}(AC_{vu})
+ \tfrac12\operatorname{tr}(AC_{vv}A^TC_{uu})`.  In whitened factors
:math:`X = G_uC_{uu}^{1/2}`, :math:`Y = G_vC_{vv}^{1/2}` it is
:math:`\tfrac12\|X^TY - K\|_F^2 - \tfrac12\|K\|_F^2`.

Its stationary points (in whitened factors) have :math:`X^TY = \sum_{i\in S}\sigma_iu_iv_i^T`
for a set :math:`S` of canonical pairs, :math:`|S| \le n_e`; the *balanced*
representative puts :math:`\sqrt{\sigma_i}u_i^T`, :math:`\sqrt{\sigma_i}v_i^T` in
row :math:`i` of :math:`X`, :math:`Y` and zeros in the remaining rows.  Its Hessian
spectrum is derived in :mod:`theory.landscape` and given in closed form by
:func:`theory.landscape.predicted_spectrum` (the statement).

Parameters are ordered ``x = (G_u.ravel(), G_v.ravel())`` (row-major).
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from ._validation import as_latent_dim, fail
from .gaussian import _blocks, _validated, _whitened, sym_power

__all__ = [
    "factor_gradient",
    "factor_hessian",
    "whitening_map",
    "canonical_stationary_point",
    "stationary_subsets",
    "stationary_value",
]


def _factors(G_u, G_v, n_u, n_v):
    G_u = np.asarray(G_u, dtype=float)
    G_v = np.asarray(G_v, dtype=float)
    if G_u.ndim != 2 or G_u.shape[1] != n_u:
        raise fail("G_u", G_u, f"a matrix of shape (n_e, {n_u})")
    if G_v.ndim != 2 or G_v.shape != (G_u.shape[0], n_v):
        raise fail("G_v", G_v, f"a matrix of shape ({G_u.shape[0]}, {n_v})")
    return G_u, G_v


def factor_gradient(G_u, G_v, cov, n_u):
    r""":math:`(\nabla_{G_u}\ell, \nabla_{G_v}\ell) = (G_v R^T, G_u R)` with
    :math:`R = \nabla_A L_{clip} = C_{uu}AC_{vv} - C_{uv}`, :math:`A = G_u^TG_v`."""
    cov, n_u = _validated(cov, n_u)
    G_u, G_v = _factors(G_u, G_v, n_u, cov.shape[0] - n_u)
    C_uu, C_uv, C_vv = _blocks(cov, n_u)
    R = C_uu @ G_u.T @ G_v @ C_vv - C_uv
    return G_v @ R.T, G_u @ R


def factor_hessian(G_u, G_v, cov, n_u):
    r"""Hessian of :math:`\ell` in ``x = (vec G_u, vec G_v)``, assembled exactly.

    The second variation is

    .. math:: \delta^2\ell = \operatorname{tr}(\delta A\,C_{vv}\,\delta A^T C_{uu})
              + 2\langle R, \delta G_u^T\delta G_v\rangle,\qquad
              \delta A = \delta G_u^TG_v + G_u^T\delta G_v,

    so :math:`H = J^T(C_{uu}\otimes C_{vv})J + P`, with :math:`J` the Jacobian of
    :math:`x \mapsto \operatorname{vec}(A)` and :math:`P` the symmetric coupling of
    :math:`\delta G_u` and :math:`\delta G_v` through :math:`R`.
    """
    cov, n_u = _validated(cov, n_u)
    n_v = cov.shape[0] - n_u
    G_u, G_v = _factors(G_u, G_v, n_u, n_v)
    n_e = G_u.shape[0]
    C_uu, C_uv, C_vv = _blocks(cov, n_u)
    R = C_uu @ G_u.T @ G_v @ C_vv - C_uv
    p_u, p_v = n_e * n_u, n_e * n_v
    J = np.zeros((n_u * n_v, p_u + p_v))
    for k in range(n_e):
        for a in range(n_u):
            dA = np.zeros((n_u, n_v))
            dA[a, :] = G_v[k]                       # e_a (row k of dG_u)^T G_v
            J[:, k * n_u + a] = dA.ravel()
        for b in range(n_v):
            dA = np.zeros((n_u, n_v))
            dA[:, b] = G_u[k]
            J[:, p_u + k * n_v + b] = dA.ravel()
    H = J.T @ np.kron(C_uu, C_vv) @ J
    P = np.zeros_like(H)
    for k in range(n_e):
        # <R, dG_u^T dG_v> couples dG_u[k, a] and dG_v[k, b] with weight R[a, b]
        rows = k * n_u + np.arange(n_u)
        cols = p_u + k * n_v + np.arange(n_v)
        P[np.ix_(rows, cols)] = R
        P[np.ix_(cols, rows)] = R.T
    return 0.5 * (H + H.T) + P


def whitening_map(cov, n_u, n_e):
    r"""The matrix :math:`T` with :math:`x_G = T x_W`: whitened factors
    :math:`(X, Y)` to encoders :math:`(XC_{uu}^{-1/2}, YC_{vv}^{-1/2})`.

    Since :math:`\ell_W(X, Y) = \ell(XC_{uu}^{-1/2}, YC_{vv}^{-1/2})` is :math:`\ell`
    composed with a linear map, its Hessian is :math:`T^THT` (same inertia,
    Sylvester's law).
    """
    cov, n_u = _validated(cov, n_u)
    n_e = as_latent_dim(n_e, n_u, cov.shape[0] - n_u)
    C_uu, _, C_vv = _blocks(cov, n_u)
    Tu = np.kron(np.eye(n_e), sym_power(C_uu, -0.5))
    Tv = np.kron(np.eye(n_e), sym_power(C_vv, -0.5))
    T = np.zeros((Tu.shape[0] + Tv.shape[0],) * 2)
    T[: Tu.shape[0], : Tu.shape[0]] = Tu
    T[Tu.shape[0]:, Tu.shape[0]:] = Tv
    return T


def stationary_subsets(sigma, n_e, *, zero_tol=0.0):
    r"""Every set :math:`S` of canonical pairs with :math:`\sigma_i > ` ``zero_tol``
    and :math:`|S| \le n_e` (the empty set included), as tuples of 0-based indices."""
    idx = [i for i, s in enumerate(np.asarray(sigma, dtype=float)) if s > zero_tol]
    return [S for k in range(min(n_e, len(idx)) + 1) for S in combinations(idx, k)]


def canonical_stationary_point(cov, n_u, n_e, subset):
    r"""The balanced stationary point of :math:`\ell` for the canonical pairs ``subset``:
    row :math:`k` of :math:`G_u` is :math:`\sqrt{\sigma_i}(C_{uu}^{-1/2}u_i)^T` for the
    :math:`k`-th element :math:`i` of ``subset`` (and of :math:`G_v` with :math:`v_i`),
    the remaining rows are 0."""
    cov, n_u = _validated(cov, n_u)
    n_v = cov.shape[0] - n_u
    n_e = as_latent_dim(n_e, n_u, n_v)
    subset = tuple(int(i) for i in subset)
    if len(subset) > n_e or len(set(subset)) != len(subset) \
            or any(not 0 <= i < min(n_u, n_v) for i in subset):
        raise fail("subset", subset, f"at most n_e={n_e} distinct canonical indices "
                                     f"in 0..{min(n_u, n_v) - 1}")
    C_uu, _, C_vv = _blocks(cov, n_u)
    U, s, Vt = np.linalg.svd(_whitened(cov, n_u))
    X, Y = np.zeros((n_e, n_u)), np.zeros((n_e, n_v))
    for k, i in enumerate(subset):
        X[k] = np.sqrt(s[i]) * U[:, i]
        Y[k] = np.sqrt(s[i]) * Vt[i]
    return X @ sym_power(C_uu, -0.5), Y @ sym_power(C_vv, -0.5)


def stationary_value(sigma, subset):
    r""":math:`\ell = -\tfrac12\sum_{i\in S}\sigma_i^2` at a stationary point of set :math:`S`."""
    s = np.asarray(sigma, dtype=float)
    return -0.5 * float(sum(s[i] ** 2 for i in subset))
