r"""Exact symbolic proofs of Theorems 2.8, 3.2 and Proposition G1 in small dimensions.

What is proved, and in what generality
--------------------------------------
* **Any similarity** (MATH.md §3): the pointwise integrand identities behind
  Theorems 2.8 and 3.2, with :math:`f`, :math:`\log Z`, and the
  log-densities as free symbols.  Taking :math:`E_\mu` (linearity, under the
  integrability hypotheses of the statements) gives the theorems.
* **Gaussian, bilinear** (MATH.md §4.1), for :math:`n_u = n_v = n \in \{1, 2\}`,
  with a *fully generic* symmetric positive definite joint covariance: every
  entry of :math:`C` is its own symbol (diagonal entries positive; positive
  definiteness is the hypothesis) and every entry of :math:`A` is a free real
  symbol.  Nothing is whitened there.  Expectations are derived from the
  moment generating function :math:`E e^{a^T x} = e^{a^T C a/2}`, itself
  derived from the one-dimensional Gaussian integral (:func:`standard_normal_mgf`)
  and the change of variables :math:`x = Lz`, :math:`C = LL^T`.
  Log-densities are those of the Gaussian,
  :math:`\log N(x; m, S) = -\tfrac12 (x-m)^T S^{-1}(x-m) - \tfrac n2\log 2\pi - \tfrac12\log\det S`,
  with :math:`S^{-1} = \operatorname{adj} S/\det S`.
* **Rank one in 2x2** (Proposition G1 with :math:`n_e = 1 < n = 2`) is proved
  in whitened coordinates :math:`C_{uu} = C_{vv} = I`, :math:`C_{uv} = K`
  generic, together with the identity that carries any SPD covariance to
  those coordinates (:math:`C_{uu} = L_uL_u^T`, :math:`C_{vv} = L_vL_v^T`
  Cholesky factors, :math:`B = L_u^T A L_v`, :math:`K = L_u^{-1}C_{uv}L_v^{-T}`,
  which preserves rank and singular values of :math:`K`).

How an identity is decided (:func:`prove_zero`)
-----------------------------------------------
A residual :math:`r` is split into a rational part and a part
:math:`\sum_k c_k \log q_k` with rational constants :math:`c_k`.  The rational
part is proved zero by :func:`sympy.cancel` (a canonical form for rational
functions).  Every :math:`q_k` that occurs is positive under the hypotheses
(determinants of SPD matrices, :math:`2\pi`), so the log part is zero iff
:math:`\prod_k q_k^{m c_k} = 1` for the common denominator :math:`m` of the
:math:`c_k`, again a rational identity decided by :func:`sympy.cancel`.  When
this procedure cannot decide (non-constant log coefficients, algebraic
relations between square roots), the residual is evaluated exactly at
random rational points satisfying the hypotheses; the verdict then says
``"rational-points"``: evidence, not a proof.

Results are cached in-process (:func:`functools.lru_cache`).  This module
imports neither ``numerics`` nor ``proofs_checks``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache, reduce

import mpmath
import numpy as np
import sympy as sp

from . import gaussian_sym as gs

__all__ = [
    "Verdict",
    "Proof",
    "prove_zero",
    "standard_normal_mgf",
    "gaussian_mgf",
    "GaussianSetting",
    "setting",
    "expectation",
    "gaussian_log_density",
    "derivations",
    "canonical",
    "positive_by_factorisation",
    "full_rank_minimizer",
    "general_proofs",
    "theorem_3_2_proofs",
    "theorem_2_8_proofs",
    "proposition_g1_proofs",
    "rank_one_proofs",
    "all_proofs",
    "proofs_for",
    "PROVED_STATEMENTS",
    "lambdified",
    "SUPPORTED_DIMENSIONS",
    "WORKING_DIGITS",
]

SUPPORTED_DIMENSIONS = (1, 2)


# --------------------------------------------------------------------------
# deciding identities
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    r"""Outcome of deciding whether a residual is identically zero.

    Attributes
    ----------
    zero : bool
        The residual is zero (proved, or zero at every sampled point when
        ``method == "rational-points"``).
    method : str
        ``"simplification"`` (a proof), ``"factorisation"`` (a proof of
        positivity), or ``"rational-points"`` (exact evaluation at random
        rational points satisfying the hypotheses: evidence, not a proof).
    error : float
        0 when ``zero``; otherwise the largest :math:`|r|` found at a witness
        point (``inf`` if none could be evaluated).
    seconds : float
    """

    zero: bool
    method: str
    error: float
    seconds: float = 0.0


@dataclass(frozen=True)
class Proof:
    """One identity of a statement, in dimension ``n``, with its verdict."""

    statement: str
    claim: str
    n: int | None
    verdict: Verdict
    detail: dict = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        dim = "any" if self.n is None else f"n_u=n_v={self.n}"
        return f"{dim}: {self.claim}"


def _rational(rng, lo=-3, hi=3, positive=False):
    num = int(rng.integers(1 if positive else lo * 7, hi * 7 + 1))
    den = int(rng.integers(1, 8))
    return sp.Rational(num, den)


def _fill_point(expr_symbols, rng, base):
    point = dict(base)
    for s in sorted(expr_symbols, key=sp.default_sort_key):
        if s not in point:
            point[s] = _rational(rng, positive=bool(s.is_positive))
    return point


def _split_logs(expr):
    """Return ``(rest, [(coefficient, argument)])`` with ``expr = rest + sum c log(q)``,
    or ``None`` when ``expr`` is not linear in its logarithms."""
    logs = sorted(expr.atoms(sp.log), key=sp.default_sort_key)
    if not logs:
        return expr, []
    ells = [sp.Dummy(f"l{k}") for k in range(len(logs))]
    e = expr.xreplace(dict(zip(logs, ells)))
    zero = {ell: 0 for ell in ells}
    terms = []
    for ell, lg in zip(ells, logs):
        c = sp.diff(e, ell)
        if c.free_symbols & set(ells):
            return None
        terms.append((c, lg.args[0]))
    return e.xreplace(zero), terms


def _decide_symbolically(expr):
    """True if proved zero, False otherwise (not decided or nonzero)."""
    split = _split_logs(expr)
    if split is None:
        return False
    rest, terms = split
    if sp.cancel(sp.together(rest)) != 0:
        return False
    coeffs = []
    for c, _ in terms:
        c = sp.cancel(c)
        if not c.is_Rational:
            return False
        coeffs.append(c)
    if not terms or all(c == 0 for c in coeffs):
        return True
    m = reduce(sp.ilcm, [c.q for c in coeffs], 1)
    num, den = sp.Integer(1), sp.Integer(1)
    for c, (_, q) in zip(coeffs, terms):
        k = int(c * m)
        if k > 0:
            num *= q ** k
        elif k < 0:
            den *= q ** (-k)
    # Valid because every log argument is positive under the hypotheses.
    return sp.cancel(sp.together(num - den)) == 0


def _value_at(expr, point):
    """|expr| at a rational point: exact when possible, else 50 digits."""
    val = expr.xreplace(point)
    split = _split_logs(val)
    if split is not None:
        rest, terms = split
        if rest.is_Rational and all(sp.sympify(c).is_Rational for c, _ in terms):
            coeffs = [sp.Rational(c) for c, _ in terms]
            m = reduce(sp.ilcm, [c.q for c in coeffs], 1) if coeffs else 1
            prod = sp.Integer(1)
            for c, (_, q) in zip(coeffs, terms):
                prod *= sp.sympify(q) ** int(c * m)
            if rest == 0 and prod == 1:
                return 0.0
    v = sp.N(val, 50)
    try:
        return abs(float(v))
    except TypeError:
        return math.inf


def prove_zero(expr, *, sampler=None, points: int = 3, seed: int = 0) -> Verdict:
    r"""Decide whether ``expr`` (a scalar, or a matrix / sequence of scalars) is
    identically zero under the hypotheses.

    Parameters
    ----------
    expr : sympy expression, Matrix or sequence
    sampler : callable, optional
        ``sampler(rng) -> dict`` giving values of constrained symbols (e.g. the
        entries of an SPD covariance) at a random rational point; symbols it
        leaves out get random rationals (positive for positive symbols).
    points : int
        Number of rational points used as witnesses / fallback evidence.
    seed : int
        Seed of the generator of rational points.

    Returns
    -------
    Verdict
        ``method="simplification"`` when proved; otherwise the residual is
        evaluated at ``points`` rational points: ``zero`` is then True only
        if it vanishes at all of them (``method="rational-points"``), and
        ``error`` reports the largest value found.
    """
    t0 = time.perf_counter()
    entries = list(expr) if isinstance(expr, (list, tuple, sp.MatrixBase)) else [expr]
    entries = [sp.sympify(e) for e in entries]
    if all(e == 0 or _decide_symbolically(e) for e in entries):
        return Verdict(True, "simplification", 0.0, time.perf_counter() - t0)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(points):
        syms = set().union(*(e.free_symbols for e in entries))
        point = _fill_point(syms, rng, sampler(rng) if sampler else {})
        for e in entries:
            worst = max(worst, _value_at(e, point))
    return Verdict(worst == 0.0, "rational-points", worst, time.perf_counter() - t0)


def positive_by_factorisation(expr, positives) -> Verdict:
    r"""Prove ``expr > 0`` by dividing out factors known to be positive.

    ``positives`` are polynomials positive under the hypotheses (e.g. leading
    principal minors of an SPD matrix, by Sylvester's criterion).  The proof
    succeeds when ``expr`` is a positive rational times a product of them.
    """
    t0 = time.perf_counter()
    r = sp.factor(sp.cancel(expr))
    for q in positives:
        for _ in range(16):
            quotient = sp.cancel(r / q)
            if sp.fraction(quotient)[1].free_symbols:
                break
            r = quotient
    r = sp.cancel(r)
    ok = bool(r.is_Rational and r > 0)
    return Verdict(ok, "factorisation", 0.0 if ok else math.inf, time.perf_counter() - t0)


# --------------------------------------------------------------------------
# Gaussian integrals
# --------------------------------------------------------------------------
_t = sp.Symbol("t", real=True)


@lru_cache(maxsize=None)
def standard_normal_mgf():
    r""":math:`E e^{tz}` for :math:`z \sim N(0, 1)`, by integrating against the density.

    .. math:: \int_{-\infty}^{\infty} e^{tz}\, \frac{e^{-z^2/2}}{\sqrt{2\pi}}\,dz = e^{t^2/2}.

    Returns the simplified sympy expression in the symbol ``t``.
    """
    z = sp.Symbol("z", real=True)
    integral = sp.integrate(sp.exp(_t * z - z**2 / 2) / sp.sqrt(2 * sp.pi), (z, -sp.oo, sp.oo))
    return sp.simplify(integral)


def gaussian_mgf(a, C):
    r""":math:`E e^{a^T x} = e^{a^T C a/2}` for :math:`x \sim N(0, C)`.

    Derivation: :math:`x = Lz` with :math:`C = LL^T` and :math:`z` standard
    normal with independent entries, so
    :math:`E e^{a^T L z} = \prod_i E e^{(L^Ta)_i z_i} = \prod_i e^{(L^Ta)_i^2/2}`
    by :func:`standard_normal_mgf`, and :math:`\sum_i (L^Ta)_i^2 = a^T C a`.
    The identity is proved for symbolic ``C`` in :func:`theorem_3_2_proofs`.
    """
    a = sp.Matrix(a)
    return sp.exp((a.T * C * a)[0, 0] / 2)


def gaussian_log_density(x, m, S):
    r""":math:`\log N(x; m, S) = -\tfrac12(x-m)^T S^{-1}(x-m) - \tfrac n2\log 2\pi - \tfrac12\log\det S`,
    with :math:`S^{-1} = \operatorname{adj}S / \det S`."""
    x, m = sp.Matrix(x), sp.Matrix(m)
    d = x - m
    det = S.det()
    quad = (d.T * S.adjugate() * d)[0, 0] / det
    return -quad / 2 - sp.Rational(x.shape[0], 2) * sp.log(2 * sp.pi) - sp.log(det) / 2


@dataclass(frozen=True, eq=False)
class GaussianSetting:
    r"""Symbols of the bilinear Gaussian model with :math:`n_u = n_v = n`.

    ``C`` is the joint covariance with one symbol per entry (``c_uu11``,
    ``c_uv12``, ...; diagonal entries positive, positive definiteness
    assumed), ``A`` the bilinear matrix with free real entries, ``u``, ``v``
    the variables, ``second_moments`` the matrix :math:`E[x x^T]` obtained by
    differentiating the MGF twice at 0.
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
        return self.u.col_join(self.v)

    def sampler(self, rng) -> dict:
        r"""A random rational point of the hypotheses: :math:`C = LL^T` with a rational
        lower-triangular :math:`L` of positive diagonal (hence SPD)."""
        m = 2 * self.n
        L = sp.zeros(m, m)
        for i in range(m):
            for j in range(i + 1):
                L[i, j] = _rational(rng, positive=(i == j))
        Cn = L * L.T
        return {s: val for s, val in zip(self.C, Cn) if isinstance(s, sp.Symbol)}

    def numeric_args(self, cov, A=None) -> list:
        """Float values of ``cov_symbols`` (and ``A_symbols``) from arrays, for lambdified functions."""
        n = self.n
        idx = {}
        for i in range(2 * n):
            for j in range(2 * n):
                s = self.C[i, j]
                if s not in idx:
                    idx[s] = (i, j)
        vals = [float(cov[idx[s]]) for s in self.cov_symbols]
        if A is not None:
            vals += [float(A[i, j]) for i in range(n) for j in range(n)]
        return vals


def _sym_block(name, n, symmetric):
    def entry(i, j):
        if symmetric and i > j:
            i, j = j, i
        return sp.Symbol(f"{name}{i + 1}{j + 1}", positive=True) if (symmetric and i == j) \
            else sp.Symbol(f"{name}{i + 1}{j + 1}", real=True)
    return sp.Matrix(n, n, entry)


@lru_cache(maxsize=None)
def setting(n: int) -> GaussianSetting:
    """The symbolic bilinear Gaussian model with ``n_u = n_v = n`` (n in 1, 2)."""
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
    """
    xs = list(st.x)
    point = _fill_point(expr.free_symbols - set(xs), np.random.default_rng(1),
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
    r"""Canonical form ``p/q + sum_k c_k log(a_k)`` of a rational-plus-logarithms expression.

    The rational part and the coefficients are put over a common denominator
    with the common factors cancelled (:func:`sympy.cancel`); equal log
    arguments are merged.  The value is unchanged.
    """
    split = _split_logs(sp.sympify(expr))
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
    model conditionals).  Each expectation is put in :func:`canonical` form;
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


def _closed(expr, st, with_A=True):
    return gs.instantiate(expr, cuu=st.C_uu, cuv=st.C_uv, cvv=st.C_vv,
                          a=st.A if with_A else None)


def _proof(statement, claim, n, residual, sampler=None, **detail):
    return Proof(statement, claim, n, prove_zero(residual, sampler=sampler), detail)


# --------------------------------------------------------------------------
# proofs
# --------------------------------------------------------------------------
@lru_cache(maxsize=None)
def general_proofs() -> tuple:
    r"""Pointwise identities behind Theorems 2.8 and 3.2 for *any* logit (MATH.md §3).

    With :math:`\log\nu_{v|u} = f + \log p_v - \log Z_v` and
    :math:`\log\nu_{u|v} = f + \log p_u - \log Z_u` (the tilts), and
    :math:`\log\mu_{v|u} = \log p - \log p_u`:

    * 3.2: :math:`\tfrac12[(\log\mu_{v|u} - \log\nu_{v|u}) + (\log\mu_{u|v} - \log\nu_{u|v})]
      - (\log p - \log p_u - \log p_v) = -f + \tfrac12\log Z_v + \tfrac12\log Z_u`;
    * 2.8: :math:`-\tfrac12(\log\nu_{v|u} + \log\nu_{u|v}) - (-f + \tfrac12\log Z_v
      + \tfrac12\log Z_u) = -\tfrac12(\log p_u + \log p_v)`, free of :math:`f` and :math:`Z`.

    :math:`E_\mu` of each side gives the theorem (:math:`E_\mu \log Z_v(u) = E_{\mu_u}\log Z_v`).
    """
    f, lZv, lZu, lp, lpu, lpv = sp.symbols("f logZ_v logZ_u logp logp_u logp_v", real=True)
    nu_v, nu_u = f + lpv - lZv, f + lpu - lZu
    clip_integrand = -f + lZv / 2 + lZu / 2
    kl = ((lp - lpu - nu_v) + (lp - lpv - nu_u)) / 2 - (lp - lpu - lpv)
    cond = -(nu_v + nu_u) / 2
    return (
        _proof("Theorem 3.2", "any logit: (KL integrands)/2 - PMI = CLIP integrand", None,
               kl - clip_integrand),
        _proof("Theorem 2.8", "any logit: L_cond integrand - L_clip integrand = -(log p_u + log p_v)/2",
               None, cond - clip_integrand + (lpu + lpv) / 2),
    )


@lru_cache(maxsize=None)
def theorem_3_2_proofs(n: int) -> tuple:
    r"""Theorem 3.2 in the bilinear Gaussian model, generic SPD :math:`C`, :math:`n_u = n_v = n`.

    Proves: the MGF from Cholesky variables; the tilts equal the Gaussian
    model conditionals of §4.1; the derived :math:`L_{clip}`, KL terms and
    :math:`I` equal the closed forms stated in :mod:`theory.gaussian_sym`;
    :math:`I = -\tfrac12\log\det(I - C_{uu}^{-1}C_{uv}C_{vv}^{-1}C_{vu})
    = -\tfrac12\sum_i\log(1-\sigma_i^2)`; and
    :math:`L_{clip} - [\tfrac12(E\,KL_{v|u} + E\,KL_{u|v}) - I] = 0`.
    """
    st, d = setting(n), derivations(n)
    smp = st.sampler
    name = "Theorem 3.2"
    out = []
    # MGF: x = L z with C = L L^T (every SPD C has such a Cholesky factor, with
    # positive diagonal), so E exp(a^T x) = prod_i E exp((L^T a)_i z_i).
    ts = sp.Matrix(sp.symbols(f"t1:{2 * n + 1}", real=True))
    L = sp.Matrix(2 * n, 2 * n, lambda i, j: sp.Symbol(f"l{i + 1}{j + 1}", positive=(i == j),
                                                       real=True) if i >= j else 0)
    z_mgf = standard_normal_mgf()
    log_prod = sum(sp.log(z_mgf.xreplace({_t: wi})) for wi in L.T * ts)
    out.append(_proof(name, "E exp(a^T x) = prod_i E exp((L^T a)_i z_i) = exp(a^T C a/2), C = L L^T",
                      n, log_prod - sp.log(gaussian_mgf(ts, L * L.T))))
    out.append(_proof(name, "tilt exp(f) mu_v / Z_v = N(C_vv A^T u, C_vv) (and u|v)", n,
                      [d["log_nu_v_tilt"] - d["log_nu_v"], d["log_nu_u_tilt"] - d["log_nu_u"]],
                      smp))
    out.append(_proof(name, "L_clip from the MGF = -tr(A C_vu) + tr(A C_vv A^T C_uu)/2", n,
                      d["L_clip"] - _closed(gs.clip_loss_closed_form, st), smp))
    out.append(_proof(name, "E_u KL(mu_v|u || nu_v|u) from densities = stated closed form", n,
                      d["KL_v"] - _closed(gs.kl_vu_closed_form, st), smp))
    out.append(_proof(name, "E_v KL(mu_u|v || nu_u|v) from densities = stated closed form", n,
                      d["KL_u"] - _closed(gs.kl_uv_closed_form, st), smp))
    out.append(_proof(name, "I from densities = (log det C_uu + log det C_vv - log det C)/2", n,
                      d["I"] - _closed(gs.mutual_information_closed_form, st, False), smp))
    Mcc = st.C_uu.inv() * st.C_uv * st.C_vv.inv() * st.C_uv.T
    out.append(_proof(name, "I = -log det(1 - C_uu^-1 C_uv C_vv^-1 C_vu)/2 = -sum log(1-sigma^2)/2",
                      n, d["I"] + sp.log((sp.eye(n) - Mcc).det()) / 2, smp))
    out.append(_proof(name, "L_clip - [(E KL_v|u + E KL_u|v)/2 - I] = 0", n,
                      d["L_clip"] - ((d["KL_v"] + d["KL_u"]) / 2 - d["I"]), smp))
    return tuple(out)


@lru_cache(maxsize=None)
def theorem_2_8_proofs(n: int) -> tuple:
    r"""Theorem 2.8 in the bilinear Gaussian model, generic SPD :math:`C`, :math:`n_u = n_v = n`.

    Proves: :math:`h = -E\log p = \tfrac12\log\det(2\pi e\,C)`; the derived
    :math:`L_{cond}` equals the closed form of :mod:`theory.gaussian_sym`;
    :math:`L_{cond} - L_{clip} = \tfrac12(h_u + h_v)`; and
    :math:`\partial(L_{cond} - L_{clip})/\partial A_{ij} = 0` for every entry.
    """
    st, d = setting(n), derivations(n)
    smp = st.sampler
    name = "Theorem 2.8"
    diff = d["L_cond"] - d["L_clip"]
    return (
        _proof(name, "h(mu_u) = -E log p_u = log det(2 pi e C_uu)/2 (and v)", n,
               [d["h_u"] - _closed(gs.entropy_closed_form(gs.C_uu, gs.n_u), st, False),
                d["h_v"] - _closed(gs.entropy_closed_form(gs.C_vv, gs.n_v), st, False)], smp),
        _proof(name, "L_cond from densities = stated closed form (expected NLL)", n,
               d["L_cond"] - _closed(gs.conditional_loss_closed_form, st), smp),
        _proof(name, "L_cond - L_clip - (h_u + h_v)/2 = 0", n,
               diff - (d["h_u"] + d["h_v"]) / 2, smp),
        _proof(name, "d(L_cond - L_clip)/dA_ij = 0 for every entry of A", n,
               [sp.diff(diff, a) for a in st.A_symbols], smp),
    )


@lru_cache(maxsize=None)
def full_rank_minimizer(n: int) -> sp.Matrix:
    r"""The unique solution of :math:`\nabla_A L_{clip} = 0` (sympy ``solve``), as a matrix."""
    st, d = setting(n), derivations(n)
    sol = sp.solve(list(d["grad_A"]), list(st.A_symbols), dict=True)
    if len(sol) != 1:
        raise ArithmeticError(f"stationarity system: expected one solution, got {len(sol)}")
    return st.A.xreplace(sol[0])


@lru_cache(maxsize=None)
def proposition_g1_proofs(n: int) -> tuple:
    r"""Proposition G1 with :math:`n_e = n` (full rank), generic SPD :math:`C`.

    Proves: the stationarity system :math:`\nabla_A L_{clip} = 0` has the single
    solution :math:`A^* = C_{uu}^{-1}C_{uv}C_{vv}^{-1}` (the truncated SVD of
    :math:`K` mapped back, with nothing truncated); :math:`L_{clip}(A^*) =
    -\tfrac12\operatorname{tr}(C_{uu}^{-1}C_{uv}C_{vv}^{-1}C_{vu}) = -\tfrac12\sum_i\sigma_i^2`
    (the :math:`\sigma_i^2` are the eigenvalues of that matrix, similar to
    :math:`KK^T`); the Hessian in :math:`A` (row-major) is
    :math:`C_{uu}\otimes C_{vv}`; and its leading principal minors are
    products of the leading principal minors of :math:`C_{uu}`, :math:`C_{vv}`,
    hence positive: the Hessian is positive definite, so :math:`A^*` is the
    global minimiser.
    """
    st, d = setting(n), derivations(n)
    smp = st.sampler
    name = "Proposition G1"
    A_star = full_rank_minimizer(n)
    target = st.C_uu.inv() * st.C_uv * st.C_vv.inv()
    M = target * st.C_uv.T
    value = d["L_clip"].xreplace(dict(zip(st.A_symbols, A_star)))
    H = d["hessian_A"]
    kron = sp.kronecker_product(st.C_uu, st.C_vv)
    positives = [st.C_uu[0, 0], st.C_vv[0, 0]]
    if n == 2:
        positives += [st.C_uu.det(), st.C_vv.det()]
    out = [
        _proof(name, "grad_A L_clip = 0 has the unique solution A* = C_uu^-1 C_uv C_vv^-1", n,
               A_star - target, smp),
        _proof(name, "L_clip(A*) = -tr(C_uu^-1 C_uv C_vv^-1 C_vu)/2 = -sum sigma_i^2/2", n,
               value + M.trace() / 2, smp),
        _proof(name, "Hessian of L_clip in A = C_uu (x) C_vv (constant in A)", n, H - kron, smp),
    ]
    t0 = time.perf_counter()
    minors = [H[:k, :k].det() for k in range(1, H.shape[0] + 1)]
    verdicts = [positive_by_factorisation(m, positives) for m in minors]
    ok = all(v.zero for v in verdicts)
    out.append(Proof(name, "Hessian positive definite: every leading minor is a product of "
                     "leading minors of C_uu, C_vv", n,
                     Verdict(ok, "factorisation", 0.0 if ok else math.inf,
                             time.perf_counter() - t0)))
    return tuple(out)


@lru_cache(maxsize=None)
def rank_one_proofs() -> tuple:
    r"""Proposition G1 with :math:`n_e = 1`, :math:`n_u = n_v = 2`, whitened coordinates.

    With :math:`C_{uu} = C_{vv} = I`, :math:`C_{uv} = K` generic and
    :math:`A = ab^T`, :math:`L(a, b) = L_{clip}(ab^T)` taken from the derived
    :math:`L_{clip}`.  Proves, with :math:`r_a = \nabla_a L`, :math:`r_b = \nabla_b L`,
    :math:`s^2 = |a|^2|b|^2`:

    1. :math:`r_a = |b|^2a - Kb`, :math:`r_b = |a|^2b - K^Ta`;
    2. :math:`KK^Ta - s^2a = -|a|^2r_a - Kr_b` and
       :math:`K^TKb - s^2b = -|b|^2r_b - K^Tr_a`: at a stationary point with
       :math:`a, b \ne 0`, :math:`s^2` is an eigenvalue of :math:`KK^T`, i.e.
       :math:`s = \sigma_1` or :math:`\sigma_2`, and :math:`(a/|a|, b/|b|)` a singular pair;
    3. :math:`L + \tfrac12 s^2 = a^Tr_a`: the value there is :math:`-\tfrac12\sigma_i^2`;
    4. for :math:`K = P\operatorname{diag}(\sigma_1, \sigma_2)Q^T` (rotations, rational
       parametrisation), :math:`a = \sqrt{\sigma_1}Pe_1`, :math:`b = \sqrt{\sigma_1}Qe_1`
       is stationary with value :math:`-\tfrac12\sigma_1^2`;
    5. whitening: :math:`L_{clip}(A; C) = L_{clip}(L_u^TAL_v; I, L_u^{-1}C_{uv}L_v^{-T}, I)`
       for Cholesky factors :math:`L_u, L_v`, for every :math:`A`.

    Since :math:`L_{clip} = \tfrac12\|B-K\|_F^2 - \tfrac12\|K\|_F^2` is coercive
    and rank :math:`\le 1` is closed, the minimum over rank :math:`\le 1` is
    attained at :math:`A = 0` (value 0) or at a stationary point of the
    factors; by 2–4 it is :math:`-\tfrac12\sigma_1^2`.  This step is argued in
    words, not by sympy.
    """
    st, d = setting(2), derivations(2)
    name = "Proposition G1"
    K = sp.Matrix(2, 2, sp.symbols("k11 k12 k21 k22", real=True))
    a = sp.Matrix(sp.symbols("alpha1 alpha2", real=True))
    b = sp.Matrix(sp.symbols("beta1 beta2", real=True))

    def clip_at(C_uu, C_uv, C_vv, A):
        reps = dict(zip(st.C_uu, C_uu))
        reps.update(zip(st.C_vv, C_vv))
        reps.update(zip(st.C_uv, C_uv))
        reps.update(zip(st.A, A))
        return d["L_clip"].xreplace(reps)

    I2 = sp.eye(2)
    Lab = clip_at(I2, K, I2, a * b.T)
    r_a = sp.Matrix([sp.diff(Lab, ai) for ai in a])
    r_b = sp.Matrix([sp.diff(Lab, bi) for bi in b])
    na2, nb2 = (a.T * a)[0, 0], (b.T * b)[0, 0]
    s2 = na2 * nb2
    out = [
        _proof(name, "rank 1 whitened: grad_a L = |b|^2 a - K b, grad_b L = |a|^2 b - K^T a", 2,
               list(r_a - (nb2 * a - K * b)) + list(r_b - (na2 * b - K.T * a))),
        _proof(name, "rank 1 whitened: K K^T a - s^2 a = -|a|^2 r_a - K r_b (and for b)", 2,
               list(K * K.T * a - s2 * a + na2 * r_a + K * r_b)
               + list(K.T * K * b - s2 * b + nb2 * r_b + K.T * r_a)),
        _proof(name, "rank 1 whitened: L(a b^T) + s^2/2 = a^T r_a (value -sigma_i^2/2 if stationary)",
               2, Lab + s2 / 2 - (a.T * r_a)[0, 0]),
    ]
    p, q = sp.symbols("p q", real=True)
    s1, s2_ = sp.symbols("sigma1", positive=True), sp.Symbol("sigma2", real=True)

    def rot(t):
        return sp.Matrix([[1 - t**2, -2 * t], [2 * t, 1 - t**2]]) / (1 + t**2)

    P, Q = rot(p), rot(q)
    Ks = P * sp.diag(s1, s2_) * Q.T
    a1, b1 = sp.sqrt(s1) * P[:, 0], sp.sqrt(s1) * Q[:, 0]
    reps = dict(zip(K, Ks))
    reps.update(zip(a, a1))
    reps.update(zip(b, b1))
    lam_ = sp.Symbol("lambda")
    out.append(_proof(name, "rank 1 whitened: K = P diag(s1, s2) Q^T has K K^T eigenvalues "
                      "s1^2, s2^2; a = sqrt(s1) P e1, b = sqrt(s1) Q e1 stationary, L = -s1^2/2", 2,
                      [(Ks * Ks.T).charpoly(lam_).as_expr() - (lam_ - s1**2) * (lam_ - s2_**2)]
                      + [e.xreplace(reps) for e in list(r_a) + list(r_b)]
                      + [Lab.xreplace(reps) + s1**2 / 2]))
    for n in SUPPORTED_DIMENSIONS:
        stn, dn = setting(n), derivations(n)
        Lu = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"l_u{i + 1}{j + 1}", positive=(i == j),
                                                   real=True) if i >= j else 0)
        Lv = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"l_v{i + 1}{j + 1}", positive=(i == j),
                                                   real=True) if i >= j else 0)
        reps = dict(zip(stn.C_uu, Lu * Lu.T))
        reps.update(zip(stn.C_vv, Lv * Lv.T))
        original = dn["L_clip"].xreplace(reps)
        Kw = Lu.inv() * stn.C_uv * Lv.T.inv()
        Bw = Lu.T * stn.A * Lv
        wreps = dict(zip(stn.C_uu, sp.eye(n)))
        wreps.update(zip(stn.C_vv, sp.eye(n)))
        wreps.update(zip(stn.C_uv, Kw))
        wreps.update(zip(stn.A, Bw))
        whitened = dn["L_clip"].xreplace(wreps)
        out.append(_proof(name, "whitening: L_clip(A; C) = L_clip(L_u^T A L_v; I, K, I), "
                          "K = L_u^-1 C_uv L_v^-T", n, original - whitened))
    return tuple(out)


PROVED_STATEMENTS = ("Theorem 3.2", "Theorem 2.8", "Proposition G1")


@lru_cache(maxsize=None)
def proofs_for(statement: str) -> tuple:
    """Every proof of ``statement`` (one of :data:`PROVED_STATEMENTS`), cached."""
    if statement not in PROVED_STATEMENTS:
        raise ValueError(f"statement={statement!r}: expected one of {PROVED_STATEMENTS}")
    out = [pr for pr in general_proofs() if pr.statement == statement]
    per_dim = {"Theorem 3.2": theorem_3_2_proofs, "Theorem 2.8": theorem_2_8_proofs,
               "Proposition G1": proposition_g1_proofs}[statement]
    for n in SUPPORTED_DIMENSIONS:
        out += per_dim(n)
    if statement == "Proposition G1":
        out += rank_one_proofs()
    return tuple(out)


def all_proofs() -> dict:
    """Every proof, keyed by statement name (cached per statement)."""
    return {name: proofs_for(name) for name in PROVED_STATEMENTS}


# --------------------------------------------------------------------------
# numerical evaluation of the derived expressions
# --------------------------------------------------------------------------
_LAMBDIFIABLE = ("L_clip", "KL_v", "KL_u", "I", "L_cond", "h_u", "h_v")


#: Working precision (decimal digits) of :func:`lambdified`: the derived
#: expressions are evaluated in mpmath so that their own rounding (expanded
#: polynomials in the covariance entries cancel heavily) is negligible
#: against the float64 rounding of the implementation they are compared with.
WORKING_DIGITS = 40


@lru_cache(maxsize=None)
def _lambdified(name: str, n: int):
    st = setting(n)
    cov_only = {"A_star", "min_full", "min_rank1"}
    if name == "A_star":
        expr = list(full_rank_minimizer(n))
    elif name in ("min_full", "min_rank1"):
        M = st.C_uu.inv() * st.C_uv * st.C_vv.inv() * st.C_uv.T
        if name == "min_full":
            expr = -M.trace() / 2
        else:
            if n != 2:
                raise ValueError(f"n={n}: the rank-one minimum is stated for n=2")
            t, dt = M.trace(), M.det()
            # Larger root of the characteristic polynomial of M (eigenvalues sigma_i^2).
            expr = -(t + sp.sqrt(t**2 - 4 * dt)) / 4
    elif name == "grad_A":
        expr = list(derivations(n)["grad_A"])
    elif name in _LAMBDIFIABLE:
        expr = derivations(n)[name]
    else:
        raise ValueError(f"name={name!r}: expected one of "
                         f"{_LAMBDIFIABLE + ('A_star', 'min_full', 'min_rank1', 'grad_A')}")
    args = st.cov_symbols if name in cov_only else st.cov_symbols + st.A_symbols
    return sp.lambdify(args, expr, modules="mpmath", cse=True), name not in cov_only


def lambdified(name: str, n: int):
    r"""A float function of the derived expression ``name`` in dimension ``n``.

    ``name`` is one of ``L_clip``, ``KL_v``, ``KL_u``, ``I``, ``L_cond``,
    ``h_u``, ``h_v``, ``grad_A`` (called as ``fn(A, cov)``), or ``A_star``
    (full-rank minimiser, ``n x n`` array), ``min_full``
    (:math:`-\tfrac12\sum_i\sigma_i^2`), ``min_rank1`` (:math:`-\tfrac12\sigma_1^2`,
    ``n = 2``), called as ``fn(cov)``.  ``cov`` is the joint ``2n x 2n``
    covariance (upper triangle read), ``A`` the ``n x n`` bilinear matrix.
    Evaluation is in mpmath at :data:`WORKING_DIGITS` digits, from the exact
    binary values of the float inputs; the result is rounded to float64.
    """
    fn, takes_A = _lambdified(name, n)
    st = setting(n)
    matrix_valued = name in ("grad_A", "A_star")

    def evaluate(vals):
        with mpmath.workdps(WORKING_DIGITS):
            out = fn(*[mpmath.mpf(x) for x in vals])
            if matrix_valued:
                return np.array([float(x) for x in out], dtype=float).reshape(n, n)
            return float(out)

    if takes_A:
        def call(A, cov):
            return evaluate(st.numeric_args(cov, A))
    else:
        def call(cov):
            return evaluate(st.numeric_args(cov))
    call.__name__ = f"{name}_n{n}"
    return call
