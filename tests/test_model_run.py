"""Unit tests of proofs_checks/model_run.py: the target and margin a ModelRun starts from
(against closed forms), real paired fits of a variant identical to the control (zero
paired differences), and the set-aside replicates logic on hand-made PairedFit records."""
import math

import numpy as np
import pytest
from scipy.linalg import sqrtm
from scipy.special import logsumexp

from numerics import InvalidInputError
from numerics.batch_fit import FIT_GTOL, PairedFit
from numerics.encoders import population_minimizer
from numerics.user_loss import ClipControl, UserLoss
from proofs_checks.claims import DEFAULT_SUBSPACE_MARGIN
from proofs_checks.model_run import ChainTask, ModelRun, run_chain
from proofs_checks.verdict import DEFAULT_RELATIVE_MARGIN
from proofs_checks.verify import default_variant_models

SIZES = [32, 64]


def _clip(F):
    """Symmetric InfoNCE written out by hand, with its gradient (independent of numerics.infonce)."""
    d = np.diag(F)
    return float(np.mean(logsumexp(F, axis=1) - d) + np.mean(logsumexp(F, axis=0) - d)) / 2


def _clip_grad(F):
    N = F.shape[0]
    P = np.exp(F - logsumexp(F, axis=1, keepdims=True))
    Q = np.exp(F - logsumexp(F, axis=0, keepdims=True))
    return (P + Q - 2 * np.eye(N)) / (2 * N)


_clip.grad = _clip_grad


def _model(shape_index=0):
    """(2, 2, 1), (3, 3, 1) or (2, 3, 2): the verifier's default models of seed 0."""
    return default_variant_models(0, 3)[shape_index]


def _run(user=None, claim="same-minimizers-as-clip", margin=None, model=None, similarity="dot"):
    model = _model() if model is None else model
    user = ClipControl(1.0) if user is None else user
    return ModelRun(0, model, similarity, claim, "both", margin, 0, np.random.default_rng([0, 0, 104729]),
                    user, ClipControl(1.0))


def _whitened_truncated_K(model):
    """CLIP's whitened population invariant (Proposition G1): the rank-n_e truncated SVD of
    K = C_uu^-1/2 C_uv C_vv^-1/2, computed here with SciPy's sqrtm."""
    n_u, C = model.n_u, model.cov
    Wu = np.linalg.inv(np.real(sqrtm(C[:n_u, :n_u])))
    Wv = np.linalg.inv(np.real(sqrtm(C[n_u:, n_u:])))
    U, s, Vt = np.linalg.svd(Wu @ C[:n_u, n_u:] @ Wv)
    k = model.n_e
    return (U[:, :k] * s[:k]) @ Vt[:k], s


# --------------------------------------------------------------------------
# what a run starts from
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape_index", [0, 1, 2])
def test_target_and_default_margin_of_same_minimizers(shape_index):
    model = _model(shape_index)
    run = _run(model=model)
    B, s = _whitened_truncated_K(model)
    np.testing.assert_allclose(run.T_c, B.ravel(), atol=1e-10)  # rounding of two sqrtm routes
    assert run.T is run.T_c and np.all(run.gap == 0)
    assert run.target_norm == pytest.approx(math.sqrt(np.sum(s[: model.n_e] ** 2)), rel=1e-10)
    assert run.margin == pytest.approx(DEFAULT_RELATIVE_MARGIN * run.target_norm, rel=1e-15)
    # the first fits start at CLIP's population minimiser
    np.testing.assert_array_equal(run.x_start, population_minimizer(run.fam))


def test_margins_absolute_and_subspace():
    assert _run(margin=0.3).margin == 0.3
    assert _run(claim="same-subspace-as-clip").margin == pytest.approx(
        math.sqrt(2) * math.sin(DEFAULT_SUBSPACE_MARGIN), rel=1e-15)
    assert _run(claim="same-subspace-as-clip", margin=0.2).margin == pytest.approx(
        math.sqrt(2) * math.sin(0.2), rel=1e-15)


def test_conditional_claims_carry_clip_own_gap():
    """matches-conditional-means: CLIP's statistic is the target (G2, gap 0); matches-conditionals:
    the gap is sqrt(2 sum sigma_k^4), the projected whitened covariance of both directions."""
    model = _model(0)
    means = _run(claim="matches-conditional-means", model=model)
    assert np.linalg.norm(means.gap) < 1e-12
    full = _run(claim="matches-conditionals", model=model)
    s = np.asarray(model.sigma)[: model.n_e]
    assert np.linalg.norm(full.gap) == pytest.approx(math.sqrt(2 * np.sum(s**4)), rel=1e-10)


