r"""Fitting linear encoders to a finite batch under a loss, and the paired fits a
verdict is made of (MATH.md §2, §4).

Every loss reaches this module through one interface, that of
:class:`numerics.user_loss.UserLoss` (a user's loss of the logits or of the
embeddings, NumPy, PyTorch or JAX, with or without its own learned scalars) or
:class:`numerics.user_loss.ClipControl` (CLIP itself, the control): ``inputs``,
``size`` (learned scalars), ``theta0``, ``value(a, b, theta)``,
``value_and_grad(a, b, theta)``, ``has_gradient()`` and ``multiplier(theta)``.

* :func:`batch_objective`: the loss on one batch as a function of the flat
  parameters ``x = [G_u, G_v, theta]`` (:class:`numerics.encoders.EncoderParams`),
  with its gradient pulled back through the encoders, or central differences;
* :func:`fit_batch`: its minimisation by :func:`numerics.optimize.minimize_factors`,
  then, when BFGS stalls (a kink), :func:`nonsmooth_phase` to a Clarke stationarity
  certificate (:mod:`numerics.nonsmooth`);
* :func:`fit_field`: the stable zero of the training field, for a loss whose backend
  gradient is not its value's (stop-gradients), :func:`check_batch_gradient` the check
  that tells (:mod:`numerics.gradient_check`), and :class:`ValueOnly` such a loss fitted
  by its value with differences;
* :func:`paired_fits`: the control and the variant fitted on the same nested
  batches, the variant warm-started from the control (:class:`PairedFit` records);
* :func:`check_depends`: a loss that does not depend on what it is given is refused.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np

from ._validation import LossOverflow, fail
from .encoders import LinearEncoders, nested_sample, population_minimizer
from .infonce import _logits
from .gradient_check import GradientCheck, check_gradient, stable_zero
from .nonsmooth import CLARKE_TOL, FD_RADII, FIT_RADII, RUNOFF, checked_finite_difference_grad, gradient_sampling
from .optimize import FactorFit, finite_difference_grad, minimize_factors

__all__ = ["FIT_GTOL", "DEPENDENCE_PROBES", "START_PERTURBATION", "STILL", "OBJECTIVES", "GRADIENT_EVALUATIONS", "Counted", "PairedFit", "ChainState",
           "loss_inputs", "batch_objective", "symmetrised", "fit_batch", "nonsmooth_phase", "check_depends", "paired_fits",
           "ValueOnly", "check_batch_gradient", "check_model_gradient", "fit_field"]

#: Stopping tolerance of a batch fit: the optimisation error near
#: :math:`10^{-6}/\mu` for curvature :math:`\mu` is orders of magnitude below
#: the statistical resolution :math:`\sim N^{-1/2}` the verifier works at.
FIT_GTOL = 1e-6
#: What a variant's fit solves: the minimisers of the loss's value, or the stable zeros of
#: the training field its backend's gradient defines (a loss with stop-gradients).
OBJECTIVES = ("value", "training-field")
#: A value and its gradient count as this many evaluations (:class:`Counted`): reverse mode
#: costs about one more pass, and a NumPy ``grad`` about one more call.
GRADIENT_EVALUATIONS = 2.0
#: Random encoder perturbations used to test that a loss depends on its inputs.
DEPENDENCE_PROBES = 4
#: Relative size of the random perturbation of the variant's first start:
#: The cause of a variant fit that never left its start: the loss is flat there.
STILL = "flat at its start"
#: large enough that a loss whose gradient vanishes at the control's fit
#: cannot pass by not moving, small enough to stay in the basin of a variant
#: that shares CLIP's minimisers.
START_PERTURBATION = 0.3


@dataclass
class PairedFit:
    r"""The control's and the variant's fits on one batch of size ``N``.

    ``x_c`` and ``x_u`` are flat parameter vectors (the learned scalars of each loss
    appended); ``converged`` says that the variant's fit is certified stationary: smooth
    (:func:`numerics.optimize.is_converged`), Clarke :math:`(\epsilon, \nu)`-stationary
    (:mod:`numerics.nonsmooth`), or, for the training field, a stable zero
    (:func:`numerics.gradient_check.stable_zero`).  ``moved`` is how far its fit went from
    its start, ``iterations`` its iterations.  ``cause`` is None when certified, else why
    not: ``"kink not resolved"``, ``"unbounded direction"`` or ``"iteration limit"``
    (:data:`numerics.nonsmooth.CAUSES`), or for the training field ``"no zero found"`` or
    ``"unstable zero"`` (:data:`numerics.gradient_check.FIELD_CAUSES`), or :data:`STILL` for a
    fit that never left its start.  ``kinked`` says
    that the smooth phase stalled and the nonsmooth phase ran (a Hessian means nothing there).
    ``evaluations`` is the work both fits did, in loss evaluations (:class:`Counted`): what the
    verifier's nominal cost model charges for a fit at this size
    (:func:`proofs_checks.schedule.round_cost`).
    """

    N: int
    x_c: np.ndarray
    x_u: np.ndarray
    converged: bool
    moved: float
    iterations: int
    cause: str | None = None
    kinked: bool = False
    evaluations: float = 0.0


@dataclass
class ChainState:
    """Where a chain of paired fits stands: the last fits and their inverse Hessians."""

    x_c: np.ndarray
    H_c: np.ndarray | None = None
    x_u: np.ndarray | None = None
    H_u: np.ndarray | None = None


def loss_inputs(family: LinearEncoders, x, U, V, inputs: str):
    """``(a, b, Za, Zb)``: the loss's inputs at parameters ``x`` (the logit matrix and
    None, or the two embeddings) and the raw encoder outputs."""
    za, zb, Za, Zb = family.embed(x, U, V)
    if inputs == "logits":
        return _logits(Za, Zb, 1.0, family.similarity), None, Za, Zb
    return za, zb, Za, Zb


def batch_objective(family: LinearEncoders, U, V, loss, *, back_off: bool = False):
    """``fun(x) -> (value, gradient)`` of ``loss`` on the batch in the flat parameters
    ``x = [G_u, G_v, theta]``: the loss's gradient pulled back through the encoders, or,
    for a loss without one, central differences in every parameter (step
    :math:`\\epsilon^{1/3}\\max(1, |x_i|)`, :func:`numerics.optimize.finite_difference_grad`:
    accurate to about :math:`\\epsilon^{2/3}`, far below :data:`FIT_GTOL`).

    With ``back_off`` (the fits), where the loss overflows (:class:`numerics.LossOverflow`,
    :math:`+\\infty` or NaN: a trial point far out, for example ``inf/inf`` of two
    overflowed exponentials), the value is ``inf`` and the gradient NaN: the smooth phase,
    gradient sampling and the training field's flow all back off from such a point, and
    none is certified there.  Without it (the checks at the start) the error stands, and
    :math:`-\\infty` (a loss unbounded below) is an error everywhere.

    ``U`` and ``V`` of shapes ``(m, N, n_u)``, ``(m, N, n_v)`` are ``m`` batches of ``N``
    (a batch and its images, :func:`symmetrised`): the loss is called on each and the value
    and gradient are their mean."""
    if np.ndim(U) == 3:
        parts = [batch_objective(family, Ui, Vi, loss, back_off=back_off) for Ui, Vi in zip(U, V)]

        def mean_value(x):
            return float(np.mean([part.value(x) for part in parts]))

        def mean_fun(x):
            out = [part(x) for part in parts]
            return float(np.mean([o[0] for o in out])), np.mean([o[1] for o in out], axis=0)

        mean_fun.value = mean_value
        return mean_fun

    def value(x):
        a, b, _, _ = loss_inputs(family, x, U, V, loss.inputs)
        try:
            return loss.value(a, b, family.unpack(x).theta)
        except LossOverflow:
            if not back_off:
                raise
            return math.inf  # a trial point too far out: line searches back off from it

    def fun(x):
        x = np.asarray(x, dtype=np.float64)
        if not loss.has_gradient():
            return value(x), finite_difference_grad(value, x)
        a, b, Za, Zb = loss_inputs(family, x, U, V, loss.inputs)
        try:
            val, da, db, dtheta = loss.value_and_grad(a, b, family.unpack(x).theta)
        except LossOverflow:
            if not back_off:
                raise
            return math.inf, np.full(x.shape, np.nan)  # no gradient there: NaN reads "not here"
        if loss.inputs == "logits":
            dx = family.pullback(da, Za, Zb, U, V)
        else:
            dx = family.embeddings_pullback(da, db, Za, Zb, U, V)
        return val, np.concatenate([dx, dtheta])

    fun.value = value  # the value alone (line searches, finite differences)
    return fun


def fit_batch(family: LinearEncoders, U, V, x0, loss, *, hess_inv=None, maxiter: int = 400,
              gtol: float = FIT_GTOL, rng: np.random.Generator | None = None) -> FactorFit:
    r"""Minimise ``loss`` on the batch over the encoders and the loss's learned scalars
    jointly, from the flat ``x0 = [G_u, G_v, theta]``, to a certified stationary point.

    The smooth phase is :func:`numerics.optimize.minimize_factors` (BFGS, one start, no
    warning: the caller reads :attr:`FactorFit.converged`); ``hess_inv`` seeds its
    quasi-Newton metric (for example the control's fit on the same batch).  When it
    stalls, or when its differenced gradient at the end straddles a kink, the nonsmooth
    phase (:func:`nonsmooth_phase`) looks for a Clarke stationarity certificate, and
    :attr:`FactorFit.cause` says why none was found.  ``rng`` seeds that phase's samples
    (default: a generator seeded by the batch size, so a fit is reproducible).
    """
    fit = _smooth_fit(family, U, V, x0, loss, hess_inv, maxiter, gtol)
    return nonsmooth_phase(family, U, V, x0, loss, fit,
                           rng=np.random.default_rng([np.shape(U)[-2], 4099]) if rng is None else rng)


def nonsmooth_phase(family: LinearEncoders, U, V, x0, loss, fit: FactorFit, *, tol: float = CLARKE_TOL,
                    rng: np.random.Generator, metric: bool = True) -> FactorFit:
    r"""``fit`` (a smooth phase from ``x0``) certified, or continued by gradient sampling.

    A converged fit with an exact gradient is returned as it is (the smooth certificate,
    :func:`numerics.optimize.is_converged`).  With differenced gradients its end point is
    first checked for a kink inside the difference stencil
    (:func:`numerics.nonsmooth.checked_finite_difference_grad`): the BFGS gradient there
    was an average of one-sided slopes, not a gradient.  Otherwise
    :func:`numerics.nonsmooth.gradient_sampling` runs from the end point (radii
    :data:`numerics.nonsmooth.FIT_RADII`, or :data:`~numerics.nonsmooth.FD_RADII` for
    differenced gradients; :math:`\nu` = ``tol``, :data:`numerics.nonsmooth.CLARKE_TOL`, in
    the Euclidean norm) and the fit is converged iff it certifies
    Clarke :math:`(\epsilon, \nu)`-stationarity; else the fit is returned where BFGS left
    it (as before this phase existed), with :attr:`FactorFit.cause` the sampling's cause.  A smooth phase stopped by its iteration limit did not stall: it is
    returned with the cause ``"iteration limit"`` and no nonsmooth phase, as before; one
    whose end lies :data:`numerics.nonsmooth.RUNOFF` times the start's scale away has run
    off, ``"unbounded direction"``, with none either.
    """
    if not fit.converged and any("maximum number of iterations" in msg.lower() for msg in fit.messages):
        return dataclasses.replace(fit, cause="iteration limit")  # BFGS did not stall: it was stopped
    fun = batch_objective(family, U, V, loss, back_off=True)
    exact = loss.has_gradient()
    x_end = fit.x
    x0 = np.asarray(x0, dtype=np.float64)
    if not fit.converged and np.linalg.norm(x_end - x0) > RUNOFF * max(1.0, float(np.linalg.norm(x0))):
        return dataclasses.replace(fit, cause="unbounded direction")  # BFGS already ran off
    if fit.converged:
        if exact:
            return fit
        _, kinked = checked_finite_difference_grad(fun.value, x_end, fit.value)
        if not kinked.any():
            return fit

    # A sample is trusted when its gradient is finite (not at an overflow) and, differenced,
    # does not straddle a kink.
    if exact:
        def gradient(y):
            g = fun(y)[1]
            return g, bool(np.all(np.isfinite(g)))
    else:
        def gradient(y):
            g, kinked = checked_finite_difference_grad(fun.value, y)
            return g, bool(np.all(np.isfinite(g))) and not kinked.any()
    res = gradient_sampling(fun.value, gradient, x_end, rng=rng, tol=tol,
                            radii=FIT_RADII if exact else FD_RADII, origin=x0,
                            metric=fit.hess_inv if metric else None,
                            # differenced samples that straddle a kink are dropped: HANSO's count
                            samples=None if exact else min(100, x_end.size + 10))
    if not res.converged:  # no certificate: the fit stays where BFGS left it, as it always did
        return dataclasses.replace(fit, converged=False, cause=res.cause, nonsmooth=res)
    p = family.unpack(res.x)
    return dataclasses.replace(fit, G_u=p.G_u, G_v=p.G_v, extra=p.theta.copy(), value=res.value,
                               converged=True, cause=None, nonsmooth=res,
                               grad_norm=res.stationarity, n_iter=fit.n_iter + res.n_iter)


def _checked_at_start(family, U, V, loss):
    """:func:`batch_objective` backing off from overflows, except at its first point (the
    fit's start), where an overflow is the loss's error, raised as such."""
    fun, first = batch_objective(family, U, V, loss, back_off=True), [True]

    def checked(x):
        out = fun(x)
        if first[0]:
            first[0] = False
            if not math.isfinite(out[0]):
                batch_objective(family, U, V, loss)(x)  # raises the loss's own error
        return out

    checked.value = fun.value
    return checked


def _smooth_fit(family, U, V, x0, loss, hess_inv, maxiter, gtol) -> FactorFit:
    fun = _checked_at_start(family, U, V, loss)

    def objective(G_u, G_v, theta=np.zeros(0)):
        val, g = fun(family.pack(G_u, G_v, theta))
        d = family.unpack(g)
        return val, ((d.G_u, d.G_v, d.theta) if loss.size else (d.G_u, d.G_v))

    m = family.model
    p0 = family.unpack(x0)
    init = (p0.G_u, p0.G_v, p0.theta) if loss.size else (p0.G_u, p0.G_v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return minimize_factors(objective, m.n_u, m.n_v, m.n_e, starts=1, init=init, gtol=gtol,
                                maxiter=maxiter, restarts=0, hess_inv=hess_inv, warn=False,
                                n_extra=loss.size)


def check_depends(family: LinearEncoders, U, V, x, loss, rng: np.random.Generator):
    r"""Refuse a loss whose value does not change with its inputs.

    The loss (its scalars at their initial values) is evaluated at encoders ``x`` and
    at :data:`DEPENDENCE_PROBES` random perturbations of relative size 1/2; if every
    value agrees with the first to within :math:`64\,\epsilon\max(1, |L|)` (rounding),
    the loss carries no information about the encoders and no claim about its
    minimisers can be tested.
    """
    def value_at(y):
        a, b, _, _ = loss_inputs(family, y, U, V, loss.inputs)
        return loss.value(a, b, loss.theta0)

    x = family.encoders(x)
    v0 = value_at(x)
    scale = 0.5 * max(1.0, float(np.max(np.abs(x))))
    for _ in range(DEPENDENCE_PROBES):
        if abs(value_at(x + scale * rng.standard_normal(x.shape)) - v0) > \
                64 * np.finfo(np.float64).eps * max(1.0, abs(v0)):
            return
    what = "the logit matrix F" if loss.inputs == "logits" else "its embeddings"
    raise fail("loss", v0, f"a loss that depends on {what} (it returned the same value "
                           f"{v0!r} for {DEPENDENCE_PROBES + 1} different encoders)")


def _move_scale(G, perturbation) -> float:
    """The per-entry size of a random move of relative size ``perturbation`` of the encoders ``G``."""
    return perturbation * float(np.linalg.norm(G)) / math.sqrt(G.size)


def _variant_start(family: LinearEncoders, x_c, loss, control, rng, perturbation):
    """The variant's first start: the control's encoders moved by a random perturbation
    of relative size ``perturbation``, at the control's effective scale, with the
    variant's initial scalars."""
    p_c = family.unpack(x_c)
    G = p_c.encoders
    G0 = G + _move_scale(G, perturbation) * rng.standard_normal(G.shape)
    m_c = control.multiplier(p_c.theta)
    if family.similarity != "cosine":
        # Start at the control's effective similarity: the variant's own logit
        # multiplier (a fixed or initial logit scale) is divided out of the encoders.
        ratio = abs(loss.multiplier(loss.theta0)) / abs(m_c)
        if math.isfinite(ratio) and ratio > 0:
            G0 = G0 / math.sqrt(ratio)
        theta0 = loss.theta0
    else:  # the encoders' norm is invisible: match the scale through the loss's own scalars
        theta0 = loss.matched_start(m_c)
    return np.concatenate([G0, theta0])


def _off_subspace(family: LinearEncoders, x, flip, rng, perturbation):
    r"""``x``'s part in the symmetry's fixed set, :math:`(G + GT)/2`, moved out of it by the part
    of a random perturbation (of relative size ``perturbation``, as :func:`_variant_start`'s)
    that the symmetry reverses, :math:`(Z - ZT)/2`.  A fit started in the fixed set of a symmetric objective never leaves
    it, so without this a fit held there at one batch size would be held at every later one."""
    p = family.unpack(x)
    T_u, T_v = flip
    scale = _move_scale(p.encoders, perturbation)
    Z_u, Z_v = rng.standard_normal(p.G_u.shape), rng.standard_normal(p.G_v.shape)
    # from the point's part in the fixed set, so that moves do not add up over the sizes
    return family.pack((p.G_u + p.G_u @ T_u) / 2 + scale * (Z_u - Z_u @ T_u) / 2,
                       (p.G_v + p.G_v @ T_v) / 2 + scale * (Z_v - Z_v @ T_v) / 2, p.theta)


def symmetrised(U, V, flip=None):
    r"""``(U, V)`` unchanged without ``flip``, else the batch stacked with its image under the
    model symmetry ``flip = (T_u, T_v)``: arrays of shapes ``(2, N, n_u)``, ``(2, N, n_v)``
    (:func:`batch_objective` takes their mean).  The image is a batch of the model in its own
    right, so the mean estimates the same population objective, and it is exactly invariant
    under the symmetry: at encoders the symmetry fixes, no sample can move a fit out of the
    fixed set; only the loss can (an unstable direction out of it)."""
    if flip is None:
        return U, V
    T_u, T_v = flip
    return np.stack([U, U @ T_u.T]), np.stack([V, V @ T_v.T])


def paired_fits(family: LinearEncoders, U, V, sizes, x_start, loss, control, *,
                rng: np.random.Generator, state: ChainState | None = None, probe: bool = False,
                perturbation: float = START_PERTURBATION, objective: str = "value", flip=None):
    r"""Fit the control and the variant on the nested batches ``U[:N], V[:N]``.

    At each size the control is fitted first, from its previous fit (``x_start`` at
    the first size) with its previous inverse Hessian; the variant then starts from
    its own previous fit, and at the first size from the control's fit moved by a
    random perturbation of relative size ``perturbation`` (never at the control's fit
    itself: a loss whose gradient vanishes there, flat or stationary at CLIP's point
    by accident, must not pass by standing still), with its own initial scalars.
    With ``probe``, the variant is first checked to depend on its inputs
    (:func:`check_depends`).  ``objective="training-field"`` fits the variant to a stable
    zero of its backend's gradient (:func:`fit_field`) instead of a minimiser of its value.
    With ``flip`` (a model symmetry ``(T_u, T_v)``, :func:`numerics.encoders.subspace_flip`),
    both fit the mean of their objective over each batch and its image (:func:`symmetrised`),
    and the variant's warm start at each later size is moved out of the symmetry's fixed set
    (:func:`_off_subspace`): whether a fit stays there is tested again at every size.

    Returns ``(records, state)``: one :class:`PairedFit` per size and the
    :class:`ChainState` to continue with.
    """
    state = ChainState(x_start) if state is None else state
    x_c, H_c, x_u, H_u = state.x_c, state.H_c, state.x_u, state.H_u
    loss, control = Counted(loss), Counted(control)
    out = []
    for N in sizes:
        work = loss.evaluations + control.evaluations
        Ub, Vb = symmetrised(U[:N], V[:N], flip)
        fit_c = fit_batch(family, Ub, Vb, x_c, control, hess_inv=H_c)
        x_c, H_c = fit_c.x, fit_c.hess_inv
        perturbed = x_u is None or flip is not None  # a start moved at random (not a plain warm start)
        if x_u is None:
            if probe:
                check_depends(family, U[:N], V[:N], x_c, loss, rng)
            x0 = _variant_start(family, x_c, loss, control, rng, perturbation)
            H0 = H_c if not (loss.size or control.size) else None
        else:
            x0, H0 = x_u, H_u
            if flip is not None:  # a fit held by the symmetry must show again, at this N, that it stays
                x0 = _off_subspace(family, x0, flip, rng, perturbation)
        if objective == "training-field":
            fit_u = fit_field(family, Ub, Vb, x0, loss)
        else:
            fit_u = fit_batch(family, Ub, Vb, x0, loss, hess_inv=H0)
        x_u, H_u = fit_u.x, fit_u.hess_inv
        moved = float(np.linalg.norm(x_u - x0))
        # A fit that never left its randomly moved start found the loss flat there (a loss of
        # the embeddings' signs, say): it is no sample of a minimiser, and standing still must
        # neither pass nor fail a claim.
        converged = fit_u.converged and (moved > 0.0 or not perturbed)
        cause = None if converged else (fit_u.cause or STILL)
        out.append(PairedFit(N, x_c, x_u, converged, moved, fit_u.n_iter, cause, fit_u.nonsmooth is not None,
                             loss.evaluations + control.evaluations - work))
    return out, ChainState(x_c, H_c, x_u, H_u)


class Counted:
    r"""``loss`` (a :class:`numerics.user_loss.UserLoss` or ``ClipControl``) counting its work:
    ``evaluations`` grows by 1 per value and by :data:`GRADIENT_EVALUATIONS` per value and
    gradient.  The count, not a clock, is what the nominal cost model charges: it is the
    same on every machine and at every load, and it sees what a fit really did (a kinked
    fit's gradient sampling, a training field's flow and Jacobians, differenced gradients
    as the values they are)."""

    def __init__(self, loss):
        self.loss, self.evaluations = loss, 0.0

    def __getattr__(self, name):
        if name in ("loss", "evaluations") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.loss, name)

    def value(self, *args):
        self.evaluations += 1.0
        return self.loss.value(*args)

    def value_and_grad(self, *args):
        self.evaluations += GRADIENT_EVALUATIONS
        return self.loss.value_and_grad(*args)


# --------------------------------------------------------------------------
# losses whose backend gradient is not the value's (stop-gradients)
# --------------------------------------------------------------------------
class ValueOnly:
    """``loss`` with its gradient withheld: fits take central differences of its value
    (``objective="value"`` for a loss whose backend gradient is not the value's)."""

    def __init__(self, loss):
        self.loss = loss

    def __getattr__(self, name):
        if name == "loss" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.loss, name)

    @staticmethod
    def has_gradient() -> bool:
        return False


