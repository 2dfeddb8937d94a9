r"""The claims a loss variant is verified against, as statistics of the fitted encoders.

Each claim maps encoder parameters to a vector in whitened coordinates
(scale-free) and names its target; see :mod:`proofs_checks.verify` for the
formulas and the propositions they come from (MATH.md §4.1, §4.2).
``same-subspace-as-clip`` compares the whitened row spaces of the encoders
(projectors), so its margin is an angle (:func:`subspace_margin`).
"""
from __future__ import annotations

import numpy as np

from numerics import gaussian

__all__ = ["CLAIMS", "DIRECTIONS", "DEFAULT_SUBSPACE_MARGIN", "statistic", "subspace_margin", "target",
           "Probes", "effective_parameters", "cosine_statistic", "cosine_target", "PROBE_POINTS", "BANK_SIZE"]

CLAIMS = ("same-minimizers-as-clip", "same-subspace-as-clip", "matches-conditional-means",
          "matches-conditionals")
#: Default margin of ``same-subspace-as-clip``: the largest principal angle, in radians.
DEFAULT_SUBSPACE_MARGIN = 0.1


def _projector(M):
    """Orthogonal projector onto the column space of ``M`` (full column rank expected)."""
    Q, _ = np.linalg.qr(M)
    return Q @ Q.T


def subspace_margin(radians: float) -> float:
    r"""Margin on the projector distance that bounds every principal angle by ``radians``.

    For projectors of equal rank, :math:`\|P - P^*\|_F \ge \sqrt2\,\sin\theta_{max}`,
    so a distance below :math:`\sqrt2\sin m` keeps every angle below :math:`m`.
    """
    return float(np.sqrt(2.0) * np.sin(radians))
DIRECTIONS = ("both", "v|u", "u|v")


def statistic(fam, x, claim, direction):
    """The claim's statistic of the encoder parameters ``x`` of family ``fam`` (a flat vector)."""
    if claim == "same-minimizers-as-clip":
        return fam.invariant(x).ravel()
    if claim == "same-subspace-as-clip":
        # Whitened row spaces of both encoders, as projectors: free of the scale and of
        # the shape of f within the subspace (MATH.md §4.1, Proposition G1's subspace).
        G_u, G_v = fam.split(x)
        return np.concatenate([_projector(fam.Ru @ G_u.T).ravel(), _projector(fam.Rv @ G_v.T).ravel()])
    N_v, Sig_v, N_u, Sig_u = fam.conditionals(x)
    parts = []
    if direction in ("both", "v|u"):
        parts.append(fam.Riv @ N_v @ fam.Ru)
        if claim == "matches-conditionals":
            parts.append(fam.Riv @ Sig_v @ fam.Riv)
    if direction in ("both", "u|v"):
        parts.append(fam.Riu @ N_u @ fam.Rv)
        if claim == "matches-conditionals":
            parts.append(fam.Riu @ Sig_u @ fam.Riu)
    return np.concatenate([p.ravel() for p in parts])


def target(fam, claim, direction, control_stat):
    """The claim's target: CLIP's population statistic ``control_stat`` for
    ``same-minimizers-as-clip``, else the true (projected) conditionals."""
    if claim in ("same-minimizers-as-clip", "same-subspace-as-clip"):
        return control_stat
    m = fam.model
    U, s, Vt = gaussian.canonical_directions(m.cov, m.n_u)
    k = m.n_e
    Bt = (Vt[:k].T * s[:k]) @ U[:, :k].T  # whitened projected regression map v|u
    parts = []
    if direction in ("both", "v|u"):
        parts.append(Bt)
        if claim == "matches-conditionals":
            parts.append(np.eye(m.n_v) - (Vt[:k].T * s[:k] ** 2) @ Vt[:k])
    if direction in ("both", "u|v"):
        parts.append(Bt.T)
        if claim == "matches-conditionals":
            parts.append(np.eye(m.n_u) - (U[:, :k] * s[:k] ** 2) @ U[:, :k].T)
    return np.concatenate([p.ravel() for p in parts])


# --------------------------------------------------------------------------
# the effective similarity: learned scalars folded in, cosine by probes
# --------------------------------------------------------------------------
#: Probe points per side for the cosine statistics (f on a 12 x 12 grid of pairs).
PROBE_POINTS = 12
#: Marginal samples for the self-normalised importance estimates of a cosine
#: model's conditionals (MATH.md §5): with |f| <= m the weights stay within
#: e^{2m} of each other, and the bias of the ratio estimate is O(1/BANK_SIZE).
BANK_SIZE = 4096


