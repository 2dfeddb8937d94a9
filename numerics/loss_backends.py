r"""Where a user's loss is evaluated and differentiated: NumPy, PyTorch or JAX.

Neither framework is imported unless it is used.  :func:`resolve_backend`
picks the backend from the loss itself (a ``torch.nn.Module``, the type of what
it returns on NumPy arrays, or the frameworks its own code refers to), never
from what else the process has imported.  :func:`torch_value_and_grad` and
:func:`jax_value_and_grad` evaluate a :class:`numerics.user_loss.UserLoss` in
float64 with autograd, and refuse an output autograd cannot use (detached,
non-scalar, of another dtype) with a message that says how to fix it.
"""
from __future__ import annotations

import dis
import functools
import importlib
import os
import sysconfig
import types
from typing import Callable

import numpy as np

from ._validation import InvalidInputError, fail

__all__ = ["BACKENDS", "INSTALL", "import_backend", "resolve_backend", "frameworks_used_by",
           "torch_value_and_grad", "jax_value_and_grad"]

BACKENDS = ("numpy", "torch", "jax")
#: How to install each optional backend.
INSTALL = {"torch": 'pip install ".[torch]"  (or: pip install torch)',
           "jax": 'pip install ".[jax]"  (or: pip install "jax[cpu]")'}


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


def _framework_of(obj) -> str | None:
    """The framework a module, a function or a value belongs to, by its own module name."""
    name = getattr(obj, "__name__", None) if isinstance(obj, types.ModuleType) else \
        getattr(obj, "__module__", None)
    name = name if isinstance(name, str) else ""
    for fw in ("torch", "jax"):
        if name == fw or name.startswith(fw + ".") or (fw == "jax" and name.startswith("jaxlib")):
            return fw
    return None


