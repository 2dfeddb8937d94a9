"""numerics.loss_backends: choosing the backend (explicit, auto), the frameworks a loss's own
code refers to, the import error, and torch/JAX value-and-gradient against NumPy central
differences.

The backend choice is tested with stand-in modules and classes named like torch and JAX
(the module reads names, never the frameworks themselves), so it runs without either;
the autograd tests skip, saying why, when the optional extra is missing."""
import functools
import importlib
import math
import sys
import types

import numpy as np
import pytest
from scipy.special import logsumexp

from numerics import InvalidInputError
from numerics import loss_backends as lb
from numerics.user_loss import UserLoss

# The optional frameworks are imported with the module when installed (the tests that need
# one still skip without it): a test process that forks per test then pays their import once.
for _name in ("torch", "jax"):
    try:
        importlib.import_module(_name)
    except ImportError:
        pass

SKIP_TORCH = "torch is an optional extra (pip install '.[torch]'); .ci/run installs it"
SKIP_JAX = "jax is an optional extra (pip install '.[jax]'); .ci/run installs it"

# stand-ins: what the module looks at is the module/class name, nothing else
FAKE_TORCH = types.ModuleType("torch")
FAKE_TORCH_NN = types.ModuleType("torch.nn")
FAKE_JNP = types.ModuleType("jax.numpy")
FAKE_JAXLIB = types.ModuleType("jaxlib")


def _torch_function():
    def log_softmax(x):
        return x
    log_softmax.__module__ = "torch.nn.functional"
    return log_softmax


def _define(source, **names):
    """Functions defined by ``source`` in a namespace holding ``names`` (their globals)."""
    ns = {"np": np, "torch": FAKE_TORCH, "jnp": FAKE_JNP, "nn": FAKE_TORCH_NN, **names}
    exec(source, ns)  # noqa: S102 - test code only
    return ns


FNS = _define('''
def uses_torch(F):
    return torch.logsumexp(F, 1).mean()

def uses_jnp(F):
    return jnp.mean(F)

def uses_both(F):
    return torch.sum(F) + jnp.sum(F)

def uses_numpy(F):
    return np.mean(F)

def uses_torch_function(F):
    return log_softmax(F).mean()

def uses_torch_submodule(F):
    return nn.functional.cross_entropy(F)

def nested(F):
    def inner(x):
        return torch.exp(x)
    return inner(F).sum()

def mentions_torch_only_as_an_attribute(F):
    return F.jnp_free().torchlike

def make_closure(mod):
    def loss(F):
        return mod.sum(F)
    return loss

def scaled(F, scale):
    return jnp.sum(scale * F)

def _rows(F):
    return torch.logsumexp(F, 1).mean()

def through_a_helper(F):
    return 0.5 * (_rows(F) + _rows(F.T))

def through_two_helpers(F):
    return through_a_helper(F) + uses_numpy(F)

def recursive_helper(F, depth=2):
    return recursive_helper(F, depth - 1) if depth else np.sum(F)
''', log_softmax=_torch_function())


class JaxCallable:
    def __call__(self, F):
        return jnp.sum(F)


class TorchForward:
    def forward(self, F):
        return torch.sum(F)

    def __call__(self, F):
        return self.forward(F)


class Plain:
    def __call__(self, F):
        return np.sum(F)

    def method(self, F):
        return torch.sum(F)


jnp, torch = FAKE_JNP, FAKE_TORCH  # the globals the classes above refer to


# --------------------------------------------------------------------------
# frameworks_used_by
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name,expected", [
    ("uses_torch", {"torch"}), ("uses_jnp", {"jax"}), ("uses_both", {"torch", "jax"}), ("uses_numpy", set()),
    ("uses_torch_function", {"torch"}), ("uses_torch_submodule", {"torch"}), ("nested", {"torch"}),
    ("mentions_torch_only_as_an_attribute", set()),
])
def test_frameworks_used_by_functions(name, expected):
    assert lb.frameworks_used_by(FNS[name]) == expected


