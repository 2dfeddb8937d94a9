r"""The claims a loss variant is verified against: their names, margins, and which
statistic of the fitted encoders each compares (computed by :mod:`numerics.fit_statistics`).

See :mod:`proofs_checks.verify` for the formulas and the propositions they come
from (MATH.md §4.1, §4.2).  ``same-subspace-as-clip`` compares the whitened row
spaces of the encoders (projectors), so its margin is an angle (:func:`subspace_margin`).
"""
from __future__ import annotations

import numpy as np

from numerics import fit_statistics as fs

__all__ = ["CLAIMS", "DIRECTIONS", "DEFAULT_SUBSPACE_MARGIN", "IN_SUBSPACE", "statistic", "subspace_margin", "target",
           "cosine_statistic", "cosine_target"]

CLAIMS = ("same-minimizers-as-clip", "same-subspace-as-clip", "matches-conditional-means",
          "matches-conditionals")
DIRECTIONS = ("both", "v|u", "u|v")
#: Default margin of ``same-subspace-as-clip``: the largest principal angle, in radians.
DEFAULT_SUBSPACE_MARGIN = 0.1
#: A fit of the subspace claim whose projectors lie within this distance of CLIP's lies *in*
#: CLIP's subspace: held there by the batch's mirror image (numerics.encoders.subspace_flip),
#: to the fits' tolerance (measured within 1e-5), far below the default margin (0.14).
IN_SUBSPACE = 1e-3


def subspace_margin(radians: float) -> float:
    r"""Margin on the projector distance that bounds every principal angle by ``radians``.

    For projectors of equal rank, :math:`\|P - P^*\|_F \ge \sqrt2\,\sin\theta_{max}`,
    so a distance below :math:`\sqrt2\sin m` keeps every angle below :math:`m`.
    """
    return float(np.sqrt(2.0) * np.sin(radians))


def statistic(fam, x, claim, direction):
    """The claim's statistic of the encoder parameters ``x`` of family ``fam`` (a flat vector)."""
    if claim == "same-minimizers-as-clip":
        return fs.invariant_statistic(fam, x)
    if claim == "same-subspace-as-clip":
        return fs.subspace_statistic(fam, x)
    return fs.conditional_statistic(fam, x, direction, claim == "matches-conditionals")


def target(fam, claim, direction, control_stat):
    """The claim's target: CLIP's population statistic ``control_stat`` for the
    ``same-*`` claims, else the true conditionals projected on the top canonical pairs."""
    if claim in ("same-minimizers-as-clip", "same-subspace-as-clip"):
        return control_stat
    return fs.projected_conditional_target(fam, direction, claim == "matches-conditionals")


def cosine_statistic(fam, x, multiplier, claim, direction, probes):
    """The claim's statistic under cosine similarity (:mod:`numerics.fit_statistics`): the
    centred effective similarity on probe pairs, the subspace projectors, or the model's
    conditionals by importance sampling."""
    if claim == "same-subspace-as-clip":
        return fs.subspace_statistic(fam, x)
    if claim == "same-minimizers-as-clip":
        return fs.cosine_similarity_statistic(fam, x, multiplier, probes)
    return fs.cosine_conditional_statistic(fam, x, multiplier, direction, claim == "matches-conditionals",
                                           probes)


def cosine_target(fam, claim, direction, probes):
    """The true conditionals at the probe points, for the ``matches-*`` claims under cosine."""
    return fs.true_conditional_statistic(fam, direction, claim == "matches-conditionals", probes)
