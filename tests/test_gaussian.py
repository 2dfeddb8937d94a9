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
