"""numerics.batch_fit: loss inputs, the batch objective's gradient (pulled back or
differenced), fits to stationary points, the dependence probe and the paired fits, against
hand-written losses and central differences."""
import math

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from numerics import InvalidInputError
from numerics.batch_fit import (FIT_GTOL, ChainState, PairedFit, batch_objective, check_depends, fit_batch,
                                loss_inputs, paired_fits)
from numerics.encoders import LinearEncoders, population_minimizer
from numerics.models import random_gaussian_model
from numerics.user_loss import ClipControl, UserLoss
from tests._reference import central_difference


def _model(seed, n_u=3, n_v=2, n_e=2):
    return random_gaussian_model(np.random.default_rng(seed), n_u, n_v, n_e=n_e, min_gap=0.1)


# --------------------------------------------------------------------------
# hand-written losses (scipy's logsumexp/softmax, not numerics.infonce)
# --------------------------------------------------------------------------
def clip_np(F):
    """L_N(F) - log N of MATH.md §2."""
    d = np.diag(F)
    return 0.5 * (np.mean(logsumexp(F, axis=1) - d) + np.mean(logsumexp(F, axis=0) - d)) - math.log(F.shape[0])


def row_infonce(F, logit_scale=1.0):
    """One-sided (row-wise) InfoNCE of logit_scale * F."""
    G = logit_scale * F
    return float(np.mean(logsumexp(G, axis=1) - np.diag(G)))


def row_infonce_grad(F, logit_scale=1.0):
    return logit_scale * (softmax(logit_scale * F, axis=1) - np.eye(F.shape[0])) / F.shape[0]


def emb_loss(za, zb, logit_scale=1.0):
    """A loss of the embeddings: row InfoNCE of their dot products, plus a norm penalty."""
    return row_infonce(za @ zb.T, logit_scale) + 0.05 * float(np.sum(za**2) + np.sum(zb**2)) / za.shape[0]


def emb_loss_grad(za, zb, logit_scale=1.0):
    dF = row_infonce_grad(za @ zb.T, logit_scale)
    return dF @ zb + 0.1 * za / za.shape[0], dF.T @ za + 0.1 * zb / za.shape[0]


def _hand_logits(fam, x, U, V):
    G_u, G_v = fam.split(x)
    a, b = U @ G_u.T, V @ G_v.T
    if fam.similarity == "dot":
        return a @ b.T
    if fam.similarity == "l2":
        return -0.5 * np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=2)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def _central_difference(phi, x, h=1e-5):
    return central_difference(phi, x, h)


# --------------------------------------------------------------------------
# loss_inputs and batch_objective
# --------------------------------------------------------------------------
@pytest.mark.parametrize("similarity", ["dot", "l2", "cosine"])
def test_loss_inputs_are_the_logits_or_the_embeddings(similarity):
    rng = np.random.default_rng(0)
    fam = LinearEncoders(_model(0), similarity)
    x = rng.standard_normal(fam.size)
    U, V = fam.sample(rng, 7)
    F, none, Za, Zb = loss_inputs(fam, x, U, V, "logits")
    assert none is None and F.shape == (7, 7)
    # the module's l2 route expands the square around the mean: rounding ~1e-15 relative
    np.testing.assert_allclose(F, _hand_logits(fam, x, U, V), rtol=1e-12, atol=1e-12)
    za, zb, Za2, Zb2 = loss_inputs(fam, x, U, V, "embeddings")
    G_u, G_v = fam.split(x)
    # products and a normalisation of O(1) numbers: rounding ~1e-16
    np.testing.assert_allclose(Za2, U @ G_u.T, rtol=1e-14)
    if similarity == "cosine":
        np.testing.assert_allclose(za, Za2 / np.linalg.norm(Za2, axis=1, keepdims=True), rtol=1e-14)
        np.testing.assert_allclose(zb, Zb2 / np.linalg.norm(Zb2, axis=1, keepdims=True), rtol=1e-14)
    else:
        np.testing.assert_array_equal(za, Za2)
        np.testing.assert_array_equal(zb, Zb2)


