"""numerics.encoders: flat parameters, logits and their pull-backs, invariants, model
conditionals, samplers and CLIP's population minimiser, against independent computations
(hand loops, central differences, scipy's sqrtm whitening, MATH.md §4.1/§4.2 closed forms)."""
import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, settings, strategies as st

from numerics import InvalidInputError, gaussian, variants
from numerics.encoders import (SAMPLE_BLOCK, EncoderParams, LinearEncoders, nested_sample,
                               population_minimizer, sample_pairs, subspace_flip)
from numerics.l2_two_sided import two_sided_canonical_encoders, two_sided_minimum
from numerics.models import random_gaussian_model, random_orthogonal
from tests import _reference as ref
from tests._reference import central_difference

SIMILARITIES = ("dot", "l2", "cosine")


def _model(seed, n_u=3, n_v=2, n_e=2, **kw):
    return random_gaussian_model(np.random.default_rng(seed), n_u, n_v, n_e=n_e, min_gap=0.1, **kw)


def _root(S, p):
    """S^p by scipy's Schur-based sqrtm (a different algorithm from the module's eigh)."""
    R = np.real(sla.sqrtm(S))
    return R if p == 0.5 else np.linalg.inv(R)


def _random_x(fam, rng, scale=0.7):
    return rng.standard_normal(fam.size) * scale


# --------------------------------------------------------------------------
# the flat parameter vector
# --------------------------------------------------------------------------
@settings(deadline=None, max_examples=20)
@given(n_u=st.integers(1, 4), n_v=st.integers(1, 4), n_e_frac=st.floats(0, 1), n_theta=st.integers(0, 3),
       seed=st.integers(0, 2**16))
def test_pack_unpack_round_trip_and_layout(n_u, n_v, n_e_frac, n_theta, seed):
    n_e = 1 + int(n_e_frac * (min(n_u, n_v) - 1))
    rng = np.random.default_rng(seed)
    fam = LinearEncoders(random_gaussian_model(rng, n_u, n_v, n_e=n_e), "dot")
    assert fam.size == n_e * (n_u + n_v)
    G_u, G_v = rng.standard_normal((n_e, n_u)), rng.standard_normal((n_e, n_v))
    theta = rng.standard_normal(n_theta)
    x = fam.pack(G_u, G_v, theta)
    assert x.shape == (fam.size + n_theta,)
    p = fam.unpack(x)
    # a round trip is exact: slicing and reshaping only
    assert p.G_u.shape == (n_e, n_u) and p.G_v.shape == (n_e, n_v) and p.theta.shape == (n_theta,)
    np.testing.assert_array_equal(p.G_u, G_u)
    np.testing.assert_array_equal(p.G_v, G_v)
    np.testing.assert_array_equal(p.theta, theta)
    np.testing.assert_array_equal(fam.pack(p.G_u, p.G_v, p.theta), x)
    np.testing.assert_array_equal(fam.encoders(x), np.concatenate([G_u.ravel(), G_v.ravel()]))
    np.testing.assert_array_equal(p.encoders, fam.encoders(x))
    s_u, s_v = fam.split(x)
    np.testing.assert_array_equal(s_u, G_u)
    np.testing.assert_array_equal(s_v, G_v)
    # the documented layout [G_u row-major, G_v row-major, theta], read off an arange
    p = fam.unpack(np.arange(fam.size + n_theta, dtype=float))
    assert p.G_u[n_e - 1, n_u - 1] == n_e * n_u - 1
    assert p.G_v[0, 0] == n_e * n_u
    np.testing.assert_array_equal(p.theta, fam.size + np.arange(n_theta))


def test_encoder_params_x_and_replace():
    rng = np.random.default_rng(0)
    G_u, G_v = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    p = EncoderParams(G_u, G_v)
    assert p.theta.shape == (0,)
    np.testing.assert_array_equal(p.x, np.concatenate([G_u.ravel(), G_v.ravel()]))
    q = p.replace(theta=[1.5, -2.0])
    np.testing.assert_array_equal(q.x[-2:], [1.5, -2.0])
    assert q.G_u is G_u and q.G_v is G_v and p.theta.shape == (0,)  # p itself is unchanged
    r = q.replace(G_v=2 * G_v)
    np.testing.assert_array_equal(r.G_v, 2 * G_v)
    np.testing.assert_array_equal(r.theta, [1.5, -2.0])


