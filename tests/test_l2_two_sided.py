"""numerics.l2_two_sided: the two-sided L2 loss of Proposition G4 in closed form (MATH.md §4.2),
against the Gaussian KL written out by hand, an mpmath reference at 60 digits, sympy for the
diagonal reduction, central differences and direct minimisation."""
import mpmath as mp
import numpy as np
import pytest
import scipy.linalg as sla
import sympy as sp
from hypothesis import given, settings, strategies as st
from scipy.optimize import minimize

from numerics import InvalidInputError
from numerics import l2_two_sided as lt
from numerics.models import random_gaussian_model
from tests import _reference as ref

EPS = np.finfo(float).eps


def _pair_kl_by_hand(a, b, s):
    """1/2 (E_u KL(mu_{v|u} || nu_{v|u}) + E_v KL(mu_{u|v} || nu_{u|v})) for one canonical pair:
    mu_{v|u} = N(s u, 1 - s^2); nu_{v|u} = N(S_v b a u, S_v), S_v = 1/(1 + b^2) (MATH.md §4.2)."""
    def kl(p, q):  # p: the conditioning side's encoder, q: the conditioned side's
        S = 1.0 / (1.0 + q * q)
        d = s - S * q * p
        return 0.5 * ((1 - s * s) / S - 1 + d * d / S + np.log(S) - np.log(1 - s * s))
    return 0.5 * (kl(a, b) + kl(b, a))


def _phi_mp(s):
    """phi(sigma) at 60 digits from the unsimplified diagonal form (MATH.md §4.2)."""
    with mp.workdps(60):
        s = mp.mpf(float(s))
        w = (1 + mp.sqrt(9 - 8 * s)) / (4 * (1 - s))
        return (2 * (1 - s) * w + 1 / w - mp.log(w) - 1 - 2 * (1 - s) - mp.log(1 - s * s)) / 2


def _l2_two_sided_by_hand(G_u, G_v, cov, n_u, tau=1.0):
    """1/2 (E_u KL_{v|u} + E_v KL_{u|v}) of the L2 tilt with general encoders, by the
    expected Gaussian KL over the conditioning marginal (MATH.md §4, §4.2)."""
    C_uu, C_uv, C_vv = cov[:n_u, :n_u], cov[:n_u, n_u:], cov[n_u:, n_u:]

    def term(C_xx, C_xy, C_yy, G_x, G_y):
        # data: y | x ~ N(M x, S); model: N(N x, Sig), Sig = (C_yy^-1 + G_y^T G_y / tau)^-1
        M = C_xy.T @ np.linalg.inv(C_xx)
        S = C_yy - M @ C_xy
        Sig = np.linalg.inv(np.linalg.inv(C_yy) + G_y.T @ G_y / tau)
        N = Sig @ G_y.T @ G_x / tau
        P = np.linalg.inv(Sig)
        D = M - N
        n = C_yy.shape[0]
        return 0.5 * (np.trace(P @ S) - n + np.trace(D.T @ P @ D @ C_xx)
                      + np.linalg.slogdet(Sig)[1] - np.linalg.slogdet(S)[1])

    return 0.5 * (term(C_uu, C_uv, C_vv, G_u, G_v) + term(C_vv, C_uv.T, C_uu, G_v, G_u))


# --------------------------------------------------------------------------
# one canonical pair
# --------------------------------------------------------------------------
@settings(deadline=None, max_examples=40)
@given(a=st.floats(-3, 3), b=st.floats(-3, 3), s=st.floats(0, 0.99))
def test_pair_loss_is_the_two_sided_gaussian_kl(a, b, s):
    got = lt.two_sided_pair_loss(a, b, s)
    # O(1) terms with a log(1 - s^2) that amplifies rounding by 1/(1 - s): ~1e-14 / (1 - s)
    assert abs(got - _pair_kl_by_hand(a, b, s)) < 1e-12 / (1 - s)
    assert got >= -1e-12  # a KL divergence (Proposition G4: > 0 unless s = 0)
    # symmetric in the two encoders and under a joint sign flip (a rotation of R^1)
    assert abs(lt.two_sided_pair_loss(b, a, s) - got) < 1e-13 / (1 - s)
    assert abs(lt.two_sided_pair_loss(-a, -b, s) - got) < 1e-13 / (1 - s)


