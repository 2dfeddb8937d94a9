"""numerics.fit_statistics: the statistics the verifier compares and their targets, against
independent computations (scipy's sqrtm whitening, normal-equation projectors, the
whitened closed forms of MATH.md §4.1/§4.2, Proposition G2, brute-force weighted means)."""
import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, settings, strategies as st

from numerics import gaussian
from numerics import fit_statistics as fs
from numerics.encoders import LinearEncoders, population_minimizer, sample_pairs
from numerics.models import random_gaussian_model


def _model(seed, n_u=3, n_v=2, n_e=2, **kw):
    return random_gaussian_model(np.random.default_rng(seed), n_u, n_v, n_e=n_e, min_gap=0.1, **kw)


def _roots(m):
    """C_uu^{1/2}, C_vv^{1/2}, C_uu^{-1/2}, C_vv^{-1/2} by scipy's sqrtm (not the module's eigh)."""
    Ru = np.real(sla.sqrtm(m.cov[: m.n_u, : m.n_u]))
    Rv = np.real(sla.sqrtm(m.cov[m.n_u:, m.n_u:]))
    return Ru, Rv, np.linalg.inv(Ru), np.linalg.inv(Rv)


def _whitened_K(m):
    Ru, Rv, Riu, Riv = _roots(m)
    return Riu @ m.cov[: m.n_u, m.n_u:] @ Riv


def _proj(M):
    """Projector onto range(M) by the normal equations (not QR)."""
    return M @ np.linalg.solve(M.T @ M, M.T)


# sqrtm vs eigh whitening and a few products on matrices of condition <= 10: ~1e-13; 1e-10 leaves room
TOL = 1e-10


# --------------------------------------------------------------------------
# projector, invariant and subspace statistics
# --------------------------------------------------------------------------
@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 6), k_frac=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_projector_is_the_orthogonal_projector_onto_the_columns(n, k_frac, seed):
    k = 1 + int(k_frac * (n - 1))
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, k)) + np.eye(n, k)  # full column rank (condition ~ a few)
    P = fs.projector(M)
    assert P.shape == (n, n)
    np.testing.assert_allclose(P @ P, P, atol=1e-12)       # idempotent (rounding of O(1) products)
    np.testing.assert_allclose(P, P.T, atol=1e-13)         # symmetric
    assert abs(np.trace(P) - k) < 1e-11                     # rank k
    assert np.linalg.matrix_rank(P, tol=1e-8) == k
    np.testing.assert_allclose(P @ M, M, atol=1e-11)       # fixes its columns
    if np.linalg.cond(M) < 1e6:  # the normal equations square the condition number
        np.testing.assert_allclose(P, _proj(M), atol=1e-9)


def test_invariant_statistic_is_the_flattened_invariant():
    rng = np.random.default_rng(0)
    m = _model(0, 3, 4, 2)
    Ru, Rv, _, _ = _roots(m)
    for similarity in ("dot", "l2"):
        fam = LinearEncoders(m, similarity)
        x = rng.standard_normal(fam.size)
        G_u, G_v = fam.split(x)
        s = fs.invariant_statistic(fam, x)
        if similarity == "dot":
            expected = Ru @ G_u.T @ G_v @ Rv
        else:
            W = np.hstack([G_u @ Ru, G_v @ Rv])
            expected = W.T @ W
        np.testing.assert_allclose(s, expected.ravel(), rtol=TOL, atol=TOL)


def test_subspace_statistic_is_invariant_to_scale_and_to_mixing_the_rows():
    rng = np.random.default_rng(1)
    m = _model(1, 4, 3, 2)
    fam = LinearEncoders(m, "dot")
    Ru, Rv, _, _ = _roots(m)
    G_u, G_v = rng.standard_normal((2, 4)), rng.standard_normal((2, 3))
    s = fs.subspace_statistic(fam, fam.pack(G_u, G_v))
    assert s.shape == (4 * 4 + 3 * 3,)
    np.testing.assert_allclose(s, np.concatenate([_proj(Ru @ G_u.T).ravel(), _proj(Rv @ G_v.T).ravel()]),
                               atol=1e-9)  # normal equations of a well-conditioned 4x2: ~1e-13
    M, N = np.array([[3.0, 1.0], [-0.5, 0.2]]), np.array([[0.1, 2.0], [1.0, 1.0]])
    for G_u2, G_v2 in [(7.5 * G_u, 0.01 * G_v), (M @ G_u, N @ G_v), (-G_u, np.linalg.inv(M).T @ G_v)]:
        # the QR of M G_u (condition <~ 50 here) spans the same space to ~cond * eps
        np.testing.assert_allclose(fs.subspace_statistic(fam, fam.pack(G_u2, G_v2)), s, atol=1e-11)
    # a different row space is a different statistic
    other = fs.subspace_statistic(fam, fam.pack(G_u + rng.standard_normal(G_u.shape), G_v))
    assert np.linalg.norm(other - s) > 1e-2


