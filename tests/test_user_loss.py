"""Losses as practitioners write them: numerics.user_loss (roles, backends, gradients),
the joint fit of encoders and a loss's scalars, flat directions, and verify_variant with
inputs="embeddings", params/learn, torch and JAX, cosine similarity.

torch and JAX are optional extras: the tests that need one skip, saying so, without it."""
import math

import numpy as np
import pytest
from scipy.special import logsumexp

from numerics import InvalidInputError
from numerics.batch_fit import batch_objective, fit_batch, loss_inputs
from numerics.encoders import LinearEncoders, nested_sample, population_minimizer
from numerics.optimize import finite_difference_grad, minimize_factors
from numerics.user_loss import ClipControl, UserLoss
from proofs_checks import verify_variant
from numerics.flat import flat_directions
from proofs_checks.verify import default_variant_models

SKIP_TORCH = "torch is an optional extra (pip install '.[torch]'); .ci/run installs it"
SKIP_JAX = "jax is an optional extra (pip install '.[jax]'); .ci/run installs it"


def _clip(F):
    """Symmetric InfoNCE written out by hand (independent of numerics.infonce)."""
    d = np.diag(F)
    return float(np.mean(logsumexp(F, axis=1) - d) + np.mean(logsumexp(F, axis=0) - d)) / 2


def scaled_clip(F, logit_scale):
    return _clip(logit_scale * F)


def tempered_clip(F, temperature):
    return _clip(F / temperature)


def biased_clip(F, logit_bias):
    return _clip(F + logit_bias)


def smoothed_clip(F, smoothing):
    """Label smoothing: not a role of the logits."""
    N = F.shape[0]
    Y = (1 - smoothing) * np.eye(N) + smoothing / N
    P = F - logsumexp(F, axis=1, keepdims=True)
    Q = F - logsumexp(F, axis=0, keepdims=True)
    return float(-(np.sum(Y * P) + np.sum(Y * Q)) / (2 * N))


def sigmoid_pairs(za, zb, logit_scale, logit_bias):
    F = logit_scale * za @ zb.T + logit_bias
    Y = 2 * np.eye(F.shape[0]) - 1
    return float(np.sum(np.logaddexp(0, -Y * F)) / F.shape[0])


# --------------------------------------------------------------------------
# roles of a loss's scalars, found by their defining identities
# --------------------------------------------------------------------------
@pytest.mark.parametrize("loss, params, role", [
    (scaled_clip, {"logit_scale": 3.0}, "scale"),
    (tempered_clip, {"temperature": 0.3}, "temperature"),
    (biased_clip, {"logit_bias": 1.5}, "bias"),      # the identity holds, trivially: softmaxes ignore it
    (smoothed_clip, {"smoothing": 0.1}, None),
])
def test_roles_of_logit_losses(loss, params, role):
    u = UserLoss(loss, params=params)
    roles = u.detect_roles("dot", np.random.default_rng(0))
    (name,) = params
    assert roles.get(name) == role
    # the multiplier the roles imply
    want = {"scale": params[name], "temperature": 1 / params[name], "bias": 1.0, None: 1.0}[role]
    assert u.multiplier(u.theta0) == pytest.approx(want, rel=1e-15)


def test_roles_of_an_embedding_loss_with_scale_and_bias():
    u = UserLoss(sigmoid_pairs, inputs="embeddings", params={"logit_scale": 2.0, "logit_bias": -1.0})
    assert u.detect_roles("dot", np.random.default_rng(1)) == {"logit_scale": "scale", "logit_bias": "bias"}
    assert u.backend == "numpy" and u.learned == ["logit_scale", "logit_bias"]


def test_matched_start_reaches_the_target_multiplier():
    u = UserLoss(tempered_clip, params={"temperature": 0.5})
    u.detect_roles("cosine", np.random.default_rng(2))
    theta = u.matched_start(4.0)
    assert u.multiplier(theta) == pytest.approx(4.0, rel=1e-14)


def test_bad_params_and_learn_are_named():
    with pytest.raises(InvalidInputError, match="learn"):
        UserLoss(scaled_clip, params={"logit_scale": 1.0}, learn=["temperature"])
    with pytest.raises(InvalidInputError, match="logit_scale"):
        UserLoss(scaled_clip, params={"logit_scale": float("nan")})
    with pytest.raises(InvalidInputError, match="inputs"):
        UserLoss(scaled_clip, inputs="features")
    with pytest.raises(InvalidInputError, match="backend"):
        UserLoss(scaled_clip, params={"logit_scale": 1.0}, backend="tensorflow")


