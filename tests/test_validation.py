"""Invalid input gets one exception type whose message names the argument (table-driven),
and the positive-definiteness rule of numerics.as_covariance holds on every BLAS."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st

from numerics import InvalidInputError, gaussian, montecarlo
from numerics._validation import CONDITIONING_LIMIT, PD_FACTOR, as_covariance, as_covariance_batch
from numerics.models import GaussianModel, random_gaussian_model, random_orthogonal, random_spd

# --------------------------------------------------------------------------
# Fixtures whose verdict cannot depend on the BLAS.  numerics.as_covariance
# refuses C when eigvalsh gives w_min <= c n eps w_max (c = PD_FACTOR = 100) or
# w_min below the normal float64 range, and eigvalsh's rounding is bounded by
# n eps w_max (documented there: measured at most 0.98 n eps w_max, either
# sign).  A fixture is therefore "far" from the
# threshold when its *exact* smallest eigenvalue, decided below in rational
# arithmetic on the stored floats, is at least 100 such rounding units away
# from c n eps w_max: every exactly singular or indefinite matrix (exact
# w_min <= 0 = (c - 100) n eps w_max) on the refused side, exact
# w_min >= (c + 100) n eps w_max on the accepted side.
# --------------------------------------------------------------------------
EPS = Fraction(np.finfo(float).eps)      # 2^-52, exact
TINY = Fraction(np.finfo(float).tiny)    # 2^-1022, the smallest normal float64
MARGIN = 100                             # rounding units between a fixture and a threshold


def _exactly_positive_definite(C, shift=Fraction(0), sign=1):
    """Is ``sign * (C - shift I)`` positive definite, in exact rational arithmetic on the
    stored float64 entries?  Gaussian elimination without pivoting: a symmetric matrix
    is positive definite iff every pivot is > 0."""
    n = C.shape[0]
    A = [[sign * (Fraction(float(C[i, j])) - (shift if i == j else 0)) for j in range(n)]
         for i in range(n)]
    for k in range(n):
        if A[k][k] <= 0:
            return False
        for i in range(k + 1, n):
            f = A[i][k] / A[k][k]
            for j in range(k + 1, n):
                A[i][j] -= f * A[k][j]
    return True


def _exact_lambda_max_bounds(C):
    """Rational ``lo <= lambda_max(C) < hi`` for a C with lambda_max > 0, verified exactly:
    ``hi I - C`` is positive definite and ``lo I - C`` is not."""
    w = float(np.linalg.eigvalsh(C)[-1])
    lo, hi = Fraction(w) * Fraction(999, 1000), Fraction(w) * Fraction(1001, 1000)
    assert _exactly_positive_definite(C, hi, sign=-1)           # lambda_max < hi
    assert not _exactly_positive_definite(C, lo, sign=-1)       # lambda_max >= lo
    return lo, hi


def far_below_rule(C):
    """Exact lambda_min(C) <= (c - MARGIN) n eps lambda_max: refused on every BLAS."""
    n, f = C.shape[0], Fraction(PD_FACTOR) - MARGIN
    if f == 0:
        return not _exactly_positive_definite(C)                # singular or indefinite
    lo, hi = _exact_lambda_max_bounds(C)
    return not _exactly_positive_definite(C, f * n * EPS * (lo if f > 0 else hi))


def far_above_rule(C):
    """Exact lambda_min(C) >= (c + MARGIN) n eps lambda_max, and >= twice the smallest normal
    float64 (the rule's second condition; the rounding, <= lambda_min / 200, is then 100
    times below the distance to it): accepted on every BLAS."""
    n = C.shape[0]
    _, hi = _exact_lambda_max_bounds(C)
    return (_exactly_positive_definite(C, (Fraction(PD_FACTOR) + MARGIN) * n * EPS * hi)
            and _exactly_positive_definite(C, 2 * TINY))


def far_above_conditioning(C):
    """Exact lambda_min(C) >= (1/CONDITIONING_LIMIT + MARGIN) n eps lambda_max: accepted by
    the conditioning rule on every BLAS."""
    n = C.shape[0]
    _, hi = _exact_lambda_max_bounds(C)
    return _exactly_positive_definite(C, (1 / Fraction(CONDITIONING_LIMIT) + MARGIN) * n * EPS * hi)


def far_inside_conditioning_refusal(C):
    """Accepted by the rule (far above it) but, at least MARGIN rounding units away,
    refused by the conditioning rule n eps kappa > CONDITIONING_LIMIT, i.e.
    lambda_min < n eps lambda_max / CONDITIONING_LIMIT."""
    n = C.shape[0]
    lo, _ = _exact_lambda_max_bounds(C)
    top = (1 / Fraction(CONDITIONING_LIMIT) - MARGIN) * n * EPS * lo
    return far_above_rule(C) and not _exactly_positive_definite(C, top)


H4 = 0.5 * np.array([[1.0, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])  # exactly orthogonal


def _h4(w):
    """H4 diag(w) H4^T: for small dyadic w every entry (a sum of four w_i / 4) is exact, so
    the stored matrix has exactly the spectrum w (checked by the exact tests below)."""
    return (H4 * np.asarray(w, dtype=float)) @ H4.T


GOOD = random_gaussian_model(np.random.default_rng(0), 2, 3, n_e=1).cov
A23 = np.ones((2, 3))
NOT_SYM = GOOD.copy()
NOT_SYM[0, 1] += 0.1
NOT_PD = GOOD.copy()
NOT_PD[0, 0] = -1.0
WITH_NAN = GOOD.copy()
WITH_NAN[1, 1] = np.nan
# A regression matrix: rows 1 and 3 are the same floats, so it is exactly singular.  Cholesky
# passes, and eigvalsh's smallest eigenvalue is -2.4e-17 with OpenBLAS's Haswell kernels,
# +2.2e-18 with SkylakeX; both are far below the rule's 100 * 3 * eps * 1 = 6.7e-14.
SINGULAR = np.array([[0.03, 0.03, 0.03], [0.03, 1.0, 0.03], [0.03, 0.03, 0.03]])
SINGULAR_BLOCK = np.block([[np.eye(1), np.zeros((1, 3))], [np.zeros((3, 1)), SINGULAR]])
SINGULAR_DENSE = _h4([0.0, 1.0, 2.0, 3.0])          # no zero entry, exact spectrum {0, 1, 2, 3}
INDEFINITE_TINY = _h4([-2.0**-44, 1.0, 2.0, 3.0])   # exact smallest eigenvalue -5.7e-14
# exact spectrum {2^-40, 1, 2, 3}: w_min = 341 n eps w_max, between the rule's 100 n eps and
# the conditioning limit's 1000 n eps (n eps kappa = 2.9e-3 > 1e-3)
ILL_CONDITIONED = _h4([2.0**-40, 1.0, 2.0, 3.0])
# exact spectrum {2^-30, 1, 2, 3}: w_min = 3.5e5 n eps w_max, accepted by every rule
ACCEPTED = _h4([2.0**-30, 1.0, 2.0, 3.0])

REFUSED_FIXTURES = {"SINGULAR": SINGULAR, "SINGULAR_BLOCK": SINGULAR_BLOCK,
                    "SINGULAR_DENSE": SINGULAR_DENSE, "INDEFINITE_TINY": INDEFINITE_TINY,
                    "ones": np.ones((2, 2)), "diag(1, 0)": np.diag([1.0, 0.0]), "[[0]]": np.zeros((1, 1))}
ACCEPTED_FIXTURES = {"ILL_CONDITIONED": ILL_CONDITIONED, "ACCEPTED": ACCEPTED, "GOOD": GOOD,
                     "eye(1)": np.eye(1), "1e-300 eye(3)": 1e-300 * np.eye(3)}

INVALID = [
    # (call, argument named in the message, fragment of what was expected)
    (lambda: gaussian.canonical_correlations(np.ones((2, 3)), 1), "cov", "square"),
    (lambda: gaussian.canonical_correlations(NOT_SYM, 2), "cov", "symmetric"),
    (lambda: gaussian.canonical_correlations(NOT_PD, 2), "cov", "positive definite"),
    (lambda: gaussian.mutual_information(WITH_NAN, 2), "cov", "finite"),
    (lambda: gaussian.mutual_information([[1.0]], 1), "cov", "size >= 2"),
    (lambda: gaussian.mutual_information("abc", 1), "cov", "real numbers"),
    (lambda: gaussian.mutual_information(GOOD, 0), "n_u", "1..4"),
    (lambda: gaussian.mutual_information(GOOD, 5), "n_u", "1..4"),
    (lambda: gaussian.mutual_information(GOOD, 2.0), "n_u", "integer"),
    (lambda: gaussian.lowrank_minimizer(GOOD, 2, 0), "n_e", "1..2"),
    (lambda: gaussian.lowrank_minimizer(GOOD, 2, 3), "n_e", "1..2"),
    (lambda: gaussian.lowrank_minimum(GOOD, 2, True), "n_e", "integer"),
    (lambda: gaussian.population_clip_loss(np.ones((3, 2)), GOOD, 2), "A", "(2, 3)"),
    (lambda: gaussian.expected_kl_terms(np.full((2, 3), np.inf), GOOD, 2), "A", "finite"),
    (lambda: gaussian.conditional_loss(np.ones(6), GOOD, 2), "A", "(2, 3)"),
    (lambda: gaussian.gaussian_kl([0.0], [[1.0]], [0.0, 1.0], [[1.0]]), "m2", "length 1"),
    (lambda: gaussian.gaussian_kl([0.0], [[1.0]], [0.0], [[0.0]]), "S2", "positive definite"),
    (lambda: gaussian.joint_covariance(np.eye(2), np.eye(2), [0.5, 0.5, 0.5]), "sigma", "at most 2"),
    (lambda: GaussianModel(cov=GOOD, n_u=2, n_e=5), "n_e", "1..2"),
    # exactly singular, yet Cholesky succeeds (pivot 2.6e-9): refused by the eigenvalue rule,
    # named C_vv (not C_uu, not an overflow), whatever the sign of the rounding
    (lambda: gaussian.joint_covariance([[1.0]], SINGULAR, 0), "C_vv", "positive definite"),
    (lambda: gaussian.joint_covariance([[1.0]], SINGULAR, 0), "C_vv", "singular or indefinite"),
    (lambda: gaussian.joint_covariance(SINGULAR_DENSE, [[1.0]], 0), "C_uu", "singular or indefinite"),
    (lambda: GaussianModel(cov=SINGULAR_BLOCK, n_u=1, n_e=1), "cov", "positive definite"),
    (lambda: GaussianModel(cov=INDEFINITE_TINY, n_u=2, n_e=1), "cov", "singular or indefinite"),
    (lambda: gaussian.mutual_information(SINGULAR_DENSE, 2), "cov", "singular or indefinite"),
    (lambda: gaussian.gaussian_entropy(SINGULAR), "S", "singular or indefinite"),
    (lambda: gaussian.gaussian_kl(np.zeros(3), SINGULAR, np.zeros(3), np.eye(3)), "S1", "singular or indefinite"),
    (lambda: gaussian.gaussian_kl_batch(np.zeros((2, 4)), np.stack([np.eye(4), SINGULAR_DENSE]),
                                        np.zeros((2, 4)), np.stack([np.eye(4)] * 2)), "S1", "matrix 1"),
    (lambda: montecarlo.gaussian_sampler(SINGULAR_BLOCK, 1), "cov", "singular or indefinite"),
    (lambda: montecarlo.expected_kl_terms_mc(SINGULAR_BLOCK, 1, montecarlo.linear_encoder(np.ones((1, 1))),
                                             montecarlo.linear_encoder(np.ones((1, 3))), 1.0, "dot", 10,
                                             np.random.default_rng(0)), "cov", "singular or indefinite"),
    # positive definite by the rule, refused by the README's conditioning rule
    (lambda: montecarlo.expected_kl_terms_mc(ILL_CONDITIONED, 1, montecarlo.linear_encoder(np.ones((1, 1))),
                                             montecarlo.linear_encoder(np.ones((1, 3))), 1.0, "dot", 10,
                                             np.random.default_rng(0)), "cov", "condition number"),
    (lambda: gaussian.canonical_correlations(ILL_CONDITIONED, 2), "cov", "condition number"),
    (lambda: montecarlo.population_clip_loss_mc(montecarlo.gaussian_sampler(np.eye(3), 1),
                                                montecarlo.linear_encoder(np.ones((1, 1))),
                                                montecarlo.linear_encoder(np.ones((1, 1))), 1.0, "dot",
                                                10, np.random.default_rng(0)), "encode_v", "ValueError"),
    # KL(N(0, 1e300) || N(0, 1e-300)) ~ 1e600 and a mean gap of 2e300 overflow float64
    (lambda: gaussian.gaussian_kl([0.0], [[1e300]], [0.0], [[1e-300]]), "S2", "overflows"),
    (lambda: gaussian.gaussian_kl([1e300], [[1.0]], [-1e300], [[1.0]]), "m2", "finite"),
    (lambda: gaussian.gaussian_kl_batch([[0.0]], [[[1e300]]], [[0.0]], [[[1e-300]]]), "S2", "overflows"),
    (lambda: gaussian.gaussian_kl_batch([[1e300]], [[[1.0]]], [[-1e300]], [[[1.0]]]), "m2", "finite"),
]


@pytest.mark.parametrize("call, arg, expected", INVALID)
def test_invalid_calls_raise_named_errors(call, arg, expected):
    with pytest.raises(InvalidInputError) as info:
        call()
    msg = str(info.value)
    assert msg.startswith(f"{arg}="), msg
    assert expected in msg, msg
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("cond, smax", [(1e6, 0.9), (1e6, 1 - 1e-6), (1e9, 0.9), (1e12, 0.9),
                                        (1e6, 1 - 1e-9), (1e9, 1 - 1e-9), (1e12, 1 - 1e-9)])
def test_ill_conditioned_models_work_to_documented_accuracy_or_fail_clearly(cond, smax):
    # Documented accuracy (numerics._validation.check_conditioning): relative error
    # <= n * eps * kappa(C) * 32 on the closed-form identities; otherwise a clear error.
    rng = np.random.default_rng(1)
    cov = gaussian.joint_covariance(random_spd(rng, 3, max_condition=cond),
                                    random_spd(rng, 2, max_condition=cond), [smax, 0.3],
                                    random_orthogonal(rng, 3), random_orthogonal(rng, 2))
    try:
        A = gaussian.lowrank_minimizer(cov, 3, 1)
        lc = gaussian.population_clip_loss(A, cov, 3)
        kv, ku = gaussian.expected_kl_terms(A, cov, 3)
        I = gaussian.mutual_information(cov, 3)
    except InvalidInputError as exc:
        assert str(exc).startswith("cov=")
        return
    kappa = np.linalg.cond(cov)
    scale = max(abs(lc), abs(kv), abs(ku), abs(I), 1.0)
    bound = 32 * 5 * np.finfo(float).eps * kappa * scale
    assert np.all(np.isfinite([lc, kv, ku, I]))
    assert abs(lc - (0.5 * (kv + ku) - I)) <= bound
    assert abs(lc + 0.5 * smax**2) <= bound  # Proposition G1's minimum, sigma_1 = smax


# --------------------------------------------------------------------------
# The positive-definiteness rule (numerics.as_covariance) on every BLAS
# --------------------------------------------------------------------------
def _verdict(C, conditioning=False):
    try:
        as_covariance(C, "C", min_size=1, conditioning=conditioning)
    except InvalidInputError as exc:
        msg = str(exc)
        assert msg.startswith("C="), msg
        if "singular or indefinite" in msg:
            return "singular or indefinite"
        assert "condition number" in msg, msg
        return "condition number"
    return "accepted"


class _Rounding:
    """Context: ``np.linalg.eigvalsh`` with its eigenvalues moved by ``sign * n eps max|w|``
    (all of them, or only the smallest): a LAPACK whose rounding is the full bound
    documented in numerics.as_covariance, in either direction."""

    def __init__(self, sign, which="all"):
        self.sign, self.which = sign, which

    def __enter__(self):
        orig = self.orig = np.linalg.eigvalsh
        sign, which = self.sign, self.which

        def eigvalsh(a, *args, **kwargs):
            w = orig(a, *args, **kwargs)
            d = sign * w.shape[-1] * np.finfo(float).eps * np.max(np.abs(w), axis=-1, keepdims=True)
            if which == "all":
                return w + d
            w = w.copy()
            w[..., :1] += d
            return w

        np.linalg.eigvalsh = eigvalsh
        return self

    def __exit__(self, *exc):
        np.linalg.eigvalsh = self.orig


ROUNDINGS = [(0, "all"), (-1, "all"), (1, "all"), (-1, "min"), (1, "min")]


@pytest.mark.parametrize("name", list(REFUSED_FIXTURES))
def test_refused_fixtures_are_exactly_singular_or_indefinite_and_refused_on_every_blas(name):
    C = REFUSED_FIXTURES[name]
    assert far_below_rule(C)                      # exact: lambda_min <= 0, 100 rounding units below
    for sign, which in ROUNDINGS:
        with _Rounding(sign, which):
            assert _verdict(C) == "singular or indefinite", (sign, which)
            assert _verdict(C, conditioning=True) == "singular or indefinite", (sign, which)


@pytest.mark.parametrize("name", list(ACCEPTED_FIXTURES))
def test_accepted_fixtures_sit_far_above_the_rule_and_are_accepted_on_every_blas(name):
    C = ACCEPTED_FIXTURES[name]
    assert far_above_rule(C)
    expected = "condition number" if name == "ILL_CONDITIONED" else "accepted"
    if name == "ILL_CONDITIONED":
        assert far_inside_conditioning_refusal(C)
    else:
        assert far_above_conditioning(C)
    for sign, which in ROUNDINGS:
        with _Rounding(sign, which):
            assert _verdict(C) == "accepted", (sign, which)
            assert _verdict(C, conditioning=True) == expected, (sign, which)


def test_exact_fixtures_have_their_documented_spectra():
    # H4 / 2 is exactly orthogonal and the entries of H4 diag(w) H4^T are exact: the spectra
    # are the w given, which pins the exact tests above to known numbers
    np.testing.assert_array_equal(H4 @ H4.T, np.eye(4))
    n, eps = 4, np.finfo(float).eps
    for C, w in ((SINGULAR_DENSE, [0.0, 1, 2, 3]), (INDEFINITE_TINY, [-2.0**-44, 1, 2, 3]),
                 (ILL_CONDITIONED, [2.0**-40, 1, 2, 3]), (ACCEPTED, [2.0**-30, 1, 2, 3])):
        np.testing.assert_array_equal(H4.T @ C @ H4, np.diag(w))   # exact: entries are dyadic
        np.testing.assert_allclose(np.linalg.eigvalsh(C), w, rtol=0, atol=4 * n * eps * 3)
    assert 300 < 2.0**-40 / (n * eps * 3) < 400                    # ILL_CONDITIONED: 341 n eps w_max
    # the regression matrix: exactly singular (equal rows), Cholesky succeeds, and eigvalsh's
    # smallest eigenvalue, of either sign, is far below the threshold (measured: 280 times
    # below with OpenBLAS's Haswell kernels, 3000 times with SkylakeX; asserted: 10 times)
    assert SINGULAR[0].tolist() == SINGULAR[2].tolist()
    np.linalg.cholesky(SINGULAR)
    w = np.linalg.eigvalsh(SINGULAR)
    assert abs(w[0]) <= PD_FACTOR * 3 * eps * w[-1] / 10


def test_joint_covariance_names_a_singular_C_vv_before_judging_C_uu_overflow():
    # C_uu near the float64 maximum (the argument the overflow check would blame, as it once
    # did) and C_vv singular: every argument is validated before any arithmetic, so
    # the error names C_vv and says why
    big = 1.7e308 * np.array([[1.0, 0.99], [0.99, 1.0]])
    for C_vv in (SINGULAR, np.ldexp(SINGULAR, 1000), INDEFINITE_TINY):
        with pytest.raises(InvalidInputError, match="^C_vv=.*singular or indefinite"):
            gaussian.joint_covariance(big, C_vv, [0.5])
    assert np.all(np.isfinite(gaussian.joint_covariance(big, ACCEPTED, [0.99, 0.5])))


# Strategies: matrices with a spectrum known far from a threshold, in exact terms
_seeds = st.integers(0, 2**32 - 1)
_scales = st.integers(-500, 500)          # exact scaling by 2^s (entries stay normal floats)


@st.composite
def far_below(draw):
    """Exactly singular (a duplicated, sign-flipped or zero row and column) or indefinite
    (smallest eigenvalue -r w_max, r >= 100 n eps: far beyond the construction's rounding)."""
    n = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(_seeds))
    kind = draw(st.sampled_from(["duplicate", "flipped", "zero", "negative"]))
    if n == 1:
        C = np.array([[0.0 if kind == "zero" else -10.0 ** draw(st.floats(-100.0, 100.0))]])
    elif kind == "negative":
        r = 10.0 ** draw(st.floats(np.log10(100 * n * np.finfo(float).eps), 0.0))
        w = rng.uniform(0.01, 1.0, n)
        w[0], w[-1] = -r, 1.0
        Q = random_orthogonal(rng, n)
        C = (Q * w) @ Q.T
        C = 0.5 * (C + C.T)
    else:
        B = random_spd(rng, n - 1, max_condition=10.0 ** draw(st.floats(0.0, 8.0)))
        if kind == "zero":
            C = np.zeros((n, n))
            C[:-1, :-1] = B
        else:
            idx = list(range(n - 1)) + [draw(st.integers(0, n - 2))]
            C = B[np.ix_(idx, idx)]
            if kind == "flipped":
                D = np.ones(n)
                D[-1] = -1.0
                C = D[:, None] * C * D[None, :]
        p = rng.permutation(n)
        C = C[np.ix_(p, p)]
    return np.ldexp(C, draw(_scales))


