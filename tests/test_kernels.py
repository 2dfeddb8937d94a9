"""Tests of the streaming CLIP kernel against dense references (MATH.md §2)."""
import mpmath
import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numerics import InvalidInputError, kernels as K

from ._reference import logits as reference_logits

SIMS = ("dot", "l2", "cosine")


def dense_grads(za, zb, tau, sim):
    """Chain rule through the dense dL/dF of clip_loss_grad_from_logits (independent of the kernel)."""
    W = K.clip_loss_grad_from_logits(K.clip_logits(za, zb, tau, sim))
    if sim == "dot":
        return W @ zb / tau, W.T @ za / tau
    if sim == "l2":
        return ((W @ zb - za * W.sum(1)[:, None]) / tau, (W.T @ za - zb * W.sum(0)[:, None]) / tau)
    na, nb = np.linalg.norm(za, axis=1), np.linalg.norm(zb, axis=1)
    x, y = za / na[:, None], zb / nb[:, None]
    gx, gy = W @ y / tau, W.T @ x / tau
    return ((gx - x * np.sum(x * gx, 1)[:, None]) / na[:, None],
            (gy - y * np.sum(y * gy, 1)[:, None]) / nb[:, None])


def data(rng, N, n_e, dtype=np.float64, scale=1.0):
    return ((scale * rng.standard_normal((N, n_e))).astype(dtype),
            (scale * rng.standard_normal((N, n_e))).astype(dtype))


# Rounding bound for float64: each logit carries O(n_e eps |F|) from the dot
# product, each LSE O(log N eps) more; 1e-12 relative is the contract and
# leaves a factor >= 100 over the observed ~1e-15.
REL64 = 1e-12


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("N", [1, 7, 130, 700])
def test_loss_and_grad_match_dense_float64(sim, N):
    rng = np.random.default_rng(N)
    za, zb = data(rng, N, 5)
    loss, ga, gb = K.clip_loss_and_grad(za, zb, 0.3, sim)
    ref = K.clip_loss_from_logits(K.clip_logits(za, zb, 0.3, sim))
    assert abs(loss - ref) <= REL64 * max(abs(ref), 1.0)
    assert K.clip_loss(za, zb, 0.3, sim) == pytest.approx(loss, rel=REL64, abs=REL64)
    ra, rb = dense_grads(za, zb, 0.3, sim)
    scale = max(np.abs(ra).max(), np.abs(rb).max(), 1e-300)
    assert np.abs(ga - ra).max() <= REL64 * scale
    assert np.abs(gb - rb).max() <= REL64 * scale


@pytest.mark.parametrize("sim", SIMS)
def test_float32_within_dtype_tolerance(sim):
    rng = np.random.default_rng(3)
    za, zb = data(rng, 300, 8, np.float32)
    loss, ga, gb = K.clip_loss_and_grad(za, zb, 0.2, sim)
    assert loss.dtype == np.float32 and ga.dtype == np.float32 and gb.dtype == np.float32
    za64, zb64 = za.astype(np.float64), zb.astype(np.float64)
    F = K.clip_logits(za64, zb64, 0.2, sim)
    ref = K.clip_loss_from_logits(F)
    # float32 logits carry ~ n_e * eps32 * max|F| absolute error each, and the
    # loss is an average of such errors: tolerance 4 n_e eps32 max|F|.
    tol = 4 * 8 * np.finfo(np.float32).eps * max(np.abs(F).max(), 1.0)
    assert abs(float(loss) - ref) <= tol
    ra, rb = dense_grads(za64, zb64, 0.2, sim)
    assert np.abs(ga - ra).max() <= tol * max(np.abs(ra).max(), 1.0)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    za, zb = data(rng, 6, 3)
    for sim in SIMS:
        _, ga, gb = K.clip_loss_and_grad(za, zb, 0.5, sim)
        h = 1e-6
        for (z, g, which) in ((za, ga, 0), (zb, gb, 1)):
            for idx in [(0, 0), (3, 2), (5, 1)]:
                zp, zm = z.copy(), z.copy()
                zp[idx] += h
                zm[idx] -= h
                args_p = (zp, zb) if which == 0 else (za, zp)
                args_m = (zm, zb) if which == 0 else (za, zm)
                fd = (K.clip_loss(*args_p, 0.5, sim) - K.clip_loss(*args_m, 0.5, sim)) / (2 * h)
                # central difference: O(h^2) truncation plus eps/h rounding ~ 1e-10
                assert abs(fd - g[idx]) <= 1e-7


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), N=st.integers(1, 40), sim=st.sampled_from(SIMS))
def test_permutation_equivariance(seed, N, sim):
    rng = np.random.default_rng(seed)
    za, zb = data(rng, N, 4)
    perm = rng.permutation(N)
    l1, ga, gb = K.clip_loss_and_grad(za, zb, 0.4, sim)
    l2, ga2, gb2 = K.clip_loss_and_grad(za[perm], zb[perm], 0.4, sim)
    assert abs(l1 - l2) <= 1e-13 * max(1.0, abs(l1))
    assert np.allclose(ga[perm], ga2, rtol=1e-12, atol=1e-14)
    assert np.allclose(gb[perm], gb2, rtol=1e-12, atol=1e-14)