# --------------------------------------------------------------------------
# the joint fit of encoders and scalars
# --------------------------------------------------------------------------
def test_minimize_factors_with_extra_scalars_finds_a_known_minimum():
    """f = |G_u - 1|^2 + |G_v + 2|^2 + (t - 3)^2 + (t G_u[0,0] - 3)^2: minimum at G_u = 1,
    G_v = -2, t = 3 (every term zero there)."""
    def objective(G_u, G_v, t):
        r = t[0] * G_u[0, 0] - 3.0
        val = np.sum((G_u - 1) ** 2) + np.sum((G_v + 2) ** 2) + (t[0] - 3) ** 2 + r**2
        dGu = 2 * (G_u - 1)
        dGu[0, 0] += 2 * r * t[0]
        return val, (dGu, 2 * (G_v + 2), np.array([2 * (t[0] - 3) + 2 * r * G_u[0, 0]]))

    fit = minimize_factors(objective, 2, 3, 1, starts=2, n_extra=1, rng=np.random.default_rng(0))
    assert fit.converged
    np.testing.assert_allclose(fit.G_u, 1.0, atol=1e-8)   # gtol 1e-10, unit curvature
    np.testing.assert_allclose(fit.G_v, -2.0, atol=1e-8)
    np.testing.assert_allclose(fit.extra, [3.0], atol=1e-8)
    assert fit.x.size == 2 + 3 + 1
    with pytest.raises(InvalidInputError, match="init"):
        minimize_factors(objective, 2, 3, 1, n_extra=1, init=(np.ones((1, 2)), np.ones((1, 3))))


@pytest.mark.parametrize("similarity", ["dot", "l2", "cosine"])
@pytest.mark.parametrize("inputs", ["logits", "embeddings"])
def test_batch_gradient_matches_finite_differences(similarity, inputs):
    """The pull-back through the logits (or the embeddings), the normalisation under cosine
    and the scalars' gradient, against central differences of the value (error ~1e-9 for
    O(1) values at step eps^(1/3))."""
    model = default_variant_models(0, 3, "cosine" if similarity == "cosine" else "dot")[2]
    fam = LinearEncoders(model, similarity)
    U, V = nested_sample(model, (0, 0, 0), 32)
    if inputs == "logits":
        u = UserLoss(scaled_clip, params={"logit_scale": 1.3}, grad=lambda F, logit_scale: None)
        u.grad = lambda F, logit_scale: _clip_grad(logit_scale * F) * logit_scale
    else:
        u = UserLoss(sigmoid_pairs, inputs="embeddings", params={"logit_scale": 1.3, "logit_bias": -0.5},
                     grad=lambda za, zb, logit_scale, logit_bias: _sigmoid_grad(za, zb, logit_scale, logit_bias))
    x = np.concatenate([population_minimizer(fam) + 0.1, u.theta0])
    fun = batch_objective(fam, U, V, u)
    value = lambda y: fun(y)[0]  # noqa: E731
    np.testing.assert_allclose(fun(x)[1], finite_difference_grad(value, x), atol=2e-7, rtol=1e-6)


def _clip_grad(F):
    N = F.shape[0]
    P = np.exp(F - logsumexp(F, axis=1, keepdims=True))
    Q = np.exp(F - logsumexp(F, axis=0, keepdims=True))
    return (P + Q - 2 * np.eye(N)) / (2 * N)


def _sigmoid_grad(za, zb, s, b):
    F = s * za @ zb.T + b
    Y = 2 * np.eye(F.shape[0]) - 1
    dF = -Y / (1 + np.exp(Y * F)) / F.shape[0]
    return s * dF @ zb, s * dF.T @ za


def test_scaled_clip_control_learns_a_scale_under_cosine():
    model = default_variant_models(1, 1, "cosine")[0]
    fam = LinearEncoders(model, "cosine")
    U, V = nested_sample(model, (1, 0, 0), 256)
    c = ClipControl(2.0, learn=True)
    fit = fit_batch(fam, U, V, np.concatenate([population_minimizer(fam), c.theta0]), c)
    assert fit.converged and fit.extra[0] > 0
    # the learned scale is stationary: the value rises on both sides of it
    a, _, _, _ = loss_inputs(fam, fit.x, U, V, "logits")
    for step in (0.9, 1.1):
        assert c.value(a, None, fit.extra * step) > fit.value


