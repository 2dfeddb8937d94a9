"""Fuzzing: every public entry point, fed arbitrary arrays and scalars, either
returns a valid (finite) result or raises the documented InvalidInputError.

Any other exception (LinAlgError, IndexError, TypeError, ...) or a NaN in a
result fails the test.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from numerics import InvalidInputError, gaussian
from numerics.models import GaussianModel

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)
scalars = st.one_of(st.integers(-5, 10), finite_or_not, st.booleans(), st.none(),
                    st.text(max_size=3))


@st.composite
def arrays(draw, max_side=6):
    """Arbitrary small arrays: any rank <= 2, float/int/bool dtypes, NaN and inf allowed,
    plus nearly valid covariances (random SPD with a defect)."""
    kind = draw(st.sampled_from(["random", "spd", "spd-defect"]))
    if kind == "random":
        dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.bool_]))
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=max_side))
        elems = None if dtype in (np.int64, np.bool_) else st.floats(width=32 if dtype == np.float32 else 64)
        return draw(hnp.arrays(dtype, shape, elements=elems))
    n = draw(st.integers(1, max_side))
    X = draw(hnp.arrays(np.float64, (n, n), elements=st.floats(-3, 3)))
    S = X @ X.T + draw(st.floats(0.0, 1.0)) * np.eye(n)
    if kind == "spd-defect":
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        S[i, j] = draw(st.one_of(finite_or_not, st.floats(-1e3, 1e3)))
    return S


def _valid(result):
    parts = result if isinstance(result, tuple) else (result,)
    for p in parts:
        arr = np.asarray(p, dtype=float)
        assert np.all(np.isfinite(arr)), f"non-finite result {p!r}"


def _call(fn, *args):
    try:
        out = fn(*args)
    except InvalidInputError:
        return "error"
    _valid(out)
    return "ok"


COV_FUNCS = [gaussian.canonical_correlations, gaussian.mutual_information,
             gaussian.whitened_cross_covariance, gaussian.true_conditionals,
             gaussian.split_covariance, gaussian.canonical_directions]
A_FUNCS = [gaussian.population_clip_loss, gaussian.population_clip_loss_grad,
           gaussian.expected_kl_terms, gaussian.conditional_loss,
           gaussian.bilinear_model_conditionals]


@pytest.mark.parametrize("fn", COV_FUNCS, ids=lambda f: f.__name__)
@FUZZ
@given(cov=arrays(), n_u=scalars)
def test_fuzz_covariance_functions(fn, cov, n_u):
    _call(fn, cov, n_u)


@pytest.mark.parametrize("fn", A_FUNCS, ids=lambda f: f.__name__)
@FUZZ
@given(A=arrays(), cov=arrays(), n_u=st.one_of(st.integers(0, 6), scalars))
def test_fuzz_bilinear_functions(fn, A, cov, n_u):
    _call(fn, A, cov, n_u)


@pytest.mark.parametrize("fn", A_FUNCS, ids=lambda f: f.__name__)
@FUZZ
@given(data=st.data())
def test_fuzz_bilinear_functions_on_valid_models(fn, data):
    # a valid covariance and an A of the right shape with arbitrary finite
    # entries (up to 1e308): overflow must become InvalidInputError, not NaN
    from proofs_checks.strategies import joint_covariances

    n_u, n_v = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    cov = data.draw(joint_covariances(n_u, n_v))
    A = data.draw(hnp.arrays(np.float64, (n_u, n_v), elements=st.floats(allow_nan=False, allow_infinity=False)))
    _call(fn, A, cov, n_u)


@pytest.mark.parametrize("fn", [gaussian.lowrank_minimizer, gaussian.lowrank_minimum],
                         ids=lambda f: f.__name__)
@FUZZ
@given(cov=arrays(), n_u=st.one_of(st.integers(0, 6), scalars), n_e=st.one_of(st.integers(-1, 6), scalars))
def test_fuzz_lowrank(fn, cov, n_u, n_e):
    _call(fn, cov, n_u, n_e)


@FUZZ
@given(m1=arrays(), S1=arrays(), m2=arrays(), S2=arrays())
@example(m1=np.zeros(1), S1=np.array([[1e300]]), m2=np.zeros(1), S2=np.array([[1e-300]]))  # tr overflows
def test_fuzz_gaussian_kl(m1, S1, m2, S2):
    _call(gaussian.gaussian_kl, m1, S1, m2, S2)


@FUZZ
@given(S=arrays())
def test_fuzz_gaussian_entropy(S):
    _call(gaussian.gaussian_entropy, S)


# Exactly singular and exactly indefinite matrices (SINGULAR, SINGULAR_BLOCK: Cholesky
# succeeds on them); each is checked in rational arithmetic, in tests/test_validation.py,
# to sit far below the positive-definiteness rule of numerics.as_covariance (refused on
# every BLAS).
from .test_validation import INDEFINITE_TINY, SINGULAR, SINGULAR_BLOCK, SINGULAR_DENSE  # noqa: E402


@FUZZ
@given(C_uu=arrays(3), C_vv=arrays(3), sigma=st.one_of(arrays(3), scalars))
@example(C_uu=np.array([[1.0]]), sigma=0.0, C_vv=SINGULAR)
@example(C_uu=SINGULAR_DENSE, sigma=0.0, C_vv=np.array([[1.0]]))
@example(C_uu=1.7e308 * np.array([[1.0, 0.99], [0.99, 1.0]]), sigma=0.5, C_vv=INDEFINITE_TINY)
def test_fuzz_joint_covariance(C_uu, C_vv, sigma):
    _call(gaussian.joint_covariance, C_uu, C_vv, sigma)


@FUZZ
@given(cov=arrays(), n_u=scalars, n_e=scalars)
@example(cov=SINGULAR_BLOCK, n_u=1, n_e=1)
@example(cov=INDEFINITE_TINY, n_u=2, n_e=1)
def test_fuzz_gaussian_model(cov, n_u, n_e):
    try:
        m = GaussianModel(cov=cov, n_u=n_u, n_e=n_e)
    except InvalidInputError:
        return
    _valid(m.sigma)


# --------------------------------------------------------------------------
# kernels and Monte Carlo estimators
# --------------------------------------------------------------------------
from numerics import kernels, montecarlo  # noqa: E402

similarities = st.one_of(st.sampled_from(["dot", "l2", "cosine"]), st.text(max_size=4), st.none())
temperatures = st.one_of(st.floats(1e-3, 10.0), scalars)


@st.composite
def embedding_pairs(draw):
    """Pairs of embedding batches: usually matching shapes, sometimes not; any dtype;
    NaN, inf, zero rows and huge values allowed."""
    n, e = draw(st.integers(0, 5)), draw(st.integers(0, 3))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    elems = (st.integers(-5, 5) if dtype == np.int64
             else st.floats(width=32 if dtype == np.float32 else 64, allow_subnormal=False))
    za = draw(hnp.arrays(dtype, (n, e), elements=elems))
    if draw(st.booleans()):
        zb = draw(hnp.arrays(dtype, (n, e), elements=elems))
    else:
        zb = draw(arrays())
    return za, zb


@pytest.mark.parametrize("fn", [kernels.clip_loss, kernels.clip_loss_and_grad],
                         ids=lambda f: f.__name__)
@FUZZ
@given(pair=embedding_pairs(), tau=temperatures, similarity=similarities)
def test_fuzz_kernels(fn, pair, tau, similarity):
    za, zb = pair
    _call(fn, za, zb, tau, similarity)


@pytest.mark.parametrize("fn", [kernels.clip_loss, kernels.clip_loss_and_grad],
                         ids=lambda f: f.__name__)
@FUZZ
@given(data=st.data(), similarity=st.sampled_from(["dot", "l2", "cosine"]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_fuzz_kernels_extreme_values(fn, data, similarity, dtype):
    # valid shapes, any finite magnitude, tiny or huge temperatures
    n, e = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 3))
    elems = st.floats(allow_nan=False, allow_infinity=False, width=32 if dtype == np.float32 else 64)
    za = data.draw(hnp.arrays(dtype, (n, e), elements=elems))
    zb = data.draw(hnp.arrays(dtype, (n, e), elements=elems))
    tau = data.draw(st.floats(1e-300, 1e300))
    _call(fn, za, zb, tau, similarity)


@pytest.mark.parametrize("fn", [kernels.clip_loss_from_logits, kernels.clip_loss_grad_from_logits],
                         ids=lambda f: f.__name__)
@FUZZ
@given(F=arrays())
def test_fuzz_logit_references(fn, F):
    _call(fn, F)


@FUZZ
@given(m1=arrays(), S1=arrays(), m2=arrays(), S2=arrays())
@example(m1=np.zeros((1, 1)), S1=np.full((1, 1, 1), 1e300), m2=np.zeros((1, 1)),
         S2=np.full((1, 1, 1), 1e-300))  # tr overflows
@example(m1=np.zeros((1, 1)), S1=np.full((1, 1, 1), 1.7e308), m2=np.zeros((1, 1)),
         S2=np.full((1, 1, 1), 1.7e308))  # S + S^T overflows
def test_fuzz_gaussian_kl_batch(m1, S1, m2, S2):
    _call(gaussian.gaussian_kl_batch, m1, S1, m2, S2)


@settings(FUZZ, max_examples=25)
@given(cov=arrays(4), n_u=st.one_of(st.integers(0, 4), scalars), G=arrays(3),
       tau=temperatures, similarity=similarities, n=st.one_of(st.integers(-1, 40), scalars))
# an exactly singular C_vv (equal rows); an encoder too narrow for v (numpy's ValueError)
@example(cov=np.block([[np.eye(2), np.zeros((2, 2))], [np.zeros((2, 2)), np.full((2, 2), 0.3)]]),
         n_u=2, G=np.eye(2), tau=1.0, similarity="dot", n=10)
@example(cov=SINGULAR_BLOCK, n_u=1, G=np.eye(2), tau=1.0, similarity="dot", n=10)
@example(cov=np.eye(3), n_u=1, G=np.ones((1, 1)), tau=1.0, similarity="dot", n=10)
def test_fuzz_montecarlo_estimators(cov, n_u, G, tau, similarity, n):
    rng = np.random.default_rng(0)
    try:
        sample = montecarlo.gaussian_sampler(cov, n_u)
        enc_u = montecarlo.linear_encoder(G)
        enc_v = montecarlo.linear_encoder(G)
    except InvalidInputError:
        return
    for fn in (lambda: montecarlo.population_clip_loss_mc(sample, enc_u, enc_v, tau, similarity, n, rng),
               lambda: montecarlo.expected_kl_terms_mc(cov, n_u, enc_u, enc_v, tau, similarity, n, rng)):
        try:
            out = fn()
        except InvalidInputError:
            continue
        parts = out if isinstance(out, tuple) else (out,)
        for p in parts:
            assert np.isfinite(p.estimate) and np.isfinite(p.standard_error)


# --------------------------------------------------------------------------
# loss variants and the verifier's argument checking
# --------------------------------------------------------------------------
from numerics import infonce, variants  # noqa: E402

divergences = st.one_of(st.sampled_from(["forward", "reverse"]), st.text(max_size=4), st.none())
lams = st.one_of(st.floats(0.0, 1.0), scalars)


@FUZZ
@given(A=arrays(), cov=arrays(), n_u=st.one_of(st.integers(0, 6), scalars), lam=lams,
       divergence=divergences)
def test_fuzz_bilinear_variants(A, cov, n_u, lam, divergence):
    _call(lambda *a: variants.bilinear_kl_terms(A, cov, n_u, divergence=divergence))
    _call(lambda *a: variants.bilinear_balanced_loss(A, cov, n_u, lam, divergence=divergence))
    _call(lambda *a: variants.bilinear_balanced_loss_grad(A, cov, n_u, lam, divergence=divergence))


@FUZZ
@given(G_u=arrays(3), G_v=arrays(3), tau=temperatures, cov=arrays(), n_u=st.one_of(st.integers(0, 6), scalars),
       lam=lams, divergence=divergences)
def test_fuzz_l2_variants(G_u, G_v, tau, cov, n_u, lam, divergence):
    _call(lambda *a: variants.l2_conditionals(G_u, G_v, tau, cov, n_u))
    _call(lambda *a: variants.l2_kl_terms(G_u, G_v, tau, cov, n_u, divergence=divergence))
    _call(lambda *a: variants.l2_balanced_loss(G_u, G_v, tau, cov, n_u, lam, divergence=divergence))
    _call(lambda *a: variants.l2_infonce_terms(G_u, G_v, tau, cov, n_u))


@FUZZ
@given(cov=arrays(), n_u=st.one_of(st.integers(0, 6), scalars), n_e=st.one_of(st.integers(-1, 6), scalars))
def test_fuzz_variant_minimizers(cov, n_u, n_e):
    _call(variants.projected_regression_maps, cov, n_u, n_e)
    _call(variants.l2_one_sided_minimum, cov, n_u, n_e)
    _call(variants.l2_one_sided_minimizer, cov, n_u, n_e)


@FUZZ
@given(F=arrays(), lam=lams)
def test_fuzz_infonce(F, lam):
    _call(infonce.infonce_loss, F, lam)
    _call(infonce.infonce_grad, F, lam)


@settings(FUZZ, max_examples=30)
@given(claim=st.one_of(st.sampled_from(["same-minimizers-as-clip", "matches-conditionals"]),
                       st.text(max_size=5), st.none()),
       similarity=similarities, seed=scalars, n_models=scalars, replicates=scalars,
       direction=st.one_of(st.sampled_from(["both", "v|u"]), st.text(max_size=3)))
def test_fuzz_verify_variant_arguments(claim, similarity, seed, n_models, replicates, direction):
    # Only argument checking is fuzzed: once every argument is accepted the
    # verifier calls the loss, which stops the run by raising _Accepted (the
    # verifier reports a raising loss as an InvalidInputError naming it).
    from proofs_checks import verify_variant

    class _Accepted(Exception):
        pass

    def loss(F):
        raise _Accepted

    try:
        verify_variant(loss, claim=claim, similarity=similarity, seed=seed, n_models=n_models,
                       replicates=replicates, direction=direction)
    except InvalidInputError:
        return
    raise AssertionError("verify_variant returned although the loss always raises")
