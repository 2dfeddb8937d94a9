r"""The one minimiser over encoder factors (no SVD formula), and its helpers.

Every optimisation of the toolkit goes through :func:`minimize_factors`:
BFGS (or L-BFGS-B for many parameters) over a pair of linear encoders
:math:`G_u \in R^{n_e\times n_u}`, :math:`G_v \in R^{n_e\times n_v}` from several
starts, the best final value kept, with one meaning of *converged*
(:func:`is_converged`, :data:`FactorFit.converged`).
Proposition G1 predicts the minimiser of :math:`L_{clip}(G_u^T G_v)`; the
functions here find minimisers by optimisation alone, so that the prediction
can be held against them.

Objectives are callables ``objective(G_u, G_v) -> (value, (dG_u, dG_v))``.
:func:`bilinear_objective` lifts a loss of :math:`A = G_u^T G_v` to one (chain
rule :math:`\partial_{G_u} = G_v (\partial_A L)^T`, :math:`\partial_{G_v} = G_u \partial_A L`),
and :func:`minimize_over_factors` is that composition;
:func:`linear_encoder_objective` lifts a loss of the embeddings of data
(:math:`z_a = x_u G_u^T`) in the same way.  :func:`fit_population_clip` and
:func:`fit_population_cond` are the minimisations the verifier holds against
Proposition G1 and Theorem 2.8.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import minimize

from . import gaussian
from ._validation import as_choice, as_count, as_float_array, as_latent_dim, as_rng, fail

__all__ = [
    "FactorFit",
    "METHODS",
    "minimize_factors",
    "minimize_over_factors",
    "bilinear_objective",
    "linear_encoder_objective",
    "fit_population_clip",
    "fit_population_cond",
    "balanced_factors",
    "finite_difference_grad",
    "finite_difference_hessian",
    "finite_difference_objective",
    "is_converged",
]


@dataclass
class FactorFit:
    r"""Result of :func:`minimize_factors`.

    Attributes
    ----------
    G_u : ndarray, shape (n_e, n_u)
    G_v : ndarray, shape (n_e, n_v)
        Encoders at the best start.
    value : float
        Objective at the best start.
    start_values : ndarray, shape (starts,)
        Final value of every start (the landscape diagnostic).
    grad_norm : float
        Largest absolute entry of the gradient in ``(G_u, G_v)`` at the best start.
    converged : bool
        Whether the best start is stationary, in the sense of :func:`is_converged`.
    n_iter : int
        Iterations of the best start (stages and restarts included).
    messages : list of str
        SciPy's final message of every start, in order.
    hess_inv : ndarray or None
        BFGS inverse-Hessian estimate at the best start, in the flattened
        parameters ``[G_u.ravel(), G_v.ravel(), extra]`` (a warm start for a
        related fit); None under L-BFGS-B.
    extra : ndarray, shape (n_extra,)
        The loss's own scalars learned with the encoders (empty by default).
    start_factors : list of (G_u, G_v)
        Final encoders of every start, in order.
    cause : str or None
        Why a fit has no stationarity certificate, set by the nonsmooth phase of
        :func:`numerics.batch_fit.fit_batch` (:data:`numerics.nonsmooth.CAUSES`); None here.
    nonsmooth : numerics.nonsmooth.NonsmoothResult or None
        That phase's result, when it ran.
    """

    G_u: np.ndarray
    G_v: np.ndarray
    value: float
    start_values: np.ndarray
    grad_norm: float
    converged: bool
    n_iter: int
    messages: list = field(default_factory=list)
    hess_inv: np.ndarray | None = None
    extra: np.ndarray = field(default_factory=lambda: np.zeros(0))
    start_factors: list = field(default_factory=list)
    cause: str | None = None
    nonsmooth: object = None

    @property
    def A(self) -> np.ndarray:
        r"""The bilinear invariant :math:`A = G_u^T G_v`, shape (n_u, n_v)."""
        return self.G_u.T @ self.G_v

    @property
    def x(self) -> np.ndarray:
        """The flattened parameters ``[G_u.ravel(), G_v.ravel(), extra]``."""
        return np.concatenate([self.G_u.ravel(), self.G_v.ravel(), self.extra])


#: The minimisers of :func:`minimize_factors`: dense BFGS, and L-BFGS-B for many parameters.
METHODS = ("BFGS", "L-BFGS-B")
#: L-BFGS-B's memory (correction pairs; SciPy's default is 10, the notebooks' fits of about
#: a thousand encoder entries were tuned with 30) and its stopping tolerance on the
#: relative decrease of one iteration: a few ``eps``, so that it stops only where rounding
#: hides the decrease, the counterpart of BFGS's stop on precision loss (:func:`is_converged`).
LBFGS_MEMORY, LBFGS_FTOL = 30, 1e-15
#: SciPy's stops on "no decrease above rounding": BFGS's precision loss; L-BFGS-B's
#: relative decrease below ``ftol`` (:data:`LBFGS_FTOL`) or failed line search.
ROUNDING_STOPS = ("precision", "RELATIVE REDUCTION OF F", "ABNORMAL")


def is_converged(success: bool, message: str, grad_inf: float, value: float, gtol: float) -> bool:
    r"""The toolkit's one meaning of a converged BFGS (or L-BFGS-B) run.

    Converged iff the gradient test :math:`\|\nabla\|_\infty \le` ``gtol`` holds,
    or the run stopped because no decrease above rounding was left (BFGS's
    *precision loss*, L-BFGS-B's relative reduction below :data:`LBFGS_FTOL` or
    abnormal line search: :data:`ROUNDING_STOPS`) with the gradient at the rounding floor,

    .. math:: \|\nabla\|_\infty \le \sqrt{2\,\epsilon\,\max(1, |f|)}.

    Why that floor: near a minimum of unit curvature the decrease still
    available is :math:`\|\nabla\|^2/2`, which rounding of :math:`f` hides once it
    is below :math:`\epsilon\max(1,|f|)`.  Such a stop with a
    larger gradient (a failed line search away from a stationary point) is
    *not* converged, nor is a stop on the iteration limit.
    """
    if success and grad_inf <= gtol:
        return True
    floor = math.sqrt(2.0 * np.finfo(np.float64).eps * max(1.0, abs(value)))
    return any(stop in message for stop in ROUNDING_STOPS) and grad_inf <= max(gtol, floor)


def finite_difference_grad(loss: Callable[[np.ndarray], float], A: np.ndarray) -> np.ndarray:
    r"""Central finite-difference gradient of ``loss`` at ``A`` (any shape).

    Step :math:`h_{ij} = \epsilon^{1/3} \max(1, |A_{ij}|)`, which balances the
    :math:`O(h^2)` truncation error against the :math:`O(\epsilon/h)` rounding
    error; the gradient is accurate to about :math:`\epsilon^{2/3} \approx 4\cdot10^{-11}`
    relative for smooth losses of unit scale.
    """
    A = np.asarray(A, dtype=np.float64)
    g = np.empty_like(A)
    base = np.finfo(np.float64).eps ** (1 / 3)
    it = np.nditer(A, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        h = base * max(1.0, abs(A[idx]))
        Ap = A.copy()
        Am = A.copy()
        Ap[idx] += h
        Am[idx] -= h
        g[idx] = (loss(Ap) - loss(Am)) / (2 * h)
    return g


def finite_difference_hessian(grad: Callable[[np.ndarray], np.ndarray], x0, step: float = 1e-5):
    r"""Symmetrised central-difference Jacobian of ``grad`` at ``x0``; returns ``(H, h)``.

    Step :math:`h = \text{step}\cdot\max(1, \|x_0\|_\infty)`: the error is
    :math:`O(h^2)` truncation plus :math:`O(\epsilon\|\nabla\|/h)` rounding, which
    :func:`proofs_checks.tolerances.finite_difference_hessian_tolerance` bounds.
    """
    x0 = np.asarray(x0, dtype=np.float64)
    h = step * max(1.0, float(np.max(np.abs(x0))))
    H = np.array([(grad(x0 + h * e) - grad(x0 - h * e)) / (2 * h) for e in np.eye(x0.size)])
    return 0.5 * (H + H.T), h


def finite_difference_objective(value: Callable[[np.ndarray, np.ndarray], float]):
    r"""Objective for :func:`minimize_factors` from ``value(G_u, G_v) -> float`` alone, with
    central differences in the factor entries (step :math:`\epsilon^{1/3}\max(1, |x_i|)`)."""
    eps3 = np.finfo(np.float64).eps ** (1 / 3)

    def objective(G_u, G_v):
        x = np.concatenate([G_u.ravel(), G_v.ravel()])
        split = lambda y: (y[: G_u.size].reshape(G_u.shape), y[G_u.size:].reshape(G_v.shape))  # noqa: E731
        g = np.empty_like(x)
        for i in range(x.size):
            h = eps3 * max(1.0, abs(x[i]))
            xp, xm = x.copy(), x.copy()
            xp[i] += h
            xm[i] -= h
            g[i] = (value(*split(xp)) - value(*split(xm))) / (2 * h)
        return value(G_u, G_v), split(g)

    return objective


def balanced_factors(A, n_e: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The balanced factorisation of ``A``: :math:`G_u = (P_{n_e} S^{1/2})^T`,
    :math:`G_v = S^{1/2} Q_{n_e}^T` from the SVD :math:`A = P S Q^T`.

    :math:`G_u^T G_v` is the best rank-:math:`n_e` approximation of ``A`` (``A``
    itself when its rank is at most :math:`n_e`), and both factors have the same
    singular values :math:`\sqrt{s_i}`.  Returns ``(G_u, G_v)`` of shapes
    ``(n_e, n_u)`` and ``(n_e, n_v)``.
    """
    A = as_float_array("A", A, ndim=2).astype(np.float64, copy=False)
    n_e = as_latent_dim(n_e, A.shape[0], A.shape[1])
    P, s, Qt = np.linalg.svd(A, full_matrices=False)
    r = np.sqrt(s[:n_e])
    return (P[:, :n_e] * r).T, r[:, None] * Qt[:n_e]