# --------------------------------------------------------------------------
# conditional statistics and their target (MATH.md §4.1, §4.2, Proposition G2)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["v|u", "u|v", "both"])
@pytest.mark.parametrize("covariances", [False, True])
@pytest.mark.parametrize("similarity", ["dot", "l2"])
def test_conditional_statistic_is_the_whitened_model_conditional(similarity, direction, covariances):
    rng = np.random.default_rng(2)
    m = _model(2, 3, 2, 2)
    fam = LinearEncoders(m, similarity)
    x = 0.8 * rng.standard_normal(fam.size)
    G_u, G_v = fam.split(x)
    Ru, Rv, Riu, Riv = _roots(m)
    X, Y = G_u @ Ru, G_v @ Rv
    if similarity == "dot":  # whitened bilinear tilt: mean maps B^T, B; covariances I
        B = X.T @ Y
        mv, cv, mu, cu = B.T, np.eye(2), B, np.eye(3)
    else:  # whitened L2 tilt: (I + Y^T Y)^{-1} Y^T X and (I + Y^T Y)^{-1}, and u|v alike
        cv, cu = np.linalg.inv(np.eye(2) + Y.T @ Y), np.linalg.inv(np.eye(3) + X.T @ X)
        mv, mu = cv @ Y.T @ X, cu @ X.T @ Y
    parts = []
    if direction in ("v|u", "both"):
        parts += [mv] + ([cv] if covariances else [])
    if direction in ("u|v", "both"):
        parts += [mu] + ([cu] if covariances else [])
    expected = np.concatenate([p.ravel() for p in parts])
    got = fs.conditional_statistic(fam, x, direction, covariances)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)
    # and directly: the family's conditionals, whitened with scipy's roots
    N_v, S_v, N_u, S_u = fam.conditionals(x)
    direct = {"v|u": [Riv @ N_v @ Ru] + ([Riv @ S_v @ Riv] if covariances else []),
              "u|v": [Riu @ N_u @ Rv] + ([Riu @ S_u @ Riu] if covariances else [])}
    keys = ["v|u", "u|v"] if direction == "both" else [direction]
    np.testing.assert_allclose(got, np.concatenate([p.ravel() for k in keys for p in direct[k]]),
                               rtol=TOL, atol=TOL)


@pytest.mark.parametrize("shape,rank", [((3, 2, 2), None), ((3, 3, 1), 1), ((4, 3, 2), 1), ((3, 3, 3), 2)])
def test_projected_target_is_the_true_whitened_conditional_when_n_e_covers_the_rank(shape, rank):
    n_u, n_v, n_e = shape
    m = _model(3, n_u, n_v, n_e, rank=rank)
    fam = LinearEncoders(m, "dot")
    Ru, Rv, Riu, Riv = _roots(m)
    M_v, S_v, M_u, S_u = gaussian.true_conditionals(m.cov, n_u)
    expected = np.concatenate([(Riv @ M_v @ Ru).ravel(), (Riv @ S_v @ Riv).ravel(),
                               (Riu @ M_u @ Rv).ravel(), (Riu @ S_u @ Riu).ravel()])
    got = fs.projected_conditional_target(fam, "both", True)
    # n_e >= rank C_uv: P_v M_v = M_v and I - V S^2 V^T = whitened S_v (MATH.md §4.1, §4.2)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_projected_target_below_the_rank_is_the_truncated_svd():
    m = _model(4, 4, 3, 1)  # full rank 3, n_e = 1: a genuine projection
    fam = LinearEncoders(m, "dot")
    K = _whitened_K(m)
    P, s, Qt = np.linalg.svd(K)
    Bk = s[0] * np.outer(P[:, 0], Qt[0])
    expected = np.concatenate([Bk.T.ravel(), (np.eye(3) - s[0] ** 2 * np.outer(Qt[0], Qt[0])).ravel(),
                               Bk.ravel(), (np.eye(4) - s[0] ** 2 * np.outer(P[:, 0], P[:, 0])).ravel()])
    # two SVDs of K, whitened by eigh and by sqrtm (condition <= 10): ~1e-14
    np.testing.assert_allclose(fs.projected_conditional_target(fam, "both", True), expected, atol=1e-9)
    # and it is not the full regression map (the model has three correlations)
    assert np.linalg.norm(Bk - K) > 0.01


