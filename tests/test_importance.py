"""numerics.importance: self-normalised importance sampling of a bank (MATH.md §5)."""
import numpy as np
import pytest

from numerics import InvalidInputError
from numerics.importance import BankMoments, self_normalised_moments


def _direct(F, X, c):
    """Moments and effective size query by query, item by item, straight from the formulas
    (no shift: the logits of these tests are of order 1)."""
    n_q, (M, d) = F.shape[0], X.shape
    means, covs, ess = np.zeros((n_q, d)), np.zeros((n_q, d, d)), np.zeros(n_q)
    for q in range(n_q):
        total = sum(c[j] * np.exp(F[q, j]) for j in range(M))
        w = [c[j] * np.exp(F[q, j]) / total for j in range(M)]
        for j in range(M):
            means[q] += w[j] * X[j]
        for j in range(M):
            covs[q] += w[j] * np.outer(X[j] - means[q], X[j] - means[q])
        # the bank with c_j copies of item j, each of weight p_j = w_j / c_j
        p = [w[j] / c[j] if c[j] > 0 else 0.0 for j in range(M)]
        ess[q] = sum(c[j] * p[j] for j in range(M)) ** 2 / sum(c[j] * p[j] ** 2 for j in range(M))
    return means, covs, ess


def _old_bank_mean(F, bank, weights=None):
    """notebooks/_common.bank_mean before the move (validation left out), the reference the
    notebooks' numbers were produced with."""
    c = np.ones(F.shape[1]) if weights is None else weights
    keep = c > 0
    E = np.exp(F[:, keep] - F[:, keep].max(1, keepdims=True)) * c[keep]
    W = E / E.sum(1, keepdims=True)
    per_item = W / c[keep]
    return W @ bank[keep], 1.0 / (c[keep] * per_item**2).sum(1)


def test_moments_match_the_formulas_written_out():
    rng = np.random.default_rng(0)
    F, X = rng.standard_normal((4, 7)), rng.standard_normal((7, 3))
    c = np.array([1.0, 2.0, 0.0, 0.5, 3.0, 1.0, 0.25])
    got = self_normalised_moments(F, X, weights=c, covariances=True)
    assert isinstance(got, BankMoments)
    means, covs, ess = _direct(F, X, c)
    # sums of 7 terms of order 1 in two summation orders: agreement to a few ulps
    np.testing.assert_allclose(got.means, means, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got.covs, covs, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got.ess, ess, rtol=1e-12)
    # without multiplicities: all 1; covariances only when asked for
    plain = self_normalised_moments(F, X)
    m1, _, e1 = _direct(F, X, np.ones(7))
    assert plain.covs is None
    np.testing.assert_allclose(plain.means, m1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(plain.ess, e1, rtol=1e-12)


def test_moments_match_the_notebooks_former_bank_mean():
    rng = np.random.default_rng(1)
    F, X = 3 * rng.standard_normal((5, 40)), rng.standard_normal((40, 6))
    c = rng.integers(0, 3, size=40).astype(float)
    for weights in (None, c):
        got = self_normalised_moments(F, X, weights=weights)
        old_means, old_ess = _old_bank_mean(F, X, weights)
        np.testing.assert_array_equal(got.means, old_means)  # the same operations
        np.testing.assert_allclose(got.ess, old_ess, rtol=1e-13)  # (w/c)^2 c against w^2/c


def test_equal_weights_a_single_item_and_multiplicities():
    bank = np.arange(8.0).reshape(4, 2)
    got = self_normalised_moments(np.zeros((1, 4)), bank, covariances=True)
    np.testing.assert_allclose(got.means[0], bank.mean(0))
    np.testing.assert_allclose(got.covs[0], np.cov(bank.T, bias=True), rtol=1e-14)
    assert got.ess[0] == pytest.approx(4.0, rel=1e-15)
    # one logit 800 above the others: all the weight on that item (e^-800 underflows to 0)
    got = self_normalised_moments(np.array([[0.0, 800.0, 0.0, 0.0]]), bank, covariances=True)
    np.testing.assert_array_equal(got.means[0], bank[1])
    np.testing.assert_array_equal(got.covs[0], np.zeros((2, 2)))
    assert got.ess[0] == 1.0
    # multiplicities are repeated rows (and 0 a dropped row)
    rng = np.random.default_rng(2)
    F = rng.normal(size=(3, 4))
    c = np.array([2.0, 0.0, 1.0, 3.0])
    rows = np.repeat(np.arange(4), c.astype(int))
    with_c = self_normalised_moments(F, bank, weights=c, covariances=True)
    repeated = self_normalised_moments(F[:, rows], bank[rows], covariances=True)
    for a, b in zip(with_c, repeated):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


def test_weights_are_shifted_by_the_largest_kept_logit():
    """Shift invariance, and the shift is the maximum over the items kept: with the largest
    logit on a dropped item, a shift by the overall maximum would underflow every kept
    weight (e^-900) and divide 0 by 0."""
    rng = np.random.default_rng(3)
    F, X = rng.standard_normal((2, 5)), rng.standard_normal((5, 2))
    base = self_normalised_moments(F, X, covariances=True)
    shifted = self_normalised_moments(F + 700.0, X, covariances=True)
    for a, b in zip(base, shifted):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)  # rounding of F + 700: 1e-13
    G = F.copy()
    G[:, 0] = 900.0
    c = np.array([0.0, 1.0, 1.0, 1.0, 1.0])
    got = self_normalised_moments(G, X, weights=c)
    ref = self_normalised_moments(F[:, 1:], X[1:])
    np.testing.assert_allclose(got.means, ref.means, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got.ess, ref.ess, rtol=1e-14)


def test_covariances_are_symmetric_positive_semidefinite():
    rng = np.random.default_rng(4)
    got = self_normalised_moments(2 * rng.standard_normal((6, 30)), rng.standard_normal((30, 4)),
                                  covariances=True)
    assert got.covs.shape == (6, 4, 4) and got.means.shape == (6, 4) and got.ess.shape == (6,)
    np.testing.assert_allclose(got.covs, np.swapaxes(got.covs, 1, 2), atol=1e-15)
    assert np.all(np.linalg.eigvalsh(got.covs) > -1e-14)
    assert np.all((got.ess >= 1.0) & (got.ess <= 30.0))


@pytest.mark.parametrize("kwargs, name", [
    (dict(logits=np.zeros(4)), "logits"), (dict(logits=np.full((2, 4), np.inf)), "logits"),
    (dict(bank=np.zeros((3, 2))), "bank"), (dict(bank=np.zeros(4)), "bank"),
    (dict(weights=-np.ones(4)), "weights"), (dict(weights=np.zeros(4)), "weights"),
    (dict(weights=np.ones(3)), "weights"), (dict(weights=np.array([1.0, np.nan, 1.0, 1.0])), "weights"),
])
def test_bad_arguments_are_named(kwargs, name):
    args = dict(logits=np.zeros((2, 4)), bank=np.zeros((4, 2)))
    args.update(kwargs)
    logits, bank = args.pop("logits"), args.pop("bank")
    with pytest.raises(InvalidInputError, match=f"^{name}="):
        self_normalised_moments(logits, bank, **args)
