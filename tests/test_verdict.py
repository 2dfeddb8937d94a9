"""proofs_checks.verdict: the equivalence-test statistics, on synthetic paired differences
with a known population difference (no fitting involved)."""
import math
import warnings

import numpy as np
import pytest

from proofs_checks.verdict import (CONFIRM_LEVEL, REFUTE_LEVEL, combine, decide, estimate_delta)

SIZES = (64, 128, 256)


def _differences(rng, delta_vec, R, beta=None, noise=1.0, sizes=SIZES):
    r"""D_r(N) = Delta + beta/N + noise * (mean of the first N of N_max unit draws): the
    fluctuation has variance noise^2/N and is nested across sizes like the verifier's batches."""
    d = len(delta_vec)
    beta = np.zeros(d) if beta is None else np.asarray(beta)
    out = np.empty((R, len(sizes), d))
    for r in range(R):
        draws = rng.standard_normal((sizes[-1], d))
        for j, N in enumerate(sizes):
            out[r, j] = delta_vec + beta / N + noise * draws[:N].mean(axis=0)
    return out


def test_zero_spread_is_an_exact_confirmation():
    D = np.zeros((4, 3, 5))
    est = estimate_delta(SIZES, D)
    assert est.delta == 0 and est.upper == 0 and est.lower == 0
    assert decide(est, 0.05)[0] == "confirmed"


def test_known_bias_is_removed_by_the_extrapolation():
    """Noise-free D(N) = Delta + beta/N: the intercept recovers Delta exactly."""
    delta = np.array([0.3, -0.4])
    beta = np.array([5.0, 2.0])
    D = np.stack([[delta + beta / N for N in SIZES]] * 3)
    est = estimate_delta(SIZES, D)
    assert est.delta == pytest.approx(0.5, abs=1e-12)
    assert est.drift == pytest.approx(np.linalg.norm(beta) / 256, abs=1e-12)


@pytest.mark.parametrize("d, R", [(1, 8), (4, 8), (9, 16)])
def test_interval_coverage_on_synthetic_data(d, R):
    """Over 400 synthetic studies the bounds hold at least as often as their levels say,
    up to the binomial error of 400 draws (3 standard errors)."""
    rng = np.random.default_rng(d * 100 + R)
    true = rng.standard_normal(d)
    true *= 0.05 / np.linalg.norm(true)
    miss_upper = miss_lower = 0
    trials = 400
    for _ in range(trials):
        est = estimate_delta(SIZES, _differences(rng, true, R, beta=rng.standard_normal(d), noise=0.3))
        miss_upper += est.upper < 0.05
        miss_lower += est.lower > 0.05
    for level, misses in ((CONFIRM_LEVEL, miss_upper), (REFUTE_LEVEL, miss_lower)):
        p = 1 - level
        assert misses <= trials * p + 3 * math.sqrt(trials * p * (1 - p)) + 1, (level, misses)


def test_decide_three_ways_and_what_would_decide():
    rng = np.random.default_rng(1)
    margin = 0.1
    small = estimate_delta(SIZES, _differences(rng, np.zeros(3), 16, noise=0.05))
    assert decide(small, margin)[0] == "confirmed"
    big = estimate_delta(SIZES, _differences(rng, np.array([0.5, 0.0, 0.0]), 16, noise=0.05))
    assert decide(big, margin)[0] == "refuted"
    noisy = estimate_delta(SIZES, _differences(rng, np.array([0.08, 0.0, 0.0]), 3, noise=2.0))
    verdict, drifting, n_next = decide(noisy, margin)
    assert verdict == "inconclusive" and not drifting
    assert n_next is not None and n_next > SIZES[-1]


def test_drift_prevents_confirmation():
    """A statistic that is all 1/N term (limit 0, like a loss with a fixed bias) is flagged
    drifting and never confirmed, even where its extrapolated distance is small."""
    sizes = (64, 128, 256)
    beta = np.array([20.0, 0.0])
    control = np.array([0.01, 0.0])   # CLIP's statistic, at its limit on every batch
    stats = np.stack([[beta / N for N in sizes]] * 4)
    est = estimate_delta(sizes, stats - control, gap=None, variant_stats=stats)
    assert est.drift_ratio == pytest.approx(1.0)
    verdict, drifting, _ = decide(est, 0.05)
    assert drifting and verdict != "confirmed"