def bilinear_objective(loss: Callable[[np.ndarray], float],
                       grad: Callable[[np.ndarray], np.ndarray] | None = None):
    r"""Lift ``loss(A) -> float`` (and ``grad(A) -> dL/dA``, central differences
    :func:`finite_difference_grad` if omitted) to an objective of the factors
    :math:`A = G_u^T G_v`: ``objective(G_u, G_v) -> (value, (G_v ∇ᵀ, G_u ∇))``."""
    if not callable(loss):
        raise fail("loss", loss, "a callable loss(A) -> float")
    if grad is not None and not callable(grad):
        raise fail("grad", grad, "a callable grad(A) -> dL/dA, or None")
    gfun = grad if grad is not None else (lambda A: finite_difference_grad(loss, A))

    def objective(G_u, G_v):
        A = G_u.T @ G_v
        gA = np.asarray(gfun(A), dtype=np.float64)
        return loss(A), (G_v @ gA.T, G_u @ gA)

    return objective


def linear_encoder_objective(objective, xu, xv):
    r"""Lift ``objective(za, zb) -> (value, dza, dzb)``, a loss of the embeddings
    :math:`z_a = x_u G_u^T`, :math:`z_b = x_v G_v^T` of data rows, to an objective of the
    encoders: ``objective(G_u, G_v) -> (value, (dza^T x_u, dzb^T x_v))`` (chain rule
    :math:`\partial_{G_u} = (\partial L/\partial z_a)^T x_u`).

    ``xu`` (N, n_u) and ``xv`` (N_v, n_v) are the rows of the two inputs; the loss decides
    how they are paired (``N_v = N`` for pairs).
    """
    if not callable(objective):
        raise fail("objective", objective, "a callable objective(za, zb) -> (value, dza, dzb)")
    xu = as_float_array("xu", xu, ndim=2).astype(np.float64, copy=False)
    xv = as_float_array("xv", xv, ndim=2).astype(np.float64, copy=False)

    def lifted(G_u, G_v):
        value, dza, dzb = objective(xu @ G_u.T, xv @ G_v.T)
        return value, (np.asarray(dza).T @ xu, np.asarray(dzb).T @ xv)

    return lifted


