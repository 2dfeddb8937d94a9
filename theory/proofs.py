r"""Exact symbolic proofs of Theorems 2.8, 3.2 and Proposition G1 in small dimensions.

What is proved, and in what generality
--------------------------------------
* **Any similarity** (MATH.md §3): the pointwise integrand identities behind
  Theorems 2.8 and 3.2, with :math:`f`, :math:`\log Z`, and the
  log-densities as free symbols (:func:`general_proofs`).  Taking
  :math:`E_\mu` (linearity, under the integrability hypotheses of the
  statements) gives the theorems.
* **Gaussian, bilinear** (MATH.md §4.1), for :math:`n_u = n_v = n \in \{1, 2\}`,
  with a fully generic symmetric positive definite joint covariance
  :math:`C \in \mathbb{R}^{2n\times 2n}` and :math:`A \in \mathbb{R}^{n\times n}`
  free (:mod:`theory.gaussian_derivations`): the quantities derived from
  Gaussian integrals equal the closed forms stated in :mod:`theory.gaussian_sym`,
  and the theorems hold between them (:func:`theorem_3_2_proofs`,
  :func:`theorem_2_8_proofs`, :func:`proposition_g1_proofs`).
* **Rank one in 2x2** (Proposition G1 with :math:`n_e = 1 < n = 2`) is proved
  in whitened coordinates :math:`C_{uu} = C_{vv} = I`, :math:`C_{uv} = K`
  generic, together with the identity that carries any SPD covariance to
  those coordinates (:math:`C_{uu} = L_uL_u^T`, :math:`C_{vv} = L_vL_v^T`
  Cholesky factors, :math:`B = L_u^T A L_v`, :math:`K = L_u^{-1}C_{uv}L_v^{-T}`,
  which preserves rank and singular values of :math:`K`) (:func:`rank_one_proofs`).

Each identity is a :class:`Proof` whose :class:`~theory.identities.Verdict`
says what was established (:mod:`theory.identities`): ``"identity-proved"``
or ``"positivity-proved"`` are proofs; ``"rational-points-only"`` is evidence.
Results are cached in-process (:func:`functools.lru_cache`).  This module
imports neither ``numerics`` nor ``proofs_checks``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp

from . import gaussian_sym as gs
from .gaussian_derivations import (
    MGF_ARGUMENT,
    SUPPORTED_DIMENSIONS,
    canonical_correlation_matrix,
    clip_loss_at,
    derivations,
    full_rank_minimizer,
    full_rank_minimum,
    gaussian_mgf,
    setting,
    standard_normal_mgf,
)
from .identities import Verdict, positive_by_factorisation, prove_zero

__all__ = [
    "Proof",
    "general_proofs",
    "theorem_3_2_proofs",
    "theorem_2_8_proofs",
    "proposition_g1_proofs",
    "rank_one_proofs",
    "PROVED_STATEMENTS",
    "proofs_for",
    "all_proofs",
]


@dataclass(frozen=True)
class Proof:
    """One identity of a statement, in dimension ``n``, with its verdict.

    Attributes
    ----------
    statement : str
        The statement it belongs to, e.g. ``"Theorem 3.2"``.
    claim : str
        The identity in words.
    n : int or None
        :math:`n_u = n_v`, or None for the identities that hold for any logit.
    verdict : Verdict
        What was established (:mod:`theory.identities`).
    detail : dict
        Free-form extra information (not compared).
    """

    statement: str
    claim: str
    n: int | None
    verdict: Verdict
    detail: dict = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        dim = "any" if self.n is None else f"n_u=n_v={self.n}"
        return f"{dim}: {self.claim}"


def _closed(expr, st, with_A=True):
    return gs.instantiate(expr, cuu=st.C_uu, cuv=st.C_uv, cvv=st.C_vv,
                          a=st.A if with_A else None)


def _proof(statement, claim, n, residual, sampler=None, **detail):
    return Proof(statement, claim, n, prove_zero(residual, sampler=sampler), detail)


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
    log_prod = sum(sp.log(z_mgf.xreplace({MGF_ARGUMENT: wi})) for wi in L.T * ts)
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
    M = canonical_correlation_matrix(st)
    out.append(_proof(name, "I = -log det(1 - C_uu^-1 C_uv C_vv^-1 C_vu)/2 = -sum log(1-sigma^2)/2",
                      n, d["I"] + sp.log((sp.eye(n) - M).det()) / 2, smp))
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
               value - full_rank_minimum(n), smp),
        _proof(name, "Hessian of L_clip in A = C_uu (x) C_vv (constant in A)", n, H - kron, smp),
    ]
    minors = [H[:k, :k].det() for k in range(1, H.shape[0] + 1)]
    out.append(Proof(name, "Hessian positive definite: every leading minor is a product of "
                     "leading minors of C_uu, C_vv", n,
                     positive_by_factorisation(minors, positives)))
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
    name = "Proposition G1"
    K = sp.Matrix(2, 2, sp.symbols("k11 k12 k21 k22", real=True))
    a = sp.Matrix(sp.symbols("alpha1 alpha2", real=True))
    b = sp.Matrix(sp.symbols("beta1 beta2", real=True))

    I2 = sp.eye(2)
    Lab = clip_loss_at(2, I2, K, I2, a * b.T)
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
        stn = setting(n)
        Lu = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"l_u{i + 1}{j + 1}", positive=(i == j),
                                                   real=True) if i >= j else 0)
        Lv = sp.Matrix(n, n, lambda i, j: sp.Symbol(f"l_v{i + 1}{j + 1}", positive=(i == j),
                                                   real=True) if i >= j else 0)
        original = clip_loss_at(n, Lu * Lu.T, stn.C_uv, Lv * Lv.T, stn.A)
        Kw = Lu.inv() * stn.C_uv * Lv.T.inv()
        Bw = Lu.T * stn.A * Lv
        whitened = clip_loss_at(n, sp.eye(n), Kw, sp.eye(n), Bw)
        out.append(_proof(name, "whitening: L_clip(A; C) = L_clip(L_u^T A L_v; I, K, I), "
                          "K = L_u^-1 C_uv L_v^-T", n, original - whitened))
    return tuple(out)


#: The statements with symbolic proofs here, in the order of :func:`all_proofs`.
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


