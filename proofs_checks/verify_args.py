"""The verifier's arguments: their accepted values (one place, read by the API and the
command line) and their validation, all done before any loss is called.

Every invalid argument raises :class:`numerics.InvalidInputError` naming the
argument, its value and what was expected.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from numerics import infonce
from numerics._validation import as_choice, as_count, fail
from numerics.loss_backends import BACKENDS
from numerics.models import GaussianModel
from numerics.user_loss import INPUTS

from .claims import CLAIMS, DIRECTIONS
from .verdict import DEFAULT_RELATIVE_MARGIN

__all__ = ["CLAIMS", "DIRECTIONS", "INPUTS", "SIMILARITIES", "SIMILARITY_NAMES", "BACKEND_NAMES", "OBJECTIVE_NAMES",
           "AUTO", "as_seconds", "as_seed", "as_sizes", "as_margin", "as_models", "as_callable_or_none", "as_workers",
           "as_control_scale", "as_name", "VALIDATORS", "validate"]

#: Similarities the verifier fits under (cosine has no closed form: its control is
#: CLIP's own fits, with the logit scale learned).
SIMILARITIES = infonce.SIMILARITIES
#: Every name ``similarity=`` accepts: the similarities and their synonyms.
SIMILARITY_NAMES = SIMILARITIES + tuple(infonce.SIMILARITY_SYNONYMS)
#: Every name ``backend=`` accepts.
BACKEND_NAMES = ("auto",) + BACKENDS
#: What the variant's fits solve: ``"value"`` (the loss's minimisers), ``"training-field"``
#: (stable zeros of its backend's gradient, for stop-gradients), ``"auto"`` (the training
#: field iff an autograd gradient fails the gradient check).
OBJECTIVE_NAMES = ("auto", "value", "training-field")


def _is_real(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, (Real, np.floating, np.integer))


def as_seconds(value, name: str, *, allow_zero: bool = False) -> float:
    """A finite number of seconds, > 0 (or >= 0 with ``allow_zero``)."""
    ok = _is_real(value) and math.isfinite(float(value)) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise fail(name, value, f"a number of seconds {'>=' if allow_zero else '>'} 0")
    return float(value)


def as_seed(seed) -> int:
    """A non-negative integer seed (NumPy's generators take no negative seed)."""
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise fail("seed", seed, "an integer >= 0")
    return int(seed)


def as_sizes(sizes):
    """At least two increasing integer batch sizes >= 16."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise fail("sizes", sizes, "a sequence of at least two increasing integers >= 16")
    sizes = list(sizes)
    if not all(not isinstance(s, bool) and isinstance(s, Integral) for s in sizes):
        raise fail("sizes", sizes, "integers (a sequence of at least two increasing integers >= 16)")
    arr = [int(s) for s in sizes]
    if len(arr) < 2 or any(s < 16 for s in arr) or any(a >= b for a, b in zip(arr, arr[1:])):
        raise fail("sizes", sizes, "at least two increasing integers >= 16")
    return arr


def as_margin(margin):
    """An absolute margin > 0, or None for the default."""
    if margin is None:
        return None
    if not _is_real(margin) or not math.isfinite(float(margin)) or margin <= 0:
        raise fail("margin", margin, "an absolute margin > 0 (whitened Frobenius norm, or radians for "
                                     f"same-subspace-as-clip), or None for {DEFAULT_RELATIVE_MARGIN:.0%} "
                                     "of the target's norm")
    return float(margin)


def as_models(models):
    """A non-empty list of :class:`numerics.models.GaussianModel`, or None."""
    if models is None:
        return None
    if not isinstance(models, (list, tuple)) or len(models) < 1:
        raise fail("models", models, "a non-empty list of numerics.models.GaussianModel, or None")
    for k, m in enumerate(models):
        if not isinstance(m, GaussianModel):
            raise fail(f"models[{k}]", m, "a numerics.models.GaussianModel")
    return list(models)


def as_callable_or_none(value, name: str, what: str):
    if value is not None and not callable(value):
        raise fail(name, value, f"{what}, or None")
    return value


def as_control_scale(value):
    if value is not None and (not _is_real(value) or not math.isfinite(float(value)) or value <= 0):
        raise fail("control_scale", value, "a logit scale > 0, or None to learn it")
    return None if value is None else float(value)


def as_name(name):
    if name is not None and not isinstance(name, str):
        raise fail("name", name, "a string, or None")
    return name


def _similarity(value):
    return infonce.as_similarity(value, choices=SIMILARITIES)


#: The validator of each argument (those that can be judged without calling the loss).
VALIDATORS = {
    "claim": lambda v: as_choice(v, CLAIMS, "claim"),
    "inputs": lambda v: as_choice(v, INPUTS, "inputs"),
    "similarity": _similarity,
    "backend": lambda v: as_choice(v, BACKEND_NAMES, "backend"),
    "direction": lambda v: as_choice(v, DIRECTIONS, "direction"),
    "seed": as_seed,
    "replicates": lambda v: as_count(v, "replicates", 2),
    "margin": as_margin,
    "budget": lambda v: as_seconds(v, "budget", allow_zero=True),
    "n_models": lambda v: as_count(v, "n_models", 1),
    "models": as_models,
    "name": as_name,
    "workers": lambda v: as_workers(v),
    "connect_timeout": lambda v: as_seconds(v, "connect_timeout"),
    "progress": lambda v: as_callable_or_none(v, "progress", "a callable taking one line of text"),
    "control_scale": as_control_scale,
    "grad": lambda v: as_callable_or_none(v, "grad", "a callable grad(F) -> dL/dF"),
    "scheduler": lambda v: _scheduler(v),
    "sizes": lambda v: None if v is None else as_sizes(v),
    "objective": lambda v: as_choice(v, OBJECTIVE_NAMES, "objective"),
}


#: ``workers=AUTO``: one forked process per available core where that is safe
#: (:mod:`proofs_checks.parallel`).
AUTO = "auto"


def as_workers(value):
    """``"auto"`` or an integer >= 1 (where the fits run, :func:`proofs_checks.parallel.executor`)."""
    if isinstance(value, str):
        if value != AUTO:
            raise fail("workers", value, f"an integer >= 1 or {AUTO!r}")
        return value
    return as_count(value, "workers", 1)


def _scheduler(value):
    if value is not None and not isinstance(value, str):
        raise fail("scheduler", value, "an address such as 'tcp://127.0.0.1:8786', or None")
    return value


def validate(*, loss, **arguments) -> dict:
    """The arguments of :func:`proofs_checks.verify_variant` given here, those that can be
    judged without calling the loss, validated and normalised: a dict by argument name
    (:data:`VALIDATORS`).  Each is judged in the order given."""
    if not callable(loss):
        raise fail("loss", loss, "a callable loss(F) -> float or loss(za, zb) -> float, or a torch.nn.Module")
    out = {name: VALIDATORS[name](value) for name, value in arguments.items()}
    if out.get("control_scale") is not None and out.get("similarity") != "cosine":
        raise fail("control_scale", arguments["control_scale"], "None unless similarity='cosine' (the "
                                                                "control's scale is folded into the encoders "
                                                                "otherwise)")
    return out
