"""Tests of numerics/infonce.py: similarities, logits and the dense InfoNCE family (MATH.md §1, §2)."""
import numpy as np
import pytest
from scipy.special import logsumexp

from numerics import InvalidInputError, infonce


def test_empirical_balanced_infonce_values_and_grad():
    rng = np.random.default_rng(9)
    F = rng.standard_normal((7, 7))
    N = 7
    row = -np.mean(np.diag(F)) + np.mean(logsumexp(F, axis=1))
    col = -np.mean(np.diag(F)) + np.mean(logsumexp(F, axis=0))
    assert infonce.infonce_loss(F, 0.0) == pytest.approx(row, abs=1e-13)
    assert infonce.infonce_loss(F, 1.0) == pytest.approx(col, abs=1e-13)
    assert infonce.infonce_loss(F, 0.5) == pytest.approx(0.5 * (row + col), abs=1e-13)
    G = infonce.infonce_grad(F, 0.3)
    D = rng.standard_normal(F.shape)
    h = 1e-6
    fd = (infonce.infonce_loss(F + h * D, 0.3)
          - infonce.infonce_loss(F - h * D, 0.3)) / (2 * h)
    assert abs(fd - np.sum(G * D)) <= 1e-8


def test_empirical_infonce_is_finite_for_huge_finite_logits():
    F = np.array([[1e308, 0.0, -1.0], [2.0, 1e308, 0.0], [0.0, 0.0, 1e308]])
    # Off-diagonal logits are negligible next to the positives: each log-mean-exp is F_ii.
    assert infonce.infonce_loss(F, 0.3) == pytest.approx(0.0, abs=1e-12)
    G = 1e300 * np.ones((3, 3)) + np.diag([1.0, 2.0, 3.0]) * 1e290
    ref = 0.0  # the 1e290 diagonal excess dominates each row and column
    assert infonce.infonce_loss(G, 0.5) == pytest.approx(ref, abs=1e-12)


# --------------------------------------------------------------------------
# similarities and logits, against direct evaluation of MATH.md §1
# --------------------------------------------------------------------------
def _direct(za, zb, tau, similarity):
    """s(a_i, b_k) / tau pair by pair, straight from the definitions (no expansion)."""
    out = np.empty((za.shape[0], zb.shape[0]))
    for i, a in enumerate(za):
        for k, b in enumerate(zb):
            if similarity == "dot":
                s = float(a @ b)
            elif similarity == "l2":
                s = -0.5 * float(np.sum((a - b) ** 2))
            else:
                s = float(a @ b) / (np.sqrt(a @ a) * np.sqrt(b @ b))
            out[i, k] = s / tau
    return out


@pytest.mark.parametrize("similarity", infonce.SIMILARITIES)
def test_rectangular_logits_match_definition(similarity):
    rng = np.random.default_rng(1)
    za, zb = rng.standard_normal((5, 3)), rng.standard_normal((7, 3))
    F = infonce.logits(za, zb, 0.3, similarity)
    assert F.shape == (5, 7)
    np.testing.assert_allclose(F, _direct(za, zb, 0.3, similarity), rtol=1e-12, atol=1e-12)
    pairs = infonce.paired_logits(za, zb[:5], 0.3, similarity)
    np.testing.assert_allclose(pairs, np.diag(_direct(za, zb[:5], 0.3, similarity)), rtol=1e-12,
                               atol=1e-12)


def test_l2_logits_survive_a_large_common_offset():
    """Distances are translation invariant: a common offset of 1e6 (|a|^2 ~ 1e12) must not
    cost the digits an uncentred expansion would lose (eps * 1e12 ~ 1e-4)."""
    rng = np.random.default_rng(2)
    za, zb = rng.standard_normal((6, 2)), rng.standard_normal((4, 2))
    shift = np.array([1e6, -3e5])
    F0 = infonce.logits(za, zb, 1.0, "l2")
    F1 = infonce.logits(za + shift, zb + shift, 1.0, "l2")
    # rounding of the shifted inputs themselves: |shift| * eps per coordinate, times |a - b|
    assert np.max(np.abs(F1 - F0)) < 1e6 * np.finfo(float).eps * 50


def test_logits_of_stacks_are_per_matrix():
    rng = np.random.default_rng(3)
    za, zb = rng.standard_normal((4, 6, 2)), rng.standard_normal((4, 6, 2))
    for sim in infonce.SIMILARITIES:
        stack = infonce._logits(za, zb, 0.5, sim)
        for t in range(4):
            np.testing.assert_allclose(stack[t], _direct(za[t], zb[t], 0.5, sim), rtol=1e-12, atol=1e-12)
        values = infonce.infonce_loss(stack, 0.25)
        assert values.shape == (4,)
        for t in range(4):
            assert values[t] == pytest.approx(infonce.infonce_loss(stack[t], 0.25), abs=1e-14)


