"""Lemma 2.1 and Landscape checks pass on the toolkit and fail on wrong inputs."""
import numpy as np

from numerics import gaussian, kernels
from numerics.models import default_models
from proofs_checks.checks import finite_sample_and_landscape as fl


def _passed(cases):
    return bool(cases) and all(c.passed for c in cases)


def test_lemma_2_1_passes_on_the_kernel():
    assert _passed(fl.check_lemma_2_1([], np.random.default_rng(0)))


def test_lemma_2_1_catches_wrong_kernels():
    rng = np.random.default_rng(0)
    scaled = lambda za, zb, tau, sim: kernels.clip_loss(za, zb, tau, sim) * (1 + 1e-10)  # noqa: E731

    def position_weighted(za, zb, tau, sim):  # not permutation equivariant
        F = kernels.clip_logits(za, zb, tau, sim)
        w = np.linspace(1.0, 2.0, F.shape[0])[:, None]
        return kernels.clip_loss_from_logits(F * w)

    def diagonal_only(za, zb, tau, sim):  # drops the shift-invariant normaliser
        return -float(np.mean(np.diag(kernels.clip_logits(za, zb, tau, sim))))

    for wrong in (scaled, position_weighted, diagonal_only):
        assert not _passed(fl.check_lemma_2_1([], rng, clip_loss=wrong))


def test_landscape_passes_and_catches_a_wrong_minimum():
    models = default_models(3, 4)
    assert _passed(fl.check_landscape(models, np.random.default_rng(0), starts=3))
    wrong = lambda C, n, k: gaussian.lowrank_minimum(C, n, k) - 1e-9  # noqa: E731
    assert not _passed(fl.check_landscape(models, np.random.default_rng(0), starts=3, minimum=wrong))
