"""numerics.finite_sample: the control-variate estimator of D_N computes each batch's L_N
with the library's dense InfoNCE (numerics.infonce), batch by batch."""
import numpy as np
import pytest
from scipy.special import logsumexp

from numerics import finite_sample
from numerics.models import random_gaussian_model


def _by_batch(A, cov, n_u, N, R, seed):
    """The estimator recomputed independently: the same draws, L_N of each batch from its
    definition (the N x N logits u_i^T A v_j, row and column log-sum-exps), one at a time."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((R * N, cov.shape[0])) @ np.linalg.cholesky(cov).T
    u, v = x[:, :n_u], x[:, n_u:]
    psi = finite_sample.bilinear_batch_influence(A, cov, n_u)
    values = np.empty(R)
    for r in range(R):
        F = u[r * N:(r + 1) * N] @ A @ v[r * N:(r + 1) * N].T
        values[r] = np.mean(-np.diag(F) + 0.5 * logsumexp(F, axis=1) + 0.5 * logsumexp(F, axis=0))
    cv = values - np.log(N) - np.asarray(psi(u, v)).reshape(R, N).mean(axis=1) + 1.0
    return cv.mean(), cv.std(ddof=1) / np.sqrt(R), values.std(ddof=1) / np.sqrt(R)


@pytest.mark.parametrize("N, R", [(8, 50), (512, 18)])
def test_bias_estimator_equals_the_batch_by_batch_computation(N, R):
    """(512, 18): batches are stacked 2^22 / N^2 = 16 at a time, so the stacks are 16 + 2 and
    the boundary between them is crossed."""
    m = random_gaussian_model(np.random.default_rng(0), 2, 2, n_e=1)
    A = 0.3 * np.array([[1.0, -0.5], [0.2, 0.8]])
    est = finite_sample.expected_batch_loss_bias_cv(A, m.cov, 2, N, R, np.random.default_rng(5))
    mean, se, plain_se = _by_batch(A, m.cov, 2, N, R, 5)
    # each L_N is a mean of N terms of order log N, summed in another order: rounding ~1e-15
    # relative; the estimate is a difference of such means (order 1e-2 at N = 512), so 1e-11
    assert est.n_samples == R and est.detail["batch_size"] == N
    assert est.estimate == pytest.approx(mean, rel=0, abs=1e-11)
    assert est.standard_error == pytest.approx(se, rel=1e-8)
    assert est.detail["plain_se"] == pytest.approx(plain_se, rel=1e-8)