def test_cosine_same_minimizers_target_is_estimated_from_the_control():
    model = default_variant_models(0, 1, "cosine")[0]
    run = ModelRun(0, model, "cosine", "same-minimizers-as-clip", "both", None, 0,
                   np.random.default_rng(1), ClipControl(2.0, learn=True), ClipControl(2.0, learn=True))
    assert run.T is None and run.T_c is None and math.isnan(run.target_norm)
    assert run.probes is not None and not run.pair_with_target


# --------------------------------------------------------------------------
# real fits: a variant identical to the control
# --------------------------------------------------------------------------
@pytest.mark.parametrize("user", [ClipControl(1.0), UserLoss(_clip)], ids=["control-itself", "hand-written"])
def test_variant_identical_to_the_control_has_zero_paired_differences(user):
    r"""The variant starts from a perturbed control fit (relative size 0.3) and must come
    back to the same batch minimiser: the paired differences are the optimisers' error,
    about FIT_GTOL / curvature (measured 4e-7), far below the margin (0.04)."""
    run = _run(user)
    for r in range(2):
        records, state = run_chain(run.task("dot", 0, r, SIZES, probe=(r == 0)))
        assert [rec.N for rec in records] == SIZES
        assert all(rec.converged for rec in records)
        assert records[0].moved > 0.05  # it did start away from the control's fit
        run.add(r, records, state)
    run.find_flat(0)
    v = run.result()
    assert v.differences.shape == (2, 2, run.model.n_u * run.model.n_v)
    assert np.max(np.abs(v.differences)) < 20 * FIT_GTOL
    np.testing.assert_allclose(v.user_errors, v.control_errors, atol=20 * FIT_GTOL)
    assert v.verdict == "confirmed" and v.set_aside == 0 and v.usable
    assert v.estimate.upper < 1e-4 * v.target_norm
    # the bilinear invariance of a (2, 2, 1) model is one flat direction; it leaves A still
    assert v.flat.count == 1 and v.flat.moving == []


def test_run_chain_is_deterministic_and_continues_from_its_state():
    run = _run(UserLoss(_clip))
    a, state_a = run_chain(run.task("dot", 0, 1, SIZES, probe=False))
    b, _ = run_chain(run.task("dot", 0, 1, SIZES, probe=False))
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.x_u, rb.x_u)
        np.testing.assert_array_equal(ra.x_c, rb.x_c)
    # a different replicate is a different sample
    c, _ = run_chain(run.task("dot", 0, 2, SIZES, probe=False))
    assert not np.allclose(c[0].x_c, a[0].x_c)
    # continuing the chain at N = 128 starts from the state at N = 64
    run.add(1, a, state_a)
    task = run.task("dot", 0, 1, [128], probe=False)
    assert isinstance(task, ChainTask) and task.state is state_a and task.k == 0 and task.r == 1
    (rec,), _ = run_chain(task)
    assert rec.N == 128 and rec.converged


def test_probe_refuses_a_constant_loss():
    run = _run(UserLoss(lambda F: 1.0))
    with pytest.raises(InvalidInputError, match="depends on the logit matrix"):
        run_chain(run.task("dot", 0, 0, SIZES, probe=True))


# --------------------------------------------------------------------------
# replicates set aside: hand-made records
# --------------------------------------------------------------------------
def _hand_invariant(run, x):
    """C_uu^1/2 G_u^T G_v C_vv^1/2 by hand (SciPy's sqrtm), flattened."""
    m = run.model
    G_u = x[: m.n_e * m.n_u].reshape(m.n_e, m.n_u)
    G_v = x[m.n_e * m.n_u: run.fam.size].reshape(m.n_e, m.n_v)
    Ru, Rv = np.real(sqrtm(m.cov[: m.n_u, : m.n_u])), np.real(sqrtm(m.cov[m.n_u:, m.n_u:]))
    return (Ru @ G_u.T @ G_v @ Rv).ravel()