def _as_positive(name, x):
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) \
            or not np.isfinite(x) or x <= 0:
        raise fail(name, x, "a finite number > 0")
    return float(x)


def _as_init(init, n_u, n_v, n_e, n_extra=0):
    expected = f"a pair (G_u, G_v) of shapes ({n_e}, {n_u}) and ({n_e}, {n_v})"
    shapes = [(n_e, n_u), (n_e, n_v)]
    if n_extra:
        expected = expected.replace("a pair (G_u, G_v)", "a triple (G_u, G_v, extra)") + f" and ({n_extra},)"
        shapes.append((n_extra,))
    if not isinstance(init, (tuple, list)) or len(init) != len(shapes):
        raise fail("init", init, expected)
    out = []
    for k, (G, shape) in enumerate(zip(init, shapes)):
        G = as_float_array(f"init[{k}]", G).astype(np.float64, copy=False)
        if G.shape != shape:
            raise fail(f"init[{k}]", G, expected)
        out.append(G)
    return out


def _as_scales(init_scale):
    """``init_scale`` as the pair (scale of G_u's entries, scale of G_v's)."""
    if isinstance(init_scale, (tuple, list)):
        if len(init_scale) != 2:
            raise fail("init_scale", init_scale, "a finite number > 0, or a pair of them (G_u, G_v)")
        return tuple(_as_positive("init_scale", x) for x in init_scale)
    x = _as_positive("init_scale", init_scale)
    return x, x