LOSSES = {
    "logits, gradient": lambda: UserLoss(row_infonce, grad=row_infonce_grad, backend="numpy"),
    "logits, no gradient": lambda: UserLoss(row_infonce, backend="numpy"),
    "logits, gradient, learned scale": lambda: UserLoss(row_infonce, grad=row_infonce_grad,
                                                        params={"logit_scale": 1.7}, backend="numpy"),
    "logits, no gradient, learned scale": lambda: UserLoss(row_infonce, params={"logit_scale": 1.7},
                                                           backend="numpy"),
    "embeddings, gradient, learned scale": lambda: UserLoss(emb_loss, inputs="embeddings", grad=emb_loss_grad,
                                                            params={"logit_scale": 0.8}, backend="numpy"),
    "embeddings, no gradient": lambda: UserLoss(emb_loss, inputs="embeddings", backend="numpy"),
}


@pytest.mark.parametrize("similarity", ["dot", "l2", "cosine"])
@pytest.mark.parametrize("kind", list(LOSSES))
def test_batch_objective_gradient_matches_central_differences(kind, similarity):
    loss = LOSSES[kind]()
    assert loss.has_gradient() == ("no gradient" not in kind)
    rng = np.random.default_rng(1)
    fam = LinearEncoders(_model(1, 3, 3, 2), similarity)
    U, V = fam.sample(rng, 6)
    x = np.concatenate([0.6 * rng.standard_normal(fam.size), loss.theta0])

    def value(y):  # the loss on hand-computed inputs
        p = fam.unpack(y)
        kw = dict(zip(loss.learn, p.theta))
        if loss.inputs == "logits":
            return loss.loss(_hand_logits(fam, y, U, V), **kw)
        za, zb = U @ p.G_u.T, V @ p.G_v.T
        if similarity == "cosine":
            za, zb = za / np.linalg.norm(za, axis=1, keepdims=True), zb / np.linalg.norm(zb, axis=1, keepdims=True)
        return loss.loss(za, zb, **kw)

    val, grad = batch_objective(fam, U, V, loss)(x)
    assert grad.shape == x.shape
    assert abs(val - value(x)) < 1e-12 * max(1.0, abs(val))  # same numbers, other rounding
    # central differences with h = 1e-5: truncation ~h^2 = 1e-10, rounding ~eps/h = 2e-11 (O(1) loss);
    # the module's own differences (no gradient) have error ~eps^(2/3) ~ 4e-11
    np.testing.assert_allclose(grad, _central_difference(value, x), rtol=1e-6, atol=2e-8)


# --------------------------------------------------------------------------
# fit_batch
# --------------------------------------------------------------------------
@pytest.mark.parametrize("similarity,control", [("dot", ClipControl()), ("l2", ClipControl()),
                                                ("cosine", ClipControl(scale=4.0, learn=True))])
def test_fit_batch_reaches_a_stationary_point_of_clip(similarity, control):
    rng = np.random.default_rng(2)
    m = _model(2, 3, 2, 2)
    fam = LinearEncoders(m, similarity)
    U, V = fam.sample(rng, 48)
    x0 = np.concatenate([population_minimizer(fam, rng) if similarity != "l2"
                         else 0.5 * rng.standard_normal(fam.size), control.theta0])
    fit = fit_batch(fam, U, V, x0, control)
    assert fit.converged, fit.messages
    assert fit.x.shape == x0.shape

    def value(y):
        p = fam.unpack(y)
        s = p.theta[0] if control.size else 1.0
        return clip_np(s * _hand_logits(fam, y, U, V))

    assert abs(fit.value - value(fit.x)) < 1e-12 * max(1.0, abs(fit.value))  # other rounding only
    # stationary: BFGS stopped at |grad|_inf <= FIT_GTOL = 1e-6 (or at the rounding floor
    # sqrt(2 eps |f|) ~ 2e-8); the check's differences (h = 1e-5) add ~1e-9
    g = _central_difference(value, fit.x)
    assert np.max(np.abs(g)) < 3 * FIT_GTOL, np.max(np.abs(g))
    # and it moved downhill from its start
    assert fit.value <= value(x0) + 1e-12


def test_fit_batch_with_a_learned_scale_stops_where_its_gradient_vanishes():
    rng = np.random.default_rng(3)
    fam = LinearEncoders(_model(3, 3, 2, 1), "dot")
    U, V = fam.sample(rng, 40)
    loss = LOSSES["logits, gradient, learned scale"]()
    x0 = np.concatenate([population_minimizer(fam), loss.theta0])
    fit = fit_batch(fam, U, V, x0, loss)
    assert fit.extra.shape == (1,)
    val, g = batch_objective(fam, U, V, loss)(fit.x)
    # the scale trades against the encoders' norm (a flat ray): BFGS may stop at the rounding
    # floor of the value, sqrt(2 eps |f|) ~ 2e-8, else at FIT_GTOL
    assert np.max(np.abs(g)) < 3 * FIT_GTOL
    assert fit.converged