class Probes:
    """Fixed points of one model (seeded by the model's index) at which a cosine
    similarity's statistics are evaluated: ``U, V`` (probe pairs) and a marginal
    sample ``bank_u, bank_v``."""

    def __init__(self, model, rng: np.random.Generator):
        L = np.linalg.cholesky(model.cov)
        Z = rng.standard_normal((PROBE_POINTS + BANK_SIZE, L.shape[0])) @ L.T
        self.U, self.V = Z[:PROBE_POINTS, : model.n_u], Z[:PROBE_POINTS, model.n_u:]
        self.bank_u, self.bank_v = Z[PROBE_POINTS:, : model.n_u], Z[PROBE_POINTS:, model.n_u:]


def effective_parameters(fam, x, multiplier: float):
    r"""Encoder parameters with the loss's logit multiplier :math:`m` folded in, for
    ``"dot"`` and ``"l2"`` (:math:`mG_u^TG_v`, and :math:`m|G_uu - G_vv|^2`): the
    effective similarity is then that of the family at unit scale."""
    G_u, G_v = fam.split(x[: fam.size])
    r = np.sqrt(abs(multiplier))
    if fam.similarity == "dot":
        return fam.join(np.sign(multiplier) * r * G_u, r * G_v)
    return fam.join(r * G_u, r * G_v)


def _cosine_f(fam, x, multiplier, U, V):
    A, B, _, _ = fam.embed(x, U, V)  # unit rows under cosine
    return multiplier * (A @ B.T)


def _snis(fam, logits, bank, R_white):
    """Conditional means and covariances (whitened) of the tilted marginal: row i of
    ``logits`` weighs the ``bank`` (self-normalised importance sampling)."""
    W = np.exp(logits - logits.max(axis=1, keepdims=True))
    W /= W.sum(axis=1, keepdims=True)
    Y = bank @ R_white  # whitened bank (R_white symmetric)
    means = W @ Y
    covs = [(Y - mu).T @ ((Y - mu) * w[:, None]) for mu, w in zip(means, W)]
    return means, np.array(covs)


def cosine_statistic(fam, x, multiplier, claim, direction, probes: Probes):
    r"""The claim's statistic under cosine similarity, where the model has no closed form:

    * ``same-minimizers-as-clip``: the effective :math:`f = m\cos(G_uu, G_vv)` on the
      probe pairs, centred (a shift of every logit is invisible to the softmaxes);
    * ``same-subspace-as-clip``: the whitened row-space projectors, as for the other
      similarities;
    * ``matches-*``: the model's conditional means (and covariances), whitened, at the
      probe points, by self-normalised importance sampling of the marginal bank.
    """
    if claim == "same-subspace-as-clip":
        return statistic(fam, x[: fam.size], claim, direction)
    if claim == "same-minimizers-as-clip":
        F = _cosine_f(fam, x, multiplier, probes.U, probes.V)
        return (F - F.mean()).ravel()
    parts = []
    if direction in ("both", "v|u"):
        m, S = _snis(fam, _cosine_f(fam, x, multiplier, probes.U, probes.bank_v), probes.bank_v, fam.Riv)
        parts += [m] + ([S] if claim == "matches-conditionals" else [])
    if direction in ("both", "u|v"):
        m, S = _snis(fam, _cosine_f(fam, x, multiplier, probes.bank_u, probes.V).T, probes.bank_u, fam.Riu)
        parts += [m] + ([S] if claim == "matches-conditionals" else [])
    return np.concatenate([p.ravel() for p in parts])


def cosine_target(fam, claim, direction, probes: Probes):
    """The true whitened conditional means (and covariances) at the probe points, for the
    ``matches-*`` claims under cosine similarity (closed form, Gaussian conditioning)."""
    m = fam.model
    C_uu, C_uv, C_vv = gaussian.split_covariance(m.cov, m.n_u)
    parts = []
    if direction in ("both", "v|u"):
        reg = C_uv.T @ np.linalg.inv(C_uu)
        parts.append((probes.U @ reg.T) @ fam.Riv)
        if claim == "matches-conditionals":
            S = fam.Riv @ (C_vv - reg @ C_uv) @ fam.Riv
            parts.append(np.broadcast_to(S, (PROBE_POINTS, *S.shape)))
    if direction in ("both", "u|v"):
        reg = C_uv @ np.linalg.inv(C_vv)
        parts.append((probes.V @ reg.T) @ fam.Riu)
        if claim == "matches-conditionals":
            S = fam.Riu @ (C_uu - reg @ C_uv.T) @ fam.Riu
            parts.append(np.broadcast_to(S, (PROBE_POINTS, *S.shape)))
    return np.concatenate([np.ravel(p) for p in parts])