# --------------------------------------------------------------------------
# flat directions
# --------------------------------------------------------------------------
def test_flat_directions_are_named_and_harmless_for_a_learned_scale():
    """CLIP(s F) under dot: flat along the bilinear invariance (n_e^2 = 4 directions) and
    along the scale traded against the encoders (1), none of which moves s A."""
    model = default_variant_models(0, 3)[2]
    fam = LinearEncoders(model, "dot")
    U, V = nested_sample(model, (0, 2, 0), 64)
    u = UserLoss(scaled_clip, params={"logit_scale": 1.0})
    u.grad = lambda F, logit_scale: _clip_grad(logit_scale * F) * logit_scale
    u.detect_roles("dot", np.random.default_rng(0))
    fit = fit_batch(fam, U, V, np.concatenate([population_minimizer(fam), u.theta0]), u)
    ng = fam.size
    stat = lambda x: (u.multiplier(x[ng:]) * fam.invariant(x)).ravel()  # noqa: E731
    flat = flat_directions(batch_objective(fam, U, V, u), fit.x, stat, fam, u.learned)
    assert flat.count == 5
    assert any("bilinear invariance" in n and "(4)" in n for n in flat.names)
    assert any("'logit_scale' traded" in n for n in flat.names)
    assert flat.moving == [] and flat.tangents.shape[1] == 0
    # without the role the same direction moves the plain invariant A: it is reported
    raw = flat_directions(batch_objective(fam, U, V, u), fit.x, lambda x: fam.invariant(x).ravel(),
                          fam, u.learned)
    assert np.linalg.matrix_rank(raw.tangents, tol=1e-6 * np.abs(raw.tangents).max()) == 1
    assert raw.moving == ["1 of the 5 flat dimension(s)"]


def test_a_bias_the_softmaxes_cannot_see_is_named():
    model = default_variant_models(0, 1)[0]
    fam = LinearEncoders(model, "dot")
    U, V = nested_sample(model, (0, 0, 0), 64)
    u = UserLoss(biased_clip, params={"logit_bias": 0.5})
    u.grad = lambda F, logit_bias: _clip_grad(F + logit_bias)
    fit = fit_batch(fam, U, V, np.concatenate([population_minimizer(fam), u.theta0]), u)
    flat = flat_directions(batch_objective(fam, U, V, u), fit.x, lambda x: fam.invariant(x).ravel(),
                           fam, u.learned)
    assert "'logit_bias' (the loss does not depend on it)" in flat.names


# --------------------------------------------------------------------------
# verify_variant on such losses
# --------------------------------------------------------------------------
ONE = dict(n_models=1, claim="same-minimizers-as-clip")
# CLIP reparametrised (a learned temperature or scale, in NumPy, torch or JAX) has the
# control's batch minimisers: its paired differences are the optimisers' error (~1e-7), so
# the smallest data confirm it (upper bound measured below 1e-4, the margin 0.04).
TINY = dict(sizes=(32, 64), replicates=2, budget=0)


def test_numpy_loss_with_a_learned_temperature_is_confirmed():
    res = verify_variant(tempered_clip, params={"temperature": 0.2}, seed=3, **ONE, **TINY)
    assert res.verdict == "confirmed", res.summary()
    assert res.models[0].estimate.upper < 1e-3 * res.models[0].margin
    assert "temperature: temperature" in " ".join(res.notes)


def test_label_smoothing_is_refuted_even_with_a_learned_scale():
    """Label smoothing eps = 0.1 shrinks CLIP's minimiser to 0.9 A* (a 10 % difference) and a
    learned logit scale cannot undo it: the effective f = s A is what is compared."""
    def smoothed_scaled(F, logit_scale):
        return smoothed_clip(logit_scale * F, 0.1)

    # (64, 128) x 8: lower bound 0.54 of delta (0.75 at the default sizes), relative delta 0.12
    res = verify_variant(smoothed_scaled, params={"logit_scale": 1.0}, seed=1, sizes=(64, 128), replicates=8,
                         budget=0, **ONE)
    assert res.verdict == "refuted", res.summary()
    rel = res.models[0].to_dict()["relative_delta"]
    assert 0.05 < rel < 0.2, rel