# --------------------------------------------------------------------------
# check_depends
# --------------------------------------------------------------------------
def test_check_depends_refuses_a_constant_loss_and_accepts_a_real_one():
    rng = np.random.default_rng(4)
    fam = LinearEncoders(_model(4), "dot")
    U, V = fam.sample(rng, 8)
    x = rng.standard_normal(fam.size)
    constant = UserLoss(lambda F: 0.25, backend="numpy")
    with pytest.raises(InvalidInputError, match="depends on the logit matrix F"):
        check_depends(fam, U, V, x, constant, np.random.default_rng(0))
    shape_only = UserLoss(lambda F: float(np.log(F.shape[0])), backend="numpy")
    with pytest.raises(InvalidInputError, match="same value"):
        check_depends(fam, U, V, x, shape_only, np.random.default_rng(0))
    assert check_depends(fam, U, V, x, LOSSES["logits, gradient"](), np.random.default_rng(0)) is None
    assert check_depends(fam, U, V, x, ClipControl(), np.random.default_rng(0)) is None


def test_check_depends_accepts_a_weak_but_real_dependence():
    rng = np.random.default_rng(6)
    fam = LinearEncoders(_model(6), "dot")
    U, V = fam.sample(rng, 8)
    x = rng.standard_normal(fam.size)
    # changes of ~1e-11 relative: far above the rounding threshold 64 eps ~ 1.4e-14
    weak = UserLoss(lambda F: 1.0 + 1e-11 * float(np.mean(F**2)), backend="numpy")
    assert check_depends(fam, U, V, x, weak, np.random.default_rng(0)) is None
    # and a change at rounding level (1e-17 relative, below one ulp of 1.0) is no dependence
    flat = UserLoss(lambda F: 1.0 + 1e-17 * float(np.mean(F**2)), backend="numpy")
    with pytest.raises(InvalidInputError, match="same value"):
        check_depends(fam, U, V, x, flat, np.random.default_rng(0))


def test_check_depends_sees_through_cosine_normalisation():
    rng = np.random.default_rng(5)
    fam = LinearEncoders(_model(5), "cosine")
    U, V = fam.sample(rng, 8)
    x = rng.standard_normal(fam.size)
    # unit rows under cosine: the sum of squared norms is N whatever the encoders (to rounding)
    norms_only = UserLoss(lambda za, zb: float(np.sum(za**2) + np.sum(zb**2)), inputs="embeddings",
                          backend="numpy")
    with pytest.raises(InvalidInputError, match="its embeddings"):
        check_depends(fam, U, V, x, norms_only, np.random.default_rng(0))
    aligned = UserLoss(lambda za, zb: float(-np.sum(za * zb)), inputs="embeddings", backend="numpy")
    assert check_depends(fam, U, V, x, aligned, np.random.default_rng(0)) is None


# --------------------------------------------------------------------------
# paired_fits
# --------------------------------------------------------------------------
def _paired_setup(seed=6):
    m = _model(seed, 3, 2, 2)
    fam = LinearEncoders(m, "dot")
    U, V = fam.sample(np.random.default_rng(seed), 64)
    variant = UserLoss(clip_np, grad=lambda F: (softmax(F, axis=1) + softmax(F, axis=0)) / (2 * F.shape[0])
                       - np.eye(F.shape[0]) / F.shape[0], backend="numpy")
    return fam, U, V, population_minimizer(fam), variant, ClipControl()


