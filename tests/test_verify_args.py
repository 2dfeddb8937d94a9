"""Every misuse of the verifier is a clear error, raised before any loss is called, and the
command line never exits 1 (REFUTED) for anything but a refutation.

- the whole argument space of ``verify_variant`` is swept with Hypothesis: one invalid
  argument among valid ones raises ``InvalidInputError`` naming that argument, and the loss
  is never called;
- the command line maps every usage, loading and infrastructure failure to exit 2 with
  one line on stderr and no traceback (an unreachable scheduler, an unwritable path, an
  internal error);
- the backend is chosen from the loss itself, never from what else the process imported;
- a loss whose output autograd cannot use (detached, non-scalar, another dtype) is told so.
"""
import math
import re
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from numerics import InvalidInputError
from numerics.loss_backends import frameworks_used_by, resolve_backend
from numerics.models import random_gaussian_model
from proofs_checks import verify_variant
from proofs_checks.verify_args import BACKEND_NAMES, CLAIMS, DIRECTIONS, INPUTS, SIMILARITY_NAMES
from proofs_checks.verify_cli import build_parser
from proofs_checks.verify_cli import main as verify_main

SKIP_TORCH = "torch is an optional extra (pip install '.[torch]'); .ci/run installs it"
SKIP_JAX = "jax is an optional extra (pip install '.[jax]'); .ci/run installs it"
SKIP_DASK = "dask is an optional extra (pip install '.[dask]'); .ci/run installs it"


class _Called(Exception):
    """Raised by the loss: reaching it means every argument was accepted."""


def _counting_loss():
    calls = []

    def loss(F):
        calls.append(1)
        raise _Called

    return loss, calls


def _clip(F):
    d = np.diag(F)
    return float(np.mean(logsumexp(F, axis=1) - d) + np.mean(logsumexp(F, axis=0) - d)) / 2


# --------------------------------------------------------------------------
# the API: each argument, invalid among valid ones
# --------------------------------------------------------------------------
MODEL = random_gaussian_model(np.random.default_rng(0), 2, 2, n_e=1)
finite = st.floats(allow_nan=False, allow_infinity=False)
non_numbers = st.one_of(st.text(max_size=3), st.none(), st.lists(st.integers(), max_size=2), st.just(True))

INVALID = {
    "claim": st.one_of(st.text(max_size=8).filter(lambda s: s not in CLAIMS), st.integers(), st.none()),
    "inputs": st.one_of(st.text(max_size=8).filter(lambda s: s not in INPUTS), st.integers()),
    "similarity": st.one_of(st.text(max_size=8).filter(lambda s: s not in SIMILARITY_NAMES), st.integers()),
    "backend": st.one_of(st.text(max_size=8).filter(lambda s: s not in BACKEND_NAMES), st.integers()),
    "direction": st.one_of(st.text(max_size=4).filter(lambda s: s not in DIRECTIONS), st.integers()),
    "seed": st.one_of(st.integers(max_value=-1), finite, st.text(max_size=3), st.just(True), st.none()),
    "replicates": st.one_of(st.integers(max_value=1), finite.filter(lambda x: x != int(x) or x < 2),
                            non_numbers),
    "n_models": st.one_of(st.integers(max_value=0), st.floats().filter(lambda x: not x.is_integer() if
                                                                        math.isfinite(x) else True),
                          non_numbers),
    "sizes": st.one_of(st.lists(st.integers(16, 512), max_size=1),
                       st.lists(st.integers(-10, 15), min_size=2, max_size=3),
                       st.lists(st.integers(16, 512), min_size=2, max_size=4).filter(
                           lambda s: any(a >= b for a, b in zip(s, s[1:]))),
                       st.lists(st.floats(16.5, 99.5), min_size=2, max_size=3),
                       st.text(max_size=3), st.integers()),
    "margin": st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), non_numbers.filter(
        lambda v: v is not None)),
    "budget": st.one_of(st.floats(max_value=-1e-300), st.just(math.nan), st.just(math.inf),
                        non_numbers),
    "workers": st.one_of(st.integers(max_value=0), st.floats(), non_numbers),
    "scheduler": st.one_of(st.integers(), st.lists(st.text(), max_size=1)),
    "connect_timeout": st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), non_numbers),
    "models": st.one_of(st.just([]), st.just(["model"]), st.integers(), st.just([MODEL, 3])),
    "progress": st.one_of(st.integers(), st.text(min_size=1, max_size=3)),
    "grad": st.one_of(st.integers(), st.text(min_size=1, max_size=3)),
    "name": st.one_of(st.integers(), st.lists(st.text(), max_size=1)),
    "control_scale": st.one_of(st.floats(max_value=0.0), st.just(math.nan), non_numbers.filter(
        lambda v: v is not None)),
    "params": st.one_of(st.integers(), st.just({"1bad": 1.0}), st.just({"s": math.nan}), st.just({"s": "x"})),
    "learn": st.one_of(st.just("s"), st.just(["not_a_param"]), st.just([3])),
}
VALID = {
    "claim": st.sampled_from(CLAIMS), "similarity": st.sampled_from(["dot", "l2", "bilinear"]),
    "direction": st.sampled_from(DIRECTIONS), "seed": st.integers(0, 2**32),
    "replicates": st.integers(2, 9), "n_models": st.integers(1, 4), "budget": st.floats(0, 100),
}


