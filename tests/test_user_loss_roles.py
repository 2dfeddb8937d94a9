"""numerics.user_loss: the roles of a loss's scalars (scale, temperature, log-scale, bias),
the multiplier and matched start they imply, the NumPy evaluation (value, user gradient,
central differences in the scalars, the errors on what a loss returns) and CLIP's control,
each against a hand-written loss or a hand computation (scipy's logsumexp, central
differences), never against numerics.infonce."""
import math

import numpy as np
import pytest
from scipy.special import logsumexp

from numerics import InvalidInputError
from numerics.user_loss import ClipControl, UserLoss

try:  # optional; imported with the module (not in each test) when installed
    import torch  # noqa: F401
except ImportError:
    torch = None
try:
    import jax  # noqa: F401
except ImportError:
    jax = None

SKIP_TORCH = "torch is an optional extra (pip install '.[torch]'); .ci/run installs it"


def _clip(F):
    """Symmetric InfoNCE of F by hand (scipy's logsumexp)."""
    d = np.diag(F)
    return float(np.mean(logsumexp(F, axis=1) - d) + np.mean(logsumexp(F, axis=0) - d)) / 2


def _sigmoid(F):
    """Pairwise sigmoid loss: a shift of every logit changes it (unlike the softmaxes)."""
    Y = 2 * np.eye(F.shape[0]) - 1
    return float(np.sum(np.logaddexp(0, -Y * F)) / F.shape[0])


def _sim(za, zb, similarity):
    if similarity == "l2":
        return -0.5 * np.sum((za[:, None, :] - zb[None, :, :]) ** 2, axis=2)
    return za @ zb.T  # unit rows under cosine are given


# the effective multiplier each loss puts on the similarity, by hand
LOGIT_LOSSES = {
    "scale": (lambda F, s: _sigmoid(s * F), {"s": 1.9}, lambda p: p["s"]),
    "temperature": (lambda F, t: _sigmoid(F / t), {"t": 0.6}, lambda p: 1 / p["t"]),
    "log_scale": (lambda F, p: _sigmoid(math.exp(p) * F), {"p": 0.4}, lambda p: math.exp(p["p"])),
    "log_scale at zero": (lambda F, p: _sigmoid(math.exp(p) * F), {"p": 0.0}, lambda p: 1.0),
}


def _roles_want(kind):
    return {"scale": {"s": "scale"}, "temperature": {"t": "temperature"}, "log_scale": {"p": "log_scale"},
            "log_scale at zero": {"p": "log_scale"}}[kind]


@pytest.mark.parametrize("similarity", ["dot", "cosine", "l2"])
@pytest.mark.parametrize("kind", list(LOGIT_LOSSES))
def test_each_multiplicative_role_is_found_and_gives_its_multiplier(kind, similarity):
    loss, params, mult = LOGIT_LOSSES[kind]
    u = UserLoss(loss, params=params, backend="numpy")
    assert u.detect_roles(similarity, np.random.default_rng(0)) == _roles_want(kind)
    assert u.roles == _roles_want(kind)
    assert u.multiplier(u.theta0) == pytest.approx(mult(params), rel=1e-15, abs=0)
    # and of the embeddings, the similarity written out in the loss
    emb = UserLoss(lambda za, zb, **kw: loss(_sim(za, zb, similarity), **kw), inputs="embeddings",
                   params=params, backend="numpy")
    assert emb.detect_roles(similarity, np.random.default_rng(1)) == _roles_want(kind)


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("inputs", ["logits", "embeddings"])
def test_a_bias_is_found_next_to_a_scale_under_dot_and_cosine(inputs, similarity):
    def logit_loss(F, s, b):
        return _sigmoid(s * F + b)

    loss = logit_loss if inputs == "logits" else (lambda za, zb, s, b: logit_loss(za @ zb.T, s, b))
    u = UserLoss(loss, inputs=inputs, params={"s": 2.5, "b": -0.7}, backend="numpy")
    assert u.detect_roles(similarity, np.random.default_rng(2)) == {"s": "scale", "b": "bias"}
    assert u.multiplier(u.theta0) == 2.5  # the bias puts no factor on the similarity
    # a bias with a temperature: adding c to the similarity is adding c / t to the logits
    tl = UserLoss(lambda F, t, b: _sigmoid(F / t + b), params={"t": 0.5, "b": 0.3}, backend="numpy")
    assert tl.detect_roles(similarity, np.random.default_rng(3)) == {"t": "temperature", "b": "bias"}


def test_l2_similarity_tests_no_bias():
    """Under L2 a constant added to every similarity is no extra coordinate (distances do not
    change): the bias identity is not tested, and a bias keeps no role."""
    u = UserLoss(lambda F, b: _sigmoid(F + b), params={"b": 0.3}, backend="numpy")
    assert u.detect_roles("l2", np.random.default_rng(0)) == {}
    assert u.detect_roles("dot", np.random.default_rng(0)) == {"b": "bias"}


def test_a_scalar_without_a_role_and_a_scale_at_zero_get_none():
    smoothing = UserLoss(lambda F, eps: _clip(F) + eps * float(np.mean(F ** 2)), params={"eps": 0.1},
                         backend="numpy")
    assert smoothing.detect_roles("dot", np.random.default_rng(0)) == {}
    assert smoothing.multiplier(smoothing.theta0) == 1.0


