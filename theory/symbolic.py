r"""Exact symbolic proofs of Theorems 2.8, 3.2 and Proposition G1 in small dimensions:
the public entry point.

The work is split in three modules, re-exported here:

* :mod:`theory.identities`: deciding :math:`r \equiv 0` (:func:`prove_zero`)
  and :math:`r > 0` (:func:`positive_by_factorisation`), with a
  :class:`Verdict` whose ``kind`` says what was established:
  ``"identity-proved"`` or ``"positivity-proved"`` (proofs),
  ``"rational-points-only"`` (evidence at rational points, not a proof),
  ``"nonzero-at-point"`` (refuted), ``"undecided"``.
* :mod:`theory.gaussian_derivations`: the bilinear Gaussian model with
  :math:`n_u = n_v = n \in \{1, 2\}` and a generic SPD covariance
  :math:`C \in \mathbb{R}^{2n\times 2n}` (:func:`setting`), the Gaussian
  integrals (:func:`standard_normal_mgf`, :func:`gaussian_mgf`,
  :func:`expectation`, :func:`gaussian_log_density`) and the quantities of
  MATH.md §3–§4.1 derived from them (:func:`derivations`).
* :mod:`theory.proofs`: the identities of each statement as :class:`Proof`
  objects (:func:`proofs_for`, :func:`all_proofs`).

The comparison of the derived expressions with ``numerics`` (lambdified,
evaluated in floating point) lives with its check in
``proofs_checks.checks.symbolic``.  This module imports neither ``numerics``
nor ``proofs_checks``.
"""
from __future__ import annotations

from .gaussian_derivations import (
    MGF_ARGUMENT,
    SUPPORTED_DIMENSIONS,
    GaussianSetting,
    canonical,
    canonical_correlation_matrix,
    clip_loss_at,
    derivations,
    expectation,
    full_rank_minimizer,
    full_rank_minimum,
    gaussian_log_density,
    gaussian_mgf,
    rank_one_minimum,
    setting,
    standard_normal_mgf,
)
from .identities import (
    IDENTITY_PROVED,
    NONZERO_AT_POINT,
    POSITIVITY_PROVED,
    PROOF_KINDS,
    RATIONAL_POINTS_ONLY,
    UNDECIDED,
    VERDICT_KINDS,
    Verdict,
    positive_by_factorisation,
    prove_zero,
)
from .proofs import (
    PROVED_STATEMENTS,
    Proof,
    all_proofs,
    general_proofs,
    proofs_for,
    proposition_g1_proofs,
    rank_one_proofs,
    theorem_2_8_proofs,
    theorem_3_2_proofs,
)

from . import gaussian_derivations as _derivations, identities as _identities, proofs as _proofs  # noqa: E402

#: Everything the three modules export: deciding identities (theory.identities),
#: Gaussian integrals and derivations (theory.gaussian_derivations), proofs (theory.proofs).
__all__ = [*_identities.__all__, *_derivations.__all__, *_proofs.__all__]
