"""Unit tests of proofs_checks/claims.py: the subspace margin against principal angles
computed by SciPy, and which statistic and target each claim dispatches to (against the
functions of numerics.fit_statistics called directly, and against closed forms)."""
import math

import numpy as np
import pytest
from scipy.linalg import orth, sqrtm, subspace_angles

from numerics import fit_statistics as fs
from numerics.encoders import LinearEncoders, population_minimizer
from numerics.models import random_gaussian_model
from proofs_checks import claims


def _projector(M):
    """Orthogonal projector onto the column space of M, by SciPy's orth (an SVD), not by
    the QR of numerics.fit_statistics.projector."""
    Q = orth(M)
    return Q @ Q.T


def _model(rng, n_u=2, n_v=3, n_e=1):
    return random_gaussian_model(rng, n_u, n_v, n_e=n_e, max_correlation=0.8, min_gap=0.25,
                                 max_condition=4.0)


# --------------------------------------------------------------------------
# subspace_margin
# --------------------------------------------------------------------------
def test_subspace_margin_formula_and_monotonicity():
    assert claims.subspace_margin(0.0) == 0.0
    assert claims.subspace_margin(math.pi / 2) == pytest.approx(math.sqrt(2), rel=1e-15)
    assert claims.subspace_margin(claims.DEFAULT_SUBSPACE_MARGIN) == pytest.approx(
        math.sqrt(2) * math.sin(0.1), rel=1e-15)
    grid = np.linspace(0, math.pi / 2, 50)
    values = [claims.subspace_margin(t) for t in grid]
    assert all(isinstance(v, float) for v in values)
    assert np.all(np.diff(values) > 0)  # a larger angle allows a larger distance


@pytest.mark.parametrize("n,k", [(2, 1), (5, 1), (5, 2), (6, 3), (8, 4)])
def test_subspace_margin_bounds_every_principal_angle(n, k):
    r"""For rank-k projectors |P - Q|_F^2 = 2 sum sin^2 theta_i >= 2 sin^2 theta_max, so a
    distance below subspace_margin(m) keeps every angle below m.  Random pairs from nearly
    equal to unrelated; the identity is exact up to rounding (1e-12 on O(1) numbers)."""
    rng = np.random.default_rng(1000 + 10 * n + k)
    for _ in range(100):
        A = rng.standard_normal((n, k))
        B = A + rng.uniform(0, 2.0) * rng.standard_normal((n, k))
        theta = subspace_angles(A, B)
        dist = float(np.linalg.norm(_projector(A) - _projector(B)))
        assert dist == pytest.approx(math.sqrt(2 * np.sum(np.sin(theta) ** 2)), abs=1e-12)
        assert dist >= claims.subspace_margin(float(np.max(theta))) - 1e-12
        m = rng.uniform(0.01, 1.5)
        if dist < claims.subspace_margin(m):
            assert np.max(theta) < m + 1e-12


def test_subspace_margin_is_tight_for_lines():
    """For one-dimensional subspaces |P - Q|_F = sqrt(2) sin(theta) exactly: the margin
    is the largest distance that keeps the angle below m, no more conservative."""
    for theta in (0.05, 0.1, 0.7, 1.3):
        a, b = np.array([[1.0], [0.0]]), np.array([[math.cos(theta)], [math.sin(theta)]])
        dist = np.linalg.norm(a @ a.T - b @ b.T)
        assert dist == pytest.approx(claims.subspace_margin(theta), rel=1e-14)


# --------------------------------------------------------------------------
# which statistic and which target each claim uses
# --------------------------------------------------------------------------
@pytest.mark.parametrize("similarity", ["dot", "l2"])
@pytest.mark.parametrize("direction", claims.DIRECTIONS)
def test_statistic_dispatch(similarity, direction):
    rng = np.random.default_rng(3)
    fam = LinearEncoders(_model(rng, 2, 3, 2), similarity)
    x = rng.standard_normal(fam.size)
    want = {
        "same-minimizers-as-clip": fs.invariant_statistic(fam, x),
        "same-subspace-as-clip": fs.subspace_statistic(fam, x),
        "matches-conditional-means": fs.conditional_statistic(fam, x, direction, False),
        "matches-conditionals": fs.conditional_statistic(fam, x, direction, True),
    }
    assert set(want) == set(claims.CLAIMS)
    got = {c: claims.statistic(fam, x, c, direction) for c in claims.CLAIMS}
    for c in claims.CLAIMS:
        np.testing.assert_array_equal(got[c], want[c], err_msg=c)
    # the four statistics are different vectors: the dispatch is not vacuous
    sizes = {c: v.size for c, v in got.items()}
    assert sizes["matches-conditionals"] > sizes["matches-conditional-means"]
    assert not np.allclose(got["same-minimizers-as-clip"][:4], got["same-subspace-as-clip"][:4])


