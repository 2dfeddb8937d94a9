r"""Exact symbolic proofs of Lemma 2.1 for small batches (MATH.md §2).

For :math:`N \in \{1, 2, 3\}` and a logit matrix :math:`F` of :math:`N^2` free
real symbols,

.. math:: L_N(F) = -\frac1N\sum_i F_{ii} + \frac1{2N}\sum_i\log\sum_j e^{F_{ij}}
          + \frac1{2N}\sum_j\log\sum_i e^{F_{ij}},

sympy proves:

1. **value** :math:`L_N(c\,\mathbf 1\mathbf 1^T) = \log N` for a real symbol :math:`c`;
2. **shift invariance** :math:`L_N(F + c) - L_N(F) = 0`;
3. **permutation invariance** :math:`L_N(PFP^T) - L_N(F) = 0` for every one
   of the :math:`N!` permutations;
4. **non-negativity**, in two steps: the identity

   .. math:: L_N = \frac1{2N}\sum_i\log\Big(1 + \sum_{j\ne i}e^{F_{ij}-F_{ii}}\Big)
             + \frac1{2N}\sum_j\log\Big(1 + \sum_{i\ne j}e^{F_{ij}-F_{jj}}\Big)

   (residual proved zero), and each logarithm's argument exceeds 1, so each
   term is positive (sympy's assumption system, from :math:`e^x > 0` for real
   :math:`x`); for :math:`N = 1` both sums are empty and :math:`L_1 = 0`;
5. **gradient** :math:`\partial L_N/\partial F = (P + Q)/(2N) - I/N` with
   :math:`P`, :math:`Q` the row and column softmax (the note of Lemma 2.1);
6. **the converse fails**: :math:`F = [[0, \log 2], [-\log 3, 0]]` gives
   :math:`L_2 = \log 2` exactly.

Identities are decided by a normal form: inside every logarithm the argument
is expanded (:math:`e^{a+b} = e^ae^b`), put over a common denominator and its
common factors pulled out, then :func:`sympy.expand_log` with ``force=True``
splits :math:`\log(e^{a}X/e^{b}) = a - b + \log X`, which is valid here because
every logarithm's argument is a sum of exponentials of reals, hence positive;
the residual is zero when the expanded result is the number 0 (logarithms of
the same canonical sum are the same sympy atom).
This module imports neither ``numerics`` nor ``proofs_checks``.
"""
from __future__ import annotations

import itertools
import math
import time
from functools import lru_cache

import mpmath
import sympy as sp

from .identities import IDENTITY_PROVED, POSITIVITY_PROVED, UNDECIDED
from .symbolic import Proof, Verdict

__all__ = ["BATCH_SIZES", "logit_matrix", "finite_sample_loss", "lemma_2_1_proofs",
           "lambdified_loss"]

#: Batch sizes of the proofs.
BATCH_SIZES = (1, 2, 3)

_STATEMENT = "Lemma 2.1"


def logit_matrix(N: int) -> sp.Matrix:
    """An ``N x N`` matrix of free real symbols ``F_ij``."""
    return sp.Matrix(N, N, lambda i, j: sp.Symbol(f"F{i + 1}{j + 1}", real=True))


def finite_sample_loss(F: sp.Matrix):
    r""":math:`L_N(F)` of MATH.md §2 as an explicit sympy expression."""
    N = F.shape[0]
    rows = sum(sp.log(sum(sp.exp(F[i, j]) for j in range(N))) for i in range(N))
    cols = sum(sp.log(sum(sp.exp(F[i, j]) for i in range(N))) for j in range(N))
    return -sum(F[i, i] for i in range(N)) / N + (rows + cols) / (2 * N)


def _normal_form(expr):
    """The normal form of the module docstring (valid for positive log arguments)."""
    def split(lg):
        arg = sp.factor_terms(sp.together(sp.expand(lg.args[0])))
        return sp.expand_log(sp.log(arg), force=True)

    return sp.expand(sp.sympify(expr).replace(lambda x: isinstance(x, sp.log), split))


def _zero(expr) -> Verdict:
    """Prove ``expr`` (scalar or sequence) identically zero, see the module docstring."""
    t0 = time.perf_counter()
    entries = list(expr) if isinstance(expr, (list, tuple, sp.MatrixBase)) else [expr]
    ok = all(_normal_form(e) == 0 for e in entries)
    return Verdict(IDENTITY_PROVED if ok else UNDECIDED, 0.0 if ok else math.inf, time.perf_counter() - t0)


