r"""Is the gradient a backend returns the gradient of the value?  And where does training
go when it is not?

Stop-gradients.  A loss that computes part of itself under ``detach()`` (the weights of
``lightly``'s ``DCLWLoss``, the targets of BYOL, SimSiam, MoCo and many distillation
losses) has an autograd "gradient" that is not the gradient of its value.  What
training follows is that *training field* :math:`\phi(x)`, and what it reaches is a
stable zero of the field, not a minimiser of the value.  A NumPy loss whose ``grad``
disagrees with its value is the same situation by mistake.

:func:`check_gradient` tells them apart as ``torch.autograd.gradcheck`` does in its fast
mode: it compares the directional derivative :math:`\phi(x)^T u` along random unit
directions :math:`u` with central differences of the value,
:math:`(f(x + hu) - f(x - hu))/2h` (with Richardson's correction from :math:`2h`).  A
direction whose stencil straddles a kink
(:func:`numerics.nonsmooth.straddles_kink`) says nothing about the gradient and is
replaced.  Tolerances (:data:`GRADCHECK_ATOL`, :data:`GRADCHECK_RTOL`) are set by the
step and float64 rounding, not typed in; the largest relative mismatch is reported.

:func:`stable_zero` solves :math:`\phi(x) = 0` (Levenberg–Marquardt on the field, a
difference Jacobian) from a start, then checks stability from the eigenvalues of the
Jacobian :math:`J = \partial\phi/\partial x`: training moves along :math:`-\phi`, so a
zero is stable iff every eigenvalue has a real part :math:`\ge -` tol, the
eigenvalues near 0 (flat directions, as in :mod:`numerics.flat`) set aside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import least_squares

from .flat import FLAT_RTOL
from .nonsmooth import straddles_kink

__all__ = ["GRADCHECK_ATOL", "GRADCHECK_RTOL", "GRADCHECK_DIRECTIONS", "FIELD_CAUSES", "GradientCheck",
           "check_gradient", "FieldZero", "stable_zero", "field_jacobian"]

#: Absolute part of the tolerance, times :math:`\max(1, |f|)`.  The Richardson central
#: difference at :math:`h = \epsilon^{1/3}\max(1, \|x\|_\infty)` errs by
#: :math:`h^4|f^{(5)}|/30 + 1.5\cdot64\epsilon|f|/h \approx 4\cdot10^{-23}|f^{(5)}| + 4\cdot10^{-9}|f|`
#: (64 ulps of rounding in a loss of a few hundred operations); 1e-6 leaves a factor
#: of more than 100.  ``torch.autograd.gradcheck`` uses 1e-5
#: with a step of 1e-6, whose rounding error is 30 times larger.
GRADCHECK_ATOL = 1e-6
#: Relative part: a stop-gradient changes the directional derivative by a fraction of
#: itself (DCLW's detached weights by 10-100 %); 1e-4 is far above the 1e-9 relative
#: error of a true gradient and far below any such change.  gradcheck's rtol is 1e-3.
GRADCHECK_RTOL = 1e-4
#: Random directions per point (gradcheck's fast mode uses one; a few make a zero
#: projection of the mismatch, which has probability 0 for one, no worry at all).
GRADCHECK_DIRECTIONS = 3
#: Why :func:`stable_zero` found no stable zero.
FIELD_CAUSES = ("no zero found", "unstable zero", "unbounded direction")
#: Real parts below this fraction of the largest eigenvalue's modulus are negative: the
#: Jacobian is a central difference of the field with step 1e-5 x scale, relative
#: error about :math:`\epsilon/10^{-5} \approx 2\cdot10^{-11}` plus truncation
#: :math:`10^{-10}`; flat directions (:data:`numerics.flat.FLAT_RTOL`) are set aside.
STABILITY_RTOL = FLAT_RTOL
#: The training flow runs until the field has shrunk by this factor, then root finding
#: takes over.  Root finding straight from the control's fit reached an unstable zero
#: of a DCLW field, not the stable one training reaches; after a 10-fold shrink it
#: reached the same zeros as after a 1000-fold one, in half the evaluations (measured
#: on the three default models).
FLOW_SHRINK = 0.1


@dataclass
class GradientCheck:
    """What :func:`check_gradient` found.

    ``passed`` iff every direction agreed within tolerance; ``worst`` is the largest
    relative mismatch :math:`|\\phi^Tu - \\delta_u f| / \\max(|\\phi^Tu|, |\\delta_u f|)`
    seen, ``analytic`` and ``numeric`` the pair where it was seen, ``directions`` how many
    directions were compared and ``kinked`` how many were replaced because their
    stencil straddled a kink.
    """

    passed: bool
    worst: float
    analytic: float
    numeric: float
    directions: int
    kinked: int = 0

    def describe(self) -> str:
        return (f"largest mismatch {self.worst:.3g} relative (directional derivative {self.analytic:.6g} "
                f"from the gradient, {self.numeric:.6g} from the value's central differences)")


def check_gradient(value: Callable[[np.ndarray], float], gradient: Callable[[np.ndarray], np.ndarray],
                   points, rng: np.random.Generator, directions: int = GRADCHECK_DIRECTIONS) -> GradientCheck:
    r"""Compare ``gradient`` with central differences of ``value`` at each of ``points``.

    Along ``directions`` random unit directions :math:`u` per point, the directional
    derivative :math:`g(x)^Tu` must agree with the central difference of the value (its
    Richardson form :math:`(8(f_h - f_{-h}) - (f_{2h} - f_{-2h}))/12h`, truncation
    :math:`O(h^4)`),
    :math:`h = \epsilon^{1/3}\max(1, \|x\|_\infty)`, to within
    :data:`GRADCHECK_ATOL` :math:`\max(1, |f|)` + :data:`GRADCHECK_RTOL` :math:`\max(|g^Tu|, |\delta f|)`.
    A direction whose stencil :math:`t \in \{-2h, \dots, 2h\}` straddles a kink is replaced
    (up to ``4 * directions`` draws, the point moved by :math:`10^{-3}` of its scale after
    each ``directions`` straddles: at a kinked minimiser every direction straddles it).
    """
    worst, pair, compared, kinked = 0.0, (math.nan, math.nan), 0, 0
    passed = True
    for x in points:
        x = np.asarray(x, dtype=np.float64)
        scale = max(1.0, float(np.max(np.abs(x))))
        h = np.finfo(np.float64).eps ** (1 / 3) * scale
        done, draws = 0, 0
        while done < directions and draws < 4 * directions:
            draws += 1
            if draws > directions and (draws - 1) % directions == 0:
                x = x + 1e-3 * scale * rng.standard_normal(x.size) / math.sqrt(x.size)
            u = rng.standard_normal(x.size)
            u /= np.linalg.norm(u)
            f = {k: float(value(x + k * h * u)) for k in (-2, -1, 0, 1, 2)}
            if straddles_kink(f[-2], f[-1], f[0], f[1], f[2], h):
                kinked += 1
                continue
            # Richardson's combination of the central slopes at h and 2h: truncation
            # O(h^4 |f^(5)|) instead of O(h^2 |f'''|), for the same five values
            numeric = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * h)
            analytic = float(np.asarray(gradient(x), dtype=np.float64) @ u)
            size = max(abs(analytic), abs(numeric))
            rel = abs(analytic - numeric) / size if size > 0 else 0.0
            if abs(analytic - numeric) > GRADCHECK_ATOL * max(1.0, abs(f[0])) + GRADCHECK_RTOL * size:
                passed = False
            if rel >= worst:
                worst, pair = rel, (analytic, numeric)
            done += 1
            compared += 1
    return GradientCheck(passed, worst, pair[0], pair[1], compared, kinked)


# --------------------------------------------------------------------------
# the training field's stable zero
# --------------------------------------------------------------------------
@dataclass
class FieldZero:
    """What :func:`stable_zero` found: ``x``, the field's max-norm ``residual`` there,
    ``converged`` (a zero, and stable), ``cause`` (one of :data:`FIELD_CAUSES`, or None),
    the Jacobian's ``eigenvalues`` and ``n_eval`` field evaluations."""

    x: np.ndarray
    residual: float
    converged: bool
    cause: str | None
    eigenvalues: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_eval: int = 0