def test_paired_fits_returns_one_record_per_size_and_a_variant_equal_to_clip_finds_clips_fit():
    fam, U, V, x0, variant, control = _paired_setup()
    sizes = [24, 40, 64]
    records, state = paired_fits(fam, U, V, sizes, x0, variant, control, rng=np.random.default_rng(1))
    assert [r.N for r in records] == sizes
    assert all(isinstance(r, PairedFit) for r in records)
    assert isinstance(state, ChainState)
    np.testing.assert_array_equal(state.x_c, records[-1].x_c)
    np.testing.assert_array_equal(state.x_u, records[-1].x_u)
    for r in records:
        assert r.x_c.shape == r.x_u.shape == (fam.size,)
        assert r.converged and r.iterations >= 0 and r.moved > 0
        Ub, Vb = U[: r.N], V[: r.N]
        # the control's record is CLIP's stationary point on the prefix batch
        g = _central_difference(lambda y: clip_np(_hand_logits(fam, y, Ub, Vb)), r.x_c)
        # BFGS stops at FIT_GTOL; the differences (h = 1e-5) add ~1e-9
        assert np.max(np.abs(g)) < 3 * FIT_GTOL
        # the variant is CLIP written by hand: same minimiser, compared through the invariant
        # B (gradients <= 1e-6, curvature of the batch loss ~1e-1: B within ~1e-5)
        np.testing.assert_allclose(fam.invariant(r.x_u), fam.invariant(r.x_c), atol=1e-4)
    # the first variant fit starts from a perturbed control fit, not from the control itself
    assert records[0].moved > 1e-3


def test_paired_fits_is_deterministic_for_a_fixed_rng():
    fam, U, V, x0, variant, control = _paired_setup(7)
    a, sa = paired_fits(fam, U, V, [32, 64], x0, variant, control, rng=np.random.default_rng(11))
    b, sb = paired_fits(fam, U, V, [32, 64], x0, variant, control, rng=np.random.default_rng(11))
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.x_c, rb.x_c)
        np.testing.assert_array_equal(ra.x_u, rb.x_u)
        assert (ra.moved, ra.iterations, ra.converged) == (rb.moved, rb.iterations, rb.converged)
    np.testing.assert_array_equal(sa.H_c, sb.H_c)
    # another rng is another start perturbation: another path to (nearly) the same fit
    c, _ = paired_fits(fam, U, V, [32, 64], x0, variant, control, rng=np.random.default_rng(12))
    assert c[0].moved != a[0].moved


def test_paired_fits_continue_from_a_chain_state_as_one_run():
    fam, U, V, x0, variant, control = _paired_setup(8)
    whole, s_whole = paired_fits(fam, U, V, [24, 40, 64], x0, variant, control, rng=np.random.default_rng(3))
    first, s1 = paired_fits(fam, U, V, [24, 40], x0, variant, control, rng=np.random.default_rng(3))
    # the rng is used only at the first size: a fresh one for the continuation changes nothing
    rest, s2 = paired_fits(fam, U, V, [64], x0, variant, control, rng=np.random.default_rng(99), state=s1)
    for ra, rb in zip(whole, first + rest):
        assert ra.N == rb.N
        np.testing.assert_array_equal(ra.x_c, rb.x_c)
        np.testing.assert_array_equal(ra.x_u, rb.x_u)
        assert ra.iterations == rb.iterations
    np.testing.assert_array_equal(s_whole.x_u, s2.x_u)
    np.testing.assert_array_equal(s_whole.H_u, s2.H_u)


def test_paired_fits_chain_each_fit_from_the_previous_one(monkeypatch):
    """The documented warm starts: the control from its previous fit and inverse Hessian, the
    variant from its own previous fit (and metric), at the first size from the control's fit."""
    import numerics.batch_fit as bf

    fam, U, V, x0, variant, control = _paired_setup(10)
    calls, real = [], bf.fit_batch

    def spy(family, Ub, Vb, x_start, loss, *, hess_inv=None, **kw):
        fit = real(family, Ub, Vb, x_start, loss, hess_inv=hess_inv, **kw)
        calls.append((loss, Ub.shape[0], np.array(x_start), hess_inv, fit))
        return fit

    monkeypatch.setattr(bf, "fit_batch", spy)
    records, _ = paired_fits(fam, U, V, [24, 48], x0, variant, control, rng=np.random.default_rng(0))
    (c1, u1, c2, u2) = calls
    # each loss is passed wrapped in its evaluation counter (numerics.batch_fit.Counted)
    assert [c[0].loss for c in calls] == [control, variant, control, variant]
    assert [c[1] for c in calls] == [24, 24, 48, 48]  # the nested prefixes
    np.testing.assert_array_equal(c1[2], x0)
    assert c1[3] is None
    np.testing.assert_array_equal(c2[2], c1[4].x)
    assert c2[3] is c1[4].hess_inv
    np.testing.assert_array_equal(u2[2], u1[4].x)
    assert u2[3] is u1[4].hess_inv
    # neither loss has learned scalars: the variant's first fit borrows the control's metric
    assert u1[3] is c1[4].hess_inv
    np.testing.assert_array_equal(records[1].x_u, u2[4].x)


