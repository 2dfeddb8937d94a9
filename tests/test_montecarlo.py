"""Tests of the Monte Carlo estimators and of the Monte Carlo checks (MATH.md §2-§4.3)."""
import math
import statistics

import numpy as np
import pytest

from numerics import InvalidInputError, gaussian, montecarlo as MC, variants
from numerics.models import default_models, small_bilinear

from ._reference import logits as reference_logits
from proofs_checks.checks import montecarlo as checks


@pytest.fixture(scope="module")
def models():
    return default_models(0, 4)


def _small_linear(m, rng):
    A = small_bilinear(m, rng)
    return A, MC.linear_encoder(A.T), MC.linear_encoder(np.eye(m.n_v))


def test_population_loss_and_kl_match_bilinear_closed_form(models):
    """Dot similarity has closed forms (MATH.md §4.1): MC must agree within 5 SE."""
    rng = np.random.default_rng(0)
    for m in models[:2]:
        A, eu, ev = _small_linear(m, rng)
        L = MC.population_clip_loss_mc(MC.gaussian_sampler(m.cov, m.n_u), eu, ev, 1.0, "dot", 2000, rng)
        assert abs(L.estimate - gaussian.population_clip_loss(A, m.cov, m.n_u)) <= 5 * L.standard_error
        kv, ku = MC.expected_kl_terms_mc(m.cov, m.n_u, eu, ev, 1.0, "dot", 2000, rng)
        cv, cu = gaussian.expected_kl_terms(A, m.cov, m.n_u)
        assert abs(kv.estimate - cv) <= 5 * kv.standard_error
        assert abs(ku.estimate - cu) <= 5 * ku.standard_error
        assert L.n_samples == 2000 and L.standard_error > 0


def test_standard_error_shrinks_like_root_n(models):
    m = models[0]
    rng = np.random.default_rng(1)
    _, eu, ev = _small_linear(m, rng)
    s = MC.gaussian_sampler(m.cov, m.n_u)
    se1 = MC.population_clip_loss_mc(s, eu, ev, 0.5, "cosine", 200, rng).standard_error
    se2 = MC.population_clip_loss_mc(s, eu, ev, 0.5, "cosine", 3200, rng).standard_error
    # sqrt(16) = 4; the sample SDs themselves fluctuate by ~10% at n = 200
    assert 2.5 < se1 / se2 < 6.0


def test_expected_batch_loss_matches_kernel_path(models):
    """Dense stacked path (N <= 256) and streaming path agree on the same draws."""
    m = models[0]
    A, eu, ev = _small_linear(m, np.random.default_rng(2))
    s = MC.gaussian_sampler(m.cov, m.n_u)
    a = MC.expected_batch_loss_mc(s, eu, ev, 1.0, "l2", 300, 3, np.random.default_rng(5))
    u, v = s(np.random.default_rng(5), 900)
    from numerics.kernels import clip_loss
    direct = np.mean([clip_loss(eu(u[k*300:(k+1)*300]), ev(v[k*300:(k+1)*300]), 1.0, "l2")
                      for k in range(3)])
    assert a.estimate == pytest.approx(direct, rel=1e-12)
    b = MC.expected_batch_loss_mc(s, eu, ev, 1.0, "l2", 30, 3, np.random.default_rng(5))
    from numerics.kernels import clip_logits, clip_loss_from_logits
    ref = np.mean([clip_loss_from_logits(clip_logits(eu(u[k*30:(k+1)*30]), ev(v[k*30:(k+1)*30]), 1.0, "l2"))
                   for k in range(3)])
    assert b.estimate == pytest.approx(ref, rel=1e-12)


def test_gaussian_kl_batch_of_huge_covariances_is_finite():
    # symmetrising S + S^T overflowed for entries near the float64 maximum (NaN out)
    M = 1.7e308
    out = gaussian.gaussian_kl_batch([[1.0]], [[[M]]], [[-1.0]], [[[M]]])
    assert np.isfinite(out[0]) and abs(out[0]) <= 1e-300
    assert out[0] == pytest.approx(gaussian.gaussian_kl([1.0], [[M]], [-1.0], [[M]]), abs=1e-15)


