"""numerics.gaussian against an independent implementation (tests/_reference.py)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from numerics import InvalidInputError, gaussian
from numerics.models import random_gaussian_model
from proofs_checks.strategies import joint_covariances

from . import _reference as ref

# The acceptance bound: closed forms agree with an independent
# implementation to 1e-8 relative on models of sizes 1-6.  Both sides lose at
# most log10(kappa) ~ 3 digits to the conditioning (kappa <= 1e3 here), so a
# correct pair agrees to ~1e-12; a wrong formula misses by O(1).
REL = 1e-8


def _models(seed, count=40):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n_u, n_v = rng.integers(1, 7, size=2)
        out.append((random_gaussian_model(rng, int(n_u), int(n_v), max_condition=30.0,
                                          max_correlation=float(rng.uniform(0.2, 0.97))), rng))
    return out


def _close(a, b, scale=1.0):
    return abs(a - b) <= REL * max(abs(a), abs(b), scale)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_forms_match_independent_reference(seed):
    for m, rng in _models(seed):
        cov, n_u = m.cov, m.n_u
        np.testing.assert_allclose(gaussian.canonical_correlations(cov, n_u),
                                   ref.canonical_correlations(cov, n_u), rtol=REL, atol=REL)
        assert _close(gaussian.mutual_information(cov, n_u), ref.mutual_information(cov, n_u))
        for _ in range(3):
            A = rng.standard_normal((m.n_u, m.n_v))
            assert _close(gaussian.population_clip_loss(A, cov, n_u), ref.clip_loss(A, cov, n_u))
            kv, ku = gaussian.expected_kl_terms(A, cov, n_u)
            rv, ru = ref.kl_terms(A, cov, n_u)
            assert _close(kv, rv) and _close(ku, ru)
            assert _close(gaussian.conditional_loss(A, cov, n_u), ref.conditional_loss(A, cov, n_u))
        A_star = gaussian.lowrank_minimizer(cov, n_u, m.n_e)
        R = ref.lowrank_minimizer(cov, n_u, m.n_e)
        # A* is unique (random models have distinct correlations): compare the invariant
        # itself, relative to its norm.
        assert np.linalg.norm(A_star - R) <= REL * max(np.linalg.norm(R), 1.0)
        assert _close(gaussian.lowrank_minimum(cov, n_u, m.n_e),
                      -0.5 * np.sum(ref.canonical_correlations(cov, n_u)[: m.n_e] ** 2))


@pytest.mark.parametrize("a", [-0.7, 0.0, 0.4, 1.3])
def test_clip_loss_matches_quadrature_of_its_definition_1d(a):
    # Definition of L_clip (MATH.md §3) integrated numerically; quadrature relative
    # accuracy ~1e-12 per level (epsrel), so 1e-9 absolute leaves a margin of 100.
    rng = np.random.default_rng(7)
    m = random_gaussian_model(rng, 1, 1, max_correlation=0.6)
    A = np.array([[a]])
    assert abs(gaussian.population_clip_loss(A, m.cov, 1) - ref.clip_loss_quadrature_1d(a, m.cov)) < 1e-9


@settings(max_examples=30, deadline=None)
@given(cov=joint_covariances(2, 3, max_condition=1e3, max_correlation=0.99))
def test_mutual_information_two_formulas(cov):
    # I = 1/2(logdet C_uu + logdet C_vv - logdet C) = -1/2 sum log(1 - sigma^2)
    s = gaussian.canonical_correlations(cov, 2)
    I = gaussian.mutual_information(cov, 2)
    alt = -0.5 * np.sum(np.log1p(-s**2))
    # 1 - sigma^2 >= 0.0199; the log of it carries ~kappa*eps relative error
    assert abs(I - alt) <= 1e-9 * max(1.0, abs(I))
    assert I >= -1e-12


@settings(max_examples=30, deadline=None)
@given(cov=joint_covariances(3, 2, max_condition=100.0, gap_at=1, min_gap=0.05))
def test_rank_one_minimizer_is_stationary_on_its_factors(cov):
    # At A* = a b^T the gradient of L_clip is orthogonal to the tangent space
    # of rank-1 matrices: G b = 0 and G^T a = 0 for G = dL/dA.
    A = gaussian.lowrank_minimizer(cov, 3, 1)
    U, s, Vt = np.linalg.svd(A)
    a, b = U[:, 0] * s[0], Vt[0]
    G = gaussian.population_clip_loss_grad(A, cov, 3)
    scale = np.linalg.norm(cov, 2) * max(1.0, np.linalg.norm(A)) * np.linalg.norm(cov, 2)
    tol = 1e3 * np.finfo(float).eps * np.linalg.cond(cov) * scale
    assert np.linalg.norm(G @ b) <= tol * max(1.0, np.linalg.norm(b))
    assert np.linalg.norm(G.T @ a) <= tol * max(1.0, np.linalg.norm(a))


def test_full_rank_minimizer_is_regression():
    # n_e = min(n_u, n_v) = n_u = n_v: A* = C_uu^{-1} C_uv C_vv^{-1}, a different formula.
    rng = np.random.default_rng(3)
    m = random_gaussian_model(rng, 3, 3, n_e=3)
    C_uu, C_uv, C_vv = gaussian.split_covariance(m.cov, 3)
    expected = np.linalg.solve(C_uu, C_uv) @ np.linalg.inv(C_vv)
    np.testing.assert_allclose(gaussian.lowrank_minimizer(m.cov, 3, 3), expected, rtol=1e-10, atol=1e-10)


def test_gaussian_kl_zero_and_positive():
    rng = np.random.default_rng(0)
    S = np.array([[2.0, 0.3], [0.3, 1.0]])
    m = rng.standard_normal(2)
    assert gaussian.gaussian_kl(m, S, m, S) == pytest.approx(0.0, abs=1e-14)
    assert gaussian.gaussian_kl(m, S, m + 0.1, 2 * S) > 0
    # 1-D: KL(N(0,1) || N(0,s^2)) = 1/2 (1/s^2 - 1 + log s^2)
    s2 = 3.0
    assert gaussian.gaussian_kl([0.0], [[1.0]], [0.0], [[s2]]) == pytest.approx(0.5 * (1 / s2 - 1 + np.log(s2)), rel=1e-14)


def test_joint_covariance_prescribes_correlations():
    rng = np.random.default_rng(4)
    sigma = np.array([0.8, 0.5])
    cov = gaussian.joint_covariance(np.diag([1.0, 4.0, 2.0]), np.diag([3.0, 1.0]), sigma)
    np.testing.assert_allclose(gaussian.canonical_correlations(cov, 3), sigma, rtol=1e-13)
    with pytest.raises(InvalidInputError, match="sigma"):
        gaussian.joint_covariance(np.eye(2), np.eye(2), [1.0])


def test_joint_covariance_of_huge_marginals_is_finite():
    # entries near the float64 maximum: C_uv = C_uu^1/2 U diag(sigma) V^T C_vv^1/2 is
    # bounded by them, so it must not overflow on the way (nor come back as inf/NaN)
    M = 1.7e308
    C = np.array([[M, 0.9 * M], [0.9 * M, M]])
    R = np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2)
    cov = gaussian.joint_covariance(C, C, [0.99, 0.5], R, R)
    assert np.all(np.isfinite(cov))
    np.testing.assert_array_equal(cov[:2, :2], C)
    small = gaussian.joint_covariance(C / M, C / M, [0.99, 0.5], R, R)
    np.testing.assert_allclose(cov / M, small, rtol=1e-14, atol=1e-14)


def test_model_conditionals_are_tilts():
    r"""nu_{v|u}(v) ∝ exp(u^T A v) mu_v(v) (MATH.md §4.1), by self-normalised importance
    sampling from mu_v, not by the completed square: the weighted mean and covariance of
    v must match N_v u and Sigma_v, and likewise for u|v.  Tolerance: 5 standard errors
    of the weighted means (effective sample size n_eff = (sum w)^2 / sum w^2), and for
    the covariance 5 sqrt(2 / n_eff) times its largest entry (Gaussian fourth moments)."""
    rng = np.random.default_rng(5)
    m = random_gaussian_model(rng, 2, 3)
    A = 0.3 * rng.standard_normal((2, 3))
    N_v, S_v, N_u, S_u = gaussian.bilinear_model_conditionals(A, m.cov, 2)
    C_uu, _, C_vv = gaussian.split_covariance(m.cov, 2)
    n = 400_000
    for M_map, S_model, C_target, x, T in (
        (N_v, S_v, C_vv, rng.standard_normal(2), A.T),
        (N_u, S_u, C_uu, rng.standard_normal(3), A),
    ):
        # The tilt exp(y.t), t = T x, moves the mean by C t: keep that shift at one
        # standard deviation (t^T C t = 1) so that the importance weights stay usable.
        x = x / np.sqrt((T @ x) @ C_target @ (T @ x))
        y = rng.standard_normal((n, C_target.shape[0])) @ np.linalg.cholesky(C_target).T
        logw = y @ (T @ x)
        w = np.exp(logw - logw.max())
        w /= w.sum()
        n_eff = 1.0 / np.sum(w**2)
        mean = w @ y
        cov = (y - mean).T @ ((y - mean) * w[:, None])
        se_mean = np.sqrt(np.diag(cov) / n_eff)
        assert np.all(np.abs(mean - M_map @ x) <= 5 * se_mean)
        assert np.max(np.abs(cov - S_model)) <= 5 * np.sqrt(2 / n_eff) * np.max(np.abs(S_model))


# --------------------------------------------------------------------------
# Checks added by mutation testing (docs/mutation.md): each compares a value
# with an independent computation (hand formula, another algorithm, a known
# special case), never with the implementation restated.
# --------------------------------------------------------------------------
def _spd(rng, n, cond=10.0):
    """Random SPD matrix with eigenvalues in [1, cond] (condition number <= cond)."""
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    S = (Q * np.geomspace(1.0, cond, n)) @ Q.T
    return 0.5 * (S + S.T)


def _orthonormal(rng, n, r):
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return Q[:, :r]


# Every check below runs on matrices of condition <= 10 and size <= 4: a correct
# float64 pipeline of a few factorisations is accurate to ~1e3 eps ~ 2e-13; the
# tolerance 1e-10 keeps a margin of 500 and any wrong formula misses by O(0.1).
TOL = 1e-10


def test_joint_covariance_realises_the_prescribed_directions():
    # K = C_uu^{-1/2} C_uv C_vv^{-1/2} of the built covariance must be the U diag(sigma) V^T
    # it was built from, with the whitening done independently (Schur sqrtm), and the
    # library's own whitened_cross_covariance / canonical_directions must agree.
    rng = np.random.default_rng(11)
    for n_u, n_v, r in ((3, 2, 2), (2, 4, 2), (4, 3, 1)):
        C_uu, C_vv = _spd(rng, n_u), _spd(rng, n_v)
        U, V = _orthonormal(rng, n_u, n_u), _orthonormal(rng, n_v, n_v)
        sigma = np.array([0.9, 0.4])[:r]
        cov = gaussian.joint_covariance(C_uu, C_vv, sigma, U, V)
        # only the first r columns matter: (n, r) matrices give the same covariance
        np.testing.assert_array_equal(gaussian.joint_covariance(C_uu, C_vv, sigma, U[:, :r], V[:, :r]), cov)
        np.testing.assert_array_equal(cov[:n_u, :n_u], C_uu)
        np.testing.assert_array_equal(cov[n_u:, n_u:], C_vv)
        np.testing.assert_array_equal(cov, cov.T)
        target = (U[:, :r] * sigma) @ V[:, :r].T
        K_ref = ref.inv_sqrtm(C_uu) @ cov[:n_u, n_u:] @ ref.inv_sqrtm(C_vv)
        np.testing.assert_allclose(K_ref, target, atol=TOL)
        np.testing.assert_allclose(gaussian.whitened_cross_covariance(cov, n_u), target, atol=TOL)
        Uk, s, Vt = gaussian.canonical_directions(cov, n_u)
        k = min(n_u, n_v)
        # documented shapes: U (n_u, k), sigma (k,), Vt (k, n_v)
        assert Uk.shape == (n_u, k) and s.shape == (k,) and Vt.shape == (k, n_v)
        np.testing.assert_allclose(s, np.r_[sigma, np.zeros(k - r)], atol=TOL)
        np.testing.assert_allclose((Uk * s) @ Vt, target, atol=TOL)
        # the top directions are the prescribed ones, up to a common sign per pair
        for i in range(r):
            sign = np.sign(Uk[:, i] @ U[:, i])
            np.testing.assert_allclose(Uk[:, i], sign * U[:, i], atol=TOL)
            np.testing.assert_allclose(Vt[i], sign * V[:, i], atol=TOL)


def test_joint_covariance_default_directions_are_coordinate_axes():
    # Omitted U, V: "identity-like", so with identity marginals C_uv = diag(sigma) padded.
    cov = gaussian.joint_covariance(np.eye(3), np.eye(2), [0.7, 0.2])
    np.testing.assert_array_equal(cov[:3, 3:], [[0.7, 0.0], [0.0, 0.2], [0.0, 0.0]])
    # and fewer correlations than min(n_u, n_v) leave the others zero
    cov = gaussian.joint_covariance(np.diag([4.0, 1.0]), np.diag([9.0, 1.0]), [0.5])
    np.testing.assert_allclose(cov[:2, 2:], [[0.5 * 2 * 3, 0.0], [0.0, 0.0]], rtol=1e-15)


@pytest.mark.parametrize("bad", [
    dict(sigma=[0.5, 0.4, 0.3]),          # more correlations than min(n_u, n_v) = 2
    dict(sigma=[-0.1]),
    dict(sigma=[1.0]),
    dict(sigma=[0.5], U=np.ones((3, 1))),  # columns not orthonormal
    dict(sigma=[0.5, 0.4], V=np.eye(2)[:, :1]),  # fewer columns than correlations
    dict(sigma=[0.5], U=np.eye(2)),       # wrong number of rows
])
def test_joint_covariance_rejects_what_its_docstring_excludes(bad):
    kw = dict(bad)
    sigma = kw.pop("sigma")
    name = "sigma" if not kw else next(iter(kw))
    with pytest.raises(InvalidInputError, match=rf"^{name}="):
        gaussian.joint_covariance(np.eye(3), np.eye(2), sigma, **kw)


def test_joint_covariance_rejects_singular_marginal():
    with pytest.raises(InvalidInputError, match="C_vv"):
        gaussian.joint_covariance(np.eye(2), np.array([[1.0, 1.0], [1.0, 1.0]]), [0.5])


def test_covariance_inputs_follow_the_one_positive_definiteness_rule():
    # Marginals, S, S1, S2 (and their batches) are judged by numerics.as_covariance's rule
    # (w_min > 100 n eps w_max) without the conditioning rule; fixtures checked exactly in
    # test_validation to sit far from it.  Refused: exactly singular or indefinite; accepted:
    # the ill-conditioned ILL_CONDITIONED (341 n eps), with finite results (its square roots
    # are real whatever the rounding).
    from .test_validation import ILL_CONDITIONED, INDEFINITE_TINY, SINGULAR, SINGULAR_DENSE

    z4 = np.zeros(4)
    for bad in (SINGULAR_DENSE, INDEFINITE_TINY):
        calls = [("C_uu", lambda: gaussian.joint_covariance(bad, np.eye(2), [0.5])),
                 ("C_vv", lambda: gaussian.joint_covariance(np.eye(2), bad, [0.5])),
                 ("S", lambda: gaussian.gaussian_entropy(bad)),
                 ("S1", lambda: gaussian.gaussian_kl(z4, bad, z4, np.eye(4))),
                 ("S2", lambda: gaussian.gaussian_kl(z4, np.eye(4), z4, bad)),
                 ("S2", lambda: gaussian.gaussian_kl_batch(z4[None], np.eye(4)[None], z4[None], bad[None]))]
        for name, call in calls:
            with pytest.raises(InvalidInputError, match=rf"^{name}=.*singular or indefinite"):
                call()
    with pytest.raises(InvalidInputError, match="^C_vv=.*singular or indefinite"):
        gaussian.joint_covariance([[1.0]], SINGULAR, 0)
    cov = gaussian.joint_covariance(ILL_CONDITIONED, np.eye(2), [0.5, 0.3])
    assert np.all(np.isfinite(cov))
    np.testing.assert_array_equal(cov[:4, :4], ILL_CONDITIONED)
    assert np.isfinite(gaussian.gaussian_entropy(ILL_CONDITIONED))
    assert np.isfinite(gaussian.gaussian_kl(z4, ILL_CONDITIONED, z4, np.eye(4)))
    assert np.all(np.isfinite(gaussian.gaussian_kl_batch(z4[None], ILL_CONDITIONED[None], z4[None],
                                                         np.eye(4)[None])))


def test_gaussian_kl_matches_hand_formula_with_means():
    # 1-d: KL(N(m1, s1) || N(m2, s2)) = 1/2 (s1/s2 - 1 + (m2 - m1)^2/s2 + log(s2/s1)).
    # n-d: for S1, S2 diagonal in a common rotated basis Q the KL is the sum of the 1-d
    # ones of the rotated means (KL is invariant under the common map x -> Q x).
    def kl1(m1, s1, m2, s2):
        return 0.5 * (s1 / s2 - 1 + (m2 - m1) ** 2 / s2 + np.log(s2 / s1))

    assert gaussian.gaussian_kl([0.3], [[2.0]], [-1.2], [[0.5]]) == pytest.approx(
        kl1(0.3, 2.0, -1.2, 0.5), rel=1e-14)
    rng = np.random.default_rng(12)
    Q = _orthonormal(rng, 3, 3)
    d1, d2 = np.array([0.5, 2.0, 1.0]), np.array([1.5, 0.3, 4.0])
    a1, a2 = rng.standard_normal(3), rng.standard_normal(3)
    expected = sum(kl1(a1[i], d1[i], a2[i], d2[i]) for i in range(3))
    m1, m2 = Q @ a1, Q @ a2
    S1, S2 = (Q * d1) @ Q.T, (Q * d2) @ Q.T
    # condition of S2 ~ 13: ~1e2 eps relative accuracy; 1e-12 keeps a margin
    assert gaussian.gaussian_kl(m1, S1, m2, S2) == pytest.approx(expected, rel=1e-12)
    got = gaussian.gaussian_kl_batch(np.stack([m1, m2]), np.stack([S1, S2]),
                                     np.stack([m2, m1]), np.stack([S2, S1]))
    back = sum(kl1(a2[i], d2[i], a1[i], d1[i]) for i in range(3))
    assert got.shape == (2,)
    np.testing.assert_allclose(got, [expected, back], rtol=1e-12)


def test_gaussian_kl_batch_rejects_bad_batches():
    S = np.eye(2)[None]
    m = np.zeros((1, 2))
    with pytest.raises(InvalidInputError, match="S1"):
        gaussian.gaussian_kl_batch(m, np.array([[[1.0, 0.5], [0.0, 1.0]]]), m, S)  # not symmetric
    with pytest.raises(InvalidInputError, match="S2"):
        gaussian.gaussian_kl_batch(m, S, m, np.array([[[1.0, 2.0], [2.0, 1.0]]]))  # indefinite
    with pytest.raises(InvalidInputError, match="m2"):
        gaussian.gaussian_kl_batch(m, S, np.zeros((1, 3)), S)
    with pytest.raises(InvalidInputError, match="m1"):
        gaussian.gaussian_kl_batch(np.zeros(2), S, m, S)
    with pytest.raises(InvalidInputError, match="m1"):
        gaussian.gaussian_kl_batch(np.zeros((1, 0)), np.zeros((1, 0, 0)), np.zeros((1, 0)),
                                   np.zeros((1, 0, 0)))


def test_gaussian_entropy_hand_formula():
    # h(N(0, S)) = 1/2 sum_i log(2 pi e lambda_i), lambda the eigenvalues of S
    rng = np.random.default_rng(13)
    S = _spd(rng, 3)
    lam = np.linalg.eigvalsh(S)
    assert gaussian.gaussian_entropy(S) == pytest.approx(0.5 * np.sum(np.log(2 * np.pi * np.e * lam)),
                                                         rel=1e-13)
    assert gaussian.gaussian_entropy([[1.0]]) == pytest.approx(0.5 * np.log(2 * np.pi * np.e), rel=1e-15)


def test_true_conditionals_from_the_precision_matrix():
    # Schur complements read off the precision P = C^{-1}: S_v = P_vv^{-1},
    # M_v = -P_vv^{-1} P_vu (and symmetrically) -- another route than C_uu^{-1} C_uv.
    rng = np.random.default_rng(14)
    m = random_gaussian_model(rng, 3, 2)
    P = np.linalg.inv(m.cov)
    P_uu, P_uv, P_vv = P[:3, :3], P[:3, 3:], P[3:, 3:]
    M_v, S_v, M_u, S_u = gaussian.true_conditionals(m.cov, 3)
    np.testing.assert_allclose(S_v, np.linalg.inv(P_vv), atol=TOL)
    np.testing.assert_allclose(S_u, np.linalg.inv(P_uu), atol=TOL)
    np.testing.assert_allclose(M_v, -np.linalg.solve(P_vv, P_uv.T), atol=TOL)
    np.testing.assert_allclose(M_u, -np.linalg.solve(P_uu, P_uv), atol=TOL)
    np.testing.assert_array_equal(S_v, S_v.T)
    np.testing.assert_array_equal(S_u, S_u.T)


def test_whitened_bilinear_and_clip_loss_identity():
    # B = C_uu^{1/2} A C_vv^{1/2} with Schur square roots, and the documented identity
    # L_clip(A) = 1/2 |B - K|^2 - 1/2 |K|^2 (MATH.md §4.1) with K from the same sqrtm.
    import scipy.linalg as sla

    rng = np.random.default_rng(15)
    m = random_gaussian_model(rng, 2, 3)
    A = rng.standard_normal((2, 3))
    C_uu, C_uv, C_vv = gaussian.split_covariance(m.cov, 2)
    B_ref = np.real(sla.sqrtm(C_uu)) @ A @ np.real(sla.sqrtm(C_vv))
    B = gaussian.whitened_bilinear(A, m.cov, 2)
    np.testing.assert_allclose(B, B_ref, atol=TOL)
    K = ref.inv_sqrtm(C_uu) @ C_uv @ ref.inv_sqrtm(C_vv)
    assert gaussian.population_clip_loss(A, m.cov, 2) == pytest.approx(
        0.5 * np.sum((B_ref - K) ** 2) - 0.5 * np.sum(K**2), abs=TOL)
    # the gradient by central differences (step 1e-5: truncation ~1e-10 * third derivative 0)
    G = gaussian.population_clip_loss_grad(A, m.cov, 2)
    E = np.zeros_like(A)
    E[1, 2] = 1e-5
    fd = (gaussian.population_clip_loss(A + E, m.cov, 2) - gaussian.population_clip_loss(A - E, m.cov, 2)) / 2e-5
    assert G[1, 2] == pytest.approx(fd, abs=1e-8)


def test_lowrank_minimum_special_case_and_minimizer_rank():
    # joint_covariance with identity marginals: K = diag(sigma), so A* = diag(sigma) truncated
    # and min L_clip = -1/2 sum_{i <= n_e} sigma_i^2 by hand.
    sigma = [0.8, 0.5, 0.3]
    cov = gaussian.joint_covariance(np.eye(3), np.eye(4), sigma)
    A1 = gaussian.lowrank_minimizer(cov, 3, 1)
    np.testing.assert_allclose(A1, np.pad([[0.8]], ((0, 2), (0, 3))), atol=1e-14)
    A2 = gaussian.lowrank_minimizer(cov, 3, 2)
    np.testing.assert_allclose(A2, np.diag([0.8, 0.5, 0.0, 0.0])[:3], atol=1e-14)
    assert gaussian.lowrank_minimum(cov, 3, 2) == pytest.approx(-0.5 * (0.64 + 0.25), rel=1e-14)
    assert gaussian.population_clip_loss(A2, cov, 3) == pytest.approx(-0.5 * (0.64 + 0.25), rel=1e-14)
    np.testing.assert_allclose(gaussian.canonical_correlations(cov, 3), sigma, rtol=1e-15)
    assert gaussian.mutual_information(cov, 3) == pytest.approx(
        -0.5 * np.sum(np.log1p(-np.square(sigma))), rel=1e-13)


def _gauss_hermite_2d(f, cov, n=80):
    """E f(u, v) for (u, v) ~ N(0, cov) by an n x n Gauss-Hermite product rule."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / np.sqrt(2 * np.pi)
    L = np.linalg.cholesky(cov)
    Z1, Z2 = np.meshgrid(x, x, indexing="ij")
    u = L[0, 0] * Z1
    v = L[1, 0] * Z1 + L[1, 1] * Z2
    return float(np.sum(np.outer(w, w) * f(u, v)))