def test_shift_invariance_and_equal_logits():
    rng = np.random.default_rng(7)
    F = rng.standard_normal((9, 9))
    assert K.clip_loss_from_logits(F + 123.25) == pytest.approx(K.clip_loss_from_logits(F), rel=1e-13)
    # dot similarity: appending a constant coordinate c to za and 1 to zb shifts F by c/tau
    za, zb = data(rng, 50, 3)
    base = K.clip_loss(za, zb, 0.5)
    za2 = np.hstack([za, np.full((50, 1), 40.0)])
    zb2 = np.hstack([zb, np.ones((50, 1))])
    assert K.clip_loss(za2, zb2, 0.5) == pytest.approx(base, rel=1e-12)
    # all logits equal -> log N exactly (cosine of identical directions)
    z = np.tile(rng.standard_normal(4), (33, 1))
    for sim in SIMS:
        assert K.clip_loss(z, z, 0.1, sim) == pytest.approx(np.log(33), rel=1e-14)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), N=st.integers(1, 30), tau=st.floats(1e-3, 10.0))
def test_loss_nonnegative(seed, N, tau):
    rng = np.random.default_rng(seed)
    za, zb = data(rng, N, 3)
    for sim in SIMS:
        assert K.clip_loss(za, zb, tau, sim) >= -1e-12


def _mp_loss(F):
    mpmath.mp.dps = 50
    N = len(F)
    F = [[mpmath.mpf(float(x)) for x in row] for row in F]
    lse = lambda xs: mpmath.log(mpmath.fsum(mpmath.exp(x) for x in xs))
    rows = mpmath.fsum(lse(F[i]) for i in range(N))
    cols = mpmath.fsum(lse([F[i][j] for i in range(N)]) for j in range(N))
    return float(-mpmath.fsum(F[i][i] for i in range(N)) / N + (rows + cols) / (2 * N))


@pytest.mark.parametrize("sim", SIMS)
def test_extreme_temperature_and_logits_vs_mpmath(sim):
    rng = np.random.default_rng(11)
    za, zb = data(rng, 6, 3)
    if sim != "cosine":
        za, zb = za * 20, zb * 20  # |logits| up to ~1e3 at tau 1
    tau = 1e-3 if sim == "cosine" else 1.0
    F = K.clip_logits(za, zb, tau, sim)
    assert np.abs(F).max() > 500
    loss, ga, gb = K.clip_loss_and_grad(za, zb, tau, sim)
    ref = _mp_loss(F)
    # logits are rounded to eps * |F| ~ 1e-13 absolute before any LSE
    assert abs(loss - ref) <= 64 * np.finfo(float).eps * np.abs(F).max()
    assert np.all(np.isfinite(ga)) and np.all(np.isfinite(gb))
    ra, rb = dense_grads(za, zb, tau, sim)
    scale = max(np.abs(ra).max(), np.abs(rb).max())
    assert np.abs(ga - ra).max() <= 1e-9 * scale and np.abs(gb - rb).max() <= 1e-9 * scale