def test_gaussian_kl_batch_matches_single():
    rng = np.random.default_rng(3)
    B, n = 5, 3
    m1, m2 = rng.standard_normal((B, n)), rng.standard_normal((B, n))
    X = rng.standard_normal((2, B, n, n))
    S1 = X[0] @ np.swapaxes(X[0], 1, 2) + np.eye(n)
    S2 = X[1] @ np.swapaxes(X[1], 1, 2) + np.eye(n)
    out = gaussian.gaussian_kl_batch(m1, S1, m2, S2)
    for b in range(B):
        assert out[b] == pytest.approx(gaussian.gaussian_kl(m1[b], S1[b], m2[b], S2[b]), rel=1e-12, abs=1e-14)
    assert np.allclose(gaussian.gaussian_kl_batch(m1, S1, m1, S1), 0.0, atol=1e-13)
    with pytest.raises(InvalidInputError, match="S2"):
        gaussian.gaussian_kl_batch(m1, S1, m2, -S2)
    with pytest.raises(InvalidInputError, match="m2"):
        gaussian.gaussian_kl_batch(m1, S1, m2[:, :2], S2)


def test_batch_loss_bias_matches_simulation(models):
    """The closed-form 1/N coefficient agrees with a large simulation at N = 8."""
    m = models[1]
    rng = np.random.default_rng(4)
    A, eu, ev = _small_linear(m, rng)
    est = MC.expected_batch_loss_mc(MC.gaussian_sampler(m.cov, m.n_u), eu, ev, 1.0, "dot", 8, 40000, rng)
    d = est.estimate - np.log(8) - gaussian.population_clip_loss(A, m.cov, m.n_u)
    b = gaussian.batch_loss_bias(A, m.cov, m.n_u)
    # 5 SE plus an O(1/N^2) allowance of (|b| / N)^2 ... bounded by 1e-3 at |b| < 0.3
    assert abs(d - b / 8) <= 5 * est.standard_error + 1e-3
    assert abs(b / 8) > 5 * est.standard_error  # the bias is resolved at this size


@pytest.mark.parametrize("bad, name", [
    (dict(tau=0.0), "tau"), (dict(similarity="x"), "similarity"), (dict(n_samples=1), "n_samples"),
    (dict(rng=0), "rng"), (dict(encode_u=3), "encode_u"), (dict(bank_size=1), "bank_size"),
])
def test_invalid_inputs(models, bad, name):
    m = models[0]
    args = dict(sample=MC.gaussian_sampler(m.cov, m.n_u), encode_u=lambda u: u[:, :1],
                encode_v=lambda v: v[:, :1], tau=1.0, similarity="dot", n_samples=10,
                rng=np.random.default_rng(0))
    args.update(bad)
    with pytest.raises(InvalidInputError, match=name):
        MC.population_clip_loss_mc(**args)


def test_cosine_zero_embedding_rejected(models):
    m = models[0]
    with pytest.raises(InvalidInputError, match="encode_u"):
        MC.population_clip_loss_mc(MC.gaussian_sampler(m.cov, m.n_u), lambda u: 0 * u[:, :1],
                                   lambda v: v[:, :1], 1.0, "cosine", 10, np.random.default_rng(0))


def test_encoders_of_different_widths_rejected(models):
    m = models[0]
    sample = MC.gaussian_sampler(m.cov, m.n_u)
    rng = np.random.default_rng(0)
    wide_u, narrow_v = (lambda u: np.hstack([u, u])), (lambda v: v[:, :1])
    with pytest.raises(InvalidInputError, match="^encode_v=.*shape"):
        MC.population_clip_loss_mc(sample, wide_u, narrow_v, 1.0, "dot", 10, rng)
    with pytest.raises(InvalidInputError, match="^encode_v=.*shape"):
        MC.expected_kl_terms_mc(m.cov, m.n_u, wide_u, narrow_v, 1.0, "dot", 10, rng)
    with pytest.raises(InvalidInputError, match="^encode_v=.*shape"):
        MC.expected_batch_loss_mc(sample, wide_u, narrow_v, 1.0, "dot", 4, 2, rng)
    with pytest.raises(InvalidInputError, match="^encode_u=.*shape"):
        MC.population_clip_loss_mc(sample, lambda u: u[:, 0], narrow_v, 1.0, "dot", 10, rng)