def test_detect_roles_uses_fixed_and_learned_values_and_restores_the_fixed_ones():
    def loss(F, s, t):
        return _sigmoid(s * F / t)

    u = UserLoss(loss, params={"s": 3.0, "t": 0.5}, learn=["t"], backend="numpy")
    assert u.learned == ["t"] and u.fixed == {"s": 3.0}
    assert u.detect_roles("dot", np.random.default_rng(4)) == {"s": "scale", "t": "temperature"}
    assert u.fixed == {"s": 3.0}  # the probes changed it only while they ran
    assert u.multiplier(u.theta0) == pytest.approx(6.0, rel=1e-15, abs=0)
    assert u.multiplier(np.array([2.0])) == pytest.approx(1.5, rel=1e-15, abs=0)


def test_a_loss_that_refuses_a_probe_value_keeps_no_role_from_it():
    """The role probes move a scalar to c p, p / c or p + log c: a loss that refuses such a
    value (InvalidInputError) is not given that role, and the others still are."""
    def loss(F, s, t):
        if not 1.0 <= s <= 2.0:
            raise InvalidInputError(f"s={s}: expected 1 <= s <= 2")
        return _sigmoid(s * F / t)

    u = UserLoss(loss, params={"s": 1.5, "t": 0.8}, backend="numpy")
    # s is refused at 1.7 x 1.5 = 2.55, so it is not given the role "scale" from that probe;
    # the smaller steps of the reparametrised-scale identity (1.5 -+ 0.375) stay in range and
    # find that it rescales the logits, known up to a constant factor.
    assert u.detect_roles("dot", np.random.default_rng(5)) == {"t": "temperature", "s": "reparametrised_scale"}
    assert u.multiplier(np.array([2.0, 0.8])) == pytest.approx(2.0 / 1.5 / 0.8, rel=1e-9)


def test_multiplier_multiplies_the_roles():
    u = UserLoss(lambda F, a, p, t, b: _sigmoid(a * math.exp(p) * F / t + b),
                 params={"a": 1.5, "p": 0.3, "t": 0.8, "b": 0.2}, backend="numpy")
    assert u.detect_roles("dot", np.random.default_rng(6)) == {"a": "scale", "p": "log_scale",
                                                                "t": "temperature", "b": "bias"}
    theta = np.array([2.0, -0.5, 4.0, 7.0])
    assert u.multiplier(theta) == pytest.approx(2.0 * math.exp(-0.5) / 4.0, rel=1e-15, abs=0)


@pytest.mark.parametrize("kind", ["scale", "temperature", "log_scale"])
def test_matched_start_moves_the_first_multiplicative_scalar_to_the_target(kind):
    loss, params, _ = LOGIT_LOSSES[kind]
    u = UserLoss(lambda F, b, **kw: loss(F, **kw) + b * 0.0 + 0.01 * b * b, params={"b": 0.3, **params},
                 backend="numpy")
    u.roles = {"b": "bias", **_roles_want(kind)}  # the bias first: it is skipped
    theta = u.matched_start(5.0)
    assert theta[0] == 0.3  # the bias is unchanged
    assert u.multiplier(theta) == pytest.approx(5.0, rel=1e-14, abs=0)
    assert np.array_equal(u.theta0, np.array([0.3, *params.values()]))  # theta0 itself unchanged


def test_matched_start_changes_one_scalar_only_and_skips_fixed_ones():
    u = UserLoss(lambda F, s, t, r: _sigmoid(s * F / (t * r)), params={"s": 2.0, "t": 0.5, "r": 2.0},
                 learn=["t", "r"], backend="numpy")
    u.roles = {"s": "scale", "t": "temperature", "r": "temperature"}
    theta = u.matched_start(8.0)  # m = 2 / (0.5 * 2) = 2; the fixed s is skipped, t moves to 0.125
    assert theta.tolist() == [0.125, 2.0]
    assert u.multiplier(theta) == 8.0


def test_matched_start_leaves_the_start_when_no_multiplier_can_be_matched():
    u = UserLoss(lambda F, s: _sigmoid(s * F), params={"s": 2.0}, backend="numpy")
    u.roles = {"s": "scale"}
    for target in (math.inf, math.nan, 0.0, -1.0):
        assert u.matched_start(target).tolist() == [2.0]
    u.roles = {"s": "bias"}  # nothing multiplicative
    assert u.matched_start(3.0).tolist() == [2.0]
    z = UserLoss(lambda F, s: _sigmoid(s * F), params={"s": 0.0}, backend="numpy")
    z.roles = {"s": "scale"}  # multiplier 0: no ratio reaches the target
    assert z.matched_start(3.0).tolist() == [0.0]
    out = u.matched_start(3.0)
    out[0] = 99.0
    assert u.theta0.tolist() == [2.0]  # a copy


def test_matched_start_with_a_negative_multiplier_skips_the_log_scale():
    """A log-scale cannot change the sign of m: with m < 0 the next scalar is moved."""
    u = UserLoss(lambda F, s, p, t: _sigmoid(s * math.exp(p) * F / t), params={"s": -2.0, "p": 0.1, "t": 1.5},
                 learn=["p", "t"], backend="numpy")
    u.roles = {"s": "scale", "p": "log_scale", "t": "temperature"}
    theta = u.matched_start(3.0)
    assert theta[0] == 0.1
    assert u.multiplier(theta) == pytest.approx(3.0, rel=1e-14, abs=0)
    assert theta[1] < 0