def test_embedding_loss_with_scale_and_bias_is_confirmed_for_the_subspace_claim():
    """A sigmoid pairwise loss has its own minimiser but CLIP's top canonical subspace
    (examples/variants/jax_sigmoid_learned_bias.py): confirmed on both models, whose n_e = 1 <
    n makes the claim non-trivial (upper bounds 0.45 and 0.58 of the angle margin at
    (64, 128) x 4).  Its learned scale trades against the encoders (a flat direction next to
    the bilinear invariance) without moving the subspaces; its bias is not flat."""
    res = verify_variant(sigmoid_pairs, inputs="embeddings", claim="same-subspace-as-clip",
                         params={"logit_scale": 1.0, "logit_bias": -2.0}, n_models=2, seed=0,
                         sizes=(64, 128), replicates=4, budget=0)
    assert res.verdict == "confirmed", res.summary()
    d = res.to_dict()
    assert d["roles"] == {"logit_scale": "scale", "logit_bias": "bias"}
    assert d["learned"] == ["logit_scale", "logit_bias"]
    assert len(d["models"]) == 2
    for m in d["models"]:
        assert m["n_e"] < min(m["n_u"], m["n_v"])
        flat = m["flat_directions"]
        assert flat["count"] == 2 and flat["moving_the_statistic"] == []
        assert flat["names"] == ["the bilinear invariance (M G_u, M^-T G_v)",
                                 "'logit_scale' traded against the encoders"]
        assert m["replicates_set_aside"] == 0
    assert sum("flat direction(s)" in n and "leave the statistic unchanged" in n for n in res.notes) == 2


def test_errors_name_the_argument():
    with pytest.raises(InvalidInputError, match="inputs"):
        verify_variant(scaled_clip, inputs="features", **ONE)
    with pytest.raises(InvalidInputError, match="learn"):
        verify_variant(scaled_clip, params={"logit_scale": 1.0}, learn=["tau"], **ONE)
    with pytest.raises(InvalidInputError, match="control_scale"):
        verify_variant(scaled_clip, params={"logit_scale": 1.0}, similarity="cosine",
                       control_scale=-1.0, **ONE)


# --------------------------------------------------------------------------
# a NumPy loss's value and gradient in one pass (loss.value_and_grad)
# --------------------------------------------------------------------------
def _clip_grad(F):
    from scipy.special import softmax

    N = F.shape[0]
    return (softmax(F, axis=1) + softmax(F, axis=0) - 2 * np.eye(N)) / (2 * N)


def _with(**attrs):
    def loss(F):
        return _clip(F)

    for k, v in attrs.items():
        setattr(loss, k, v)
    return loss


def test_value_and_grad_in_one_pass_is_the_loss_and_its_grad():
    rng = np.random.default_rng(4)
    F = rng.standard_normal((9, 9))
    calls = []

    def both(F):
        calls.append(1)
        return _clip(F), _clip_grad(F)

    apart, together = UserLoss(_with(grad=_clip_grad)), UserLoss(_with(value_and_grad=both))
    assert together.has_gradient()
    v1, g1, _, _ = apart.value_and_grad(F, None, np.zeros(0))
    v2, g2, _, _ = together.value_and_grad(F, None, np.zeros(0))
    assert v1 == v2 and np.array_equal(g1, g2) and len(calls) == 1  # one call, not value then grad
    kw = dict(claim="same-minimizers-as-clip", n_models=1, sizes=(32, 64), replicates=3, budget=0, seed=2,
              workers=1)
    a = verify_variant(_with(grad=_clip_grad), **kw).to_dict()
    b = verify_variant(_with(value_and_grad=both), **kw).to_dict()
    a.pop("seconds", None), b.pop("seconds", None)
    assert a == b


@pytest.mark.parametrize("bad, match", [
    (lambda F: _clip_grad(F), r"loss\.value_and_grad.*a pair"),
    (lambda F: (_clip(F), np.zeros((2, 2))), r"grad.*shape"),
    (lambda F: (_clip(F), 1.05 * _clip_grad(F)), r"grad.*disagrees"),
    ("not callable", r"loss\.value_and_grad.*callable"),
])
def test_a_wrong_value_and_grad_is_named(bad, match):
    with pytest.raises(InvalidInputError, match=match):
        verify_variant(_with(value_and_grad=bad), claim="same-minimizers-as-clip", n_models=1, sizes=(32, 64),
                       replicates=3, budget=0, workers=1)