def _positive_definite(H, floor=1e-8):
    """Symmetric part of ``H`` with its eigenvalues raised to ``floor`` times the largest.

    BFGS's inverse-Hessian estimate is positive definite in exact arithmetic;
    along the invariances of the loss (flat directions) rounding can leave it
    barely indefinite, which SciPy refuses as a starting estimate.
    """
    w, Q = np.linalg.eigh(0.5 * (H + H.T))
    P = (Q * np.maximum(w, floor * w.max())) @ Q.T
    return 0.5 * (P + P.T)  # exactly symmetric, as SciPy checks


def minimize_factors(objective, n_u: int, n_v: int, n_e: int, *, starts: int = 4,
                     rng: np.random.Generator | None = None, init=None, init_scale=0.5,
                     gtol: float = 1e-10, maxiter: int = 5000, restarts: int = 2,
                     rebalance: bool = False, hess_inv: np.ndarray | None = None,
                     warn: bool = True, n_extra: int = 0, method: str = "BFGS",
                     stages=(), wide: bool = False) -> FactorFit:
    r"""Minimise ``objective(G_u, G_v) -> (value, (dG_u, dG_v))`` over linear encoders
    :math:`G_u \in R^{n_e\times n_u}`, :math:`G_v \in R^{n_e\times n_v}` by BFGS.

    Dense BFGS by default: with at most a few dozen parameters the
    inverse-Hessian update is cheap, and it was 12x faster than SciPy's
    L-BFGS-B for the same final accuracy on the default models.  Its update
    costs two dense products of the size of the inverse Hessian per iteration,
    about a second for a thousand parameters: there ``method="L-BFGS-B"``.

    Parameters
    ----------
    objective : callable
        ``objective(G_u, G_v) -> (value, (dG_u, dG_v))``, gradients of the
        factors' shapes (for example :func:`bilinear_objective`).
    n_u, n_v, n_e : int
        Input dimensions and latent dimension (``1 <= n_e <= min(n_u, n_v)``
        unless ``wide``).
    starts : int
        Number of starts; the best final value is kept.
    rng : numpy.random.Generator, optional
        Source of the random starts (``default_rng(0)`` if omitted).
    init : (G_u, G_v), optional
        First start (a warm start); the other ``starts - 1`` are random.
    init_scale : float or (float, float)
        Standard deviation of the Gaussian entries of a random start (a pair:
        of :math:`G_u`'s entries and of :math:`G_v`'s).  A start draws all its
        entries at once, ``[G_u.ravel(), G_v.ravel()]``, from ``rng``.
    gtol : float
        Stopping tolerance on :math:`\|\nabla\|_\infty`.
    maxiter : int
        Iteration limit per run (and per stage).
    restarts : int
        Further runs from the end point of a run that did not converge
        (:func:`is_converged`), with a fresh inverse Hessian.
    rebalance : bool
        Restart from the balanced factorisation (:func:`balanced_factors`) of
        the same :math:`A = G_u^T G_v` instead of the end point.  Only for
        objectives of :math:`A` alone: there the usual cause of a failed line
        search is drift along the invariance :math:`(G_u, G_v) \to (MG_u, M^{-T}G_v)`,
        which leaves the value unchanged but the problem ill conditioned.
    hess_inv : ndarray, optional
        Initial inverse Hessian of the first start (for example
        :attr:`FactorFit.hess_inv` of a related fit); its symmetric part is
        used, and it is ignored unless it is finite, of the parameters' size and
        (that symmetric part) positive definite.  BFGS only.
    warn : bool
        Emit a :class:`RuntimeWarning` when the best start did not converge.
    n_extra : int
        Scalars of the loss itself (a learnable temperature or bias) minimised
        jointly with the encoders: the objective is then
        ``objective(G_u, G_v, extra) -> (value, (dG_u, dG_v, d_extra))``, ``init``
        a triple, and random starts begin the scalars at zero.
    method : {"BFGS", "L-BFGS-B"}
        L-BFGS-B (memory :data:`LBFGS_MEMORY`, ``ftol`` :data:`LBFGS_FTOL`, no
        bounds) for many parameters; it has no inverse Hessian to seed or return.
    stages : sequence of callables
        Continuation: each start first minimises ``stages[0]`` (one run, no
        restarts), then ``stages[1]`` from where that ended, and so on, and last
        ``objective`` (for example the same loss on growing subsets of the data,
        so that the expensive last fit starts close to its minimum).  Under BFGS
        the inverse-Hessian estimate is carried from stage to stage (made positive
        definite, :func:`_positive_definite`): a mean over data has about the same
        curvature on a subset.  Values, gradients and convergence are those of ``objective``.
    wide : bool
        Allow any ``n_e >= 1``, encoders wider than an input: for objectives of the
        embeddings (:func:`linear_encoder_objective`, cosine logits), where the extra
        dimensions are not redundant as they are for a function of :math:`A` alone.
        Not with ``rebalance``.

    Returns
    -------
    FactorFit

    Raises
    ------
    numerics.InvalidInputError
        Non-callable ``objective`` or stage, dimensions or counts out of range, an
        ``init`` of the wrong shapes, a non-positive ``init_scale``/``gtol``,
        ``rng`` not a Generator, an unknown ``method``, ``hess_inv`` under L-BFGS-B.
    """
    if not callable(objective):
        raise fail("objective", objective, "a callable objective(G_u, G_v) -> (value, (dG_u, dG_v))")
    n_u, n_v = as_count(n_u, "n_u", 1), as_count(n_v, "n_v", 1)
    n_e = as_count(n_e, "n_e", 1) if wide else as_latent_dim(n_e, n_u, n_v)
    starts = as_count(starts, "starts", 1)
    maxiter = as_count(maxiter, "maxiter", 1)
    restarts = as_count(restarts, "restarts", 0)
    (scale_u, scale_v), gtol = _as_scales(init_scale), _as_positive("gtol", gtol)
    rng = np.random.default_rng(0) if rng is None else as_rng(rng)
    n_extra = as_count(n_extra, "n_extra", 0)
    method = as_choice(method, METHODS, "method")
    if not isinstance(stages, (tuple, list)) or not all(callable(f) for f in stages):
        raise fail("stages", stages, "a sequence of objectives like objective")
    if (n_extra or wide) and rebalance:
        raise fail("rebalance", rebalance, "False when the objective has extra scalars or n_e is wide")
    if hess_inv is not None and method != "BFGS":
        raise fail("hess_inv", hess_inv, "None under L-BFGS-B (no inverse Hessian to seed)")
    if init is not None:
        init = _as_init(init, n_u, n_v, n_e, n_extra)
    nu, ng = n_e * n_u, n_e * (n_u + n_v)

    def fun(x, f):
        if n_extra:
            val, grads = f(x[:nu].reshape(n_e, n_u), x[nu:ng].reshape(n_e, n_v), x[ng:])
        else:
            val, grads = f(x[:nu].reshape(n_e, n_u), x[nu:].reshape(n_e, n_v))
        return float(val), np.concatenate([np.ravel(g) for g in grads])

    def run(x0, H0, f=objective):
        if method == "L-BFGS-B":
            opts = {"gtol": gtol, "maxiter": maxiter, "maxcor": LBFGS_MEMORY, "ftol": LBFGS_FTOL}
        else:
            opts = {"gtol": gtol, "maxiter": maxiter}
        if H0 is not None and np.shape(H0) == (x0.size, x0.size) and np.all(np.isfinite(H0)):
            H = 0.5 * (H0 + H0.T)
            try:
                np.linalg.cholesky(H)
                opts["hess_inv0"] = H
            except np.linalg.LinAlgError:
                pass  # a metric spoilt by rounding: start from the identity instead
        with np.errstate(over="ignore", invalid="ignore"):
            res = minimize(fun, x0, args=(f,), jac=True, method=method, options=opts)
        g_inf = float(np.max(np.abs(res.jac))) if res.jac is not None else np.inf
        return res, is_converged(bool(res.success), str(res.message), g_inf, float(res.fun), gtol), g_inf

    best = None
    values, messages, factors = [], [], []
    for k in range(starts):
        if k == 0 and init is not None:
            x0 = np.concatenate([np.ravel(g) for g in init])
        else:
            z = rng.standard_normal(ng)
            x0 = np.concatenate([scale_u * z[:nu], scale_v * z[nu:], np.zeros(n_extra)])
        H0, nit = (hess_inv if k == 0 else None), 0
        for stage in stages:
            res = run(x0, H0, stage)[0]
            x0, nit = res.x, nit + int(res.nit)
            H = getattr(res, "hess_inv", None) if method == "BFGS" else None
            H0 = _positive_definite(H) if H is not None and np.all(np.isfinite(H)) else None
        res, ok, g_inf = run(x0, H0)
        nit += int(res.nit)
        for _ in range(restarts):
            if ok:
                break
            x = res.x
            if rebalance:
                G_u, G_v = balanced_factors(x[:nu].reshape(n_e, n_u).T @ x[nu:].reshape(n_e, n_v), n_e)
                x = np.concatenate([G_u.ravel(), G_v.ravel()])
            res, ok, g_inf = run(x, None)
            nit += int(res.nit)
        values.append(float(res.fun))
        messages.append(str(res.message))
        factors.append((res.x[:nu].reshape(n_e, n_u).copy(), res.x[nu:ng].reshape(n_e, n_v).copy()))
        if best is None or res.fun < best[0].fun:
            best = (res, ok, g_inf, nit)
    res, ok, g_inf, nit = best
    if warn and not ok:
        warnings.warn(f"minimize_factors: best of {starts} starts did not converge ({res.message}); "
                      f"gradient max-norm {g_inf:.3g}", RuntimeWarning, stacklevel=2)
    hinv = getattr(res, "hess_inv", None) if method == "BFGS" else None
    return FactorFit(G_u=res.x[:nu].reshape(n_e, n_u).copy(), G_v=res.x[nu:ng].reshape(n_e, n_v).copy(),
                     value=float(res.fun), start_values=np.array(values), grad_norm=g_inf,
                     converged=ok, n_iter=nit, messages=messages,
                     hess_inv=None if hinv is None else np.asarray(hinv), extra=res.x[ng:].copy(),
                     start_factors=factors)