@pytest.mark.parametrize("shape", [(3, 2, 1), (3, 3, 2), (2, 4, 2)])
def test_clip_population_minimiser_has_the_projected_conditional_means(shape):
    """Proposition G2: at A*, C_vv A*^T = P_v M_v and C_uu A* = P_u M_u; the model
    covariances stay C_vv, C_uu (whitened: I) instead of the target's I - V S^2 V^T."""
    n_u, n_v, n_e = shape
    m = _model(5, n_u, n_v, n_e)
    fam = LinearEncoders(m, "dot")
    x = population_minimizer(fam)
    # SVD-based minimiser and target, both accurate to ~kappa * eps
    np.testing.assert_allclose(fs.conditional_statistic(fam, x, "both", False),
                               fs.projected_conditional_target(fam, "both", False), atol=1e-10)
    with_cov = fs.conditional_statistic(fam, x, "v|u", True)
    target = fs.projected_conditional_target(fam, "v|u", True)
    k = n_v * n_u
    # C_vv^-1/2 C_vv C_vv^-1/2 = I to rounding (~1e-15 for condition <= 10)
    np.testing.assert_allclose(with_cov[k:], np.eye(n_v).ravel(), atol=1e-12)
    sig = np.linalg.svd(_whitened_K(m), compute_uv=False)[:n_e]
    # the covariance gap is |V S^2 V^T|_F = |S^2|_F
    assert abs(np.linalg.norm(with_cov[k:] - target[k:]) - np.linalg.norm(sig**2)) < 1e-10


# --------------------------------------------------------------------------
# effective parameters
# --------------------------------------------------------------------------
@pytest.mark.parametrize("similarity,multiplier", [("dot", 2.5), ("dot", -0.7), ("dot", 1.0),
                                                   ("l2", 3.0), ("l2", 0.2)])
def test_effective_parameters_fold_the_multiplier_into_the_encoders(similarity, multiplier):
    rng = np.random.default_rng(6)
    m = _model(6, 3, 2, 2)
    fam = LinearEncoders(m, similarity)
    x = np.concatenate([rng.standard_normal(fam.size), [0.3, -1.0]])  # two learned scalars, dropped
    y = fs.effective_parameters(fam, x, multiplier)
    assert y.shape == (fam.size,)
    # the invariant scales by m (B for dot; the Gram matrix for l2, m > 0): rounding only
    np.testing.assert_allclose(fam.invariant(y), multiplier * fam.invariant(x), rtol=1e-12, atol=1e-13)
    # the effective similarity: logits of y are m times those of x (rounding of the rescaled
    # products, ~1e-15 relative)
    U, V = fam.sample(rng, 5)
    np.testing.assert_allclose(fam.logits(y, U, V)[0], multiplier * fam.logits(x, U, V)[0],
                               rtol=1e-11, atol=1e-12)


def test_effective_parameters_l2_negative_multiplier_is_folded_or_refused():
    from numerics import InvalidInputError

    rng = np.random.default_rng(12)
    fam = LinearEncoders(_model(12, 3, 2, 2), "l2")
    x = rng.standard_normal(fam.size)
    U, V = fam.sample(rng, 5)
    try:
        y = fs.effective_parameters(fam, x, -2.0)
    except InvalidInputError:
        return  # refusing is a correct answer
    np.testing.assert_allclose(fam.logits(y, U, V)[0], -2.0 * fam.logits(x, U, V)[0], rtol=1e-11, atol=1e-12)


