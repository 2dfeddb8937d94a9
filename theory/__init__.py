"""theory: what the toolkit claims (MATH.md), as objects and sympy expressions.

``theory`` imports neither ``numerics`` nor ``proofs_checks``.
"""
from .statements import STATEMENTS, Statement, get_statement, register_statement
from .statements import PROPOSITION_G1, THEOREM_2_8, THEOREM_3_2

__all__ = [
    "STATEMENTS",
    "Statement",
    "get_statement",
    "register_statement",
    "THEOREM_2_8",
    "THEOREM_3_2",
    "PROPOSITION_G1",
]
