"""Tests of the streaming CLIP kernel against dense references (MATH.md §2)."""
import mpmath
import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numerics import InvalidInputError, kernels as K

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


@pytest.mark.parametrize("args, name", [
    ((np.ones((3, 2)), np.ones((3, 3)), 1.0), "zb"),
    ((np.ones(3), np.ones(3), 1.0), "za"),
    ((np.ones((0, 2)), np.ones((0, 2)), 1.0), "za"),
    ((np.array([[np.nan, 1.0]]), np.ones((1, 2)), 1.0), "za"),
    ((np.ones((2, 2)), np.ones((2, 2)), 0.0), "tau"),
    ((np.ones((2, 2)), np.ones((2, 2)), -1.0), "tau"),
    ((np.ones((2, 2)), np.ones((2, 2)), np.inf), "tau"),
])
def test_invalid_inputs(args, name):
    for fn in (K.clip_loss, K.clip_loss_and_grad):
        with pytest.raises(InvalidInputError, match=name):
            fn(*args)


def test_invalid_similarity_and_zero_rows():
    z = np.ones((3, 2))
    with pytest.raises(InvalidInputError, match="similarity"):
        K.clip_loss(z, z, 1.0, "euclid")
    zero = z.copy()
    zero[1] = 0
    with pytest.raises(InvalidInputError, match="za"):
        K.clip_loss_and_grad(zero, z, 1.0, "cosine")
    with pytest.raises(InvalidInputError, match="F"):
        K.clip_loss_from_logits(np.ones((2, 3)))


def test_reference_loss_of_huge_finite_logits():
    # spreads of 1e308 are finite: sums of N terms of that size must not overflow.
    # L_N = 1e308 here (each LSE is 1e308) ...
    assert K.clip_loss_from_logits([[0.0, 1e308], [1e308, 0.0]]) == pytest.approx(1e308, rel=1e-15)
    # ... and log(1 + exp(-1e308)) = 0 here
    assert K.clip_loss_from_logits([[1e308, 0.0], [0.0, 1e308]]) == 0.0
    with pytest.raises(InvalidInputError, match="F="):  # a spread of 2e308 is beyond float64
        K.clip_loss_from_logits([[-1e308, 1e308], [1e308, -1e308]])
