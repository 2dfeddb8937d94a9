"""Every Monte Carlo check reports its minimum detectable effect (MDE) in the JSON, and a
wrong formula of that size, fed at the default sample size and seed, makes it fail."""
from functools import partial

import numpy as np
import pytest

from numerics import gaussian, montecarlo, variants
from numerics.models import default_models
from proofs_checks.checks import finite_sample_second as fss
from proofs_checks.checks import montecarlo as mc
from proofs_checks.registry import Check, select_checks, run_check


@pytest.fixture(scope="module")
def models():
    return default_models(0, 3)  # the Monte Carlo checks use the first three default models


def _run(name, models, **wrong):
    """Run check ``name`` as the main job does (same generator), with ``wrong`` formulas."""
    c = select_checks([name])[0]
    return run_check(Check(c.name, c.statement, c.method, c.description, partial(c.func, **wrong)),
                     models=models)


def _shifted(fn, delta):
    def wrapped(*args, **kwargs):
        est = fn(*args, **kwargs)
        return montecarlo.MCEstimate(est.estimate + delta, est.standard_error, est.n_samples, est.detail)

    return wrapped


@pytest.mark.parametrize("name", ["thm3.2-monte-carlo", "n1-monte-carlo", "n2-monte-carlo",
                                  "n1-monte-carlo-cv"])
def test_mde_is_reported(models, name):
    res = _run(name, models)
    assert res.passed
    d = res.to_dict()
    assert d["mde"] is not None and d["mde"] > 0
    assert all("mde" in c.detail for c in res.cases)


def _argmin_case(res):
    return min(res.cases, key=lambda c: c.detail["mde"])


def test_theorem_3_2_monte_carlo_catches_an_error_of_its_mde(models):
    res = _run("thm3.2-monte-carlo", models)
    case = _argmin_case(res)
    mde = case.detail["mde"]
    if "KL route" in case.label:  # the closed-form L2 KL terms, off by mde in their mean
        wrong = {"l2_kl_terms": lambda *a, **k: tuple(t + mde for t in variants.l2_kl_terms(*a, **k))}
    else:  # the Monte Carlo L_clip off by mde
        wrong = {"clip_loss_mc": _shifted(montecarlo.population_clip_loss_mc, mde)}
    assert not _run("thm3.2-monte-carlo", models, **wrong).passed


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_n1_monte_carlo_catches_an_error_of_its_mde(models, sign):
    mde = _run("n1-monte-carlo", models).mde
    wrong = lambda A, C, n: gaussian.population_clip_loss(A, C, n) + sign * mde  # noqa: E731
    assert not _run("n1-monte-carlo", models, clip_loss=wrong).passed


def test_n2_monte_carlo_catches_a_downward_error_of_its_mde(models):
    mde = _run("n2-monte-carlo", models).mde
    wrong = _shifted(montecarlo.expected_batch_loss_mc, -mde)
    assert not _run("n2-monte-carlo", models, batch_loss_mc=wrong).passed


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_n1_control_variate_catches_an_error_of_its_mde(models, sign):
    res = _run("n1-monte-carlo-cv", models)
    case = _argmin_case(res)
    N = int(case.label.rsplit("N=", 1)[1])
    shift = sign * case.detail["mde"] * N  # b/N off by the MDE in the most sensitive case
    wrong = lambda A, C, n: gaussian.batch_loss_bias(A, C, n) + shift  # noqa: E731
    assert not _run("n1-monte-carlo-cv", models, bias=wrong).passed


def test_n1_control_variate_sees_the_sign_of_b_where_the_plain_check_may_not(models):
    flipped = lambda A, C, n: -gaussian.batch_loss_bias(A, C, n)  # noqa: E731
    res = _run("n1-monte-carlo-cv", models, bias=flipped)
    assert not res.passed
    assert all(c.detail["sign_margin"] > 1 for c in _run("n1-monte-carlo-cv", models).cases
               if c.label.endswith("N=8"))