def frameworks_used_by(loss) -> set:
    """The frameworks (``"torch"``, ``"jax"``) the loss's own code refers to: the globals of
    its function (of ``__call__``/``forward`` for an object, through ``functools.partial``)
    and its closure, looked up by name, and those of the helper functions it calls that are
    the user's own (not an installed library's), never the process's other imports."""
    seen, found = set(), set()
    targets = [loss]
    while targets:
        f = targets.pop()
        if id(f) in seen or f is None:
            continue
        seen.add(id(f))
        if isinstance(f, functools.partial):
            targets.append(f.func)
            continue
        if not isinstance(f, (types.FunctionType, types.MethodType)):
            cls = type(f)
            targets += [getattr(cls, "forward", None), getattr(cls, "__call__", None)]
            fw = _framework_of(cls)
            if fw:
                found.add(fw)
            continue
        func = getattr(f, "__func__", f)
        code_names, codes = set(), [func.__code__]
        while codes:  # the globals the function loads, and those of the functions it defines
            code = codes.pop()
            code_names.update(ins.argval for ins in dis.get_instructions(code)
                              if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"))
            codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        referred = [func.__globals__[name] for name in code_names if name in func.__globals__]
        for cell in func.__closure__ or ():
            try:
                referred.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
        for obj in referred:
            fw = _framework_of(obj)
            if fw:
                found.add(fw)
            elif _is_user_function(obj):
                targets.append(obj)  # a helper of the user's: its own references count too
    return found


@functools.lru_cache(maxsize=1)
def _library_paths() -> tuple:
    paths = sysconfig.get_paths()
    return tuple({os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths})


def _is_user_function(obj) -> bool:
    """A Python function (or a partial of one) of the user's code: not of an installed
    library or the standard library, whose references are not the loss's."""
    if isinstance(obj, functools.partial):
        return True
    if not isinstance(obj, types.FunctionType):
        return False
    path = os.path.realpath(obj.__code__.co_filename)
    return not path.startswith(_library_paths())


def resolve_backend(loss, backend: str, probe: Callable[[], object] | None = None) -> str:
    """The backend to use (module docstring).

    ``backend`` itself when it is not ``"auto"``.  For ``"auto"``: torch for a
    ``torch.nn.Module``; else the kind of what ``probe()`` (a call on NumPy
    arrays) returns.  When that call fails, the loss's own code decides
    (:func:`frameworks_used_by`): if it refers to exactly one of torch and JAX,
    that framework; otherwise the error is the user's, and it is reported.  What
    else the process has imported never matters.
    """
    if backend != "auto":
        if backend not in BACKENDS:
            raise fail("backend", backend, "one of 'auto', " + ", ".join(repr(b) for b in BACKENDS))
        return backend
    if _is_torch_module(loss):
        return "torch"
    if probe is not None:
        try:
            out = probe()
        except InvalidInputError:
            raise
        except Exception as exc:
            used = frameworks_used_by(loss)
            if len(used) == 1:
                return used.pop()
            hint = ("it refers to both torch and jax: pass backend='torch' or 'jax'" if used else
                    "pass backend='torch' or 'jax' if it is written in a framework")
            raise InvalidInputError(f"loss raised {type(exc).__name__} on numpy arrays: {exc}; "
                                    f"{hint}") from exc
        kind = _kind_of(out)
        if kind is not None:
            return kind
    return "numpy"


class _LossOutputError(Exception):
    """A JAX loss's output is not a float64 scalar (raised while tracing)."""



def _checked_torch_output(self, out, torch):
    """The torch loss's output as a 0-d float64 tensor autograd can differentiate, or an
    error that says what is wrong and how to fix it."""
    if isinstance(out, dict) and "loss" in out:
        out = out["loss"]
    if not torch.is_tensor(out):
        kind = type(out).__name__
        raise fail("loss", out, f"a loss returning a torch tensor (got {kind}: .item(), "
                                   ".tolist() or .numpy() take the value out of autograd; "
                                   "return the tensor itself)")
    if out.numel() != 1:
        raise fail("loss", out, f"a loss returning one number, not a tensor of shape "
                                   f"{tuple(out.shape)}: reduce it (for example with .mean())")
    if out.is_complex() or not out.is_floating_point():
        raise fail("loss", out, f"a real floating-point loss (got dtype {out.dtype})")
    if out.dtype != torch.float64:
        raise fail("loss", out, f"a float64 loss (got {out.dtype}: the verifier feeds float64 "
                                   "and a cast such as .float() loses 9 digits of the gradient; "
                                   "remove the cast)")
    if not out.requires_grad:
        raise fail("loss", out, "a loss autograd can differentiate (the output does not require "
                                   "grad: it was computed under torch.no_grad(), from .detach()ed "
                                   "inputs, or outside torch; compute it from the inputs with "
                                   "torch operations)")
    return out.reshape(())


def torch_value_and_grad(self, a, b, theta):
    torch = import_backend("torch")
    # One thread: these batches are small, and torch's default of one thread per core
    # made each call 25x slower on 2 busy cores (measured: 222 ms against 8.4 ms); the
    # inputs are shared with NumPy (torch.from_numpy), not copied by torch.tensor, which
    # took 6 ms of an 8 ms call at N = 256 on 2 busy cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ta = torch.from_numpy(np.array(a, dtype=np.float64)).requires_grad_(True)
        tb = None if b is None else torch.from_numpy(np.array(b, dtype=np.float64)).requires_grad_(True)
        learned = [torch.tensor(float(theta[i]), dtype=torch.float64, requires_grad=True)
                   for i in range(len(self.learn))]
        kw = {k: torch.tensor(v, dtype=torch.float64) for k, v in self.fixed.items()}
        kw.update(dict(zip(self.learn, learned)))
        off = len(self.learn)
        with torch.no_grad():
            for _, p in self._module_params:
                p.copy_(torch.as_tensor(theta[off:off + p.numel()], dtype=torch.float64).reshape(p.shape))
                off += p.numel()
        try:
            out = self.loss(*((ta,) if tb is None else (ta, tb)), **kw)
        except Exception as exc:
            raise InvalidInputError(f"loss raised {type(exc).__name__}: {exc} (loss {self.name!r})") from exc
        out = _checked_torch_output(self, out, torch)
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
            raise fail("loss", val, "a loss with a finite gradient (autograd gave a non-finite one)")
    return val, da, db, dtheta


def jax_value_and_grad(self, a, b, theta):
    jax = import_backend("jax")
    jnp = jax.numpy
    fixed = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in self.fixed.items()}
    learned = {k: jnp.asarray(float(theta[i]), dtype=jnp.float64) for i, k in enumerate(self.learn)}
    argnums = (0, 2) if b is None else (0, 1, 2)
    if getattr(self, "_jitted", None) is None:  # compiled once per batch shape by jax.jit
        def f(a, b, learned, fixed):
            out = self.loss(*self._args(a, b), **fixed, **learned)
            if isinstance(out, dict) and "loss" in out:
                out = out["loss"]
            shape, dtype = jnp.shape(out), jnp.result_type(out)
            if int(np.prod(shape)) != 1:
                raise _LossOutputError(f"a loss returning one number, not an array of shape {shape}: "
                                       "reduce it (for example with .mean())")
            if not jnp.issubdtype(dtype, jnp.floating):
                raise _LossOutputError(f"a real floating-point loss (got dtype {dtype})")
            if dtype != jnp.float64:
                raise _LossOutputError(f"a float64 loss (got {dtype}: the verifier feeds float64 and "
                                       "a cast loses 9 digits of the gradient; remove the cast)")
            return jnp.reshape(out, ())

        self._jitted = jax.jit(jax.value_and_grad(f, argnums=argnums))
    try:
        val, grads = self._jitted(jnp.asarray(a), None if b is None else jnp.asarray(b), learned, fixed)
    except _LossOutputError as exc:
        raise fail("loss", "its output", str(exc)) from None
    except Exception as exc:
        raise InvalidInputError(f"loss raised {type(exc).__name__}: {exc} (loss {self.name!r})") from exc
    grads = list(grads)
    da = np.asarray(grads.pop(0), dtype=np.float64)
    db = np.asarray(grads.pop(0), dtype=np.float64) if b is not None else None
    dl = grads.pop(0)
    dtheta = np.array([float(dl[k]) for k in self.learn])
    return self._finite(np.asarray(val)), da, db, dtheta