# --------------------------------------------------------------------------
# cosine: statistics on fixed probes
# --------------------------------------------------------------------------
def test_probes_shapes_determinism_and_distribution():
    m = _model(7, 3, 2, 2)
    p = fs.Probes(m, np.random.default_rng(5))
    q = fs.Probes(m, np.random.default_rng(5))
    assert p.U.shape == (fs.PROBE_POINTS, 3) and p.V.shape == (fs.PROBE_POINTS, 2)
    assert p.bank_u.shape == (fs.BANK_SIZE, 3) and p.bank_v.shape == (fs.BANK_SIZE, 2)
    for a in ("U", "V", "bank_u", "bank_v"):
        np.testing.assert_array_equal(getattr(p, a), getattr(q, a))
    # drawn by sample_pairs from the rng's normals: probes first, then the bank (the same
    # normals and factor: equal to an ulp, the BLAS shape aside)
    U, V = sample_pairs(m, np.random.default_rng(5).standard_normal((fs.PROBE_POINTS + fs.BANK_SIZE, 5)))
    np.testing.assert_allclose(p.U, U[: fs.PROBE_POINTS], rtol=1e-14)
    np.testing.assert_allclose(p.bank_v, V[fs.PROBE_POINTS:], rtol=1e-14)
    # the bank is a sample of the marginals: covariance within 5 Monte Carlo sd per entry
    Z = np.hstack([p.bank_u, p.bank_v])
    C = m.cov
    se = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C**2) / fs.BANK_SIZE)
    assert np.all(np.abs(Z.T @ Z / fs.BANK_SIZE - C) <= 5 * se)
    r = fs.Probes(m, np.random.default_rng(6))
    assert not np.allclose(r.U, p.U)


def _cos(a, b):
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_cosine_similarity_statistic_is_the_centred_effective_cosine():
    rng = np.random.default_rng(8)
    m = _model(8, 3, 3, 2)
    fam = LinearEncoders(m, "cosine")
    probes = fs.Probes(m, np.random.default_rng(1))
    x = rng.standard_normal(fam.size)
    G_u, G_v = fam.split(x)
    s = fs.cosine_similarity_statistic(fam, x, 4.0, probes)
    F = np.array([[4.0 * _cos(G_u @ u, G_v @ v) for v in probes.V] for u in probes.U])
    assert s.shape == (fs.PROBE_POINTS**2,)
    assert abs(s.sum()) < 1e-12  # centred (144 O(1) terms: rounding ~1e-14)
    np.testing.assert_allclose(s, (F - F.mean()).ravel(), atol=1e-12)
    # a shift of every logit is invisible; the scale is not (rounding as above)
    np.testing.assert_allclose(fs.cosine_similarity_statistic(fam, x, 8.0, probes), 2 * s, atol=1e-12)
    np.testing.assert_allclose(fs.cosine_similarity_statistic(fam, fam.pack(3 * G_u, 0.5 * G_v), 4.0, probes),
                               s, atol=1e-12)


