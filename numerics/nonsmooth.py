r"""Stationarity of locally Lipschitz losses: kinks, clamps, ``max``, ``abs``, hinges, top-k.

A loss with a kink (Chuang et al.'s debiased loss clamps its negative term,
:math:`\max(N_g, N e^{-1/t})`; hinge, margin and top-k losses do the same) is not
differentiable where its minimisers typically lie.  BFGS then stalls at the kink
with a gradient that does not vanish, and the test :math:`\|\nabla f\|\le` ``gtol``
(:func:`numerics.optimize.is_converged`) can never pass.  The right notion is
Clarke stationarity, and its computable form (Burke, Lewis & Overton 2005):

.. math::

    \operatorname{dist}\bigl(0,\ \operatorname{conv}\{\nabla f(y) : |y - x| \le \epsilon,\
    f \text{ differentiable at } y\}\bigr) \le \nu ,

*Clarke* :math:`(\epsilon, \nu)`-*stationarity*.  Every gradient sampled in the
:math:`\epsilon`-ball belongs to the :math:`\epsilon`-Clarke subdifferential, so the
min-norm element of the convex hull of the *sampled* gradients bounds the true
distance from above: a small one is a certificate, not a heuristic (for exact
gradients; for differenced ones see :func:`checked_finite_difference_grad`).  At a
smooth point it reduces to :math:`\|\nabla f(x)\| \le \nu + O(\|H\|\epsilon)`.

:func:`gradient_sampling` is the phase that runs after BFGS stalls, as in HANSO
(Lewis & Overton's hybrid: BFGS, then gradient sampling at radii 1e-4, 1e-5, 1e-6,
:math:`\min(100, 2n, n + 10)` gradients per iterate; here :math:`\min(100, n + 2)`,
:data:`SAMPLES_OVER_N`, with the earlier gradients that still lie in the ball).  PyGRANSO, its PyTorch port,
was considered and not taken: it is AGPL-licensed, needs torch for every loss, and
is built for constrained problems with thousands of variables, while these fits
have 4 to a few dozen parameters and any backend.  The min-norm element is one
non-negative least-squares problem (:func:`min_norm_element`, exact, no penalty
weight).  Gradients whose sample point is still in the current ball are reused
(Curtis & Que's adaptive sampling), which makes a step from a nearly certified point
cost a few gradients instead of :math:`2n`.

Why a replicate may still have no certificate (:data:`CAUSES`): the line search
failed at the smallest radius with the min-norm element above ``tol`` (*kink not
resolved*), the iterate ran off (*unbounded direction*), or the iteration budget
ran out (*iteration limit*).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import nnls

__all__ = ["CAUSES", "CLARKE_TOL", "RADII", "FIT_RADII", "FD_RADII", "RUNOFF", "KINK_SLOPE_RTOL", "KINK_CURVATURE_RTOL",
           "NonsmoothResult", "min_norm_element", "checked_finite_difference_grad", "straddles_kink",
           "gradient_sampling"]

#: :math:`\nu`, the bound on the min-norm element of a batch fit's certificate.  Its point
#: is within :math:`\nu/\mu` of a stationary one along a smooth direction of curvature
#: :math:`\mu` (about 1e-4 for :math:`\mu \ge 0.1` on the default models), a thousand
#: times below a replicate's noise (paired spread about 0.1) and 400 below the 5 %
#: margin.  Against 1e-6 (the smooth fits' ``gtol``) it saved a third of the gradients
#: on six debiased-loss fits (1096 against 1708), with the same values to 1e-7.
CLARKE_TOL = 1e-5
#: Why a fit has no stationarity certificate (``PairedFit.cause``).
CAUSES = ("kink not resolved", "unbounded direction", "iteration limit")
#: Sampling radii, relative to :math:`\max(1, \|x\|_\infty)`, for exact gradients
#: (HANSO's defaults).  At 1e-6 the certified point is within 1e-6 of points whose
#: gradients average to :math:`\le\nu`: a statistic moves by about 1e-6 of its
#: size, four orders below the margin.
RADII = (1e-4, 1e-5, 1e-6)
#: Radii of a batch fit's certificate (:func:`numerics.batch_fit.nonsmooth_phase`, exact
#: gradients): the first of :data:`RADII` alone.  A fit's statistic needs its point to
#: 1e-4 of its scale (500 times below the default 5 % margin, a thousand times below a
#: replicate's noise), not 1e-6.  On the kinked calibration family (max of the two
#: InfoNCE directions, seed 0: 104 fits with a nonsmooth phase) it cut a verdict from 46 s
#: to 33 s, and every model's relative distance and bounds agreed with HANSO's three radii to 1e-5.
FIT_RADII = RADII[:1]
#: Radii for differenced gradients: the difference step is
#: :math:`h = \epsilon^{1/3} \approx 6\cdot10^{-6}` (relative), and a sample's
#: stencil must be small against the ball, else nearly every sample straddles the
#: kink the ball is centred on; 1e-4 is about 16 h (a statistic moves by 1e-4 of
#: its size, still 500 times below the default 5 % margin).
FD_RADII = (1e-2, 1e-3, 1e-4)
#: An iterate farther than this many times :math:`\max(1, \|x_0\|)` from the start
#: has run off along a direction in which the batch loss decreases without bound.
RUNOFF = 10.0
#: Armijo constant and shortest step (relative to the radius) of the line search.
ARMIJO, MIN_STEP = 1e-4, 1e-2
#: Fresh hulls drawn at one radius after a failed line search before the radius is
#: reduced (or, at the last, the kink declared unresolved): with :math:`m` samples a
#: hull misses one side of a kink through its centre with probability :math:`2^{1-m}`,
#: but one near its edge far more often.
RESAMPLES = 3
#: Longest trial step, relative to :math:`\max(1, \|x\|_\infty)` (a run-off still
#: reaches :data:`RUNOFF` times the start's scale in a few iterations, growing geometrically).
TRUST = 0.5
#: Fresh gradients per hull beyond the dimension: :math:`m = \min(100, n + 2)`.  The
#: convergence theory (Burke, Lewis & Overton; Kiwiel) needs :math:`m \ge n + 1`, and the
#: in-ball gradients of earlier iterates come on top.  HANSO's :math:`\min(100, 2n, n + 10)`
#: certified the same six debiased-loss fits (N = 256, the three default models) with
#: 3214 gradients in all, :math:`n + 2` with 1708.
SAMPLES_OVER_N = 2
#: A differenced slope straddles a kink when its central differences at steps
#: :math:`h` and :math:`2h` differ by more than this (relative to
#: :math:`\max(1, |f|)`): for a smooth loss they differ by
#: :math:`h^2|f'''|/2 + 3\cdot64\,\epsilon|f|/h \lesssim 2\cdot10^{-8}` for
#: :math:`|f'''| \le 10^3`, while a slope jump :math:`J` at distance
#: :math:`d \in (0, 2h)` makes them differ by :math:`J\min(d, 2h - d)/(4h)`.
KINK_SLOPE_RTOL = 1e-7
#: ... or when the second differences at :math:`h` and :math:`2h` differ by more than
#: this (relative to :math:`\max(1, |f|)`): rounding gives
#: :math:`5\cdot 64\,\epsilon|f|/h^2 \approx 2\cdot10^{-3}|f|`, a jump :math:`J` at
#: :math:`d \approx 0` gives :math:`J/(2h) \approx 8\cdot10^4 J` (the slope test is
#: blind at :math:`d = 0`, this one at :math:`d = 2h/3`, never both).
KINK_CURVATURE_RTOL = 1e-2


@dataclass
class NonsmoothResult:
    """Where :func:`gradient_sampling` ended.

    ``converged`` iff the Clarke :math:`(\\epsilon, \\nu)` certificate holds at the last
    radius (``stationarity <= tol``); otherwise ``cause`` is one of :data:`CAUSES`.
    ``stationarity`` is the norm of the min-norm element of the last sampled hull,
    ``radius`` the absolute radius it was sampled at, ``n_grad`` the gradients computed.
    """

    x: np.ndarray
    value: float
    converged: bool
    cause: str | None
    stationarity: float
    radius: float
    n_iter: int
    n_grad: int


def min_norm_element(G) -> tuple[np.ndarray, np.ndarray]:
    r"""The element of least Euclidean norm of the convex hull of the rows of ``G`` (m, n).

    Returns ``(g, lam)`` with ``g = lam @ G``, ``lam`` in the simplex.  Solved exactly as
    one non-negative least-squares problem: with :math:`\mu = s\lambda`,

    .. math:: \min_{\mu\ge0} \|G^T\mu\|^2 + (1 - 1^T\mu)^2
              = \min_{\lambda\in\Delta} \frac{\|G^T\lambda\|^2}{1 + \|G^T\lambda\|^2},

    increasing in :math:`\|G^T\lambda\|`, so :math:`\lambda = \mu/1^T\mu` is the min-norm
    combination (no penalty weight to tune).
    """
    G = np.atleast_2d(np.asarray(G, dtype=np.float64))
    m = G.shape[0]
    A = np.vstack([G.T, np.ones((1, m))])
    b = np.zeros(A.shape[0])
    b[-1] = 1.0
    mu, _ = nnls(A, b, maxiter=50 * max(m, A.shape[0]))
    s = float(mu.sum())
    lam = mu / s if s > 0 else np.full(m, 1.0 / m)
    return lam @ G, lam


def checked_finite_difference_grad(value: Callable[[np.ndarray], float], x, f0: float | None = None):
    r"""Central differences of ``value`` at ``x`` that know when they straddle a kink.

    Returns ``(g, kinked)``: ``g`` the central differences at step
    :math:`h_i = \epsilon^{1/3}\max(1, |x_i|)` (those of
    :func:`numerics.optimize.finite_difference_grad`), ``kinked`` a boolean per
    coordinate, True where the slopes at :math:`h` and :math:`2h`, or the second
    differences, disagree beyond what a smooth loss allows
    (:data:`KINK_SLOPE_RTOL`, :data:`KINK_CURVATURE_RTOL`): there ``g`` is an average of
    one-sided slopes, not a gradient.  Costs :math:`4n` values (plus ``f0`` if not given).
    """
    x = np.asarray(x, dtype=np.float64)
    f0 = float(value(x)) if f0 is None else float(f0)
    base = np.finfo(np.float64).eps ** (1 / 3)
    g = np.empty_like(x)
    kinked = np.zeros(x.size, dtype=bool)
    for i in range(x.size):
        h = base * max(1.0, abs(x[i]))
        f = {}
        for k in (-2, -1, 1, 2):
            y = x.copy()
            y[i] += k * h
            f[k] = float(value(y))
        g[i] = (f[1] - f[-1]) / (2 * h)
        kinked[i] = straddles_kink(f[-2], f[-1], f0, f[1], f[2], h)
    return g, kinked


def straddles_kink(f_m2, f_m1, f_0, f_1, f_2, h) -> bool:
    r"""Whether a function sampled at :math:`t = -2h, -h, 0, h, 2h` along a line has a kink
    inside that stencil: its central slopes at :math:`h` and :math:`2h`, or its second
    differences, disagree beyond what a smooth function allows (:data:`KINK_SLOPE_RTOL`,
    :data:`KINK_CURVATURE_RTOL`, relative to :math:`\max(1, |f_0|)`).  A stencil that reaches
    a non-finite value (an overflow) counts as one: nothing can be read from it."""
    if not all(math.isfinite(v) for v in (f_m2, f_m1, f_0, f_1, f_2)):
        return True
    scale = max(1.0, abs(f_0))
    c1, c2 = (f_1 - f_m1) / (2 * h), (f_2 - f_m2) / (4 * h)
    d1, d2 = (f_1 - 2 * f_0 + f_m1) / h**2, (f_2 - 2 * f_0 + f_m2) / (4 * h**2)
    return bool(abs(c1 - c2) > KINK_SLOPE_RTOL * scale or abs(d1 - d2) > KINK_CURVATURE_RTOL * scale)


def _ball(rng, x, radius):
    """A point uniform in the Euclidean ball of ``radius`` around ``x``."""
    u = rng.standard_normal(x.size)
    return x + radius * rng.random() ** (1.0 / x.size) * u / np.linalg.norm(u)


def gradient_sampling(value: Callable, gradient: Callable, x0, *, rng: np.random.Generator, tol: float,
                      radii=RADII, maxiter: int = 200, origin=None, metric=None,
                      samples: int | None = None) -> NonsmoothResult:
    r"""Minimise from ``x0`` by gradient sampling until Clarke :math:`(\epsilon, \nu)`-stationary.

    Parameters
    ----------
    value : callable
        ``value(x) -> float``.
    gradient : callable
        ``gradient(x) -> (g, ok)``; ``ok`` False when ``g`` is not to be trusted there (a
        differenced gradient straddling a kink): such a sample is replaced by another.
    x0 : ndarray
        Where BFGS stalled.
    rng : numpy.random.Generator
        Source of the sample points.
    tol : float
        :math:`\nu`, the bound on the min-norm element's Euclidean norm.
    radii : sequence of float
        Sampling radii :math:`\epsilon`, relative to :math:`\max(1, \|x_0\|_\infty)`,
        decreasing; the certificate is at the last.
    maxiter : int
        Iterations (sampled hulls) in all.
    origin : ndarray, optional
        The fit's own start: running :data:`RUNOFF` times its scale away from it is an
        unbounded direction (default ``x0``).
    metric : ndarray, optional
        A positive definite inverse-Hessian estimate :math:`H` (the stalled BFGS run's):
        the step is then :math:`-H\bar g` with :math:`\bar g` the hull's min-norm element
        in the :math:`H`-norm (quasi-Newton gradient sampling, Curtis & Que 2013), and
        the plain step :math:`-g` is tried when it fails.  The certificate is always the
        Euclidean one.
    samples : int, optional
        Gradients per hull, :math:`m` (default :math:`\min(100, n + 2)`, :data:`SAMPLES_OVER_N`).

    Returns
    -------
    NonsmoothResult

    Notes
    -----
    Each iteration (Burke, Lewis & Overton 2005; Kiwiel 2007): keep the sampled
    gradients whose points lie in the ball around :math:`x`, add new ones up to
    :math:`m = \min(100, n + 2)`, take the min-norm element :math:`g` of their hull;
    if :math:`\|g\|\le\nu` the radius is certified and the next one is taken; else an
    Armijo search along :math:`-H\bar g` (``metric``, BFGS-updated with the centres'
    gradients when their curvature is positive), then along :math:`-g`, from step 1
    (at most :data:`TRUST` of the scale): doubled while the value keeps falling, halved down
    to :data:`MIN_STEP` of the radius; if it fails :data:`RESAMPLES` times on fresh hulls
    the radius is reduced, and at the last radius the kink is not resolved.
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    origin = x.copy() if origin is None else np.asarray(origin, dtype=np.float64)
    n = x.size
    m = min(100, n + SAMPLES_OVER_N) if samples is None else max(int(samples), n + 1)
    scale = max(1.0, float(np.max(np.abs(x)))) if n else 1.0
    limit = RUNOFF * max(1.0, float(np.linalg.norm(origin)))
    L = _cholesky_or_none(metric, n)
    f = float(value(x))
    n_grad, it = 0, 0
    bundle, centred = [], False  # centred: the gradient at x is in the bundle (or untrusted)
    previous = None  # (x, gradient) of the last centre, for the metric's BFGS update
    norm, radius = math.inf, radii[0] * scale

    def result(converged, cause):
        return NonsmoothResult(x, f, converged, cause, float(norm), float(radius), it, n_grad)

    last = len(radii) - 1
    for level, rel in enumerate(radii):
        radius, fails = rel * scale, 0
        while True:
            if it >= maxiter:
                return result(False, "iteration limit")
            it += 1
            if not centred:
                gx, okx = gradient(x)
                n_grad += 1
                if okx:
                    gx = np.asarray(gx, dtype=np.float64)
                    bundle.append((x.copy(), gx))
                    if L is not None and previous is not None:
                        L = _bfgs_update(L, x - previous[0], gx - previous[1])
                    previous = (x.copy(), gx)
                else:
                    previous = None
                centred = True
            bundle = [(y, gy) for y, gy in bundle if np.linalg.norm(y - x) <= radius]
            tries = 0
            while len(bundle) < m and tries < 4 * m:
                tries += 1
                y = _ball(rng, x, radius)
                gy, oky = gradient(y)
                n_grad += 1
                if oky:
                    bundle.append((y, np.asarray(gy, dtype=np.float64)))
            if len(bundle) < min(m, n + 1):  # differenced gradients straddle kinks everywhere here
                return result(False, "kink not resolved")
            G = np.array([gy for _, gy in bundle])
            g, _ = min_norm_element(G)
            norm = float(np.linalg.norm(g))
            if norm <= tol:
                break  # certified at this radius
            steps = [(g, norm**2)]
            if L is not None:
                w, _ = min_norm_element(G @ L)
                steps.insert(0, (L @ w, float(w @ w)))
            moved = False
            for d, decrease in steps:
                # a step longer than TRUST x the iterate's scale is not taken at once: the
                # metric is a guess, and far trial points may overflow the loss
                longest = TRUST * max(1.0, float(np.max(np.abs(x)))) / max(float(np.linalg.norm(d)), 1e-300)
                t = first = min(1.0, longest)
                while t * float(np.linalg.norm(d)) >= MIN_STEP * radius:
                    y = x - t * d
                    fy = float(value(y))
                    if math.isfinite(fy) and fy <= f - ARMIJO * t * decrease:
                        # accepted at once: the step may be far too short (a small min-norm
                        # element on a gently curved smooth part), so it is doubled while the
                        # value keeps falling enough, as a Wolfe line search would extrapolate
                        while t >= first and 2 * t <= longest:
                            y2 = x - 2 * t * d
                            f2 = float(value(y2))
                            if not (math.isfinite(f2) and f2 <= fy and f2 <= f - ARMIJO * 2 * t * decrease):
                                break
                            t, y, fy = 2 * t, y2, f2
                        x, f, moved, centred = y, fy, True, False
                        break
                    t *= 0.5
                if moved:
                    break
            if np.linalg.norm(x - origin) > limit:
                return result(False, "unbounded direction")
            if not moved:
                fails += 1
                if fails <= RESAMPLES:  # an unlucky hull (all samples on one side of a kink)
                    bundle = [(y, gy) for y, gy in bundle if np.array_equal(y, x)]
                    continue
                if level == last:
                    return result(False, "kink not resolved")
                break  # no descent at this radius: sample a smaller ball
    return result(True, None)


def _bfgs_update(L, s, y):
    r"""The Cholesky factor of the BFGS update of :math:`H = LL^T` with the pair ``(s, y)``,
    or ``L`` itself when the pair has no positive curvature (:math:`s^Ty \le 0`, as across
    a concave kink), which would spoil positive definiteness."""
    sy = float(s @ y)
    if not (sy > 1e-12 * float(np.linalg.norm(s) * np.linalg.norm(y))):
        return L
    H = L @ L.T
    rho = 1.0 / sy
    E = np.eye(s.size) - rho * np.outer(s, y)
    H = E @ H @ E.T + rho * np.outer(s, s)
    return _cholesky_or_none(H, s.size) if _cholesky_or_none(H, s.size) is not None else L


def _cholesky_or_none(H, n):
    """The Cholesky factor of the symmetric part of ``H``, or None if it is not a usable metric."""
    if H is None or np.shape(H) != (n, n) or not np.all(np.isfinite(H)):
        return None
    try:
        return np.linalg.cholesky(0.5 * (H + np.transpose(H)))
    except np.linalg.LinAlgError:
        return None