def test_frameworks_used_by_follows_the_users_helper_functions():
    assert lb.frameworks_used_by(FNS["through_a_helper"]) == {"torch"}
    assert lb.frameworks_used_by(FNS["through_two_helpers"]) == {"torch"}
    assert lb.frameworks_used_by(FNS["recursive_helper"]) == set()  # a cycle ends
    # a library's function is not followed: numpy's own code is not the loss's
    assert lb.frameworks_used_by(_define("def f(F):\n    return mean(F)\n", mean=np.mean)["f"]) == set()


def test_frameworks_used_by_closures_partials_methods_and_callables():
    assert lb.frameworks_used_by(FNS["make_closure"](FAKE_TORCH)) == {"torch"}
    assert lb.frameworks_used_by(FNS["make_closure"](FAKE_JAXLIB)) == {"jax"}
    assert lb.frameworks_used_by(FNS["make_closure"](np)) == set()
    assert lb.frameworks_used_by(functools.partial(FNS["scaled"], scale=2.0)) == {"jax"}
    assert lb.frameworks_used_by(functools.partial(functools.partial(FNS["uses_torch"]))) == {"torch"}
    assert lb.frameworks_used_by(JaxCallable()) == {"jax"}
    assert lb.frameworks_used_by(TorchForward()) == {"torch"}
    assert lb.frameworks_used_by(Plain()) == set()
    assert lb.frameworks_used_by(Plain().method) == {"torch"}
    assert lb.frameworks_used_by(lambda F: np.sum(F)) == set()


def test_frameworks_used_by_does_not_count_an_attribute_named_like_a_framework_global():
    ns = _define("def loss(F):\n    return np.exp(F).sum()\n", exp=types.SimpleNamespace())
    exp_from_jax = lambda x: x  # noqa: E731
    exp_from_jax.__module__ = "jax.numpy"
    ns["exp"] = exp_from_jax  # the module imported jax.numpy's exp for another function
    assert lb.frameworks_used_by(ns["loss"]) == set()


def test_frameworks_used_by_an_instance_of_a_framework_class():
    TorchThing = type("Loss", (), {"__module__": "torch.nn.modules.loss", "__call__": lambda self, F: F})
    assert lb.frameworks_used_by(TorchThing()) == {"torch"}


def test_frameworks_used_by_survives_an_empty_closure_cell():
    def outer():
        def loss(F):
            return later(F)  # noqa: F821 - assigned after the inspection
        found = lb.frameworks_used_by(loss)
        later = FAKE_TORCH  # noqa: F841
        return found
    assert outer() == set()


def test_frameworks_used_by_ignores_what_the_process_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", FAKE_TORCH)
    monkeypatch.setitem(sys.modules, "jax", types.ModuleType("jax"))
    assert lb.frameworks_used_by(FNS["uses_numpy"]) == set()


# --------------------------------------------------------------------------
# resolve_backend
# --------------------------------------------------------------------------
def _raise(exc):
    def probe():
        raise exc
    return probe


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_an_explicit_backend_is_taken_as_it_is(backend):
    # the probe is never called for an explicit backend (it would raise)
    assert lb.resolve_backend(FNS["uses_numpy"], backend, _raise(AssertionError("called"))) == backend


def test_an_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(InvalidInputError, match=r"backend='tensorflow'.*'auto', 'numpy', 'torch', 'jax'"):
        lb.resolve_backend(FNS["uses_numpy"], "tensorflow")


def test_auto_picks_torch_for_a_torch_module_without_probing():
    Module = type("Module", (), {"__module__": "torch.nn.modules.module"})
    MyLoss = type("MyLoss", (Module,), {"__module__": "my_project.losses", "__call__": lambda self, F: 0.0})
    assert lb.resolve_backend(MyLoss(), "auto", _raise(AssertionError("called"))) == "torch"
    # a class merely named Module elsewhere is not torch's
    Other = type("Module", (), {"__module__": "mylib.nn", "__call__": lambda self, F: 0.0})
    assert lb.resolve_backend(Other(), "auto", lambda: 0.0) == "numpy"


