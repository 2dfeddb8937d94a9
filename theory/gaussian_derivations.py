r"""The quantities of MATH.md §3–§4.1 derived from Gaussian integrals, for
:math:`n_u = n_v = n \in \{1, 2\}`.

Setting (:func:`setting`): the bilinear Gaussian model with a *fully generic*
symmetric positive definite joint covariance

.. math:: C = \begin{pmatrix} C_{uu} & C_{uv} \\ C_{vu} & C_{vv} \end{pmatrix}
          \in \mathbb{R}^{2n\times 2n},

one symbol per entry (diagonal entries positive; positive definiteness is the
hypothesis), and a bilinear matrix :math:`A \in \mathbb{R}^{n\times n}` with
free real entries; logit :math:`f(u, v) = u^TAv`.  Nothing is whitened.

Derivation chain:

* :func:`standard_normal_mgf`: :math:`E e^{tz} = e^{t^2/2}`, :math:`z \sim N(0, 1)`,
  by sympy's integration of the density;
* :func:`gaussian_mgf`: :math:`E e^{a^Tx} = e^{a^TCa/2}`, :math:`x \sim N(0, C)`,
  via :math:`x = Lz`, :math:`C = LL^T` (proved in :mod:`theory.proofs`);
* :func:`expectation`: :math:`E_\mu` of a polynomial of degree :math:`\le 2` in
  :math:`x = (u, v)` from the second moments, the second derivatives of the MGF at 0;
* :func:`gaussian_log_density`:
  :math:`\log N(x; m, S) = -\tfrac12 (x-m)^T S^{-1}(x-m) - \tfrac n2\log 2\pi - \tfrac12\log\det S`,
  :math:`S^{-1} = \operatorname{adj} S/\det S`;
* :func:`derivations`: :math:`L_{clip}`, the KL terms, :math:`I`, the
  entropies, :math:`L_{cond}`, and the gradient and Hessian of :math:`L_{clip}`
  in :math:`A`, from the definitions of MATH.md §3.

Also here: the solution of the stationarity system (:func:`full_rank_minimizer`)
and the minima Proposition G1 states, in the covariance entries
(:func:`full_rank_minimum`, :func:`rank_one_minimum`).

This module imports neither ``numerics`` nor ``proofs_checks``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from .identities import random_rational, rational_point, split_logs

__all__ = [
    "SUPPORTED_DIMENSIONS",
    "MGF_ARGUMENT",
    "standard_normal_mgf",
    "gaussian_mgf",
    "gaussian_log_density",
    "GaussianSetting",
    "setting",
    "expectation",
    "canonical",
    "derivations",
    "canonical_correlation_matrix",
    "clip_loss_at",
    "full_rank_minimizer",
    "full_rank_minimum",
    "rank_one_minimum",
]

#: The dimensions :math:`n = n_u = n_v` of the symbolic model.
SUPPORTED_DIMENSIONS = (1, 2)

#: The argument :math:`t` of :func:`standard_normal_mgf`.
MGF_ARGUMENT = sp.Symbol("t", real=True)


# --------------------------------------------------------------------------
# Gaussian integrals
# --------------------------------------------------------------------------
@lru_cache(maxsize=None)
def standard_normal_mgf():
    r""":math:`E e^{tz}` for :math:`z \sim N(0, 1)`, by integrating against the density.

    .. math:: \int_{-\infty}^{\infty} e^{tz}\, \frac{e^{-z^2/2}}{\sqrt{2\pi}}\,dz = e^{t^2/2}.

    Returns the simplified sympy expression in :data:`MGF_ARGUMENT` (``t``).
    """
    z = sp.Symbol("z", real=True)
    t = MGF_ARGUMENT
    integral = sp.integrate(sp.exp(t * z - z**2 / 2) / sp.sqrt(2 * sp.pi), (z, -sp.oo, sp.oo))
    return sp.simplify(integral)


def gaussian_mgf(a, C):
    r""":math:`E e^{a^T x} = e^{a^T C a/2}` for :math:`x \sim N(0, C)`.

    Derivation: :math:`x = Lz` with :math:`C = LL^T` and :math:`z` standard
    normal with independent entries, so
    :math:`E e^{a^T L z} = \prod_i E e^{(L^Ta)_i z_i} = \prod_i e^{(L^Ta)_i^2/2}`
    by :func:`standard_normal_mgf`, and :math:`\sum_i (L^Ta)_i^2 = a^T C a`.
    The identity is proved for symbolic ``C`` in :func:`theory.proofs.theorem_3_2_proofs`.

    Parameters
    ----------
    a : sequence or sympy Matrix of length ``m``
    C : sympy Matrix, shape ``(m, m)``
    """
    a = sp.Matrix(a)
    return sp.exp((a.T * C * a)[0, 0] / 2)


def gaussian_log_density(x, m, S):
    r""":math:`\log N(x; m, S) = -\tfrac12(x-m)^T S^{-1}(x-m) - \tfrac n2\log 2\pi - \tfrac12\log\det S`,
    with :math:`S^{-1} = \operatorname{adj}S / \det S`; ``x``, ``m`` of length
    ``n``, ``S`` of shape ``(n, n)``."""
    x, m = sp.Matrix(x), sp.Matrix(m)
    d = x - m
    det = S.det()
    quad = (d.T * S.adjugate() * d)[0, 0] / det
    return -quad / 2 - sp.Rational(x.shape[0], 2) * sp.log(2 * sp.pi) - sp.log(det) / 2


# --------------------------------------------------------------------------
# the symbolic model
# --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class GaussianSetting:
    r"""Symbols of the bilinear Gaussian model with :math:`n_u = n_v = n`.

    Attributes
    ----------
    n : int
    u, v : sympy Matrix, shape ``(n, 1)``
        The variables.
    C_uu, C_uv, C_vv : sympy Matrix, shape ``(n, n)``
        Blocks of the joint covariance, one symbol per entry (``c_uu11``,
        ``c_uv12``, ...; ``C_uu``, ``C_vv`` symmetric with positive diagonal).
    C : sympy Matrix, shape ``(2n, 2n)``
        :math:`\begin{pmatrix} C_{uu} & C_{uv} \\ C_{uv}^T & C_{vv} \end{pmatrix}`.
    A : sympy Matrix, shape ``(n, n)``
        The bilinear matrix, free real entries ``a11``, ``a12``, ...
    cov_symbols : tuple
        The distinct symbols of ``C``: the upper triangle of ``C_uu``, then
        ``C_uv`` row-major, then the upper triangle of ``C_vv``.
    A_symbols : tuple
        The entries of ``A``, row-major.
    second_moments : sympy Matrix, shape ``(2n, 2n)``
        :math:`E[x x^T]` for :math:`x = (u, v)`, obtained by differentiating
        the MGF twice at 0.
    """

    n: int
    u: sp.Matrix
    v: sp.Matrix
    C_uu: sp.Matrix
    C_uv: sp.Matrix
    C_vv: sp.Matrix
    C: sp.Matrix
    A: sp.Matrix
    cov_symbols: tuple
    A_symbols: tuple
    second_moments: sp.Matrix

    @property
    def x(self) -> sp.Matrix:
        """:math:`x = (u, v)`, shape ``(2n, 1)``."""
        return self.u.col_join(self.v)

    def sampler(self, rng) -> dict:
        r"""A random rational point of the hypotheses: :math:`C = LL^T` with a rational
        lower-triangular :math:`L` of positive diagonal (hence SPD)."""
        m = 2 * self.n
        L = sp.zeros(m, m)
        for i in range(m):
            for j in range(i + 1):
                L[i, j] = random_rational(rng, positive=(i == j))
        Cn = L * L.T
        return {s: val for s, val in zip(self.C, Cn) if isinstance(s, sp.Symbol)}


def _sym_block(name, n, symmetric):
    def entry(i, j):
        if symmetric and i > j:
            i, j = j, i
        return sp.Symbol(f"{name}{i + 1}{j + 1}", positive=True) if (symmetric and i == j) \
            else sp.Symbol(f"{name}{i + 1}{j + 1}", real=True)
    return sp.Matrix(n, n, entry)


@lru_cache(maxsize=None)
def setting(n: int) -> GaussianSetting:
    """The symbolic bilinear Gaussian model with ``n_u = n_v = n`` (``n`` in
    :data:`SUPPORTED_DIMENSIONS`)."""
    if n not in SUPPORTED_DIMENSIONS:
        raise ValueError(f"n={n!r}: expected one of {SUPPORTED_DIMENSIONS}")
    u = sp.Matrix(sp.symbols(f"u1:{n + 1}", real=True))
    v = sp.Matrix(sp.symbols(f"v1:{n + 1}", real=True))
    C_uu, C_vv = _sym_block("c_uu", n, True), _sym_block("c_vv", n, True)
    C_uv = _sym_block("c_uv", n, False)
    C = sp.BlockMatrix([[C_uu, C_uv], [C_uv.T, C_vv]]).as_explicit()
    A = _sym_block("a", n, False)
    cov_symbols = tuple(dict.fromkeys(list(C_uu) + list(C_uv) + list(C_vv)))
    cov_symbols = tuple(s for s in cov_symbols if isinstance(s, sp.Symbol))
    A_symbols = tuple(A)
    # Second moments E[x_i x_j] = d^2/dt_i dt_j E exp(t^T x) at t = 0.
    ts = sp.symbols(f"t1:{2 * n + 1}", real=True)
    M = gaussian_mgf(ts, C)
    at0 = {t: 0 for t in ts}
    second = sp.Matrix(2 * n, 2 * n, lambda i, j: sp.diff(M, ts[i], ts[j]).xreplace(at0))
    return GaussianSetting(n, u, v, C_uu, C_uv, C_vv, C, A, cov_symbols, A_symbols, second)


def expectation(expr, st: GaussianSetting):
    r""":math:`E_\mu[p(u, v)]` for a polynomial :math:`p` of degree at most 2 in
    :math:`x = (u, v)`, :math:`x \sim N(0, C)`, with coefficients free of :math:`x`.

    Odd moments vanish and :math:`E[x_i x_j]` is ``st.second_moments`` (from the
    MGF), so :math:`E\,p = p(0) + \tfrac12\sum_{ij} \partial_i\partial_j p(0)\, E[x_i x_j]`.
    The degree is checked on a rational specialisation of the coefficients.

    Raises
    ------
    ValueError
        If ``expr`` has degree above 2 in :math:`x`.
    """
    xs = list(st.x)
    point = rational_point(expr.free_symbols - set(xs), np.random.default_rng(1),
                           st.sampler(np.random.default_rng(1)))
    degree = sp.Poly(expr.xreplace(point), *xs).total_degree()
    if degree > 2:
        raise ValueError(f"expr of degree {degree} in x: expected degree <= 2")
    zero = {x: 0 for x in xs}
    out = expr.xreplace(zero)
    for i, xi in enumerate(xs):
        dxi = sp.diff(expr, xi)
        for j, xj in enumerate(xs):
            out += sp.diff(dxi, xj).xreplace(zero) * st.second_moments[i, j] / 2
    return out


def canonical(expr):
    r"""Canonical form :math:`p/q + \sum_k c_k \log a_k` of a rational-plus-logarithms expression.

    The rational part and the coefficients are put over a common denominator
    with the common factors cancelled (:func:`sympy.cancel`); equal log
    arguments are merged.  The value is unchanged; an expression that is not
    linear in its logarithms is returned as is.
    """
    split = split_logs(sp.sympify(expr))
    if split is None:
        return expr
    rest, terms = split
    out = sp.cancel(sp.together(rest))
    for c, q in terms:
        out += sp.cancel(c) * sp.log(sp.cancel(q))
    return out


# --------------------------------------------------------------------------
# derivations (MATH.md §3 definitions evaluated in the Gaussian model)
# --------------------------------------------------------------------------
@lru_cache(maxsize=None)
def derivations(n: int) -> dict:
    r"""Every quantity of MATH.md §3–§4.1, derived for :math:`n_u = n_v = n`.

    Keys: ``f`` (logit :math:`u^TAv`), ``log_Z_v`` / ``log_Z_u`` (log of the
    MGF), ``L_clip`` (definition of §3), ``log_nu_v_tilt`` / ``log_nu_u_tilt``
    (the exponential tilt of §3), ``log_nu_v`` / ``log_nu_u`` (the Gaussian
    model conditionals of §4.1), ``log_p``, ``log_p_u``, ``log_p_v``,
    ``KL_v`` :math:`= E_\mu[\log p - \log p_u - \log\nu_{v|u}]`, ``KL_u``,
    ``I`` :math:`= E_\mu[\log p - \log p_u - \log p_v]`, ``h_u``, ``h_v``
    (:math:`-E\log p`), ``L_cond`` (definition of §3 with the Gaussian
    model conditionals), ``grad_A`` (:math:`\partial L_{clip}/\partial A`,
    shape ``(n, n)``) and ``hessian_A`` (shape ``(n^2, n^2)``, entries of
    :math:`A` row-major).  Each expectation is put in :func:`canonical` form;
    nothing else is simplified.
    """
    st = setting(n)
    u, v, A = st.u, st.v, st.A
    d = {}
    d["f"] = (u.T * A * v)[0, 0]
    # log Z_v(u) = log E_{v'} exp(u^T A v'): the MGF of v' at a = A^T u.
    d["log_Z_v"] = sp.log(gaussian_mgf(A.T * u, st.C_vv))
    d["log_Z_u"] = sp.log(gaussian_mgf(A * v, st.C_uu))
    d["log_p"] = gaussian_log_density(st.x, sp.zeros(2 * n, 1), st.C)
    d["log_p_u"] = gaussian_log_density(u, sp.zeros(n, 1), st.C_uu)
    d["log_p_v"] = gaussian_log_density(v, sp.zeros(n, 1), st.C_vv)
    d["log_nu_v_tilt"] = d["f"] + d["log_p_v"] - d["log_Z_v"]
    d["log_nu_u_tilt"] = d["f"] + d["log_p_u"] - d["log_Z_u"]
    d["log_nu_v"] = gaussian_log_density(v, st.C_vv * A.T * u, st.C_vv)
    d["log_nu_u"] = gaussian_log_density(u, st.C_uu * A * v, st.C_uu)
    # Each expectation is derived, then put in canonical form once (cached with
    # the rest): the quantities below are sums of these canonical pieces.
    E = {k: canonical(expectation(d[k], st))
         for k in ("f", "log_Z_v", "log_Z_u", "log_p", "log_p_u", "log_p_v", "log_nu_v", "log_nu_u")}
    d["L_clip"] = -E["f"] + E["log_Z_v"] / 2 + E["log_Z_u"] / 2
    d["KL_v"] = E["log_p"] - E["log_p_u"] - E["log_nu_v"]
    d["KL_u"] = E["log_p"] - E["log_p_v"] - E["log_nu_u"]
    d["I"] = E["log_p"] - E["log_p_u"] - E["log_p_v"]
    d["h_u"] = -E["log_p_u"]
    d["h_v"] = -E["log_p_v"]
    d["L_cond"] = -(E["log_nu_v"] + E["log_nu_u"]) / 2
    # Gradient and Hessian in the entries of A (row-major), for Proposition G1.
    d["grad_A"] = sp.Matrix(n, n, lambda i, j: sp.diff(d["L_clip"], A[i, j]))
    d["hessian_A"] = sp.hessian(d["L_clip"], list(A))
    return d


def clip_loss_at(n: int, C_uu, C_uv, C_vv, A):
    r"""The derived :math:`L_{clip}` of :func:`derivations` with the covariance
    blocks and :math:`A` replaced by the given ``(n, n)`` matrices (symbolic
    or rational): :math:`L_{clip}(A; C_{uu}, C_{uv}, C_{vv})`."""
    st = setting(n)
    reps = dict(zip(st.C_uu, C_uu))
    reps.update(zip(st.C_vv, C_vv))
    reps.update(zip(st.C_uv, C_uv))
    reps.update(zip(st.A, A))
    return derivations(n)["L_clip"].xreplace(reps)


# --------------------------------------------------------------------------
# Proposition G1: the stationary point and the minima, in the entries of C
# --------------------------------------------------------------------------
def canonical_correlation_matrix(st: GaussianSetting) -> sp.Matrix:
    r""":math:`M = C_{uu}^{-1}C_{uv}C_{vv}^{-1}C_{vu}`, shape ``(n, n)``.

    :math:`M = C_{uu}^{-1/2}KK^TC_{uu}^{1/2}` is similar to :math:`KK^T`, so its
    eigenvalues are the squared canonical correlations :math:`\sigma_i^2`
    (MATH.md §4).
    """
    return st.C_uu.inv() * st.C_uv * st.C_vv.inv() * st.C_uv.T


@lru_cache(maxsize=None)
def full_rank_minimizer(n: int) -> sp.Matrix:
    r"""The unique solution :math:`A^*` of :math:`\nabla_A L_{clip} = 0` (sympy ``solve``),
    shape ``(n, n)``, in the entries of :math:`C`.

    Raises
    ------
    ArithmeticError
        If the stationarity system does not have exactly one solution.
    """
    st, d = setting(n), derivations(n)
    sol = sp.solve(list(d["grad_A"]), list(st.A_symbols), dict=True)
    if len(sol) != 1:
        raise ArithmeticError(f"stationarity system: expected one solution, got {len(sol)}")
    return st.A.xreplace(sol[0])


def full_rank_minimum(n: int):
    r"""The minimum Proposition G1 states for :math:`n_e = n`:
    :math:`-\tfrac12\operatorname{tr} M = -\tfrac12\sum_i\sigma_i^2`
    (:func:`canonical_correlation_matrix`)."""
    return -canonical_correlation_matrix(setting(n)).trace() / 2


def rank_one_minimum():
    r"""The minimum Proposition G1 states for :math:`n_e = 1`, :math:`n = 2`:
    :math:`-\tfrac12\sigma_1^2`, with :math:`\sigma_1^2` the larger root of the
    characteristic polynomial of :math:`M` (:func:`canonical_correlation_matrix`),

    .. math:: -\tfrac12\sigma_1^2 = -\tfrac14\left(\operatorname{tr}M
              + \sqrt{(\operatorname{tr}M)^2 - 4\det M}\right).
    """
    M = canonical_correlation_matrix(setting(2))
    t, dt = M.trace(), M.det()
    return -(t + sp.sqrt(t**2 - 4 * dt)) / 4
