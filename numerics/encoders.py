r"""Linear encoders fitted to a finite batch: the machinery of loss verification
(MATH.md §1, §2, §4).

A :class:`LinearEncoders` family holds a Gaussian model and a similarity; its
parameters are the flattened pair ``x = [G_u.ravel(), G_v.ravel()]`` with
:math:`G_u \in R^{n_e\times n_u}`, :math:`G_v \in R^{n_e\times n_v}` and the
temperature folded into the encoders (:math:`\tau = 1`).  It gives

* the logit matrix of a batch, :math:`F_{ij} = s(G_uu_i, G_vv_j)` (``"dot"``
  or ``"l2"``, :func:`numerics.infonce.logits`), and the pull-back of
  :math:`\partial L/\partial F` to the parameters;
* the model conditionals of the encoders (§4.1, §4.2);
* the invariants through which minimisers are compared, in whitened
  coordinates: the bilinear :math:`B = C_{uu}^{1/2}G_u^TG_vC_{vv}^{1/2}`
  (``"dot"``), or the Gram matrix of :math:`[G_uC_{uu}^{1/2},\ G_vC_{vv}^{1/2}]`
  (``"l2"``, invariant under joint rotations only);
* the whitened :math:`u`-encoder row space, for principal angles.

:func:`fit_batch` minimises a loss of the logit matrix over the parameters
with :func:`numerics.optimize.minimize_factors`.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np

from . import gaussian, variants
from ._validation import InvalidInputError, fail
from .infonce import _logits, as_similarity, infonce_value_and_grad
from .models import GaussianModel
from .optimize import (FactorFit, balanced_factors, finite_difference_grad, finite_difference_objective,
                       minimize_factors)

__all__ = ["LinearEncoders", "fit_batch", "fit_user_batch", "ScaledClip", "loss_inputs",
           "paired_user_fits", "check_user_loss_depends", "user_batch_objective", "loss_on_logits", "population_minimizer",
           "check_depends_on_logits", "nested_sample", "paired_fits", "FIT_GTOL", "SAMPLE_BLOCK"]

#: Stopping tolerance of a batch fit: the optimisation error near
#: :math:`10^{-6}/\mu` for curvature :math:`\mu` is orders of magnitude below
#: the statistical resolution :math:`\sim N^{-1/2}` the verifier works at.
FIT_GTOL = 1e-6


class LinearEncoders:
    """Encoder family of a Gaussian model under ``"dot"``, ``"l2"`` or ``"cosine"``
    similarity (module docstring; cosine normalises the encoder outputs, and has no
    Gaussian model conditionals or bilinear invariant)."""

    def __init__(self, model: GaussianModel, similarity: str = "dot"):
        if not isinstance(model, GaussianModel):
            raise fail("model", model, "a numerics.models.GaussianModel")
        self.model = model
        self.similarity = as_similarity(similarity)
        C_uu, _, C_vv = gaussian.split_covariance(model.cov, model.n_u)
        self.Ru, self.Rv = gaussian.sym_power(C_uu, 0.5), gaussian.sym_power(C_vv, 0.5)
        self.Riu, self.Riv = gaussian.sym_power(C_uu, -0.5), gaussian.sym_power(C_vv, -0.5)
        self._nu = model.n_e * model.n_u

    @property
    def size(self) -> int:
        """Number of parameters, :math:`n_e (n_u + n_v)`."""
        return self.model.n_e * (self.model.n_u + self.model.n_v)

    def split(self, x):
        """``(G_u, G_v)`` of the flattened parameters ``x`` (entries past :attr:`size`, a
        loss's learned scalars, are ignored)."""
        m = self.model
        return x[: self._nu].reshape(m.n_e, m.n_u), x[self._nu: self.size].reshape(m.n_e, m.n_v)

    @staticmethod
    def join(G_u, G_v):
        """The flattened parameters of ``(G_u, G_v)``."""
        return np.concatenate([np.ravel(G_u), np.ravel(G_v)])

    def logits(self, x, U, V):
        """``(F, Za, Zb)``: the batch's logit matrix and the embeddings ``Za = U G_uᵀ``, ``Zb = V G_vᵀ``."""
        G_u, G_v = self.split(x)
        Za, Zb = U @ G_u.T, V @ G_v.T
        return _logits(Za, Zb, 1.0, self.similarity), Za, Zb

    def pullback(self, dF, Za, Zb, U, V):
        r"""Gradient in the parameters from :math:`\partial L/\partial F` (chain rule through
        :math:`F(Z_a, Z_b)`, then :math:`Z_a = UG_u^T`, :math:`Z_b = VG_v^T`)."""
        if self.similarity == "l2":
            dZa = dF @ Zb - dF.sum(1)[:, None] * Za
            dZb = dF.T @ Za - dF.sum(0)[:, None] * Zb
        elif self.similarity == "cosine":
            An, Bn = _unit(Za)[0], _unit(Zb)[0]
            return self.embeddings_pullback(dF @ Bn, dF.T @ An, Za, Zb, U, V)
        else:
            dZa, dZb = dF @ Zb, dF.T @ Za
        return np.concatenate([(dZa.T @ U).ravel(), (dZb.T @ V).ravel()])

    def embed(self, x, U, V):
        """``(za, zb, Za, Zb)``: what reaches a loss of embeddings (normalised rows under
        cosine similarity) and the raw encoder outputs ``Za = U G_uᵀ``, ``Zb = V G_vᵀ``."""
        G_u, G_v = self.split(x)
        Za, Zb = U @ G_u.T, V @ G_v.T
        if self.similarity == "cosine":
            return _unit(Za)[0], _unit(Zb)[0], Za, Zb
        return Za, Zb, Za, Zb

    def embeddings_pullback(self, dza, dzb, Za, Zb, U, V):
        r"""Gradient in the encoder parameters from :math:`\partial L/\partial z_a`,
        :math:`\partial L/\partial z_b` (through the normalisation :math:`z = Z/|Z|` under
        cosine similarity: :math:`\partial_Z = (I - zz^T)\partial_z / |Z|`)."""
        if self.similarity == "cosine":
            (An, na), (Bn, nb) = _unit(Za), _unit(Zb)
            dza = (dza - np.sum(dza * An, axis=1, keepdims=True) * An) / na
            dzb = (dzb - np.sum(dzb * Bn, axis=1, keepdims=True) * Bn) / nb
        return np.concatenate([(dza.T @ U).ravel(), (dzb.T @ V).ravel()])

    def conditionals(self, x):
        r"""Model conditionals ``(N_v, Sigma_v, N_u, Sigma_u)`` of the encoders (MATH.md §4.1, §4.2)."""
        G_u, G_v = self.split(x)
        m = self.model
        if self.similarity == "cosine":
            raise fail("similarity", "cosine", "'dot' or 'l2' for Gaussian model conditionals")
        if self.similarity == "l2":
            return variants.l2_conditionals(G_u, G_v, 1.0, m.cov, m.n_u)
        return gaussian.bilinear_model_conditionals(G_u.T @ G_v, m.cov, m.n_u)

    def invariant(self, x):
        """The whitened invariant of the parameters (module docstring), a 2-D array."""
        G_u, G_v = self.split(x)
        if self.similarity == "cosine":
            raise fail("similarity", "cosine", "'dot' or 'l2' for a whitened invariant")
        if self.similarity == "l2":
            W = np.hstack([G_u @ self.Ru, G_v @ self.Rv])
            return W.T @ W
        return self.Ru @ G_u.T @ G_v @ self.Rv

    def u_subspace(self, x):
        r"""Basis of the whitened :math:`u`-encoder row space, :math:`C_{uu}^{1/2}G_u^T` (n_u, n_e)."""
        G_u, _ = self.split(x)
        return self.Ru @ G_u.T

    def sample(self, rng: np.random.Generator, n: int):
        """``n`` pairs ``(U, V)`` drawn from the model, shapes (n, n_u), (n, n_v)."""
        Z = rng.standard_normal((n, self.model.cov.shape[0])) @ np.linalg.cholesky(self.model.cov).T
        return Z[:, : self.model.n_u], Z[:, self.model.n_u:]


def _unit(Z):
    """Rows of ``Z`` normalised, and their norms (a column); a zero row is an error."""
    n = np.linalg.norm(Z, axis=1, keepdims=True)
    if np.any(n == 0):
        raise fail("encoders", Z, "encoder outputs of non-zero norm under cosine similarity")
    return Z / n, n


def population_minimizer(family: LinearEncoders, rng: np.random.Generator | None = None):
    r"""Parameters of the CLIP loss's population minimiser for the family.

    ``"dot"``: the balanced factors of Proposition G1's :math:`A^*`
    (:func:`numerics.gaussian.lowrank_minimizer`); ``"cosine"`` has no closed
    form and gets the same factors, as a start.  ``"l2"``: a minimiser of the
    closed-form symmetric L2 loss (:func:`numerics.variants.l2_balanced_objective`
    with :math:`\lambda = 1/2`) from four starts.
    """
    m = family.model
    if family.similarity in ("dot", "cosine"):  # cosine has no closed form: A*'s factors start its fits
        return family.join(*balanced_factors(gaussian.lowrank_minimizer(m.cov, m.n_u, m.n_e), m.n_e))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = minimize_factors(variants.l2_balanced_objective(m.cov, m.n_u, 0.5), m.n_u, m.n_v, m.n_e,
                               starts=4, rng=rng, init_scale=0.7, gtol=1e-10, restarts=0)
    return fit.x


def loss_on_logits(loss: Callable, name: str = "loss") -> Callable[[np.ndarray], float]:
    """Wrap ``loss(F)`` so that it returns a finite float or raises InvalidInputError."""

    def value(F):
        try:
            val = loss(F)
        except InvalidInputError:
            raise
        except Exception as exc:
            raise InvalidInputError(f"{name} raised {type(exc).__name__}: {exc}") from exc
        try:
            val = float(val)
        except (TypeError, ValueError):
            raise fail(name, loss, "a callable returning a real number") from None
        if not math.isfinite(val):
            # A non-finite value cannot be minimised; hiding it as +inf would let
            # the optimiser stand still at its start.
            raise fail(name, val, f"a finite value on every {F.shape[0]} x {F.shape[0]} logit "
                                  "matrix (got a non-finite one; is the loss unbounded below?)")
        return val

    return value


def _grad_on_logits(grad, F):
    G = np.asarray(grad(F), dtype=np.float64)
    if G.shape != F.shape:
        raise fail("grad", G, f"an array of shape {F.shape} (dL/dF)")
    if not np.all(np.isfinite(G)):
        raise fail("grad", G, "a finite gradient dL/dF")
    return G


#: Random encoder perturbations used to test that a loss depends on F.
DEPENDENCE_PROBES = 4


def check_depends_on_logits(family, U, V, x, value, rng):
    r"""Refuse a loss whose value does not change with the logits.

    The loss is evaluated at ``x`` and at :data:`DEPENDENCE_PROBES` random
    perturbations of relative size 1/2; if every value agrees with the first
    to within :math:`64\,\epsilon\max(1, |L|)` (rounding), the loss carries no
    information about the encoders and no claim about its minimisers can be
    tested.
    """
    _check_depends(lambda y: value(family.logits(y, U, V)[0]), x, rng, "the logit matrix F")


def _check_depends(value_at, x, rng, what):
    """Raise unless ``value_at`` changes at one of the random perturbations of ``x``."""
    v0 = value_at(x)
    scale = 0.5 * max(1.0, float(np.max(np.abs(x))))
    for _ in range(DEPENDENCE_PROBES):
        if abs(value_at(x + scale * rng.standard_normal(x.shape)) - v0) > \
                64 * np.finfo(np.float64).eps * max(1.0, abs(v0)):
            return
    raise fail("loss", v0, f"a loss that depends on {what} (it returned the same value "
                           f"{v0!r} for {DEPENDENCE_PROBES + 1} different encoders)")


def fit_batch(family: LinearEncoders, U, V, x0, value: Callable[[np.ndarray], float],
              grad: Callable[[np.ndarray], np.ndarray] | None = None, *, joint=None,
              hess_inv=None, maxiter: int = 400, gtol: float = FIT_GTOL) -> FactorFit:
    r"""Minimise a loss of the batch's logit matrix over the family's parameters from ``x0``.

    ``value(F) -> float`` and optionally ``grad(F) -> dL/dF``; ``joint(F) ->
    (value, dL/dF)`` replaces both.  Without a gradient, central differences are
    taken in the :math:`n_e(n_u + n_v)` encoder parameters (not the :math:`N^2`
    logits), step :math:`\epsilon^{1/3}\max(1, |x_i|)`: accurate to about
    :math:`\epsilon^{2/3}`, far below ``gtol``.  ``hess_inv`` seeds the
    quasi-Newton metric (for example the control's fit on the same batch).
    One start, no warning: the caller reads :attr:`FactorFit.converged`.
    """
    def objective(G_u, G_v):
        x = family.join(G_u, G_v)
        F, Za, Zb = family.logits(x, U, V)
        if joint is not None:
            val, dF = joint(F)
            return val, family.split(family.pullback(dF, Za, Zb, U, V))
        if grad is not None:
            return value(F), family.split(family.pullback(_grad_on_logits(grad, F), Za, Zb, U, V))
        return by_differences(G_u, G_v)

    by_differences = finite_difference_objective(
        lambda G_u, G_v: value(family.logits(family.join(G_u, G_v), U, V)[0]))

    m = family.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return minimize_factors(objective, m.n_u, m.n_v, m.n_e, starts=1, init=family.split(x0),
                                gtol=gtol, maxiter=maxiter, restarts=0, hess_inv=hess_inv,
                                warn=False)


# --------------------------------------------------------------------------
# paired fits on nested batches (the data of a verdict)
# --------------------------------------------------------------------------
#: Rows of a sample drawn per seeded block, so that every prefix is reproducible.
SAMPLE_BLOCK = 64


def nested_sample(model: GaussianModel, key, n: int):
    """The first ``n`` pairs of the sample named by the integer tuple ``key``: seeded
    blocks of :data:`SAMPLE_BLOCK` rows, so that any prefix is the same however many
    rows are asked for.  Returns ``(U, V)`` of shapes (n, n_u), (n, n_v)."""
    L = np.linalg.cholesky(model.cov)
    blocks = [np.random.default_rng([*key, b, 104729]).standard_normal((SAMPLE_BLOCK, L.shape[0]))
              for b in range(-(-n // SAMPLE_BLOCK))]
    Z = np.vstack(blocks)[:n] @ L.T
    return Z[:, : model.n_u], Z[:, model.n_u:]


def _clip_value_and_grad(F):
    r"""CLIP loss :math:`L_N - \log N` and :math:`(P + Q)/(2N) - I/N` (MATH.md §2), one pass."""
    value, grad = infonce_value_and_grad(F)
    return value - math.log(F.shape[0]), grad


def paired_fits(family: LinearEncoders, U, V, sizes, x_start, value, grad=None, *,
                rng: np.random.Generator, state=None, probe: bool = False,
                perturbation: float = 0.3):
    r"""Fit the CLIP loss (the control) and a variant on the nested batches ``U[:N], V[:N]``.

    At each size the control is fitted first, from its previous fit (``x_start``
    at the first size) with its previous inverse Hessian; the variant then
    starts from its own previous fit, and at the first size from the
    control's fit moved by a random perturbation of relative size
    ``perturbation`` (never at the control's fit itself: a loss whose
    gradient vanishes there, flat or stationary at CLIP's point by accident,
    must not pass by standing still), with the control's metric.  With
    ``probe``, the variant is first checked to depend on the logits
    (:func:`check_depends_on_logits`).

    Returns ``(records, state)``: one dict per size (``N``, ``x_c``, ``x_u``,
    ``converged``, ``moved``, ``iterations``) and the state to continue with.
    """
    x_c, H_c, x_u, H_u = state if state is not None else (x_start, None, None, None)
    out = []
    for N in sizes:
        Ub, Vb = U[:N], V[:N]
        fit_c = fit_batch(family, Ub, Vb, x_c, None, joint=_clip_value_and_grad, hess_inv=H_c)
        x_c, H_c = fit_c.x, fit_c.hess_inv
        if x_u is None:
            if probe:
                check_depends_on_logits(family, Ub, Vb, x_c, value, rng)
            x0 = x_c + perturbation * np.linalg.norm(x_c) / math.sqrt(x_c.size) * rng.standard_normal(x_c.shape)
            H0 = H_c
        else:
            x0, H0 = x_u, H_u
        fit_u = fit_batch(family, Ub, Vb, x0, value, grad, hess_inv=H0)
        x_u, H_u = fit_u.x, fit_u.hess_inv
        out.append({"N": N, "x_c": x_c, "x_u": x_u, "converged": fit_u.converged,
                    "moved": float(np.linalg.norm(x_u - x0)), "iterations": fit_u.n_iter})
    return out, (x_c, H_c, x_u, H_u)


# --------------------------------------------------------------------------
# losses with their own scalars, of logits or of embeddings (numerics.user_loss)
# --------------------------------------------------------------------------
class ScaledClip:
    r"""The control under cosine similarity: CLIP's loss :math:`L_N(sF) - \log N` of the
    logits times a learned scale :math:`s` (CLIP learns its temperature), with the
    interface of :class:`numerics.user_loss.UserLoss` (``inputs="logits"``)."""

    inputs = "logits"
    roles = {"logit_scale": "scale"}

    def __init__(self, scale: float = 2.0, learn: bool = True):
        self.scale, self.learn = float(scale), ["logit_scale"] if learn else []
        self.theta0 = np.array([self.scale]) if learn else np.zeros(0)
        self.size = self.theta0.size

    @staticmethod
    def has_gradient() -> bool:
        return True

    def multiplier(self, theta) -> float:
        return float(theta[0]) if self.size else self.scale

    def value_and_grad(self, F, _b, theta):
        s = self.multiplier(theta)
        val, g = _clip_value_and_grad(s * F)
        return val, s * g, None, np.array([float(np.sum(g * F))])[: self.size]

    def value(self, F, _b, theta):
        return self.value_and_grad(F, None, theta)[0]


def loss_inputs(family: LinearEncoders, x, U, V, inputs: str):
    """``(a, b, Za, Zb)``: the loss's inputs at encoder parameters ``x`` (the logit matrix and
    None, or the two embeddings) and the raw encoder outputs."""
    za, zb, Za, Zb = family.embed(x, U, V)
    if inputs == "logits":
        return _logits(Za, Zb, 1.0, family.similarity), None, Za, Zb
    return za, zb, Za, Zb


def user_batch_objective(family: LinearEncoders, U, V, loss):
    """``fun(x) -> (value, gradient)`` of ``loss`` on the batch, in ``x = [G_u, G_v, theta]``
    (the loss's gradient pulled back, or central differences without one)."""
    ng = family.size

    def value(x):
        a, b, _, _ = loss_inputs(family, x[:ng], U, V, loss.inputs)
        return loss.value(a, b, x[ng:])

    def fun(x):
        x = np.asarray(x, dtype=np.float64)
        if not loss.has_gradient():
            return value(x), finite_difference_grad(value, x)
        a, b, Za, Zb = loss_inputs(family, x[:ng], U, V, loss.inputs)
        val, da, db, dtheta = loss.value_and_grad(a, b, x[ng:])
        if loss.inputs == "logits":
            dx = family.pullback(da, Za, Zb, U, V)
        else:
            dx = family.embeddings_pullback(da, db, Za, Zb, U, V)
        return val, np.concatenate([dx, dtheta])

    return fun


def fit_user_batch(family: LinearEncoders, U, V, x0, loss, *, hess_inv=None, maxiter: int = 400,
                   gtol: float = FIT_GTOL) -> FactorFit:
    r"""Minimise ``loss`` (a :class:`numerics.user_loss.UserLoss` or :class:`ScaledClip`) on
    the batch over the encoders and the loss's learned scalars jointly, from ``x0 =
    [G_u, G_v, theta]``.  Gradients come from the loss (autograd, or the user's); without
    them, central differences in all the parameters, as :func:`fit_batch`."""
    ng = family.size
    fun = user_batch_objective(family, U, V, loss)

    def objective(G_u, G_v, theta=np.zeros(0)):
        val, g = fun(np.concatenate([family.join(G_u, G_v), theta]))
        dG_u, dG_v = family.split(g[:ng])
        return val, ((dG_u, dG_v, g[ng:]) if loss.size else (dG_u, dG_v))

    m = family.model
    init = family.split(x0[:ng])
    if loss.size:
        init = (*init, np.asarray(x0[ng:], dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return minimize_factors(objective, m.n_u, m.n_v, m.n_e, starts=1, init=init, gtol=gtol,
                                maxiter=maxiter, restarts=0, hess_inv=hess_inv, warn=False,
                                n_extra=loss.size)


def check_user_loss_depends(family: LinearEncoders, U, V, x, loss, rng):
    """:func:`check_depends_on_logits` for a loss with its own scalars, at their initial values."""
    def value(y):
        a, b, _, _ = loss_inputs(family, y, U, V, loss.inputs)
        return loss.value(a, b, loss.theta0)

    _check_depends(value, x, rng, f"its {loss.inputs}")


def paired_user_fits(family: LinearEncoders, U, V, sizes, x_start, loss, control=None, *,
                     rng: np.random.Generator, state=None, probe: bool = False,
                     perturbation: float = 0.3):
    r""":func:`paired_fits` for a loss with its own learned scalars (a
    :class:`numerics.user_loss.UserLoss`): the control is CLIP (``control=None``) or
    ``control`` (a :class:`ScaledClip`, whose scale is learned); the variant starts
    from the control's encoders, perturbed, and its own initial scalars.
    Records hold ``x_c`` and ``x_u`` with the learned scalars appended."""
    ng = family.size
    x_c, H_c, x_u, H_u = state if state is not None else (x_start, None, None, None)
    out = []
    for N in sizes:
        Ub, Vb = U[:N], V[:N]
        if control is None:
            fit_c = fit_batch(family, Ub, Vb, x_c, None, joint=_clip_value_and_grad, hess_inv=H_c)
        else:
            fit_c = fit_user_batch(family, Ub, Vb, x_c, control, hess_inv=H_c)
        x_c, H_c = fit_c.x, fit_c.hess_inv
        if x_u is None:
            G = x_c[:ng]
            if probe:
                check_user_loss_depends(family, Ub, Vb, G, loss, rng)
            G0 = G + perturbation * np.linalg.norm(G) / math.sqrt(G.size) * rng.standard_normal(G.shape)
            if family.similarity != "cosine":
                # Start at the control's effective similarity: the variant's own logit
                # multiplier (a fixed or initial logit scale) is divided out of the encoders.
                m_c = 1.0 if control is None else control.multiplier(x_c[ng:])
                ratio = abs(loss.multiplier(loss.theta0)) / abs(m_c)
                if math.isfinite(ratio) and ratio > 0:
                    G0 = G0 / math.sqrt(ratio)
                theta0 = loss.theta0
            else:  # the encoders' norm is invisible: match the scale through the loss's own
                theta0 = loss.matched_start(control.multiplier(x_c[ng:])) \
                    if control is not None and hasattr(loss, "matched_start") else loss.theta0
            x0, H0 = np.concatenate([G0, theta0]), None
        else:
            x0, H0 = x_u, H_u
        fit_u = fit_user_batch(family, Ub, Vb, x0, loss, hess_inv=H0)
        x_u, H_u = fit_u.x, fit_u.hess_inv
        out.append({"N": N, "x_c": x_c, "x_u": x_u, "converged": fit_u.converged,
                    "moved": float(np.linalg.norm(x_u - x0)), "iterations": fit_u.n_iter})
    return out, (x_c, H_c, x_u, H_u)
