r"""A contrastive loss as practitioners write it, made into a float64 value and gradient.

The verifier (:func:`proofs_checks.verify_variant`) fits linear encoders under
a user's loss.  Losses come in several shapes, and :class:`UserLoss` takes
each as it is, with no wrapper:

* ``inputs="logits"``: ``loss(F, **params)`` of the ``N x N`` logit matrix
  (positives on the diagonal);
* ``inputs="embeddings"``: ``loss(za, zb, **params)`` of the ``N x n_e``
  encoder outputs (normalised first under cosine similarity), for example
  ``open_clip.loss.ClipLoss()(image_features, text_features, logit_scale)``;
* ``params``: the loss's own scalars (``{"logit_scale": 10.0}``), some of them
  learned jointly with the encoders (``learn``); a ``torch.nn.Module``'s own
  ``nn.Parameter`` s are learned too.

Backends.  ``"numpy"`` takes the user's gradient (``grad=``, ``loss.grad``, or
``loss.value_and_grad`` returning both in one pass, which spares the loss computing its
forward pass twice) or leaves the caller to take finite differences; ``"torch"`` and ``"jax"``
differentiate with the framework's autograd in float64
(:mod:`numerics.loss_backends`, which also picks the backend from the loss).

The control.  :class:`ClipControl` is CLIP itself behind the same interface
(its logit scale fixed, or learned under cosine similarity), so that the
control and the variant are fitted by the same code (:mod:`numerics.batch_fit`).

Roles.  What reaches a softmax is the *effective* similarity
:math:`f = m\,s(z_a, z_b) + b`: a parameter may scale the logits (``m``), divide
them (a temperature) or shift them (``b``).  :meth:`UserLoss.detect_roles`
finds each scalar's role by testing the identity that defines it on a random
batch, never by its name: ``scale`` if :math:`L(\sqrt c z_a, \sqrt c z_b; p) =
L(z_a, z_b; cp)`, ``temperature`` if the same holds with :math:`p/c`,
``log_scale`` with :math:`p + \log c` (a learnable log-temperature, as CLIP
models keep it), ``bias`` if adding :math:`c` to every similarity equals adding
:math:`c\,m` to :math:`p`.  A learned scalar with none of these roles whose every
change equals a rescaling of the similarities, in a parametrisation the verifier
does not know (a temperature ``softplus(raw) + 0.01``, a clamped or sigmoid scale),
is ``reparametrised_scale``: :math:`L(z_a, z_b; p) = L(\sqrt{c(p)}\,z_a, \sqrt{c(p)}\,z_b;
p_0)`, with :math:`c(p)` solved numerically on a fixed batch and the identity
confirmed on two others.  Only the ratio :math:`c(p) = m(p)/m(p_0)` is identified,
never :math:`m(p_0)`: :attr:`UserLoss.unidentified_scale` names such scalars, and
claims whose statistic sees the scale are compared modulo a common factor.  A
``torch.nn.Module``'s one-element parameters are tested too.
:meth:`UserLoss.multiplier` is then :math:`m` at given parameters.
"""
from __future__ import annotations

import copy
import math

from scipy.optimize import brentq

import numpy as np

from ._validation import InvalidInputError, LossOverflow, fail
from .infonce import _logits, infonce_value_and_grad
from .loss_backends import (BACKENDS, _is_torch_module, import_backend, jax_value_and_grad, resolve_backend,
                            torch_value_and_grad)
from .optimize import finite_difference_grad

__all__ = ["INPUTS", "BACKENDS", "ROLES", "UserLoss", "ClipControl", "resolve_backend", "import_backend"]

