"""numerics.models: the seeded generators, each against the structure its docstring promises.

Canonical correlations are recomputed here from the covariance alone (scipy's
``sqrtm`` whitening and an SVD), the marginal conditioning from eigenvalues, and
distributional claims (Haar, log-uniform, entry variances) by averages over many
draws held to 5 Monte Carlo standard errors.
"""
import math

import numpy as np
import pytest
from scipy.linalg import sqrtm

from numerics import InvalidInputError
from numerics import models as M

from . import _reference as ref


def _cond(S):
    w = np.linalg.eigvalsh(S)
    return w[-1] / w[0]


def test_random_orthogonal_is_orthogonal_and_haar():
    rng = np.random.default_rng(0)
    Q = M.random_orthogonal(rng, 4)
    np.testing.assert_allclose(Q @ Q.T, np.eye(4), atol=1e-14)
    # Haar: every entry has mean 0 and variance 1/n.  QR without the sign fix gives a
    # Q whose (0, 0) entry has one sign only (LAPACK's Householder convention).
    draws = np.array([M.random_orthogonal(rng, 3)[0, 0] for _ in range(2000)])
    se = math.sqrt(1 / 3 / 2000)
    assert abs(draws.mean()) < 5 * se
    assert abs(np.mean(draws**2) - 1 / 3) < 5 * np.std(draws**2) / math.sqrt(2000)


@pytest.mark.parametrize("n, kappa", [(1, 10.0), (2, 10.0), (4, 37.0), (5, 1.0)])
def test_random_spd_attains_its_conditioning(n, kappa):
    rng = np.random.default_rng(n)
    S = M.random_spd(rng, n, max_condition=kappa)
    np.testing.assert_array_equal(S, S.T)
    w = np.linalg.eigvalsh(S)
    assert w[0] >= 1 - 1e-12 and w[-1] <= kappa * (1 + 1e-12)
    if n > 1:  # documented: the extremes 1 and max_condition are attained
        assert w[0] == pytest.approx(1.0, rel=1e-12) and w[-1] == pytest.approx(kappa, rel=1e-12)


def test_random_spd_defaults_and_one_by_one():
    rng = np.random.default_rng(2)
    assert _cond(M.random_spd(rng, 3)) == pytest.approx(10.0, rel=1e-9)      # max_condition=10
    ones = [M.random_spd(rng, 1, max_condition=50.0)[0, 0] for _ in range(20)]
    assert all(1.0 <= x <= 50.0 for x in ones) and len(set(ones)) == 20     # drawn, not pinned to 50


def test_random_spd_eigenvalues_are_log_uniform():
    # the interior eigenvalues of a 3x3 draw are log-uniform on [1, kappa]: log w / log kappa ~ U(0, 1)
    rng = np.random.default_rng(1)
    kappa = 50.0
    mids = np.array([np.linalg.eigvalsh(M.random_spd(rng, 3, max_condition=kappa))[1] for _ in range(1500)])
    x = np.log(mids) / np.log(kappa)
    assert abs(x.mean() - 0.5) < 5 * math.sqrt(1 / 12 / 1500)
    assert abs(np.mean(x**2) - 1 / 3) < 5 * math.sqrt((1 / 5 - 1 / 9) / 1500)


@pytest.mark.parametrize("bad", [0.5, math.inf, math.nan])
def test_random_spd_rejects_a_bad_condition_number(bad):
    with pytest.raises(InvalidInputError, match="^max_condition="):
        M.random_spd(np.random.default_rng(0), 3, max_condition=bad)


