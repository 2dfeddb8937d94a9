"""Losses on batch statistics: Barlow Twins standardises each feature over the batch, so it
cannot see the features' scales; only the subspace and the rank are well posed.  The rank
(how many canonical pairs the minimiser keeps) decides the subspace claim where the
projectors cannot, in particular when n_e = min(n_u, n_v)."""
import numpy as np
import pytest

from proofs_checks import verify_variant
from proofs_checks.verify import default_variant_models


def barlow_twins(za, zb, lambd):
    """Barlow Twins on the batch: features standardised (unbiased std), cross-correlation C,
    sum (1 - C_ii)^2 + lambd sum_{i != j} C_ij^2."""
    a = (za - za.mean(0)) / za.std(0, ddof=1)
    b = (zb - zb.mean(0)) / zb.std(0, ddof=1)
    c = a.T @ b / za.shape[0]
    return float(np.sum((1 - np.diag(c)) ** 2) + lambd * (np.sum(c**2) - np.sum(np.diag(c) ** 2)))


# n_u = 2, n_v = 3, n_e = 2 = min(n_u, n_v), sigma = (0.8, 0.42): the u-projector is the
# identity whatever the fit, so without the rank the claim would hold "trivially".
MODEL = default_variant_models(1, 3, "dot")[2:]
RUN = dict(inputs="embeddings", claim="same-subspace-as-clip", models=MODEL, seed=1, budget=0)


def test_barlow_twins_collapse_refutes_the_subspace_claim():
    r"""With a small redundancy weight both features take the top canonical pair: at two
    features on the top pair (angle t between them) the loss grows like
    :math:`2[(1-\sigma_1)(\sigma_1-\sigma_2) - \lambda\sigma_1^2]t^2`, so the collapse is a
    minimum when :math:`\lambda < (1-\sigma_1)(\sigma_1-\sigma_2)/\sigma_1^2` (0.12 here;
    lambda = 5e-3).  Its rank is 1: it cannot span the top-2 subspace."""
    res = verify_variant(lambda za, zb: barlow_twins(za, zb, 5e-3), **RUN)
    m = res.models[0]
    assert res.verdict == "refuted", res.summary()
    assert m.rank.collapsed and m.rank.kept == 1
    assert res.to_dict()["models"][0]["rank"]["collapsed"] is True


def test_decorrelating_barlow_twins_keeps_both_pairs_and_is_confirmed():
    r"""With lambda = 1 the loss is :math:`\|I - C\|_F^2`, minimised by the canonical pairs
    themselves (C = diag(sigma_1, sigma_2)): full rank, CLIP's subspace."""
    res = verify_variant(lambda za, zb: barlow_twins(za, zb, 1.0), **RUN)
    m = res.models[0]
    assert res.verdict == "confirmed", res.summary()
    assert m.rank.full and not m.rank.collapsed and m.rank.kept == 2


def _unit_rows(z):
    return z / np.linalg.norm(z, axis=1, keepdims=True)


@pytest.mark.parametrize("loss, expected", [
    (lambda za, zb: barlow_twins(za, zb, 5e-3), True),
    # normalising each *sample* is not standardising each feature
    (lambda za, zb: float(np.sum((_unit_rows(za) @ _unit_rows(zb).T) ** 2)), False),
    (lambda za, zb: float(np.mean((za - zb) ** 2)), False),
])
def test_a_batch_standardised_loss_is_recognised_by_its_invariance(loss, expected):
    from numerics.user_loss import UserLoss

    u = UserLoss(loss, inputs="embeddings")
    assert u.standardises_features("dot", np.random.default_rng(0)) is expected
    assert u.standardises_features("cosine", np.random.default_rng(0)) is False