def test_combine():
    assert combine(["confirmed"] * 3) == "confirmed"
    assert combine(["confirmed", "inconclusive", "confirmed"]) == "inconclusive"
    assert combine(["confirmed", "inconclusive", "refuted"]) == "refuted"
    assert combine([]) == "inconclusive"


def test_look_levels_spend_the_error_budget():
    """The per-look errors 6/(pi^2 r^2) x alpha sum to alpha (the series for pi^2/6)."""
    from proofs_checks.verdict import look_level
    alpha = 1 - REFUTE_LEVEL
    spent = sum(1 - look_level(REFUTE_LEVEL, r) for r in range(1, 200_001))
    assert spent == pytest.approx(alpha, rel=1e-5)  # tail of the series beyond 2e5: 3e-6 alpha
    assert look_level(CONFIRM_LEVEL, 1) > CONFIRM_LEVEL
    for bad in (0, True, 1.5, "2"):
        with pytest.raises(ValueError, match="look"):
            look_level(0.95, bad)
    assert look_level(0.95, np.int64(2)) == look_level(0.95, 2)


def test_repeated_looks_keep_the_refutation_error():
    """A one-dimensional statistic at zero distance, tested again as replicates arrive (seven
    looks, 4 to 32 replicates): its lower bound |a| - h rises above 0 at some look in at most
    1 - REFUTE_LEVEL of the studies (two-sided: the norm of a one-dimensional mean).  With
    alpha = 0.003 that needs many studies, so the spending is checked on the same machinery
    at a larger alpha: REFUTE_LEVEL = 0.95 on 1000 studies, 3 binomial standard errors
    (threshold 0.071).  Testing every look at the undivided level fails this (0.125
    measured at this seed)."""
    from proofs_checks import verdict
    rng = np.random.default_rng(11)
    trials, wrong = 1000, 0
    looks = (4, 6, 8, 12, 16, 24, 32)
    saved = verdict.REFUTE_LEVEL
    verdict.REFUTE_LEVEL = 0.95
    try:
        for _ in range(trials):
            D = _differences(rng, np.array([0.0]), 32, beta=rng.standard_normal(1), noise=0.3)
            wrong += any(estimate_delta(SIZES, D[:R], look=look).lower > 0
                         for look, R in enumerate(looks, start=1))
    finally:
        verdict.REFUTE_LEVEL = saved
    p = 1 - 0.95
    assert wrong <= trials * p + 3 * math.sqrt(trials * p * (1 - p)), wrong


# ------------------------------------------------------------------ exact values
# The intercepts a_r of noise-free lines D_r(N) = a_r + b_r/N are recovered exactly, so the
# half-widths can be checked against quantiles computed without scipy's F distribution.

def _lines(a, b=None, sizes=SIZES):
    a = np.asarray(a, dtype=float)
    b = np.zeros_like(a) if b is None else np.asarray(b, dtype=float)
    return np.stack([[a[r] + b[r] / N for N in sizes] for r in range(len(a))])


@pytest.mark.parametrize("R", [2, 5])
def test_one_dimensional_half_widths_are_student_t(R):
    """d = 1: R |e|^2 / s^2 ~ F(1, R-1) = t^2, so h_q = t_{(1+q)/2, R-1} s / sqrt(R)
    (scipy's t distribution, not its F)."""
    from scipy.stats import t
    from proofs_checks.verdict import look_level
    rng = np.random.default_rng(R)
    a = 0.3 + rng.standard_normal((R, 1))
    s = np.std(a[:, 0], ddof=1)
    for look in (1, 3):
        est = estimate_delta(SIZES, _lines(a), look=look)
        assert est.effective_dimension == pytest.approx(1.0, rel=1e-12)
        q_r = look_level(REFUTE_LEVEL, look)
        assert est.half_width_refute == pytest.approx(t.ppf((1 + q_r) / 2, R - 1) * s / math.sqrt(R), rel=1e-9)
        assert est.half_width_confirm == pytest.approx(
            t.ppf((1 + CONFIRM_LEVEL) / 2, R - 1) * s / math.sqrt(R), rel=1e-9)
        assert est.delta == pytest.approx(abs(a.mean()), rel=1e-12)
        assert est.lower == pytest.approx(max(0.0, est.delta - est.half_width_refute), rel=1e-12)
        assert est.upper == pytest.approx(est.delta + est.half_width_confirm, rel=1e-12)
        assert est.look == look and est.replicates == R and est.n_max == SIZES[-1]


