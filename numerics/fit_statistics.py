r"""Statistics of fitted encoders that the verifier's claims compare, and their targets
(MATH.md §4.1, §4.2, §5).

Every statistic is a flat vector in whitened coordinates (scale-free), computed
from the flat parameters ``x`` of a :class:`numerics.encoders.LinearEncoders`
family:

* :func:`invariant_statistic`: the whitened invariant (bilinear :math:`B`, or the
  L2 Gram matrix) — CLIP's minimiser is Proposition G1's;
* :func:`subspace_statistic`: the projectors onto the whitened row spaces
  :math:`\operatorname{span} C_{uu}^{1/2}G_u^T`, :math:`\operatorname{span} C_{vv}^{1/2}G_v^T`;
* :func:`conditional_statistic`: the whitened model mean maps
  :math:`C_{vv}^{-1/2}N_vC_{uu}^{1/2}` (and :math:`u|v`), with the whitened model
  covariances :math:`C_{vv}^{-1/2}\Sigma_vC_{vv}^{-1/2}` if asked; its target is
  :func:`projected_conditional_target` (Propositions G2, G3);
* under cosine similarity, which has no closed form, the same questions on fixed
  :class:`Probes`: the centred effective similarity on probe pairs, and the model's
  conditionals by self-normalised importance sampling of a marginal bank
  (:func:`numerics.importance.self_normalised_moments`), against the true Gaussian
  conditionals (:func:`numerics.gaussian.true_conditionals`).

:func:`effective_parameters` folds a loss's logit multiplier (a learned scale or
temperature) into the encoders, so that the statistics see the effective similarity.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar, nnls

from . import gaussian, variants
from ._validation import fail
from .encoders import LinearEncoders, sample_pairs
from .importance import self_normalised_moments

__all__ = ["PROBE_POINTS", "BANK_SIZE", "Probes", "projector", "invariant_statistic", "subspace_statistic",
           "conditional_statistic", "projected_conditional_target", "effective_parameters",
           "cosine_similarity_statistic", "cosine_conditional_statistic", "true_conditional_statistic",
           "common_factor", "rank_profile", "feature_quotient"]

#: Probe points per side for the cosine statistics (f on a 12 x 12 grid of pairs).
PROBE_POINTS = 12
#: Marginal samples for the self-normalised importance estimates of a cosine
#: model's conditionals (MATH.md §5): with |f| <= m the weights stay within
#: e^{2m} of each other, and the bias of the ratio estimate is O(1/BANK_SIZE).
BANK_SIZE = 4096


def _parts(direction, v_part, u_part):
    """The ``v|u`` and/or ``u|v`` parts of a statistic, flattened and joined."""
    parts = []
    if direction in ("both", "v|u"):
        parts += v_part()
    if direction in ("both", "u|v"):
        parts += u_part()
    return np.concatenate([np.ravel(p) for p in parts])


def projector(M):
    """Orthogonal projector onto the column space of ``M`` (full column rank expected)."""
    Q, _ = np.linalg.qr(M)
    return Q @ Q.T


def invariant_statistic(fam: LinearEncoders, x):
    """The whitened invariant of the encoders, flattened (:meth:`LinearEncoders.invariant`)."""
    return fam.invariant(x).ravel()


def subspace_statistic(fam: LinearEncoders, x):
    """Projectors onto both whitened encoder row spaces, flattened: free of the scale and
    of the shape of :math:`f` within the subspace (MATH.md §4.1, Proposition G1)."""
    G_u, G_v = fam.split(x)
    return np.concatenate([projector(fam.Ru @ G_u.T).ravel(), projector(fam.Rv @ G_v.T).ravel()])


def rank_profile(fam: LinearEncoders, x) -> np.ndarray:
    r"""How many canonical pairs the encoders keep: :math:`(s_k/s_1)^2` for
    :math:`k = 2, \dots, n_e`, with :math:`s_k` the singular values of the whitened cross map
    :math:`\tilde A_u\tilde A_v^T`, where :math:`\tilde A_u` is :math:`C_{uu}^{1/2}G_u^T` with
    each feature (column) scaled to unit norm, and :math:`\tilde A_v` likewise.  Free of
    each feature's positive scale on either side (which a batch-standardised loss cannot see); a
    minimiser that collapses onto fewer than :math:`n_e` pairs has a zero there, for every
    choice of basis, which finite batches blur into :math:`O(1/N)` (the squared angle of a
    sampling fluctuation).  Features of zero norm count as collapsed."""
    G_u, G_v = fam.split(x)

    def unit_columns(A):
        norms = np.linalg.norm(A, axis=0)
        return A / np.where(norms > 0, norms, 1.0)

    s = np.linalg.svd(unit_columns(fam.Ru @ G_u.T) @ unit_columns(fam.Rv @ G_v.T).T,
                      compute_uv=False)[: G_u.shape[0]]
    return (s[1:] / s[0]) ** 2 if s[0] > 0 else np.zeros(len(s) - 1)


def feature_quotient(fam: LinearEncoders, x, target) -> np.ndarray:
    r"""The whitened bilinear invariant of ``x`` (dot similarity) with each feature's scale
    chosen to bring it closest to ``target`` (flattened): :math:`B(t) = \sum_k t_k a_kb_k^T`
    with :math:`a_k, b_k` the whitened features (columns of :math:`C_{uu}^{1/2}G_u^T`,
    :math:`C_{vv}^{1/2}G_v^T`) and :math:`t \ge 0` by non-negative least squares.

    A loss that standardises each feature over the batch cannot see the features' positive
    scales (:meth:`numerics.user_loss.UserLoss.standardises_features`): its minimisers are the
    orbit :math:`\{B(t): t > 0\}`, and the distance of ``target`` from that orbit is the exact
    quotient distance (not a first-order projection)."""
    if fam.similarity != "dot":
        raise fail("similarity", fam.similarity, "'dot' for the per-feature quotient of the bilinear invariant")
    G_u, G_v = fam.split(x)
    A, B = fam.Ru @ G_u.T, fam.Rv @ G_v.T
    M = np.stack([np.outer(A[:, k], B[:, k]).ravel() for k in range(A.shape[1])], axis=1)
    t, _ = nnls(M, np.asarray(target, dtype=float).ravel())
    return M @ t


def conditional_statistic(fam: LinearEncoders, x, direction: str, covariances: bool):
    r"""The encoders' model conditionals, whitened: the mean maps
    :math:`C_{vv}^{-1/2}N_vC_{uu}^{1/2}`, :math:`C_{uu}^{-1/2}N_uC_{vv}^{1/2}` and, with
    ``covariances``, :math:`C_{vv}^{-1/2}\Sigma_vC_{vv}^{-1/2}`, :math:`C_{uu}^{-1/2}\Sigma_uC_{uu}^{-1/2}`
    (``direction``: ``"v|u"``, ``"u|v"`` or ``"both"``)."""
    N_v, Sig_v, N_u, Sig_u = fam.conditionals(x)
    return _parts(direction,
                  lambda: [fam.Riv @ N_v @ fam.Ru] + ([fam.Riv @ Sig_v @ fam.Riv] if covariances else []),
                  lambda: [fam.Riu @ N_u @ fam.Rv] + ([fam.Riu @ Sig_u @ fam.Riu] if covariances else []))


def projected_conditional_target(fam: LinearEncoders, direction: str, covariances: bool):
    r"""The true conditionals restricted to the top-:math:`n_e` canonical directions, whitened
    as :func:`conditional_statistic`: the mean map
    :math:`C_{vv}^{-1/2}P_vM_vC_{uu}^{1/2} = V_{n_e}\Sigma_{n_e}U_{n_e}^T`
    (:func:`numerics.variants.projected_regression_maps`, Proposition G2) and the covariance
    :math:`I - V_{n_e}\Sigma_{n_e}^2V_{n_e}^T` (Proposition G3), and the same for :math:`u|v`."""
    m = fam.model
    PM_v, PM_u = variants.projected_regression_maps(m.cov, m.n_u, m.n_e)
    U, s, Vt = gaussian.canonical_directions(m.cov, m.n_u)
    k = m.n_e
    return _parts(direction,
                  lambda: [fam.Riv @ PM_v @ fam.Ru]
                  + ([np.eye(m.n_v) - (Vt[:k].T * s[:k] ** 2) @ Vt[:k]] if covariances else []),
                  lambda: [fam.Riu @ PM_u @ fam.Rv]
                  + ([np.eye(m.n_u) - (U[:, :k] * s[:k] ** 2) @ U[:, :k].T] if covariances else []))


def effective_parameters(fam: LinearEncoders, x, multiplier: float):
    r"""Encoder parameters (flat, ``theta`` dropped) with the loss's logit multiplier
    :math:`m` folded in, for ``"dot"`` and ``"l2"`` (:math:`mG_u^TG_v`, and
    :math:`m|G_uu - G_vv|^2`): the effective similarity is then that of the family at
    unit scale."""
    G_u, G_v = fam.split(x)
    r = np.sqrt(abs(multiplier))
    if fam.similarity == "dot":
        return fam.pack(np.sign(multiplier) * r * G_u, r * G_v)
    if multiplier < 0:  # -m|a - b|^2/2 with m > 0 is no L2 logit of any encoders
        raise fail("multiplier", multiplier, "a logit multiplier >= 0 under L2 similarity (a negative "
                                             "one rewards distance: no encoders have that logit)")
    return fam.pack(r * G_u, r * G_v)


def common_factor(statistics, targets, bound: float = 12.0) -> float:
    r"""The factor :math:`t > 0` that brings ``statistics(t)`` closest to ``targets``:
    :math:`\arg\min_t \|S(t) - T\|^2`, with ``statistics(t)`` the stacked statistics of
    fits whose logit multiplier is known up to the factor :math:`t` (a reparametrised
    scale, :class:`numerics.user_loss.UserLoss`), and ``targets`` those they are paired
    with.  Comparing at this :math:`t` is comparing on the quotient by the unknown
    constant, exactly (not to first order).

    :math:`\log t` is searched on a grid of step 1/2 over :math:`[-b, b]`, then refined
    by bounded Brent within the best cell (to :math:`10^{-10}`), so that a statistic
    that is not convex in :math:`\log t` is not caught in a far local minimum."""
    targets = np.asarray(targets, dtype=float)

    def loss(log_t):
        return float(np.sum((np.asarray(statistics(math.exp(log_t))) - targets) ** 2))

    grid = np.arange(-bound, bound + 0.25, 0.5)
    best = grid[int(np.argmin([loss(g) for g in grid]))]
    res = minimize_scalar(loss, bounds=(best - 0.5, best + 0.5), method="bounded",
                          options={"xatol": 1e-10})
    return float(math.exp(res.x if res.fun <= loss(best) else best))


# --------------------------------------------------------------------------
# cosine similarity: statistics on fixed probes
# --------------------------------------------------------------------------
class Probes:
    """Fixed points of one model at which a cosine similarity's statistics are
    evaluated: ``U, V`` (probe pairs) and a marginal sample ``bank_u, bank_v``, drawn by
    :func:`numerics.encoders.sample_pairs` from ``rng``."""

    def __init__(self, model, rng: np.random.Generator):
        U, V = sample_pairs(model, rng.standard_normal((PROBE_POINTS + BANK_SIZE, model.cov.shape[0])))
        self.U, self.V = U[:PROBE_POINTS], V[:PROBE_POINTS]
        self.bank_u, self.bank_v = U[PROBE_POINTS:], V[PROBE_POINTS:]


def _cosine_f(fam, x, multiplier, U, V):
    A, B, _, _ = fam.embed(x, U, V)  # unit rows under cosine
    return multiplier * (A @ B.T)


def cosine_similarity_statistic(fam: LinearEncoders, x, multiplier: float, probes: Probes):
    r"""The effective :math:`f = m\cos(G_uu, G_vv)` on the probe pairs, centred (a shift of
    every logit is invisible to the softmaxes), flattened."""
    F = _cosine_f(fam, x, multiplier, probes.U, probes.V)
    return (F - F.mean()).ravel()


def _tilted(logits, bank, R_white, covariances):
    est = self_normalised_moments(logits, bank @ R_white, covariances=covariances)
    return [est.means] + ([est.covs] if covariances else [])


def cosine_conditional_statistic(fam: LinearEncoders, x, multiplier: float, direction: str,
                                 covariances: bool, probes: Probes):
    """The model's conditional means (and covariances), whitened, at the probe points, by
    self-normalised importance sampling of the marginal bank (MATH.md §5)."""
    return _parts(direction,
                  lambda: _tilted(_cosine_f(fam, x, multiplier, probes.U, probes.bank_v), probes.bank_v,
                                  fam.Riv, covariances),
                  lambda: _tilted(_cosine_f(fam, x, multiplier, probes.bank_u, probes.V).T, probes.bank_u,
                                  fam.Riu, covariances))


def true_conditional_statistic(fam: LinearEncoders, direction: str, covariances: bool, probes: Probes):
    """The true whitened conditional means (and covariances) at the probe points
    (:func:`numerics.gaussian.true_conditionals`), laid out as
    :func:`cosine_conditional_statistic`."""
    m = fam.model
    M_v, S_v, M_u, S_u = gaussian.true_conditionals(m.cov, m.n_u)

    def block(S, R):
        W = R @ S @ R
        return [np.broadcast_to(W, (PROBE_POINTS, *W.shape))] if covariances else []

    return _parts(direction,
                  lambda: [(probes.U @ M_v.T) @ fam.Riv] + block(S_v, fam.Riv),
                  lambda: [(probes.V @ M_u.T) @ fam.Riu] + block(S_u, fam.Riu))