@st.composite
def far_above(draw, lo_ratio=1e4, hi_ratio=None):
    """Q diag(w) Q^T with w_min / w_max = r n eps, r log-uniform in [lo_ratio, hi_ratio]
    (up to 1 / (n eps) when hi_ratio is None)."""
    n = draw(st.integers(1 if hi_ratio is None else 2, 6))
    rng = np.random.default_rng(draw(_seeds))
    unit = n * np.finfo(float).eps
    top = 0.0 if hi_ratio is None else np.log10(hi_ratio * unit)
    r = 10.0 ** draw(st.floats(np.log10(lo_ratio * unit), top))
    w = np.exp(rng.uniform(np.log(r), 0.0, n))
    w[0], w[-1] = (r, 1.0) if n > 1 else (1.0, 1.0)
    Q = random_orthogonal(rng, n)
    C = (Q * w) @ Q.T
    return np.ldexp(0.5 * (C + C.T), draw(_scales))


@settings(max_examples=60, deadline=None)
@given(C=far_below())
@example(C=SINGULAR)
@example(C=np.ldexp(SINGULAR, 1001))
@example(C=np.ldexp(SINGULAR_DENSE, -1001))
def test_rule_refuses_every_matrix_far_below_it(C):
    assert far_below_rule(C)
    for sign, which in ROUNDINGS:
        with _Rounding(sign, which):
            assert _verdict(C) == "singular or indefinite", (sign, which)
    # premise of the rule (documented: eigvalsh's rounding measured < n eps w_max): a
    # matrix with exact w_min <= 0 comes out below 10 n eps w_max, a factor 10 under the
    # threshold, on this BLAS too (C scaled exactly, as the rule does, to stay normal)
    w = np.linalg.eigvalsh(np.ldexp(C, -int(np.frexp(np.max(np.abs(C)))[1])))
    assert w[0] <= 10 * C.shape[0] * np.finfo(float).eps * w[-1]


