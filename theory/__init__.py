"""theory: what the toolkit claims (MATH.md), as objects and sympy expressions.

* :mod:`theory.statements`: every theorem and proposition as a :class:`Statement`.
* :mod:`theory.gaussian_sym`: the symbols (covariance blocks, encoders,
  temperature) and the losses as sympy expressions.
* :mod:`theory.symbolic`: exact derivations from Gaussian integrals and the
  symbolic proofs in dimensions 1 and 2 (imported on demand; it is slower).
  It re-exports :mod:`theory.identities` (deciding an identity or a
  positivity, and what a verdict establishes), :mod:`theory.gaussian_derivations`
  (the Gaussian integrals and the quantities derived from them) and
  :mod:`theory.proofs` (the identities of each statement).

``theory`` imports neither ``numerics`` nor ``proofs_checks``.
"""
from . import gaussian_sym
from .statements import STATEMENTS, Statement, get_statement, register_statement
from .statements import (
    LANDSCAPE,
    LEMMA_2_1,
    PROPOSITION_G1,
    PROPOSITION_G2,
    PROPOSITION_G3,
    PROPOSITION_G4,
    PROPOSITION_N1,
    PROPOSITION_N2,
    THEOREM_2_8,
    THEOREM_3_2,
)

__all__ = [
    "STATEMENTS",
    "Statement",
    "get_statement",
    "register_statement",
    "gaussian_sym",
    "THEOREM_2_8",
    "THEOREM_3_2",
    "PROPOSITION_G1",
    "PROPOSITION_G2",
    "PROPOSITION_G3",
    "PROPOSITION_G4",
    "PROPOSITION_N1",
    "PROPOSITION_N2",
    "LANDSCAPE",
    "LEMMA_2_1",
]
