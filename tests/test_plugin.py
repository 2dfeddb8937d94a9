"""Tests of proofs_checks/plugin.py (pytest plugin) and proofs_checks/profiles.py."""
import os
import re
from pathlib import Path

import pytest
from hypothesis import settings

from numerics import InvalidInputError
from proofs_checks import profiles

pytest_plugins = ["pytester"]

ROOT = str(Path(__file__).resolve().parents[1])


def _plugin_args():
    """Installed, the plugin loads through its pytest11 entry point; from a bare
    source tree it must be named with -p."""
    from importlib.metadata import entry_points

    installed = any(ep.name == "contrastive_proofs" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "proofs_checks.plugin"]


@pytest.fixture
def run(pytester, monkeypatch):
    """Run pytest in process with the plugin (for tests that load no Hypothesis profile)."""
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)

    def run(*args):
        return pytester.runpytest(*_plugin_args(), *args)

    return run


@pytest.fixture
def sub(pytester, monkeypatch):
    """Run pytest in a subprocess: loading a profile must not leak into this process."""
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)

    def run(*args):
        return pytester.runpytest_subprocess(*_plugin_args(), *args)

    return run


def test_marker_registered(run):
    res = run("--markers")
    res.stdout.fnmatch_lines(["*@pytest.mark.contrastive_proofs(seed=None)*"])


def test_report_header(run, pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    res = run("--cp-seed", "7")
    res.stdout.fnmatch_lines(["contrastive-proofs: seed=7, hypothesis profile=*"])
    res.assert_outcomes(passed=1)


def test_inert_without_plugin(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest("-p", "no:contrastive_proofs")
    assert "contrastive-proofs" not in res.stdout.str()
    res.assert_outcomes(passed=1)


def test_loaded_plugin_leaves_ordinary_tests_alone(run, pytester):
    # loaded but unused: no autouse fixture, no Hypothesis profile change, no warning
    pytester.makepyfile(
        "from hypothesis import settings\n"
        "def test_x(request):\n"
        "    assert not [f for f in request.fixturenames if f.startswith('cp_')]\n"
        f"    assert settings._current_profile == {settings._current_profile!r}\n"
    )
    res = run("-W", "error")
    res.assert_outcomes(passed=1)


def test_fixtures(run, pytester):
    pytester.makepyfile(
        """
        import functools
        import numpy as np
        import pytest

        def test_rng_is_seeded_per_test(cp_rng, cp_seed):
            assert cp_seed == 3
            assert isinstance(cp_rng, np.random.Generator)

        @pytest.mark.contrastive_proofs(seed=11)
        def test_marker_seed(cp_seed, cp_verify_variant):
            assert cp_seed == 11
            assert isinstance(cp_verify_variant, functools.partial)
            assert cp_verify_variant.keywords["seed"] == 11

        def test_model_and_strategies(cp_gaussian_model, cp_strategies):
            assert cp_gaussian_model.eigengap >= 0.25 - 1e-12
            assert hasattr(cp_strategies, "joint_covariances")

        def test_same_stream_twice(cp_rng):
            pytest.first = cp_rng.random()

        def test_same_stream_twice_b(cp_rng):
            assert cp_rng.random() != pytest.first  # a different test, a different stream
        """
    )
    res = run("--cp-seed", "3")
    res.assert_outcomes(passed=5)


def test_rng_reproducible_across_runs(run, pytester):
    pytester.makepyfile("def test_r(cp_rng):\n    print('VALUE', cp_rng.integers(1 << 30))\n")
    a = re.findall(r"VALUE (\d+)", run("-s").stdout.str())
    b = re.findall(r"VALUE (\d+)", run("-s").stdout.str())
    assert len(a) == 1 and a == b


def test_verifier_fixture_end_to_end(run, pytester):
    pytester.makepyfile(
        """
        import numpy as np
        from scipy.special import logsumexp

        def loss(F):
            return float(-np.mean(np.diag(F)) + np.mean(logsumexp(F, axis=1)))

        def test_variant(cp_verify_variant):
            res = cp_verify_variant(loss, claim="same-minimizers-as-clip", n_models=1)
            assert res.verdict == "confirmed", res.summary()
        """
    )
    run().assert_outcomes(passed=1)


def test_profiles_not_loaded_unless_asked(run, pytester):
    pytester.makepyfile(
        "from hypothesis import settings\n"
        "def test_p():\n"
        # whatever profile the session had (default, or ci under CI=true) stays loaded
        f"    assert settings._current_profile == {settings._current_profile!r}\n"
        "    assert settings.get_profile('contrastive-proofs-ci').max_examples == 30\n"
    )
    run().assert_outcomes(passed=1)


def test_profile_option_loads(sub, pytester):
    pytester.makepyfile(
        "from hypothesis import settings\n"
        "def test_p():\n"
        "    assert settings().max_examples == 10\n"
        "    assert settings().derandomize and settings().deadline is None\n"
    )
    sub("--cp-hypothesis-profile", "contrastive-proofs-dev").assert_outcomes(passed=1)


def test_profile_env_var_loads(sub, pytester, monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "contrastive-proofs-ci")
    pytester.makepyfile(
        "from hypothesis import settings\n"
        "def test_p():\n"
        "    assert settings().max_examples == 30\n"
    )
    sub().assert_outcomes(passed=1)


def test_unknown_profile_is_a_usage_error(run, pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    res = run("--cp-hypothesis-profile", "nope")
    assert res.ret == pytest.ExitCode.USAGE_ERROR


def test_user_profile_wins(sub, pytester):
    """A profile the user loads (Hypothesis's own option) is kept."""
    pytester.makeconftest(
        "from hypothesis import settings\n"
        "settings.register_profile('mine', max_examples=3)\n"
    )
    pytester.makepyfile(
        "from hypothesis import settings\n"
        "def test_p():\n"
        "    assert settings().max_examples == 3\n"
    )
    sub("--hypothesis-profile", "mine").assert_outcomes(passed=1)


def test_profiles_module_in_process():
    names = profiles.register_profiles()
    assert names == list(profiles.PROFILES)
    ci = settings.get_profile("ci")
    mine = settings.get_profile("contrastive-proofs-ci")
    assert mine.derandomize == ci.derandomize and mine.database is None
    assert mine.max_examples == 30 and mine.deadline is None
    with pytest.raises(InvalidInputError):
        profiles.load_profile("unknown")
    assert profiles.load_profile_from_env({}) is None


def test_hypothesis_own_option_accepts_toolkit_profile(sub, pytester):
    pytester.makepyfile(
        "from hypothesis import settings\n"
        "def test_p():\n"
        "    assert settings().max_examples == 30\n"
    )
    sub("--hypothesis-profile", "contrastive-proofs-ci").assert_outcomes(passed=1)