@pytest.mark.parametrize("direction", ["v|u", "u|v", "both"])
@pytest.mark.parametrize("covariances", [False, True])
def test_cosine_conditional_statistic_is_the_self_normalised_weighted_bank(direction, covariances):
    rng = np.random.default_rng(9)
    m = _model(9, 2, 2, 2)
    fam = LinearEncoders(m, "cosine")
    probes = fs.Probes(m, np.random.default_rng(2))
    x = rng.standard_normal(fam.size)
    G_u, G_v = fam.split(x)
    _, _, Riu, Riv = _roots(m)
    mult = 3.0

    def tilted(queries, enc_q, bank, enc_b, R):
        means, covs = [], []
        Y = bank @ R  # whitened bank (R symmetric)
        bn = bank @ enc_b.T
        bn = bn / np.linalg.norm(bn, axis=1, keepdims=True)
        for q in queries:
            a = enc_q @ q
            f = mult * (bn @ (a / np.linalg.norm(a)))
            w = np.exp(f - f.max())
            w /= w.sum()
            mu = w @ Y
            means.append(mu)
            covs.append(((Y - mu) * w[:, None]).T @ (Y - mu))
        return [np.array(means)] + ([np.array(covs)] if covariances else [])

    parts = []
    if direction in ("v|u", "both"):
        parts += tilted(probes.U, G_u, probes.bank_v, G_v, Riv)
    if direction in ("u|v", "both"):
        parts += tilted(probes.V, G_v, probes.bank_u, G_u, Riu)
    expected = np.concatenate([p.ravel() for p in parts])
    got = fs.cosine_conditional_statistic(fam, x, mult, direction, covariances, probes)
    assert got.shape == expected.shape
    # weighted sums of 4096 O(1) terms with weights in [e^-6, 1]: rounding ~1e-13
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("direction", ["v|u", "u|v", "both"])
@pytest.mark.parametrize("covariances", [False, True])
def test_true_conditional_statistic_is_the_whitened_data_conditional_at_the_probes(direction, covariances):
    m = _model(10, 3, 2, 2)
    fam = LinearEncoders(m, "cosine")
    probes = fs.Probes(m, np.random.default_rng(3))
    _, _, Riu, Riv = _roots(m)
    C_uu, C_uv, C_vv = m.cov[:3, :3], m.cov[:3, 3:], m.cov[3:, 3:]
    # MATH.md §4: E[v|u] = C_vu C_uu^-1 u, Cov = C_vv - C_vu C_uu^-1 C_uv (here by inverses)
    mean_v = np.array([Riv @ C_uv.T @ np.linalg.inv(C_uu) @ u for u in probes.U])
    mean_u = np.array([Riu @ C_uv @ np.linalg.inv(C_vv) @ v for v in probes.V])
    cov_v = Riv @ (C_vv - C_uv.T @ np.linalg.inv(C_uu) @ C_uv) @ Riv
    cov_u = Riu @ (C_uu - C_uv @ np.linalg.inv(C_vv) @ C_uv.T) @ Riu
    # the hand maps are gaussian.true_conditionals' (solves against inverses: ~1e-14)
    M_v, S_v, M_u, S_u = gaussian.true_conditionals(m.cov, 3)
    np.testing.assert_allclose(mean_v, probes.U @ M_v.T @ Riv, atol=1e-12)
    np.testing.assert_allclose(cov_u, Riu @ S_u @ Riu, atol=1e-12)
    parts = []
    if direction in ("v|u", "both"):
        parts += [mean_v] + ([np.broadcast_to(cov_v, (fs.PROBE_POINTS, 2, 2))] if covariances else [])
    if direction in ("u|v", "both"):
        parts += [mean_u] + ([np.broadcast_to(cov_u, (fs.PROBE_POINTS, 3, 3))] if covariances else [])
    expected = np.concatenate([p.ravel() for p in parts])
    got = fs.true_conditional_statistic(fam, direction, covariances, probes)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10)  # inverses of condition <= 10


def test_cosine_conditional_statistic_approaches_the_truth_only_for_the_right_tilt():
    """Sanity of the layouts against each other: with encoders that make the cosine tilt
    uninformative (m ~ 0), the importance estimate is the bank's marginal mean (~0), not the
    true conditional mean, whose norm is of order sigma_1."""
    m = _model(11, 2, 2, 2)
    fam = LinearEncoders(m, "cosine")
    probes = fs.Probes(m, np.random.default_rng(4))
    x = np.random.default_rng(0).standard_normal(fam.size)
    est = fs.cosine_conditional_statistic(fam, x, 1e-12, "v|u", False, probes)
    truth = fs.true_conditional_statistic(fam, "v|u", False, probes)
    # the bank mean of 4096 whitened draws: sd 1/64 per coordinate, 5 sd bound
    assert np.max(np.abs(est)) < 5 / np.sqrt(fs.BANK_SIZE)
    assert np.linalg.norm(truth) > 10 * np.linalg.norm(est)