def _arg_named(message: str) -> str:
    return re.match(r"^([A-Za-z_]+)", message).group(1)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), which=st.sampled_from(sorted(INVALID)))
def test_one_invalid_argument_is_named_before_the_loss_is_called(data, which):
    kwargs = {k: data.draw(s, label=k) for k, s in VALID.items() if k != which}
    bad = data.draw(INVALID[which], label=which)
    kwargs[which] = bad
    if which == "control_scale":
        kwargs["similarity"] = "cosine"  # the only similarity where it means something
    if which == "learn":
        kwargs["params"] = {"s": 1.0}
    kwargs.setdefault("claim", "same-minimizers-as-clip")
    loss, calls = _counting_loss()
    with pytest.raises(InvalidInputError) as info:
        verify_variant(loss, **kwargs)
    assert not calls, f"the loss was called before {which}={bad!r} was refused"
    assert _arg_named(str(info.value)) in (which, "models" if which == "models" else which), str(info.value)
    assert "expected" in str(info.value)


@pytest.mark.parametrize("seed", [-1, -(2**40)])
def test_negative_seed_is_named(seed):
    loss, calls = _counting_loss()
    with pytest.raises(InvalidInputError, match=r"^seed=-\d+: expected an integer >= 0"):
        verify_variant(loss, claim="same-minimizers-as-clip", seed=seed)
    assert not calls


def test_control_scale_without_cosine_is_refused():
    loss, calls = _counting_loss()
    with pytest.raises(InvalidInputError, match="^control_scale=2.0: expected None unless similarity='cosine'"):
        verify_variant(loss, claim="same-minimizers-as-clip", control_scale=2.0)
    assert not calls


def test_valid_arguments_reach_the_loss():
    """The sweep above is not vacuous: with every argument valid, the loss is called."""
    loss, calls = _counting_loss()
    with pytest.raises(InvalidInputError, match="loss raised _Called"):
        verify_variant(loss, claim="same-minimizers-as-clip", similarity="bilinear", n_models=1, seed=3)
    assert calls


# --------------------------------------------------------------------------
# what a loss returns
# --------------------------------------------------------------------------
TINY = dict(claim="same-minimizers-as-clip", n_models=1, sizes=(16, 32), replicates=2, budget=0)


@pytest.mark.parametrize("loss, pattern", [
    (lambda F: np.ones(2), r"^loss=.*not an array of shape \(2,\): reduce it"),
    (lambda F: np.diag(F), r"^loss=.*not an array of shape \(\d+,\)"),
    (lambda F: complex(_clip(F), 0.0), r"^loss=.*real-valued"),
    (lambda F: "0.5", r"^loss=.*one real number"),
    (lambda F: None, r"^loss=.*one real number"),
    (lambda F: {"loss": 1.0}, r"^loss=.*one real number"),
])
def test_numpy_loss_output_is_explained(loss, pattern):
    with pytest.raises(InvalidInputError, match=pattern):
        verify_variant(loss, **TINY)


def _torch():
    return pytest.importorskip("torch", reason=SKIP_TORCH)