@pytest.mark.parametrize("module,expected", [("torch", "torch"), ("jax", "jax"), ("jaxlib.xla_extension", "jax"),
                                             ("jax._src.array", "jax"), ("numpy", "numpy"),
                                             ("torchvision_like", "torch")])
def test_auto_uses_the_kind_of_what_the_probe_returns(module, expected):
    Value = type("Value", (), {"__module__": module})
    assert lb.resolve_backend(FNS["uses_numpy"], "auto", lambda: Value()) == expected


def test_auto_with_a_numpy_result_or_no_probe_is_numpy():
    assert lb.resolve_backend(FNS["uses_torch"], "auto", lambda: np.float64(1.0)) == "numpy"
    assert lb.resolve_backend(FNS["uses_torch"], "auto", lambda: 1.0) == "numpy"
    assert lb.resolve_backend(FNS["uses_torch"], "auto") == "numpy"


def test_auto_falls_back_on_the_code_when_the_probe_raises():
    assert lb.resolve_backend(FNS["uses_torch"], "auto", _raise(TypeError("no numpy"))) == "torch"
    assert lb.resolve_backend(FNS["uses_jnp"], "auto", _raise(TypeError("no numpy"))) == "jax"
    with pytest.raises(InvalidInputError, match="refers to both torch and jax"):
        lb.resolve_backend(FNS["uses_both"], "auto", _raise(TypeError("no numpy")))
    with pytest.raises(InvalidInputError, match=r"loss raised ZeroDivisionError on numpy arrays: boom; pass "
                                                r"backend='torch' or 'jax' if it is written in a framework"):
        lb.resolve_backend(FNS["uses_numpy"], "auto", _raise(ZeroDivisionError("boom")))


def test_auto_passes_the_toolkits_own_errors_through():
    err = InvalidInputError("loss=...: expected something")
    with pytest.raises(InvalidInputError) as info:
        lb.resolve_backend(FNS["uses_torch"], "auto", _raise(err))
    assert info.value is err


# --------------------------------------------------------------------------
# import_backend
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["torch", "jax"])
def test_import_backend_says_how_to_install_a_missing_framework(monkeypatch, name):
    def missing(mod, *a, **k):
        raise ModuleNotFoundError(f"No module named {mod!r}")
    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(InvalidInputError) as info:
        lb.import_backend(name)
    msg = str(info.value)
    assert f"backend={name!r} needs {name}, which is not installed" in msg
    assert lb.INSTALL[name] in msg and f'pip install ".[{name}]"' in msg
    assert isinstance(info.value.__cause__, ImportError)