def test_the_variants_first_start_is_at_the_controls_effective_similarity(monkeypatch):
    import numerics.batch_fit as bf

    fam, U, V, x0, _, control = _paired_setup(11)
    # CLIP with a fixed logit scale 4: its multiplier (role found by its identity) is 4
    scaled = UserLoss(lambda F, logit_scale: clip_np(logit_scale * F), params={"logit_scale": 4.0}, learn=[],
                      backend="numpy")
    scaled.detect_roles("dot", np.random.default_rng(0))
    assert scaled.multiplier(scaled.theta0) == 4.0
    starts, real = [], bf.fit_batch

    def spy(family, Ub, Vb, x_start, loss, **kw):
        fit = real(family, Ub, Vb, x_start, loss, **kw)
        starts.append((loss, np.array(x_start), fit))
        return fit

    monkeypatch.setattr(bf, "fit_batch", spy)
    paired_fits(fam, U, V, [32], x0, scaled, control, rng=np.random.default_rng(0), perturbation=0.0)
    (_, _, fit_c), (loss, x_u0, _) = starts
    assert loss.loss is scaled  # in its evaluation counter (numerics.batch_fit.Counted)
    # unperturbed start: the encoders divided by sqrt(4), so that 4 G_u^T G_v is the control's
    # (rounding of a square root and a division: ~1e-16 relative)
    np.testing.assert_allclose(4.0 * fam.invariant(x_u0), fam.invariant(fit_c.x), rtol=1e-13, atol=1e-14)


def test_paired_fits_probe_refuses_a_constant_variant():
    fam, U, V, x0, _, control = _paired_setup(9)
    with pytest.raises(InvalidInputError, match="depends on"):
        paired_fits(fam, U, V, [16], x0, UserLoss(lambda F: 1.0, backend="numpy"), control,
                    rng=np.random.default_rng(0), probe=True)


# --------------------------------------------------------------------------
# check_depends: the probes and the rounding threshold, exactly
# --------------------------------------------------------------------------
@pytest.mark.parametrize("spread", [0.4, 3.0])  # max |x| below 1 (scale 1/2) and above (scale |x|_max / 2)
def test_check_depends_probes_are_the_documented_perturbations(spread):
    """The loss is evaluated at the encoders (theta dropped) and at DEPENDENCE_PROBES = 4
    perturbations x + (1/2) max(1, |x|_max) z, z the rng's standard normals in turn, with
    its scalars at their initial values."""
    rng = np.random.default_rng(20)
    fam = LinearEncoders(_model(20), "dot")
    U, V = fam.sample(rng, 6)
    x = rng.uniform(-1, 1, fam.size)
    x *= spread / np.max(np.abs(x))
    seen = []

    def constant(F, s):
        seen.append((np.array(F), s))
        return 0.25

    loss = UserLoss(constant, params={"s": 1.7}, backend="numpy")
    with pytest.raises(InvalidInputError, match=r"^loss=0.25: expected a loss that depends on the logit matrix "
                                                r"F \(it returned the same value 0.25 for 5 different "
                                                r"encoders\)$"):
        check_depends(fam, U, V, np.concatenate([x, [9.0]]), loss, np.random.default_rng(5))
    z = np.random.default_rng(5).standard_normal((4, fam.size))
    scale = 0.5 * max(1.0, spread)
    points = [x] + [x + scale * zi for zi in z]
    assert len(seen) == 5
    for (F, s), y in zip(seen, points):
        assert s == 1.7  # theta0, not the 9.0 appended to x
        # the module's logits and the hand ones: rounding of O(1) products only
        np.testing.assert_allclose(F, _hand_logits(fam, y, U, V), rtol=1e-12, atol=1e-12)


def _two_valued(v0, v1):
    """A loss worth v0 at its first call and v1 at every later one."""
    calls = []

    def loss(F):
        calls.append(1)
        return v0 if len(calls) == 1 else v1

    return UserLoss(loss, backend="numpy")


EPS = np.finfo(np.float64).eps