def test_family_refuses_a_non_model():
    with pytest.raises(InvalidInputError, match="model"):
        LinearEncoders(np.eye(4), "dot")
    with pytest.raises(InvalidInputError, match="similarity"):
        LinearEncoders(_model(0), "euclid")


# --------------------------------------------------------------------------
# logits and pull-backs
# --------------------------------------------------------------------------
@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_logits_match_a_hand_loop(similarity):
    rng = np.random.default_rng(1)
    fam = LinearEncoders(_model(1), similarity)
    x = _random_x(fam, rng)
    G_u, G_v = fam.split(x)
    U, V = fam.sample(rng, 6)
    F, Za, Zb = fam.logits(x, U, V)
    assert F.shape == (6, 6)
    H = np.empty((6, 6))
    for i in range(6):
        a = sum(G_u[:, k] * U[i, k] for k in range(U.shape[1]))
        for j in range(6):
            b = sum(G_v[:, k] * V[j, k] for k in range(V.shape[1]))
            if similarity == "dot":
                H[i, j] = float(np.sum(a * b))
            elif similarity == "l2":
                H[i, j] = -0.5 * float(np.sum((a - b) ** 2))
            else:
                H[i, j] = float(np.sum(a * b)) / np.sqrt(np.sum(a * a) * np.sum(b * b))
    # a few dozen float64 operations on O(1) numbers: rounding ~1e-15
    np.testing.assert_allclose(F, H, rtol=1e-12, atol=1e-12)
    # the raw embeddings: the same products in another order, rounding ~1e-16
    np.testing.assert_allclose(Za, U @ G_u.T, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(Zb, V @ G_v.T, rtol=1e-13, atol=1e-14)
    za, zb, _, _ = fam.embed(x, U, V)
    if similarity == "cosine":  # what reaches a loss of embeddings: unit rows (to rounding, ~1e-16)
        np.testing.assert_allclose(np.linalg.norm(za, axis=1), 1.0, rtol=1e-14)
        np.testing.assert_allclose(za * np.linalg.norm(Za, axis=1, keepdims=True), Za, rtol=1e-13)
    else:
        np.testing.assert_array_equal(za, Za)
        np.testing.assert_array_equal(zb, Zb)


def _central_difference(phi, x, h=1e-6):
    return central_difference(phi, x, h)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_pullback_matches_central_differences_of_a_function_of_the_logits(similarity):
    rng = np.random.default_rng(2)
    fam = LinearEncoders(_model(2, 3, 3, 2), similarity)
    x = _random_x(fam, rng)
    U, V = fam.sample(rng, 5)
    W = rng.standard_normal((5, 5))

    def phi(y):  # a scalar of the logits with a non-constant gradient
        F = fam.logits(y, U, V)[0]
        return float(np.sum(W * F) + 0.25 * np.sum(F**2))

    F, Za, Zb = fam.logits(x, U, V)
    g = fam.pullback(W + 0.5 * F, Za, Zb, U, V)
    assert g.shape == (fam.size,)
    # central differences, h = 1e-6: truncation h^2 * phi''' ~ 1e-11, rounding eps*|phi|/h ~ 1e-9
    np.testing.assert_allclose(g, _central_difference(phi, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_embeddings_pullback_matches_central_differences(similarity):
    rng = np.random.default_rng(3)
    fam = LinearEncoders(_model(3, 2, 4, 2), similarity)
    x = _random_x(fam, rng)
    U, V = fam.sample(rng, 5)
    Wa, Wb = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))

    def phi(y):  # a scalar of what reaches a loss of embeddings (unit rows under cosine)
        za, zb, _, _ = fam.embed(y, U, V)
        return float(np.sum(Wa * za) + np.sum(Wb * zb) + 0.5 * np.sum(za * zb))

    za, zb, Za, Zb = fam.embed(x, U, V)
    g = fam.embeddings_pullback(Wa + 0.5 * zb, Wb + 0.5 * za, Za, Zb, U, V)
    # as above: central differences accurate to ~1e-9 at unit scale
    np.testing.assert_allclose(g, _central_difference(phi, x), rtol=1e-6, atol=1e-7)


def test_cosine_refuses_a_zero_encoder_output():
    fam = LinearEncoders(_model(4), "cosine")
    x = np.zeros(fam.size)
    U, V = fam.sample(np.random.default_rng(0), 3)
    with pytest.raises(InvalidInputError, match="non-zero norm"):
        fam.embed(x, U, V)


# --------------------------------------------------------------------------
# invariants
# --------------------------------------------------------------------------
@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 2**16))
def test_bilinear_invariant_is_whitened_A_and_ignores_M_Gu_M_inverse_transpose_Gv(seed):
    rng = np.random.default_rng(seed)
    m = random_gaussian_model(rng, 3, 4, n_e=2)
    fam = LinearEncoders(m, "dot")
    G_u, G_v = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    B = fam.invariant(fam.pack(G_u, G_v))
    C_uu, C_vv = m.cov[:3, :3], m.cov[3:, 3:]
    # scipy's sqrtm against the module's eigh: both accurate to ~kappa * eps (kappa <= 10)
    np.testing.assert_allclose(B, _root(C_uu, 0.5) @ G_u.T @ G_v @ _root(C_vv, 0.5), rtol=1e-10, atol=1e-10)
    M = rng.standard_normal((2, 2)) + 2 * np.eye(2)
    if abs(np.linalg.det(M)) < 0.1:  # keep M well conditioned (the tolerance below assumes it)
        M = M + 3 * np.eye(2)
    B2 = fam.invariant(fam.pack(M @ G_u, np.linalg.inv(M).T @ G_v))
    # the solve with M (condition <~ 100 here) costs ~cond * eps
    np.testing.assert_allclose(B2, B, rtol=1e-9, atol=1e-9)
    # and it does see a change that is not an invariance (rescaling one side)
    assert np.linalg.norm(fam.invariant(fam.pack(2 * G_u, G_v)) - 2 * B) < 1e-9 * np.linalg.norm(B)