@pytest.mark.parametrize("n_u, n_v, n_e, rank", [(3, 4, 2, None), (4, 3, 1, 2), (2, 2, 2, None), (3, 3, 1, 1)])
def test_random_gaussian_model_has_the_requested_canonical_structure(n_u, n_v, n_e, rank):
    rng = np.random.default_rng(n_u * 10 + n_v)
    m = M.random_gaussian_model(rng, n_u, n_v, n_e=n_e, rank=rank, max_correlation=0.8,
                                min_gap=0.2, max_condition=7.0)
    s = ref.canonical_correlations_svd(m.cov, n_u)
    k = min(n_u, n_v)
    r = k if rank is None else rank
    np.testing.assert_allclose(m.sigma, s, atol=1e-12)            # the model's own sigma
    assert s[0] == pytest.approx(0.8, abs=1e-12)                  # max_correlation attained
    assert np.all(s[r:] < 1e-12) and (r == 0 or s[r - 1] > 1e-6)  # rank of C_uv
    nxt = s[n_e] if n_e < k else 0.0
    assert s[n_e - 1] - nxt >= 0.2 - 1e-12                       # the enforced eigengap
    assert m.eigengap == pytest.approx(s[n_e - 1] - nxt, abs=1e-12)
    for block in (m.cov[:n_u, :n_u], m.cov[n_u:, n_u:]):
        assert _cond(block) == pytest.approx(7.0, rel=1e-9) if block.shape[0] > 1 else True
    assert (m.n_u, m.n_v, m.n_e) == (n_u, n_v, n_e)
    assert m.label == f"n_u={n_u} n_v={n_v} n_e={n_e} rank={r}"
    w = np.linalg.eigvalsh(m.cov)
    assert m.condition_number == pytest.approx(w[-1] / w[0], rel=1e-9)


def test_random_gaussian_model_gap_below_the_remaining_correlations():
    """With n_e < rank the correlations past n_e lie below sigma_{n_e} - min_gap, and the
    gap is at most half the largest correlation."""
    rng = np.random.default_rng(5)
    thirds = []
    for _ in range(20):
        m = M.random_gaussian_model(rng, 4, 4, n_e=2, max_correlation=0.6, min_gap=0.5)
        s = ref.canonical_correlations_svd(m.cov, 4)
        assert s[1] - s[2] >= 0.3 - 1e-12      # min(min_gap, max_correlation / 2) = 0.3
        assert np.all(s[2:] <= s[2] + 1e-12) and np.all(s >= -1e-12) and s[0] <= 0.6 + 1e-12
        thirds.append(s[2])
    assert max(thirds) > 0.15                  # the rest lie in [0, lo], lo uniform in [0, 0.6 - 0.3]


def test_random_gaussian_model_tie_and_drawn_latent_dimension():
    rng = np.random.default_rng(2)
    m = M.random_gaussian_model(rng, 3, 3, n_e=1, tie=True)
    s = ref.canonical_correlations_svd(m.cov, 3)
    assert s[0] == pytest.approx(s[1], abs=1e-12) and m.eigengap == pytest.approx(0.0, abs=1e-12)
    assert m.label.endswith(" tie")
    seen = {M.random_gaussian_model(rng, 2, 3).n_e for _ in range(40)}
    assert seen == {1, 2}                                          # drawn in 1..min(n_u, n_v)


@pytest.mark.parametrize("kwargs, name", [
    ({"rank": 0}, "rank"), ({"rank": 4}, "rank"),
    ({"max_correlation": 1.0}, "max_correlation"), ({"max_correlation": 0.0}, "max_correlation"),
    ({"n_e": 3, "tie": True}, "tie"), ({"n_e": 2, "rank": 2, "tie": True}, "tie"),
    ({"n_e": 4}, "n_e"),
])
def test_random_gaussian_model_rejects_bad_arguments(kwargs, name):
    with pytest.raises(InvalidInputError, match=f"^{name}="):
        M.random_gaussian_model(np.random.default_rng(0), 3, 3, **kwargs)


def test_default_models_follow_their_documented_recipe():
    models = M.default_models(seed=3, cases=24, max_dim=4)
    assert len(models) == 24
    for i, m in enumerate(models):
        s = ref.canonical_correlations_svd(m.cov, m.n_u)
        k = min(m.n_u, m.n_v)
        assert 1 <= m.n_u <= 4 and 1 <= m.n_v <= 4 and 1 <= m.n_e <= k
        assert (0.0 if "tie" in m.label else 0.3 - 1e-12) <= s[0] <= 0.95 + 1e-12
        rank = int(np.sum(s > 1e-9))
        if i % 3 != 2:
            assert rank == k                                      # full rank unless drawn
        tie = i % 4 == 3 and m.n_e < rank
        assert ("tie" in m.label) == tie
        if tie:
            assert s[m.n_e - 1] == pytest.approx(s[m.n_e], abs=1e-12)
        for block in (m.cov[:m.n_u, :m.n_u], m.cov[m.n_u:, m.n_u:]):
            assert 1 - 1e-9 <= _cond(block) <= 100 * (1 + 1e-9)
    assert any(int(np.sum(ref.canonical_correlations_svd(m.cov, m.n_u) > 1e-9)) < min(m.n_u, m.n_v) for m in models)
    assert any("tie" in m.label for m in models)
    again = M.default_models(seed=3, cases=24, max_dim=4)
    assert all(np.array_equal(a.cov, b.cov) and a.n_e == b.n_e for a, b in zip(models, again))
    other = M.default_models(seed=4, cases=24, max_dim=4)
    assert not all(a.cov.shape == b.cov.shape and np.allclose(a.cov, b.cov) for a, b in zip(models, other))
    assert max(max(m.n_u, m.n_v) for m in M.default_models(seed=0, cases=30, max_dim=2)) == 2
    assert len(M.default_models()) == 24 and max(m.n_u for m in M.default_models()) <= 4


