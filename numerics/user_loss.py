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

Backends.  ``"numpy"`` takes the user's gradient (``grad=`` or ``loss.grad``)
or leaves the caller to take finite differences; ``"torch"`` and ``"jax"``
differentiate with the framework's autograd in float64.  Neither framework is
imported unless it is used (:func:`resolve_backend`).

Roles.  What reaches a softmax is the *effective* similarity
:math:`f = m\,s(z_a, z_b) + b`: a parameter may scale the logits (``m``), divide
them (a temperature) or shift them (``b``).  :meth:`UserLoss.detect_roles`
finds each scalar's role by testing the identity that defines it on a random
batch, never by its name: ``scale`` if :math:`L(\sqrt c z_a, \sqrt c z_b; p) =
L(z_a, z_b; cp)`, ``temperature`` if the same holds with :math:`p/c`,
``log_scale`` with :math:`p + \log c` (a learnable log-temperature, as CLIP
models keep it), ``bias`` if adding :math:`c` to every similarity equals adding
:math:`c\,m` to :math:`p`.  A ``torch.nn.Module``'s one-element parameters are
tested too.  :meth:`UserLoss.multiplier` is then :math:`m` at given parameters.
"""
from __future__ import annotations

import copy
import importlib
import math
import sys
from typing import Callable

import numpy as np

from ._validation import InvalidInputError, fail
from .infonce import _logits
from .optimize import finite_difference_grad

__all__ = ["INPUTS", "BACKENDS", "ROLES", "UserLoss", "resolve_backend", "import_backend"]

INPUTS = ("logits", "embeddings")
BACKENDS = ("numpy", "torch", "jax")
ROLES = ("scale", "log_scale", "temperature", "bias")
#: How to install each optional backend.
INSTALL = {"torch": 'pip install ".[torch]"  (or: pip install torch)',
           "jax": 'pip install ".[jax]"  (or: pip install "jax[cpu]")'}
#: Relative agreement that confirms a role identity: the two sides differ by
#: rounding only, a few hundred float64 operations on O(1) numbers (~1e-13);
#: a parameter without the role changes the loss by O(1e-2) or more at c = 1.7.
ROLE_RTOL = 1e-8


def import_backend(name: str):
    """Import ``torch`` or ``jax`` (float64 enabled), or raise an error that says how to install it."""
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        raise InvalidInputError(f"backend={name!r} needs {name}, which is not installed: "
                                f"{INSTALL[name]}") from exc
    if name == "jax":
        mod.config.update("jax_enable_x64", True)
    return mod


def _is_torch_module(obj) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__)


def _kind_of(value) -> str | None:
    mod = type(value).__module__ or ""
    if mod.startswith("torch"):
        return "torch"
    if mod.startswith("jax") or mod.startswith("jaxlib"):
        return "jax"
    return None


def resolve_backend(loss, backend: str, probe: Callable[[], object] | None = None) -> str:
    """The backend to use: ``backend`` itself, or for ``"auto"`` torch for a
    ``torch.nn.Module``, else the kind of what ``probe()`` (a call on numpy
    arrays) returns; a call that fails with torch or jax already imported by
    the loss's module picks that framework."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise fail("backend", backend, "one of 'auto', " + ", ".join(repr(b) for b in BACKENDS))
        return backend
    if _is_torch_module(loss):
        return "torch"
    if probe is not None:
        try:
            out = probe()
        except Exception as exc:
            for name in ("torch", "jax"):
                if name in sys.modules:
                    return name
            raise InvalidInputError(f"loss raised {type(exc).__name__} on numpy arrays: {exc}; "
                                    "pass backend='torch' or 'jax' if it is written in a framework") from exc
        kind = _kind_of(out)
        if kind is not None:
            return kind
    return "numpy"


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
        **params) -> (dL/dza, dL/dzb)``); defaults to ``loss.grad``.
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
        self.grad = None
        if self.backend == "numpy":
            self.grad = grad if grad is not None else getattr(loss, "grad", None)
            if self.grad is not None and not callable(self.grad):
                raise fail("grad", self.grad, "a callable, or None")
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
        try:
            val = float(np.asarray(val).reshape(()))
        except (TypeError, ValueError):
            raise fail(self.name, val, "a loss returning one real number") from None
        if not math.isfinite(val):
            raise fail(self.name, val, "a finite value on every batch (got a non-finite one; "
                                       "is the loss unbounded below?)")
        return val

    def has_gradient(self) -> bool:
        """Whether :meth:`value_and_grad` can give gradients (autograd, or the user's ``grad``)."""
        return self.backend != "numpy" or self.grad is not None

    def value_and_grad(self, a, b, theta):
        """``(value, dL/da, dL/db, dL/dtheta)``; ``dL/db`` is None for logit inputs."""
        if self.backend == "torch":
            return self._torch_vg(a, b, theta)
        if self.backend == "jax":
            return self._jax_vg(a, b, theta)
        val = self._finite(self._call_numpy(a, b, theta))
        if self.grad is None:
            raise fail("grad", None, "a gradient for the numpy backend (or let the caller difference)")
        try:
            g = self.grad(*self._args(a, b), **self.kwargs(theta))
        except Exception as exc:
            raise InvalidInputError(f"grad raised {type(exc).__name__}: {exc}") from exc
        if self.inputs == "logits":
            da, db = self._checked_grad(g, a.shape), None
        else:
            if not isinstance(g, (tuple, list)) or len(g) != 2:
                raise fail("grad", g, "a pair (dL/dza, dL/dzb) for inputs='embeddings'")
            da, db = self._checked_grad(g[0], a.shape), self._checked_grad(g[1], b.shape)
        # a few scalars: central differences
        dtheta = finite_difference_grad(lambda t: self._finite(self._call_numpy(a, b, t)),
                                        np.asarray(theta, dtype=float))
        return val, da, db, dtheta

    @staticmethod
    def _checked_grad(g, shape):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != shape:
            raise fail("grad", g, f"an array of shape {shape}")
        if not np.all(np.isfinite(g)):
            raise fail("grad", g, "a finite gradient")
        return g

    def _torch_vg(self, a, b, theta):
        torch = import_backend("torch")
        ta = torch.tensor(a, dtype=torch.float64, requires_grad=True)
        tb = None if b is None else torch.tensor(b, dtype=torch.float64, requires_grad=True)
        learned = [torch.tensor(float(theta[i]), dtype=torch.float64, requires_grad=True)
                   for i in range(len(self.learn))]
        kw = {k: torch.tensor(v, dtype=torch.float64) for k, v in self.fixed.items()}
        kw.update(dict(zip(self.learn, learned)))
        off = len(self.learn)
        with torch.no_grad():
            for _, p in self._module_params:
                p.copy_(torch.as_tensor(theta[off:off + p.numel()], dtype=torch.float64).reshape(p.shape))
                off += p.numel()
        # One thread: these batches are small, and torch's default of one thread per core
        # made each call 25x slower on 2 busy cores (measured: 222 ms against 8.4 ms).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            try:
                out = self.loss(*((ta,) if tb is None else (ta, tb)), **kw)
            except Exception as exc:
                raise InvalidInputError(f"loss raised {type(exc).__name__}: {exc} (loss {self.name!r})") from exc
            if isinstance(out, dict) and "loss" in out:
                out = out["loss"]
            if not torch.is_tensor(out) or out.numel() != 1:
                raise fail(self.name, out, "a loss returning a one-element tensor")
            out = out.reshape(())
            wrt = [ta] + ([tb] if tb is not None else []) + learned + [p for _, p in self._module_params]
            grads = torch.autograd.grad(out, wrt, allow_unused=True)
        finally:
            torch.set_num_threads(threads)
        grads = [np.zeros(tuple(w.shape)) if g is None else g.detach().cpu().numpy() for g, w in zip(grads, wrt)]
        val = self._finite(out.detach().cpu().numpy())
        da = grads.pop(0)
        db = grads.pop(0) if tb is not None else None
        dtheta = np.concatenate([np.ravel(g) for g in grads]) if grads else np.zeros(0)
        for g in (da, db, dtheta):
            if g is not None and not np.all(np.isfinite(g)):
                raise fail(self.name, val, "a loss with a finite gradient (autograd gave a non-finite one)")
        return val, da, db, dtheta

    def _jax_vg(self, a, b, theta):
        jax = import_backend("jax")
        jnp = jax.numpy
        fixed = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in self.fixed.items()}
        learned = {k: jnp.asarray(float(theta[i]), dtype=jnp.float64) for i, k in enumerate(self.learn)}
        argnums = (0, 2) if b is None else (0, 1, 2)
        if getattr(self, "_jitted", None) is None:  # compiled once per batch shape by jax.jit
            def f(a, b, learned, fixed):
                out = self.loss(*self._args(a, b), **fixed, **learned)
                return jnp.reshape(out, ())

            self._jitted = jax.jit(jax.value_and_grad(f, argnums=argnums))
        try:
            val, grads = self._jitted(jnp.asarray(a), None if b is None else jnp.asarray(b), learned, fixed)
        except Exception as exc:
            raise InvalidInputError(f"loss raised {type(exc).__name__}: {exc} (loss {self.name!r})") from exc
        grads = list(grads)
        da = np.asarray(grads.pop(0), dtype=np.float64)
        db = np.asarray(grads.pop(0), dtype=np.float64) if b is not None else None
        dl = grads.pop(0)
        dtheta = np.array([float(dl[k]) for k in self.learn])
        return self._finite(np.asarray(val)), da, db, dtheta

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
                t[self.learned.index(k) if k in self.learned else self._offset(k)] = v
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
        return m

    def matched_start(self, target: float) -> np.ndarray:
        """Initial learned values with the logit multiplier moved to ``target`` through the
        first learned scalar with a multiplicative role (the others unchanged), so that a
        fit under cosine similarity starts at the control's effective scale."""
        theta = self.theta0.copy()
        m = self.multiplier(theta)
        if not (math.isfinite(m) and m != 0 and math.isfinite(target) and target > 0):
            return theta
        for k, role in self.roles.items():
            if k in self.fixed or role == "bias":
                continue
            i = self.learned.index(k) if k in self.learned else self._offset(k)
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

        def at(za, zb, changes):
            if self.inputs == "logits":  # unit rows under cosine are given: their dot products
                a, b = _logits(za, zb, 1.0, "l2" if similarity == "l2" else "dot"), None
            else:
                a, b = za, zb
            t, fixed = self._with(theta, changes)
            saved, self.fixed = self.fixed, fixed
            try:
                return self.value(a, b, t)
            finally:
                self.fixed = saved

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
        return roles