INPUTS = ("logits", "embeddings")
ROLES = ("scale", "log_scale", "temperature", "bias", "reparametrised_scale")
#: Relative agreement that confirms a role identity: the two sides differ by
#: rounding only, a few hundred float64 operations on O(1) numbers (~1e-13);
#: a parameter without the role changes the loss by O(1e-2) or more at c = 1.7.
ROLE_RTOL = 1e-8
#: Relative change of a learned scalar with no known role, to test whether it acts
#: as a rescaling of the similarities (the ``reparametrised_scale`` identity).
REPARAMETRISED_STEP = 0.25


class UserLoss:
    r"""A user's loss with its parameters, evaluated in float64 with gradients (module docstring).

    Parameters
    ----------
    loss : callable or torch.nn.Module
    inputs : {"logits", "embeddings"}
    params : dict of str to float, optional
        Initial values of the loss's own scalars, passed by keyword.
    learn : sequence of str, optional
        The names in ``params`` minimised with the encoders (default: all).
    backend : {"auto", "numpy", "torch", "jax"}
    grad : callable, optional
        NumPy backend only: ``grad(F, **params) -> dL/dF`` (or ``grad(za, zb,
        **params) -> (dL/dza, dL/dzb)``); defaults to ``loss.grad``.  Without either, a
        ``loss.value_and_grad(F, **params) -> (value, dL/dF)`` (likewise for embeddings)
        gives both at once; the value alone still comes from ``loss``.
    name : str
        Used in error messages.

    Attributes
    ----------
    learned : list of str
        Names of the learned scalars, then ``module.<name>`` of the module's
        parameters, in the order of :attr:`theta0`.
    theta0 : ndarray
        Their initial values, flattened.
    roles : dict
        Role of each scalar parameter (:meth:`detect_roles`), learned or fixed.
    """

    def __init__(self, loss, *, inputs: str = "logits", params=None, learn=None,
                 backend: str = "auto", grad=None, name: str = "loss"):
        if not callable(loss):
            raise fail("loss", loss, "a callable loss, or a torch.nn.Module")
        if inputs not in INPUTS:
            raise fail("inputs", inputs, "'logits' or 'embeddings'")
        self.inputs, self.name = inputs, name
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise fail("params", params, "a dict of parameter name to initial value")
        self.params = {}
        for k, v in params.items():
            if not isinstance(k, str) or not k.isidentifier():
                raise fail("params", k, "parameter names that are Python identifiers")
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(v)):
                raise fail(f"params[{k!r}]", v, "a finite real number")
            self.params[k] = float(v)
        if learn is None:
            learn = list(self.params)
        if isinstance(learn, str) or not all(isinstance(k, str) for k in learn):
            raise fail("learn", learn, "a list of names from params")
        for k in learn:
            if k not in self.params:
                raise fail("learn", k, f"a name in params ({', '.join(self.params) or 'none given'})")
        self.learn = list(dict.fromkeys(learn))
        self.fixed = {k: v for k, v in self.params.items() if k not in self.learn}
        self.loss = loss
        self.backend = resolve_backend(loss, backend, self._numpy_probe)
        self.grad = self._both = None
        if self.backend == "numpy":
            self.grad = grad if grad is not None else getattr(loss, "grad", None)
            if self.grad is not None and not callable(self.grad):
                raise fail("grad", self.grad, "a callable, or None")
            if self.grad is None and getattr(loss, "value_and_grad", None) is not None:
                self._both = loss.value_and_grad
                if not callable(self._both):
                    raise fail("loss.value_and_grad", self._both, "a callable returning (value, gradient), or None")
                self.grad = self._grad_of_both
        elif grad is not None:
            raise fail("grad", grad, f"None with backend={self.backend!r} (autograd gives the gradient)")
        self._module_params = []
        if self.backend in ("torch", "jax"):
            import_backend(self.backend)
        if self.backend == "torch":
            if _is_torch_module(loss):
                self.loss = copy.deepcopy(loss).double()
                self._module_params = [(n, p) for n, p in self.loss.named_parameters() if p.requires_grad]
        self.learned = self.learn + [f"module.{n}" for n, _ in self._module_params]
        theta = [self.params[k] for k in self.learn]
        for _, p in self._module_params:
            theta.extend(p.detach().cpu().numpy().ravel().tolist())
        self.theta0 = np.array(theta, dtype=np.float64)
        self.roles = {}
        self._scale_solver = None

    def __getstate__(self):  # a compiled JAX function does not pickle (Dask workers rebuild it)
        state = dict(self.__dict__)
        state.pop("_jitted", None)
        return state

    # ------------------------------------------------------------------
    def _numpy_probe(self):
        rng = np.random.default_rng(0)
        if self.inputs == "logits":
            return self.loss(rng.standard_normal((4, 4)), **self.params)
        return self.loss(rng.standard_normal((4, 2)), rng.standard_normal((4, 2)), **self.params)

    @property
    def size(self) -> int:
        """Number of learned values (the length of ``theta``)."""
        return self.theta0.size

    def kwargs(self, theta) -> dict:
        """The keyword parameters at ``theta`` (learned) and the fixed values."""
        out = dict(self.fixed)
        out.update({k: float(theta[i]) for i, k in enumerate(self.learn)})
        return out

    def _args(self, a, b):
        return (a,) if self.inputs == "logits" else (a, b)

    # ------------------------------------------------------------------
    def value(self, a, b, theta) -> float:
        """The loss at inputs ``a`` (F, or za) and ``b`` (zb, or None) and learned values ``theta``."""
        if self.backend == "numpy":
            return self._finite(self._call_numpy(a, b, theta))
        return self.value_and_grad(a, b, theta)[0]

    def _call_numpy(self, a, b, theta):
        try:
            return self.loss(*self._args(a, b), **self.kwargs(theta))
        except InvalidInputError:
            raise
        except Exception as exc:
            raise InvalidInputError(f"loss raised {type(exc).__name__}: {exc} (loss {self.name!r})") from exc

    def _finite(self, val) -> float:
        """The loss's value as a float, or an error that says what is wrong with it."""
        if isinstance(val, (str, bytes)) or val is None:
            raise fail("loss", val, "a loss returning one real number")
        arr = np.asarray(val)
        if arr.dtype == object:
            raise fail("loss", val, "a loss returning one real number (got an object of type "
                                       f"{type(val).__name__})")
        if arr.size != 1:
            raise fail("loss", val, f"a loss returning one real number, not an array of shape "
                                       f"{arr.shape}: reduce it (for example with .mean() or .sum())")
        if np.iscomplexobj(arr):
            raise fail("loss", val, "a real-valued loss (got a complex number)")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
                or arr.dtype == bool):
            raise fail("loss", val, "a loss returning one real number")
        val = float(arr.reshape(()))
        if not math.isfinite(val):
            err = fail("loss", val, "a finite value on every batch (got a non-finite one; "
                                    "is the loss unbounded below?)")
            raise err if val == -math.inf else LossOverflow(str(err))
        return val

    def has_gradient(self) -> bool:
        """Whether :meth:`value_and_grad` can give gradients (autograd, or the user's ``grad``)."""
        return self.backend != "numpy" or self.grad is not None

    def value_and_grad(self, a, b, theta):
        """``(value, dL/da, dL/db, dL/dtheta)``; ``dL/db`` is None for logit inputs."""
        if self.backend == "torch":
            return torch_value_and_grad(self, a, b, theta)
        if self.backend == "jax":
            return jax_value_and_grad(self, a, b, theta)
        if self.grad is None:
            raise fail("grad", None, "a gradient for the numpy backend (or let the caller difference)")
        try:
            if self._both is not None:
                val, g = self._pair(self._both(*self._args(a, b), **self.kwargs(theta)))
            else:
                val = self._call_numpy(a, b, theta)
                g = self.grad(*self._args(a, b), **self.kwargs(theta))
        except InvalidInputError:
            raise
        except Exception as exc:
            raise InvalidInputError(f"{'loss.value_and_grad' if self._both is not None else 'grad'} raised "
                                    f"{type(exc).__name__}: {exc}") from exc
        val = self._finite(val)
        if self.inputs == "logits":
            da, db = self._checked_grad(g, a.shape), None
        else:
            if not isinstance(g, (tuple, list)) or len(g) != 2:
                raise fail("grad", g, "a pair (dL/dza, dL/dzb) for inputs='embeddings'")
            da, db = self._checked_grad(g[0], a.shape), self._checked_grad(g[1], b.shape)
        # a few scalars: central differences
        theta = np.asarray(theta, dtype=float)
        dtheta = finite_difference_grad(lambda t: self._finite(self._call_numpy(a, b, t)), theta) \
            if theta.size else np.zeros(0)
        return val, da, db, dtheta

    def _grad_of_both(self, *args, **kwargs):
        return self._pair(self._both(*args, **kwargs))[1]

    @staticmethod
    def _pair(out):
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise fail("loss.value_and_grad", out, "a pair (value, gradient)")
        return out

    @staticmethod
    def _checked_grad(g, shape):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != shape:
            raise fail("grad", g, f"an array of shape {shape}")
        if not np.all(np.isfinite(g)):
            raise fail("grad", g, "a finite gradient")
        return g

    # ------------------------------------------------------------------
    def scalar_values(self, theta) -> dict:
        """Every scalar of the loss at ``theta``: fixed and learned ``params``, and the
        module's one-element parameters (``module.<name>``)."""
        out = self.kwargs(theta)
        off = len(self.learn)
        for n, p in self._module_params:
            if p.numel() == 1:
                out[f"module.{n}"] = float(theta[off])
            off += p.numel()
        return out

    def _with(self, theta, changes):
        """``theta`` and the fixed values with some scalars changed (by name)."""
        t, fixed = np.array(theta, dtype=float), dict(self.fixed)
        for k, v in changes.items():
            if k in fixed:
                fixed[k] = v
            else:
                t[self.learn.index(k) if k in self.learn else self._offset(k)] = v
        return t, fixed

    def _offset(self, name):
        off = len(self.learn)
        for n, p in self._module_params:
            if f"module.{n}" == name:
                return off
            off += p.numel()
        raise KeyError(name)

    def multiplier(self, theta) -> float:
        r"""The factor :math:`m` the scale, log-scale and temperature roles put on the similarity."""
        vals = self.scalar_values(theta)
        m = 1.0
        for k, role in self.roles.items():
            if role == "scale":
                m *= vals[k]
            elif role == "log_scale":
                m *= math.exp(vals[k])
            elif role == "temperature":
                m /= vals[k]
            elif role == "reparametrised_scale":
                m *= math.exp(self._scale_solver.log_ratio(k, vals[k]))
        return m

    @property
    def unidentified_scale(self) -> list:
        """The learned scalars that rescale the similarities in a parametrisation known
        only up to a constant factor (role ``reparametrised_scale``): with them, the loss's
        logit multiplier is known up to that factor."""
        return [k for k, r in self.roles.items() if r == "reparametrised_scale"]

    def matched_start(self, target: float) -> np.ndarray:
        """Initial learned values with the logit multiplier moved to ``target`` through the
        first learned scalar with a multiplicative role (the others unchanged), so that a
        fit under cosine similarity starts at the control's effective scale."""
        theta = self.theta0.copy()
        m = self.multiplier(theta)
        if not (math.isfinite(m) and m != 0 and math.isfinite(target) and target > 0):
            return theta
        for k, role in self.roles.items():
            if k in self.fixed or role in ("bias", "reparametrised_scale"):
                continue  # a reparametrised scale's absolute value is not known
            i = self.learn.index(k) if k in self.learn else self._offset(k)
            ratio = target / m
            if role == "scale":
                theta[i] *= ratio
            elif role == "temperature":
                theta[i] /= ratio
            elif ratio > 0:
                theta[i] += math.log(ratio)
            else:
                continue
            return theta
        return theta

    def scale_invariances(self, similarity: str, rng: np.random.Generator, n: int = 8, n_e: int = 2) -> list:
        r"""Which encoder's norm the loss cannot see: ``"u"`` if
        :math:`L(c\,z_a, z_b) = L(z_a, z_b)` and ``"v"`` if :math:`L(z_a, c\,z_b) = L(z_a, z_b)`
        for two scales :math:`c` on a random batch (to :data:`ROLE_RTOL`), the loss's scalars at
        their initial values.  A loss that normalises its inputs has both; under dot or L2
        similarity its minimisers then form rays along which the encoders' norms run free.
        Under cosine similarity the family itself normalises, and the answer is ``[]``."""
        if similarity == "cosine":
            return []
        za, zb = rng.standard_normal((n, n_e)), rng.standard_normal((n, n_e))

        def at(a, b):
            if self.inputs == "logits":
                return self.value(_logits(a, b, 1.0, similarity), None, self.theta0)
            return self.value(a, b, self.theta0)

        base = at(za, zb)
        same = lambda x: abs(x - base) <= ROLE_RTOL * max(1.0, abs(x), abs(base))  # noqa: E731
        if same(at(rng.standard_normal(za.shape), rng.standard_normal(zb.shape))):
            return []  # blind to everything: numerics.batch_fit.check_depends refuses it
        out = []
        if all(same(at(c * za, zb)) for c in (0.37, 2.9)):
            out.append("u")
        if all(same(at(za, c * zb)) for c in (0.37, 2.9)):
            out.append("v")
        return out

    def standardises_features(self, similarity: str, rng: np.random.Generator, n: int = 8, n_e: int = 3) -> bool:
        r"""Whether the loss sees only batch-standardised features: :math:`L(z_aD_a, z_bD_b) =
        L(z_a, z_b)` for random positive diagonal :math:`D_a, D_b` (each feature's scale, on
        each side), to :data:`ROLE_RTOL`, on a random batch; Barlow Twins-like losses.  Its
        minimisers then run along every feature's scale, which moves every statistic but
        the subspace and the rank (:func:`numerics.fit_statistics.rank_profile`)."""
        if similarity == "cosine" or self.inputs == "logits":
            return False  # unit rows, or only F: the features' scales are not the loss's to see
        za, zb = rng.standard_normal((n, n_e)), rng.standard_normal((n, n_e))
        base = self.value(za, zb, self.theta0)
        for _ in range(2):
            Da, Db = np.exp(rng.uniform(-1, 1, n_e)), np.exp(rng.uniform(-1, 1, n_e))
            x = self.value(za * Da, zb * Db, self.theta0)
            if abs(x - base) > ROLE_RTOL * max(1.0, abs(x), abs(base)):
                return False
        return True

    def detect_roles(self, similarity: str, rng: np.random.Generator, n: int = 8, n_e: int = 2) -> dict:
        r"""Find the role of each scalar by its defining identity on a random batch (module
        docstring): ``scale`` (:math:`p \to cp`), ``log_scale`` (:math:`p \to p + \log c`, as
        a learnable log-temperature), ``temperature`` (:math:`p \to p/c`) or ``bias``."""
        za, zb = rng.standard_normal((n, n_e)), rng.standard_normal((n, n_e))
        if similarity == "cosine":
            za /= np.linalg.norm(za, axis=1, keepdims=True)
            zb /= np.linalg.norm(zb, axis=1, keepdims=True)
        theta = self.theta0.copy()
        c = 1.7

        def at(za, zb, changes):  # unit rows under cosine are given (their dot products for F)
            return self._loss_at(za, zb, theta, similarity, changes)

        def same(x, y):
            return abs(x - y) <= ROLE_RTOL * max(1.0, abs(x), abs(y))

        roles = {}
        vals = self.scalar_values(theta)
        scaled = at(math.sqrt(c) * za, math.sqrt(c) * zb, {})
        for k, v in vals.items():
            tries = [("log_scale", v + math.log(c))]
            if v != 0:
                tries = [("scale", c * v), ("temperature", v / c)] + tries
            for role, moved in tries:
                try:
                    if same(scaled, at(za, zb, {k: moved})):
                        roles[k] = role
                        break
                except InvalidInputError:
                    break
        self.roles = roles
        m = self.multiplier(theta)
        if similarity != "l2":  # adding c to every dot product: one more coordinate
            za1 = np.hstack([za, np.full((n, 1), math.sqrt(c))])
            zb1 = np.hstack([zb, np.full((n, 1), math.sqrt(c))])
            shifted = at(za1, zb1, {})
            for k, v in vals.items():
                if k in roles:
                    continue
                try:
                    if same(shifted, at(za, zb, {k: v + c * m})):
                        roles[k] = "bias"
                except InvalidInputError:
                    continue
        self.roles = roles
        solver = _ScaleSolver(self, similarity, theta, rng)
        for k in self.learned:
            if k not in roles and k in vals and solver.confirms(k, vals[k]):
                roles[k] = "reparametrised_scale"
                self._scale_solver = solver
        self.roles = roles
        return roles

    def _loss_at(self, za, zb, theta, similarity, changes=None):
        """The loss on embeddings ``za, zb`` (or their logits, for a loss of F) at learned
        values ``theta`` with some scalars changed by name."""
        if self.inputs == "logits":
            a, b = _logits(za, zb, 1.0, "l2" if similarity == "l2" else "dot"), None
        else:
            a, b = za, zb
        t, fixed = self._with(theta, changes or {})
        saved, self.fixed = self.fixed, fixed
        try:
            return self.value(a, b, t)
        finally:
            self.fixed = saved