@pytest.mark.parametrize("v0, v1, depends", [
    (1.0, 1.0 + 64 * EPS, False),          # exactly at 64 eps max(1, |L|): rounding, not dependence
    (1.0, 1.0 + 65 * EPS, True),           # one ulp above it
    (1.0, 1.0 + 96 * EPS, True),
    (0.5, 0.5 + 65 * EPS, True),           # |L| < 1: the threshold stays 64 eps
    (-0.5, -0.5 - 64 * EPS, False),
    (2.0**20, 2.0**20 * (1 + 64 * EPS), False),  # |L| > 1: relative to |L|
    (2.0**20, 2.0**20 * (1 + 96 * EPS), True),
    (-(2.0**20), -(2.0**20) * (1 + 48 * EPS), False),
])
def test_check_depends_threshold_is_64_eps_relative_to_the_loss(v0, v1, depends):
    rng = np.random.default_rng(21)
    fam = LinearEncoders(_model(21), "dot")
    U, V = fam.sample(rng, 5)
    x = rng.standard_normal(fam.size)
    loss = _two_valued(v0, v1)
    if depends:
        assert check_depends(fam, U, V, x, loss, np.random.default_rng(0)) is None
    else:
        with pytest.raises(InvalidInputError, match=r"^loss=.*for 5 different encoders\)$"):
            check_depends(fam, U, V, x, loss, np.random.default_rng(0))


def test_check_depends_of_an_embedding_loss_names_its_embeddings():
    rng = np.random.default_rng(22)
    fam = LinearEncoders(_model(22), "dot")
    U, V = fam.sample(rng, 5)
    loss = UserLoss(lambda za, zb: -1.5, inputs="embeddings", backend="numpy")
    with pytest.raises(InvalidInputError, match=r"^loss=-1.5: expected a loss that depends on its embeddings "
                                                r"\(it returned the same value -1.5 for 5 different encoders\)$"):
        check_depends(fam, U, V, rng.standard_normal(fam.size), loss, np.random.default_rng(0))


# --------------------------------------------------------------------------
# the variant's first start
# --------------------------------------------------------------------------
def _scaled_numpy_loss(role, value, learn=True):
    """Row InfoNCE with one scalar of the given role, its role found by its identity."""
    fn = {"scale": lambda F, p: row_infonce(F, p), "temperature": lambda F, p: row_infonce(F, 1 / p)}[role]
    loss = UserLoss(fn, params={"p": value}, learn=["p"] if learn else [], backend="numpy")
    assert loss.detect_roles("dot", np.random.default_rng(0)) == {"p": role}
    return loss


def test_the_variants_first_start_divides_out_the_ratio_of_the_multipliers():
    """Under dot and L2: G0 = (G + p |G| / sqrt(size) z) / sqrt(|m_variant| / |m_control|), z the
    rng's normals, the variant's scalars at their initial values (module docstring)."""
    import numerics.batch_fit as bf

    rng = np.random.default_rng(23)
    for similarity in ("dot", "l2"):
        fam = LinearEncoders(_model(23), similarity)
        G = rng.standard_normal(fam.size)
        loss = _scaled_numpy_loss("scale", 0.5)        # m_variant = 0.5
        control = ClipControl(2.0)                     # m_control = 2: ratio 1/4
        x0 = bf._variant_start(fam, G, loss, control, np.random.default_rng(4), 0.3)
        z = np.random.default_rng(4).standard_normal(fam.size)
        want = (G + 0.3 * np.linalg.norm(G) / math.sqrt(G.size) * z) / math.sqrt(0.25)
        np.testing.assert_allclose(x0, np.concatenate([want, [0.5]]), rtol=1e-14, atol=0)
        # a learned control scale: its fitted value is the control's multiplier
        learned = ClipControl(1.0, learn=True)
        x1 = bf._variant_start(fam, np.concatenate([G, [8.0]]), loss, learned, np.random.default_rng(4), 0.0)
        np.testing.assert_allclose(x1, np.concatenate([G / math.sqrt(0.5 / 8.0), [0.5]]), rtol=1e-14, atol=0)


@pytest.mark.parametrize("m_variant", [0.0, 1e200])
def test_the_variants_first_start_keeps_the_encoders_when_the_ratio_is_zero_or_infinite(m_variant):
    import numerics.batch_fit as bf

    rng = np.random.default_rng(24)
    fam = LinearEncoders(_model(24), "dot")
    G = rng.standard_normal(fam.size)
    loss = UserLoss(lambda F, p: row_infonce(F, p), params={"p": m_variant}, backend="numpy")
    loss.roles = {"p": "scale"}
    control = ClipControl(1e-200)
    with np.errstate(all="raise"):
        x0 = bf._variant_start(fam, G, loss, control, np.random.default_rng(0), 0.0)
    np.testing.assert_array_equal(x0, np.concatenate([G, [m_variant]]))