def test_torch_detached_loss_is_explained():
    torch = _torch()

    def detached(za, zb):
        F = (za @ zb.T).detach()
        return torch.logsumexp(F, 1).mean() - F.diagonal().mean()

    with pytest.raises(InvalidInputError, match=r"^loss=.*does not require grad.*detach"):
        verify_variant(detached, inputs="embeddings", backend="torch", **TINY)


@pytest.mark.parametrize("kind, pattern", [
    ("item", r"^loss=.*got float: .item\(\)"),
    ("vector", r"^loss=.*not a tensor of shape \(\d+,\): reduce it"),
    ("float32", r"^loss=.*float64 loss \(got torch.float32.*remove the cast"),
    ("integer", r"^loss=.*real floating-point loss \(got dtype torch.int64"),
])
def test_torch_output_that_autograd_cannot_use_is_explained(kind, pattern):
    torch = _torch()

    def loss(F):
        L = torch.logsumexp(F, 1) - F.diagonal()
        return {"item": lambda: L.mean().item(), "vector": lambda: L,
                "float32": lambda: L.mean().float(), "integer": lambda: L.mean().long()}[kind]()

    with pytest.raises(InvalidInputError, match=pattern):
        verify_variant(loss, backend="torch", **TINY)


@pytest.mark.parametrize("kind, pattern", [
    ("vector", r"^loss=.*not an array of shape"),
    ("float32", r"^loss=.*float64 loss \(got float32"),
])
def test_jax_output_that_autograd_cannot_use_is_explained(kind, pattern):
    jax = pytest.importorskip("jax", reason=SKIP_JAX)
    jnp = jax.numpy

    def loss(F):
        L = jax.scipy.special.logsumexp(F, axis=1) - jnp.diagonal(F)
        return L if kind == "vector" else L.mean().astype(jnp.float32)

    with pytest.raises(InvalidInputError, match=pattern):
        verify_variant(loss, backend="jax", **TINY)


# --------------------------------------------------------------------------
# the backend comes from the loss, never from sys.modules
# --------------------------------------------------------------------------
def _buggy_numpy_loss(F):
    return float(np.mean(F[:, 0])) + {}["missing"]


def test_a_numpy_loss_with_a_bug_reports_that_bug_whatever_is_imported():
    _torch()  # torch and (if present) jax sit in sys.modules: they must not be picked
    assert "torch" in sys.modules
    with pytest.raises(InvalidInputError, match=r"loss raised KeyError on numpy arrays: 'missing'"):
        resolve_backend(_buggy_numpy_loss, "auto", lambda: _buggy_numpy_loss(np.eye(4)))
    with pytest.raises(InvalidInputError, match="loss raised KeyError"):
        verify_variant(_buggy_numpy_loss, **TINY)


def test_a_torch_loss_is_recognised_by_its_own_code():
    torch = _torch()

    def torch_loss(F):
        return torch.logsumexp(F, 1).mean() - F.diagonal().mean()

    def helper(F):  # a framework reached through a nested function counts too
        def inner(G):
            return torch.logsumexp(G, 1).mean()
        return inner(F)

    assert frameworks_used_by(torch_loss) == {"torch"}
    assert frameworks_used_by(helper) == {"torch"}
    assert frameworks_used_by(_clip) == set()
    assert resolve_backend(torch_loss, "auto", lambda: torch_loss(np.eye(4))) == "torch"
    assert resolve_backend(_clip, "auto", lambda: _clip(np.eye(4))) == "numpy"
    assert resolve_backend(_clip, "torch", None) == "torch"  # explicit wins


# --------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loss_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    f = d / "myloss.py"
    f.write_text("import numpy as np\nfrom scipy.special import logsumexp\n"
                 "def clip(F):\n"
                 "    d = np.diag(F)\n"
                 "    return float(np.mean(logsumexp(F, axis=1) - d) + np.mean(logsumexp(F, axis=0) - d)) / 2\n"
                 "def internal(F):\n"
                 "    raise MemoryError('simulated')\n")
    return f


def _run_cli(argv, capsys):
    code = verify_main(argv)
    err = capsys.readouterr().err
    return code, err