@pytest.mark.parametrize("sampler", [
    lambda rng, n: (np.ones(n), np.ones(n)),           # 1-D outputs
    lambda rng, n: (np.ones((n - 1, 2)), np.ones((n, 2))),  # wrong number of rows
    lambda rng, n: np.ones((n, 4)),                    # not a pair
])
def test_bad_sampler_rejected(sampler):
    enc = lambda x: x[:, :1]  # noqa: E731
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidInputError, match="^sample="):
        MC.population_clip_loss_mc(sampler, enc, enc, 1.0, "dot", 10, rng)
    with pytest.raises(InvalidInputError, match="^sample="):
        MC.expected_batch_loss_mc(sampler, enc, enc, 1.0, "dot", 4, 2, rng)


# ---------------------------------------------------------------- the checks
def test_checks_pass(models):
    rng = np.random.default_rng(6)
    for fn in (checks.check_theorem_3_2_monte_carlo, checks.check_n1_monte_carlo,
               checks.check_n2_monte_carlo):
        cases = fn(models[:1], rng)
        assert cases and all(c.passed for c in cases), fn.__name__


def test_theorem_3_2_check_fails_on_wrong_formula(models):
    rng = np.random.default_rng(7)
    # an expected KL off by 1 (the half-sum then by 1/2), and I off by 1/2
    def wrong_kl(*a, **k):
        kv, ku = MC.expected_kl_terms_mc(*a, **k)
        return kv, MC.MCEstimate(ku.estimate + 1.0, ku.standard_error, ku.n_samples)
    cases = checks.check_theorem_3_2_monte_carlo(models[:1], rng, kl_terms_mc=wrong_kl)
    assert not all(c.passed for c in cases)
    cases = checks.check_theorem_3_2_monte_carlo(
        models[:1], rng, mutual_information=lambda c, n: gaussian.mutual_information(c, n) - 0.5)
    assert not all(c.passed for c in cases)


def test_theorem_3_2_check_detects_a_30_percent_error(models):
    rng = np.random.default_rng(9)

    def scaled_clip(*a, **k):
        est = MC.population_clip_loss_mc(*a, **k)
        return MC.MCEstimate(1.3 * est.estimate, est.standard_error, est.n_samples)
    cases = checks.check_theorem_3_2_monte_carlo(models[:1], rng, clip_loss_mc=scaled_clip)
    # every case that sees the clip route (all but "KL route vs closed form") must fail
    assert not any(c.passed for c in cases if "KL route" not in c.label)
    # the L2 closed-form route alone: one KL term off by 0.3 nats
    cases = checks.check_theorem_3_2_monte_carlo(
        models[:1], rng, similarities=("l2",),
        l2_kl_terms=lambda *a: tuple(np.add(variants.l2_kl_terms(*a), (0.3, 0.0))))
    assert [c.passed for c in cases if "closed form" in c.label] == [False, False]


def test_n1_check_fails_on_wrong_limit(models):
    rng = np.random.default_rng(8)
    cases = checks.check_n1_monte_carlo(
        models[:1], rng, clip_loss=lambda A, c, n: gaussian.population_clip_loss(A, c, n) + 0.05)
    assert not all(c.passed for c in cases)
    # a bias coefficient of the wrong sign is resolved at N = 16 with more samples
    cases = checks.check_n1_monte_carlo(models[1:2], rng, bias=lambda A, c, n: -5 * gaussian.batch_loss_bias(A, c, n),
                                        sizes=(16,), total=2**17)
    assert not all(c.passed for c in cases)


def test_n2_check_fails_on_wrong_bound(models):
    rng = np.random.default_rng(9)
    cases = checks.check_n2_monte_carlo(
        models[:1], rng, mutual_information=lambda c, n: gaussian.mutual_information(c, n) - 0.3)
    assert not all(c.passed for c in cases)


def test_gaussian_logpdf_matches_scipy():
    from scipy.stats import multivariate_normal
    rng = np.random.default_rng(7)
    for d in (1, 3):
        A = rng.standard_normal((d, d))
        S = A @ A.T + 0.5 * np.eye(d)
        mean = rng.standard_normal(d)
        x = rng.standard_normal((6, d)) * 2
        ref = multivariate_normal(mean, S).logpdf(x)
        got = MC._gaussian_logpdf(x, mean, np.linalg.cholesky(S), np.linalg.slogdet(S)[1])
        np.testing.assert_allclose(got, np.atleast_1d(ref), rtol=1e-12)


def _zero_on(n_rows, G):
    """A linear encoder that returns zero rows (or, with G of another width, other
    embeddings) exactly when called on a batch of ``n_rows`` inputs: the bank."""
    return lambda x: np.zeros((x.shape[0], G.shape[0])) if x.shape[0] == n_rows else x @ G.T


