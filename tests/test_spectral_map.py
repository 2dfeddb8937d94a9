"""Tests of numerics.spectral_map against independent computations: closed-form maps of
population losses (minimised here by a generic optimiser, not by the module), the
canonical correlations of numerics.gaussian, and synthetic replicate data with known truth."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

from numerics import gaussian, variants
from numerics._validation import InvalidInputError
from numerics.encoders import LinearEncoders, population_minimizer
from numerics.spectral_map import (DEFAULT_GRID, DEFAULT_PAIR_SIGMAS, canonical_frame, canonical_map,
                                   clip_canonical_limit, control_variate_interval, correlation_scale,
                                   extrapolation_allowance, extrapolation_bound, l2_clip_coefficient,
                                   l2_correlation, limit_intercepts, mixing_statistics, off_diagonal_test,
                                   optimisation_floor, pair_model, replicate_interval, scalar_model, widened)


def _encoders_with_map(model, g):
    """Encoders whose whitened canonical map is diag(g), built from the canonical directions
    (G_u = diag(g) U^T C_uu^{-1/2}, G_v = V^T C_vv^{-1/2}), independently of canonical_map."""
    C_uu, _, C_vv = gaussian.split_covariance(model.cov, model.n_u)
    U, _, Vt = gaussian.canonical_directions(model.cov, model.n_u)
    return (np.asarray(g)[:, None] * U.T) @ gaussian.sym_power(C_uu, -0.5), Vt @ gaussian.sym_power(C_vv, -0.5)


def test_models_have_the_prescribed_correlations():
    rng = np.random.default_rng(0)
    assert np.allclose(gaussian.canonical_correlations(scalar_model(0.35).cov, 1), [0.35], atol=1e-14)
    m = pair_model((0.3, 0.7), rng)
    # eigenvalues of C_uu^-1 C_uv C_vv^-1 C_vu are sigma^2 (MATH.md §4): an independent route
    C_uu, C_uv, C_vv = gaussian.split_covariance(m.cov, m.n_u)
    ev = np.sort(np.linalg.eigvals(np.linalg.solve(C_uu, C_uv) @ np.linalg.solve(C_vv, C_uv.T)).real)
    assert np.allclose(np.sqrt(ev), [0.3, 0.7], atol=1e-10)
    assert m.n_e == 2 and m.condition_number > 1.5  # the whitening is exercised
    for s in DEFAULT_GRID:
        assert 0 < s < 1
    assert all(s in DEFAULT_GRID for p in DEFAULT_PAIR_SIGMAS for s in p)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, float("nan")])
def test_bad_correlations_are_refused_by_name(bad):
    with pytest.raises(InvalidInputError, match="sigma"):
        scalar_model(bad)
    with pytest.raises(InvalidInputError, match="sigmas"):
        pair_model((0.5, bad), np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="sigmas"):
        pair_model((0.5, 0.5), np.random.default_rng(0))


def test_canonical_map_of_clip_minimiser_is_diag_sigma_and_invariant():
    rng = np.random.default_rng(1)
    m = pair_model((0.75, 0.35), rng)
    fam = LinearEncoders(m, "dot")
    x = population_minimizer(fam)
    M = canonical_map(fam, x, 1.0)
    # Proposition G1: B* = U diag(sigma) V^T, so M = diag(sigma); rounding only (eps x cond)
    assert np.allclose(M, np.diag([0.75, 0.35]), atol=1e-10)
    G_u, G_v = fam.split(x)
    Q = rng.standard_normal((2, 2)) + 3 * np.eye(2)  # (G_u, G_v) -> (Q G_u, Q^-T G_v) leaves A unchanged
    M2 = canonical_map(fam, fam.pack(Q @ G_u, np.linalg.solve(Q.T, G_v)), 1.0)
    assert np.allclose(M2, M, atol=1e-10)
    # the multiplier scales the map (the loss's logit scale folded in)
    assert np.allclose(canonical_map(fam, x, 2.5), 2.5 * M, atol=1e-10)
    assert np.allclose(clip_canonical_limit([0.75, 0.35], "dot"), np.diag([0.75, 0.35]))


def test_canonical_map_reads_back_a_prescribed_map():
    m = pair_model((0.55, 0.15), np.random.default_rng(2))
    fam = LinearEncoders(m, "dot")
    G_u, G_v = _encoders_with_map(m, [0.42, -0.07])
    assert np.allclose(canonical_map(fam, fam.pack(G_u, G_v), 1.0), np.diag([0.42, -0.07]), atol=1e-10)
    mass, angle = mixing_statistics(np.diag([0.42, -0.07]))
    assert mass == 0.0 and angle == 0.0


def _alignment_weighted_population(kappa, sigma):
    """-kappa tr(B K^T) + 1/2 ||B||^2 for one pair (E log Z = ||B||^2/2, MATH.md §4.1)."""
    return lambda b: -kappa * b * sigma + 0.5 * b * b


@pytest.mark.parametrize("kappa", [0.8, 0.9, 1.1])
def test_alignment_weighted_map_is_kappa_sigma(kappa):
    for s in (0.15, 0.55, 0.85):
        b = minimize_scalar(_alignment_weighted_population(kappa, s)).x
        assert b == pytest.approx(kappa * s, abs=1e-7)  # the optimiser's tolerance


def test_label_smoothing_map_is_one_minus_eps_sigma():
    # population of the smoothed cross-entropy (MATH.md §4.4): -(1-eps) E f - eps E_u E_v' f
    # + E log Z, with E_u E_v' f = 0 for centred data; minimised by a generic optimiser
    rng = np.random.default_rng(3)
    m = pair_model((0.65, 0.25), rng)
    eps = 0.1
    K = gaussian.whitened_cross_covariance(m.cov, m.n_u)

    def pop(xB):
        B = xB.reshape(2, 2)
        return -(1 - eps) * np.sum(B * K) + 0.5 * np.sum(B * B)  # E_u E_v' f = tr(A E[v]E[u]^T) = 0

    B = minimize(pop, np.zeros(4), tol=1e-12).x.reshape(2, 2)
    U, _, V = canonical_frame(m)
    M = U.T @ B @ V
    assert np.allclose(M, (1 - eps) * np.diag([0.65, 0.25]), atol=1e-6)


def test_siglip_map_closed_form():
    # SigLIP with a learned bias: population -E f + log E_u Z_v(u) = -b sigma - 1/2 log(1 - b^2)
    for s in (0.15, 0.55, 0.85):
        b = minimize_scalar(lambda b: -b * s - 0.5 * math.log(1 - b * b), bounds=(0, 0.999), method="bounded",
                            options={"xatol": 1e-10}).x
        assert b == pytest.approx((math.sqrt(1 + 4 * s * s) - 1) / (2 * s), abs=1e-7)


def test_l2_clip_coefficient_and_its_inverse():
    s = np.linspace(0.02, 0.95, 40)
    h = l2_clip_coefficient(s)
    assert np.allclose(l2_correlation(h), s, atol=1e-12)
    assert np.allclose(l2_correlation(-h), -s, atol=1e-12)
    assert l2_correlation(0.0) == 0.0
    assert np.allclose(correlation_scale(h, "l2"), s) and np.allclose(correlation_scale(s, "dot"), s)


def _l2_pair_loss(kappa, sigma):
    """The alignment-weighted two-sided L2 loss of one pair, scalar encoders a, b (MATH.md §4.2):
    kappa/2 (a^2 + b^2 - 2 a b sigma) + 1/4[log(1+b^2) + a^2/(1+b^2) + log(1+a^2) + b^2/(1+a^2)] with
    the sign of the log-partitions as in l2_infonce_terms (E log Z_v = -1/2 log(1+b^2) - a^2/(2(1+b^2)))."""
    def L(p):
        a, b = p
        Ef = -0.5 * (a * a + b * b - 2 * a * b * sigma)
        Zv = -0.5 * math.log(1 + b * b) - 0.5 * a * a / (1 + b * b)
        Zu = -0.5 * math.log(1 + a * a) - 0.5 * b * b / (1 + a * a)
        return -kappa * Ef + 0.5 * Zv + 0.5 * Zu
    return L


@pytest.mark.parametrize("kappa", [1.0, 0.9, 1.1])
def test_l2_alignment_weighted_map_is_affine(kappa):
    # derived in MATH.md §4.4: under L2 the weight kappa maps sigma to 1 - kappa (1 - sigma)
    for s in (0.25, 0.55, 0.75):
        res = minimize(_l2_pair_loss(kappa, s), [0.8, 0.7], method="BFGS", options={"gtol": 1e-11})
        a, b = res.x
        assert abs(a) == pytest.approx(abs(b), abs=1e-5)  # the symmetric minimiser
        assert l2_correlation(a * b) == pytest.approx(1 - kappa * (1 - s), abs=1e-6)


def test_l2_canonical_map_of_clip_and_one_sided_minimisers():
    m = pair_model((0.75, 0.35), np.random.default_rng(4))
    fam = LinearEncoders(m, "l2")
    x = population_minimizer(fam, np.random.default_rng(0))
    M = canonical_map(fam, x, 1.0)
    assert np.allclose(M, clip_canonical_limit([0.75, 0.35], "l2"), atol=1e-5)  # gtol 1e-10 fit
    G_u, G_v = variants.l2_one_sided_minimizer(m.cov, m.n_u, 2)
    M1 = canonical_map(fam, fam.pack(G_u, G_v), 1.0)
    s = np.array([0.75, 0.35])
    assert np.allclose(np.abs(M1), np.diag(s / (1 - s**2)), atol=1e-10)  # Proposition G3: a b


def test_limit_intercepts_recover_an_exact_1_over_n_law():
    rng = np.random.default_rng(5)
    sizes = [64, 128, 256, 512]
    a = rng.standard_normal((6, 3))
    b = rng.standard_normal((6, 3))
    D = a[:, None, :] + b[:, None, :] / np.array(sizes, float)[None, :, None]
    assert np.allclose(limit_intercepts(sizes, D), a, atol=1e-12)
    with pytest.raises(InvalidInputError, match="sizes"):
        limit_intercepts([64], D[:, :1])


def test_control_variate_interval_reduces_to_paired_difference_and_covers():
    # beta = 1 exactly: the estimate is limit + mean(y - x) (one degree of freedom fewer)
    x = np.array([0.1, 0.3, 0.2, 0.5, 0.4])
    y = x + np.array([0.01, -0.02, 0.0, 0.02, -0.01])
    est = control_variate_interval(y, x, 0.3)
    assert est.estimate == pytest.approx(0.3 + np.mean(y - x) + (np.cov(x, y - x)[0, 1] / np.var(x, ddof=1))
                                         * (0.3 - x.mean()), abs=1e-12)
    # coverage on jointly normal replicates, truth g = 0.4 (kappa-like slope 0.8): 95 % interval,
    # 2000 draws -> Monte Carlo standard error 0.5 %: accept [93.5 %, 96.5 %] (3 s.e.)
    rng = np.random.default_rng(6)
    hits = 0
    for _ in range(2000):
        xc = 0.5 + 0.05 * rng.standard_normal(8)
        yv = 0.4 + 0.8 * (xc - 0.5) + 0.004 * rng.standard_normal(8)
        iv = control_variate_interval(yv, xc, 0.5)
        hits += iv.lower <= 0.4 <= iv.upper
    assert 0.935 <= hits / 2000 <= 0.965
    iv = replicate_interval([1.0, 1.0, 1.0], floor=0.01)
    assert (iv.lower, iv.upper) == (0.99, 1.01)


def test_off_diagonal_test_and_mixing_statistics():
    rng = np.random.default_rng(7)
    p_null = [off_diagonal_test(0.01 * rng.standard_normal((8, 2))) for _ in range(400)]
    # uniform under the null: the 5 % quantile's rate has s.e. 1.1 % over 400 draws
    assert 0.015 <= np.mean(np.array(p_null) < 0.05) <= 0.09
    assert off_diagonal_test(0.05 + 0.01 * rng.standard_normal((8, 2))) < 1e-4
    assert off_diagonal_test(np.zeros((8, 2))) == 1.0
    th = 0.3
    R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    mass, angle = mixing_statistics(R @ np.diag([0.8, 0.3]) @ R.T)
    assert angle == pytest.approx(th, abs=1e-10)
    assert mass > 0.1
    assert optimisation_floor(0.0) > optimisation_floor(0.5) > 0


def test_extrapolation_bound_covers_a_slow_residual():
    # every replicate follows g + c N^-p (p >= 1/2, MATH.md §4.4) plus small noise; the linear
    # 1/N extrapolation misses g by the residual, which the bound must cover
    rng = np.random.default_rng(8)
    sizes = np.array([128, 256, 512], float)
    assert extrapolation_allowance(sizes) == pytest.approx(2.80, abs=0.01)  # largest at p = 1/2

    def ext(v, sl):
        return limit_intercepts(sizes[sl], v[:, sl, None])[:, 0]

    for p in (0.5, 0.7, 1.5, 2.0):
        y = 0.3 + 0.4 * sizes[None, :] ** -p + 1e-4 * rng.standard_normal((8, 3))
        x = 0.5 + 1e-4 * rng.standard_normal((8, 3))     # a control with no bias
        full, early, late = slice(None), slice(0, 2), slice(1, 3)
        raw = control_variate_interval(ext(y, full), ext(x, full), 0.5)
        bound = extrapolation_bound(ext(y, full), ext(x, full), ext(y, early), ext(x, early), ext(y, late),
                                    ext(x, late), sizes)
        iv = widened(raw, bound)
        assert iv.lower <= 0.3 <= iv.upper
        if p == 0.5:  # without the bound the interval misses the truth
            assert not raw.lower <= 0.3 <= raw.upper
    with pytest.raises(InvalidInputError, match="sizes"):
        extrapolation_allowance([128, 256])


def test_fit_thresholded_affine_recovers_a_threshold_exactly():
    from numerics.spectral_map import fit_thresholded_affine

    sigma = np.linspace(0.05, 0.85, 9)
    g = np.maximum(0.9 * sigma - 0.2, 0.0)  # thresholded below sigma = 0.222
    c, d, cov = fit_thresholded_affine(sigma, g, np.full(9, 0.01))
    assert c == pytest.approx(0.9, abs=1e-8) and d == pytest.approx(-0.2, abs=1e-8)
    assert cov.shape == (2, 2) and np.all(np.isfinite(cov))