def _proof(claim, N, verdict, **detail):
    return Proof(_STATEMENT, f"N={N}: {claim}", None, verdict, detail)


@lru_cache(maxsize=None)
def lemma_2_1_proofs(N: int) -> tuple:
    """The proofs 1-5 of the module docstring for batch size ``N`` (and 6 for N = 2)."""
    if N not in BATCH_SIZES:
        raise ValueError(f"N={N!r}: expected one of {BATCH_SIZES}")
    F = logit_matrix(N)
    L = finite_sample_loss(F)
    c = sp.Symbol("c", real=True)
    out = [
        _proof("L_N(c 11^T) = log N", N, _zero(finite_sample_loss(c * sp.ones(N, N)) - sp.log(N))),
        _proof("L_N(F + c) = L_N(F)", N, _zero(finite_sample_loss(F + c * sp.ones(N, N)) - L)),
    ]
    perms = []
    for p in itertools.permutations(range(N)):
        P = sp.zeros(N, N)
        for i, j in enumerate(p):
            P[i, j] = 1
        perms.append(finite_sample_loss(P * F * P.T) - L)
    out.append(_proof(f"L_N(P F P^T) = L_N(F) for all {len(perms)} permutations P", N, _zero(perms)))
    rows = [sp.log(1 + sum(sp.exp(F[i, j] - F[i, i]) for j in range(N) if j != i)) for i in range(N)]
    cols = [sp.log(1 + sum(sp.exp(F[i, j] - F[j, j]) for i in range(N) if i != j)) for j in range(N)]
    identity = _zero(L - (sum(rows) + sum(cols)) / (2 * N))
    t0 = time.perf_counter()
    terms = [t for t in rows + cols if t != 0]
    positive = all(t.is_positive for t in terms)
    sign = Verdict(POSITIVITY_PROVED if positive else UNDECIDED, 0.0 if positive else math.inf,
                   time.perf_counter() - t0)
    out.append(_proof("L_N = sum of log(1 + sum of exp(F_ij - F_ii)) / 2N (identity)", N, identity))
    out.append(_proof("each log(1 + sum of exp) > 0, hence L_N >= 0", N, sign,
                      terms=len(terms)))
    Pm = sp.Matrix(N, N, lambda i, j: sp.exp(F[i, j]) / sum(sp.exp(F[i, k]) for k in range(N)))
    Qm = sp.Matrix(N, N, lambda i, j: sp.exp(F[i, j]) / sum(sp.exp(F[k, j]) for k in range(N)))
    grad = sp.Matrix(N, N, lambda i, j: sp.diff(L, F[i, j]))
    out.append(_proof("dL_N/dF = (P + Q)/(2N) - I/N", N,
                      _zero(grad - (Pm + Qm) / (2 * N) + sp.eye(N) / N)))
    if N == 2:
        Fc = sp.Matrix([[0, sp.log(2)], [-sp.log(3), 0]])
        out.append(_proof("converse fails: F = [[0, log 2], [-log 3, 0]] gives L_2 = log 2", N,
                          _zero(sp.nsimplify(finite_sample_loss(Fc)) - sp.log(2))))
    return tuple(out)


@lru_cache(maxsize=None)
def _lambdified(N: int):
    F = logit_matrix(N)
    L = finite_sample_loss(F)
    grad = [sp.diff(L, F[i, j]) for i in range(N) for j in range(N)]
    args = list(F)
    return (sp.lambdify(args, L, modules="mpmath"), sp.lambdify(args, grad, modules="mpmath"))


def lambdified_loss(N: int, *, digits: int = 40):
    r"""``(loss, grad)``: float functions of an ``N x N`` array evaluating the symbolic
    :math:`L_N` and its derivative :math:`\partial L_N/\partial F` in mpmath at
    ``digits`` decimal digits, from the exact binary values of the inputs."""
    f_loss, f_grad = _lambdified(N)

    def args(F):
        return [mpmath.mpf(float(F[i][j])) for i in range(N) for j in range(N)]

    def loss(F):
        with mpmath.workdps(digits):
            return float(f_loss(*args(F)))

    def grad(F):
        with mpmath.workdps(digits):
            g = f_grad(*args(F))
            return [[float(g[i * N + j]) for j in range(N)] for i in range(N)]

    return loss, grad