def test_kl_terms_validate_each_encoder_and_the_bank_by_name(models):
    m = models[0]
    rng = np.random.default_rng(0)
    eu, ev = (lambda u: u[:, :1]), (lambda v: v[:, :1])
    zero = lambda x: 0 * x[:, :1]  # noqa: E731
    with pytest.raises(InvalidInputError, match="^encode_u="):
        MC.expected_kl_terms_mc(m.cov, m.n_u, zero, ev, 1.0, "cosine", 10, rng)
    with pytest.raises(InvalidInputError, match="^encode_v="):
        MC.expected_kl_terms_mc(m.cov, m.n_u, eu, zero, 1.0, "cosine", 10, rng)
    # zero rows in the bank only (bank_size 7, samples 10): named as the bank
    bank_zero = _zero_on(7, np.ones((1, m.n_v)))
    with pytest.raises(InvalidInputError, match=r"^encode_v \(bank\)="):
        MC.expected_kl_terms_mc(m.cov, m.n_u, eu, bank_zero, 1.0, "cosine", 10, rng, bank_size=7)
    # a bank of another width
    wide = lambda x: np.ones((x.shape[0], 2)) if x.shape[0] == 7 else x[:, :1]  # noqa: E731
    with pytest.raises(InvalidInputError, match=r"^encode_v \(bank\)=.*shape"):
        MC.expected_kl_terms_mc(m.cov, m.n_u, eu, wide, 1.0, "dot", 10, rng, bank_size=7)
    # the population loss draws its bank through the same checks
    with pytest.raises(InvalidInputError, match="^encode_u="):
        MC.population_clip_loss_mc(MC.gaussian_sampler(m.cov, m.n_u), _zero_on(7, np.ones((1, m.n_u))),
                                   ev, 1.0, "cosine", 10, rng, bank_size=7)


def test_estimates_report_their_sample_sizes_and_parts(models):
    m = models[0]
    rng = np.random.default_rng(3)
    A, eu, ev = _small_linear(m, rng)
    kv, ku = MC.expected_kl_terms_mc(m.cov, m.n_u, eu, ev, 1.0, "dot", 300, rng, bank_size=50)
    for k in (kv, ku):
        assert k.n_samples == 300 and k.detail["bank_size"] == 50
        assert k.detail["se_samples"] > 0 and k.detail["se_bank"] > 0
        assert k.standard_error == pytest.approx(np.hypot(k.detail["se_samples"], k.detail["se_bank"]), rel=1e-12)
        assert abs(k.detail["bias_correction"]) < 0.1
    L = MC.population_clip_loss_mc(MC.gaussian_sampler(m.cov, m.n_u), eu, ev, 1.0, "dot", 300, rng,
                                   bank_size=40)
    assert L.n_samples == 300 and L.detail["bank_size"] == 40
    assert L.standard_error == pytest.approx(np.hypot(L.detail["se_samples"], L.detail["se_bank"]), rel=1e-12)