def test_random_encoders_whiten_with_entry_variance_scale_squared_over_n():
    rng = np.random.default_rng(4)
    m = M.random_gaussian_model(rng, 3, 2, n_e=2, max_condition=20.0)
    half_u = np.real(sqrtm(m.cov[:3, :3]))
    half_v = np.real(sqrtm(m.cov[3:, 3:]))
    Pu, Pv = [], []
    for _ in range(1000):
        G_u, G_v = M.random_encoders(m, rng, scale=2.0)
        assert G_u.shape == (2, 3) and G_v.shape == (2, 2)
        Pu.append(G_u @ half_u)   # = P_u, entries N(0, scale^2 / n_u)
        Pv.append(G_v @ half_v)
    Pu, Pv = np.array(Pu), np.array(Pv)
    for P, n in ((Pu, 3), (Pv, 2)):
        var = 4.0 / n
        assert np.all(np.abs(P.mean(axis=0)) < 5 * math.sqrt(var / 1000))
        assert np.all(np.abs((P**2).mean(axis=0) - var) < 5 * math.sqrt(2 * var**2 / 1000))
    G_u, _ = M.random_encoders(m, np.random.default_rng(0))
    assert np.mean((G_u @ half_u) ** 2) < 3.0                       # default scale 1: O(1/n_u) entries
    with pytest.raises(InvalidInputError, match="^model="):
        M.random_encoders(m.cov, rng)
    with pytest.raises(InvalidInputError, match="^rng="):
        M.random_encoders(m, 0)


def test_small_bilinear_has_the_requested_whitened_norm():
    rng = np.random.default_rng(6)
    m = M.random_gaussian_model(rng, 3, 4, n_e=2, max_condition=30.0)
    for scale in (0.3, 0.05):
        A = M.small_bilinear(m, rng, scale=scale)
        B = np.real(sqrtm(m.cov[:3, :3])) @ A @ np.real(sqrtm(m.cov[3:, 3:]))
        assert A.shape == (3, 4)
        assert np.linalg.norm(B, 2) == pytest.approx(scale, rel=1e-10)
        assert np.linalg.matrix_rank(B) == 3                     # a generic direction, not a fixed one
    A = M.small_bilinear(m, np.random.default_rng(1))
    B = np.real(sqrtm(m.cov[:3, :3])) @ A @ np.real(sqrtm(m.cov[3:, 3:]))
    assert np.linalg.norm(B, 2) == pytest.approx(0.3, rel=1e-10)   # the default
    with pytest.raises(InvalidInputError, match="^model="):
        M.small_bilinear("model", rng)
    with pytest.raises(InvalidInputError, match="^rng="):
        M.small_bilinear(m, None)


def test_gaussian_model_refuses_numerically_singular_covariances_on_every_blas():
    # Exactly singular or indefinite (checked in rational arithmetic in test_validation):
    # refused by numerics.as_covariance's rule, the eigenvalue span in the message, and no
    # warning on the way.  SINGULAR_BLOCK's block C_vv has equal rows 1 and 3; Cholesky
    # succeeds on it, and the sign of eigvalsh's smallest eigenvalue depends on the BLAS
    # kernels (-2.4e-17 Haswell, +2.2e-18 SkylakeX), which the old checks relied on.
    import warnings

    from .test_validation import INDEFINITE_TINY, SINGULAR_BLOCK, SINGULAR_DENSE, far_below_rule

    for cov, n_u in ((SINGULAR_BLOCK, 1), (SINGULAR_DENSE, 2), (INDEFINITE_TINY, 3)):
        assert far_below_rule(cov)
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # judged and refused, not warned about
            with pytest.raises(InvalidInputError,
                               match=r"^cov=.*numerically singular or indefinite: eigenvalues span \["):
                M.GaussianModel(cov=cov, n_u=n_u, n_e=1)