# --------------------------------------------------------------------------
# NumPy evaluation: values, gradients, errors
# --------------------------------------------------------------------------
def test_numpy_value_and_grad_takes_the_users_gradient_and_differences_the_scalars():
    def loss(F, s, t):
        return _clip(s * F / t)

    def grad(F, s, t):
        G = s * F / t
        N = F.shape[0]
        P = np.exp(G - logsumexp(G, axis=1, keepdims=True))
        Q = np.exp(G - logsumexp(G, axis=0, keepdims=True))
        return (s / t) * (P + Q - 2 * np.eye(N)) / (2 * N)

    u = UserLoss(loss, params={"s": 1.3, "t": 0.7}, learn=["t"], grad=grad, backend="numpy")
    assert u.has_gradient() and u.size == 1
    F = np.random.default_rng(0).standard_normal((5, 5))
    theta = np.array([0.9])
    val, dF, db, dth = u.value_and_grad(F, None, theta)
    assert db is None
    assert val == _clip(1.3 * F / 0.9) == u.value(F, None, theta)
    np.testing.assert_array_equal(dF, grad(F, 1.3, 0.9))
    h = 1e-6  # central differences of an O(1) loss: error ~1e-10
    want = (_clip(1.3 * F / (0.9 + h)) - _clip(1.3 * F / (0.9 - h))) / (2 * h)
    assert dth.shape == (1,) and abs(dth[0] - want) < 1e-7
    assert u.kwargs(theta) == {"s": 1.3, "t": 0.9}


def test_numpy_embeddings_gradient_is_checked_and_returned():
    def loss(za, zb):
        return float(np.sum(za * zb))

    u = UserLoss(loss, inputs="embeddings", grad=lambda za, zb: (zb, za), backend="numpy")
    rng = np.random.default_rng(1)
    za, zb = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    val, da, db, dth = u.value_and_grad(za, zb, np.zeros(0))
    assert val == loss(za, zb)
    np.testing.assert_array_equal(da, zb)
    np.testing.assert_array_equal(db, za)
    assert dth.shape == (0,)
    for bad in (zb, (zb,), [zb, za, za]):
        u.grad = lambda za, zb, bad=bad: bad
        with pytest.raises(InvalidInputError, match=r"(?s)^grad=.*expected a pair \(dL/dza, dL/dzb\)"):
            u.value_and_grad(za, zb, np.zeros(0))
    u.grad = lambda za, zb: (zb[:, :1], za)
    with pytest.raises(InvalidInputError, match=r"(?s)^grad=.*expected an array of shape \(4, 2\)"):
        u.value_and_grad(za, zb, np.zeros(0))
    u.grad = lambda za, zb: (zb, za * np.nan)
    with pytest.raises(InvalidInputError, match=r"(?s)^grad=.*expected a finite gradient"):
        u.value_and_grad(za, zb, np.zeros(0))


def test_numpy_gradient_errors_name_grad():
    F = np.eye(3)
    u = UserLoss(lambda F: float(np.sum(F)), backend="numpy")
    assert not u.has_gradient()
    with pytest.raises(InvalidInputError, match=r"^grad=None: expected a gradient for the numpy backend"):
        u.value_and_grad(F, None, np.zeros(0))

    def broken(F):
        raise KeyError("oops")

    u.grad = broken
    with pytest.raises(InvalidInputError, match=r"^grad raised KeyError: 'oops'") as info:
        u.value_and_grad(F, None, np.zeros(0))
    assert isinstance(info.value.__cause__, KeyError)
    u.grad = lambda F: np.ones((3, 2))
    with pytest.raises(InvalidInputError, match=r"(?s)^grad=.*expected an array of shape \(3, 3\)"):
        u.value_and_grad(F, None, np.zeros(0))
    u.grad = lambda F: np.full((3, 3), np.inf)
    with pytest.raises(InvalidInputError, match=r"(?s)^grad=.*expected a finite gradient"):
        u.value_and_grad(F, None, np.zeros(0))
    u.grad = lambda F: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]  # a list is made a float64 array
    g = u.value_and_grad(F, None, np.zeros(0))[1]
    assert g.dtype == np.float64 and np.array_equal(g, np.eye(3))


def test_a_loss_that_raises_is_reported_with_its_name():
    def loss(F):
        raise ZeroDivisionError("boom")

    u = UserLoss(loss, backend="numpy", name="mine")
    with pytest.raises(InvalidInputError, match=r"^loss raised ZeroDivisionError: boom \(loss 'mine'\)$") as info:
        u.value(np.eye(2), None, np.zeros(0))
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    own = InvalidInputError("x=1: expected 2")

    def refusing(F):
        raise own

    with pytest.raises(InvalidInputError) as info:
        UserLoss(refusing, backend="numpy").value(np.eye(2), None, np.zeros(0))
    assert info.value is own  # the toolkit's own errors pass through