class _ScaleSolver:
    r"""The ``reparametrised_scale`` identity of a learned scalar :math:`p`, solved numerically:
    :math:`\ell(p) = \log c(p)` with :math:`L(z; p) = L(e^{\ell/2}z; p_0)`.

    :math:`\ell` is solved, as :math:`L(e^{-\ell/2}z; p) = L(z; p_0)`, on a fixed *aligned*
    batch (four unit rows at right angles, each paired with a nearby unit row), where the
    loss of :math:`e^{-\ell/2}z` is monotone in :math:`\ell` for a contrastive loss (the positives dominate), by bracketing outward from
    the last solution and Brent's method to :math:`\ell` within :math:`10^{-13}`.  The identity
    is confirmed, with the solved :math:`c`, on two random batches (to :data:`ROLE_RTOL`): a
    scalar that does anything other than rescale the similarities fails there.
    """

    def __init__(self, loss: UserLoss, similarity: str, theta0, rng: np.random.Generator):
        self.loss, self.similarity, self.theta0 = loss, similarity, np.array(theta0, dtype=float)
        self.p0 = loss.scalar_values(self.theta0)
        angles = np.pi / 2 * np.arange(4) + 0.3 * rng.standard_normal(4)
        za = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        zb = za + 0.2 * rng.standard_normal(za.shape)
        self.za, self.zb = za, zb / np.linalg.norm(zb, axis=1, keepdims=True)
        self.checks = [(rng.standard_normal((n, 2)), rng.standard_normal((n, 2))) for n in (6, 9)]
        self._cache = {}

    def _at(self, za, zb, k, value, log_c=0.0):
        r = math.exp(log_c / 2)
        return self.loss._loss_at(r * za, r * zb, self.theta0, self.similarity, {k: value})

    def log_ratio(self, k: str, value: float) -> float:
        r""":math:`\ell = \log(m(p)/m(p_0))` for scalar ``k`` at ``value`` (NaN if unsolvable)."""
        key = (k, float(value))
        if float(value) == self.p0[k]:
            return 0.0
        if key in self._cache:
            return self._cache[key]
        known = [(abs(v - value), l) for (kk, v), l in self._cache.items() if kk == k and math.isfinite(l)]
        guess = min(known)[1] if known else 0.0
        # L(e^{-l/2} z; p) = L(z; p0): the batch is scaled on the side of p, so that both
        # sides are evaluated at the reference's effective scale (no saturated loss, whose
        # rounding would blur the root, however large m(p)/m(p0) is)
        target = self._at(self.za, self.zb, k, self.p0[k])
        h = lambda l: target - self._at(self.za, self.zb, k, value, -l)  # noqa: E731
        out = math.nan
        try:
            h0 = h(guess)
            if h0 == 0:
                out = guess
            else:
                for step in (0.25, 0.5, 1, 2, 4, 8, 16, 32):
                    lo, hi = guess - step, guess + step
                    f_lo, f_hi = h(lo), h(hi)
                    if (f_lo < 0) != (h0 < 0):
                        out = brentq(h, lo, guess, xtol=1e-13, rtol=4 * np.finfo(float).eps)
                        break
                    if (f_hi < 0) != (h0 < 0):
                        out = brentq(h, guess, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps)
                        break
        except InvalidInputError:
            out = math.nan
        self._cache[key] = out
        return out

    def confirms(self, k: str, value: float) -> bool:
        """Whether moving ``k`` equals rescaling the similarities, at two values of ``k``."""
        step = REPARAMETRISED_STEP * max(1.0, abs(value))
        for moved in (value + step, value - step):
            try:
                log_c = self.log_ratio(k, moved)
                if not math.isfinite(log_c) or abs(log_c) < 1e-6:
                    return False  # no solution, or k does not move the loss's scale
                for za, zb in self.checks:
                    x, y = self._at(za, zb, k, moved), self._at(za, zb, k, value, log_c)
                    if abs(x - y) > ROLE_RTOL * max(1.0, abs(x), abs(y)):
                        return False
            except InvalidInputError:
                return False
        return True