@pytest.mark.parametrize("a", [0.0, 0.25, -0.4])
def test_batch_loss_bias_1d_by_quadrature(a):
    # b = 1/2 (b_row + b_col) with (MATH.md Proposition N1), for n_u = n_v = 1:
    # b_row = E exp(f - q(u)/2) - 1/2 E_u exp(q(u)) - 1/2, q(u) = a^2 u^2 c_vv,
    # using E_{v'} e^{2 a u v'} = e^{2 a^2 u^2 c_vv}.  The expectations are computed by
    # 2-d Gauss-Hermite quadrature (80 points; the integrands are smooth with Gaussian
    # tails |a|^2 c <= 0.2, so the rule is accurate to ~1e-12), not by the determinant
    # formula of the library.
    cov = np.array([[1.3, 0.6], [0.6, 0.8]])
    c_uu, c_vv = cov[0, 0], cov[1, 1]
    row = (_gauss_hermite_2d(lambda u, v: np.exp(a * u * v - 0.5 * a**2 * u**2 * c_vv), cov)
           - 0.5 * _gauss_hermite_2d(lambda u, v: np.exp(a**2 * u**2 * c_vv), cov) - 0.5)
    col = (_gauss_hermite_2d(lambda u, v: np.exp(a * u * v - 0.5 * a**2 * v**2 * c_uu), cov)
           - 0.5 * _gauss_hermite_2d(lambda u, v: np.exp(a**2 * v**2 * c_uu), cov) - 0.5)
    assert gaussian.batch_loss_bias([[a]], cov, 1) == pytest.approx(0.5 * (row + col), abs=1e-9)