def test_similarity_vocabulary():
    assert infonce.as_similarity("bilinear") == "dot"
    assert infonce.as_similarity("cosine") == "cosine"
    with pytest.raises(InvalidInputError, match="^similarity="):
        infonce.as_similarity("angular")
    with pytest.raises(InvalidInputError, match="^similarity="):
        infonce.as_similarity("cosine", choices=("dot", "l2"))


@pytest.mark.parametrize("name, za, zb", [
    ("za", np.zeros((3, 2)), np.ones((3, 2))),
    ("zb", np.ones((3, 2)), np.zeros((3, 2))),
])
def test_zero_embedding_under_cosine_names_its_argument(name, za, zb):
    with pytest.raises(InvalidInputError, match=f"^{name}="):
        infonce.logits(za, zb, 1.0, "cosine")
    with pytest.raises(InvalidInputError, match=f"^{name}="):
        infonce.paired_logits(za, zb, 1.0, "cosine")


def test_infonce_of_equal_logits_is_log_n_and_shift_invariant():
    """Lemma 2.1's facts from the definition: L_N = log N for equal logits, and adding a
    constant to every logit changes nothing, for every lambda."""
    rng = np.random.default_rng(4)
    F = rng.standard_normal((6, 6))
    for lam in (0.0, 0.3, 0.5, 1.0):
        assert infonce.infonce_loss(np.full((6, 6), 2.5), lam) == pytest.approx(np.log(6), abs=1e-14)
        assert infonce.infonce_loss(F + 7.0, lam) == pytest.approx(infonce.infonce_loss(F, lam), abs=1e-13)


def test_value_and_grad_in_one_pass_matches_the_separate_functions():
    rng = np.random.default_rng(5)
    F = 3 * rng.standard_normal((9, 9))
    for lam in (0.0, 0.4, 1.0):
        value, grad = infonce.infonce_value_and_grad(F, lam)
        assert value == pytest.approx(infonce.infonce_loss(F, lam), abs=1e-13)
        np.testing.assert_allclose(grad, infonce.infonce_grad(F, lam), atol=1e-15)
        # and the gradient against central differences of the value
        D = rng.standard_normal(F.shape)
        h = 1e-6
        fd = (infonce.infonce_loss(F + h * D, lam) - infonce.infonce_loss(F - h * D, lam)) / (2 * h)
        assert abs(fd - np.sum(grad * D)) <= 1e-8


def test_logsumexp_against_scipy():
    from scipy.special import logsumexp as reference

    rng = np.random.default_rng(6)
    x = 50 * rng.standard_normal((4, 7))
    x[0, :] = -np.inf
    for axis in (0, 1, -1):
        np.testing.assert_allclose(infonce.logsumexp(x, axis=axis), reference(x, axis=axis), rtol=1e-14)


# --------------------------------------------------------------------------
# logits_vjp: the pull-back of a gradient in the logits to the embeddings
# --------------------------------------------------------------------------
def _fd_embedding_grad(phi, z, h=1e-6):
    """Central differences of phi in every entry of z (independent of logits_vjp)."""
    g = np.empty_like(z)
    for idx in np.ndindex(*z.shape):
        E = np.zeros_like(z)
        E[idx] = h
        g[idx] = (phi(z + E) - phi(z - E)) / (2 * h)
    return g


@pytest.mark.parametrize("similarity", infonce.SIMILARITIES)
def test_logits_vjp_matches_finite_differences(similarity):
    """Phi(F) = sum(W * F) with F = logits(za, zb): the pull-back of W is grad Phi.
    Central differences with h = 1e-6 on logits of order 1/tau ~ 3: truncation
    h^2 |Phi'''| ~ 1e-11, rounding eps |Phi| / h ~ 1e-9; 1e-7 is far below the
    gradients (order 1) and above both."""
    rng = np.random.default_rng(7)
    za, zb = rng.standard_normal((5, 3)), rng.standard_normal((8, 3))
    W = rng.standard_normal((5, 8))
    dza, dzb = infonce.logits_vjp(W, za, zb, 0.3, similarity)
    assert dza.shape == za.shape and dzb.shape == zb.shape
    fa = _fd_embedding_grad(lambda z: np.sum(W * _direct(z, zb, 0.3, similarity)), za)
    fb = _fd_embedding_grad(lambda z: np.sum(W * _direct(za, z, 0.3, similarity)), zb)
    np.testing.assert_allclose(dza, fa, rtol=0, atol=1e-7)
    np.testing.assert_allclose(dzb, fb, rtol=0, atol=1e-7)


def test_logits_vjp_default_temperature_and_similarity():
    rng = np.random.default_rng(8)
    za, zb, W = rng.standard_normal((4, 2)), rng.standard_normal((3, 2)), rng.standard_normal((4, 3))
    # dot and tau = 1 by default: the pull-back of the bilinear form is (W zb, W^T za)
    dza, dzb = infonce.logits_vjp(W, za, zb)
    np.testing.assert_allclose(dza, W @ zb, rtol=1e-15, atol=0)
    np.testing.assert_allclose(dzb, W.T @ za, rtol=1e-15, atol=0)