# --------------------------------------------------------------------------
# torch and JAX
# --------------------------------------------------------------------------
def _torch_clip_module():
    torch = pytest.importorskip("torch", reason=SKIP_TORCH)
    import torch.nn.functional as Fn

    class ClipLoss(torch.nn.Module):  # the forward of a widely used CLIP loss
        def forward(self, image_features, text_features, logit_scale):
            logits = logit_scale * image_features @ text_features.T
            labels = torch.arange(logits.shape[0])
            return (Fn.cross_entropy(logits, labels) + Fn.cross_entropy(logits.T, labels)) / 2

    return ClipLoss()


def test_torch_autograd_gradient_matches_the_numpy_one():
    pytest.importorskip("torch", reason=SKIP_TORCH)
    u = UserLoss(_torch_clip_module(), inputs="embeddings", params={"logit_scale": 2.5})
    assert u.backend == "torch"
    rng = np.random.default_rng(0)
    za, zb = rng.standard_normal((16, 3)), rng.standard_normal((16, 3))
    val, dza, dzb, dtheta = u.value_and_grad(za, zb, u.theta0)
    F = za @ zb.T
    G = _clip_grad(2.5 * F)
    assert val == pytest.approx(_clip(2.5 * F), rel=1e-13)
    np.testing.assert_allclose(dza, 2.5 * G @ zb, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dzb, 2.5 * G.T @ za, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dtheta, [np.sum(G * F)], rtol=1e-12)


@pytest.mark.parametrize("similarity, sizes, replicates", [("dot", (32, 64), 2), ("cosine", (64, 128), 3)])
def test_torch_clip_module_is_confirmed(similarity, sizes, replicates):
    """It is CLIP: confirmed with its scale learned, under dot and under cosine.  (Under
    cosine the smallest batches leave fits without a stationary point, replicates set aside:
    (64, 128) x 3 keeps all three.)"""
    res = verify_variant(_torch_clip_module(), inputs="embeddings", params={"logit_scale": 10.0},
                         similarity=similarity, seed=2, sizes=sizes, replicates=replicates, budget=0, **ONE)
    assert res.verdict == "confirmed", res.summary()
    assert res.models[0].set_aside == 0
    assert res.models[0].estimate.upper < 1e-2 * res.models[0].margin
    assert res.gradient == "torch autograd"


def test_torch_module_parameters_are_learned():
    torch = pytest.importorskip("torch", reason=SKIP_TORCH)
    from pathlib import Path
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "examples" / "variants" / "torch_learned_temperature.py"
    spec = importlib.util.spec_from_file_location("_torch_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    module = mod.LearnedTemperatureClip()
    threads = torch.get_num_threads()
    u = UserLoss(module, inputs="embeddings")
    assert u.learned == ["module.log_scale"]
    assert u.detect_roles("dot", np.random.default_rng(0)) == {"module.log_scale": "log_scale"}
    assert u.multiplier(u.theta0) == pytest.approx(math.e, rel=1e-15)
    # evaluating the loss (one thread at a time) leaves torch's thread setting as it was
    assert torch.get_num_threads() == threads
    # the user's module is not touched: UserLoss fits a float64 copy of it
    assert u.loss is not module and module.log_scale.dtype == torch.float32
    assert module.log_scale.detach().item() == 1.0 and module.log_scale.grad is None
    val, _, _, dtheta = u.value_and_grad(np.eye(3, 2), np.eye(3, 2), np.array([0.5]))
    assert module.log_scale.detach().item() == 1.0 and dtheta.shape == (1,)


def test_jax_loss_gradient_and_verdict():
    jnp = pytest.importorskip("jax.numpy", reason=SKIP_JAX)
    from jax.scipy.special import logsumexp as jlse

    def jax_clip(F, logit_scale):
        S = logit_scale * F
        d = jnp.diag(S)
        return (jnp.mean(jlse(S, axis=1) - d) + jnp.mean(jlse(S, axis=0) - d)) / 2

    u = UserLoss(jax_clip, params={"logit_scale": 1.7})
    assert u.backend == "jax"
    F = np.random.default_rng(1).standard_normal((12, 12))
    val, dF, _, dtheta = u.value_and_grad(F, None, u.theta0)
    assert val == pytest.approx(_clip(1.7 * F), rel=1e-13)
    np.testing.assert_allclose(dF, 1.7 * _clip_grad(1.7 * F), rtol=1e-11, atol=1e-15)
    res = verify_variant(jax_clip, params={"logit_scale": 1.7}, seed=0, **ONE, **TINY)
    assert res.verdict == "confirmed", res.summary()
    assert res.gradient == "jax autograd"
