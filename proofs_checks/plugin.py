r"""pytest plugin of the toolkit (entry point ``contrastive_proofs``).

Inert unless used: it registers a marker, a few fixtures and one report
header line, imports nothing heavy at collection, and changes no setting of
the host project.

Marker
------
``@pytest.mark.contrastive_proofs(seed=...)``
    Tags a test as a contrastive-proofs check; ``seed`` overrides the seed of
    the fixtures below for that test.

Fixtures
--------
``cp_seed``
    The seed: the marker's ``seed``, else ``--cp-seed`` (default 0).
``cp_rng``
    ``numpy.random.default_rng([cp_seed, crc32(test id)])``: seeded, and
    different for every test so tests do not share random streams.
``cp_verify_variant``
    :func:`proofs_checks.verify_variant` with ``seed=cp_seed`` preset.
``cp_gaussian_model``
    A small Gaussian model with a healthy eigengap
    (:func:`proofs_checks.verify.default_variant_models`).
``cp_strategies``
    The module :mod:`proofs_checks.strategies` (Hypothesis strategies).

Options
-------
``--cp-seed N``
    Seed of the fixtures.
``--cp-hypothesis-profile NAME``
    Load one of the toolkit's Hypothesis profiles
    (:mod:`proofs_checks.profiles`); the environment variable
    ``CONTRASTIVE_PROOFS_HYPOTHESIS_PROFILE`` does the same, and so does
    Hypothesis's own ``--hypothesis-profile NAME``.  Without any of them the
    profiles are only registered, never loaded.
"""
from __future__ import annotations

import functools
import zlib

import pytest

MARKER = "contrastive_proofs"


def _register_profiles():
    try:
        from . import profiles
    except ImportError:  # pragma: no cover - hypothesis missing
        return None
    profiles.register_profiles()
    return profiles


# Registered (never loaded) at import, before Hypothesis's own plugin reads
# ``--hypothesis-profile``, so that ``--hypothesis-profile contrastive-proofs-ci``
# works as well.
_register_profiles()


def pytest_addoption(parser):
    group = parser.getgroup("contrastive-proofs", "contrastive-proofs checks")
    group.addoption("--cp-seed", type=int, default=None,
                    help="seed of the contrastive-proofs fixtures (default 0)")
    group.addoption("--cp-hypothesis-profile", default=None, metavar="NAME",
                    help="load a contrastive-proofs Hypothesis profile "
                         "(contrastive-proofs-ci, contrastive-proofs-dev)")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{MARKER}(seed=None): a contrastive-proofs check; seed overrides --cp-seed for the "
        "cp_* fixtures",
    )
    name = config.getoption("--cp-hypothesis-profile", default=None)
    profiles = _register_profiles()
    if profiles is None:  # pragma: no cover
        return
    if name:
        try:
            profiles.load_profile(name)
        except ValueError as exc:
            raise pytest.UsageError(f"--cp-hypothesis-profile: {exc}") from None
    else:
        try:
            profiles.load_profile_from_env()
        except ValueError as exc:
            raise pytest.UsageError(f"{profiles.ENV_VAR}: {exc}") from None


def pytest_report_header(config):
    seed = config.getoption("--cp-seed", default=None)
    try:
        from hypothesis import settings

        profile = settings._current_profile
    except Exception:  # pragma: no cover - private attribute moved
        profile = "?"
    return (f"contrastive-proofs: seed={0 if seed is None else seed}, "
            f"hypothesis profile={profile}")


@pytest.fixture
def cp_seed(request) -> int:
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None and "seed" in marker.kwargs and marker.kwargs["seed"] is not None:
        return int(marker.kwargs["seed"])
    seed = request.config.getoption("--cp-seed", default=None)
    return 0 if seed is None else int(seed)


@pytest.fixture
def cp_rng(request, cp_seed):
    import numpy as np

    return np.random.default_rng([cp_seed, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture
def cp_verify_variant(cp_seed):
    from .verify import verify_variant

    return functools.partial(verify_variant, seed=cp_seed)


@pytest.fixture
def cp_gaussian_model(cp_seed):
    from .verify import default_variant_models

    return default_variant_models(cp_seed, 1)[0]


@pytest.fixture
def cp_strategies():
    from . import strategies

    return strategies
