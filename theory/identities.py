r"""Deciding symbolic identities and positivity: what was established, and how.

A *residual* :math:`r` is a sympy expression (or a matrix / sequence of them)
in symbols constrained by hypotheses (for example the entries of a symmetric
positive definite covariance).  The claim is :math:`r \equiv 0` under the
hypotheses (:func:`prove_zero`), or :math:`r > 0` under them
(:func:`positive_by_factorisation`).  The outcome is a :class:`Verdict` whose
``kind`` names exactly what was established.

How an identity is decided (:func:`prove_zero`)
-----------------------------------------------
:math:`r` is split into a rational part and a part
:math:`\sum_k c_k \log q_k` with rational constants :math:`c_k`
(:func:`split_logs`).  The rational part is proved zero by
:func:`sympy.cancel` (a canonical form for rational functions).  Every
:math:`q_k` that occurs is positive under the hypotheses (determinants of SPD
matrices, :math:`2\pi`), so the log part is zero iff
:math:`\prod_k q_k^{m c_k} = 1` for the common denominator :math:`m` of the
:math:`c_k`, again a rational identity decided by :func:`sympy.cancel`.  When
this procedure cannot decide (non-constant log coefficients, algebraic
relations between square roots), :math:`r` is evaluated at random rational
points satisfying the hypotheses: exactly when the value is a rational plus
rational multiples of logarithms of rationals, otherwise at 50 significant
digits.  Zero at every point is *evidence*, not a proof.

How positivity is decided (:func:`positive_by_factorisation`)
-------------------------------------------------------------
:math:`r` is factored and every factor known to be positive under the
hypotheses (e.g. leading principal minors of an SPD matrix, positive by
Sylvester's criterion) is divided out, as often as it divides.  Positivity is
proved when a positive rational constant remains.

Verdict kinds
-------------
==========================  ==============================================  =======
``kind``                    established                                     a proof
==========================  ==============================================  =======
``"identity-proved"``       :math:`r \equiv 0`, by exact simplification     yes
``"positivity-proved"``     :math:`r > 0`, by factorisation into positive   yes
                            factors
``"rational-points-only"``  :math:`r = 0` at every sampled rational point   no
                            satisfying the hypotheses (evidence)
``"nonzero-at-point"``      :math:`r \ne 0` at a rational point satisfying  refutes
                            the hypotheses (the claim fails there)
``"undecided"``             nothing: positivity not reduced to positive     no
                            factors, or no point could be evaluated
==========================  ==============================================  =======

This module imports neither ``numerics`` nor ``proofs_checks``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import reduce

import numpy as np
import sympy as sp

__all__ = [
    "IDENTITY_PROVED",
    "POSITIVITY_PROVED",
    "RATIONAL_POINTS_ONLY",
    "NONZERO_AT_POINT",
    "UNDECIDED",
    "VERDICT_KINDS",
    "PROOF_KINDS",
    "Verdict",
    "prove_zero",
    "positive_by_factorisation",
    "split_logs",
    "random_rational",
    "rational_point",
]

#: :math:`r \equiv 0` proved by exact simplification.
IDENTITY_PROVED = "identity-proved"
#: :math:`r > 0` proved: a positive rational times factors positive under the hypotheses.
POSITIVITY_PROVED = "positivity-proved"
#: :math:`r = 0` at every sampled rational point satisfying the hypotheses: evidence, not a proof.
RATIONAL_POINTS_ONLY = "rational-points-only"
#: :math:`r \ne 0` at a rational point satisfying the hypotheses: the claimed identity fails there.
NONZERO_AT_POINT = "nonzero-at-point"
#: Nothing established (factorisation did not reduce to positive factors, or no point evaluated).
UNDECIDED = "undecided"

VERDICT_KINDS = (IDENTITY_PROVED, POSITIVITY_PROVED, RATIONAL_POINTS_ONLY, NONZERO_AT_POINT,
                 UNDECIDED)
#: The kinds that are proofs of the claim.
PROOF_KINDS = (IDENTITY_PROVED, POSITIVITY_PROVED)


@dataclass(frozen=True)
class Verdict:
    r"""What was established about a claim :math:`r \equiv 0` or :math:`r > 0`.

    Attributes
    ----------
    kind : str
        One of :data:`VERDICT_KINDS` (table in the module docstring):
        ``"identity-proved"``, ``"positivity-proved"`` (proofs),
        ``"rational-points-only"`` (evidence), ``"nonzero-at-point"``
        (refutation), ``"undecided"``.
    error : float
        The largest :math:`|r|` found at a rational point: 0 for a proof and
        for ``"rational-points-only"``; positive for ``"nonzero-at-point"``;
        ``inf`` for ``"undecided"``.
    seconds : float
        Wall time spent deciding.
    """

    kind: str
    error: float
    seconds: float = 0.0

    def __post_init__(self):
        if self.kind not in VERDICT_KINDS:
            raise ValueError(f"kind={self.kind!r}: expected one of {', '.join(VERDICT_KINDS)}")

    @property
    def proved(self) -> bool:
        """True iff the claim is proved (``kind`` in :data:`PROOF_KINDS`)."""
        return self.kind in PROOF_KINDS

    @property
    def evidence_only(self) -> bool:
        """True iff the claim held at sampled rational points without being proved."""
        return self.kind == RATIONAL_POINTS_ONLY


# --------------------------------------------------------------------------
# rational points
# --------------------------------------------------------------------------
def random_rational(rng: np.random.Generator, *, lo: int = -3, hi: int = 3,
                    positive: bool = False) -> sp.Rational:
    r"""A random rational :math:`p/q`, :math:`q \in \{1..7\}`, in :math:`[lo, hi]`
    (in :math:`(0, hi]` when ``positive``)."""
    num = int(rng.integers(1 if positive else lo * 7, hi * 7 + 1))
    den = int(rng.integers(1, 8))
    return sp.Rational(num, den)


def rational_point(symbols, rng: np.random.Generator, base: dict) -> dict:
    """``base`` completed by a random rational for every symbol it leaves out
    (positive for symbols declared positive), in sympy's canonical symbol order."""
    point = dict(base)
    for s in sorted(symbols, key=sp.default_sort_key):
        if s not in point:
            point[s] = random_rational(rng, positive=bool(s.is_positive))
    return point


