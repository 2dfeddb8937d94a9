"""Tests of proofs_checks.fingerprint: the diagnosis on maps with known kinds (synthetic
intervals), argument validation, the command line, and two small end-to-end runs on losses
whose map is known exactly (MATH.md §4.4)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy.special import logsumexp

from numerics._validation import InvalidInputError
from proofs_checks import fingerprint
from proofs_checks.spectral_fingerprint import KINDS, diagnose
from proofs_checks.fingerprint_cli import main as cli_main
from proofs_checks.fingerprint_result import PairModelResult

GRID = np.array([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85])


def _measured(truth, se, seed=0, dof=6):
    """A measured map: truth plus noise of standard error ``se``, t intervals on ``dof``."""
    from scipy.stats import t

    rng = np.random.default_rng(seed)
    se = np.full(GRID.size, se)
    g = truth + se * rng.standard_normal(GRID.size)
    q = t.ppf(0.975, dof)
    return g, se, np.full(GRID.size, dof), np.column_stack([g - q * se, g + q * se])


def _diag(truth, se=0.002, seed=0, drifting=None, pairs=()):
    g, se, dof, ci = _measured(truth, se, seed)
    return diagnose(GRID, g, se, dof, ci, drifting or [False] * GRID.size, list(pairs))


@pytest.mark.parametrize("seed", range(5))
def test_diagnosis_of_known_maps(seed):
    assert _diag(GRID, seed=seed)["kind"] == "clip"
    d = _diag(0.9 * GRID, seed=seed)
    assert d["kind"] == "proportional" and d["factor"]["ci"][0] < 0.9 < d["factor"]["ci"][1]
    d = _diag(np.maximum(GRID - 0.3, 0), seed=seed)
    assert d["kind"] == "shifted" and d["shift"]["threshold"] == pytest.approx(0.3, abs=0.02)
    siglip = (np.sqrt(1 + 4 * GRID**2) - 1) / (2 * GRID)
    assert _diag(siglip, seed=seed)["kind"] == "nonlinear"
    assert _diag(0 * GRID, seed=seed)["kind"] == "collapse"
    assert _diag(1.1 * GRID, seed=seed, drifting=[False] * 8 + [True])["kind"] == "drift"
    g, se, dof, ci = _measured(0 * GRID, 0.002, seed)  # 0 in the limit, but shrinking like 1/N
    assert diagnose(GRID, g, se, dof, ci, [False] * 9, [], 0.95, [True] * 9)["kind"] == "drift"
    # too noisy to tell CLIP from a 5 % change: undetermined, never a wrong kind
    assert _diag(GRID, se=0.05, seed=seed)["kind"] == "undetermined"
    assert set(KINDS) >= {"clip", "proportional", "shifted", "nonlinear", "collapse", "mixing", "drift",
                          "undetermined"}


def _pair(g, mixing_p=0.5, mixing=0.0, kept=2, expected=2, interaction_z=(0.0, 0.0)):
    return PairModelResult("p", [0.75, 0.35], list(g), [[x - 0.01, x + 0.01] for x in g],
                           [[0.0, -0.01, 0.01]] * 2, list(interaction_z), mixing, mixing_p, 0.0, kept,
                           2 - kept, expected)


def test_diagnosis_on_multi_pair_models():
    assert _diag(GRID, pairs=[_pair([0.75, 0.35])])["kind"] == "clip"
    assert _diag(GRID, pairs=[_pair([0.75, 0.35], mixing_p=1e-6, mixing=0.3)])["kind"] == "mixing"
    d = _diag(GRID, pairs=[_pair([0.75, 0.0], kept=1, expected=2)])
    assert d["kind"] == "collapse" and d["rank"] == 1
    assert _diag(GRID, pairs=[_pair([0.75, 0.30], interaction_z=(0.0, -8.0))])["kind"] == "undetermined"
    assert _diag(GRID, pairs=[_pair([0.75, 0.35])])["separable"]


def _clip(F):
    return float(-np.mean(np.diag(F)) + 0.5 * np.mean(logsumexp(F, axis=1)) + 0.5 * np.mean(logsumexp(F, axis=0)))


def _aligned(kappa):
    """CLIP with the alignment term weighted kappa: population minimiser B = kappa K (MATH.md §4.4)."""
    def loss(F):
        return _clip(F) + (1.0 - kappa) * float(np.mean(np.diag(F)))

    def grad(F):
        N = F.shape[0]
        P = np.exp(F - logsumexp(F, axis=1, keepdims=True))
        Q = np.exp(F - logsumexp(F, axis=0, keepdims=True))
        return (0.5 * (P + Q) - kappa * np.eye(N)) / N

    loss.grad = grad
    return loss


@pytest.mark.parametrize("kwargs, name", [
    ({"similarity": "cosine"}, "similarity"),
    ({"sigmas": [0.5, 0.3, 0.7]}, "sigmas"),
    ({"sigmas": [0.1, 0.5, 1.0]}, "sigmas"),
    ({"sigmas": [0.1, 0.5]}, "sigmas"),
    ({"replicates": 3}, "replicates"),
    ({"level": 1.5}, "level"),
    ({"closed_form": 3.0}, "closed_form"),
    ({"pair_sigmas": [(0.5, 0.5)]}, "pair_sigmas"),
    ({"sizes": [64]}, "sizes"),
])
def test_bad_arguments_are_refused_by_name(kwargs, name):
    with pytest.raises(InvalidInputError, match=name):
        fingerprint(_aligned(0.9), **kwargs)


def test_loss_blind_to_norms_is_refused():
    def normalised(za, zb):
        za = za / np.linalg.norm(za, axis=1, keepdims=True)
        zb = zb / np.linalg.norm(zb, axis=1, keepdims=True)
        return _clip(10 * za @ zb.T)

    with pytest.raises(InvalidInputError, match="norm"):
        fingerprint(normalised, inputs="embeddings")


def test_end_to_end_alignment_weighted_is_proportional():
    t0 = time.perf_counter()
    kappa = 0.8
    res = fingerprint(_aligned(kappa), sigmas=[0.25, 0.45, 0.65], pair_sigmas=(), sizes=[64, 128, 256],
                      replicates=6, closed_form=lambda s: kappa * s)
    assert res.kind == "proportional"
    assert res.factor["ci"][0] <= kappa <= res.factor["ci"][1]
    assert res.g_ci.shape == (3, 2)
    assert np.all((res.g_ci[:, 0] <= kappa * res.sigma) & (kappa * res.sigma <= res.g_ci[:, 1]))
    d = res.to_dict()
    for key in ("sigma", "g", "g_ci", "kind", "factor", "rank", "mixing", "separable", "diagnosis"):
        assert key in d
    json.dumps(d)
    assert "proportional" in res.summary() and res.closed_form["covered"]
    assert time.perf_counter() - t0 < 60  # about 5 s on 2 idle cores


def test_cli_end_to_end_and_usage_errors(tmp_path, capsys):
    target = tmp_path / "myloss.py"
    target.write_text("import numpy as np\nfrom scipy.special import logsumexp\n"
                      "def one_directional(F):\n"
                      "    return float(-np.mean(np.diag(F)) + np.mean(logsumexp(F, axis=1)))\n"
                      "def _g(F):\n"
                      "    P = np.exp(F - logsumexp(F, axis=1, keepdims=True))\n"
                      "    return (P - np.eye(F.shape[0])) / F.shape[0]\n"
                      "one_directional.grad = _g\n")
    out = tmp_path / "fp.json"
    rep = tmp_path / "rep"
    code = cli_main([f"{target}:one_directional", "--sigmas", "0.3", "0.5", "0.7", "--no-pairs", "--sizes",
                     "64", "128", "256", "--replicates", "6", "--json", str(out), "--report", str(rep), "--quiet"])
    assert code == 0
    d = json.loads(out.read_text())
    assert d["kind"] in KINDS and len(d["g_ci"]) == 3
    # one-directional InfoNCE has CLIP's map (Proposition G2): every interval covers sigma
    assert all(lo <= s <= hi for s, (lo, hi) in zip(d["sigma"], d["g_ci"]))
    assert (rep / "report.md").exists() and (rep / "fingerprint.png").exists()
    capsys.readouterr()
    assert cli_main([f"{target}:one_directional", "--similarity", "cosine", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "similarity" in err and len(err.splitlines()) == 1
    for argv in ([f"{target}:missing"], [f"{target}:one_directional", "--level", "x"],
                 [f"{target}:one_directional", "--replicates", "2", "--quiet"]):
        assert cli_main(argv) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1




def test_a_reparametrised_temperature_is_fingerprinted_modulo_a_common_factor():
    """CLIP with a learned temperature softplus(r) + 0.01 (known only up to a constant factor,
    numerics.user_loss): its map is CLIP's up to that factor, and the result says so."""
    import math

    def softplus_clip(F, r):
        t = math.log1p(math.exp(-abs(r))) + max(r, 0.0) + 0.01
        G = F / t
        d = np.diag(G)
        return float(np.mean(logsumexp(G, axis=1) - d) + np.mean(logsumexp(G, axis=0) - d)) / 2

    def grad(F, r):
        t = math.log1p(math.exp(-abs(r))) + max(r, 0.0) + 0.01
        G = F / t
        P = np.exp(G - logsumexp(G, axis=1, keepdims=True))
        Q = np.exp(G - logsumexp(G, axis=0, keepdims=True))
        return (0.5 * (P + Q) - np.eye(F.shape[0])) / (F.shape[0] * t)

    res = fingerprint(softplus_clip, params={"r": 0.5}, grad=grad, sigmas=(0.2, 0.4, 0.6), pair_sigmas=(),
                      replicates=4, seed=0)
    assert res.kind == "clip", res.summary()
    assert any("known up to a common factor" in n for n in res.notes)


def test_a_stop_gradient_loss_is_refused_with_the_reason():
    """A loss whose torch gradient is not its value's (weights under detach()) has no value
    minimiser the fingerprint could read; it says so and what to run instead."""
    torch = pytest.importorskip("torch", reason="torch is an optional extra (pip install '.[torch]'); "
                                               ".ci/run installs it")

    def detached(F):
        p = torch.softmax(F, dim=1).detach()
        return -torch.diagonal(F).mean() + (p * F).sum() / F.shape[0]

    with pytest.raises(Exception, match="objective='training-field'"):
        fingerprint(detached, backend="torch", sigmas=(0.2, 0.4, 0.6), pair_sigmas=(), replicates=4)