def check_model_gradient(loss, model, similarity: str, N: int, seed: int, x=None):
    """:func:`check_batch_gradient` of ``loss`` on ``model``'s first batch of replicate 0
    (:func:`numerics.encoders.nested_sample` ``(seed, 0, 0)``, size ``N``), at CLIP's population
    minimiser (the start of every fit) when ``x`` is None, else at ``x``; None for a loss
    without a gradient."""
    if not loss.has_gradient():
        return None
    fam = LinearEncoders(model, similarity)
    U, V = nested_sample(model, (seed, 0, 0), N)
    points = [population_minimizer(fam, np.random.default_rng([seed, 0, 104729]))] if x is None else [x]
    return check_batch_gradient(fam, U, V, points, loss, np.random.default_rng([seed, 65537]))


def check_batch_gradient(family: LinearEncoders, U, V, points, loss, rng: np.random.Generator) -> GradientCheck:
    """:func:`numerics.gradient_check.check_gradient` of ``loss``'s gradient in the flat
    parameters (pulled back through the encoders) against its value on the batch, at each
    of ``points`` (flat parameter vectors; an encoder-only vector gets the loss's initial
    scalars appended)."""
    fun = batch_objective(family, U, V, loss)
    points = [np.concatenate([family.encoders(x), loss.theta0]) if np.size(x) != family.size + loss.size
              else np.asarray(x, dtype=np.float64) for x in points]
    return check_gradient(fun.value, lambda x: fun(x)[1], points, rng)


def fit_field(family: LinearEncoders, U, V, x0, loss, *, gtol: float = FIT_GTOL) -> FactorFit:
    r"""Fit the encoders (and learned scalars) to a stable zero of the *training field*,
    the gradient ``loss``'s backend returns pulled back to the flat parameters, from ``x0``:
    :func:`numerics.gradient_check.stable_zero`.  The :class:`FactorFit` has
    ``converged`` iff a stable zero was found, ``cause`` otherwise, and no inverse Hessian."""
    fun = _checked_at_start(family, U, V, loss)
    res = stable_zero(lambda x: fun(x)[1], x0, gtol=gtol, origin=x0)
    p = family.unpack(res.x)
    return FactorFit(G_u=p.G_u, G_v=p.G_v, value=float(fun.value(res.x)), start_values=np.zeros(0),
                     grad_norm=res.residual, converged=res.converged, n_iter=res.n_eval,
                     messages=[res.cause or "stable zero"], extra=p.theta.copy(), cause=res.cause)