def test_effective_parameters_l2_refuses_a_negative_multiplier_by_name_and_takes_zero():
    from numerics import InvalidInputError

    rng = np.random.default_rng(13)
    fam = LinearEncoders(_model(13, 3, 2, 2), "l2")
    x = rng.standard_normal(fam.size)
    with pytest.raises(InvalidInputError, match=r"^multiplier=-2.0: expected a logit multiplier >= 0 under L2 "
                                                r"similarity \(a negative one rewards distance: no encoders "
                                                r"have that logit\)$"):
        fs.effective_parameters(fam, x, -2.0)
    # m = 0 is allowed (>= 0): the effective encoders are zero, every L2 logit 0
    y = fs.effective_parameters(fam, x, 0.0)
    assert y.shape == (fam.size,) and np.all(y == 0)
    # dot: any sign is folded into G_u
    dot = LinearEncoders(fam.model, "dot")
    np.testing.assert_allclose(dot.invariant(fs.effective_parameters(dot, x, -2.0)), -2.0 * dot.invariant(x),
                               rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------
# rank_profile
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_profile_of_encoders_on_distinct_canonical_pairs_is_one(seed):
    """Encoders whose features are distinct canonical directions (scaled anyhow) have unit
    whitened features on orthonormal directions: every ratio is 1."""
    m = _model(seed, n_u=4, n_v=3, n_e=3)
    fam = LinearEncoders(m, "dot")
    Ru, Rv, Riu, Riv = _roots(m)
    U, _, Vt = np.linalg.svd(_whitened_K(m))
    rng = np.random.default_rng(seed)
    G_u = np.diag(rng.uniform(0.5, 3, 3)) @ (Riu @ U[:, :3]).T   # Ru G_u^T = U_3 diag(d)
    G_v = np.diag(rng.uniform(0.5, 3, 3)) @ (Riv @ Vt.T[:, :3]).T
    assert np.allclose(fs.rank_profile(fam, fam.pack(G_u, G_v)), 1.0, atol=TOL)


def test_rank_profile_ignores_feature_scales_and_sees_a_collapse():
    m = _model(3, n_u=3, n_v=3, n_e=2)
    fam = LinearEncoders(m, "dot")
    rng = np.random.default_rng(3)
    G_u, G_v = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    base = fs.rank_profile(fam, fam.pack(G_u, G_v))
    assert 0 < base[0] < 1
    # each feature's positive scale, on either side (a batch-standardised loss's invariance)
    scaled = fam.pack(np.diag([3.0, 0.2]) @ G_u, np.diag([0.5, 7.0]) @ G_v)
    assert np.allclose(fs.rank_profile(fam, scaled), base, rtol=1e-10)
    # both features on the same direction: a zero, up to rounding of an O(1) SVD
    collapsed = fam.pack(np.outer([1.0, 2.0], G_u[0]), G_v)
    assert fs.rank_profile(fam, collapsed)[0] < 1e-28


# --------------------------------------------------------------------------
# feature_quotient
# --------------------------------------------------------------------------
def test_feature_quotient_is_exact_on_the_orbit_and_a_projection_off_it():
    m = _model(4, n_u=3, n_v=3, n_e=2)
    fam = LinearEncoders(m, "dot")
    rng = np.random.default_rng(4)
    G_u, G_v = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    Ru, Rv, _, _ = _roots(m)
    a, b = Ru @ G_u.T, Rv @ G_v.T
    # on the orbit: each feature rescaled (positive products) is recovered exactly
    t = np.array([2.5, 0.3])
    on = sum(t[k] * np.outer(a[:, k], b[:, k]) for k in range(2)).ravel()
    assert np.allclose(fs.feature_quotient(fam, fam.pack(G_u, G_v), on), on, atol=TOL)
    # the statistic does not depend on the features' scales
    scaled = fam.pack(np.diag([4.0, 0.1]) @ G_u, np.diag([0.7, 3.0]) @ G_v)
    off = rng.standard_normal(9)
    assert np.allclose(fs.feature_quotient(fam, scaled, off), fs.feature_quotient(fam, fam.pack(G_u, G_v), off),
                       atol=TOL)
    # off the orbit: the closest point of the cone {sum t_k a_k b_k^T, t >= 0}, checked by the
    # optimality conditions of the non-negative least squares (independent of scipy's nnls)
    p = fs.feature_quotient(fam, fam.pack(G_u, G_v), off)
    M = np.stack([np.outer(a[:, k], b[:, k]).ravel() for k in range(2)], axis=1)
    tk = np.linalg.lstsq(M, p, rcond=None)[0]
    g = M.T @ (p - off)
    assert np.all(tk >= -TOL) and np.all(g >= -1e-9) and np.allclose(tk * g, 0, atol=1e-9)


def test_feature_quotient_is_for_the_bilinear_family_only():
    fam = LinearEncoders(_model(5), "l2")
    with pytest.raises(Exception, match="similarity"):
        fs.feature_quotient(fam, np.zeros(fam.size), np.zeros(9))