# --------------------------------------------------------------------------
# identities
# --------------------------------------------------------------------------
def split_logs(expr):
    r"""Split ``expr`` as :math:`\text{rest} + \sum_k c_k \log q_k`.

    Returns ``(rest, [(c_k, q_k), ...])``, with ``rest`` and the :math:`c_k`
    free of logarithms, or ``None`` when ``expr`` is not linear in its
    logarithms (a :math:`c_k` contains a logarithm).
    """
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


def _decide_symbolically(expr) -> bool:
    """True if proved zero; False if not decided (or nonzero)."""
    split = split_logs(expr)
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


def _abs_value_at(expr, point) -> float:
    """:math:`|r|` at a rational point: exactly 0 when the value is a rational plus
    rational multiples of logs of rationals that cancel, else at 50 digits;
    ``inf`` when it cannot be evaluated."""
    val = expr.xreplace(point)
    split = split_logs(val)
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


def _entries(expr) -> list:
    entries = list(expr) if isinstance(expr, (list, tuple, sp.MatrixBase)) else [expr]
    return [sp.sympify(e) for e in entries]


def prove_zero(expr, *, sampler=None, points: int = 3, seed: int = 0) -> Verdict:
    r"""Decide whether ``expr`` is identically zero under the hypotheses.

    Parameters
    ----------
    expr : sympy expression, Matrix or sequence of expressions
        The residual :math:`r`; a matrix or sequence is zero iff every entry is.
    sampler : callable, optional
        ``sampler(rng) -> dict`` giving values of constrained symbols (e.g. the
        entries of an SPD covariance) at a random rational point; symbols it
        leaves out get random rationals (positive for positive symbols).
    points : int
        Number of rational points evaluated when simplification does not decide.
    seed : int
        Seed of the generator of rational points.

    Returns
    -------
    Verdict
        ``"identity-proved"`` (error 0) when exact simplification proves
        :math:`r \equiv 0`.  Otherwise :math:`r` is evaluated at ``points``
        rational points: ``"nonzero-at-point"`` with the largest :math:`|r|`
        found if some value is nonzero; ``"rational-points-only"`` (error 0;
        evidence, not a proof) if every value is zero; ``"undecided"``
        (error ``inf``) if some value could not be evaluated and none was
        nonzero.
    """
    t0 = time.perf_counter()
    entries = _entries(expr)
    if all(e == 0 or _decide_symbolically(e) for e in entries):
        return Verdict(IDENTITY_PROVED, 0.0, time.perf_counter() - t0)
    rng = np.random.default_rng(seed)
    syms = set().union(*(e.free_symbols for e in entries))
    worst, unevaluated = 0.0, False
    for _ in range(points):
        point = rational_point(syms, rng, sampler(rng) if sampler else {})
        for e in entries:
            value = _abs_value_at(e, point)
            if math.isinf(value):
                unevaluated = True
            else:
                worst = max(worst, value)
    if worst > 0.0:
        kind = NONZERO_AT_POINT
    elif unevaluated:
        kind, worst = UNDECIDED, math.inf
    else:
        kind = RATIONAL_POINTS_ONLY
    return Verdict(kind, worst, time.perf_counter() - t0)


# --------------------------------------------------------------------------
# positivity
# --------------------------------------------------------------------------
def _positive_rational_after_division(expr, positives) -> bool:
    r = sp.factor(sp.cancel(expr))
    for q in positives:
        for _ in range(16):
            quotient = sp.cancel(r / q)
            if sp.fraction(quotient)[1].free_symbols:
                break
            r = quotient
    r = sp.cancel(r)
    return bool(r.is_Rational and r > 0)


def positive_by_factorisation(expr, positives) -> Verdict:
    r"""Prove ``expr > 0`` (every entry, for a matrix or sequence) by dividing out
    factors known to be positive.

    Parameters
    ----------
    expr : sympy expression, Matrix or sequence of expressions
    positives : sequence of sympy expressions
        Polynomials positive under the hypotheses, e.g. the leading principal
        minors of an SPD matrix (Sylvester's criterion).  Each is divided out
        as often as it divides (at most 16 times).

    Returns
    -------
    Verdict
        ``"positivity-proved"`` (error 0) when every entry is a positive
        rational times a product of ``positives``; ``"undecided"`` (error
        ``inf``) otherwise: the factorisation did not show positivity, which
        does not show the opposite either.
    """
    t0 = time.perf_counter()
    ok = all(_positive_rational_after_division(e, positives) for e in _entries(expr))
    return Verdict(POSITIVITY_PROVED if ok else UNDECIDED, 0.0 if ok else math.inf,
                   time.perf_counter() - t0)