def test_fallback_rows_far_below_reference():
    """Rows whose LSE is > 600 below the maximum take the direct-row path; it must agree."""
    rng = np.random.default_rng(13)
    za, zb = data(rng, 40, 3)
    za[:5] *= 1e-3
    za[5:] *= 400.0  # rows 5.. have logits ~ +-1e3 / tau, rows 0..4 ~ 0
    loss, ga, gb = K.clip_loss_and_grad(za, zb, 0.5)
    F = K.clip_logits(za, zb, 0.5)
    assert abs(loss - K.clip_loss_from_logits(F)) <= 1e-12 * abs(loss)
    ra, rb = dense_grads(za, zb, 0.5, "dot")
    assert np.abs(ga - ra).max() <= 1e-11 * np.abs(ra).max()
    assert np.abs(gb - rb).max() <= 1e-11 * np.abs(rb).max()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                    reason="one numba thread only: nothing to compare the single-thread result with")
def test_thread_count_independence():
    rng = np.random.default_rng(17)
    za, zb = data(rng, 1500, 16)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = K.clip_loss_and_grad(za, zb, 0.1, "cosine")
        numba.set_num_threads(2)
        two = K.clip_loss_and_grad(za, zb, 0.1, "cosine")
    finally:
        numba.set_num_threads(before)
    # Only the summation order differs: a few eps per accumulated term, relative.
    assert abs(one[0] - two[0]) <= 1e-13 * abs(one[0])
    for a, b in zip(one[1:], two[1:]):
        assert np.abs(a - b).max() <= 1e-12 * np.abs(a).max()


def test_mixed_dtypes_promote_to_float64():
    rng = np.random.default_rng(19)
    za, zb = data(rng, 10, 3)
    loss, ga, _ = K.clip_loss_and_grad(za.astype(np.float32), zb, 0.5)
    assert loss.dtype == np.float64 and ga.dtype == np.float64


F32 = np.float32


@pytest.mark.parametrize("args, name", [
    ((np.ones((3, 2)), np.ones((3, 3)), 1.0), "zb"),
    ((np.ones(3), np.ones(3), 1.0), "za"),
    ((np.ones((3, 2)), np.ones(3), 1.0), "zb"),
    ((np.ones((0, 2)), np.ones((0, 2)), 1.0), "za"),
    ((np.ones((3, 0)), np.ones((3, 0)), 1.0), "za"),
    ((np.array([[np.nan, 1.0]]), np.ones((1, 2)), 1.0), "za"),
    ((np.ones((1, 2)), np.array([[1.0, np.inf]]), 1.0), "zb"),
    ((np.ones((2, 2)), np.ones((2, 2)), 0.0), "tau"),
    ((np.ones((2, 2)), np.ones((2, 2)), -1.0), "tau"),
    ((np.ones((2, 2)), np.ones((2, 2)), np.inf), "tau"),
    # representable in float64, not in float32: 0 after rounding, inf, or 1/tau = inf
    ((np.zeros((2, 2), F32), np.zeros((2, 2), F32), 1e-50), "tau"),
    ((np.zeros((2, 2), F32), np.zeros((2, 2), F32), 1e39), "tau"),
    ((np.zeros((2, 2), F32), np.zeros((2, 2), F32), 1e-39), "tau"),
])
def test_invalid_inputs(args, name):
    import warnings
    for fn in (K.clip_loss, K.clip_loss_and_grad, K.clip_logits):
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # judged, not warned about
            with pytest.raises(InvalidInputError, match=f"^{name}="):
                fn(*args)