def field_jacobian(phi: Callable[[np.ndarray], np.ndarray], x, step: float = 1e-5) -> np.ndarray:
    r"""Central-difference Jacobian :math:`J_{ij} = \partial\phi_i/\partial x_j` (not
    symmetrised: a training field with stop-gradients is not a gradient), step
    ``step`` :math:`\max(1, \|x\|_\infty)`."""
    x = np.asarray(x, dtype=np.float64)
    h = step * max(1.0, float(np.max(np.abs(x))))
    cols = [(np.asarray(phi(x + h * e)) - np.asarray(phi(x - h * e))) / (2 * h) for e in np.eye(x.size)]
    return np.array(cols).T


class _Reached(Exception):
    """A point where the field is within the tolerance: the polish stops there."""

    def __init__(self, x, fun):
        super().__init__()
        self.x, self.fun = x, fun


def _polish(phi, x, gtol: float, max_nfev: int):
    r"""``(x, field there, evaluations)``: MINPACK's Levenberg–Marquardt on the square system
    :math:`\phi(x) = 0`, stopped at the first point it evaluates (a step or a Jacobian
    column) where :math:`\|\phi\|_\infty \le` ``gtol``.  MINPACK itself stops on steps and
    reductions, not on the residual: run to its own tolerances it spent about 80 field
    evaluations per fit polishing far below the test that decides."""
    calls = [0]

    def field(y):
        v = np.asarray(phi(y), dtype=np.float64)
        calls[0] += 1
        if np.all(np.isfinite(v)) and float(np.max(np.abs(v))) <= gtol:
            raise _Reached(np.array(y, dtype=np.float64), v)
        return v

    try:
        res = least_squares(field, x, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=max_nfev)
        return res.x, res.fun, calls[0]
    except _Reached as hit:
        return hit.x, hit.fun, calls[0]