def test_cosine_pull_back_is_blind_to_the_scale_of_each_embedding():
    """A cosine logit does not change along z_i: the gradient is orthogonal to every row,
    and scaling a row by c divides its gradient by c."""
    rng = np.random.default_rng(9)
    za, zb, W = rng.standard_normal((4, 3)), rng.standard_normal((6, 3)), rng.standard_normal((4, 6))
    dza, dzb = infonce.logits_vjp(W, za, zb, 0.5, "cosine")
    np.testing.assert_allclose(np.sum(dza * za, axis=1), 0.0, atol=1e-14)
    np.testing.assert_allclose(np.sum(dzb * zb, axis=1), 0.0, atol=1e-14)
    scaled = infonce.logits_vjp(W, 4.0 * za, zb, 0.5, "cosine")[0]
    np.testing.assert_allclose(scaled, dza / 4.0, rtol=1e-13, atol=1e-16)


def test_private_logits_vjp_works_on_stacks():
    rng = np.random.default_rng(10)
    za, zb, W = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 4, 5))
    for sim in infonce.SIMILARITIES:
        ga, gb = infonce._logits_vjp(W, za, zb, 0.7, sim)
        for t in range(3):
            ra, rb = infonce.logits_vjp(W[t], za[t], zb[t], 0.7, sim)
            np.testing.assert_allclose(ga[t], ra, rtol=1e-14, atol=1e-15)
            np.testing.assert_allclose(gb[t], rb, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kwargs, name", [
    (dict(dF=np.ones((2, 3))), "dF"), (dict(dF=np.ones(9)), "dF"), (dict(dF=np.full((3, 3), np.nan)), "dF"),
    (dict(za=np.zeros((3, 2)), similarity="cosine"), "za"), (dict(zb=np.ones((3, 3))), "zb"),
    (dict(tau=0.0), "tau"), (dict(similarity="angular"), "similarity"),
])
def test_logits_vjp_names_a_bad_argument(kwargs, name):
    args = dict(dF=np.ones((3, 3)), za=np.ones((3, 2)), zb=np.ones((3, 2)), tau=1.0, similarity="dot")
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=f"^{name}="):
        infonce.logits_vjp(**args)


# --------------------------------------------------------------------------
# the InfoNCE loss of a stack of batches
# --------------------------------------------------------------------------
@pytest.mark.parametrize("similarity", infonce.SIMILARITIES)
def test_stacked_loss_is_the_per_batch_loss(similarity):
    rng = np.random.default_rng(11)
    za, zb = rng.standard_normal((5, 6, 3)), rng.standard_normal((5, 6, 3))
    for lam in (0.0, 0.3, 0.5, 1.0):
        values = infonce.stacked_infonce_loss(za, zb, 0.4, similarity, lam)
        assert values.shape == (5,)
        for r in range(5):
            # the same terms in the same order up to the reduction: rounding of 6 terms of order 10
            assert values[r] == pytest.approx(
                infonce.infonce_loss(infonce.logits(za[r], zb[r], 0.4, similarity), lam), abs=1e-13)
    # defaults: tau 1, dot, lambda 1/2 (CLIP's L_N), the row and column terms by hand
    F = np.einsum("rik,rjk->rij", za, zb)
    d = np.diagonal(F, axis1=1, axis2=2)
    by_hand = (-d + 0.5 * logsumexp(F, axis=2) + 0.5 * logsumexp(F, axis=1)).mean(axis=1)
    np.testing.assert_allclose(infonce.stacked_infonce_loss(za, zb), by_hand, rtol=0, atol=1e-13)


def test_stacked_loss_divides_before_summing():
    """Positives of 1e308 on the diagonal and 0 elsewhere: each batch's loss is 0 (every
    log-sum-exp is its positive), while a sum of the N positives first would overflow to
    inf and give inf - inf = nan."""
    z = np.zeros((2, 3, 3))
    z[:, np.arange(3), np.arange(3)] = 1e154
    values = infonce.stacked_infonce_loss(z, z, 1.0, "dot", 0.5)
    np.testing.assert_allclose(values, 0.0, atol=1e-12)


@pytest.mark.parametrize("kwargs, name", [
    (dict(za=np.ones((3, 2))), "za"), (dict(zb=np.ones((2, 4, 2))), "zb"), (dict(zb=np.ones((2, 3, 3))), "zb"),
    (dict(za=np.zeros((2, 3, 2)), similarity="cosine"), "za"), (dict(lam=1.5), "lam"), (dict(tau=-1.0), "tau"),
])
def test_stacked_loss_names_a_bad_argument(kwargs, name):
    args = dict(za=np.ones((2, 3, 2)), zb=np.ones((2, 3, 2)), tau=1.0, similarity="dot", lam=0.5)
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=f"^{name}="):
        infonce.stacked_infonce_loss(**args)
