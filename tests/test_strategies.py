"""proofs_checks.strategies: valid draws, the promised controls, eager validation."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, find

from numerics import InvalidInputError, gaussian
from numerics.models import GaussianModel
from proofs_checks.strategies import bilinear_matrices, embeddings, gaussian_models, joint_covariances


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_joint_covariances_respect_controls(data):
    n_u, n_v = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    k = min(n_u, n_v)
    gap_at = data.draw(st.integers(1, k))
    cov = data.draw(joint_covariances(n_u, n_v, max_condition=50.0, max_correlation=0.8,
                                      gap_at=gap_at, min_gap=0.1))
    assert cov.shape == (n_u + n_v,) * 2
    np.testing.assert_array_equal(cov, cov.T)
    assert np.linalg.eigvalsh(cov)[0] > 0
    s = np.append(gaussian.canonical_correlations(cov, n_u), 0.0)
    # tolerances: canonical correlations are computed to ~kappa * eps (kappa <= 250 here)
    assert s[0] <= 0.8 + 1e-10
    assert s[gap_at - 1] - s[gap_at] >= 0.1 - 1e-10
    for block in (cov[:n_u, :n_u], cov[n_u:, n_u:]):
        assert np.linalg.cond(block) <= 50.0 * (1 + 1e-9)


def test_shrinks_towards_simple_covariances():
    # the minimal example with a nonzero correlation has identity marginals
    cov = find(joint_covariances(2, 2, min_correlation=0.3, rank=1), lambda c: True,
               settings=settings(database=None))
    np.testing.assert_allclose(np.diag(cov), 1.0, atol=1e-12)
    np.testing.assert_allclose(gaussian.canonical_correlations(cov, 2), [0.3, 0.0], atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(gaussian_models(max_dim=3, min_gap=0.05))
def test_gaussian_models_are_valid(model):
    assert isinstance(model, GaussianModel)
    assert 1 <= model.n_e <= min(model.n_u, model.n_v)
    assert model.eigengap >= 0.05 - 1e-10


@settings(max_examples=10, deadline=None)
@given(bilinear_matrices(2, 3), embeddings(4, 2, dtype=np.float32, max_value=0.1))
def test_array_strategies_shapes(A, z):
    assert A.shape == (2, 3) and np.all(np.isfinite(A))
    assert z.shape == (4, 2) and z.dtype == np.float32
    assert np.all(np.abs(z) <= 0.1)


@pytest.mark.parametrize("call, arg", [
    (lambda: joint_covariances(0, 2), "n_u"),
    (lambda: joint_covariances(2, 1.5), "n_v"),
    (lambda: joint_covariances(2, 2, max_correlation=1.0), "max_correlation"),
    (lambda: joint_covariances(2, 2, max_condition=0.5), "max_condition"),
    (lambda: joint_covariances(2, 2, gap_at=3), "gap_at"),
    (lambda: joint_covariances(2, 2, rank=0), "rank"),
    (lambda: joint_covariances(2, 2, min_gap=2.0), "min_gap"),
    (lambda: gaussian_models(min_dim=3, max_dim=2), "max_dim"),
    (lambda: bilinear_matrices(2, 2, max_value=-1), "max_value"),
    (lambda: embeddings(3, 2, dtype=np.int64), "dtype"),
    (lambda: embeddings(3, 2, dtype="foo"), "dtype"),
    (lambda: gaussian_models(max_correlation=2.0), "max_correlation"),
    (lambda: gaussian_models(max_condition=0), "max_condition"),
    (lambda: gaussian_models(max_correlation="x"), "max_correlation"),
])
def test_invalid_arguments_fail_eagerly(call, arg):
    with pytest.raises(InvalidInputError, match=arg):
        call()