def test_import_backend_enables_float64_in_jax(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(config=types.SimpleNamespace(update=lambda *a: calls.append(a)))
    monkeypatch.setattr(importlib, "import_module", lambda name: fake if name == "jax" else None)
    assert lb.import_backend("jax") is fake
    assert calls == [("jax_enable_x64", True)]
    calls.clear()
    monkeypatch.setattr(importlib, "import_module", lambda name: fake)
    lb.import_backend("torch")
    assert calls == []


# --------------------------------------------------------------------------
# autograd against NumPy central differences
# --------------------------------------------------------------------------
def np_scaled_infonce(F, logit_scale):
    G = logit_scale * F
    d = np.diag(G)
    return 0.5 * (np.mean(logsumexp(G, axis=1) - d) + np.mean(logsumexp(G, axis=0) - d))


def np_emb_loss(za, zb, logit_scale):
    return np_scaled_infonce(za @ zb.T, logit_scale) + 0.1 * np.mean(np.sum((za - zb) ** 2, axis=1))


def _fd(f, x, h=1e-6):
    """Central differences of a scalar function of an array."""
    x = np.asarray(x, dtype=float)
    g = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return g


# central differences with h = 1e-6 of O(1) losses: truncation ~h^2, rounding ~eps/h ~ 2e-10
FD_TOL = dict(rtol=1e-6, atol=1e-8)


def _check_against_numpy(u, logits_input):
    rng = np.random.default_rng(0)
    s = 1.3
    theta = np.array([s])
    if logits_input:
        F = rng.standard_normal((5, 5))
        val, dF, db, dth = u.value_and_grad(F, None, theta)
        assert db is None
        assert abs(val - np_scaled_infonce(F, s)) < 1e-12  # same float64 operations, other order
        np.testing.assert_allclose(dF, _fd(lambda X: np_scaled_infonce(X, s), F), **FD_TOL)
        np.testing.assert_allclose(dth, _fd(lambda t: np_scaled_infonce(F, t[0]), theta), **FD_TOL)
        return
    za, zb = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    val, da, db, dth = u.value_and_grad(za, zb, theta)
    assert abs(val - np_emb_loss(za, zb, s)) < 1e-12  # same float64 operations, other order
    np.testing.assert_allclose(da, _fd(lambda X: np_emb_loss(X, zb, s), za), **FD_TOL)
    np.testing.assert_allclose(db, _fd(lambda X: np_emb_loss(za, X, s), zb), **FD_TOL)
    np.testing.assert_allclose(dth, _fd(lambda t: np_emb_loss(za, zb, t[0]), theta), **FD_TOL)


def test_torch_value_and_grad_matches_numpy_central_differences():
    torch = pytest.importorskip("torch", reason=SKIP_TORCH)

    def t_infonce(F, logit_scale):
        G = logit_scale * F
        d = torch.diagonal(G)
        return 0.5 * ((torch.logsumexp(G, 1) - d).mean() + (torch.logsumexp(G, 0) - d).mean())

    def t_emb(za, zb, logit_scale):
        return t_infonce(za @ zb.T, logit_scale) + 0.1 * ((za - zb) ** 2).sum(1).mean()

    u = UserLoss(t_infonce, params={"logit_scale": 1.0})
    assert u.backend == "torch"  # chosen by auto: torch.diagonal fails on a numpy array
    threads = torch.get_num_threads()
    _check_against_numpy(u, True)
    assert torch.get_num_threads() == threads  # the one-thread evaluation restores the setting
    _check_against_numpy(UserLoss(t_emb, inputs="embeddings", params={"logit_scale": 1.0}, backend="torch"),
                         False)


def test_torch_outputs_autograd_cannot_use_are_refused_with_the_fix():
    torch = pytest.importorskip("torch", reason=SKIP_TORCH)
    F = np.random.default_rng(1).standard_normal((4, 4))
    cases = [
        (lambda F: F.sum().item(), "a loss returning a torch tensor"),
        (lambda F: F.sum(1), r"not a tensor of shape \(4,\)"),
        (lambda F: F.sum().float(), "a float64 loss"),
        (lambda F: F.detach().sum(), "does not require grad"),
        (lambda F: (F.sum() > 0), "floating-point"),
    ]
    for loss, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            UserLoss(loss, backend="torch").value_and_grad(F, None, np.zeros(0))
    # a dict with a "loss" entry is read as the loss
    u = UserLoss(lambda F: {"loss": (F**2).sum(), "aux": 0}, backend="torch")
    val, dF, _, _ = u.value_and_grad(F, None, np.zeros(0))
    assert abs(val - np.sum(F**2)) < 1e-12  # a sum of 16 squares in another order
    np.testing.assert_allclose(dF, 2 * F, rtol=1e-15)  # 2F is exact in float64
    assert torch.is_tensor(torch.zeros(1))


def test_jax_value_and_grad_matches_numpy_central_differences():
    jnp = pytest.importorskip("jax.numpy", reason=SKIP_JAX)
    from jax.scipy.special import logsumexp as jlse

    def j_emb(za, zb, logit_scale):
        G = logit_scale * (za @ zb.T)
        d = jnp.diag(G)
        return (0.5 * (jnp.mean(jlse(G, axis=1) - d) + jnp.mean(jlse(G, axis=0) - d))
                + 0.1 * jnp.mean(jnp.sum((za - zb) ** 2, axis=1)))

    # one loss of the embeddings covers dL/dza, dL/dzb and dL/dtheta (one jit compilation:
    # JAX compiles every function it meets, which is slow on busy cores)
    _check_against_numpy(UserLoss(j_emb, inputs="embeddings", params={"logit_scale": 1.0}, backend="jax"),
                         False)
    # auto: what the numpy probe returns is a jax array (a one-operation loss keeps it cheap)
    u = UserLoss(lambda F: jnp.sum(F * F))
    assert u.backend == "jax"
    F = np.random.default_rng(3).standard_normal((3, 3))
    val, dF, _, _ = u.value_and_grad(F, None, np.zeros(0))
    assert abs(val - np.sum(F**2)) < 1e-12  # a sum of 9 squares in another order
    np.testing.assert_allclose(dF, 2 * F, rtol=1e-15)  # exact in float64 (x64 enabled)


def test_jax_outputs_autograd_cannot_use_are_refused_with_the_fix():
    jnp = pytest.importorskip("jax.numpy", reason=SKIP_JAX)
    lb.import_backend("jax")  # float64 on
    F = np.random.default_rng(2).standard_normal((3, 3))
    for loss, message in [(lambda F: jnp.sum(F, axis=0), r"not an array of shape \(3,\)"),
                          (lambda F: jnp.sum(F).astype(jnp.float32), "a float64 loss")]:
        with pytest.raises(InvalidInputError, match=message):
            UserLoss(loss, backend="jax").value_and_grad(F, None, np.zeros(0))
    with pytest.raises(InvalidInputError, match="loss raised"):
        UserLoss(lambda F: jnp.sum(F) + undefined_name, backend="jax").value_and_grad(  # noqa: F821
            F, None, np.zeros(0))
    assert math.isfinite(float(jnp.sum(jnp.asarray(F))))


# --------------------------------------------------------------------------
# frameworks_used_by: every reference is followed, once
# --------------------------------------------------------------------------
def test_frameworks_used_by_a_builtin_or_c_callable_terminates_with_none():
    """C callables are objects whose class's __call__ is a slot wrapper of a slot wrapper...:
    each is visited once."""
    assert lb.frameworks_used_by(math.exp) == set()
    assert lb.frameworks_used_by(len) == set()
    assert lb.frameworks_used_by(np.exp) == set()  # a ufunc instance


def test_frameworks_used_by_follows_every_pending_reference():
    """An instance whose forward refers to jax and whose __call__ is another callable (without
    forward, its __call__ referring to torch): both are found, whatever is visited first."""
    ns = _define('''
class Inner:
    def __call__(self, F):
        return torch.sum(F)

class Outer:
    def forward(self, F):
        return jnp.sum(F)

Outer.__call__ = Inner()
''')
    assert lb.frameworks_used_by(ns["Outer"]()) == {"torch", "jax"}
    # a C function as __call__ does not hide the forward
    ns2 = _define("class C:\n    def forward(self, F):\n        return torch.sum(F)\n")
    ns2["C"].__call__ = len
    assert lb.frameworks_used_by(ns2["C"]()) == {"torch"}


def test_frameworks_used_by_reads_every_nested_function_and_class_body():
    ns = _define('''
def two_helpers(F):
    def first(x):
        return jnp.sum(x)
    def second(x):
        return x
    return first(F) + second(F)

def with_a_class(F):
    class Holder:
        dtype = torch.float64
    return F.astype(Holder.dtype)
''')
    assert lb.frameworks_used_by(ns["two_helpers"]) == {"jax"}
    assert lb.frameworks_used_by(ns["with_a_class"]) == {"torch"}


def test_frameworks_used_by_reads_the_cells_after_an_empty_one():
    def outer(t):
        def loss(F):
            return a_later(F) + t.sum(F)  # cells in name order: a_later (empty), t
        found = lb.frameworks_used_by(loss)
        a_later = FAKE_JNP  # noqa: F841
        return found
    assert outer(FAKE_TORCH) == {"torch"}


# --------------------------------------------------------------------------
# torch: fixed scalars, a module's own parameters, dtypes, threads
# --------------------------------------------------------------------------
def test_torch_fixed_scalars_and_module_parameters_are_used_and_differentiated():
    """A module with a vector parameter w and a scalar t, a learned s and a fixed r: the values
    in theta (not the module's own) are used, and dtheta is (dL/ds, dL/dw, dL/dt) against central
    differences of the same loss written in NumPy."""
    torch = pytest.importorskip("torch", reason=SKIP_TORCH)

    class Loss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([0.5, -0.25]))
            self.t = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, F, s, r):
            G = s * F / self.t
            d = torch.diagonal(G)
            return (0.5 * ((torch.logsumexp(G, 1) - d).mean() + (torch.logsumexp(G, 0) - d).mean())
                    + r * (self.w ** 2).sum() + self.w[0] * self.w[1])

    def np_loss(F, s, r, w, t):
        return np_scaled_infonce(F / t, s) + r * float(np.sum(w ** 2)) + w[0] * w[1]

    u = UserLoss(Loss(), params={"s": 1.0, "r": 0.3}, learn=["s"], backend="torch")
    assert u.learned == ["s", "module.w", "module.t"]
    F = np.random.default_rng(4).standard_normal((5, 5))
    theta = np.array([1.3, 0.7, -1.1, 0.8])  # s, w (2), t
    val, dF, _, dth = u.value_and_grad(F, None, theta)
    assert abs(val - np_loss(F, 1.3, 0.3, theta[1:3], 0.8)) < 1e-12
    want = _fd(lambda x: np_loss(F, x[0], 0.3, x[1:3], x[3]), theta)
    np.testing.assert_allclose(dth, want, **FD_TOL)
    np.testing.assert_allclose(dF, _fd(lambda X: np_loss(X, 1.3, 0.3, theta[1:3], 0.8), F), **FD_TOL)
    # another theta: the parameters follow it
    val2 = u.value_and_grad(F, None, np.array([1.3, 0.0, 0.0, 0.8]))[0]
    assert abs(val2 - np_loss(F, 1.3, 0.3, np.zeros(2), 0.8)) < 1e-12


