"""numerics: closed forms, kernels, estimators and minimisers.

``numerics`` computes; it never imports ``proofs_checks``.
"""
from ._validation import InvalidInputError
from . import gaussian, optimize, models
from .gaussian import (
    canonical_correlations,
    conditional_loss,
    expected_kl_terms,
    lowrank_minimizer,
    lowrank_minimum,
    mutual_information,
    population_clip_loss,
)

__all__ = [
    "InvalidInputError",
    "gaussian",
    "optimize",
    "models",
    "canonical_correlations",
    "conditional_loss",
    "expected_kl_terms",
    "lowrank_minimizer",
    "lowrank_minimum",
    "mutual_information",
    "population_clip_loss",
]
from . import kernels, montecarlo  # noqa: E402

__all__ += ["kernels", "montecarlo"]
from . import variants  # noqa: E402

__all__ += ["variants"]