def _stable(J) -> tuple[bool, np.ndarray, np.ndarray]:
    """(stable, eigenvalues, eigenvector of the most negative real part)."""
    w, Vec = np.linalg.eig(J)
    top = float(np.max(np.abs(w))) if w.size else 0.0
    live = np.abs(w) > FLAT_RTOL * top
    worst = int(np.argmin(np.where(live, w.real, np.inf))) if np.any(live) else 0
    stable = top == 0 or not np.any(live & (w.real < -STABILITY_RTOL * top))
    return stable, w, np.real(Vec[:, worst])


def stable_zero(phi: Callable[[np.ndarray], np.ndarray], x0, *, gtol: float, max_eval: int = 4000,
                origin=None, runoff: float = 10.0, attempts: int = 3, flow_steps: int = 200) -> FieldZero:
    r"""A stable zero of the training field ``phi`` reached from ``x0`` (module docstring).

    What training does comes first: the flow :math:`x \leftarrow x - \eta\phi(x)` with
    :math:`\eta = 1/(2\rho(J(x_0)))` (stable for every eigenvalue of positive real part,
    halved whenever a step doubles the field), for up to ``flow_steps`` steps or until the
    field is :data:`FLOW_SHRINK` times its largest value along the way; then Levenberg–Marquardt (:func:`scipy.optimize.least_squares`,
    ``method="lm"``, a two-point difference Jacobian, stopped once the field is within ``gtol``) polishes :math:`\phi(x) = 0`, the square
    system of the field.  Root finding alone, from the control's fit, can end at a local
    minimum of :math:`\|\phi\|` that is no zero, or at a zero training never reaches.  A zero
    is one with :math:`\|\phi\|_\infty \le` ``gtol`` (the smooth fits' test,
    :func:`numerics.optimize.is_converged`), stable when no eigenvalue of the Jacobian there
    has a real part below :data:`STABILITY_RTOL` times the largest modulus (flat ones set
    aside).  Otherwise the flow continues from there (moved off an unstable zero along its
    repelling eigenvector), each time :data:`FLOW_SHRINK` further, up to ``attempts`` rounds.  Farther
    than ``runoff`` times :math:`\max(1, \|origin\|)` from ``origin`` is an unbounded direction.
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    origin = x.copy() if origin is None else np.asarray(origin, dtype=np.float64)
    limit = runoff * max(1.0, float(np.linalg.norm(origin)))
    J = field_jacobian(phi, x)
    n_eval = 2 * x.size
    if not np.all(np.isfinite(J)):  # the field overflows next to the start: nothing to follow
        return FieldZero(x, math.inf, False, "no zero found", np.zeros(0), n_eval)
    top = float(np.max(np.abs(np.linalg.eigvals(J)))) if x.size else 0.0
    eta = 0.5 / top if top > 0 and math.isfinite(top) else 1e-3
    w, r, cause = np.zeros(0), math.inf, "no zero found"
    for attempt in range(attempts):
        p = np.asarray(phi(x), dtype=np.float64)
        n_eval += 1
        # The flow stops once the field is FLOW_SHRINK below its largest value along the
        # way: off a repelling zero the field first grows (the escape), then shrinks into
        # the stable zero.  After a failed polish or an unstable zero it goes further, and
        # for longer, before root finding is trusted again (which had jumped back to the
        # repelling zero it had just left).
        peak = float(np.max(np.abs(p)))
        for _ in range(flow_steps * (1 + 4 * attempt)):
            size = float(np.max(np.abs(p)))
            peak = max(peak, size)
            if size <= max(FLOW_SHRINK ** (attempt + 1) * peak, gtol):
                break
            y = x - eta * p
            q = np.asarray(phi(y), dtype=np.float64)
            n_eval += 1
            if not np.all(np.isfinite(q)) or float(np.max(np.abs(q))) > 2 * float(np.max(np.abs(p))):
                eta *= 0.5  # the explicit step was unstable for this curvature
                continue
            x, p = y, q
            if np.linalg.norm(x - origin) > limit:
                return FieldZero(x, float(np.max(np.abs(p))), False, "unbounded direction", w, n_eval)
        y, fun, calls = _polish(phi, x, gtol, max(1, max_eval // (x.size + 1)))
        n_eval += calls
        r = float(np.max(np.abs(fun)))
        if np.linalg.norm(y - origin) > limit:
            return FieldZero(y, r, False, "unbounded direction", w, n_eval)
        if not r <= gtol:
            cause = "no zero found"
            continue  # the polish failed: flow on from where the flow was
        x = y
        J = field_jacobian(phi, x)
        n_eval += 2 * x.size
        if not np.all(np.isfinite(J)):  # a zero next to an overflow: its stability cannot be read
            cause = "no zero found"
            break
        stable, w, v = _stable(J)
        if stable:
            return FieldZero(x, r, True, None, w, n_eval)
        cause = "unstable zero"
        x = x + 1e-2 * max(1.0, float(np.max(np.abs(x)))) * v / max(float(np.linalg.norm(v)), 1e-300)
    return FieldZero(x, r, False, cause, w, n_eval)