def test_torch_evaluates_in_float64_and_on_one_thread_whatever_it_is_given():
    torch = pytest.importorskip("torch", reason=SKIP_TORCH)
    seen = []

    def loss(za, zb, s):
        seen.append((za.dtype, zb.dtype, s.dtype, torch.get_num_threads()))
        return s * (za * zb).sum()

    u = UserLoss(loss, inputs="embeddings", params={"s": 1.5}, learn=[], backend="torch")
    rng = np.random.default_rng(5)
    za, zb = rng.standard_normal((4, 2)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)
    val, da, db, dth = u.value_and_grad(za, zb, np.zeros(0))
    assert seen == [(torch.float64, torch.float64, torch.float64, 1)]
    # float32 inputs widened exactly: the float64 products of float32 numbers
    assert val == pytest.approx(1.5 * float(np.sum(za.astype(np.float64) * zb.astype(np.float64))), rel=1e-15)
    assert da.dtype == db.dtype == np.float64 and dth.shape == (0,)
    np.testing.assert_array_equal(da, 1.5 * zb.astype(np.float64))


def test_torch_unused_inputs_have_zero_gradients_and_bad_gradients_or_errors_are_named():
    torch = pytest.importorskip("torch", reason=SKIP_TORCH)
    rng = np.random.default_rng(6)
    za, zb = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    # a loss that ignores zb and its learned scalar: zero gradients for them, not an autograd error
    u = UserLoss(lambda za, zb, s: (za ** 2).sum(), inputs="embeddings", params={"s": 2.0}, backend="torch")
    val, da, db, dth = u.value_and_grad(za, zb, u.theta0)
    assert val == pytest.approx(float(np.sum(za ** 2)), rel=1e-15)
    np.testing.assert_array_equal(da, 2 * za)
    np.testing.assert_array_equal(db, np.zeros((3, 2)))
    np.testing.assert_array_equal(dth, [0.0])
    # a finite value with an infinite derivative (sqrt|x| at 0)
    F = np.array([[0.0, 1.0], [4.0, 9.0]])
    inf_grad = UserLoss(lambda F: torch.sqrt(torch.abs(F)).sum(), backend="torch")
    with pytest.raises(InvalidInputError, match=r"^loss=6.0: expected a loss with a finite gradient \(autograd "
                                                r"gave a non-finite one\)$"):
        inf_grad.value_and_grad(F, None, np.zeros(0))

    def broken(F):
        raise ZeroDivisionError("boom")

    with pytest.raises(InvalidInputError, match=r"^loss raised ZeroDivisionError: boom \(loss 'mine'\)$") as info:
        UserLoss(broken, backend="torch", name="mine").value_and_grad(F, None, np.zeros(0))
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_jax_logit_loss_with_learned_and_fixed_scalars_is_compiled_once():
    jnp = pytest.importorskip("jax.numpy", reason=SKIP_JAX)
    from jax.scipy.special import logsumexp as jlse

    def j_loss(F, s, r):
        G = s * F
        d = jnp.diag(G)
        return 0.5 * (jnp.mean(jlse(G, axis=1) - d) + jnp.mean(jlse(G, axis=0) - d)) + r * jnp.mean(F ** 2)

    def np_loss(F, s, r):
        return np_scaled_infonce(F, s) + r * float(np.mean(F ** 2))

    u = UserLoss(j_loss, params={"s": 1.0, "r": 0.25}, learn=["s"], backend="jax")
    F = np.random.default_rng(7).standard_normal((4, 4))
    theta = np.array([1.4])
    val, dF, db, dth = u.value_and_grad(F, None, theta)
    assert db is None
    assert abs(val - np_loss(F, 1.4, 0.25)) < 1e-12
    np.testing.assert_allclose(dF, _fd(lambda X: np_loss(X, 1.4, 0.25), F), **FD_TOL)
    np.testing.assert_allclose(dth, _fd(lambda t: np_loss(F, t[0], 0.25), theta), **FD_TOL)
    compiled = u._jitted
    val2 = u.value_and_grad(F, None, np.array([0.6]))[0]  # the same compiled function, other values
    assert u._jitted is compiled
    assert abs(val2 - np_loss(F, 0.6, 0.25)) < 1e-12