def _one_line_error(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "error" in lines[0]


INVALID_OPTIONS = {
    "--replicates": st.sampled_from(["1", "0", "-3", "two", "2.5"]),
    "--models": st.sampled_from(["0", "-1", "x", "1.5"]),
    "--seed": st.sampled_from(["-1", "x", "0.5"]),
    "--budget": st.sampled_from(["-1", "nan", "inf", "x"]),
    "--margin": st.sampled_from(["0", "-0.1", "nan", "inf", "x"]),
    "--workers": st.sampled_from(["0", "-2", "x"]),
    "--connect-timeout": st.sampled_from(["0", "-1", "nan", "x"]),
    "--claim": st.sampled_from(["same-minimisers", "", "x"]),
    "--similarity": st.sampled_from(["cos", "L2", "euclid"]),
    "--backend": st.sampled_from(["tf", "Torch"]),
    "--inputs": st.sampled_from(["logit", "features"]),
    "--direction": st.sampled_from(["v->u", "uv"]),
    "--param": st.sampled_from(["s", "1s=2", "s=x", "=3"]),
    "--sizes": st.sampled_from(["64 32", "8 16", "64"]),
}


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), option=st.sampled_from(sorted(INVALID_OPTIONS)))
def test_cli_misuse_exits_2_with_one_line(data, option, loss_file, capsys):
    value = data.draw(INVALID_OPTIONS[option], label=option)
    argv = [f"{loss_file}:clip", "--quiet", "--budget", "0"]
    if option != "--claim":
        argv += ["--claim", "same-minimizers-as-clip"]
    argv += [option, *value.split()]
    code, err = _run_cli(argv, capsys)
    assert code == 2, (argv, err)
    _one_line_error(err)


def test_cli_accepts_every_name_the_api_accepts():
    parser = build_parser()
    choices = {a.dest: tuple(a.choices) for a in parser._actions if a.choices}
    assert set(choices["similarity"]) == set(SIMILARITY_NAMES) and "bilinear" in choices["similarity"]
    assert set(choices["backend"]) == set(BACKEND_NAMES)
    assert set(choices["claim"]) == set(CLAIMS) and set(choices["direction"]) == set(DIRECTIONS)
    assert set(choices["inputs"]) == set(INPUTS)


def test_cli_bilinear_synonym_runs(loss_file, capsys):
    code = verify_main([f"{loss_file}:clip", "--claim", "same-minimizers-as-clip", "--similarity", "bilinear",
                        "--models", "1", "--sizes", "32", "64", "--replicates", "2", "--budget", "0", "--quiet"])
    assert code in (0, 3)  # a verdict (CLIP itself cannot be refuted), not a usage error
    assert "(dot similarity)" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--json", "--report"])