def test_float32_temperature_whose_inverse_is_finite_is_accepted():
    # tau = 5e-39 is subnormal in float32 and 1/tau = 2e38 < 3.4e38: representable
    z = np.zeros((3, 2), F32)
    assert K.clip_loss(z, z, 5e-39) == pytest.approx(np.log(3), rel=1e-6)


def test_refusal_when_the_rounding_error_could_exceed_a_nat():
    """|L_N - exact| <= 64 eps max(|LSE|, |F_ii|) is refused past 1 nat (ABS_ERROR_LIMIT):
    each of the three terms of the bound, and the dtype's own eps, can be the one that trips it."""
    # diagonal logits -1e15, off-diagonal 0: every LSE is 0, only |F_ii| is large
    za = np.array([[-1e15, 0.0], [0.0, -1e15]])
    zb = np.eye(2)
    for fn in (K.clip_loss, K.clip_loss_and_grad):
        with pytest.raises(InvalidInputError, match="^za=.*logits small enough"):
            fn(za, zb, 1.0)
    # float32 logits 1e6: 64 * 1.2e-7 * 1e6 = 7.6 nats (in float64 the same batch is fine)
    big = np.full((3, 1), 1000.0, dtype=F32)
    with pytest.raises(InvalidInputError, match="^za=.*logits small enough for float32"):
        K.clip_loss(big, big, 1.0)
    assert K.clip_loss(big.astype(np.float64), big.astype(np.float64), 1.0) == pytest.approx(np.log(3), rel=1e-9)


def test_invalid_similarity_and_zero_rows():
    z = np.ones((3, 2))
    with pytest.raises(InvalidInputError, match="similarity"):
        K.clip_loss(z, z, 1.0, "euclid")
    zero = z.copy()
    zero[1] = 0
    for fn in (K.clip_loss, K.clip_loss_and_grad, K.clip_logits):
        with pytest.raises(InvalidInputError, match=r"^za=.*non-zero norm.*row 1 is 0"):
            fn(zero, z, 1.0, "cosine")
        with pytest.raises(InvalidInputError, match=r"^zb=.*non-zero norm.*row 1 is 0"):
            fn(z, zero, 1.0, "cosine")
    with pytest.raises(InvalidInputError, match="^F="):
        K.clip_loss_from_logits(np.ones((2, 3)))


def test_reference_loss_of_huge_finite_logits():
    # spreads of 1e308 are finite: sums of N terms of that size must not overflow.
    # L_N = 1e308 here (each LSE is 1e308) ...
    assert K.clip_loss_from_logits([[0.0, 1e308], [1e308, 0.0]]) == pytest.approx(1e308, rel=1e-15)
    # ... and log(1 + exp(-1e308)) = 0 here
    assert K.clip_loss_from_logits([[1e308, 0.0], [0.0, 1e308]]) == 0.0
    with pytest.raises(InvalidInputError, match="F="):  # a spread of 2e308 is beyond float64
        K.clip_loss_from_logits([[-1e308, 1e308], [1e308, -1e308]])


# --------------------------------------------------------------------------
# Checks added by mutation testing (docs/mutation.md).  The reference here is
# built by hand from the definition: logits by numpy broadcasting, L_N with
# scipy's logsumexp, dL/dF = (P + Q)/(2N) - I/N with softmaxes from scipy --
# none of numerics.infonce / numerics.kernels.
# --------------------------------------------------------------------------
def _hand_loss_and_dF(F):
    from scipy.special import logsumexp, softmax

    N = F.shape[0]
    loss = -np.trace(F) / N + 0.5 * np.mean(logsumexp(F, axis=1)) + 0.5 * np.mean(logsumexp(F, axis=0))
    W = (softmax(F, axis=1) + softmax(F, axis=0)) / (2 * N) - np.eye(N) / N
    return loss, W