def test_jax_dict_outputs_and_integer_outputs():
    jnp = pytest.importorskip("jax.numpy", reason=SKIP_JAX)
    F = np.random.default_rng(8).standard_normal((3, 3))
    # a dict with a "loss" entry is read as the loss (as under torch)
    u = UserLoss(lambda F: {"loss": jnp.sum(F ** 2), "aux": jnp.sum(F)}, backend="jax")
    val, dF, _, _ = u.value_and_grad(F, None, np.zeros(0))
    assert abs(val - np.sum(F ** 2)) < 1e-12
    np.testing.assert_allclose(dF, 2 * F, rtol=1e-15)
    with pytest.raises(InvalidInputError, match=r"^loss='its output': expected a real floating-point loss "
                                                r"\(got dtype (int|bool)"):
        UserLoss(lambda F: jnp.sum(F > 0), backend="jax").value_and_grad(F, None, np.zeros(0))


def test_jax_loss_that_raises_is_reported_with_its_name():
    pytest.importorskip("jax.numpy", reason=SKIP_JAX)

    def broken(F):
        raise ZeroDivisionError("boom")

    with pytest.raises(InvalidInputError, match=r"^loss raised ZeroDivisionError: boom \(loss 'mine'\)$") as info:
        UserLoss(broken, backend="jax", name="mine").value_and_grad(np.eye(2), None, np.zeros(0))
    assert isinstance(info.value.__cause__, ZeroDivisionError)