@settings(deadline=None, max_examples=20)
@given(seed=st.integers(0, 2**16))
def test_l2_gram_invariant_is_the_gram_of_whitened_encoders_and_ignores_joint_rotations(seed):
    rng = np.random.default_rng(seed)
    m = random_gaussian_model(rng, 3, 2, n_e=2)
    fam = LinearEncoders(m, "l2")
    G_u, G_v = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    Gram = fam.invariant(fam.pack(G_u, G_v))
    X, Y = G_u @ _root(m.cov[:3, :3], 0.5), G_v @ _root(m.cov[3:, 3:], 0.5)
    hand = np.block([[X.T @ X, X.T @ Y], [Y.T @ X, Y.T @ Y]])
    np.testing.assert_allclose(Gram, hand, rtol=1e-10, atol=1e-10)  # sqrtm vs eigh, kappa <= 10
    Q = random_orthogonal(rng, 2)
    # Q^T Q = I to rounding: the Gram matrix is unchanged to ~1e-15 relative
    np.testing.assert_allclose(fam.invariant(fam.pack(Q @ G_u, Q @ G_v)), Gram, rtol=1e-12, atol=1e-12)
    # a bilinear invariance that is not a rotation changes the Gram matrix
    M = np.diag([2.0, 0.5])
    moved = fam.invariant(fam.pack(M @ G_u, np.linalg.inv(M).T @ G_v))
    assert np.linalg.norm(moved - Gram) > 1e-3 * np.linalg.norm(Gram)


def test_cosine_has_neither_invariant_nor_gaussian_conditionals():
    fam = LinearEncoders(_model(5), "cosine")
    x = np.ones(fam.size)
    with pytest.raises(InvalidInputError, match="cosine"):
        fam.invariant(x)
    with pytest.raises(InvalidInputError, match="cosine"):
        fam.conditionals(x)