def test_the_variants_first_start_under_cosine_matches_the_scale_through_the_loss():
    """Under cosine the encoders' norm is invisible: they are only perturbed, and the loss's
    own scalars start at the control's (learned) multiplier (UserLoss.matched_start)."""
    import numerics.batch_fit as bf

    rng = np.random.default_rng(25)
    fam = LinearEncoders(_model(25), "cosine")
    G = rng.standard_normal(fam.size)
    loss = _scaled_numpy_loss("temperature", 0.5)
    control = ClipControl(4.0, learn=True)
    x0 = bf._variant_start(fam, np.concatenate([G, [3.0]]), loss, control, np.random.default_rng(6), 0.2)
    z = np.random.default_rng(6).standard_normal(fam.size)
    np.testing.assert_allclose(x0[:-1], G + 0.2 * np.linalg.norm(G) / math.sqrt(G.size) * z, rtol=1e-14, atol=0)
    assert x0[-1] == pytest.approx(1 / 3.0, rel=1e-15, abs=0)  # temperature 1/3: multiplier 3
    assert loss.multiplier(x0[-1:]) == pytest.approx(3.0, rel=1e-15, abs=0)


def test_paired_fits_does_not_probe_unless_asked():
    """probe defaults to False: a constant variant is then fitted (it does not move)."""
    fam, U, V, x0, _, control = _paired_setup(9)
    records, _ = paired_fits(fam, U, V, [16], x0, UserLoss(lambda F: 1.0, backend="numpy"), control,
                             rng=np.random.default_rng(0))
    assert len(records) == 1 and records[0].moved == 0.0


@pytest.mark.parametrize("which", ["variant", "control"])
def test_paired_fits_borrow_no_metric_across_losses_with_learned_scalars(monkeypatch, which):
    """The control's inverse Hessian seeds the variant's first fit only when neither loss has
    learned scalars (the parameter vectors differ otherwise); `moved` is |x_u - x0|."""
    import numerics.batch_fit as bf

    fam, U, V, x0, variant, control = _paired_setup(12)
    if which == "variant":
        variant = UserLoss(lambda F, s: clip_np(s * F), params={"s": 1.0}, backend="numpy",
                           grad=None)
        x_start = x0
    else:
        control = ClipControl(1.0, learn=True)
        x_start = np.concatenate([x0, control.theta0])
    calls, real = [], bf.fit_batch

    def spy(family, Ub, Vb, x_s, loss, *, hess_inv=None, **kw):
        fit = real(family, Ub, Vb, x_s, loss, hess_inv=hess_inv, **kw)
        calls.append((loss, np.array(x_s), hess_inv, fit))
        return fit

    monkeypatch.setattr(bf, "fit_batch", spy)
    records, _ = paired_fits(fam, U, V, [24, 40], x_start, variant, control, rng=np.random.default_rng(0))
    (c1, u1, c2, u2) = calls
    assert c1[3].hess_inv is not None
    assert u1[2] is None  # no borrowed metric at the first size
    assert u2[2] is u1[3].hess_inv  # then the variant's own
    for rec, (_, start, _, fit) in zip(records, (u1, u2)):
        np.testing.assert_array_equal(rec.x_u, fit.x)
        assert rec.moved == float(np.linalg.norm(fit.x - start))
        assert rec.iterations == fit.n_iter and rec.converged == fit.converged


# --------------------------------------------------------------------------
# fit_batch: how it calls the minimiser, its limits and its warnings
# --------------------------------------------------------------------------
def test_fit_batch_is_one_start_from_x0_without_restarts_or_warning(monkeypatch):
    """fit_batch is minimize_factors from x0 (split into G_u, G_v, theta), one start, no restart,
    no warning, with the caller's metric, tolerance and iteration cap (FIT_GTOL and 400 by default)."""
    import numerics.batch_fit as bf

    rng = np.random.default_rng(30)
    fam = LinearEncoders(_model(30), "dot")
    U, V = fam.sample(rng, 12)
    seen, real = [], bf.minimize_factors

    def spy(objective, n_u, n_v, n_e, **kw):
        seen.append(kw)
        return real(objective, n_u, n_v, n_e, **kw)

    monkeypatch.setattr(bf, "minimize_factors", spy)
    for loss in (LOSSES["logits, gradient"](), LOSSES["logits, gradient, learned scale"]()):
        x0 = np.concatenate([rng.standard_normal(fam.size), loss.theta0])
        H = np.eye(x0.size)
        fit_batch(fam, U, V, x0, loss, hess_inv=H)
        fit_batch(fam, U, V, x0, loss, maxiter=7, gtol=1e-3)
        (a, b), p0 = seen[-2:], fam.unpack(x0)
        for kw in (a, b):
            assert (kw["starts"], kw["restarts"], kw["warn"], kw["n_extra"]) == (1, 0, False, loss.size)
            assert len(kw["init"]) == (3 if loss.size else 2)
            for got, want in zip(kw["init"], (p0.G_u, p0.G_v, p0.theta)):
                np.testing.assert_array_equal(got, want)
        assert a["hess_inv"] is H and (a["gtol"], a["maxiter"]) == (FIT_GTOL, 400)
        assert b["hess_inv"] is None and (b["gtol"], b["maxiter"]) == (1e-3, 7)


