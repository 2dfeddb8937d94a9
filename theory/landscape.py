r"""The Landscape statement as a strict-saddle property (MATH.md §4.1).

Setting: :math:`\ell(G_u, G_v) = L_{clip}(G_u^TG_v)` over :math:`G_u \in \mathbb R^{n_e\times n_u}`,
:math:`G_v \in \mathbb R^{n_e\times n_v}` (temperature folded in).  In whitened factors
:math:`X = G_uC_{uu}^{1/2}`, :math:`Y = G_vC_{vv}^{1/2}` (a linear change of variables:
stationary points correspond, Hessians are congruent and keep their inertia by
Sylvester's law), :math:`\ell = \tfrac12\|X^TY - K\|_F^2 - \tfrac12\|K\|_F^2`, and in
the canonical bases :math:`K = \sum_j\sigma_ju_jv_j^T`.

Claim (strict saddle; derived).
    (i) Every stationary point has :math:`B = X^TY = K_S = \sum_{i\in S}\sigma_iu_iv_i^T`
    for a set :math:`S` of canonical pairs (with ties: of singular triples), :math:`|S| \le n_e`,
    and value :math:`-\tfrac12\sum_{i\in S}\sigma_i^2`.
    (ii) At the balanced representative of :math:`S` (row :math:`k` of :math:`X`, :math:`Y` equal
    to :math:`\sqrt{\sigma_i}u_i^T`, :math:`\sqrt{\sigma_i}v_i^T` for the :math:`k`-th :math:`i \in S`,
    other rows 0) and at every point of its orbit :math:`(MX, M^{-T}Y)`,
    :math:`M \in GL(n_e)`, the Hessian has the spectrum (whitened, balanced point)

    * :math:`\sigma_i + \sigma_{i'}` and 0 for each ordered pair :math:`(i, i') \in S^2`;
    * :math:`\sigma_i \pm \sigma_j` for :math:`i \in S`, :math:`j \notin S`, :math:`j \le \min(n_u, n_v)`
      (:math:`\sigma_j = 0` past the rank), and :math:`\sigma_i` for each of the
      :math:`|n_u - n_v|` unpaired coordinates;
    * :math:`\pm\sigma_j` for each zero row and :math:`j \notin S`; 0 otherwise.

    Hence its smallest eigenvalue is
    :math:`-\max\big(\max_{i\in S, j\notin S}(\sigma_j - \sigma_i),\ [|S| < n_e]\max_{j\notin S}\sigma_j\big)^+`:
    negative unless :math:`S` holds :math:`n_e` largest correlations (or every positive one),
    i.e. unless the point is a global minimum.  Every stationary point that is not a global
    minimum is a strict saddle, and there is no spurious local minimum.

Proof of (i).  Stationarity is :math:`YR^T = 0`, :math:`XR = 0` with :math:`R = B - K`, hence
:math:`BR^T = X^TYR^T = 0` and :math:`B^TR = Y^TXR = 0`: :math:`B` and :math:`-R` have
orthogonal column spaces and orthogonal row spaces, so :math:`K = B + (-R)` is an
orthogonal direct sum and the singular triples of :math:`K` are the union of those of
:math:`B` and of :math:`-R`.  Thus :math:`B = K_S`, and
:math:`\ell = \tfrac12\|K_{S^c}\|^2 - \tfrac12\|K\|^2 = -\tfrac12\sum_{i\in S}\sigma_i^2`.

Proof of (ii).  The second variation is
:math:`\|\delta X^TY + X^T\delta Y\|_F^2 + 2\langle R, \delta X^T\delta Y\rangle`; in the bases
:math:`u_a`, :math:`v_b` it splits into independent blocks of size 1 and 2 whose
eigenvalues are those listed (computed in :mod:`numerics.landscape`, proved below in 2x2).
On the orbit, :math:`(X, Y) \mapsto (MX, M^{-T}Y)` is linear and leaves :math:`\ell` invariant,
so Hessians there are congruent (same inertia).

Not proved here: stationary points outside the orbits of balanced representatives
(possible when :math:`\operatorname{rank}X \ne \operatorname{rank}Y`, e.g. a zero row of
:math:`X` facing a row of :math:`Y` in the kernel of :math:`K^T`) have the same :math:`B`
and value; a non-optimal one is still a strict saddle because the 2x2 restriction
:math:`(\delta X_{kj}, \delta Y_{kj})` to a zero row :math:`k` of :math:`X` has determinant
:math:`-\sigma_j^2 < 0` (or the swap block :math:`\sigma_i - \sigma_j < 0` applies);
that every stationary point falls in one of these cases is the classical result of
Baldi & Hornik (1989) and Kawaguchi (2016, Thm 2.3), cited, not re-derived.

Consequence for MATH.md's Landscape: gradient descent with random initialisation
avoids strict saddles almost surely (Lee et al., 2016), so it reaches the global value.

This module imports neither ``numerics`` nor ``proofs_checks``.
"""
from __future__ import annotations