def test_log_partition_is_the_documented_bias_corrected_estimator():
    """Against the module docstring's formula, evaluated entry by entry with math and
    statistics (_bank_log_partition_by_hand), on logits formed by the test reference.
    n = 1030 rows cross the 1024-row chunk boundary."""
    rng = np.random.default_rng(8)
    for n, M, sim in ((5, 4, "dot"), (1030, 3, "l2"), (6, 2, "cosine")):
        za, zbank = rng.standard_normal((n, 2)), rng.standard_normal((M, 2))
        logZ, corr, infl = MC._log_partition(za, zbank, 0.7, sim)
        want_logZ, want_corr, want_infl = _bank_log_partition_by_hand(reference_logits(za, zbank, 0.7, sim).tolist())
        np.testing.assert_allclose(corr, want_corr, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(logZ, want_logZ, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(infl, want_infl, rtol=1e-12)


def _bank_log_partition_by_hand(F):
    """The module docstring's bank estimator, entry by entry with math and statistics, from
    a logit block F (rows: samples, columns: bank): log Z_i = log mean_k e^{F_ik} +
    Var_k(p_ik)/(2M) (sample variance), p_ik = e^{F_ik}/mean_k e^{F_ik}, and the bank
    influence_k = mean_i p_ik.  Returns (log Z, corrections, influence) as lists."""
    M = len(F[0])
    logZ, corr, infl = [], [], [0.0] * M
    for row in F:
        e = [math.exp(x) for x in row]
        mean = math.fsum(e) / M
        p = [x / mean for x in e]
        c = statistics.variance(p) / (2 * M)
        logZ.append(math.log(mean) + c)
        corr.append(c)
        for k in range(M):
            infl[k] += p[k] / len(F)
    return logZ, corr, infl


def test_population_loss_checks_every_encoder_call_by_name(models):
    """Each of the four encoder calls (samples and bank, both modalities) is checked on its
    own: encoders that misbehave only on one batch size (the bank's, 7, or the samples', 10)
    are caught there, under the encoder's name."""
    m = models[0]
    sample = MC.gaussian_sampler(m.cov, m.n_u)
    rng = np.random.default_rng(0)
    one_u, one_v = (lambda u: u[:, :1]), (lambda v: v[:, :1])

    def on(size, bad, good):
        return lambda x: bad(x) if x.shape[0] == size else good(x)

    zero = lambda x: 0 * x[:, :1]            # noqa: E731
    wide = lambda x: np.ones((x.shape[0], 2))  # noqa: E731
    cases = [
        (on(10, zero, one_u), one_v, "cosine", "encode_u"), (one_u, on(10, zero, one_v), "cosine", "encode_v"),
        (on(7, zero, one_u), one_v, "cosine", "encode_u"), (one_u, on(7, zero, one_v), "cosine", "encode_v"),
        (one_u, on(10, wide, one_v), "dot", "encode_v"), (on(7, wide, one_u), one_v, "dot", "encode_u"),
        (one_u, on(7, wide, one_v), "dot", "encode_v"),
    ]
    for eu, ev, sim, name in cases:
        with pytest.raises(InvalidInputError, match=f"^{name}="):
            MC.population_clip_loss_mc(sample, eu, ev, 1.0, sim, 10, rng, bank_size=7)
    with pytest.raises(InvalidInputError, match="^sample="):
        MC.population_clip_loss_mc(3, one_u, one_v, 1.0, "dot", 10, rng)
    with pytest.raises(InvalidInputError, match="^sample="):
        MC.expected_batch_loss_mc("s", one_u, one_v, 1.0, "dot", 4, 2, rng)


@pytest.mark.parametrize("sim", ["dot", "cosine"])
def test_population_loss_estimator_by_hand(sim):
    """The whole estimator of population_clip_loss_mc on fixed draws (a sampler that returns
    set arrays for the samples' and the bank's sizes), recomputed from the module docstring
    with math/statistics: h_i = -f_ii + (log Z_v(u_i) + log Z_u(v_i))/2 with bias-corrected
    bank log-partitions; the bank influence psi_k = (mean_i p^v_ik + mean_i p^u_ik)/2;
    se = hypot(stdev(h)/sqrt(n), stdev(psi)/sqrt(M))."""
    rng = np.random.default_rng(12)
    n, M, tau = 5, 4, 0.8
    U, V = rng.standard_normal((n, 2)), rng.standard_normal((n, 3))
    Ub, Vb = rng.standard_normal((M, 2)), rng.standard_normal((M, 3))
    Gu, Gv = rng.standard_normal((2, 2)), rng.standard_normal((2, 3))
    sample = lambda r, k: (U, V) if k == n else (Ub, Vb)  # noqa: E731
    est = MC.population_clip_loss_mc(sample, MC.linear_encoder(Gu), MC.linear_encoder(Gv), tau, sim,
                                     n, np.random.default_rng(0), bank_size=M)
    za, zb, zab, zbb = U @ Gu.T, V @ Gv.T, Ub @ Gu.T, Vb @ Gv.T

    def logZ(rows, bank):
        return _bank_log_partition_by_hand(reference_logits(rows, bank, tau, sim).tolist())

    lzv, cv, iv = logZ(za, zbb)
    lzu, cu, iu = logZ(zb, zab)
    f = [reference_logits([a], [b], tau, sim)[0, 0] for a, b in zip(za, zb)]
    h = [-fi + 0.5 * x + 0.5 * y for fi, x, y in zip(f, lzv, lzu)]
    psi = [0.5 * (x + y) for x, y in zip(iv, iu)]
    se_h, se_bank = statistics.stdev(h) / math.sqrt(n), statistics.stdev(psi) / math.sqrt(M)
    assert est.estimate == pytest.approx(statistics.fmean(h), rel=1e-12)
    assert est.detail["se_samples"] == pytest.approx(se_h, rel=1e-10)
    assert est.detail["se_bank"] == pytest.approx(se_bank, rel=1e-10)
    assert est.standard_error == pytest.approx(math.hypot(se_h, se_bank), rel=1e-10)
    assert est.detail["bias_correction"] == pytest.approx(0.5 * (statistics.fmean(cv) + statistics.fmean(cu)),
                                                          rel=1e-10)
    assert est.n_samples == n and est.detail["bank_size"] == M


def test_expected_batch_loss_estimate_by_hand_and_arguments(models):
    """Mean and standard error over batches of L_N written out with math (log-sum-exps of
    the logits by hand); batch_size >= 1 and n_batches >= 2 are the documented minima."""
    rng = np.random.default_rng(21)
    N, R, tau = 3, 4, 0.6
    U, V = rng.standard_normal((N * R, 2)), rng.standard_normal((N * R, 2))
    sample = lambda r, n: (U[:n], V[:n])  # noqa: E731
    enc = lambda x: x  # noqa: E731
    for sim in ("dot", "cosine"):
        est = MC.expected_batch_loss_mc(sample, enc, enc, tau, sim, N, R, np.random.default_rng(0))
        values = []
        for b in range(R):
            F = reference_logits(U[b * N:(b + 1) * N], V[b * N:(b + 1) * N], tau, sim).tolist()
            lse = lambda xs: max(xs) + math.log(math.fsum(math.exp(x - max(xs)) for x in xs))  # noqa: E731
            rows = [lse(F[i]) for i in range(N)]
            cols = [lse([F[i][j] for i in range(N)]) for j in range(N)]
            values.append((0.5 * math.fsum(rows) + 0.5 * math.fsum(cols) - math.fsum(F[i][i] for i in range(N))) / N)
        assert est.estimate == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert est.standard_error == pytest.approx(statistics.stdev(values) / math.sqrt(R), rel=1e-10)
        assert est.n_samples == R and est.detail == {"batch_size": N}
    one = MC.expected_batch_loss_mc(sample, enc, enc, tau, "dot", 1, 2, np.random.default_rng(0))
    assert one.estimate == 0.0 and one.standard_error == 0.0     # L_1 = 0 on both batches
    for kwargs, name in ((dict(batch_size=0), "batch_size"), (dict(n_batches=1), "n_batches")):
        args = dict(batch_size=2, n_batches=2)
        args.update(kwargs)
        with pytest.raises(InvalidInputError, match=f"^{name}="):
            MC.expected_batch_loss_mc(sample, enc, enc, tau, "dot", args["batch_size"], args["n_batches"],
                                      np.random.default_rng(0))
    zero = lambda x: 0 * x  # noqa: E731
    for eu, ev, name in ((zero, enc, "encode_u"), (enc, zero, "encode_v")):
        with pytest.raises(InvalidInputError, match=f"^{name}="):
            MC.expected_batch_loss_mc(sample, eu, ev, tau, "cosine", 2, 2, np.random.default_rng(0))


def test_linear_encoder_validates_G_by_name():
    for G in (np.ones(3), [[1.0, np.nan]]):
        with pytest.raises(InvalidInputError, match="^G="):
            MC.linear_encoder(G)
    np.testing.assert_array_equal(MC.linear_encoder([[1, 2]])(np.array([[3.0, 4.0]])), [[11.0]])


def test_encoder_and_sampler_contracts_by_name(models):
    m = models[0]
    rng = np.random.default_rng(0)
    sample = MC.gaussian_sampler(m.cov, m.n_u)
    one = lambda x: x[:, :1]  # noqa: E731

    def boom(x):
        raise ValueError("no")

    cases = [
        (boom, one, r"^encode_u=.*accepting a batch of shape \(10, \d\).*ValueError: no"),
        (lambda x: x[:, 0], one, r"^encode_u=.*shape \(10, n_e\)"),
        (lambda x: x[:-1, :1], one, r"^encode_u=.*shape \(10, n_e\)"),
        (one, lambda x: np.hstack([x[:, :1], x[:, :1]]), r"^encode_v=.*shape \(10, 1\)"),
        (lambda x: np.full((len(x), 1), np.nan), one, r"^encode_u="),
        (3, one, "^encode_u="), (one, 3, "^encode_v="),
    ]
    for eu, ev, pattern in cases:
        with pytest.raises(InvalidInputError, match=pattern):
            MC.population_clip_loss_mc(sample, eu, ev, 1.0, "dot", 10, rng)
    for kwargs, name in ((dict(n_samples=1), "n_samples"), (dict(bank_size=1), "bank_size")):
        args = dict(n_samples=10)
        args.update(kwargs)
        with pytest.raises(InvalidInputError, match=f"^{name}="):
            MC.population_clip_loss_mc(sample, one, one, 1.0, "dot", rng=rng, **args)
    # a sampler must return a tuple of two finite 2-D arrays with n rows; one column is fine
    U, V = rng.standard_normal((10, 1)), rng.standard_normal((10, 1))
    est = MC.population_clip_loss_mc(lambda r, n: (U[:n], V[:n]), one, one, 1.0, "dot", 10, rng, bank_size=10)
    assert np.isfinite(est.estimate)
    for bad in (lambda r, n: [U[:n], V[:n]], lambda r, n: (U[:n], np.full((n, 1), np.nan))):
        with pytest.raises(InvalidInputError, match="^sample="):
            MC.population_clip_loss_mc(bad, one, one, 1.0, "dot", 10, rng)


def test_balanced_loss_mc_defaults_detail_and_arguments(models):
    m = models[0]
    G_u, G_v = np.ones((1, m.n_u)), np.ones((1, m.n_v))
    r = MC.balanced_loss_mc(G_u, G_v, 1.0, m.cov, m.n_u, 0.5, similarity="dot")
    assert r.n_samples == 4096 and r.detail == {"batch": 256, "n_batches": 16}
    again = MC.balanced_loss_mc(G_u, G_v, 1.0, m.cov, m.n_u, 0.5, similarity="dot", rng=np.random.default_rng(0))
    assert again.estimate == r.estimate                                     # rng=None is default_rng(0)
    small = MC.balanced_loss_mc(G_u, G_v, 1.0, m.cov, m.n_u, 0.5, similarity="dot", batch=2, n_samples=4)
    assert small.n_samples == 4 and small.detail == {"batch": 2, "n_batches": 2}
    for kwargs, name in ((dict(batch=1), "batch"), (dict(batch=4, n_samples=7), "n_samples")):
        with pytest.raises(InvalidInputError, match=f"^{name}="):
            MC.balanced_loss_mc(G_u, G_v, 1.0, m.cov, m.n_u, 0.5, similarity="dot", **kwargs)
    with pytest.raises(InvalidInputError, match="^G_v="):
        MC.balanced_loss_mc(G_u, 0 * G_v, 1.0, m.cov, m.n_u, 0.5, similarity="cosine", batch=2, n_samples=4)
    kl = MC.balanced_kl_mc(G_u, G_v, 1.0, m.cov, m.n_u, 0.5, similarity="dot", n_samples=50)
    kl0 = MC.balanced_kl_mc(G_u, G_v, 1.0, m.cov, m.n_u, 0.5, similarity="dot", n_samples=50,
                            rng=np.random.default_rng(0))
    assert kl.estimate == kl0.estimate and kl.n_samples == 50


def test_balanced_kl_mc_is_the_weighted_kl_terms(models):
    """L_lambda = lambda E_v KL_u|v + (1 - lambda) E_u KL_v|u, standard errors combined as
    independent (docstring), from expected_kl_terms_mc on the same draws and bank size."""
    m = models[0]
    G_u, G_v = np.ones((1, m.n_u)), np.ones((1, m.n_v))
    lam = 0.25
    r = MC.balanced_kl_mc(G_u, G_v, 0.7, m.cov, m.n_u, lam, similarity="l2", n_samples=60, bank_size=9,
                          rng=np.random.default_rng(4))
    kv, ku = MC.expected_kl_terms_mc(m.cov, m.n_u, MC.linear_encoder(G_u), MC.linear_encoder(G_v), 0.7, "l2",
                                     60, np.random.default_rng(4), bank_size=9)
    assert kv.detail["bank_size"] == 9
    assert r.estimate == pytest.approx(lam * ku.estimate + (1 - lam) * kv.estimate, rel=1e-12)
    assert r.standard_error == pytest.approx(math.hypot(lam * ku.standard_error, (1 - lam) * kv.standard_error),
                                             rel=1e-12)
    assert r.detail == {"kl_v": kv.estimate, "kl_u": ku.estimate} and r.n_samples == 60