@pytest.mark.parametrize("out, pattern", [
    ("0.5", r"^loss='0.5': expected a loss returning one real number$"),
    (b"1", r"^loss=b'1': expected a loss returning one real number$"),
    (None, r"^loss=None: expected a loss returning one real number$"),
    ({"loss": 1.0}, r"^loss=.*expected a loss returning one real number \(got an object of type dict\)$"),
    (np.ones(3), r"^loss=.*expected a loss returning one real number, not an array of shape \(3,\): reduce it"),
    (1 + 2j, r"^loss=.*expected a real-valued loss \(got a complex number\)$"),
    (np.datetime64("2020-01-01"), r"^loss=.*expected a loss returning one real number$"),
    (math.inf, r"^loss=inf: expected a finite value on every batch"),
    (np.array([[math.nan]]), r"^loss=.*expected a finite value on every batch"),
])
def test_what_a_numpy_loss_returns_is_checked(out, pattern):
    u = UserLoss(lambda F: 0.0, backend="numpy")
    u.loss = lambda F: out
    with pytest.raises(InvalidInputError, match=pattern):
        u.value(np.eye(2), None, np.zeros(0))


@pytest.mark.parametrize("out, want", [(3, 3.0), (np.int64(-2), -2.0), (True, 1.0), (np.array([[0.25]]), 0.25),
                                       (np.float32(0.5), 0.5)])
def test_one_real_number_of_any_real_type_is_accepted(out, want):
    u = UserLoss(lambda F: out, backend="numpy")
    val = u.value(np.eye(2), None, np.zeros(0))
    assert type(val) is float and val == want


def test_the_numpy_probe_calls_the_loss_on_its_own_inputs_with_every_param():
    seen = []

    def logit_loss(F, s, t):
        seen.append((F.shape, s, t))
        return 0.0

    UserLoss(logit_loss, params={"s": 2, "t": np.float32(0.5)}, learn=["s"])
    assert seen == [((4, 4), 2.0, 0.5)]
    seen.clear()

    def emb_loss(za, zb, s):
        seen.append((za.shape, zb.shape, s, float(np.sum(za * zb))))
        return 0.0

    UserLoss(emb_loss, inputs="embeddings", params={"s": 1.0})
    assert seen[0][:3] == ((4, 2), (4, 2), 1.0)
    rng = np.random.default_rng(0)  # the probe's inputs: two different draws
    za, zb = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    assert seen[0][3] == float(np.sum(za * zb))


# --------------------------------------------------------------------------
# construction
# --------------------------------------------------------------------------
def test_params_and_learn_are_stored_as_documented():
    u = UserLoss(lambda F, a, b, c: 0.0, params={"a": 1, "b": np.float64(2.5), "c": np.int32(-3)},
                 learn=["c", "a", "c"], backend="numpy")
    assert u.params == {"a": 1.0, "b": 2.5, "c": -3.0}
    assert all(type(v) is float for v in u.params.values())
    assert u.learn == ["c", "a"] and u.learned == ["c", "a"]  # order kept, duplicates dropped
    assert u.fixed == {"b": 2.5}
    assert u.theta0.tolist() == [-3.0, 1.0] and u.theta0.dtype == np.float64 and u.size == 2
    assert u.roles == {} and u.inputs == "logits" and u.name == "loss"
    every = UserLoss(lambda F, a, b: 0.0, params={"a": 1.0, "b": 2.0}, backend="numpy")
    assert every.learn == ["a", "b"] and every.fixed == {}
    none = UserLoss(lambda F: 0.0, backend="numpy")
    assert none.params == {} and none.learn == [] and none.size == 0 and none.theta0.shape == (0,)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(loss=3), r"^loss=3: expected a callable loss, or a torch.nn.Module$"),
    (dict(inputs="features"), r"^inputs='features': expected 'logits' or 'embeddings'$"),
    (dict(params=[("a", 1.0)]), r"^params=\[\('a', 1.0\)\]: expected a dict of parameter name to initial value$"),
    (dict(params={"1a": 1.0}), r"^params='1a': expected parameter names that are Python identifiers$"),
    (dict(params={3: 1.0}), r"^params=3: expected parameter names"),
    (dict(params={"a": True}), r"^params\['a'\]=True: expected a finite real number$"),
    (dict(params={"a": "1"}), r"^params\['a'\]='1': expected a finite real number$"),
    (dict(params={"a": math.inf}), r"^params\['a'\]=inf: expected a finite real number$"),
    (dict(params={"a": 1.0}, learn="a"), r"^learn='a': expected a list of names from params$"),
    (dict(params={"a": 1.0}, learn=[1]), r"^learn=\[1\]: expected a list of names from params$"),
    (dict(params={"a": 1.0, "b": 2.0}, learn=["c"]), r"^learn='c': expected a name in params \(a, b\)$"),
    (dict(learn=["c"]), r"^learn='c': expected a name in params \(none given\)$"),
    (dict(grad=3), r"^grad=3: expected a callable, or None$"),
])
def test_construction_errors_name_the_argument(kwargs, pattern):
    kwargs = {"loss": lambda F, **kw: 0.0, "backend": "numpy", **kwargs}
    with pytest.raises(InvalidInputError, match=pattern):
        UserLoss(kwargs.pop("loss"), **kwargs)


def test_loss_grad_attribute_is_the_default_gradient():
    def loss(F):
        return float(np.sum(F))

    loss.grad = lambda F: np.ones_like(F)
    u = UserLoss(loss, backend="numpy")
    assert u.grad is loss.grad and u.has_gradient()
    mine = lambda F: 2 * np.ones_like(F)  # noqa: E731
    assert UserLoss(loss, grad=mine, backend="numpy").grad is mine