import math
import time
from functools import lru_cache
from itertools import combinations

import sympy as sp

from .statements import Statement
from .identities import IDENTITY_PROVED, POSITIVITY_PROVED, UNDECIDED
from .symbolic import Proof, Verdict

__all__ = ["STRICT_SADDLE", "predicted_spectrum", "whitened_objective", "strict_saddle_proofs"]

STRICT_SADDLE = Statement(
    name="Landscape (strict saddle)",
    title="every stationary point of the factorised CLIP objective is a global minimum or a "
          "strict saddle",
    section="§4.1",
    hypotheses=("mu = N(0, C), C SPD", "bilinear logit, A = G_u^T G_v, G_u, G_v with n_e rows"),
    claim=("stationary points have G_u^T G_v = C_uu^-1/2 K_S C_vv^-1/2 for a set S of canonical "
           "pairs, |S| <= n_e; the Hessian at the balanced point of S has the closed-form spectrum "
           "of theory.landscape; its smallest eigenvalue is < 0 unless S holds n_e largest "
           "correlations (a global minimum)"),
    derived=True,
    notes=("stationary points outside the orbits of balanced points: cited (Baldi & Hornik 1989, "
           "Kawaguchi 2016), not re-derived",),
)

t1, t2 = sp.symbols("t1 t2", positive=True)
#: sigma_i = t_i^2 keeps the balanced points (entries sqrt(sigma_i) = t_i) polynomial.
s1, s2 = t1**2, t2**2
_lam = sp.Symbol("lambda")


def predicted_spectrum(sig, n_u, n_v, n_e, S):
    """The eigenvalue list of claim (ii) as sympy expressions (``sig`` a sequence, ``S`` 0-based)."""
    m = min(n_u, n_v)
    s = list(sig) + [0] * (m - len(sig))
    out = []
    for i in S:
        for i2 in S:
            out += [s[i] + s[i2], 0]
        for j in range(m):
            if j not in S:
                out += [s[i] + s[j], s[i] - s[j]]
        out += [s[i]] * abs(n_u - n_v)
    for _ in range(n_e - len(S)):
        for j in range(m):
            out += [0, 0] if j in S else [s[j], -s[j]]
        out += [0] * abs(n_u - n_v)
    return out


def whitened_objective(n_e: int, K: sp.Matrix):
    r"""``(ell, X, Y)``: :math:`\tfrac12\|X^TY - K\|_F^2` with symbolic factors of ``n_e`` rows."""
    n_u, n_v = K.shape
    X = sp.Matrix(n_e, n_u, lambda k, a: sp.Symbol(f"x{k + 1}{a + 1}", real=True))
    Y = sp.Matrix(n_e, n_v, lambda k, b: sp.Symbol(f"y{k + 1}{b + 1}", real=True))
    R = X.T * Y - K
    return sum(e**2 for e in R) / 2, X, Y


def _proof(claim, verdict):
    return Proof("Landscape", claim, 2, verdict)


def _timed(ok, t0, kind=IDENTITY_PROVED):
    """``kind`` if ``ok`` (an identity, or a sign established symbolically), else undecided."""
    return Verdict(kind if ok else UNDECIDED, 0.0 if ok else math.inf, time.perf_counter() - t0)