def test_fit_batch_stops_at_maxiter_and_does_not_restart():
    rng = np.random.default_rng(31)
    fam = LinearEncoders(_model(31, 3, 3, 2), "dot")
    U, V = fam.sample(rng, 40)
    loss = LOSSES["logits, gradient"]()
    x0 = 2.0 * rng.standard_normal(fam.size)
    fit = fit_batch(fam, U, V, x0, loss, maxiter=3)
    assert not fit.converged and fit.n_iter == 3
    full = fit_batch(fam, U, V, x0, loss)
    assert full.converged and full.n_iter > 3
    # a loose tolerance stops earlier, with the gradient below it
    loose = fit_batch(fam, U, V, x0, loss, gtol=1e-2)
    assert loose.converged and loose.n_iter < full.n_iter and loose.grad_norm <= 1e-2


def test_fit_batch_silences_runtime_warnings_only():
    """Trial steps of the line search can overflow a loss (RuntimeWarning): those are silenced,
    every other warning of the user's loss reaches the caller."""
    import warnings

    rng = np.random.default_rng(32)
    fam = LinearEncoders(_model(32), "dot")
    U, V = fam.sample(rng, 10)
    x0 = rng.standard_normal(fam.size)

    def noisy(category):
        def loss(F):
            warnings.warn("from the loss", category)
            return row_infonce(F)
        return UserLoss(loss, grad=row_infonce_grad, backend="numpy")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_batch(fam, U, V, x0, noisy(RuntimeWarning))
    assert fit.converged
    with pytest.warns(UserWarning, match="from the loss"):
        fit_batch(fam, U, V, x0, noisy(UserWarning))


class _CountingControl(ClipControl):
    """CLIP's control counting its own calls, independently of numerics.batch_fit.Counted."""

    def __init__(self):
        super().__init__()
        self.calls = {"value": 0, "value_and_grad": 0}

    def value(self, *args):
        self.calls["value"] += 1
        return super().value(*args)

    def value_and_grad(self, *args):
        self.calls["value_and_grad"] += 1
        return super().value_and_grad(*args)


@pytest.mark.parametrize("with_grad", [True, False])
def test_paired_fits_count_the_evaluations_the_fits_made(with_grad):
    """The cost model's count: a value is one evaluation, a value with its gradient two,
    a differenced gradient its values, for the control and the variant alike."""
    fam, U, V, x0, _, _ = _paired_setup()
    calls = {"loss": 0, "grad": 0}

    def loss(F):
        calls["loss"] += 1
        return clip_np(F)

    def grad(F):
        calls["grad"] += 1
        return (softmax(F, axis=1) + softmax(F, axis=0)) / (2 * F.shape[0]) - np.eye(F.shape[0]) / F.shape[0]

    variant = UserLoss(loss, grad=grad if with_grad else None, backend="numpy")
    control = _CountingControl()
    records, _ = paired_fits(fam, U, V, [32, 64], x0, variant, control, rng=np.random.default_rng(1))
    # UserLoss.value_and_grad calls the loss and its grad once each
    variant_work = (calls["loss"] - calls["grad"]) + 2 * calls["grad"]
    control_work = control.calls["value"] + 2 * control.calls["value_and_grad"]
    assert sum(r.evaluations for r in records) == variant_work + control_work
    assert all(r.evaluations > 0 for r in records)
    if not with_grad:  # by differences: 2 values per parameter and step, at least
        assert calls["grad"] == 0 and calls["loss"] >= 2 * fam.size