# --------------------------------------------------------------------------
# the control: CLIP of the scaled logits, minus log N
# --------------------------------------------------------------------------
@pytest.mark.parametrize("learn", [False, True])
def test_clip_control_value_gradient_and_scale(learn):
    c = ClipControl(2.5, learn=learn)
    assert c.inputs == "logits" and c.has_gradient() and c.roles == {"logit_scale": "scale"}
    assert c.size == (1 if learn else 0) and c.learned == (["logit_scale"] if learn else [])
    theta = np.array([1.5]) if learn else np.zeros(0)
    s = 1.5 if learn else 2.5
    assert c.multiplier(theta) == s and type(c.multiplier(theta)) is float
    F = np.random.default_rng(0).standard_normal((6, 6))
    val, dF, db, dth = c.value_and_grad(F, None, theta)
    assert db is None
    # L_N(sF) - log N by hand; rounding of 72 exponentials of O(1): ~1e-15
    assert abs(val - (_clip(s * F) - math.log(6))) < 1e-13
    assert c.value(F, None, theta) == val
    h = 1e-6  # central differences of an O(1) function: error ~1e-10
    for idx in [(0, 0), (1, 4), (5, 2)]:
        E = np.zeros_like(F)
        E[idx] = h
        assert abs(dF[idx] - (_clip(s * (F + E)) - _clip(s * (F - E))) / (2 * h)) < 1e-8
    assert dth.shape == (c.size,)
    if learn:
        assert abs(dth[0] - (_clip((s + h) * F) - _clip((s - h) * F)) / (2 * h)) < 1e-8
        assert c.matched_start(4.0).tolist() == [4.0]
    else:
        assert c.matched_start(4.0).shape == (0,)


def test_clip_control_scale_is_a_float():
    c = ClipControl(np.int64(3))
    assert type(c.scale) is float and c.scale == 3.0 and c.theta0.shape == (0,)
    assert ClipControl().multiplier(np.zeros(0)) == 1.0
    learned = ClipControl(4, learn=True)
    assert learned.theta0.tolist() == [4.0] and learned.theta0.dtype == np.float64


# --------------------------------------------------------------------------
# torch modules: their one-element parameters are scalars with roles
# --------------------------------------------------------------------------
def _torch_loss_module(torch, t_first):
    class Loss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            if t_first:
                self.t = torch.nn.Parameter(torch.tensor(0.75))          # a temperature
            self.w = torch.nn.Parameter(torch.tensor([0.5, -0.5]))       # two values: no role
            if not t_first:
                self.t = torch.nn.Parameter(torch.tensor(0.75))

        def forward(self, F, s):
            G = s * F / self.t
            labels = torch.arange(F.shape[0])
            ce = torch.nn.functional.cross_entropy
            return 0.5 * (ce(G, labels) + ce(G.T, labels)) + (self.w ** 2).sum()

    return Loss()


def test_scalar_values_and_roles_of_a_torch_modules_parameters():
    torch = pytest.importorskip("torch", reason=SKIP_TORCH)
    u = UserLoss(_torch_loss_module(torch, True), params={"s": 2.0}, backend="torch")
    assert u.learned == ["s", "module.t", "module.w"]
    assert u.theta0.tolist() == [2.0, 0.75, 0.5, -0.5]
    assert u.scalar_values(np.array([3.0, 0.25, 1.0, 2.0])) == {"s": 3.0, "module.t": 0.25}
    assert u.detect_roles("dot", np.random.default_rng(0)) == {"s": "scale", "module.t": "temperature"}
    assert u.multiplier(u.theta0) == pytest.approx(2.0 / 0.75, rel=1e-15, abs=0)
    theta = u.matched_start(10.0)  # the first learned multiplicative scalar: s
    assert theta.tolist() == [pytest.approx(10.0 * 0.75, rel=1e-15, abs=0), 0.75, 0.5, -0.5]
    u.roles = {"module.t": "temperature"}  # m = 1 / 0.75: t -> 0.75 / 7.5
    assert u.matched_start(10.0).tolist() == [2.0, pytest.approx(0.1, rel=1e-15, abs=0), 0.5, -0.5]
    with pytest.raises(KeyError, match="module.nothing"):
        u._offset("module.nothing")
    # the offsets in theta of the module's parameters (after the 1 learned param): t at 1, w at 2
    assert (u._offset("module.t"), u._offset("module.w")) == (1, 2)
    v = UserLoss(_torch_loss_module(torch, False), params={"s": 2.0}, backend="torch")
    assert (v._offset("module.w"), v._offset("module.t")) == (1, 3)  # w has two values
    assert v.scalar_values(np.array([3.0, 1.0, 2.0, 0.25])) == {"s": 3.0, "module.t": 0.25}


def test_a_module_scalar_after_a_vector_parameter_is_found():
    torch = pytest.importorskip("torch", reason=SKIP_TORCH)
    u = UserLoss(_torch_loss_module(torch, False), params={"s": 2.0}, backend="torch")
    assert u.learned == ["s", "module.w", "module.t"]
    assert u.theta0.tolist() == [2.0, 0.5, -0.5, 0.75]
    assert u.scalar_values(np.array([3.0, 1.0, 2.0, 0.25])) == {"s": 3.0, "module.t": 0.25}
    u.roles = {"module.t": "temperature"}  # m = 1 / 0.75: t -> 0.75 / 7.5
    assert u.matched_start(10.0).tolist() == [2.0, 0.5, -0.5, pytest.approx(0.1, rel=1e-15, abs=0)]