def test_cosine_of_prenormalised_embeddings_is_dot():
    # Unit rows (the usual CLIP input): cosine logits are the dot logits, and the cosine
    # gradient is the dot gradient projected on the tangent space of the sphere,
    # g - a (a . g).  Rescaling the rows by c > 0 leaves the loss and divides the
    # gradient by c.  Float64 on logits O(1/tau) = O(3): 1e-12 as REL64 above.
    rng = np.random.default_rng(41)
    za, zb = data(rng, 9, 4)
    za /= np.linalg.norm(za, axis=1, keepdims=True)
    zb /= np.linalg.norm(zb, axis=1, keepdims=True)
    tau = 0.35
    F = reference_logits(za, zb, tau, "dot")
    ref, W = _hand_loss_and_dF(F)
    loss, ga, gb = K.clip_loss_and_grad(za, zb, tau, "cosine")
    assert loss == pytest.approx(ref, rel=REL64)
    assert K.clip_loss(za, zb, tau, "cosine") == pytest.approx(ref, rel=REL64)
    gd_a, gd_b = W @ zb / tau, W.T @ za / tau
    ra = gd_a - za * np.sum(za * gd_a, axis=1, keepdims=True)
    rb = gd_b - zb * np.sum(zb * gd_b, axis=1, keepdims=True)
    np.testing.assert_allclose(ga, ra, rtol=0, atol=REL64 * np.abs(ra).max())
    np.testing.assert_allclose(gb, rb, rtol=0, atol=REL64 * np.abs(rb).max())
    c_a, c_b = 3.0, 0.25
    loss2, ga2, gb2 = K.clip_loss_and_grad(c_a * za, c_b * zb, tau, "cosine")
    assert loss2 == pytest.approx(ref, rel=REL64)
    np.testing.assert_allclose(ga2, ra / c_a, rtol=0, atol=REL64 * np.abs(ra).max() / c_a)
    np.testing.assert_allclose(gb2, rb / c_b, rtol=0, atol=REL64 * np.abs(rb).max() / c_b)


@pytest.mark.parametrize("sim", SIMS)
def test_one_latent_dimension_by_hand(sim):
    # n_e = 1: every similarity has a hand form; under cosine s = sign(a) sign(b), which
    # does not depend on |a|, |b|, so the cosine gradient is exactly 0.
    rng = np.random.default_rng(43)
    za, zb = data(rng, 6, 1)
    tau = 0.7
    F = reference_logits(za, zb, tau, sim)
    if sim == "cosine":
        np.testing.assert_array_equal(F, np.sign(za) @ np.sign(zb).T / tau)
    ref, W = _hand_loss_and_dF(F)
    loss, ga, gb = K.clip_loss_and_grad(za, zb, tau, sim)
    assert loss == pytest.approx(ref, rel=REL64)
    assert ga.shape == gb.shape == (6, 1)
    if sim == "dot":
        ra, rb = W @ zb / tau, W.T @ za / tau
    elif sim == "l2":  # dF_ij/da_i = -(a_i - b_j)/tau, dF_ij/db_j = (a_i - b_j)/tau
        D = za - zb.T
        ra = -np.sum(W * D, axis=1, keepdims=True) / tau
        rb = np.sum(W * D, axis=0)[:, None] / tau
    else:
        ra = rb = np.zeros((6, 1))
    scale = max(np.abs(ra).max(), np.abs(rb).max(), 1.0)
    np.testing.assert_allclose(ga, ra, rtol=0, atol=REL64 * scale)
    np.testing.assert_allclose(gb, rb, rtol=0, atol=REL64 * scale)