def minimize_over_factors(loss: Callable[[np.ndarray], float], n_u: int, n_v: int, n_e: int, *,
                          grad: Callable[[np.ndarray], np.ndarray] | None = None, starts: int = 6,
                          rng: np.random.Generator | None = None, init_scale: float = 0.5,
                          gtol: float = 1e-11, maxiter: int = 20000, restarts: int = 2) -> FactorFit:
    r"""Minimise ``loss(A)`` over :math:`A = G_u^T G_v` of rank at most :math:`n_e`:
    :func:`minimize_factors` of :func:`bilinear_objective` ``(loss, grad)``, with
    restarts from the balanced factorisation.

    The parametrisation enforces :math:`\operatorname{rank} A \le n_e` without any
    SVD.  ``grad(A) -> dL/dA`` is optional (central differences otherwise).
    Other parameters as in :func:`minimize_factors`.
    """
    return minimize_factors(bilinear_objective(loss, grad), n_u, n_v, n_e, starts=starts, rng=rng,
                            init_scale=init_scale, gtol=gtol, maxiter=maxiter, restarts=restarts,
                            rebalance=True)


# --------------------------------------------------------------------------
# the minimisations held against Proposition G1 and Theorem 2.8 (MATH.md §3, §4.1)
# --------------------------------------------------------------------------
def _as_model(model):
    if not all(hasattr(model, k) for k in ("cov", "n_u", "n_v", "n_e")):
        raise fail("model", model, "a Gaussian model with cov, n_u, n_v, n_e (numerics.models)")
    return model