class ClipControl:
    r"""The control: CLIP's loss :math:`L_N(sF) - \log N` (MATH.md §2) of the logits
    times a scale :math:`s`, with the interface of :class:`UserLoss` (``inputs="logits"``).

    ``learn=False`` fixes :math:`s` (``scale=1``: CLIP with the temperature folded
    into the encoders, the control under dot and L2 similarity); ``learn=True``
    learns it with the encoders, as CLIP learns its temperature (the control under
    cosine similarity, where the encoders cannot carry the scale).
    """

    inputs = "logits"

    def __init__(self, scale: float = 1.0, learn: bool = False):
        self.scale = float(scale)
        self.learned = ["logit_scale"] if learn else []
        self.roles = {"logit_scale": "scale"}
        self.theta0 = np.array([self.scale]) if learn else np.zeros(0)

    @property
    def size(self) -> int:
        return self.theta0.size

    @staticmethod
    def has_gradient() -> bool:
        return True

    def multiplier(self, theta) -> float:
        return float(theta[0]) if self.size else self.scale

    #: CLIP's scale is its own parameter: known, not up to a factor.
    unidentified_scale: list = []

    @staticmethod
    def standardises_features(similarity, rng) -> bool:
        """CLIP sees each feature's scale."""
        return False

    def matched_start(self, target: float) -> np.ndarray:
        """Initial learned values with the scale at ``target`` (when it is learned)."""
        return np.array([float(target)]) if self.size else self.theta0.copy()

    def value_and_grad(self, F, _b, theta):
        s = self.multiplier(theta)
        val, g = infonce_value_and_grad(s * F)
        return val - math.log(F.shape[0]), s * g, None, np.array([float(np.sum(g * F))])[: self.size]

    def value(self, F, _b, theta):
        return self.value_and_grad(F, None, theta)[0]
