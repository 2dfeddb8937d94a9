"""numerics.landscape: gradient, Hessian, whitening map and balanced stationary points of the
factorised CLIP objective (MATH.md §4.1, Landscape (strict saddle)), against the test-only
Cholesky reference, central differences, sympy and the spectrum as MATH.md states it."""
from itertools import combinations
from math import comb

import numpy as np
import pytest
import scipy.linalg as sla
import sympy as sp

from numerics import InvalidInputError
from numerics import landscape as ls
from numerics.models import random_gaussian_model
from tests import _reference as ref


def _model(seed, n_u, n_v, n_e=1, **kw):
    return random_gaussian_model(np.random.default_rng(seed), n_u, n_v, n_e=n_e, min_gap=0.1, **kw)


_CHOL = {}


def _ell(x, m, n_e):
    """ell(G_u, G_v) = L_clip(G_u^T G_v) = 1/2 |L_u^T A L_v - K|^2 - 1/2 |K|^2 in the Cholesky-
    whitened coordinates of the test-only reference (tests/_reference.py)."""
    n_u, n_v = m.n_u, m.n_v
    key = id(m)
    if key not in _CHOL:
        _CHOL[key] = (m, ref.chol_whitening(m.cov, n_u))
    L_u, L_v, K = _CHOL[key][1]
    G_u, G_v = x[: n_e * n_u].reshape(n_e, n_u), x[n_e * n_u:].reshape(n_e, n_v)
    return 0.5 * np.sum((L_u.T @ (G_u.T @ G_v) @ L_v - K) ** 2) - 0.5 * np.sum(K**2)


def _fd_grad(f, x, h=1e-5):
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(x.size)])


def _whitened_svd(m):
    """K = C_uu^-1/2 C_uv C_vv^-1/2 by scipy's sqrtm, and its SVD."""
    Riu = np.linalg.inv(np.real(sla.sqrtm(m.cov[: m.n_u, : m.n_u])))
    Riv = np.linalg.inv(np.real(sla.sqrtm(m.cov[m.n_u:, m.n_u:])))
    K = Riu @ m.cov[: m.n_u, m.n_u:] @ Riv
    return K, Riu, Riv