def test_dtype_promotion_with_float64_first():
    # float64 za with float32 zb: promoted to float64 (documented), i.e. the same result
    # as with zb converted to float64 by hand, to float64 rounding.
    rng = np.random.default_rng(47)
    za, zb = data(rng, 8, 3)
    zb32 = zb.astype(np.float32)
    for sim in SIMS:
        loss, ga, gb = K.clip_loss_and_grad(za, zb32, 0.5, sim)
        assert loss.dtype == ga.dtype == gb.dtype == np.float64
        assert K.clip_loss(za, zb32, 0.5, sim).dtype == np.float64
        ref, _ = _hand_loss_and_dF(reference_logits(za, zb32.astype(np.float64), 0.5, sim))
        assert loss == pytest.approx(ref, rel=REL64)
    # integers are converted to float64 too
    zi = np.array([[1, 0], [0, 2], [1, 1]])
    loss = K.clip_loss(zi, zi, 1.0)
    assert loss.dtype == np.float64
    assert loss == pytest.approx(_hand_loss_and_dF(reference_logits(zi, zi, 1.0, "dot"))[0], rel=REL64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_l2_centring_under_a_large_common_offset(dtype):
    # L_N and its gradients under the L2 similarity are translation invariant.  Add
    # (1, -2, 3) x 1e6 (float64) / x 1e3 (float32) to every embedding (one offset per
    # coordinate: the centring must remove each, not just their average); the reference is computed in float64
    # from the offset data minus the offset, subtracted by hand (exact by Sterbenz's
    # lemma: both numbers lie within a factor 2).  Without the centring, the expansion
    # -|a-b|^2/2 = <a,b> - |a|^2/2 - |b|^2/2 would cancel terms of size offset^2 n_e/tau
    # ~ 1e12 and keep ~4 digits in float64.  With it the loss keeps the dtype's
    # accuracy on logits O(10): 1e-12 (float64) / 1e-4 (float32: eps 1.2e-7 times
    # logits O(10) times log N, with a margin of ~10) relative.
    offset, rel = (1e6, 1e-12) if dtype == np.float64 else (1e3, 1e-4)
    rng = np.random.default_rng(53)
    za, zb = data(rng, 20, 3, dtype)
    shift = (offset * np.array([1.0, -2.0, 3.0])).astype(dtype)
    za_off, zb_off = za + shift, zb + shift
    za_ref = za_off.astype(np.float64) - shift.astype(np.float64)
    zb_ref = zb_off.astype(np.float64) - shift.astype(np.float64)
    tau = 0.5
    ref, W = _hand_loss_and_dF(reference_logits(za_ref, zb_ref, tau, "l2"))
    loss, ga, gb = K.clip_loss_and_grad(za_off, zb_off, tau, "l2")
    assert loss.dtype == dtype
    assert abs(float(loss) - ref) <= rel * max(abs(ref), 1.0)
    assert abs(float(K.clip_loss(za_off, zb_off, tau, "l2")) - ref) <= rel * max(abs(ref), 1.0)
    D = za_ref[:, None, :] - zb_ref[None, :, :]
    ra = -np.einsum("ij,ijk->ik", W, D) / tau
    rb = np.einsum("ij,ijk->jk", W, D) / tau
    scale = max(np.abs(ra).max(), np.abs(rb).max())
    np.testing.assert_allclose(ga, ra, rtol=0, atol=rel * scale)
    np.testing.assert_allclose(gb, rb, rtol=0, atol=rel * scale)


@pytest.mark.parametrize("bj, bi, n_chunks", [(4, 3, 1), (3, 5, 2), (16, 16, 3), (1, 1, 2)])
@pytest.mark.parametrize("kind", ["dot", "affine", "far_rows"])
def test_kernel_passes_with_tiny_tiles_against_scipy(bj, bi, n_chunks, kind):
    # The numba passes on their own, with tiles much smaller than N so that every
    # block/chunk boundary is crossed: r, c against scipy's logsumexp of the dense
    # F = X Y^T + alpha + beta, and gX = W Ya, gY = W^T Xa with W built from scipy
    # softmaxes.  "far_rows": rows ~1000 below the others, which take the direct
    # fallback in both passes (their LSE would underflow the shared reference).
    # Float64, logits O(1) (or O(1000) for far rows, exact shifts): 1e-12 relative.
    from numerics import _kernels
    from scipy.special import logsumexp, softmax

    rng = np.random.default_rng(bj * 100 + bi * 10 + n_chunks)
    N, n_e = 11, 3
    X, Y = rng.standard_normal((N, n_e)), rng.standard_normal((N, n_e))
    if kind == "dot":
        alpha = beta = np.zeros(0)
        F = X @ Y.T
    else:
        alpha, beta = rng.standard_normal(N), rng.standard_normal(N)
        if kind == "far_rows":
            alpha[[2, 7]] -= 1000.0
        F = X @ Y.T + alpha[:, None] + beta[None, :]
    r, c = _kernels.lse_pass(X, Y, alpha, beta, bj, bi, n_chunks)
    np.testing.assert_allclose(r, logsumexp(F, axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, logsumexp(F, axis=0), rtol=1e-12, atol=1e-12)
    W = (softmax(F, axis=1) + softmax(F, axis=0)) / (2 * N) - np.eye(N) / N
    Xa = np.ascontiguousarray(np.hstack([X, np.ones((N, 1))]))
    Ya = np.ascontiguousarray(np.hstack([Y, np.ones((N, 1))]))
    gX, gY = _kernels.grad_pass(X, Y, Xa, Ya, alpha, beta, r, c, bj, bi, n_chunks)
    scale = max(np.abs(W @ Ya).max(), np.abs(W.T @ Xa).max())
    np.testing.assert_allclose(gX, W @ Ya, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(gY, W.T @ Xa, rtol=0, atol=1e-12 * scale)


def test_exp_row_to_a_few_ulp_and_zero_below_the_floor():
    # Documented: exp(x - shift) with max relative error about 1 ulp, 0 below e^-708.
    # Against NumPy's exp (correctly rounded to < 1 ulp): 4 eps relative allows both
    # errors plus the rounding of x - shift; the degree-13 Taylor terms matter at ~1e-14.
    from numerics import _kernels

    x = np.concatenate([np.linspace(-700.0, 700.0, 2001), [-0.3465, 0.3465, 0.0, 1e-3]])
    out = np.empty_like(x)
    _kernels._exp_row(x, 0.0, out, np.empty(x.size, dtype=np.int64))
    np.testing.assert_allclose(out, np.exp(x), rtol=4 * np.finfo(float).eps, atol=0)
    low = np.array([-707.0, -708.5, -1000.0])
    out = np.empty(3)
    _kernels._exp_row(low, 0.0, out, np.empty(3, dtype=np.int64))
    assert out[0] == pytest.approx(np.exp(-707.0), rel=4 * np.finfo(float).eps, abs=0)
    np.testing.assert_array_equal(out[1:], 0.0)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 17, 23])
def test_row_max_and_row_sum_see_every_lane(n):
    # The eight-chain reductions against NumPy with the maximum placed in each
    # position in turn (so each chain and the remainder loop must report it), on
    # integers small enough that every partial sum is exact: == is the contract.
    from numerics import _kernels

    base = -np.arange(1.0, n + 1.0)
    for p in range(n):
        x = base.copy()
        x[p] = 1.0e3
        assert _kernels._row_max(x) == 1.0e3
        y = np.zeros(n)
        y[p] = 2.0 ** p
        assert _kernels._row_sum(y) == 2.0 ** p
    assert _kernels._row_sum(base) == base.sum()
    assert _kernels._row_max(np.full(n, -np.inf)) == -np.inf


def test_blas_threads_pinned_to_one_inside_the_kernels():
    """The kernels run one GEMM per numba thread, so SciPy's OpenBLAS (the BLAS numba calls)
    must run single-threaded inside them and get its thread count back afterwards."""
    import pathlib

    import scipy

    from numerics import kernels

    libs = list((pathlib.Path(scipy.__file__).parent.parent / "scipy.libs").glob("libscipy_openblas*.so*"))
    if not libs:
        pytest.skip("this SciPy build ships no libscipy_openblas: its BLAS threads are not managed here")
    found = kernels._find_scipy_openblas()
    assert found is not None
    get, set_ = found
    before = get()
    try:
        set_(2)
        assert get() == 2
        with kernels._single_threaded_blas():
            assert get() == 1
        assert get() == 2
    finally:
        set_(before)


def test_overflowing_float32_results_are_refused_naming_za():
    # logits 1e40 overflow float32
    big = np.full((2, 2), 1e20, dtype=np.float32)
    with pytest.raises(InvalidInputError, match=r"^za=.*tau=1\b.*float32"):
        K.clip_logits(big, big, 1.0)
    # cosine logits are bounded, but the gradient divides by the row norm 1e-40
    za = np.array([[1e-40, 0.0], [0.0, 1.0]], dtype=np.float32)
    zb = np.eye(2, dtype=np.float32)
    with pytest.raises(InvalidInputError, match=r"^za=.*tau=1\b.*float32"):
        K.clip_loss_and_grad(za, zb, 1.0, "cosine")
    # the same batch in float64 is fine (gradient ~1e40)
    loss, gza, _ = K.clip_loss_and_grad(za.astype(np.float64), zb.astype(np.float64), 1.0, "cosine")
    assert np.isfinite(loss) and np.all(np.isfinite(gza)) and np.max(np.abs(gza)) > 1e39


def test_dense_logit_references_validate_F_by_name():
    for F in (np.ones(3), np.ones((2, 3)), np.zeros((0, 0)), np.array([[0.0, np.nan], [0.0, 0.0]])):
        for fn in (K.clip_loss_from_logits, K.clip_loss_grad_from_logits):
            with pytest.raises(InvalidInputError, match="^F="):
                fn(F)


def test_dense_loss_of_unrepresentable_spread_is_an_error_not_a_warning():
    import warnings
    F = np.array([[-1.7e308, 1.7e308], [1.7e308, -1.7e308]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InvalidInputError, match="^F=.*spread"):
            K.clip_loss_from_logits(F)
        # huge but with a representable spread: the exact value, about 0
        assert K.clip_loss_from_logits(np.array([[1e308, -1e308], [-1e308, 1e308]])) == 0.0


@pytest.mark.parametrize("bj, bi, n_chunks", [(4, 3, 1), (3, 5, 2), (1, 1, 3)])
def test_direct_fallback_only_for_rows_far_below_the_reference(bj, bi, n_chunks, monkeypatch):
    """Pass 1 recomputes a row directly only when its LSE lies more than _SAFE_GAP below the
    shared reference (module docstring).  A wrong running maximum, rebasing or accumulation
    would send every row down that exact path and still give the right values, so the rows
    taken there are counted: none on ordinary logits, exactly the far rows otherwise.
    (The Python body of the kernel, lse_pass.py_func, so that the call can be counted.)"""
    from numerics import _kernels

    calls = []
    direct = _kernels._direct_row_lse

    def counting(X, Y, alpha, beta, i, frow, erow, scratch):
        calls.append(int(i))
        return direct(X, Y, alpha, beta, i, frow, erow, scratch)

    monkeypatch.setattr(_kernels, "_direct_row_lse", counting)
    lse_pass = getattr(_kernels.lse_pass, "py_func", _kernels.lse_pass)
    rng = np.random.default_rng(bj + 10 * bi + 100 * n_chunks)
    N = 11
    X, Y = rng.standard_normal((N, 3)), rng.standard_normal((N, 3))
    alpha, beta = 3 * rng.standard_normal(N), 3 * rng.standard_normal(N)
    beta[N - 1] += 40.0   # the largest logits in the last column block: the reference is rebased
    lse_pass(X, Y, alpha, beta, bj, bi, n_chunks)
    assert calls == []
    alpha[[2, 7]] -= 1000.0
    r, _ = lse_pass(X, Y, alpha, beta, bj, bi, n_chunks)
    assert sorted(calls) == [2, 7]
    from scipy.special import logsumexp
    np.testing.assert_allclose(r, logsumexp(X @ Y.T + alpha[:, None] + beta[None, :], axis=1),
                               rtol=1e-12, atol=1e-12)