def test_statistics_against_hand_formulas():
    """The dispatched statistics are what the claims say, computed here with SciPy's sqrtm
    and orth: the whitened bilinear C_uu^1/2 G_u^T G_v C_vv^1/2, and the projectors onto
    the whitened row spaces (rounding only: 1e-10)."""
    rng = np.random.default_rng(4)
    model = _model(rng, 3, 2, 1)
    fam = LinearEncoders(model, "dot")
    x = rng.standard_normal(fam.size)
    G_u, G_v = x[:3].reshape(1, 3), x[3:].reshape(1, 2)
    C = model.cov
    Ru, Rv = np.real(sqrtm(C[:3, :3])), np.real(sqrtm(C[3:, 3:]))
    np.testing.assert_allclose(claims.statistic(fam, x, "same-minimizers-as-clip", "both"),
                               (Ru @ G_u.T @ G_v @ Rv).ravel(), atol=1e-10)
    want = np.concatenate([_projector(Ru @ G_u.T).ravel(), _projector(Rv @ G_v.T).ravel()])
    np.testing.assert_allclose(claims.statistic(fam, x, "same-subspace-as-clip", "both"), want, atol=1e-10)
    # the subspace statistic ignores the scale and the sign of the encoders; the invariant does not
    np.testing.assert_allclose(claims.statistic(fam, -3.0 * x, "same-subspace-as-clip", "both"), want,
                               atol=1e-10)
    assert not np.allclose(claims.statistic(fam, 2.0 * x, "same-minimizers-as-clip", "both"),
                           (Ru @ G_u.T @ G_v @ Rv).ravel())


@pytest.mark.parametrize("direction", claims.DIRECTIONS)
def test_target_dispatch(direction):
    rng = np.random.default_rng(5)
    fam = LinearEncoders(_model(rng, 2, 3, 1), "dot")
    control_stat = rng.standard_normal(7)
    for c in ("same-minimizers-as-clip", "same-subspace-as-clip"):
        assert claims.target(fam, c, direction, control_stat) is control_stat
    np.testing.assert_array_equal(claims.target(fam, "matches-conditional-means", direction, control_stat),
                                  fs.projected_conditional_target(fam, direction, False))
    np.testing.assert_array_equal(claims.target(fam, "matches-conditionals", direction, control_stat),
                                  fs.projected_conditional_target(fam, direction, True))


@pytest.mark.parametrize("shape", [(2, 2, 1), (3, 3, 1), (2, 3, 2)])
def test_clip_minimiser_meets_the_conditional_targets_as_propositions_g2_g3_say(shape):
    r"""Under dot similarity CLIP's population minimiser has exactly the projected
    conditional means (Proposition G2: distance ~1e-16), and misses the conditional
    covariances by the projected part :math:`V_k\Sigma_k^2V_k^T` of the whitened
    covariance, whose Frobenius norm is :math:`\sqrt{\sum_{k\le n_e}\sigma_k^4}` per
    direction (the bilinear model's conditional covariance is C_vv whatever the encoders)."""
    rng = np.random.default_rng(6)
    model = _model(rng, *shape)
    fam = LinearEncoders(model, "dot")
    x = population_minimizer(fam)
    s = np.asarray(model.sigma)[: model.n_e]
    per_direction = math.sqrt(float(np.sum(s**4)))
    for direction, copies in (("v|u", 1), ("u|v", 1), ("both", 2)):
        stat = claims.statistic(fam, x, "matches-conditional-means", direction)
        tgt = claims.target(fam, "matches-conditional-means", direction, None)
        assert np.linalg.norm(stat - tgt) < 1e-12
        stat = claims.statistic(fam, x, "matches-conditionals", direction)
        tgt = claims.target(fam, "matches-conditionals", direction, None)
        assert np.linalg.norm(stat - tgt) == pytest.approx(math.sqrt(copies) * per_direction, rel=1e-10)


def test_cosine_dispatch():
    rng = np.random.default_rng(7)
    model = _model(rng, 2, 2, 2)
    fam = LinearEncoders(model, "cosine")
    probes = fs.Probes(model, np.random.default_rng(8))
    x = rng.standard_normal(fam.size)
    np.testing.assert_array_equal(claims.cosine_statistic(fam, x, 2.5, "same-subspace-as-clip", "both", probes),
                                  fs.subspace_statistic(fam, x))
    sim = claims.cosine_statistic(fam, x, 2.5, "same-minimizers-as-clip", "both", probes)
    np.testing.assert_array_equal(sim, fs.cosine_similarity_statistic(fam, x, 2.5, probes))
    # by hand: 2.5 cos(G_u u_i, G_v v_j) on the probe pairs, centred
    A, B = probes.U @ x[:4].reshape(2, 2).T, probes.V @ x[4:].reshape(2, 2).T
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    F = 2.5 * A @ B.T
    np.testing.assert_allclose(sim, (F - F.mean()).ravel(), atol=1e-12)
    for direction in claims.DIRECTIONS:
        for c, cov in (("matches-conditional-means", False), ("matches-conditionals", True)):
            np.testing.assert_array_equal(
                claims.cosine_statistic(fam, x, 2.5, c, direction, probes),
                fs.cosine_conditional_statistic(fam, x, 2.5, direction, cov, probes))
            np.testing.assert_array_equal(claims.cosine_target(fam, c, direction, probes),
                                          fs.true_conditional_statistic(fam, direction, cov, probes))