def test_batch_loss_bias_diverges_to_inf():
    # 1-d: E_u exp(a^2 c_vv u^2) is infinite once 2 a^2 c_vv c_uu >= 1 (here a^2 >= 1/2);
    # the docstring's answer is inf (it was -inf, and nan when both terms diverged).
    cov = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert np.isfinite(gaussian.batch_loss_bias([[0.6]], cov, 1))
    for a in (0.72, 0.8, 2.0):
        assert gaussian.batch_loss_bias([[a]], cov, 1) == np.inf
    # 2-d, A = 2 I, independent coordinates: E exp(4 |u|^2) diverges in both directions, an
    # even number of them, so det(I - QC) > 0 -- it used to return a finite 3.595...
    cov = gaussian.joint_covariance(np.eye(2), np.eye(2), [0.3, 0.2])
    assert gaussian.batch_loss_bias(2 * np.eye(2), cov, 2) == np.inf
    # A = 0: every logit is 0, L_N = log N exactly, so b = 0
    assert gaussian.batch_loss_bias(np.zeros((2, 2)), cov, 2) == 0.0


def test_overflow_is_an_error_naming_the_argument_without_warnings():
    # Overflowing input is reported as InvalidInputError naming the culprit, and the
    # intermediate overflow raises no RuntimeWarning (warnings are errors here).
    import warnings

    S = np.eye(2)
    rng = np.random.default_rng(16)
    m = random_gaussian_model(rng, 2, 2)
    A = np.full((2, 2), 1e200)
    calls = [
        ("S2", lambda: gaussian.gaussian_kl([0.0, 0.0], 1e300 * S, [0.0, 0.0], 1e-300 * S)),
        ("m2", lambda: gaussian.gaussian_kl([0.0, 0.0], S, [1e300, 1e300], 1e-10 * S)),
        ("S2", lambda: gaussian.gaussian_kl_batch(np.zeros((1, 2)), 1e300 * S[None], np.zeros((1, 2)),
                                                  1e-300 * S[None])),
        ("m2", lambda: gaussian.gaussian_kl_batch(np.zeros((1, 2)), S[None], np.full((1, 2), 1e300),
                                                  1e-10 * S[None])),
        ("S1", lambda: gaussian.gaussian_kl_batch(np.zeros((1, 2)), np.array([[[1e308, -1e308], [1e308, 1e308]]]),
                                                  np.zeros((1, 2)), S[None])),
        ("S2", lambda: gaussian.gaussian_kl([0.0], [[1.0]], [0.0, 0.0], S)),
    ] + [("A", lambda f=f: f(A, m.cov, 2)) for f in (
        gaussian.population_clip_loss, gaussian.expected_kl_terms, gaussian.conditional_loss)] + [
        # linear in A: overflow needs entries near the float64 maximum
        ("A", lambda f=f: f(1e308 * np.ones((2, 2)), m.cov, 2)) for f in (
            gaussian.bilinear_model_conditionals, gaussian.population_clip_loss_grad)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, call in calls:
            with pytest.raises(InvalidInputError, match=rf"^{name}="):
                call()


def test_kl_and_entropy_errors_name_the_argument():
    # The documented contract: InvalidInputError whose message starts with "<argument>=".
    S, m = np.eye(2), np.zeros(2)
    bad_S = np.array([[1.0, 2.0], [2.0, 1.0]])  # symmetric, indefinite
    Sb, mb = S[None], m[None]
    cases = [
        ("S1", lambda: gaussian.gaussian_kl(m, bad_S, m, S)),
        ("S2", lambda: gaussian.gaussian_kl(m, S, m, bad_S)),
        ("S2", lambda: gaussian.gaussian_kl(m, S, m, np.eye(3))),
        ("m1", lambda: gaussian.gaussian_kl(np.zeros(3), S, m, S)),
        ("m1", lambda: gaussian.gaussian_kl([np.nan, 0.0], S, m, S)),
        ("m1", lambda: gaussian.gaussian_kl(np.zeros((2, 1)), S, m, S)),
        ("m2", lambda: gaussian.gaussian_kl(m, S, np.zeros(1), S)),
        ("S", lambda: gaussian.gaussian_entropy(bad_S)),
        ("S", lambda: gaussian.gaussian_entropy(np.zeros((0, 0)))),
        ("m1", lambda: gaussian.gaussian_kl_batch(m, Sb, mb, Sb)),
        ("m1", lambda: gaussian.gaussian_kl_batch([[np.nan, 0.0]], Sb, mb, Sb)),
        ("m2", lambda: gaussian.gaussian_kl_batch(mb, Sb, m, Sb)),
        ("m2", lambda: gaussian.gaussian_kl_batch(mb, Sb, np.zeros((2, 2)), Sb)),
        ("S1", lambda: gaussian.gaussian_kl_batch(mb, S, mb, Sb)),
        ("S1", lambda: gaussian.gaussian_kl_batch(mb, np.eye(3)[None], mb, Sb)),
        ("S1", lambda: gaussian.gaussian_kl_batch(mb, bad_S[None], mb, Sb)),
        ("S2", lambda: gaussian.gaussian_kl_batch(mb, Sb, mb, S)),
        ("S2", lambda: gaussian.gaussian_kl_batch(mb, Sb, mb, np.eye(3)[None])),
        ("S2", lambda: gaussian.gaussian_kl_batch(mb, Sb, mb, np.array([[[1.0, 0.5], [0.0, 1.0]]]))),
    ]
    for name, call in cases:
        with pytest.raises(InvalidInputError, match=rf"^{name}="):
            call()
    # integer and float32 input is accepted and computed in float64
    assert gaussian.gaussian_kl([0, 0], [[1, 0], [0, 1]], [1, 0], [[2, 0], [0, 2]]) == pytest.approx(
        0.5 * (2 * 0.5 - 2 + 0.5 + 2 * np.log(2.0)), rel=1e-15)
    got = gaussian.gaussian_kl_batch(np.zeros((1, 1), np.float32), np.ones((1, 1, 1), np.float32),
                                     np.full((1, 1), 3, np.int64), np.full((1, 1, 1), 4.0))
    assert got.dtype == np.float64
    assert got[0] == pytest.approx(0.5 * (1 / 4 - 1 + 9 / 4 + np.log(4.0)), rel=1e-15)


def test_kl_batch_symmetry_tolerance_is_per_matrix_and_64_eps():
    # Documented (as numerics.as_covariance): |S - S^T| <= 64 eps max|S_ij|, per matrix.
    # With max|S_ij| = 2 the bound is 128 eps: 1 + 127 eps off the transpose passes,
    # 1 + 129 eps fails (both exactly representable: the spacing at 1 is eps).
    eps = np.finfo(float).eps
    m = np.zeros((1, 2))
    S = np.eye(2)[None]

    def S_off(k):
        return np.array([[[2.0, 1.0 + k * eps], [1.0, 2.0]]])

    ok = gaussian.gaussian_kl_batch(m, S_off(127), m, S)
    # it is the symmetrised matrix that is used: KL(N(0, S1) || N(0, I)) by hand
    S1 = 0.5 * (S_off(127)[0] + S_off(127)[0].T)
    assert ok[0] == pytest.approx(0.5 * (np.trace(S1) - 2 - np.log(np.linalg.det(S1))), rel=1e-14)
    with pytest.raises(InvalidInputError, match="^S1="):
        gaussian.gaussian_kl_batch(m, S_off(129), m, S)
    with pytest.raises(InvalidInputError, match="^S2="):
        gaussian.gaussian_kl_batch(m, S, m, S_off(129))
    # per matrix: a huge symmetric neighbour in the batch does not widen the tolerance
    m2 = np.zeros((2, 2))
    with pytest.raises(InvalidInputError, match="^S1="):
        gaussian.gaussian_kl_batch(m2, np.concatenate([1e10 * S, S_off(129)]), m2, np.concatenate([S, S]))


def test_joint_covariance_errors_name_the_argument():
    # Each marginal and sigma is named in its error; a marginal with an eigenvalue exactly
    # 0 (diag(1, 0)) is not positive definite even though Cholesky-free code could use it.
    cases = [
        ("C_uu", lambda: gaussian.joint_covariance(np.diag([1.0, 0.0]), np.eye(2), [0.5])),
        ("C_vv", lambda: gaussian.joint_covariance(np.eye(2), np.diag([1.0, 0.0]), [0.5])),
        ("C_uu", lambda: gaussian.joint_covariance(np.diag([1.0, -1.0]), np.eye(2), [0.5])),
        ("sigma", lambda: gaussian.joint_covariance(np.eye(2), np.eye(2), [np.nan])),
        ("U", lambda: gaussian.joint_covariance(np.eye(2), np.eye(2), [0.5], U=[1.0, 0.0])),
        ("V", lambda: gaussian.joint_covariance(np.eye(2), np.eye(2), [0.5], V=np.full((2, 1), np.inf))),
        ("V", lambda: gaussian.joint_covariance(np.eye(2), np.eye(2), [0.5], V=[1.0, 0.0])),
        # columns orthogonal to atol 1e-10 (np.allclose; its rtol only widens the diagonal):
        # an inner product of 1e-9 between two columns is refused
        ("U", lambda: gaussian.joint_covariance(np.eye(2), np.eye(2), [0.5, 0.4], U=[[1.0, 1e-9], [0.0, 1.0]])),
        ("V", lambda: gaussian.joint_covariance(np.eye(2), np.eye(2), [0.5, 0.4], V=[[1.0, 1e-9], [0.0, 1.0]])),
    ]
    for name, call in cases:
        with pytest.raises(InvalidInputError, match=rf"^{name}="):
            call()
    # non-square-looking shapes are fine: n_u = 3 rows of C_uu, n_v = 1
    cov = gaussian.joint_covariance(np.diag([4.0, 1.0, 1.0]), [[9.0]], [0.5])
    assert cov.shape == (4, 4)
    assert cov[0, 3] == pytest.approx(0.5 * 2 * 3, rel=1e-15)


def test_mixed_sign_overflow_is_an_error_without_warnings():
    # Huge entries of both signs: products overflow to +-inf and their sums are inf - inf
    # (NumPy's "invalid value"); still one InvalidInputError naming A, and no warning.
    import warnings

    m = random_gaussian_model(np.random.default_rng(17), 2, 2)
    A = 1e308 * np.array([[1.0, -1.0], [-1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in (gaussian.bilinear_model_conditionals, gaussian.population_clip_loss,
                  gaussian.population_clip_loss_grad, gaussian.expected_kl_terms,
                  gaussian.conditional_loss):
            with pytest.raises(InvalidInputError, match="^A="):
                f(A, m.cov, 2)


def test_latent_dimension_is_bounded_by_the_smaller_side():
    # n_e <= min(n_u, n_v) (Proposition G1): with n_u = 3 > n_v = 2, n_e = 3 is an error
    # naming n_e, not a silent truncation to rank 2
    cov = gaussian.joint_covariance(np.eye(3), np.eye(2), [0.8, 0.5])
    for f in (gaussian.lowrank_minimizer, gaussian.lowrank_minimum):
        with pytest.raises(InvalidInputError, match="^n_e="):
            f(cov, 3, 3)
        assert np.all(np.isfinite(f(cov, 3, 2)))
    with pytest.raises(InvalidInputError, match="^m1="):
        gaussian.gaussian_kl_batch(np.zeros((1, 0)), np.zeros((1, 0, 0)), np.zeros((1, 0)),
                                   np.zeros((1, 0, 0)))