# --------------------------------------------------------------------------
# scale invariances: which encoder's norm the loss cannot see
# --------------------------------------------------------------------------
def _unit(z):
    return z / np.linalg.norm(z, axis=1, keepdims=True)


@pytest.mark.parametrize("similarity", ["dot", "l2"])
def test_scale_invariances_of_embedding_losses(similarity):
    both = UserLoss(lambda za, zb: _clip(4.0 * _unit(za) @ _unit(zb).T), inputs="embeddings", backend="numpy")
    u_only = UserLoss(lambda za, zb: _clip(_unit(za) @ zb.T), inputs="embeddings", backend="numpy")
    v_only = UserLoss(lambda za, zb: _clip(za @ _unit(zb).T), inputs="embeddings", backend="numpy")
    plain = UserLoss(lambda za, zb: _clip(za @ zb.T), inputs="embeddings", backend="numpy")
    rng = np.random.default_rng
    assert both.scale_invariances(similarity, rng(0)) == ["u", "v"]
    assert u_only.scale_invariances(similarity, rng(0)) == ["u"]
    assert v_only.scale_invariances(similarity, rng(0)) == ["v"]
    assert plain.scale_invariances(similarity, rng(0)) == []
    # under cosine the family normalises: nothing to report, the loss is not even called
    calls = []
    spy = UserLoss(lambda za, zb: calls.append(1) or 0.0, inputs="embeddings", backend="numpy")
    assert spy.scale_invariances("cosine", rng(0)) == [] and calls == []


def test_scale_invariances_of_logit_losses_follow_the_similarity():
    """A loss of F / |F|: scaling either encoder scales the dot logits (invisible), not the L2 ones."""
    u = UserLoss(lambda F: _clip(3.0 * F / np.linalg.norm(F)), backend="numpy")
    assert u.scale_invariances("dot", np.random.default_rng(1)) == ["u", "v"]
    assert u.scale_invariances("l2", np.random.default_rng(1)) == []
    assert UserLoss(_clip, backend="numpy").scale_invariances("dot", np.random.default_rng(1)) == []


def test_scale_invariances_of_a_blind_loss_are_none():
    """A loss that sees nothing is not called scale-invariant (check_depends refuses it)."""
    const = UserLoss(lambda za, zb: 0.5, inputs="embeddings", backend="numpy")
    assert const.scale_invariances("dot", np.random.default_rng(2)) == []
    tiny = UserLoss(lambda za, zb: 1.0 + 1e-12 * float(np.sum(za * zb)), inputs="embeddings", backend="numpy")
    assert tiny.scale_invariances("dot", np.random.default_rng(2)) == []


@pytest.mark.parametrize("weight, invariant", [(1e-10, True), (1e-6, False)])
def test_scale_invariance_is_judged_to_role_rtol(weight, invariant):
    """A dependence on |z_a| of 1e-10 relative is rounding (below ROLE_RTOL = 1e-8); 1e-6 is not."""
    def loss(za, zb, p):
        return _clip(p * _unit(za) @ _unit(zb).T) + weight * float(np.mean(np.log(np.sum(za**2, axis=1))))

    u = UserLoss(loss, inputs="embeddings", params={"p": 2.0}, backend="numpy")
    assert u.scale_invariances("dot", np.random.default_rng(3)) == (["u", "v"] if invariant else ["v"])


def test_scale_invariances_use_the_initial_scalars_and_both_scales():
    """At theta0 (p = 0) the norm penalty is off: invariant in both; a loss invariant to one
    of the two tested scales only (0.37 or 2.9) is not invariant."""
    def penalised(za, zb, p):
        return _clip(_unit(za) @ _unit(zb).T) + p * float(np.mean(za ** 2))

    u = UserLoss(penalised, inputs="embeddings", params={"p": 0.0}, backend="numpy")
    assert u.scale_invariances("dot", np.random.default_rng(4)) == ["u", "v"]

    def capped(za, zb):  # sees |z_a| only where it exceeds 1.5 times its size on the probe batch
        n = np.linalg.norm(za, axis=1)
        return _clip(_unit(za) @ _unit(zb).T) + float(np.mean(np.maximum(n, 1.5 * capped.ref) ** 2))

    rng = np.random.default_rng(5)
    capped.ref = np.linalg.norm(np.random.default_rng(5).standard_normal((8, 2)), axis=1)
    assert UserLoss(capped, inputs="embeddings", backend="numpy").scale_invariances("dot", rng) == ["v"]


def test_a_user_loss_pickles_without_its_compiled_function():
    """Dask workers receive the loss pickled: a compiled JAX function (``_jitted``) is dropped and
    rebuilt there; everything else travels."""
    import pickle

    u = UserLoss(_sigmoid_scaled, params={"s": 2.0, "t": 0.5}, learn=["s"], backend="numpy", name="mine")
    u.roles = {"s": "scale"}
    u._jitted = lambda *a: None  # a lambda does not pickle, like a jitted function
    v = pickle.loads(pickle.dumps(u))
    assert not hasattr(v, "_jitted") and u._jitted is not None  # the original keeps its own
    assert (v.params, v.learn, v.fixed, v.roles, v.name, v.backend) == (u.params, u.learn, u.fixed, u.roles,
                                                                        "mine", "numpy")
    np.testing.assert_array_equal(v.theta0, u.theta0)
    F = np.random.default_rng(0).standard_normal((3, 3))
    assert v.value(F, None, np.array([1.5])) == u.value(F, None, np.array([1.5]))


