"""Tests of numerics/variants.py and proofs_checks/checks/variants.py (Propositions G2-G4)."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from scipy.special import logsumexp

from numerics import InvalidInputError, gaussian, infonce, montecarlo, variants
from numerics.optimize import minimize_factors
from numerics.models import default_models, random_gaussian_model
from proofs_checks import strategies
from proofs_checks.checks import variants as vchecks
from proofs_checks.tolerances import closed_form_tolerance


def _model(seed, n_u=3, n_v=2, n_e=1):
    return random_gaussian_model(np.random.default_rng(seed), n_u, n_v, n_e=n_e, min_gap=0.2)


def _encoders(rng, m, n_e=None, scale=0.8):
    n_e = m.n_e if n_e is None else n_e
    return scale * rng.standard_normal((n_e, m.n_u)), scale * rng.standard_normal((n_e, m.n_v))


# --------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(m=strategies.gaussian_models(max_dim=3, max_condition=20.0))
def test_l2_kl_terms_match_infonce_route(m):
    """Forward L2 KL terms from the conditionals = I - E f + E log Z (Gaussian integrals)."""
    rng = np.random.default_rng(1)
    G_u, G_v = _encoders(rng, m)
    tau = 0.7
    kv, ku = variants.l2_kl_terms(G_u, G_v, tau, m.cov, m.n_u)
    Ef, lzv, lzu = variants.l2_infonce_terms(G_u, G_v, tau, m.cov, m.n_u)
    I = gaussian.mutual_information(m.cov, m.n_u)
    scale = max(abs(kv), abs(ku), abs(Ef), abs(lzv), abs(lzu), 1.0)
    tol = closed_form_tolerance(m.cov.shape[0], m.condition_number, scale)
    assert abs(kv - (I - Ef + lzv)) <= tol
    assert abs(ku - (I - Ef + lzu)) <= tol


def test_bilinear_balanced_half_is_clip_plus_mi():
    """Theorem 3.2: L_1/2 (forward) = L_clip + I, for every A."""
    rng = np.random.default_rng(2)
    for seed in range(4):
        m = _model(seed)
        A = rng.standard_normal((m.n_u, m.n_v))
        lhs = variants.bilinear_balanced_loss(A, m.cov, m.n_u, 0.5)
        rhs = gaussian.population_clip_loss(A, m.cov, m.n_u) + gaussian.mutual_information(m.cov, m.n_u)
        assert abs(lhs - rhs) <= closed_form_tolerance(m.cov.shape[0], m.condition_number, abs(lhs))


def test_l2_conditional_mean_by_importance_sampling():
    """The tilt exp f(u, v) mu_v(dv) has the mean map of l2_conditionals (independent route:
    self-normalised importance sampling from mu_v; tolerance 5 standard errors)."""
    rng = np.random.default_rng(3)
    m = _model(3, 2, 2, 1)
    G_u, G_v = _encoders(rng, m, scale=0.6)
    tau = 1.3
    N_v, Sig_v, _, _ = variants.l2_conditionals(G_u, G_v, tau, m.cov, m.n_u)
    u = np.array([0.7, -0.4])
    C_vv = m.cov[m.n_u:, m.n_u:]
    v = rng.multivariate_normal(np.zeros(m.n_v), C_vv, size=400_000)
    logw = -0.5 * np.sum((u @ G_u.T - v @ G_v.T) ** 2, axis=1) / tau
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mean = w @ v
    # delta-method standard error of a self-normalised estimate
    se = np.sqrt(np.sum(w[:, None] ** 2 * (v - mean) ** 2, axis=0))
    assert np.all(np.abs(mean - N_v @ u) <= 5 * se)
    cov = (v - mean).T @ (w[:, None] * (v - mean))
    assert np.linalg.norm(cov - Sig_v) < 0.02 * np.linalg.norm(Sig_v)  # ~20 SE of a 4e5 sample


def test_reverse_kl_terms_by_averaging_pointwise_kl():
    """E_x KL(nu(.|x) || mu(.|x)) equals the average of gaussian_kl over draws of x
    (Monte Carlo, 5 standard errors)."""
    rng = np.random.default_rng(4)
    m = _model(4, 2, 3, 2)
    A = rng.standard_normal((m.n_u, m.n_v))
    kv, _ = variants.bilinear_kl_terms(A, m.cov, m.n_u, divergence="reverse")
    N_v, Sig_v, _, _ = gaussian.bilinear_model_conditionals(A, m.cov, m.n_u)
    M_v, S_v, _, _ = gaussian.true_conditionals(m.cov, m.n_u)
    xs = rng.multivariate_normal(np.zeros(m.n_u), m.cov[: m.n_u, : m.n_u], size=4000)
    vals = np.array([gaussian.gaussian_kl(N_v @ x, Sig_v, M_v @ x, S_v) for x in xs])
    assert abs(vals.mean() - kv) <= 5 * vals.std(ddof=1) / np.sqrt(len(vals))


def test_bilinear_balanced_loss_grad_matches_finite_differences():
    rng = np.random.default_rng(5)
    m = _model(5, 3, 3, 2)
    for div, lam in (("forward", 0.0), ("forward", 0.7), ("reverse", 1.0), ("reverse", 0.3)):
        A = rng.standard_normal((3, 3))
        g = variants.bilinear_balanced_loss_grad(A, m.cov, m.n_u, lam, divergence=div)
        D = rng.standard_normal((3, 3))
        h = 1e-5
        fd = (variants.bilinear_balanced_loss(A + h * D, m.cov, m.n_u, lam, divergence=div)
              - variants.bilinear_balanced_loss(A - h * D, m.cov, m.n_u, lam, divergence=div)) / (2 * h)
        # central difference: truncation O(h^2 |L'''|) + rounding O(eps |L| / h) ~ 1e-9
        assert abs(fd - np.sum(g * D)) <= 1e-6 * max(1.0, abs(fd))


def test_l2_infonce_grad_matches_finite_differences():
    rng = np.random.default_rng(6)
    m = _model(6, 3, 2, 2)
    H_u, H_v = _encoders(rng, m)
    vals, grads = variants.l2_infonce_terms_grad(H_u, H_v, m.cov, m.n_u)
    for k in range(3):
        for which in range(2):
            D = rng.standard_normal((H_u, H_v)[which].shape)
            h = 1e-5

            def val(t, k=k, which=which, D=D):
                pair = [H_u, H_v]
                pair[which] = pair[which] + t * D
                return variants.l2_infonce_terms(pair[0], pair[1], 1.0, m.cov, m.n_u)[k]

            fd = (val(h) - val(-h)) / (2 * h)
            assert abs(fd - np.sum(grads[k][which] * D)) <= 1e-6 * max(1.0, abs(fd))


def test_g3_minimum_zero_at_full_rank_and_positive_below():
    """The G3 minimum against two independent routes: the KL of the closed-form minimiser's
    conditionals (l2_kl_terms: Woodbury tilt + Gaussian KL), and, at n_e = 0 in effect,
    the mutual information (Cholesky log-determinants): the one-sided KL at G = 0 is
    E KL(mu_{v|u} || mu_v) = I."""
    m = random_gaussian_model(np.random.default_rng(7), 3, 3, n_e=3)
    assert variants.l2_one_sided_minimum(m.cov, m.n_u, 3) == 0.0
    tol = closed_form_tolerance(m.cov.shape[0], m.condition_number, 10.0)
    for n_e in (1, 2):
        G_u, G_v = variants.l2_one_sided_minimizer(m.cov, m.n_u, n_e, tau=0.7)
        kv, _ = variants.l2_kl_terms(G_u, G_v, 0.7, m.cov, m.n_u)
        assert variants.l2_one_sided_minimum(m.cov, m.n_u, n_e) == pytest.approx(kv, abs=tol)
        assert kv > 0
    kv0, _ = variants.l2_kl_terms(np.zeros((1, 3)), np.zeros((1, 3)), 1.0, m.cov, m.n_u)
    assert kv0 == pytest.approx(gaussian.mutual_information(m.cov, m.n_u), abs=tol)
    assert variants.l2_one_sided_minimum(m.cov, m.n_u, 1) < kv0


def test_projected_regression_maps_full_rank_is_exact():
    m = random_gaussian_model(np.random.default_rng(8), 2, 3, n_e=2)
    PM_v, PM_u = variants.projected_regression_maps(m.cov, m.n_u, 2)
    M_v, _, M_u, _ = gaussian.true_conditionals(m.cov, m.n_u)
    tol = closed_form_tolerance(m.cov.shape[0], m.condition_number, 10.0)
    assert np.linalg.norm(PM_v - M_v) <= tol and np.linalg.norm(PM_u - M_u) <= tol


# --------------------------------------------------------------------------
# bias of the nested log-mean-exp, used by the Monte Carlo tests
# --------------------------------------------------------------------------
def _gauss_det_half(M):
    sign, logdet = np.linalg.slogdet(M)
    assert sign > 0
    return float(np.exp(-0.5 * logdet))


def _batch_bias_coefficients(A, cov, n_u):
    r"""First-order bias coefficients ``(b_row, b_col)`` of the nested log-mean-exp for the
    bilinear logit: E[row term] = exact + b_row / N + O(N^-2) (delta method, MATH.md §2):
    b_row = E e^f/Z_v(u) - E_u E_v' e^{2f}/(2 Z_v(u)^2) - 1/2, each a Gaussian integral
    E e^{x^T Q x / 2} = det(I - Q C)^{-1/2} (Z_v(u) = e^{q(u)/2}, q = u^T A C_vv A^T u)."""
    C_uu, _, C_vv = gaussian.split_covariance(cov, n_u)
    n_v = cov.shape[0] - n_u
    Mv, Mu = A @ C_vv @ A.T, A.T @ C_uu @ A
    Qr = np.block([[-Mv, A], [A.T, np.zeros((n_v, n_v))]])
    Qc = np.block([[np.zeros((n_u, n_u)), A], [A.T, -Mu]])
    eye = np.eye(cov.shape[0])
    b_row = _gauss_det_half(eye - Qr @ cov) - 0.5 * _gauss_det_half(np.eye(n_u) - 2 * Mv @ C_uu) - 0.5
    b_col = _gauss_det_half(eye - Qc @ cov) - 0.5 * _gauss_det_half(np.eye(n_v) - 2 * Mu @ C_vv) - 0.5
    return b_row, b_col


def test_bilinear_logit_variance_formula_by_sampling():
    """Var(u^T A v) = tr(A C_vv A^T C_uu) + tr(A C_vu A C_vu) for Gaussian (u, v): 5 SE."""
    rng = np.random.default_rng(19)
    m = _model(19, 2, 3, 1)
    A = rng.standard_normal((m.n_u, m.n_v))
    C_uu, C_uv, C_vv = gaussian.split_covariance(m.cov, m.n_u)
    z = rng.standard_normal((200000, m.cov.shape[0])) @ np.linalg.cholesky(m.cov).T
    f = np.einsum("ij,jk,ik->i", z[:, :m.n_u], A, z[:, m.n_u:])
    var_f = np.trace(A @ C_vv @ A.T @ C_uu) + np.trace(A @ C_uv.T @ A @ C_uv.T)
    # SE of the sample variance: sqrt((mu_4 - sigma^4) / n), from the fourth central moment.
    se = np.sqrt((np.mean((f - f.mean()) ** 4) - np.var(f) ** 2) / f.size)
    assert abs(np.var(f) - var_f) <= 5 * se


@pytest.mark.parametrize("call", [
    lambda m: variants.bilinear_kl_terms(np.zeros((m.n_u, m.n_v)), m.cov, m.n_u, divergence="both"),
    lambda m: variants.bilinear_balanced_loss(np.zeros((m.n_u, m.n_v)), m.cov, m.n_u, 1.5),
    lambda m: variants.bilinear_balanced_loss(np.zeros((m.n_v, m.n_u + 1)), m.cov, m.n_u, 0.5),
    lambda m: variants.l2_kl_terms(np.zeros((1, m.n_u)), np.zeros((2, m.n_v)), 1.0, m.cov, m.n_u),
    lambda m: variants.l2_kl_terms(np.zeros((1, m.n_u)), np.zeros((1, m.n_v)), 0.0, m.cov, m.n_u),
    lambda m: variants.l2_conditionals(np.full((1, m.n_u), np.nan), np.zeros((1, m.n_v)), 1.0,
                                       m.cov, m.n_u),
    lambda m: variants.l2_one_sided_minimum(m.cov, m.n_u, 0),
    lambda m: infonce.infonce_loss(np.zeros((3, 4)), 0.5),
    lambda m: variants.balanced_loss(-1.0, 0.0, 0.5),
    lambda m: infonce.logits(np.zeros((4, 1)), np.zeros((4, 1)), 1.0, similarity="angular"),
    lambda m: montecarlo.balanced_loss_mc(np.ones((1, m.n_u)), np.ones((1, m.n_v)), 1.0,
                                          m.cov, m.n_u, 0.5, n_samples=10, batch=8),
])
def test_invalid_input_raises(call):
    with pytest.raises(InvalidInputError):
        call(_model(0))


# --------------------------------------------------------------------------
# the registered checks pass, and fail on perturbed formulas
# --------------------------------------------------------------------------
MODELS = default_models(0, 8)


def _passes(cases):
    return len(cases) > 0 and all(c.passed for c in cases)


def test_g2_closed_form_passes_and_detects_perturbations():
    rng = np.random.default_rng(12)
    assert _passes(vchecks.check_g2_closed_form(MODELS, rng))

    def shifted_means(A, cov, n_u):
        N_v, S_v, N_u, S_u = gaussian.bilinear_model_conditionals(A, cov, n_u)
        return 1.01 * N_v, S_v, N_u, S_u

    def true_covariances(A, cov, n_u):
        N_v, _, N_u, _ = gaussian.bilinear_model_conditionals(A, cov, n_u)
        _, S_v, _, S_u = gaussian.true_conditionals(cov, n_u)
        return N_v, S_v, N_u, S_u

    assert not _passes(vchecks.check_g2_closed_form(MODELS, rng, conditionals=shifted_means))
    assert not _passes(vchecks.check_g2_closed_form(MODELS, rng, conditionals=true_covariances))


def test_g2_optimization_passes_and_detects_perturbation():
    rng = np.random.default_rng(13)
    assert _passes(vchecks.check_g2_optimization(MODELS, rng, max_models=5))

    def scaled_loss(A, cov, n_u, lam, *, divergence):
        return variants.bilinear_balanced_loss(0.9 * A, cov, n_u, lam, divergence=divergence)

    def scaled_grad(A, cov, n_u, lam, *, divergence):
        return 0.9 * variants.bilinear_balanced_loss_grad(0.9 * A, cov, n_u, lam, divergence=divergence)

    assert not _passes(vchecks.check_g2_optimization(MODELS, rng, loss=scaled_loss,
                                                     loss_grad=scaled_grad, max_models=5))


def test_g3_closed_form_passes_and_detects_perturbations():
    rng = np.random.default_rng(14)
    assert _passes(vchecks.check_g3_closed_form(MODELS, rng))

    def wrong_minimizer(cov, n_u, n_e, tau):
        G_u, G_v = variants.l2_one_sided_minimizer(cov, n_u, n_e, tau)
        return G_u, 1.05 * G_v

    def wrong_minimum(cov, n_u, n_e):  # sum over i >= n_e instead of i > n_e
        s = gaussian.canonical_correlations(cov, n_u)
        return -0.5 * float(np.sum(np.log1p(-s[n_e - 1:] ** 2)))

    assert not _passes(vchecks.check_g3_closed_form(MODELS, rng, minimizer=wrong_minimizer))
    assert not _passes(vchecks.check_g3_closed_form(MODELS, rng, minimum=wrong_minimum))

    def infonce_without_half(G_u, G_v, tau, cov, n_u):  # E log Z_v missing the 1/2 on logdet
        Ef, lzv, lzu = variants.l2_infonce_terms(G_u, G_v, tau, cov, n_u)
        X = G_v @ cov[n_u:, n_u:] @ G_v.T / tau
        return Ef, lzv - 0.5 * np.linalg.slogdet(np.eye(len(X)) + X)[1], lzu

    assert not _passes(vchecks.check_g3_closed_form(MODELS, rng, infonce_terms=infonce_without_half))


def test_g3_optimization_passes_and_detects_perturbation():
    rng = np.random.default_rng(15)
    assert _passes(vchecks.check_g3_optimization(MODELS, rng, max_models=5))

    def two_sided(cov, n_u, lam):  # optimises the wrong (two-sided) loss
        return variants.l2_balanced_objective(cov, n_u, 0.5)

    assert not _passes(vchecks.check_g3_optimization(MODELS, rng, objective=two_sided,
                                                     max_models=5))


def _fd_objective(value):
    """Objective with central finite-difference gradients, for perturbed formulas."""
    def objective(H_u, H_v):
        x = np.concatenate([H_u.ravel(), H_v.ravel()])
        nu = H_u.size

        def f(y):
            return value(y[:nu].reshape(H_u.shape), y[nu:].reshape(H_v.shape))

        g = np.empty_like(x)
        for i in range(x.size):
            e = np.zeros_like(x)
            e[i] = 1e-6
            g[i] = (f(x + e) - f(x - e)) / 2e-6
        return f(x), (g[:nu].reshape(H_u.shape), g[nu:].reshape(H_v.shape))
    return objective


def test_g4_passes_and_fails_when_model_covariances_are_free():
    rng = np.random.default_rng(16)
    assert _passes(vchecks.check_g4_optimization(MODELS, rng, max_models=4))

    # Perturbed formula: an L2 model whose conditional covariances equal the data's.
    # Then both conditionals can be matched (the block-inverse identity
    # S_v^{-1} C_vu C_uu^{-1} = C_vv^{-1} C_vu S_u^{-1}), the minimum is 0 and G4 must fail.
    def objective(cov, n_u, lam):
        def value(H_u, H_v):
            # mean maps S H^T H as if the covariance were the data's
            M_v, S_v, M_u, S_u = gaussian.true_conditionals(cov, n_u)
            C_uu, _, C_vv = gaussian.split_covariance(cov, n_u)
            D_v = S_v @ H_v.T @ H_u - M_v
            D_u = S_u @ H_u.T @ H_v - M_u
            return 0.25 * (np.trace(D_v.T @ np.linalg.solve(S_v, D_v) @ C_uu)
                           + np.trace(D_u.T @ np.linalg.solve(S_u, D_u) @ C_vv))
        return _fd_objective(value)

    def free_cov_kl_consistent(G_u, G_v, tau, cov, n_u):
        M_v, S_v, M_u, S_u = gaussian.true_conditionals(cov, n_u)
        C_uu, _, C_vv = gaussian.split_covariance(cov, n_u)
        D_v = S_v @ G_v.T @ G_u / tau - M_v
        D_u = S_u @ G_u.T @ G_v / tau - M_u
        return (0.5 * np.trace(D_v.T @ np.linalg.solve(S_v, D_v) @ C_uu),
                0.5 * np.trace(D_u.T @ np.linalg.solve(S_u, D_u) @ C_vv))

    assert not _passes(vchecks.check_g4_optimization(MODELS, rng, objective=objective,
                                                     kl_terms=free_cov_kl_consistent,
                                                     max_models=2))


def test_bad_inputs_raise_naming_the_argument():
    m = _model(0)
    ones_u, ones_v = np.ones((1, m.n_u)), np.ones((1, m.n_v))
    obj = variants.l2_balanced_objective(m.cov, m.n_u, 0.5)
    cases = [
        ("G_u", lambda: variants.l2_kl_terms(1e200 * ones_u, ones_v, 1.0, m.cov, m.n_u)),
        ("tau", lambda: variants.l2_kl_terms(ones_u, ones_v, 1e-320, m.cov, m.n_u)),
        ("tau", lambda: variants.l2_infonce_terms(ones_u, ones_v, 1e-320, m.cov, m.n_u)),
        ("kl_v", lambda: variants.balanced_loss("a", 0.2, 0.5)),
        ("H_u", lambda: variants.l2_infonce_terms_grad(np.ones((1, 9)), ones_v, m.cov, m.n_u)),
        ("H_v", lambda: variants.l2_infonce_terms_grad(ones_u, 1e200 * ones_v, m.cov, m.n_u)),
        ("kl_u", lambda: variants.balanced_loss(0.2, np.ones(2), 0.5)),
        ("rng", lambda: montecarlo.balanced_loss_mc(ones_u, ones_v, 1.0, m.cov, m.n_u, 0.5, rng=3)),
        ("rng", lambda: montecarlo.balanced_kl_mc(ones_u, ones_v, 1.0, m.cov, m.n_u, 0.5, rng=3)),
        ("G_u", lambda: montecarlo.balanced_loss_mc(0 * ones_u, ones_v, 1.0, m.cov, m.n_u,
                                                    0.5, similarity="cosine")),
        ("zb", lambda: infonce.logits(np.ones((4, 1)), np.zeros((4, 1)), 1.0, similarity="cosine")),
        ("n_u", lambda: minimize_factors(obj, "2", m.n_v, 1)),
        ("init", lambda: minimize_factors(obj, m.n_u, m.n_v, 1, init=("x",))),
        ("init[0]", lambda: minimize_factors(obj, m.n_u, m.n_v, 1, init=(np.ones((1, 9)), ones_v))),
        ("rng", lambda: minimize_factors(obj, m.n_u, m.n_v, 1, rng=5)),
        ("batch", lambda: montecarlo.balanced_loss_mc(ones_u, ones_v, 1.0, m.cov, m.n_u,
                                                      0.5, batch="8")),
        ("F", lambda: infonce.infonce_loss(np.array([[1e308, -1e308],
                                                     [-1e308, 1e308]])[::-1], 0.5)),
    ]
    for name, call in cases:
        with pytest.raises(InvalidInputError, match=rf"^{re.escape(name)}="):
            call()


def test_ill_conditioned_covariance_is_rejected():
    cov = np.diag([1.0, 1e-15, 1.0, 1.0])
    with pytest.raises(InvalidInputError, match="^cov="):
        variants.bilinear_kl_terms(np.zeros((2, 2)), cov, 2)


# --------------------------------------------------------------------------
# Monte Carlo estimates of L_lambda (numerics.montecarlo)
# --------------------------------------------------------------------------
def test_monte_carlo_balanced_loss_agrees_with_bilinear_closed_form():
    r"""MC estimate of L_lambda (InfoNCE route) for bilinear encoders vs the closed form plus the
    first-order Jensen bias b_lambda / batch of the nested log-mean-exp, within 5 standard
    errors.  The O(batch^-2) remainder is allowed (2 b / batch)^2 + ((e^{Var f} - 1)/batch)^2,
    Var f = tr(A C_vv A^T C_uu) + tr(A C_vu A C_vu) (Isserlis; the (E f)^2 terms cancel):
    about 1e-6 here against a standard error near 2e-3 (b / batch is -6e-4)."""
    rng = np.random.default_rng(10)
    m = _model(10, 2, 2, 1)
    # Scale 0.3: the delta-method coefficient needs E e^{q(u)} < inf, i.e. the spectral
    # radius of 2 A C_vv A^T C_uu below 1 (0.27 here; at scale 0.5 it is 2.1, the
    # weights e^f/Z have infinite variance and the bias is not O(1/batch)).
    G_u, G_v = _encoders(rng, m, scale=0.3)
    lam = 0.3
    A = G_u.T @ G_v
    r = montecarlo.balanced_loss_mc(G_u, G_v, 1.0, m.cov, m.n_u, lam, similarity="dot",
                                    n_samples=65536, batch=512, rng=rng)
    est, se = r.estimate, r.standard_error
    exact = variants.bilinear_balanced_loss(A, m.cov, m.n_u, lam)
    C_uu, C_uv, C_vv = gaussian.split_covariance(m.cov, m.n_u)
    var_f = np.trace(A @ C_vv @ A.T @ C_uu) + np.trace(A @ C_uv.T @ A @ C_uv.T)
    b_row, b_col = _batch_bias_coefficients(A, m.cov, m.n_u)
    bias = ((1 - lam) * b_row + lam * b_col) / 512
    assert abs(est - exact - bias) <= 5 * se + (2 * bias) ** 2 + (np.expm1(var_f) / 512) ** 2


def test_cosine_monte_carlo_standard_error_matches_spread_of_repeats():
    r"""The reported standard error against the spread of 8 independent repeats.

    Each run has 8 batches, so its se has 7 degrees of freedom; the RMS of the 8
    se's has 56 and the standard deviation of the 8 estimates 7.  Their ratio is
    about sqrt(chi2_7 / 7), whose 0.1 % and 99.9 % quantiles are 0.29 and 1.86:
    the bounds [0.25, 2.0] leave room for the 56-dof denominator and still
    catch a missing sqrt(#batches) (a factor 2.83).
    """
    rng = np.random.default_rng(11)
    m = _model(11, 3, 3, 2)
    G_u, G_v = _encoders(rng, m)
    runs = [montecarlo.balanced_loss_mc(G_u, G_v, 0.5, m.cov, m.n_u, 0.5, similarity="cosine",
                                        n_samples=2048, batch=256, rng=rng) for _ in range(8)]
    est = np.array([r.estimate for r in runs])
    se = np.array([r.standard_error for r in runs])
    assert np.all(np.isfinite(est))
    ratio = np.std(est, ddof=1) / np.sqrt(np.mean(se**2))
    assert 0.25 <= ratio <= 2.0, ratio


def test_monte_carlo_balanced_kl_agrees_with_l2_closed_form():
    """The KL-form Monte Carlo (numerics.montecarlo) vs the L2 closed form: 5 standard errors."""
    rng = np.random.default_rng(17)
    m = _model(17, 2, 2, 1)
    G_u, G_v = _encoders(rng, m, scale=0.7)
    r = montecarlo.balanced_kl_mc(G_u, G_v, 0.8, m.cov, m.n_u, 0.25, similarity="l2",
                                  n_samples=4000, bank_size=1000, rng=rng)
    est, se = r.estimate, r.standard_error
    exact = variants.l2_balanced_loss(G_u, G_v, 0.8, m.cov, m.n_u, 0.25)
    assert abs(est - exact) <= 5 * se


def test_monte_carlo_balanced_kl_cosine_agrees_with_clip_route():
    r"""Cosine, lambda = 1/2: the KL-form estimate minus I equals the population CLIP loss
    (Theorem 3.2), estimated independently from joint samples and a bank
    (numerics.montecarlo.population_clip_loss_mc); 5 combined standard errors.  The
    bank-size biases are O(M^-2) after the delta-method correction (~1e-6 here)."""
    rng = np.random.default_rng(18)
    m = _model(18, 3, 3, 2)
    G_u, G_v = _encoders(rng, m)
    r = montecarlo.balanced_kl_mc(G_u, G_v, 0.5, m.cov, m.n_u, 0.5, similarity="cosine",
                                  n_samples=2000, bank_size=500, rng=rng)
    est, se = r.estimate, r.standard_error
    clip = montecarlo.population_clip_loss_mc(montecarlo.gaussian_sampler(m.cov, m.n_u),
                                              montecarlo.linear_encoder(G_u),
                                              montecarlo.linear_encoder(G_v), 0.5, "cosine",
                                              2000, rng, bank_size=500)
    I = gaussian.mutual_information(m.cov, m.n_u)
    assert est >= 0
    assert abs(est - I - clip.estimate) <= 5 * np.hypot(se, clip.standard_error)


# --------------------------------------------------------------------------
# Checks added by mutation testing (docs/mutation.md): each compares with an
# independent computation (hand formula, another algorithm, a special case).
# --------------------------------------------------------------------------
# Well-conditioned models (condition <= 20, size <= 5): a correct float64 pipeline
# of a few factorisations is accurate to ~1e3 eps ~ 2e-13; 1e-10 keeps a margin of
# 500 and a wrong formula misses by O(0.01) or more.
TOL = 1e-10


def test_l2_conditionals_by_direct_inversion():
    # Sigma_v = (C_vv^{-1} + G_v^T G_v / tau)^{-1} inverted directly (the library uses
    # Woodbury), N_v = Sigma_v G_v^T G_u / tau, and symmetrically for u.
    rng = np.random.default_rng(61)
    m = _model(61, 3, 2, 2)
    G_u, G_v = _encoders(rng, m)
    tau = 0.6
    C_uu, _, C_vv = gaussian.split_covariance(m.cov, m.n_u)
    Sig_v = np.linalg.inv(np.linalg.inv(C_vv) + G_v.T @ G_v / tau)
    Sig_u = np.linalg.inv(np.linalg.inv(C_uu) + G_u.T @ G_u / tau)
    N_v, S_v, N_u, S_u = variants.l2_conditionals(G_u, G_v, tau, m.cov, m.n_u)
    np.testing.assert_allclose(S_v, Sig_v, atol=TOL)
    np.testing.assert_allclose(S_u, Sig_u, atol=TOL)
    np.testing.assert_array_equal(S_v, S_v.T)
    np.testing.assert_array_equal(S_u, S_u.T)
    np.testing.assert_allclose(N_v, Sig_v @ G_v.T @ G_u / tau, atol=TOL)
    np.testing.assert_allclose(N_u, Sig_u @ G_u.T @ G_v / tau, atol=TOL)


def _sigma_point_average(f, C):
    """E f(x), x ~ N(0, C), exactly for f quadratic: the 2n points +-sqrt(n) L e_i
    (C = L L^T) with equal weights have mean 0 and second moment exactly C."""
    n = C.shape[0]
    L = np.linalg.cholesky(C)
    pts = [s * np.sqrt(n) * L[:, i] for i in range(n) for s in (1.0, -1.0)]
    return float(np.mean([f(x) for x in pts]))


@pytest.mark.parametrize("divergence", ["forward", "reverse"])
def test_l2_kl_terms_by_pointwise_gaussian_kl(divergence):
    # E_x KL of the conditionals = the average over x of the pointwise Gaussian KL
    # (numerics.gaussian.gaussian_kl at each x), which is quadratic in x: the sigma-point
    # average is exact.  Conditionals: model from l2_conditionals (checked above by
    # direct inversion), data from the precision matrix (Schur complements).
    rng = np.random.default_rng(62)
    m = _model(62, 2, 3, 2)
    G_u, G_v = _encoders(rng, m)
    tau = 0.9
    N_v, Sig_v, N_u, Sig_u = variants.l2_conditionals(G_u, G_v, tau, m.cov, m.n_u)
    P = np.linalg.inv(m.cov)
    n_u = m.n_u
    S_v, S_u = np.linalg.inv(P[n_u:, n_u:]), np.linalg.inv(P[:n_u, :n_u])
    M_v, M_u = -S_v @ P[n_u:, :n_u], -S_u @ P[:n_u, n_u:]
    C_uu, _, C_vv = gaussian.split_covariance(m.cov, n_u)

    def kl(mt, St, mm, Sm):
        return gaussian.gaussian_kl(mt, St, mm, Sm) if divergence == "forward" else \
            gaussian.gaussian_kl(mm, Sm, mt, St)

    ref_v = _sigma_point_average(lambda x: kl(M_v @ x, S_v, N_v @ x, Sig_v), C_uu)
    ref_u = _sigma_point_average(lambda y: kl(M_u @ y, S_u, N_u @ y, Sig_u), C_vv)
    kv, ku = variants.l2_kl_terms(G_u, G_v, tau, m.cov, n_u, divergence=divergence)
    assert kv == pytest.approx(ref_v, abs=TOL) and ku == pytest.approx(ref_u, abs=TOL)
    kv_b, ku_b = variants.bilinear_kl_terms(G_u.T @ G_v / tau, m.cov, n_u, divergence=divergence)
    N_vb, Sb_v, N_ub, Sb_u = gaussian.bilinear_model_conditionals(G_u.T @ G_v / tau, m.cov, n_u)
    assert kv_b == pytest.approx(_sigma_point_average(
        lambda x: kl(M_v @ x, S_v, N_vb @ x, Sb_v), C_uu), abs=TOL)
    assert ku_b == pytest.approx(_sigma_point_average(
        lambda y: kl(M_u @ y, S_u, N_ub @ y, Sb_u), C_vv), abs=TOL)
    # the balanced losses weigh them lambda (u|v) and 1 - lambda (v|u)
    for lam in (0.0, 0.3, 1.0):
        assert variants.l2_balanced_loss(G_u, G_v, tau, m.cov, n_u, lam, divergence=divergence) == \
            pytest.approx(lam * ref_u + (1 - lam) * ref_v, abs=TOL)


def test_balanced_loss_by_hand():
    assert variants.balanced_loss(1.0, 3.0, 0.25) == 0.25 * 3.0 + 0.75 * 1.0
    assert variants.balanced_loss(1.0, 3.0, 0.0) == 1.0
    assert variants.balanced_loss(1.0, 3.0, 1.0) == 3.0
    assert variants.balanced_loss(np.float32(2.0), 0, 0.5) == 1.0
    for bad in (np.nan, -0.1, np.inf, [1.0], True, "1"):
        with pytest.raises(InvalidInputError, match="^kl_v="):
            variants.balanced_loss(bad, 1.0, 0.5)


def _diag_model(sigma, d_u=(1.0, 4.0, 2.0), d_v=(9.0, 0.5)):
    return gaussian.joint_covariance(np.diag(d_u), np.diag(d_v), sigma), np.array(d_u), np.array(d_v)


def test_projected_regression_maps_truncated_by_hand():
    # Diagonal marginals D_u, D_v and identity directions: C_uv = D_u^{1/2} diag(sigma) D_v^{1/2},
    # K = diag(sigma), so P_v M_v = D_v^{1/2} diag(sigma_1, 0)^T D_u^{-1/2} for n_e = 1.
    cov, d_u, d_v = _diag_model([0.8, 0.5])
    PM_v, PM_u = variants.projected_regression_maps(cov, 3, 1)
    S = np.zeros((3, 2))
    S[0, 0] = 0.8
    expected_u = np.sqrt(d_u)[:, None] * S / np.sqrt(d_v)[None, :]
    expected_v = np.sqrt(d_v)[:, None] * S.T / np.sqrt(d_u)[None, :]
    assert PM_v.shape == (2, 3) and PM_u.shape == (3, 2)
    np.testing.assert_allclose(PM_v, expected_v, atol=1e-14)
    np.testing.assert_allclose(PM_u, expected_u, atol=1e-14)


def test_one_sided_minimizer_by_hand():
    # Identity marginals, identity directions: canonical coordinates are the coordinates, so
    # G_u = diag(a) and G_v = diag(b) on the top n_e pairs with b^2 = tau s^2/(1 - s^2),
    # a b = tau s/(1 - s^2) (Proposition G3); a zero correlation leaves the pair at 0.
    tau = 0.7
    cov = gaussian.joint_covariance(np.eye(3), np.eye(2), [0.6, 0.0])
    G_u, G_v = variants.l2_one_sided_minimizer(cov, 3, 2, tau=tau)
    assert G_u.shape == (2, 3) and G_v.shape == (2, 2)
    s = 0.6
    b = np.sqrt(tau * s**2 / (1 - s**2))
    a = tau * s / (1 - s**2) / b
    np.testing.assert_allclose(np.abs(G_u), [[a, 0, 0], [0, 0, 0]], atol=1e-14)
    np.testing.assert_allclose(np.abs(G_v), [[b, 0], [0, 0]], atol=1e-14)
    assert G_u[0, 0] * G_v[0, 0] > 0  # same canonical sign on both sides
    # the minimum: -1/2 sum_{i > n_e} log(1 - s_i^2), here n_e = 1 and the rest is 0
    cov = gaussian.joint_covariance(np.eye(3), np.eye(3), [0.8, 0.5, 0.3])
    assert variants.l2_one_sided_minimum(cov, 3, 1) == pytest.approx(
        -0.5 * (np.log(1 - 0.25) + np.log(1 - 0.09)), rel=1e-14)


def _one_pair_two_sided_by_hand(c, s):
    # One canonical pair, unit variances, scalar encoders a = b = c at tau = 1:
    # Sigma = 1/(1 + c^2), model mean Sigma c^2 x, data N(s x, 1 - s^2); both directions
    # are equal by symmetry: E KL = 1/2[(1-s^2)/Sigma - 1 + (Sigma c^2 - s)^2/Sigma
    # + log(Sigma/(1-s^2))].
    Sig = 1.0 / (1.0 + c**2)
    return 0.5 * ((1 - s**2) / Sig - 1 + (Sig * c**2 - s) ** 2 / Sig + np.log(Sig / (1 - s**2)))


def test_two_sided_diagonal_value_by_hand():
    from scipy.optimize import minimize_scalar

    def pair_min(s):
        res = minimize_scalar(lambda t: _one_pair_two_sided_by_hand(np.exp(t), s),
                              bounds=(-12, 6), method="bounded", options={"xatol": 1e-12})
        return res.fun

    # the minimum of a smooth function is insensitive to the argmin to first order:
    # both optimisers land within 1e-10 of it, values agree to ~1e-18; 1e-12 margin.
    sigma = [0.7, 0.0, 0.4]
    assert variants.two_sided_diagonal_value(sigma) == pytest.approx(pair_min(0.7) + pair_min(0.4),
                                                                     abs=1e-12)
    assert variants.two_sided_diagonal_value([0.0, 0.0]) == 0.0
    assert _one_pair_two_sided_by_hand(1.0, 0.5) == pytest.approx(
        0.5 * sum(variants.l2_kl_terms([[1.0]], [[1.0]], 1.0, np.array([[1.0, 0.5], [0.5, 1.0]]), 1)),
        rel=1e-13)
    with pytest.raises(InvalidInputError, match="^sigma="):
        variants.two_sided_diagonal_value([0.5, 1.0])


def test_l2_balanced_objective_matches_kl_route_and_finite_differences():
    # The InfoNCE-route objective (H = G / sqrt(tau), so tau = 1) equals the KL-route
    # forward L_lambda, and its gradient matches central differences (h = 1e-5:
    # truncation ~1e-10, rounding ~1e-11; 1e-6 relative as in the tests above).
    rng = np.random.default_rng(63)
    m = _model(63, 3, 2, 2)
    H_u, H_v = _encoders(rng, m, scale=0.5)
    for lam in (0.0, 0.35, 1.0):
        obj = variants.l2_balanced_objective(m.cov, m.n_u, lam)
        value, (g_u, g_v) = obj(H_u, H_v)
        assert value == pytest.approx(variants.l2_balanced_loss(H_u, H_v, 1.0, m.cov, m.n_u, lam),
                                      abs=TOL)
        for which, g in ((0, g_u), (1, g_v)):
            D = rng.standard_normal(g.shape)
            h = 1e-5
            pair_p, pair_m = [H_u, H_v], [H_u, H_v]
            pair_p[which] = pair_p[which] + h * D
            pair_m[which] = pair_m[which] - h * D
            fd = (obj(*pair_p)[0] - obj(*pair_m)[0]) / (2 * h)
            assert abs(fd - np.sum(g * D)) <= 1e-6 * max(1.0, abs(fd))


def test_tilt_limit_names_the_culprit():
    # |G C G^T| / tau beyond TILT_LIMIT = 1e12: the temperature is blamed when the encoder
    # alone is fine (|G C G^T| <= 1e12), the encoder otherwise.
    cov = np.eye(2)
    g = np.array([[1.0]])
    with pytest.raises(InvalidInputError, match="^tau="):
        variants.l2_conditionals(g, g, 1e-13, cov, 1)
    variants.l2_conditionals(g, g, 1.01e-12, cov, 1)  # 1/tau just below the limit
    with pytest.raises(InvalidInputError, match="^G_v="):
        variants.l2_conditionals(g, 2e6 * g, 1.0, cov, 1)  # |G C G^T| = 4e12
    with pytest.raises(InvalidInputError, match="^G_u="):
        variants.l2_kl_terms(2e6 * g, g, 1.0, cov, 1)
    with pytest.raises(InvalidInputError, match="^G_v="):
        variants.l2_conditionals(g, np.ones((2, 1)), 1.0, cov, 1)  # n_e of G_v != n_e of G_u


def test_variant_arguments_named_and_bounded():
    # Contract: InvalidInputError starting "<argument>="; n_e <= min(n_u, n_v).
    m = _model(64, 3, 2, 1)
    ones_u, ones_v = np.ones((1, m.n_u)), np.ones((1, m.n_v))
    cases = [
        ("n_e", lambda: variants.projected_regression_maps(m.cov, m.n_u, 3)),
        ("n_e", lambda: variants.l2_one_sided_minimizer(m.cov, m.n_u, 3)),
        ("n_e", lambda: variants.l2_one_sided_minimum(m.cov, m.n_u, 3)),
        ("H_u", lambda: variants.l2_infonce_terms_grad(2e6 * ones_u, ones_v, m.cov, m.n_u)),
        ("H_v", lambda: variants.l2_infonce_terms_grad(ones_u, np.ones((1, m.n_v + 1)), m.cov, m.n_u)),
        ("sigma", lambda: variants.two_sided_diagonal_value([-0.2])),
        ("sigma", lambda: variants.two_sided_diagonal_value([np.nan])),
        ("sigma", lambda: variants.two_sided_diagonal_value([[0.5]])),
    ]
    for name, call in cases:
        with pytest.raises(InvalidInputError, match=rf"^{name}="):
            call()
    # the tilt limit of the scaled encoders is |H C H^T| <= 1e12 (tau = 1): 1.5e12 is refused
    C_uu = m.cov[: m.n_u, : m.n_u]
    g = np.ones((1, m.n_u))
    H = g * np.sqrt(1.5e12 / float((g @ C_uu @ g.T)[0, 0]))
    with pytest.raises(InvalidInputError, match="^H_u="):
        variants.l2_infonce_terms_grad(H, ones_v, m.cov, m.n_u)


def test_one_sided_minimizer_default_temperature_is_one():
    # tau defaults to 1: b = s / sqrt(1 - s^2), a = 1 / sqrt(1 - s^2) on the top pair
    cov = gaussian.joint_covariance(np.eye(2), np.eye(2), [0.6, 0.3])
    G_u, G_v = variants.l2_one_sided_minimizer(cov, 2, 1)
    np.testing.assert_allclose(np.abs(G_u), [[1 / np.sqrt(1 - 0.36), 0.0]], atol=1e-14)
    np.testing.assert_allclose(np.abs(G_v), [[0.6 / np.sqrt(1 - 0.36), 0.0]], atol=1e-14)


def test_two_sided_diagonal_value_raises_no_warning():
    # a mistyped optimiser option would only warn (OptimizeWarning): warnings are errors here
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert variants.two_sided_diagonal_value([0.5]) > 0


def test_balanced_loss_grad_default_divergence_and_errors():
    # documented default: the forward divergence; Theorem 3.2 at lambda = 1/2 makes the
    # forward gradient that of L_clip + I, i.e. -C_uv + C_uu A C_vv (MATH.md §4.1)
    m = _model(65, 2, 3, 1)
    A = np.random.default_rng(65).standard_normal((2, 3))
    C_uu, C_uv, C_vv = gaussian.split_covariance(m.cov, 2)
    np.testing.assert_allclose(variants.bilinear_balanced_loss_grad(A, m.cov, 2, 0.5),
                               -C_uv + C_uu @ A @ C_vv, atol=TOL)
    with pytest.raises(InvalidInputError, match="^divergence="):
        variants.bilinear_balanced_loss_grad(A, m.cov, 2, 0.5, divergence="both")


def test_kl_terms_defaults_names_and_tilt_boundaries():
    import warnings

    m = _model(66, 2, 2, 1)
    A = np.random.default_rng(66).standard_normal((2, 2))
    # default divergence is the forward KL; by Theorem 3.2 each forward term of the
    # bilinear model is L_clip + I (MATH.md §4.1: both equal 1/2|B-K|^2 - 1/2|K|^2 + I)
    kv, ku = variants.bilinear_kl_terms(A, m.cov, 2)
    target = gaussian.population_clip_loss(A, m.cov, 2) + gaussian.mutual_information(m.cov, 2)
    assert kv == pytest.approx(target, abs=TOL) and ku == pytest.approx(target, abs=TOL)
    ones = np.ones((1, 2))
    cases = [
        ("divergence", lambda: variants.bilinear_kl_terms(A, m.cov, 2, divergence="both")),
        ("divergence", lambda: variants.l2_kl_terms(ones, ones, 1.0, m.cov, 2, divergence="both")),
        ("A", lambda: variants.bilinear_kl_terms(1e200 * np.ones((2, 2)), m.cov, 2)),
        ("G_u", lambda: variants.l2_conditionals(np.zeros((0, 2)), np.zeros((0, 2)), 1.0, m.cov, 2)),
        ("G_u", lambda: variants.l2_conditionals([[np.nan, 0.0]], ones, 1.0, m.cov, 2)),
        ("G_u", lambda: variants.l2_kl_terms(1e200 * ones, ones, 1.0, m.cov, 2)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overflow inside the checks is no warning
        for name, call in cases:
            with pytest.raises(InvalidInputError, match=rf"^{name}="):
                call()
    # TILT_LIMIT = 1e12 on the spectral norm |G C G^T|_2 / tau, inclusive:
    eye = np.eye(2)
    g = np.array([[1e6]])                           # |G C G^T| = 1e12 exactly
    variants.l2_conditionals(g, g, 1.0, eye, 1)     # at the limit: accepted
    with pytest.raises(InvalidInputError, match="^tau="):  # encoder at the limit, tau blamed
        variants.l2_conditionals(g, g, 0.5, eye, 1)
    G = np.sqrt(0.9e12) * np.eye(2)                  # spectral 0.9e12, Frobenius 1.27e12
    variants.l2_conditionals(G, G, 1.0, np.eye(4), 2)


def test_tilt_check_of_mixed_sign_huge_encoder_raises_no_warning():
    # G C G^T of a huge encoder with entries of both signs is inf - inf (NumPy "invalid"):
    # still the InvalidInputError naming the encoder, and no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InvalidInputError, match="^G_u="):
            # (G C)_1 = 2e308 - 2e308 with C_uu = [[2, 2], [2, 3]]: inf - inf
            cov = np.eye(4)
            cov[:2, :2] = [[2.0, 2.0], [2.0, 3.0]]
            variants.l2_conditionals(1e308 * np.array([[1.0, -1.0]]), np.ones((1, 2)), 1.0, cov, 2)