@settings(max_examples=60, deadline=None)
@given(C=far_above())
@example(C=ACCEPTED)
@example(C=np.ldexp(ACCEPTED, -980))
def test_rule_accepts_every_matrix_far_above_it(C):
    assert far_above_rule(C) and far_above_conditioning(C)
    for sign, which in ROUNDINGS:
        with _Rounding(sign, which):
            assert _verdict(C) == "accepted", (sign, which)
            assert _verdict(C, conditioning=True) == "accepted", (sign, which)
    S = as_covariance(C, min_size=1)
    np.testing.assert_array_equal(S, C)          # symmetric input comes back unchanged
    # consequences documented in as_covariance: Cholesky succeeds, eigh's eigenvalues are > 0
    np.linalg.cholesky(S)
    e = 2 * (np.frexp(np.max(np.abs(S)))[1] // 2)
    assert np.linalg.eigh(np.ldexp(S, -e))[0][0] > 0


@settings(max_examples=40, deadline=None)
@given(C=far_above(lo_ratio=300.0, hi_ratio=700.0))
@example(C=ILL_CONDITIONED)
def test_conditioning_rule_refuses_what_passes_the_rule_but_has_too_few_digits(C):
    assert far_inside_conditioning_refusal(C)
    for sign, which in ROUNDINGS:
        with _Rounding(sign, which):
            assert _verdict(C) == "accepted", (sign, which)
            assert _verdict(C, conditioning=True) == "condition number", (sign, which)


@settings(max_examples=60, deadline=None)
@given(C=st.one_of(far_below(), far_above(), far_above(lo_ratio=1.0, hi_ratio=1e4)),
       k=st.integers(-200, 200))
def test_verdict_is_invariant_under_exact_scaling_by_even_powers_of_two(C, k):
    # the rule scales by an even power of two before eigvalsh: 4^k C gives the same bits
    # there, hence the same verdict, even for a matrix on the threshold (the strategies'
    # scales keep every nonzero eigenvalue above 1e-290, clear of the normal-range condition)
    scaled = np.ldexp(C, 2 * k)
    assume(np.all(np.isfinite(scaled)) and np.array_equal(np.ldexp(scaled, -2 * k), C))
    assert _verdict(C) == _verdict(scaled)


def test_batch_rule_is_the_same_rule_matrix_by_matrix():
    stack = np.stack([np.eye(4), ACCEPTED, SINGULAR_DENSE, INDEFINITE_TINY])
    with pytest.raises(InvalidInputError, match="^S=.*matrix 2 is numerically singular or indefinite"):
        as_covariance_batch(stack, "S")
    np.testing.assert_array_equal(as_covariance_batch(stack[:2], "S"), stack[:2])
    for k in (2, 3):
        with pytest.raises(InvalidInputError, match="^S=.*matrix 0 is numerically singular"):
            as_covariance_batch(stack[k:k + 1], "S")


def test_rule_refuses_a_smallest_eigenvalue_below_the_normal_range():
    # Second condition of the rule: w_min >= 2.23e-308, the smallest normal float64.
    # Scaled into the subnormal range a well-conditioned matrix keeps its relative spectrum
    # for the rule's exactly rescaled eigvalsh, but Cholesky factors and square roots at its
    # own scale underflow: refused, and named.
    tiny = np.finfo(float).tiny
    for C, s in ((ACCEPTED, -1000), (np.eye(3), -1060), (np.array([[1.0]]), -1030)):
        D = np.ldexp(C, s)                              # smallest eigenvalue 2^(s - 30) or 2^s
        assert not _exactly_positive_definite(D, TINY / 2)    # exact: lambda_min <= tiny / 2
        for sign, which in ROUNDINGS:
            with _Rounding(sign, which):
                assert _verdict(D) == "singular or indefinite", (sign, which)
        with pytest.raises(InvalidInputError, match=r"^S=.*>= 2.23e-308 "):
            gaussian.gaussian_entropy(D)
    for D in (np.ldexp(ACCEPTED, -980), np.array([[4 * tiny]]), 1e-300 * np.eye(3)):
        assert far_above_rule(D)
        assert _verdict(D) == "accepted"
        assert np.isfinite(gaussian.gaussian_entropy(D))