def test_two_dimensional_half_width_with_two_effective_dimensions():
    """Intercepts (+-x, +-x) + c: sample covariance (4x^2/3) I, d_e = 2 exactly, and the
    F(2, m) quantile is closed-form, (m/2)((1-q)^(-2/m) - 1)."""
    x, c, g = 0.2, np.array([0.1, -0.05]), np.array([0.02, 0.3])
    a = np.array([[x, x], [x, -x], [-x, x], [-x, -x]]) + c
    est = estimate_delta(SIZES, _lines(a), gap=g)
    R, m = 4, 2 * 3
    assert est.effective_dimension == pytest.approx(2.0, rel=1e-12)
    tr = 2 * 4 * x * x / 3
    from proofs_checks.verdict import look_level
    for q, h in ((CONFIRM_LEVEL, est.half_width_confirm), (look_level(REFUTE_LEVEL, 1), est.half_width_refute)):
        f_q = m / 2 * ((1 - q) ** (-2 / m) - 1)
        assert h == pytest.approx(math.sqrt(tr / R * f_q), rel=1e-9)
    assert est.delta == pytest.approx(np.linalg.norm(c + g), rel=1e-12)


def test_drift_significance_and_ratio_by_hand():
    sizes = (50, 100, 200)
    a = np.zeros((4, 1))
    # equal slopes: no spread in beta, any nonzero slope is significant
    est = estimate_delta(sizes, _lines(a, b=np.full((4, 1), 10.0), sizes=sizes))
    assert est.drift_significant and est.drift == pytest.approx(10.0 / 200, rel=1e-12)
    # slopes symmetric about 0: mean slope 0, not significant
    est = estimate_delta(sizes, _lines(a, b=np.array([[10.0], [-10.0], [10.0], [-10.0]]), sizes=sizes))
    assert not est.drift_significant and est.drift == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(est.drift_ratio)  # no variant statistics given
    # the ratio: median |beta_r| / N_max over the median norm of the variant's statistic at N_max
    b = np.array([[4.0], [-8.0], [20.0], [100.0]])           # median |beta| = 14
    stats = np.array([[[9.0]] * 3, [[1.0]] * 3, [[3.0]] * 3, [[5.0]] * 3])  # median at N_max = 4
    est = estimate_delta(sizes, _lines(a, b=b, sizes=sizes), variant_stats=stats)
    assert est.drift_ratio == pytest.approx(14.0 / 200 / 4.0, rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a zero statistic gives an infinite ratio, not 1/0
        est = estimate_delta(sizes, _lines(a, b=b, sizes=sizes), variant_stats=np.zeros((4, 3, 1)))
    assert est.drift_ratio == math.inf


def test_zero_spread_reports_no_effective_dimension():
    est = estimate_delta(SIZES, np.zeros((3, 3, 2)))
    assert est.half_width_confirm == 0 and est.half_width_refute == 0 and est.effective_dimension == 0


def _est(delta, h_c, h_r, drift=0.0, significant=False, ratio=0.0, n_max=256):
    from proofs_checks.verdict import DeltaEstimate
    return DeltaEstimate(delta=delta, lower=max(0.0, delta - h_r), upper=delta + h_c,
                         half_width_refute=h_r, half_width_confirm=h_c, drift=drift,
                         drift_significant=significant, drift_ratio=ratio,
                         effective_dimension=1.0, replicates=8, n_max=n_max)


def test_decide_at_its_boundaries_and_the_batch_that_would_decide():
    # dyadic numbers throughout, so that every sum and ratio below is exact
    m = 0.5
    assert decide(_est(0.25, 0.25, 1.0), m) == ("confirmed", False, None)      # upper == margin
    assert decide(_est(0.25, 1.0, 0.25), m)[0] == "inconclusive"               # lower == 0
    assert decide(_est(0.75, 0.25, 0.5), m) == ("refuted", False, None)
    # (ratios of 3, not 2: 2**2 == 2*2 would hide a wrong power)
    # confirm target 256 (0.75/0.25)^2 = 2304 against refute target 256 (1.5/0.25)^2 = 9216
    assert decide(_est(0.25, 0.75, 1.5), m) == ("inconclusive", False, 2304)
    # confirm target 256 (1/0.25)^2 = 4096 against refute target 256 (0.75/0.25)^2 = 2304
    assert decide(_est(0.25, 1.0, 0.75), m) == ("inconclusive", False, 2304)
    # at or past the margin only a refutation can decide: 256 (1.5/0.5)^2, 256 (2.25/0.75)^2
    assert decide(_est(0.5, 0.125, 1.5), m) == ("inconclusive", False, 2304)
    assert decide(_est(0.75, 0.125, 2.25), m) == ("inconclusive", False, 2304)
    # delta = 0: only a confirmation can decide, 256 (1.5/0.5)^2 = 2304
    assert decide(_est(0.0, 1.5, 1.5), m) == ("inconclusive", False, 2304)
    # an infinite half-width: nothing would decide
    assert decide(_est(0.25, math.inf, math.inf), m) == ("inconclusive", False, None)


def test_decide_drifting_either_sign_and_never_confirmed():
    m = 0.5
    # the 1/N term is significant and above the margin: refutation target only, 256 (0.5/0.125)^2
    assert decide(_est(0.125, 0.125, 0.5, drift=0.75, significant=True), m) == ("inconclusive", True, 4096)
    # significant but below the margin, or above it but not significant: not drifting
    assert decide(_est(0.125, 0.125, 0.5, drift=0.25, significant=True), m)[:2] == ("confirmed", False)
    assert decide(_est(0.125, 0.125, 0.5, drift=0.75, significant=False), m)[:2] == ("confirmed", False)
    assert decide(_est(0.125, 0.125, 0.5, drift=0.5, significant=True), m)[:2] == ("confirmed", False)  # == margin
    # the ratio alone, above DRIFT_RATIO, is enough; at it, not
    assert decide(_est(0.125, 0.125, 0.5, ratio=0.51), m)[:2] == ("inconclusive", True)
    assert decide(_est(0.125, 0.125, 0.5, ratio=0.5), m)[:2] == ("confirmed", False)
    # drifting at delta = 0: neither target exists
    assert decide(_est(0.0, 0.125, 0.5, ratio=0.9), m) == ("inconclusive", True, None)
    # a drifting model can still be refuted
    assert decide(_est(0.75, 0.125, 0.5, ratio=0.9), m) == ("refuted", True, None)


def test_estimate_delta_needs_two_sizes_and_two_replicates():
    est = estimate_delta((64, 128), _lines(np.array([[0.1], [0.3]]), sizes=(64, 128)))  # the minimum
    assert est.replicates == 2 and est.n_max == 128 and est.delta == pytest.approx(0.2, rel=1e-12)
    for sizes, D in (((64,), np.zeros((3, 1, 2))), ((64, 128), np.zeros((1, 2, 2)))):
        with pytest.raises(ValueError, match="two sizes and two replicates"):
            estimate_delta(sizes, D)


# --------------------------------------------------------------------------
# estimate_rank
# --------------------------------------------------------------------------
from proofs_checks.verdict import RANK_RTOL, estimate_rank  # noqa: E402

SIZES = (64, 128, 256)


def _ratios(limit, slope, rng, R=8, noise=0.02):
    """rho_r(N) = limit + slope/N + noise/sqrt(N): (R, 3, 1)."""
    n = np.array(SIZES, dtype=float)
    return (limit + slope / n + noise * rng.standard_normal((R, len(n))) / np.sqrt(n))[:, :, None]


def test_a_collapse_is_seen_and_a_full_rank_is_not():
    rng = np.random.default_rng(0)
    clip = _ratios(0.4, 1.0, rng)
    collapsed = estimate_rank(SIZES, _ratios(0.0, 2.0, rng, noise=1e-3), clip)
    assert collapsed.collapsed and not collapsed.full and collapsed.kept == 1
    full = estimate_rank(SIZES, _ratios(0.3, 2.0, rng), clip)
    assert full.full and not full.collapsed and full.kept == 2
    assert full.to_dict()["n_e"] == 2 and full.to_dict()["rank_rtol"] == RANK_RTOL


def test_no_collapse_is_declared_where_clip_itself_has_almost_no_second_pair():
    """A model whose second canonical correlation is tiny cannot tell a collapse from CLIP."""
    rng = np.random.default_rng(1)
    tiny = estimate_rank(SIZES, _ratios(0.0, 2.0, rng, noise=1e-3), _ratios(2 * RANK_RTOL**2, 1.0, rng, noise=1e-3))
    assert not tiny.collapsed


def test_collapse_needs_the_bound_not_the_estimate():
    """A noisy variant whose limit is small but whose upper bound reaches the floor is not collapsed."""
    rng = np.random.default_rng(2)
    noisy = estimate_rank(SIZES, _ratios(0.5 * RANK_RTOL**2, 0.0, rng, R=3, noise=0.5), _ratios(0.4, 1.0, rng))
    assert noisy.variant_upper[-1] >= RANK_RTOL**2 and not noisy.collapsed


def test_extrapolation_at_rate_one_half_removes_a_square_root_bias():
    """A kinked loss's minimiser is biased like N^{-1/2}: regressing on N^{-1/2} recovers the
    limit exactly on noiseless data, where the 1/N regression is off by a known amount."""
    from proofs_checks.verdict import extrapolate

    n = np.array([64.0, 128.0, 256.0])
    D = np.stack([0.3 + 0.8 * n ** -0.5, -0.1 + 0.4 * n ** -0.5], axis=1)[None].repeat(2, axis=0)
    a, beta = extrapolate(n, D, rate=0.5)
    np.testing.assert_allclose(a[0], [0.3, -0.1], atol=1e-13)
    np.testing.assert_allclose(beta[0], [0.8, 0.4], atol=1e-12)
    a1, _ = extrapolate(n, D)  # the 1/N model leaves part of the N^{-1/2} bias in the limit
    assert np.all(np.abs(a1[0] - [0.3, -0.1]) > 0.01)
    est = estimate_delta(n, D + 1e-6 * np.random.default_rng(0).standard_normal(D.shape), rate=0.5)
    assert est.delta == pytest.approx(math.hypot(0.3, 0.1), abs=1e-4)


# --------------------------------------------------------------------------
# the spread's exponent: heavy-tailed fits decide slowly, and say so
# --------------------------------------------------------------------------
from proofs_checks.verdict import slowed_n_to_decide, spread_exponent  # noqa: E402


@pytest.mark.parametrize("p", [0.5, 0.25, 0.1])
def test_spread_exponent_recovers_the_rate_of_synthetic_noise(p):
    rng = np.random.default_rng(5)
    sizes = (64, 128, 256, 512)
    R, d = 4000, 3  # the estimate's error shrinks like R^{-1/2}: 0.01 here
    D = np.stack([N ** -p * rng.standard_normal((R, d)) for N in sizes], axis=1) + 0.7
    assert spread_exponent(sizes, D) == pytest.approx(p, abs=0.03)


def test_spread_exponent_needs_two_sizes_with_a_spread():
    D = np.zeros((5, 3, 2))
    assert math.isnan(spread_exponent((64, 128, 256), D))


def test_a_slower_spread_asks_for_a_larger_batch():
    # decide() asked for a half-width 2x smaller: N^{-1/2} needs 4x N, N^{-1/4} needs 16x
    assert slowed_n_to_decide(1024, 256, 0.5) == 1024
    assert slowed_n_to_decide(1024, 256, 0.25) == 4096
    assert slowed_n_to_decide(1024, 256, 0.125) == 65536
    assert slowed_n_to_decide(None, 256, 0.2) is None
    assert slowed_n_to_decide(1024, 256, 0.0) is None and slowed_n_to_decide(1024, 256, -0.1) is None
    assert slowed_n_to_decide(1 << 20, 256, 0.05) is None  # beyond a billion: nothing feasible


def test_slow_spread_needs_the_replicates_to_tell():
    rng = np.random.default_rng(11)
    sizes = (64, 128, 256)
    slow = np.stack([N ** -0.05 * rng.standard_normal((40, 3)) for N in sizes], axis=1)
    usual = np.stack([N ** -0.5 * rng.standard_normal((40, 3)) for N in sizes], axis=1)
    from proofs_checks.verdict import SLOW_SPREAD_REPLICATES, slow_spread

    assert slow_spread(sizes, slow) and not slow_spread(sizes, usual)
    assert not slow_spread(sizes, slow[: SLOW_SPREAD_REPLICATES - 1])
