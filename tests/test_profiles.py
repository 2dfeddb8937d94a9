"""Unit tests of proofs_checks/profiles.py: the toolkit's Hypothesis profiles are built on
Hypothesis's ``ci`` profile, registering loads nothing, and loading (by name or from the
environment) takes effect and rejects unknown names.  Every test that loads a profile
restores the session's own profile afterwards."""
import pytest
from hypothesis import settings

from numerics import InvalidInputError
from proofs_checks import profiles


@pytest.fixture
def restore_profile():
    """Load back whatever profile the session had (default, or ci under CI=true)."""
    name = settings.get_current_profile_name()
    yield name
    settings.load_profile(name)


def test_profiles_are_the_documented_ones():
    assert profiles.PROFILES == {
        "contrastive-proofs-ci": {"max_examples": 30, "deadline": None},
        "contrastive-proofs-dev": {"max_examples": 10, "deadline": None},
    }
    assert profiles.ENV_VAR == "CONTRASTIVE_PROOFS_HYPOTHESIS_PROFILE"


def test_register_loads_nothing_and_inherits_from_ci(restore_profile):
    before = settings.get_current_profile_name()
    examples_before = settings().max_examples
    assert profiles.register_profiles() == ["contrastive-proofs-ci", "contrastive-proofs-dev"]
    assert profiles.register_profiles() == ["contrastive-proofs-ci", "contrastive-proofs-dev"]  # idempotent
    assert settings.get_current_profile_name() == before and settings().max_examples == examples_before
    ci = settings.get_profile("ci")
    for name, overrides in profiles.PROFILES.items():
        p = settings.get_profile(name)
        assert p.max_examples == overrides["max_examples"] and p.deadline is None
        # the rest is the ci profile's
        assert p.derandomize == ci.derandomize and p.database == ci.database
        assert p.print_blob == ci.print_blob and p.suppress_health_check == ci.suppress_health_check


@pytest.mark.parametrize("name, examples", [("contrastive-proofs-ci", 30), ("contrastive-proofs-dev", 10)])
def test_load_profile_takes_effect(restore_profile, name, examples):
    profiles.load_profile(name)
    assert settings.get_current_profile_name() == name
    assert settings().max_examples == examples and settings().deadline is None


def test_unknown_profile_is_named_and_nothing_is_loaded(restore_profile):
    with pytest.raises(InvalidInputError, match=r"name.*contrastive-proofs-ci"):
        profiles.load_profile("ci")   # Hypothesis's own profile is not one of the toolkit's
    assert settings.get_current_profile_name() == restore_profile


@pytest.mark.parametrize("environ", [{}, {profiles.ENV_VAR: ""}, {profiles.ENV_VAR: "   "}, {"OTHER": "x"}])
def test_env_unset_or_empty_loads_nothing(restore_profile, environ):
    assert profiles.load_profile_from_env(environ) is None
    assert settings.get_current_profile_name() == restore_profile


def test_env_names_a_profile(restore_profile):
    assert profiles.load_profile_from_env({profiles.ENV_VAR: " contrastive-proofs-dev\n"}) == \
        "contrastive-proofs-dev"
    assert settings.get_current_profile_name() == "contrastive-proofs-dev" and settings().max_examples == 10
    with pytest.raises(InvalidInputError):
        profiles.load_profile_from_env({profiles.ENV_VAR: "nope"})


def test_env_defaults_to_the_process_environment(restore_profile, monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "contrastive-proofs-ci")
    assert profiles.load_profile_from_env() == "contrastive-proofs-ci"
    assert settings().max_examples == 30
    monkeypatch.delenv(profiles.ENV_VAR)
    assert profiles.load_profile_from_env() is None