# --------------------------------------------------------------------------
# model conditionals (MATH.md §4.1, §4.2)
# --------------------------------------------------------------------------
def test_dot_conditionals_are_the_bilinear_tilt():
    rng = np.random.default_rng(6)
    m = _model(6, 3, 4, 2)
    fam = LinearEncoders(m, "dot")
    x = _random_x(fam, rng)
    G_u, G_v = fam.split(x)
    A = G_u.T @ G_v
    C_uu, C_vv = m.cov[:3, :3], m.cov[3:, 3:]
    N_v, S_v, N_u, S_u = fam.conditionals(x)
    # (the comparisons with the gaussian/variants closed forms below: the same products, ~eps)
    # MATH.md §4.1: nu_{v|u} = N(C_vv A^T u, C_vv), nu_{u|v} = N(C_uu A v, C_uu); products only
    np.testing.assert_allclose(N_v, C_vv @ A.T, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(N_u, C_uu @ A, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(S_v, C_vv, rtol=1e-15)
    np.testing.assert_allclose(S_u, C_uu, rtol=1e-15)
    for mine, theirs in zip((N_v, S_v, N_u, S_u), gaussian.bilinear_model_conditionals(A, m.cov, 3)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-14, atol=1e-15)


def test_l2_conditionals_complete_the_square():
    rng = np.random.default_rng(7)
    m = _model(7, 3, 2, 2)
    fam = LinearEncoders(m, "l2")
    x = _random_x(fam, rng)
    G_u, G_v = fam.split(x)
    C_uu, C_vv = m.cov[:3, :3], m.cov[3:, 3:]
    N_v, S_v, N_u, S_u = fam.conditionals(x)
    # MATH.md §4.2 with tau = 1, by direct inverses (the module uses Woodbury): cond <= ~100
    Sv = np.linalg.inv(np.linalg.inv(C_vv) + G_v.T @ G_v)
    Su = np.linalg.inv(np.linalg.inv(C_uu) + G_u.T @ G_u)
    np.testing.assert_allclose(S_v, Sv, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(S_u, Su, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(N_v, Sv @ G_v.T @ G_u, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(N_u, Su @ G_u.T @ G_v, rtol=1e-11, atol=1e-12)
    for mine, theirs in zip((N_v, S_v, N_u, S_u), variants.l2_conditionals(G_u, G_v, 1.0, m.cov, 3)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-14)


def test_u_subspace_is_the_whitened_u_row_space():
    rng = np.random.default_rng(8)
    m = _model(8, 4, 3, 2)
    fam = LinearEncoders(m, "dot")
    x = _random_x(fam, rng)
    G_u, _ = fam.split(x)
    S = fam.u_subspace(x)
    assert S.shape == (4, 2)
    # scipy's sqrtm against the module's eigh on C_uu (condition <= 10): ~1e-14
    np.testing.assert_allclose(S, _root(m.cov[:4, :4], 0.5) @ G_u.T, rtol=1e-10, atol=1e-10)
    # the span does not change under G_u -> M G_u: principal angles 0 (to ~sqrt(eps))
    M = np.array([[2.0, 1.0], [0.3, -1.5]])
    S2 = fam.u_subspace(fam.pack(M @ G_u, np.linalg.inv(M).T @ fam.split(x)[1]))
    assert np.max(sla.subspace_angles(S, S2)) < 1e-7


# --------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------
def test_sample_pairs_is_the_cholesky_transform_exactly():
    m = _model(9, 2, 3, 1)
    d = m.cov.shape[0]
    U, V = sample_pairs(m, np.eye(d))
    Z = np.hstack([U, V])
    assert U.shape == (d, 2) and V.shape == (d, 3)
    # normals = I gives Z = L^T, so Z^T Z = L L^T = C up to rounding
    np.testing.assert_allclose(Z.T @ Z, m.cov, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(np.tril(Z, -1), 0.0)  # L^T is upper triangular


def test_sample_pairs_covariance_within_monte_carlo_error():
    m = _model(10, 2, 3, 2)
    rng = np.random.default_rng(10)
    n = 20000
    U, V = LinearEncoders(m, "dot").sample(rng, n)
    Z = np.hstack([U, V])
    C = m.cov
    # (Monte Carlo: every bound below is 5 standard errors, a false alarm of ~1e-5 per seed)
    C_hat = Z.T @ Z / n  # mean known (0): no Bessel correction
    # sd of a second moment of a centred Gaussian: sqrt((C_ii C_jj + C_ij^2) / n); 5 sd over
    # 15 entries is a false alarm of ~1e-5 for a random seed (and this seed is fixed)
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / n)
    assert np.all(np.abs(C_hat - C) <= 5 * se), np.max(np.abs(C_hat - C) / se)
    assert np.all(np.abs(Z.mean(axis=0)) <= 5 * np.sqrt(np.diag(C) / n))


def test_family_sample_draws_from_sample_pairs():
    m = _model(11)
    fam = LinearEncoders(m, "l2")
    U, V = fam.sample(np.random.default_rng(3), 7)
    U2, V2 = sample_pairs(m, np.random.default_rng(3).standard_normal((7, m.cov.shape[0])))
    np.testing.assert_array_equal(U, U2)
    np.testing.assert_array_equal(V, V2)


def test_nested_sample_prefix_is_the_same_whatever_the_total():
    m = _model(12, 3, 2, 1)
    big_U, big_V = nested_sample(m, (4, 1, 2), 3 * SAMPLE_BLOCK + 5)
    assert big_U.shape == (3 * SAMPLE_BLOCK + 5, 3) and big_V.shape == (3 * SAMPLE_BLOCK + 5, 2)
    for n in range(1, 3 * SAMPLE_BLOCK + 5):
        U, V = nested_sample(m, (4, 1, 2), n)
        assert U.shape == (n, 3) and V.shape == (n, 2)
        # the same normals, transformed by the same Cholesky factor: equal up to the BLAS
        # kernel's summation order for the shape asked (a few ulps of O(1) numbers)
        np.testing.assert_allclose(U, big_U[:n], rtol=0, atol=8 * np.finfo(float).eps * np.max(np.abs(big_U)))
        np.testing.assert_allclose(V, big_V[:n], rtol=0, atol=8 * np.finfo(float).eps * np.max(np.abs(big_V)))
    # the seeding is by key: the same key twice is the same sample, another key another one
    np.testing.assert_array_equal(nested_sample(m, (4, 1, 2), 100)[0], nested_sample(m, (4, 1, 2), 100)[0])
    U_other, _ = nested_sample(m, (4, 1, 3), 10)
    assert not np.allclose(U_other, big_U[:10])
    # and its rows are a sample of the model: the prefix is not, say, one block repeated
    assert not np.allclose(big_U[:SAMPLE_BLOCK], big_U[SAMPLE_BLOCK:2 * SAMPLE_BLOCK])


def test_nested_sample_prefix_is_bitwise_identical():
    m = _model(12, 3, 2, 1)
    big_U, big_V = nested_sample(m, (4, 1, 2), 3 * SAMPLE_BLOCK + 5)
    for n in range(1, 3 * SAMPLE_BLOCK + 5):
        U, V = nested_sample(m, (4, 1, 2), n)
        np.testing.assert_array_equal(U, big_U[:n])
        np.testing.assert_array_equal(V, big_V[:n])


# --------------------------------------------------------------------------
# CLIP's population minimiser
# --------------------------------------------------------------------------
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("shape", [(3, 4, 2), (4, 2, 1), (3, 3, 3)])
def test_population_minimizer_dot_is_balanced_factors_of_G1(similarity, shape):
    n_u, n_v, n_e = shape
    m = _model(13, n_u, n_v, n_e)
    fam = LinearEncoders(m, similarity)
    x = population_minimizer(fam)
    G_u, G_v = fam.split(x)
    assert x.shape == (fam.size,)
    A = G_u.T @ G_v
    # compared through the invariant A: SVD-based, accurate to ~kappa * eps
    np.testing.assert_allclose(A, gaussian.lowrank_minimizer(m.cov, n_u, n_e), rtol=1e-10, atol=1e-11)
    # whitened: B = U_ne S_ne V_ne^T, here from scipy's sqrtm whitening
    K = _root(m.cov[:n_u, :n_u], -0.5) @ m.cov[:n_u, n_u:] @ _root(m.cov[n_u:, n_u:], -0.5)
    P, s, Qt = np.linalg.svd(K)
    np.testing.assert_allclose(_root(m.cov[:n_u, :n_u], 0.5) @ A @ _root(m.cov[n_u:, n_u:], 0.5),
                               (P[:, :n_e] * s[:n_e]) @ Qt[:n_e], atol=1e-9)
    # balanced: G_u G_u^T = G_v G_v^T (= diag of A's singular values)
    np.testing.assert_allclose(G_u @ G_u.T, G_v @ G_v.T, atol=1e-11)
    # value: Proposition G1's minimum, from the test-only reference (Cholesky whitening);
    # two whitening routes on condition <= 10 agree to ~1e-14
    sig = ref.canonical_correlations(m.cov, n_u)
    assert abs(ref.clip_loss(A, m.cov, n_u) + 0.5 * np.sum(sig[:n_e] ** 2)) < 1e-10


def test_population_minimizer_l2_attains_the_two_sided_minimum():
    m = _model(14, 3, 2, 2)  # n_e = min(n_u, n_v): the canonical encoders are a candidate
    fam = LinearEncoders(m, "l2")
    x = population_minimizer(fam, np.random.default_rng(0))
    G_u, G_v = fam.split(x)
    value = variants.l2_balanced_loss(G_u, G_v, 1.0, m.cov, 3, 0.5)
    # fitted to gtol 1e-10 on a loss of unit curvature: value error ~1e-20, the closed forms ~1e-13
    assert abs(value - two_sided_minimum(m.cov, 3)) < 1e-9
    # the minimiser, compared through its invariant (Gram matrix: joint rotations and reflections)
    Gu_star, Gv_star = two_sided_canonical_encoders(m.cov, 3)
    Gram_star = fam.invariant(fam.pack(Gu_star, Gv_star))
    # gradient 1e-10 and curvature >~ 1e-2: parameters within ~1e-8
    np.testing.assert_allclose(fam.invariant(x), Gram_star, atol=1e-6)


# --------------------------------------------------------------------------
# subspace_flip: the model's reflection outside CLIP's subspace
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n_u, n_v, n_e", [(2, 2, 1), (3, 2, 1), (2, 3, 2), (3, 3, 2), (4, 2, 2)])
def test_subspace_flip_keeps_the_law_and_fixes_clips_encoders(n_u, n_v, n_e):
    """The reflection keeps N(0, C) (checked on the joint covariance, an exact identity), is
    an involution, fixes CLIP's population encoders (Proposition G1's factors) and flips
    every encoder direction outside CLIP's subspace (so it is no identity in disguise)."""
    m = _model(11 * n_u + n_v, n_u, n_v, n_e)
    T_u, T_v = subspace_flip(m)
    T = sla.block_diag(T_u, T_v)
    np.testing.assert_allclose(T @ m.cov @ T.T, m.cov, atol=1e-12)
    np.testing.assert_allclose(T @ T, np.eye(n_u + n_v), atol=1e-12)
    fam = LinearEncoders(m, "dot")
    G_u, G_v = fam.split(population_minimizer(fam))
    np.testing.assert_allclose(G_u @ T_u, G_u, atol=1e-12)
    np.testing.assert_allclose(G_v @ T_v, G_v, atol=1e-12)
    # eigenvalues: +1 on the n_e kept directions, -1 on the rest, on either side
    assert sorted(np.round(np.linalg.eigvals(T_u).real).astype(int)) == [-1] * (n_u - n_e) + [1] * n_e
    assert sorted(np.round(np.linalg.eigvals(T_v).real).astype(int)) == [-1] * (n_v - n_e) + [1] * n_e


def test_subspace_flip_is_none_when_nothing_lies_outside():
    assert subspace_flip(_model(3, 2, 2, 2)) is None
    T_u, T_v = subspace_flip(_model(3, 2, 3, 2))  # n_e = n_u: the u side is kept whole
    np.testing.assert_allclose(T_u, np.eye(2), atol=1e-12)
    assert not np.allclose(T_v, np.eye(3))