@lru_cache(maxsize=None)
def strict_saddle_proofs() -> tuple:
    r"""Symbolic proofs in 2x2 (:math:`K = \operatorname{diag}(\sigma_1, \sigma_2)`,
    :math:`\sigma_i = t_i^2`, :math:`t_i > 0`, and :math:`\sigma_1 = \sigma_2 + d`, :math:`d > 0`
    where the order matters):

    1. for :math:`n_e \in \{1, 2\}` and every :math:`S` with :math:`|S| \le n_e`, the balanced
       point is stationary and the characteristic polynomial of the Hessian is
       :math:`\prod(\lambda - \hat\lambda)` over the predicted spectrum;
    2. :math:`n_e = 1`, with :math:`x = X^T`, :math:`y = Y^T` and gradients :math:`r_x, r_y`:
       :math:`KK^Tx - |x|^2|y|^2x = -|x|^2r_x - Kr_y` and symmetrically for :math:`y`, and
       :math:`r_x = -Ky` at :math:`x = 0`.  So at a stationary point :math:`x = 0` forces
       :math:`Ky = 0`, :math:`y = 0`; otherwise :math:`x` and :math:`y` are eigenvectors of
       :math:`KK^T`, :math:`K^TK` for the eigenvalue :math:`|x|^2|y|^2`, i.e. (as
       :math:`\sigma_1 \ne \sigma_2`) the orbits :math:`X = (c, 0)`, :math:`Y = (\sigma_1/c, 0)` and
       :math:`X = (0, c)`, :math:`Y = (0, \sigma_2/c)` (the last step in words);
    3. on the orbit of :math:`S = \{2\}`, for every :math:`c \ne 0`, the restriction of the
       Hessian to :math:`(x_{11}, y_{11})` has determinant :math:`\sigma_2^2 - \sigma_1^2 < 0`; at
       :math:`0` the restriction to :math:`(x_{11}, y_{11})` has determinant :math:`-\sigma_1^2 < 0`
       (strict saddles whatever the gauge);
    4. on the orbit of :math:`S = \{1\}` the Hessian is positive semidefinite for every
       :math:`c \ne 0`: the coefficients of its characteristic polynomial alternate in sign
       (for a symmetric matrix, all eigenvalues :math:`\ge 0` iff so), each being a
       polynomial in :math:`c^2, 1/c^2, \sigma_2, d` with non-negative coefficients.
    """
    d = sp.Symbol("d", positive=True)
    K = sp.diag(s1, s2)
    out = []
    for n_e in (1, 2):
        ell, X, Y = whitened_objective(n_e, K)
        xs = list(X) + list(Y)
        H = sp.hessian(ell, xs)
        grad = [sp.diff(ell, x) for x in xs]
        for size in range(n_e + 1):
            for S in combinations(range(2), size):
                t0 = time.perf_counter()
                point = {x: 0 for x in xs}
                for k, i in enumerate(S):
                    point[X[k, i]] = (t1, t2)[i]
                    point[Y[k, i]] = (t1, t2)[i]
                Hs = H.subs(point)
                stationary = all(sp.simplify(g.subs(point)) == 0 for g in grad)
                pred = sp.prod([_lam - e for e in predicted_spectrum((s1, s2), 2, 2, n_e, S)])
                same = sp.expand(Hs.charpoly(_lam).as_expr() - sp.expand(pred)) == 0
                names = "{" + ", ".join(str(i + 1) for i in S) + "}"
                out.append(_proof(f"n_e={n_e}, S={names}: stationary, Hessian spectrum as predicted",
                                  _timed(stationary and same, t0)))
    # n_e = 1: every stationary point, through the identities of the rank-one G1 proofs
    ell, X, Y = whitened_objective(1, K)
    xs = list(X) + list(Y)
    t0 = time.perf_counter()
    x, y = X.T, Y.T
    r_x = sp.Matrix([sp.diff(ell, e) for e in X])
    r_y = sp.Matrix([sp.diff(ell, e) for e in Y])
    nx2, ny2 = (x.T * x)[0, 0], (y.T * y)[0, 0]
    ids = (list(K * K.T * x - nx2 * ny2 * x + nx2 * r_x + K * r_y)
           + list(K.T * K * y - nx2 * ny2 * y + ny2 * r_y + K.T * r_x)
           + list(r_x.subs({e: 0 for e in X}) + K * y))
    ok = all(sp.expand(e) == 0 for e in ids)
    out.append(_proof("n_e=1: K K^T x - |x|^2|y|^2 x = -|x|^2 r_x - K r_y (and for y), and "
                      "r_x = -K y at x = 0: stationary points are 0 or canonical pairs with "
                      "|x||y| = sigma_i, i.e. the orbits of S={1}, S={2}", _timed(ok, t0)))
    c = sp.Symbol("c", nonzero=True, real=True)
    H = sp.hessian(ell, xs)
    t0 = time.perf_counter()
    pt2 = {X[0, 0]: 0, X[0, 1]: c, Y[0, 0]: 0, Y[0, 1]: s2 / c}
    sub2 = H.subs(pt2).extract([0, 2], [0, 2])
    pt0 = {x: 0 for x in xs}
    sub0 = H.subs(pt0).extract([0, 2], [0, 2])
    det2 = sp.simplify(sub2.det() - (s2**2 - s1**2)) == 0
    det0 = sp.simplify(sub0.det() + s1**2) == 0
    out.append(_proof("n_e=1: det of the (x11, y11) block is s2^2 - s1^2 < 0 on the orbit of S={2} "
                      "and -s1^2 at 0 (strict saddles in every gauge)", _timed(det2 and det0, t0)))
    t0 = time.perf_counter()
    pt1 = {X[0, 0]: c, X[0, 1]: 0, Y[0, 0]: s1 / c, Y[0, 1]: 0}
    coeffs = H.subs(pt1).charpoly(_lam).all_coeffs()
    signs = []
    for k, co in enumerate(coeffs):
        e = sp.expand(sp.cancel((-1) ** k * co * c ** 8).subs(t1, sp.sqrt(t2**2 + d)))
        signs.append(e == 0 or e.is_nonnegative is True
                     or all(t.is_nonnegative for t in sp.Add.make_args(e)))
    out.append(_proof("n_e=1: on the orbit of S={1} the Hessian is PSD for every c "
                      "(characteristic coefficients alternate in sign)",
                      _timed(all(signs), t0, POSITIVITY_PROVED)))
    return tuple(out)
