"""The registry: every check cites a statement of theory; selection; verdict logic."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import settings

import theory
from proofs_checks.registry import CaseResult, CheckResult, METHODS, all_checks, select_checks


def test_every_check_cites_a_known_statement():
    checks = all_checks()
    assert len(checks) >= 5
    for c in checks:
        assert c.statement in theory.STATEMENTS, c.name
        assert c.method in METHODS


def test_required_statements_have_two_methods():
    methods = {}
    for c in all_checks():
        methods.setdefault(c.statement, set()).add(c.method)
    for name in ("Theorem 2.8", "Theorem 3.2", "Proposition G1"):
        assert name in methods
    assert len(methods["Theorem 2.8"]) >= 2 and len(methods["Proposition G1"]) >= 2


def test_selection_by_statement_method_and_name():
    assert {c.statement for c in select_checks(["Theorem 3.2"])} == {"Theorem 3.2"}
    assert {c.method for c in select_checks(["closed-form"])} == {"closed-form"}
    assert [c.name for c in select_checks(["g1-optimization"])] == ["g1-optimization"]


def test_verdict_needs_every_case_and_at_least_one():
    ok, bad = CaseResult("a", 1e-12, 1e-10), CaseResult("b", 2.0, 1.0)
    nan = CaseResult("c", math.nan, 1.0)
    assert CheckResult("x", "Theorem 3.2", "closed-form", "", [ok]).passed
    assert not CheckResult("x", "Theorem 3.2", "closed-form", "", [ok, bad]).passed
    assert not CheckResult("x", "Theorem 3.2", "closed-form", "", [nan]).passed  # NaN never passes
    assert not CheckResult("x", "Theorem 3.2", "closed-form", "", []).passed
    r = CheckResult("x", "Theorem 3.2", "closed-form", "", [ok, bad])
    assert r.to_dict()["max_error"] == 2.0 and r.to_dict()["tolerance"] == 1.0


def test_ci_profile_is_derandomised():
    # CI sets CI=true; Hypothesis then loads its "ci" profile, which must stay derandomised.
    assert settings.get_profile("ci").derandomize
    code = "from hypothesis import settings; print(settings.default.derandomize)"
    env = dict(os.environ, CI="true")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "True", out.stderr
