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

__all__ = ["CLAIMS", "DIRECTIONS", "DEFAULT_SUBSPACE_MARGIN", "statistic", "subspace_margin", "target"]

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
