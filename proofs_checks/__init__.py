"""proofs_checks: hold ``numerics`` against ``theory`` and report.

Public API
----------
run_checks, select_checks, all_checks
    The registry of checks behind the main job (``python -m proofs_checks``).
verify_variant
    Verify a user's contrastive loss variant against a claim.
fingerprint
    The spectral fingerprint of a loss: the map g(sigma) its minimiser applies to each
    canonical correlation, with a diagnosis.
strategies
    Hypothesis strategies (``joint_covariances``, ...).
InvalidInputError
    The one exception type for invalid arguments (a ``ValueError``).
"""
from numerics._validation import InvalidInputError

from . import strategies, tolerances
from .registry import CaseResult, Check, CheckResult, all_checks, register, run_checks, select_checks

__all__ = [
    "InvalidInputError",
    "CaseResult",
    "Check",
    "CheckResult",
    "all_checks",
    "register",
    "run_checks",
    "select_checks",
    "strategies",
    "tolerances",
    "verify_variant",
    "fingerprint",
]


def __getattr__(name):
    # verify_variant pulls in the optimisation machinery; import it on first use.
    if name == "verify_variant":
        from .verify import verify_variant

        return verify_variant
    if name == "fingerprint":
        from .spectral_fingerprint import fingerprint

        return fingerprint
    raise AttributeError(f"module 'proofs_checks' has no attribute {name!r}")