def _fit_model(loss, grad, model, rng, starts):
    with warnings.catch_warnings():
        # The line search often ends with "precision loss" once the decrease is below
        # rounding; FactorFit.converged says whether that was at a stationary point.
        warnings.simplefilter("ignore", RuntimeWarning)
        return minimize_over_factors(loss, model.n_u, model.n_v, model.n_e,
                                     grad=grad, starts=starts, rng=rng)


def fit_population_clip(model, rng=None, *, starts: int = 4, clip_loss=gaussian.population_clip_loss,
                        clip_grad=gaussian.population_clip_loss_grad) -> FactorFit:
    r"""A minimiser of the population CLIP loss :math:`L_{clip}(G_u^TG_v)` over encoders of
    latent dimension ``model.n_e``, by optimisation alone (MATH.md §4.1; Proposition G1
    predicts it): :func:`minimize_over_factors` with the analytic gradient in :math:`A`.

    ``clip_loss(A, cov, n_u)`` and ``clip_grad(A, cov, n_u)`` default to
    :func:`numerics.gaussian.population_clip_loss` and its gradient; ``clip_grad=None``
    means central differences.  The warning of a fit that did not converge is not
    raised: read :attr:`FactorFit.converged`.
    """
    model = _as_model(model)
    return _fit_model(lambda A: clip_loss(A, model.cov, model.n_u),
                      None if clip_grad is None else (lambda A: clip_grad(A, model.cov, model.n_u)),
                      model, rng, starts)


def fit_population_cond(model, rng=None, *, starts: int = 3,
                        cond_loss=gaussian._conditional_loss) -> FactorFit:
    r"""A minimiser of the conditional loss :math:`L_{cond}(G_u^TG_v)` (MATH.md §3) over
    encoders of latent dimension ``model.n_e``, with central-difference gradients of its
    own formula (nothing borrowed from :math:`L_{clip}`).

    ``cond_loss(A, cov, n_u)`` defaults to the unvalidated
    ``numerics.gaussian._conditional_loss``: the model was validated once when it was
    built, and the finite differences call the loss ``2 n_u n_v`` times per gradient,
    where re-validating the covariance (a Cholesky and an eigendecomposition) would
    triple the run time.
    """
    model = _as_model(model)
    return _fit_model(lambda A: cond_loss(A, model.cov, model.n_u), None, model, rng, starts)