def test_pair_loss_is_vectorised():
    rng = np.random.default_rng(0)
    a, b, s = rng.normal(size=7), rng.normal(size=7), rng.uniform(0, 0.9, size=7)
    got = lt.two_sided_pair_loss(a, b, s)
    assert got.shape == (7,)
    # O(1) terms, s <= 0.9: rounding ~1e-14
    np.testing.assert_allclose(got, [_pair_kl_by_hand(*t) for t in zip(a, b, s)], rtol=1e-12, atol=1e-13)


def test_diagonal_reduction_and_its_minimiser_with_sympy():
    """On a = b, with w = 1 + a^2, L = 1/2[2(1-s)w + 1/w - log w - 1 - 2(1-s) - log(1-s^2)],
    and dL/dw = 0 is 2(1-s)w^2 - w - 1 = 0 (MATH.md §4.2), exactly."""
    a, s = sp.symbols("a s", positive=True)
    w = 1 + a**2
    al = a**2
    L_pair = (sp.Rational(1, 4) * (2 * al - 4 * s * a * a + al * al * 2 / (1 + al) - 2 * sp.log(1 + al))
              - sp.log(1 - s**2) / 2)
    L_diag = (2 * (1 - s) * w + 1 / w - sp.log(w) - 1 - 2 * (1 - s) - sp.log(1 - s**2)) / 2
    assert sp.cancel(sp.expand(L_pair - L_diag)) == 0
    W = sp.symbols("W", positive=True)
    Lw = (2 * (1 - s) * W + 1 / W - sp.log(W) - 1 - 2 * (1 - s) - sp.log(1 - s**2)) / 2
    w_star = (1 + sp.sqrt(9 - 8 * s)) / (4 * (1 - s))
    assert sp.expand(2 * W**2 * sp.diff(Lw, W) - (2 * (1 - s) * W**2 - W - 1)) == 0
    # w(s) = (1 + q)/(4(1 - s)), q = sqrt(9 - 8s), is a root: rational in q once s = (9 - q^2)/8
    q = sp.symbols("q", positive=True)
    root = (2 * (1 - s) * W**2 - W - 1).subs(W, w_star).subs(sp.sqrt(9 - 8 * s), q).subs(s, (9 - q**2) / 8)
    assert sp.cancel(root) == 0
    # the sympy pair loss is the module's (numerically, at a few points: O(1) terms, ~1e-15)
    for av, sv in [(0.3, 0.2), (1.7, 0.9), (0.0, 0.5)]:
        assert abs(float(L_pair.subs({a: av, s: sv})) - lt.two_sided_pair_loss(av, av, sv)) < 1e-13