def _sigmoid_scaled(F, s, t):  # module level: picklable
    return _sigmoid(s * F / t)


def test_multiplier_multiplies_a_scale_that_comes_after_a_temperature():
    u = UserLoss(lambda F, t, s: _sigmoid(s * F / t), params={"t": 0.5, "s": 3.0}, backend="numpy")
    assert u.detect_roles("dot", np.random.default_rng(7)) == {"t": "temperature", "s": "scale"}
    assert list(u.roles) == ["t", "s"]
    assert u.multiplier(u.theta0) == 6.0


@pytest.mark.parametrize("kind", ["scale", "temperature", "log_scale"])
@pytest.mark.parametrize("target", [0.5, 1.0, 0.02])
def test_matched_start_reaches_targets_below_the_current_multiplier(kind, target):
    loss, params, _ = LOGIT_LOSSES[kind]
    u = UserLoss(loss, params=params, backend="numpy")
    u.roles = _roles_want(kind)
    assert u.multiplier(u.theta0) > 1.0  # every target here is below it
    assert u.multiplier(u.matched_start(target)) == pytest.approx(target, rel=1e-14, abs=0)


def test_matched_start_leaves_the_start_when_the_ratio_underflows():
    """A target so small that target / m rounds to 0: no log-scale reaches it."""
    u = UserLoss(lambda F, p: _sigmoid(math.exp(p) * F), params={"p": 1.0}, backend="numpy")
    u.roles = {"p": "log_scale"}
    assert 5e-324 / math.e == 0.0
    assert u.matched_start(5e-324).tolist() == [1.0]


def test_scale_invariances_evaluate_a_logit_loss_at_its_initial_scalars():
    u = UserLoss(lambda F, s: _clip(s * F / np.linalg.norm(F)), params={"s": 3.0}, backend="numpy")
    assert u.scale_invariances("dot", np.random.default_rng(1)) == ["u", "v"]


def test_scale_invariances_test_a_shrinking_scale():
    """A loss that sees |z_a| (or |z_b|) only when it shrinks below its size on the probe batch is
    not invariant: the identity is tested with a scale below 1 as well as above."""
    def floored(za, zb):
        n = np.linalg.norm(za if floored.side == "u" else zb, axis=1)
        return _clip(_unit(za) @ _unit(zb).T) + float(np.mean(np.minimum(n, floored.ref) ** 2))

    first = np.random.default_rng(6)  # the probe batch scale_invariances draws from rng(6)
    za, zb = first.standard_normal((8, 2)), first.standard_normal((8, 2))
    for side, want in (("u", ["v"]), ("v", ["u"])):
        floored.side = side
        floored.ref = np.linalg.norm(za if side == "u" else zb, axis=1)
        u = UserLoss(floored, inputs="embeddings", backend="numpy")
        assert u.scale_invariances("dot", np.random.default_rng(6)) == want


@pytest.mark.parametrize("base, moved, invariant", [
    (0.0, 1e-8, True),                # |change| = ROLE_RTOL x max(1, ...) exactly: the same
    (0.0, 1.5e-8, False),
    (100.0, 100.0 + 5e-7, True),      # relative to the larger value (1e-6 here)
    (100.0, 100.0 + 2e-6, False),
])
def test_scale_invariance_tolerance_is_role_rtol_relative(base, moved, invariant):
    """A loss worth `base` on the probe batch, `moved` with z_a scaled, and far from both on any
    other batch (the probe batch is recognised by its z_b)."""
    first = np.random.default_rng(8)
    za0, zb0 = first.standard_normal((8, 2)), first.standard_normal((8, 2))

    def loss(za, zb):
        if not np.array_equal(zb, zb0):
            return base + 10.0
        return base if np.array_equal(za, za0) else moved

    u = UserLoss(loss, inputs="embeddings", backend="numpy")
    assert u.scale_invariances("dot", np.random.default_rng(8)) == (["u"] if invariant else [])


def _soft_sphere(za):
    """Zero while every row norm is in [0.5, 3], positive outside."""
    r = np.linalg.norm(za, axis=1)
    return float(np.sum(np.maximum(0.0, 0.5 - r) ** 2 + np.maximum(0.0, r - 3.0) ** 2))


def test_roles_under_cosine_are_tested_on_unit_rows():
    """A loss of embeddings with a soft constraint on their norms (flat near the unit sphere the
    family feeds it under cosine): its scale is found under cosine; on raw Gaussian rows, where
    the constraint acts, the identity fails."""
    def loss(za, zb, s):
        return _sigmoid(s * za @ zb.T) + _soft_sphere(za) + _soft_sphere(zb)

    u = UserLoss(loss, inputs="embeddings", params={"s": 2.0}, backend="numpy")
    assert u.detect_roles("cosine", np.random.default_rng(9)) == {"s": "scale"}
    assert u.detect_roles("dot", np.random.default_rng(9)) == {}


def test_roles_of_a_logit_loss_under_l2_are_tested_on_l2_logits():
    """A loss of distances (it needs F <= 0, as every L2 logit is) with a temperature."""
    def dist_loss(F, t):
        if np.any(F > 0):
            raise InvalidInputError("F: expected non-positive logits")
        return float(np.mean(np.log1p(-F / t)))

    u = UserLoss(dist_loss, params={"t": 0.7}, backend="numpy")
    assert u.detect_roles("l2", np.random.default_rng(10)) == {"t": "temperature"}