def _fill(run, rng, converged, sizes=SIZES, bad_scale=5.0):
    """Records for replicates ``r`` with ``converged[r]`` a list of flags per size: the
    control near CLIP's minimiser, the variant 1e-3 from it, or bad_scale x it where it
    did not converge (a fit that ran off).  Returns {r: {N: hand difference}}."""
    x0 = run.x_start
    want = {}
    for r, flags in enumerate(converged):
        recs = []
        for N, ok in zip(sizes, flags):
            x_c = x0 + 0.01 * rng.standard_normal(x0.size)
            x_u = x_c + 1e-3 * rng.standard_normal(x0.size) if ok else bad_scale * x_c
            recs.append(PairedFit(N, x_c, x_u, ok, 1.0, 10))
            want.setdefault(r, {})[N] = _hand_invariant(run, x_u) - _hand_invariant(run, x_c)
        run.add(r, recs, None)
    return want


def test_converged_replicates_give_the_hand_differences():
    run = _run()
    want = _fill(run, np.random.default_rng(11), [[True, True]] * 3)
    v = run.result()
    assert v.set_aside == 0 and v.sizes == SIZES
    np.testing.assert_allclose(v.differences, [[want[r][N] for N in SIZES] for r in range(3)], atol=1e-12)


def test_one_unconverged_replicate_is_set_aside():
    run = _run()
    want = _fill(run, np.random.default_rng(12), [[True, True], [True, False], [True, True], [True, True]])
    v = run.result()
    assert v.set_aside == 1 and v.differences.shape[0] == 3 and v.usable
    kept = [0, 2, 3]
    np.testing.assert_allclose(v.differences, [[want[r][N] for N in SIZES] for r in kept], atol=1e-12)
    assert np.max(np.abs(v.differences)) < 0.05  # the run-off fit (x5) is not among them


@pytest.mark.parametrize("flags, usable", [
    ([True, True, False, False], True),           # 2 of 4: max(2, ceil(4/2)) = 2 kept
    ([True, True, False, False, False], False),   # 2 of 5 < ceil(5/2) = 3
    ([True, False, False, False], False),         # 1 of 4 < 2
    ([True, True, True, False, False], True),     # 3 of 5
])
def test_too_many_set_aside_make_the_model_undecidable(flags, usable):
    run = _run()
    want = _fill(run, np.random.default_rng(13), [[True, ok] for ok in flags])
    v = run.result()
    assert v.set_aside == flags.count(False)
    assert v.usable is usable
    if usable:
        kept = [r for r, ok in enumerate(flags) if ok]
        assert v.differences.shape[0] == len(kept)
        np.testing.assert_allclose(v.differences, [[want[r][N] for N in SIZES] for r in kept], atol=1e-12)
    else:
        # every replicate is kept (run-off fits included) and no verdict is given
        assert v.differences.shape[0] == len(flags)
        np.testing.assert_allclose(v.differences, [[want[r][N] for N in SIZES] for r in range(len(flags))],
                                   atol=1e-12)
        assert v.verdict == "inconclusive" and v.n_to_decide is None


def test_only_the_sizes_every_replicate_has_count():
    """Replicate 0 has an extra unconverged fit at N = 128 that the others lack: that size
    is not compared, so replicate 0 is not set aside."""
    run = _run()
    rng = np.random.default_rng(14)
    want = _fill(run, rng, [[True, True]] * 3)
    x = run.x_start
    run.add(0, [PairedFit(128, x, 5 * x, False, 1.0, 400)], None)
    v = run.result()
    assert v.sizes == SIZES and v.set_aside == 0 and v.differences.shape[0] == 3
    np.testing.assert_allclose(v.differences, [[want[r][N] for N in SIZES] for r in range(3)], atol=1e-12)


def test_a_kink_seen_on_any_model_sets_the_rate_of_every_model(monkeypatch):
    """The N^{-1/2} extrapolation is the loss's: a model whose own fits all ended on one
    smooth branch still takes it once a fit of the loss on any model stalled at a kink
    (the verifier sets ``loss_kinked``); without either, 1/N."""
    import proofs_checks.model_run as mr

    rates, real = [], mr.estimate_delta

    def spy(*args, rate=1.0, **kw):
        rates.append(rate)
        return real(*args, rate=rate, **kw)

    monkeypatch.setattr(mr, "estimate_delta", spy)
    run = _run()
    _fill(run, np.random.default_rng(13), [[True, True]] * 4)
    run.result()
    run.loss_kinked = True
    run.result()
    run.loss_kinked = False
    run.chains[0][SIZES[0]].kinked = True  # one of its own fits
    run.result()
    assert rates == [1.0, 0.5, 0.5]