def test_gaussian_model_accepts_ill_conditioned_covariances_above_the_rule():
    # The rule refuses w_min <= 100 n eps w_max; GaussianModel applies no conditioning rule
    # (the closed forms do).  ILL_CONDITIONED (exact spectrum {2^-40, 1, 2, 3}, 341 n eps
    # w_max) is accepted with finite canonical correlations in [0, 1], then refused by a
    # closed form for its conditioning.
    from numerics import gaussian

    from .test_validation import ILL_CONDITIONED, far_above_rule

    assert far_above_rule(ILL_CONDITIONED)
    m = M.GaussianModel(cov=ILL_CONDITIONED, n_u=2, n_e=1)
    assert np.all(np.isfinite(m.sigma)) and np.all((m.sigma >= 0) & (m.sigma <= 1 + 1e-6))
    with pytest.raises(InvalidInputError, match="^cov=.*condition number"):
        gaussian.canonical_correlations(m.cov, m.n_u)


def test_default_models_cover_their_documented_ranges():
    """Over 200 models of one seed: sizes take every value in 1..max_dim, the largest
    correlation spreads over [0.3, 0.95] and each marginal block's condition number over
    [1, 100] (log-uniform: some below 10, some above 50)."""
    models = M.default_models(seed=7, cases=200)
    assert {m.n_u for m in models} == {1, 2, 3, 4} and {m.n_v for m in models} == {1, 2, 3, 4}
    tops = np.array([ref.canonical_correlations_svd(m.cov, m.n_u)[0] for m in models if "tie" not in m.label])
    assert 0.3 - 1e-12 <= tops.min() < 0.4 and 0.85 < tops.max() <= 0.95 + 1e-12
    tied = np.array([ref.canonical_correlations_svd(m.cov, m.n_u)[0] for m in models if "tie" in m.label])
    assert len(tied) > 10 and tied.max() <= 0.95 + 1e-12   # a tied model's draw is only a bound
    conds = np.array([_cond(b) for m in models for b in (m.cov[:m.n_u, :m.n_u], m.cov[m.n_u:, m.n_u:])
                      if b.shape[0] > 1])
    assert conds.min() < 10 and 50 < conds.max() <= 100 * (1 + 1e-9)
    first = M.default_models()
    assert all(np.array_equal(a.cov, b.cov) for a, b in zip(first, M.default_models(0)))  # seed 0


def test_gaussian_model_stores_the_validated_fields():
    cov = [[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2 + 1e-17, 1.5]]   # asymmetric by rounding only
    m = M.GaussianModel(cov=cov, n_u=np.int64(2), n_e=np.int64(1))
    assert isinstance(m.cov, np.ndarray) and m.cov.dtype == np.float64
    np.testing.assert_array_equal(m.cov, m.cov.T)
    assert type(m.n_u) is int and type(m.n_e) is int and m.n_v == 1
    with pytest.raises(InvalidInputError, match="^n_e="):
        M.GaussianModel(cov=cov, n_u=2, n_e=2)                      # n_v = 1
    with pytest.raises(InvalidInputError, match="^n_u="):
        M.GaussianModel(cov=cov, n_u=3, n_e=1)


def test_random_gaussian_model_defaults():
    """max_correlation 0.9, min_gap 0.05 (gaps below 0.45 occur), max_condition 10 (attained)."""
    rng = np.random.default_rng(9)
    gaps = []
    for _ in range(40):
        m = M.random_gaussian_model(rng, 3, 3, n_e=1)
        s = ref.canonical_correlations_svd(m.cov, 3)
        assert s[0] == pytest.approx(0.9, abs=1e-12)
        assert s[0] - s[1] >= 0.05 - 1e-12
        gaps.append(s[0] - s[1])
        assert _cond(m.cov[:3, :3]) == pytest.approx(10.0, rel=1e-9)
    assert min(gaps) < 0.3