def test_a_softmax_invariant_bias_keeps_no_role_under_l2():
    """Under L2 the bias identity is not tested: not even a bias the softmaxes ignore gets it."""
    u = UserLoss(lambda F, b: _clip(F + b), params={"b": 0.3}, backend="numpy")
    assert u.detect_roles("l2", np.random.default_rng(11)) == {}
    assert u.detect_roles("dot", np.random.default_rng(11)) == {"b": "bias"}


def test_a_scalar_that_refuses_the_bias_probe_does_not_hide_the_next_one():
    def loss(F, a, b):
        if a != 1.0:
            raise InvalidInputError(f"a={a}: expected 1.0")
        return _sigmoid(F + b)

    u = UserLoss(loss, params={"a": 1.0, "b": 0.3}, backend="numpy")
    assert u.detect_roles("dot", np.random.default_rng(12)) == {"b": "bias"}


@pytest.mark.parametrize("scaled, base, scale", [
    (0.0, 1e-8, True),              # |difference| = ROLE_RTOL x max(1, ...) exactly: the same
    (0.0, 1.5e-8, False),
    (0.0, 5e-9, True),              # below 1 the tolerance is ROLE_RTOL itself
    (100.0, 100.0 + 5e-7, True),    # relative to the larger value (1e-6 here)
    (100.0, 100.0 + 2e-6, False),
])
def test_role_identities_hold_to_role_rtol(scaled, base, scale):
    """A loss worth `base` on the probe batch (whatever its scalar) and `scaled` on any other:
    the scale identity L(sqrt c z) = L(z; c p) then holds iff |scaled - base| is within tolerance."""
    za0 = np.random.default_rng(13).standard_normal((8, 2))

    def loss(za, zb, s):
        return base if np.array_equal(za, za0) else scaled

    u = UserLoss(loss, inputs="embeddings", params={"s": 1.0}, backend="numpy")
    assert u.detect_roles("dot", np.random.default_rng(13)) == ({"s": "scale"} if scale else {})


def test_jax_embeddings_are_evaluated_with_the_learned_scalars():
    jnp = pytest.importorskip("jax.numpy", reason="jax is an optional extra (pip install '.[jax]')")
    u = UserLoss(lambda za, zb, s: s * jnp.sum(za * zb), inputs="embeddings", params={"s": 2.0}, backend="jax")
    rng = np.random.default_rng(14)
    za, zb = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    val, da, db, dth = u.value_and_grad(za, zb, np.array([0.5]))
    assert val == pytest.approx(0.5 * float(np.sum(za * zb)), rel=1e-14, abs=0)
    np.testing.assert_allclose(da, 0.5 * zb, rtol=1e-15)
    np.testing.assert_allclose(db, 0.5 * za, rtol=1e-15)
    np.testing.assert_allclose(dth, [float(np.sum(za * zb))], rtol=1e-14)
    assert u.value(za, zb, np.array([0.5])) == val


def test_a_fresh_user_loss_pickles_too():
    """No compiled function yet (never evaluated under JAX): pickling works all the same."""
    import pickle

    u = UserLoss(_sigmoid_scaled, params={"s": 2.0, "t": 0.5}, backend="numpy")
    assert not hasattr(u, "_jitted")
    v = pickle.loads(pickle.dumps(u))
    assert v.params == u.params and not hasattr(v, "_jitted")


def test_autograd_backends_refuse_a_gradient_and_are_imported_at_construction(monkeypatch):
    pytest.importorskip("torch", reason=SKIP_TORCH)
    with pytest.raises(InvalidInputError, match=r"^grad=.*expected None with backend='torch' \(autograd gives "
                                                r"the gradient\)$"):
        UserLoss(lambda F: F.sum(), backend="torch", grad=lambda F: F)
    import importlib

    def missing(name, *a, **k):
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    for backend in ("torch", "jax"):  # refused when the loss is made, not at its first evaluation
        with pytest.raises(InvalidInputError, match=rf"^backend='{backend}' needs {backend}, which is not installed"):
            UserLoss(lambda F: F.sum(), backend=backend)


def test_a_torch_module_is_copied_not_converted_in_place():
    pytest.importorskip("torch", reason=SKIP_TORCH)
    module = _torch_loss_module(torch, True)
    u = UserLoss(module, params={"s": 2.0}, backend="torch")
    assert module.t.dtype == torch.float32 and module.w.dtype == torch.float32  # the user's module untouched
    assert u.loss is not module and u.loss.t.dtype == torch.float64


def test_scalar_values_read_each_module_scalar_at_its_offset():
    pytest.importorskip("torch", reason=SKIP_TORCH)

    class Loss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([0.5, -0.5]))
            self.t = torch.nn.Parameter(torch.tensor(0.75))
            self.z = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))

        def forward(self, F):
            return (F * self.t).sum() + (self.w ** 2).sum() + (self.z ** 2).sum()

    u = UserLoss(Loss(), backend="torch")
    assert u.learned == ["module.w", "module.t", "module.z"]
    theta = np.array([1.0, 2.0, 0.25, 5.0, 6.0, 7.0])  # w (0, 1), t (2), z (3, 4, 5)
    assert u.scalar_values(theta) == {"module.t": 0.25}