@pytest.mark.parametrize("shape", [(3, 2, 2), (2, 4, 1), (3, 3, 3)])
def test_factor_gradient_matches_central_differences(shape):
    n_u, n_v, n_e = shape
    m = _model(0, n_u, n_v, n_e)
    rng = np.random.default_rng(0)
    G_u, G_v = rng.standard_normal((n_e, n_u)), rng.standard_normal((n_e, n_v))
    gu, gv = ls.factor_gradient(G_u, G_v, m.cov, n_u)
    assert gu.shape == G_u.shape and gv.shape == G_v.shape
    x = np.concatenate([G_u.ravel(), G_v.ravel()])
    # a quartic of O(1-10) values, h = 1e-5: truncation ~h^2 * 10, rounding ~1e-15/h
    np.testing.assert_allclose(np.concatenate([gu.ravel(), gv.ravel()]), _fd_grad(lambda y: _ell(y, m, n_e), x),
                               rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("shape", [(3, 2, 2), (2, 3, 1), (2, 2, 2)])
def test_factor_hessian_matches_differences_of_the_gradient(shape):
    n_u, n_v, n_e = shape
    m = _model(1, n_u, n_v, n_e)
    rng = np.random.default_rng(1)
    G_u, G_v = rng.standard_normal((n_e, n_u)), rng.standard_normal((n_e, n_v))
    x = np.concatenate([G_u.ravel(), G_v.ravel()])
    H = ls.factor_hessian(G_u, G_v, m.cov, n_u)
    assert H.shape == (x.size, x.size)
    np.testing.assert_array_equal(H, H.T)

    def grad(y):  # the gradient validated against the reference loss above
        gu, gv = ls.factor_gradient(y[: n_e * n_u].reshape(n_e, n_u), y[n_e * n_u:].reshape(n_e, n_v), m.cov, n_u)
        return np.concatenate([gu.ravel(), gv.ravel()])

    # the gradient is cubic: central differences with h = 1e-5 err by ~h^2 * 10 plus ~1e-15/h
    Hd = np.array([(grad(x + 1e-5 * e) - grad(x - 1e-5 * e)) / 2e-5 for e in np.eye(x.size)])
    np.testing.assert_allclose(H, Hd, rtol=1e-7, atol=1e-8)


def test_factor_hessian_is_the_exact_symbolic_hessian():
    """n_u = n_v = 2, n_e = 1: sympy differentiates -tr(A C_vu) + 1/2 tr(A C_vv A^T C_uu) twice."""
    C = sp.Matrix([[2, sp.Rational(1, 2), sp.Rational(1, 3), 0], [sp.Rational(1, 2), 1, 0, sp.Rational(1, 4)],
                   [sp.Rational(1, 3), 0, 1, sp.Rational(1, 5)], [0, sp.Rational(1, 4), sp.Rational(1, 5), 3]])
    g = sp.symbols("g0:4")
    Gu, Gv = sp.Matrix([[g[0], g[1]]]), sp.Matrix([[g[2], g[3]]])
    A = Gu.T * Gv
    Cuu, Cuv, Cvv = C[:2, :2], C[:2, 2:], C[2:, 2:]
    ell = -(A * Cuv.T).trace() + sp.Rational(1, 2) * (A * Cvv * A.T * Cuu).trace()
    point = {g[0]: sp.Rational(3, 10), g[1]: -1, g[2]: sp.Rational(7, 10), g[3]: 2}
    H_exact = np.array(sp.hessian(ell, g).subs(point), dtype=float)
    grad_exact = np.array([sp.diff(ell, gi).subs(point) for gi in g], dtype=float)
    cov = np.array(C, dtype=float)
    G_u, G_v = np.array([[0.3, -1.0]]), np.array([[0.7, 2.0]])
    # exact rationals against float64 products of O(1) numbers: rounding ~1e-15
    np.testing.assert_allclose(ls.factor_hessian(G_u, G_v, cov, 2), H_exact, atol=1e-13)
    gu, gv = ls.factor_gradient(G_u, G_v, cov, 2)
    np.testing.assert_allclose(np.concatenate([gu.ravel(), gv.ravel()]), grad_exact, atol=1e-13)


def test_whitening_map_sends_whitened_factors_to_encoders_and_congruates_the_hessian():
    n_u, n_v, n_e = 3, 2, 2
    m = _model(2, n_u, n_v, n_e)
    K, Riu, Riv = _whitened_svd(m)
    T = ls.whitening_map(m.cov, n_u, n_e)
    assert T.shape == (n_e * (n_u + n_v),) * 2
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((n_e, n_u)), rng.standard_normal((n_e, n_v))
    xw = np.concatenate([X.ravel(), Y.ravel()])
    xg = T @ xw
    # x_G = T x_W: (X C_uu^-1/2, Y C_vv^-1/2), scipy's sqrtm against eigh: ~kappa * eps
    np.testing.assert_allclose(xg, np.concatenate([(X @ Riu).ravel(), (Y @ Riv).ravel()]), atol=1e-11)
    # ell(T x_W) = 1/2 |X^T Y - K|^2 - 1/2 |K|^2 (MATH.md §4.1)
    ell_w = lambda y: 0.5 * np.sum((y[:6].reshape(2, 3).T @ y[6:].reshape(2, 2) - K) ** 2) - 0.5 * np.sum(K**2)  # noqa: E731
    assert abs(_ell(xg, m, n_e) - ell_w(xw)) < 1e-11
    # Hessian of ell_W = T^T H T; the whitened gradient is (Y R^T, X R) with R = X^T Y - K
    def grad_w(y):
        Xy, Yy = y[:6].reshape(2, 3), y[6:].reshape(2, 2)
        R = Xy.T @ Yy - K
        return np.concatenate([(Yy @ R.T).ravel(), (Xy @ R).ravel()])
    Hw = np.array([(grad_w(xw + 1e-5 * e) - grad_w(xw - 1e-5 * e)) / 2e-5 for e in np.eye(xw.size)])
    G_u, G_v = xg[:6].reshape(2, 3), xg[6:].reshape(2, 2)
    np.testing.assert_allclose(T.T @ ls.factor_hessian(G_u, G_v, m.cov, n_u) @ T, Hw, rtol=1e-7, atol=1e-8)


# --------------------------------------------------------------------------
# stationary points (Landscape (strict saddle), MATH.md §4.1)
# --------------------------------------------------------------------------
def _predicted_spectrum(sig, n_u, n_v, n_e, S):
    """The eigenvalues listed in MATH.md §4.1 item 2, written out from the text."""
    k = min(n_u, n_v)
    sig = np.concatenate([sig, np.zeros(k - len(sig))])
    out = []
    for i in S:
        for i2 in S:
            out += [sig[i] + sig[i2], 0.0]
        for j in range(k):
            if j not in S:
                out += [sig[i] + sig[j], sig[i] - sig[j]]
        out += [sig[i]] * abs(n_u - n_v)
    for _ in range(n_e - len(S)):  # zero rows
        for j in range(k):
            if j not in S:
                out += [sig[j], -sig[j]]
    out += [0.0] * (n_e * (n_u + n_v) - len(out))
    return np.sort(out)


CASES = [((3, 2, 2), (0, 1)), ((3, 2, 2), (1,)), ((3, 2, 2), ()), ((3, 2, 2), (1, 0)),
         ((2, 3, 1), (1,)), ((3, 3, 2), (0, 2)), ((3, 3, 3), (2, 0)), ((4, 2, 2), (1,))]


@pytest.mark.parametrize("shape,S", CASES)
def test_canonical_stationary_point_is_stationary_balanced_and_has_the_stated_value(shape, S):
    n_u, n_v, n_e = shape
    m = _model(3, n_u, n_v, n_e)
    G_u, G_v = ls.canonical_stationary_point(m.cov, n_u, n_e, S)
    assert G_u.shape == (n_e, n_u) and G_v.shape == (n_e, n_v)
    x = np.concatenate([G_u.ravel(), G_v.ravel()])
    # stationary: the reference loss's central differences vanish (error ~h^2 + 1e-15/h)
    assert np.max(np.abs(_fd_grad(lambda y: _ell(y, m, n_e), x))) < 1e-8
    # value -1/2 sum_S sigma_i^2, with sigma from the generalised eigenproblem
    sig = ref.canonical_correlations(m.cov, n_u)
    assert abs(_ell(x, m, n_e) - ls.stationary_value(sig, S)) < 1e-11  # two whitening routes, ~1e-14
    assert ls.stationary_value(sig, S) == pytest.approx(-0.5 * sum(sig[i] ** 2 for i in S), abs=1e-15)
    # balanced in whitened coordinates: X X^T = Y Y^T = diag(sigma_S, 0...), zero rows past |S|
    K, Riu, Riv = _whitened_svd(m)
    X = G_u @ np.linalg.inv(Riu)
    Y = G_v @ np.linalg.inv(Riv)
    d = np.zeros(n_e)
    d[: len(S)] = [sig[i] for i in S]
    # (sqrtm against eigh whitening and two SVD routes for sigma: ~1e-14)
    np.testing.assert_allclose(X @ X.T, np.diag(d), atol=1e-10)
    np.testing.assert_allclose(Y @ Y.T, np.diag(d), atol=1e-10)
    # X^T Y = K_S, a sum of canonical triples of K
    P, s, Qt = np.linalg.svd(K)
    K_S = sum(s[i] * np.outer(P[:, i], Qt[i]) for i in S) if S else np.zeros_like(K)
    np.testing.assert_allclose(X.T @ Y, K_S, atol=1e-10)


@pytest.mark.parametrize("shape,S", CASES)
def test_whitened_hessian_spectrum_at_a_balanced_point_is_the_stated_one(shape, S):
    n_u, n_v, n_e = shape
    m = _model(4, n_u, n_v, n_e)
    sig = ref.canonical_correlations(m.cov, n_u)
    G_u, G_v = ls.canonical_stationary_point(m.cov, n_u, n_e, S)
    T = ls.whitening_map(m.cov, n_u, n_e)
    ev = np.linalg.eigvalsh(T.T @ ls.factor_hessian(G_u, G_v, m.cov, n_u) @ T)
    # eigenvalues of a symmetric matrix of norm <~ 2: ~1e-15, plus sigma from two routes ~1e-13
    np.testing.assert_allclose(ev, _predicted_spectrum(sig, n_u, n_v, n_e, S), atol=1e-9)
    # a strict saddle unless S holds the n_e largest correlations
    optimal = sorted(S) == list(range(n_e))
    assert (ev.min() > -1e-9) == optimal
    if not optimal:
        notS = [j for j in range(min(n_u, n_v)) if j not in S]
        gap = max([sig[j] - sig[i] for i in S for j in notS] + ([max(sig[j] for j in notS)] if len(S) < n_e else []))
        assert abs(ev.min() + gap) < 1e-9  # as the spectrum above


def test_stationary_subsets_enumerates_every_set_of_at_most_n_e_positive_pairs():
    sig = np.array([0.9, 0.5, 0.2, 0.0])
    subsets = ls.stationary_subsets(sig, 2)
    assert len(subsets) == sum(comb(3, k) for k in range(3))  # index 3 has sigma = 0: excluded
    assert set(subsets) == {(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2)}
    assert len(set(subsets)) == len(subsets)
    assert set(ls.stationary_subsets(sig, 3, zero_tol=0.3)) == {(), (0,), (1,), (0, 1)}
    assert ls.stationary_subsets([0.0, 0.0], 2) == [()]
    assert set(ls.stationary_subsets(sig, 4)) == {c for k in range(4) for c in combinations(range(3), k)}


def test_stationary_value_of_every_subset_is_attained():
    m = _model(5, 3, 3, 2)
    sig = ref.canonical_correlations(m.cov, 3)
    for S in ls.stationary_subsets(sig, 2):
        G_u, G_v = ls.canonical_stationary_point(m.cov, 3, 2, S)
        x = np.concatenate([G_u.ravel(), G_v.ravel()])
        assert abs(_ell(x, m, 2) - ls.stationary_value(sig, S)) < 1e-11  # sqrtm/Cholesky routes agree


@pytest.mark.parametrize("S", [(0, 1, 2), (0, 0), (5,), (-1,)])
def test_bad_subsets_are_refused(S):
    m = _model(6, 3, 3, 2)
    with pytest.raises(InvalidInputError, match="subset"):
        ls.canonical_stationary_point(m.cov, 3, 2, S)


def test_factors_of_the_wrong_shape_are_refused():
    m = _model(7, 3, 2, 1)
    with pytest.raises(InvalidInputError, match="G_u"):
        ls.factor_gradient(np.ones((1, 2)), np.ones((1, 2)), m.cov, 3)
    with pytest.raises(InvalidInputError, match="G_v"):
        ls.factor_hessian(np.ones((1, 3)), np.ones((2, 2)), m.cov, 3)
    with pytest.raises(InvalidInputError, match="n_e"):
        ls.whitening_map(m.cov, 3, 3)
