r"""Hypothesis settings profiles named for the toolkit, built on Hypothesis's ``ci`` profile.

``contrastive-proofs-ci``
    Hypothesis's ``ci`` profile (derandomised, no deadline, no example
    database, failure blobs printed) with ``max_examples=30``: the property
    tests of the toolkit JIT-compile kernels and run small optimisations, so
    the first example is slow (no deadline) and a few dozen examples cover the
    drawn shapes and spectra.
``contrastive-proofs-dev``
    The same with ``max_examples=10``, for a quick local loop.

Registering a profile changes nothing; a profile is *loaded* only on request:
:func:`load_profile`, the pytest option ``--cp-hypothesis-profile NAME``, or
the environment variable ``CONTRASTIVE_PROOFS_HYPOTHESIS_PROFILE`` read by
:func:`load_profile_from_env`.  A profile the user loaded themselves
(``--hypothesis-profile``, ``settings.load_profile``) is never replaced behind
their back.
"""
from __future__ import annotations

import os

from numerics._validation import fail

__all__ = ["PROFILES", "ENV_VAR", "register_profiles", "load_profile", "load_profile_from_env"]

#: Profile name -> settings overriding Hypothesis's ``ci`` profile.
PROFILES = {
    "contrastive-proofs-ci": {"max_examples": 30, "deadline": None},
    "contrastive-proofs-dev": {"max_examples": 10, "deadline": None},
}

ENV_VAR = "CONTRASTIVE_PROOFS_HYPOTHESIS_PROFILE"


def register_profiles() -> list[str]:
    """Register the toolkit's profiles (idempotent); return their names.  Loads nothing."""
    from hypothesis import settings

    parent = settings.get_profile("ci")
    for name, kwargs in PROFILES.items():
        settings.register_profile(name, parent=parent, **kwargs)
    return list(PROFILES)


def load_profile(name: str) -> None:
    """Register the toolkit's profiles and load ``name`` (one of :data:`PROFILES`).

    Raises :class:`numerics.InvalidInputError` for an unknown name.
    """
    from hypothesis import settings

    if name not in PROFILES:
        raise fail("name", name, "one of " + ", ".join(repr(p) for p in PROFILES))
    register_profiles()
    settings.load_profile(name)


def load_profile_from_env(environ=None) -> str | None:
    """Load the profile named by ``CONTRASTIVE_PROOFS_HYPOTHESIS_PROFILE`` if it is set;
    return its name (``None`` when the variable is unset or empty)."""
    environ = os.environ if environ is None else environ
    name = environ.get(ENV_VAR, "").strip()
    if not name:
        return None
    load_profile(name)
    return name
