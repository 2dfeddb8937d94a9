"""numerics: closed forms, kernels, estimators and minimisers.

``numerics`` computes; it never imports ``proofs_checks``.
"""
from ._validation import InvalidInputError, LossOverflow
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
    "LossOverflow",
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
from . import importance, infonce  # noqa: E402
from .importance import self_normalised_moments  # noqa: E402

__all__ += ["importance", "infonce", "self_normalised_moments"]
# The verifier's machinery: encoders and their parameters, losses as written, fitting,
# statistics of fits, flat directions.
from . import batch_fit, encoders, fit_statistics, flat, loss_backends, user_loss  # noqa: E402

__all__ += ["batch_fit", "encoders", "fit_statistics", "flat", "loss_backends", "user_loss"]