@pytest.mark.parametrize("s", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_pair_precision_is_the_stationary_diagonal_encoder(s):
    w = lt.two_sided_pair_precision(s)
    assert w >= 1
    # the root of 2(1-s)w^2 - w - 1: rounding of O(w^2) terms
    assert abs(2 * (1 - s) * w * w - w - 1) < 1e-13 * max(1.0, w * w)
    # and the minimum of the diagonal loss: central differences (h = 1e-5) in a vanish to
    # ~h^2 * L''' + eps/h, the second one is positive
    a, h = np.sqrt(w - 1), 1e-5
    f = lambda t: lt.two_sided_pair_loss(t, t, s)  # noqa: E731
    if a > 0:
        assert abs(f(a + h) - f(a - h)) / (2 * h) < 1e-7 / (1 - s)
    assert f(a + 1e-3) > f(a) and f(max(a - 1e-3, 0.0)) >= f(a)


@pytest.mark.parametrize("s", [0.0, 0.05, 0.3, 0.6, 0.9, 0.99, 1 - 1e-6])
def test_pair_minimum_is_the_loss_at_the_best_diagonal_encoder_and_the_mpmath_value(s):
    phi = lt.two_sided_pair_minimum(s)
    a = np.sqrt(lt.two_sided_pair_precision(s) - 1)
    # the same value through the general pair loss: rounding amplified by 1/(1 - s)
    assert abs(phi - lt.two_sided_pair_loss(a, a, s)) < 1e-13 / (1 - s)
    # backward stable: the error is that of a perturbation of s by ~1 ulp, phi'(s) ~ 1/4 near 1
    assert abs(phi - float(_phi_mp(s))) <= 4 * EPS * (abs(float(_phi_mp(s))) + 1 / 4 + s) + 1e-300


def test_pair_minimum_keeps_its_relative_accuracy_as_sigma_tends_to_one():
    for eps in (1e-3, 1e-6, 1e-9, 1e-12):
        s = 1 - eps  # a double; the reference is evaluated at that same double
        rel = abs(lt.two_sided_pair_minimum(s) - float(_phi_mp(s))) / float(_phi_mp(s))
        # phi(s) ~ (1 - s)/4: one ulp of s moves phi by eps/4, i.e. relatively by EPS/(1 - s);
        # the cancelling logarithms of log w - log(1 - s^2) would add |log(1 - s)| times that
        assert rel <= 2 * EPS / (1 - s), (eps, rel)


def test_pair_minimum_is_accurate_to_a_few_ulps_up_to_one_half():
    """Three O(sigma^2) terms, each to a few ulps, summed with a cancellation factor <= 2.3
    (module): 16 eps bounds the relative error on [1e-12, 0.5] (10.5 eps measured).  Towards
    sigma = 1, phi ~ (1 - sigma)/4 comes from O(1) terms: absolute accuracy only (tested above)."""
    for s in np.logspace(-12, np.log10(0.5), 60):
        exact = float(_phi_mp(s))
        assert abs(lt.two_sided_pair_minimum(s) - exact) <= 16 * EPS * exact, s


def test_pair_minimum_keeps_its_relative_accuracy_as_sigma_tends_to_zero():
    for s in (1e-4, 1e-6, 1e-8):
        rel = abs(lt.two_sided_pair_minimum(s) - float(_phi_mp(s))) / float(_phi_mp(s))
        assert rel < 1e-10, (s, rel)  # backward stability would give ~2 eps


def test_pair_minimum_series_at_both_ends():
    assert lt.two_sided_pair_minimum(0.0) == 0.0
    for s in (0.01, 0.02, 0.04):
        # MATH.md §4.2: phi = s^2/6 - 16 s^3/81 + O(s^4); a wrong s^3 coefficient off by 1%
        # would leave ~2e-3 s^3 > s^4 here. Values ~1e-5: the float64 error (~1e-16) is negligible
        assert abs(lt.two_sided_pair_minimum(s) - (s**2 / 6 - 16 * s**3 / 81)) < s**4
    for e in (1e-2, 5e-3, 2.5e-3):
        # phi(1 - e) = e/4 - 15 e^2/16 + O(e^3) (the e^3 coefficient is ~2.7 at 60 digits)
        assert abs(lt.two_sided_pair_minimum(1 - e) - (e / 4 - 15 * e**2 / 16)) < 4 * e**3


@pytest.mark.parametrize("s", [0.2, 0.7, 0.95])
def test_pair_minimum_is_the_minimum_over_both_encoders(s):
    """Observed (not proved) in MATH.md §4.2: the scalar minimum lies on a = b."""
    phi = lt.two_sided_pair_minimum(s)
    rng = np.random.default_rng(1)
    for x0 in rng.normal(0, 2, size=(4, 2)):
        res = minimize(lambda z: lt.two_sided_pair_loss(z[0], z[1], s), x0, method="BFGS",
                       options={"gtol": 1e-10})
        # BFGS to gtol 1e-10 on a smooth 2-D loss: value within ~1e-15 of a minimum
        assert res.fun >= phi - 1e-12
    # and the best of those starts reaches it (BFGS default gtol 1e-5: value within ~1e-10)
    assert abs(min(minimize(lambda z: lt.two_sided_pair_loss(z[0], z[1], s), x0, method="BFGS").fun
                   for x0 in rng.normal(0, 2, size=(3, 2))) - phi) < 1e-9


@pytest.mark.parametrize("bad", [1.0, -0.1, np.nan, 1.5, [0.2, 1.0]])
def test_sigma_outside_zero_one_is_refused(bad):
    for f in (lt.two_sided_pair_minimum, lt.two_sided_pair_precision, lambda s: lt.two_sided_pair_loss(1, 1, s)):
        with pytest.raises(InvalidInputError, match="sigma"):
            f(bad)


# --------------------------------------------------------------------------
# whole models
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape,rank", [((3, 2), None), ((2, 4), None), ((3, 3), 2), ((1, 1), None)])
def test_two_sided_minimum_is_the_sum_over_canonical_correlations(shape, rank):
    n_u, n_v = shape
    m = random_gaussian_model(np.random.default_rng(2), n_u, n_v, n_e=1, rank=rank)
    sig = ref.canonical_correlations(m.cov, n_u)  # generalised eigenproblem, not an SVD
    expected = sum(float(_phi_mp(s)) for s in sig)
    # sigma from two routes agree to ~kappa * eps; phi' <= ~1: the same order in the sum
    assert abs(lt.two_sided_minimum(m.cov, n_u) - expected) < 1e-12


@pytest.mark.parametrize("tau", [1.0, 0.3])
@pytest.mark.parametrize("shape,rank", [((3, 2), None), ((2, 3), None), ((3, 3), 1)])
def test_canonical_encoders_attain_the_minimum_and_decouple_the_pairs(shape, rank, tau):
    n_u, n_v = shape
    m = random_gaussian_model(np.random.default_rng(3), n_u, n_v, n_e=1, rank=rank)
    G_u, G_v = lt.two_sided_canonical_encoders(m.cov, n_u, tau)
    k = min(n_u, n_v)
    assert G_u.shape == (k, n_u) and G_v.shape == (k, n_v)
    value = _l2_two_sided_by_hand(G_u, G_v, m.cov, n_u, tau)
    # inverses and log-determinants of matrices of condition <= ~100: ~1e-13
    assert abs(value - lt.two_sided_minimum(m.cov, n_u)) < 1e-10
    # decoupled: in whitened coordinates the rows are orthogonal, with a_i^2 on both sides and
    # a_i^2 sigma_i across (the logit is -sum_i a_i^2 (x_i - y_i)^2 / 2 in canonical coordinates)
    C_uu, C_uv, C_vv = m.cov[:n_u, :n_u], m.cov[:n_u, n_u:], m.cov[n_u:, n_u:]
    sig = np.linalg.svd(np.linalg.inv(np.real(sla.sqrtm(C_uu))) @ C_uv @ np.linalg.inv(np.real(sla.sqrtm(C_vv))),
                        compute_uv=False)
    a2 = tau * (lt.two_sided_pair_precision(sig) - 1)
    # (sqrtm against eigh whitening, condition <= 10: ~1e-14 on O(1) entries)
    np.testing.assert_allclose(G_u @ C_uu @ G_u.T, np.diag(a2), atol=1e-10)
    np.testing.assert_allclose(G_v @ C_vv @ G_v.T, np.diag(a2), atol=1e-10)
    np.testing.assert_allclose(G_u @ C_uv @ G_v.T, np.diag(a2 * sig), atol=1e-10)


def test_canonical_encoders_are_stationary_for_the_general_loss():
    m = random_gaussian_model(np.random.default_rng(4), 3, 2, n_e=2)
    G_u, G_v = lt.two_sided_canonical_encoders(m.cov, 3)
    x = np.concatenate([G_u.ravel(), G_v.ravel()])

    def f(y):
        return _l2_two_sided_by_hand(y[:6].reshape(2, 3), y[6:].reshape(2, 2), m.cov, 3)

    h = 1e-5
    g = np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(x.size)])
    # central differences: truncation ~h^2, rounding ~1e-14/h ~ 1e-9
    assert np.max(np.abs(g)) < 1e-7
    # and no direction decreases it (observed, MATH.md §4.2): the finite-difference Hessian
    # (h = 1e-4: error ~1e-8 + 1e-14/h^2 ~ 1e-6) has no eigenvalue below that error
    H = np.array([[(f(x + 1e-4 * (ei + ej)) - f(x + 1e-4 * (ei - ej)) - f(x - 1e-4 * (ei - ej))
                    + f(x - 1e-4 * (ei + ej))) / (4e-8) for ej in np.eye(x.size)] for ei in np.eye(x.size)])
    assert np.min(np.linalg.eigvalsh(0.5 * (H + H.T))) > -1e-5