def test_cli_unwritable_output_exits_2_before_any_work(option, loss_file, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    target = blocker / ("out.json" if option == "--json" else "report")  # under a file: cannot exist
    t0 = time.perf_counter()
    code, err = _run_cli([f"{loss_file}:clip", "--claim", "same-minimizers-as-clip", option, str(target)], capsys)
    assert code == 2
    _one_line_error(err)
    assert option in err
    assert time.perf_counter() - t0 < 5.0  # refused before any fit (a full run takes a minute)


def test_cli_internal_error_is_exit_2_never_1(loss_file, capsys):
    code, err = _run_cli([f"{loss_file}:internal", "--claim", "same-minimizers-as-clip", "--quiet"], capsys)
    assert code == 2
    _one_line_error(err)


def test_cli_unexpected_exception_is_exit_2(monkeypatch, loss_file, capsys):
    import proofs_checks.verify as verify

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(verify, "verify_variant", broken)
    code, err = _run_cli([f"{loss_file}:clip", "--claim", "same-minimizers-as-clip"], capsys)
    assert code == 2
    _one_line_error(err)
    assert "simulated bug" in err and "internal error" in err


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


def test_cli_unreachable_scheduler_exits_2_within_the_timeout(loss_file, capsys):
    pytest.importorskip("distributed", reason=SKIP_DASK)
    t0 = time.perf_counter()
    code, err = _run_cli([f"{loss_file}:clip", "--claim", "same-minimizers-as-clip", "--quiet",
                          "--scheduler", f"tcp://127.0.0.1:{_closed_port()}", "--connect-timeout", "2"], capsys)
    elapsed = time.perf_counter() - t0
    assert code == 2
    _one_line_error(err)
    assert "no Dask scheduler answered within 2 s" in err
    assert elapsed < 20.0, elapsed  # the bound is the timeout, not dask's default of 30 s


def test_cli_missing_dask_exits_2(monkeypatch, loss_file, capsys):
    import proofs_checks.parallel as parallel

    def missing():
        raise ImportError(parallel.DASK_HINT)

    monkeypatch.setattr(parallel, "_import_distributed", missing)
    code, err = _run_cli([f"{loss_file}:clip", "--claim", "same-minimizers-as-clip", "--workers", "2"], capsys)
    assert code == 2
    _one_line_error(err)
    assert 'pip install ".[dask]"' in err


# --------------------------------------------------------------------------
# an ill-posed claim is INCONCLUSIVE at once, with its reason and what to run instead
# --------------------------------------------------------------------------
def _normalised_clip(za, zb):
    """NT-Xent: CLIP on unit-normalised embeddings (temperature 0.5), written out by hand."""
    a = za / np.linalg.norm(za, axis=1, keepdims=True)
    b = zb / np.linalg.norm(zb, axis=1, keepdims=True)
    return _clip(a @ b.T / 0.5)


def _u_normalised_clip(za, zb):
    return _clip(za / np.linalg.norm(za, axis=1, keepdims=True) @ zb.T)


@pytest.mark.parametrize("loss, which", [(_normalised_clip, "u-encoder and v-encoder"),
                                         (_u_normalised_clip, "u-encoder outputs")])
@pytest.mark.parametrize("similarity", ["dot", "l2"])
def test_a_norm_blind_loss_is_ill_posed_without_any_fit(loss, which, similarity):
    t0 = time.perf_counter()
    r = verify_variant(loss, claim="same-minimizers-as-clip", inputs="embeddings", similarity=similarity)
    assert r.verdict == "inconclusive" and r.exit_code == 3
    assert r.reason == "ill-posed" and r.to_dict()["reason"] == "ill-posed"
    assert r.models == [] and r.rounds == 0
    assert which in r.advice and "similarity='cosine'" in r.advice
    assert "what to run instead" in r.summary()
    assert time.perf_counter() - t0 < 10.0  # no fit is run (a verification takes tens of seconds)


def test_a_norm_blind_loss_is_well_posed_under_cosine_and_for_subspaces():
    for kwargs in (dict(claim="same-minimizers-as-clip", similarity="cosine"),
                   dict(claim="same-subspace-as-clip", similarity="dot")):
        r = verify_variant(_normalised_clip, inputs="embeddings", n_models=1, sizes=(32, 64), replicates=2,
                           budget=0, **kwargs)
        assert r.models and r.reason != "ill-posed"


def test_a_decided_verdict_has_no_reason_and_an_open_one_says_why():
    kw = dict(claim="same-minimizers-as-clip", n_models=1, budget=0)
    wrong = verify_variant(lambda F: _clip(F) - np.mean(np.diag(F)), **kw)  # the kappa = 2 family: B = 2K
    assert wrong.verdict == "refuted" and wrong.reason is None
    assert wrong.to_dict()["reason"] is None
    # B = 1.05 K sits on the 5 % margin: two replicates can neither confirm nor refute it
    edge = verify_variant(lambda F: _clip(F) - 0.05 * np.mean(np.diag(F)), sizes=(32, 64), replicates=2, **kw)
    assert edge.verdict == "inconclusive" and edge.reason == "budget"


def test_cli_ill_posed_exits_3_with_the_reason(loss_file, tmp_path, capsys):
    f = tmp_path / "ntx.py"
    f.write_text("import numpy as np\nfrom scipy.special import logsumexp\n"
                 "def ntxent(za, zb):\n"
                 "    a = za / np.linalg.norm(za, axis=1, keepdims=True)\n"
                 "    b = zb / np.linalg.norm(zb, axis=1, keepdims=True)\n"
                 "    F = a @ b.T / 0.5\n"
                 "    d = np.diag(F)\n"
                 "    return float(np.mean(logsumexp(F, 1) - d) + np.mean(logsumexp(F, 0) - d)) / 2\n")
    out = tmp_path / "r.json"
    code = verify_main([f"{f}:ntxent", "--claim", "same-minimizers-as-clip", "--inputs", "embeddings",
                        "--json", str(out), "--quiet"])
    assert code == 3
    import json

    assert json.loads(out.read_text())["reason"] == "ill-posed"
    assert "(ill-posed)" in capsys.readouterr().out
