# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Synthetic Gaussians: contrastive encoders recover the canonical subspace
#
# MATH.md §4.1 and §6.  Two views of a shared latent variable,
#
# $$u = W_u z + \varepsilon_u,\qquad v = W_v z + \varepsilon_v,\qquad z \sim N(0, I_k),$$
#
# with $W_u = Q_u \operatorname{diag}(a)$, $W_v = Q_v \operatorname{diag}(b)$ built from known
# rotations $Q_u, Q_v$ and isotropic noise.  The joint law is $N(0, C)$ with
# $C_{uu} = W_uW_u^T + s^2 I$, $C_{uv} = W_u W_v^T$, so the canonical correlations and directions
# are known (Proposition G1): the encoders of a rank-$k$ minimiser span
# $\operatorname{range}(G_u^T) = C_{uu}^{-1/2}\operatorname{span}(U_k)$, which for isotropic noise is
# $\operatorname{range}(W_u)$, the latent rotation.
#
# We draw $N$ pairs, train linear encoders with the finite-sample **cosine** CLIP loss $L_N$
# (gradients from the kernels, Adam, full batch), and measure the principal angles between the
# learned and the true canonical subspaces as $N$ grows.  Theorem 2.8 says the minimisers of
# $L_N$ converge at rate $O(N^{-1/2})$; we fit the slope on a log-log plot.  For the bilinear
# similarity the population minimiser is known in closed form (Proposition G1) and we hold a
# trained bilinear model against it.
#
# Run as a script: `python notebooks/synthetic_gaussian.py [--quick] [--json PATH] [--outdir DIR]`.

# %%
from __future__ import annotations

import sys
import time
from pathlib import Path

try:
    _HERE = Path(__file__).resolve().parent
except NameError:  # inside Jupyter the working directory is notebooks/
    _HERE = Path.cwd()
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.linalg import subspace_angles

import _common as common
from numerics import gaussian
from numerics.models import random_orthogonal

ARGS = common.parse_args("Synthetic Gaussian experiment (MATH.md §4.1, §6)")
QUICK = ARGS.quick
OUTDIR = ARGS.outdir
JSON_PATH = ARGS.json or OUTDIR / "synthetic_gaussian.json"
SEED = ARGS.seed
T0 = time.perf_counter()

# %% [markdown]
# ## The latent model and its canonical structure

# %%
N_U, N_V, K = 8, 6, 2
A_SCALES, B_SCALES, NOISE = np.array([2.0, 1.0]), np.array([1.5, 1.0]), 1.0
# The cosine logit ranges over [-1/tau, 1/tau]; with a mutual information of about half a nat
# here, tau = 1 keeps the logits on the scale of the pointwise mutual information.
TAU = 1.0
N_E = K

rng_model = np.random.default_rng([SEED, 0])
Q_u, Q_v = random_orthogonal(rng_model, N_U), random_orthogonal(rng_model, N_V)
W_u, W_v = Q_u[:, :K] * A_SCALES, Q_v[:, :K] * B_SCALES
C_uu = W_u @ W_u.T + NOISE**2 * np.eye(N_U)
C_vv = W_v @ W_v.T + NOISE**2 * np.eye(N_V)
C_uv = W_u @ W_v.T
COV = np.block([[C_uu, C_uv], [C_uv.T, C_vv]])

sigma = gaussian.canonical_correlations(COV, N_U)
U, _, Vt = gaussian.canonical_directions(COV, N_U)


def _inv_sqrt(S):
    w, Q = np.linalg.eigh(S)
    return (Q / np.sqrt(w)) @ Q.T


# Proposition G1: the encoders' row spaces are C^{-1/2} times the top canonical directions
TRUE_U = _inv_sqrt(C_uu) @ U[:, :N_E]
TRUE_V = _inv_sqrt(C_vv) @ Vt[:N_E].T
latent_check = max(subspace_angles(TRUE_U, W_u).max(), subspace_angles(TRUE_V, W_v).max())
print("canonical correlations:", np.round(sigma, 4))
print(f"angle between the canonical subspaces and range(W): {latent_check:.2e} rad")


def sample(rng, n):
    z = rng.normal(size=(n, K))
    u = z @ W_u.T + NOISE * rng.normal(size=(n, N_U))
    v = z @ W_v.T + NOISE * rng.normal(size=(n, N_V))
    return u, v


def max_angle(enc_u, enc_v):
    """Largest principal angle of the learned encoders against the truth, over both views."""
    return max(subspace_angles(enc_u.matrix, TRUE_U).max(), subspace_angles(enc_v.matrix, TRUE_V).max())


# %% [markdown]
# ## Cosine CLIP over a range of N
#
# Full-batch Adam on $L_N$ with a cosine-decayed step; each $N$ is repeated with independent data,
# each data set is fitted from several starts and the fit with the lowest $L_N$ is kept (the cosine
# loss has local minima), and the mean of the largest principal angle is reported.

# %%
NS = [100, 200, 400, 800] if QUICK else [100, 200, 400, 800, 1600, 3200]
REPEATS = 3 if QUICK else 4
STEPS = 500 if QUICK else 600
# On one data set, cosine fits from different starts end at different losses (local minima of
# L_N; seen as spreads of a few hundredths): the best of STARTS fits stands for the minimiser.
STARTS = 2
BILINEAR_STEPS = 200  # the bilinear fits settle within 200 steps (loss equal to 1e-12 at 1000)
LR = 0.05


def fit(u, v, rng, similarity, tau, steps=STEPS, label=""):
    enc_u = common.Encoder(rng, N_U, N_E)
    enc_v = common.Encoder(rng, N_V, N_E)
    objective = lambda za, zb: common.clip_loss_and_grad(za, zb, tau, similarity)  # noqa: E731
    history = common.train((enc_u, enc_v, u, v), objective, u.shape[0], steps=steps, lr=LR, label=label)
    return enc_u, enc_v, history


angles = {n: [] for n in NS}
bilinear_err = {n: [] for n in NS}
bilinear_gap = {n: [] for n in NS}
A_STAR = gaussian.lowrank_minimizer(COV, N_U, N_E)
L_STAR = gaussian.lowrank_minimum(COV, N_U, N_E)
final_grad, start_spread = [], []
for n in NS:
    for rep in range(REPEATS):
        rng = np.random.default_rng([SEED, 1, n, rep])
        u, v = sample(rng, n)
        fits = [fit(u, v, rng, "cosine", TAU) for _ in range(STARTS)]
        finals = [h[-1] for *_, h in fits]
        start_spread.append(max(finals) - min(finals))
        enc_u, enc_v, hist = fits[int(np.argmin(finals))]
        angles[n].append(max_angle(enc_u, enc_v))
        _, ga, gb = common.clip_loss_and_grad(enc_u(u), enc_v(v), TAU, "cosine")
        # |grad| * |G| does not change when an encoder is rescaled, to which cosine is blind
        final_grad.append(max(float(np.linalg.norm(enc_u.backward(ga)[0]) * np.linalg.norm(enc_u.matrix)),
                              float(np.linalg.norm(enc_v.backward(gb)[0]) * np.linalg.norm(enc_v.matrix))))
        # the bilinear similarity on the same data: A = G_u G_v^T / tau, here tau = 1
        bu, bv, _ = fit(u, v, rng, "dot", 1.0, steps=BILINEAR_STEPS)
        A_hat = bu.matrix @ bv.matrix.T
        bilinear_err[n].append(np.linalg.norm(A_hat - A_STAR) / np.linalg.norm(A_STAR))
        bilinear_gap[n].append(gaussian.population_clip_loss(A_hat, COV, N_U) - L_STAR)
    common.progress(
        f"N={n}: cosine max angle {np.mean(angles[n]):.4f} rad, "
        f"bilinear |A-A*|/|A*| {np.mean(bilinear_err[n]):.4f} ({time.perf_counter() - T0:.0f}s)"
    )

mean_angle = np.array([np.mean(angles[n]) for n in NS])
slope, intercept = np.polyfit(np.log(NS), np.log(mean_angle), 1)
err_slope, err_intercept = np.polyfit(np.log(NS), np.log([np.mean(bilinear_err[n]) for n in NS]), 1)
print(f"fitted slope of log(max angle) against log N: {slope:.3f} (theory -0.5)")
print(f"fitted slope of log |A-A*|/|A*| against log N: {err_slope:.3f} (theory -0.5)")
print(f"largest scale-free final gradient |grad G| |G| (cosine fits): {max(final_grad):.2e}")
print(f"largest spread of final cosine losses across starts on one data set: {max(start_spread):.3e}")

# %% [markdown]
# ## Proposition G1: trained bilinear model against the closed form
#
# Two trainings of the bilinear model $f = u^T G_u G_v^T v$: on the population loss
# $L_{clip}(A) = -\operatorname{tr}(AC_{vu}) + \tfrac12\operatorname{tr}(AC_{vv}A^TC_{uu})$ with Adam
# on the factors (no SVD anywhere), which must reach the minimum $-\tfrac12\sum_{i\le k}\sigma_i^2$
# and the minimiser $A^*$; and on $N$ samples with the kernel (above), whose excess population loss
# should shrink like $1/N$ (quadratic in an $N^{-1/2}$ error).

# %%
rng = np.random.default_rng([SEED, 2])
G_u = rng.normal(size=(N_U, N_E)) * 0.3
G_v = rng.normal(size=(N_V, N_E)) * 0.3
opt = common.Adam([G_u, G_v], 0.05, total_steps=3000)
for _ in range(3000):
    gA = gaussian.population_clip_loss_grad(G_u @ G_v.T, COV, N_U)
    opt.step([gA @ G_v, gA.T @ G_u])
A_pop = G_u @ G_v.T
pop_gap = gaussian.population_clip_loss(A_pop, COV, N_U) - L_STAR
pop_err = np.linalg.norm(A_pop - A_STAR) / np.linalg.norm(A_STAR)
print(f"G1 minimum {L_STAR:.6f}; population-trained gap {pop_gap:.2e}, |A-A*|/|A*| {pop_err:.2e}")
gap_slope, _ = np.polyfit(np.log(NS), np.log(np.maximum([np.mean(bilinear_gap[n]) for n in NS], 1e-300)), 1)
print(f"sample-trained excess population loss slope against log N: {gap_slope:.3f} (theory -1)")

# %% [markdown]
# ## Figure

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
ax = axes[0]
for n in NS:
    ax.scatter([n] * len(angles[n]), angles[n], color="C0", alpha=0.35, s=12)
ax.loglog(NS, mean_angle, "o-", color="C0", label="cosine CLIP: max principal angle")
ax.loglog(NS, np.exp(intercept) * np.array(NS, float) ** slope, "--", color="C0", alpha=0.6,
          label=f"fit: slope {slope:.2f}")
ax.loglog(NS, [np.mean(bilinear_err[n]) for n in NS], "s-", color="C1", label=r"bilinear: $\|A-A^*\|/\|A^*\|$")
ref = mean_angle[0] * (np.array(NS, float) / NS[0]) ** -0.5
ax.loglog(NS, ref, ":", color="k", label=r"$N^{-1/2}$")
ax.set_xlabel("N (pairs)")
ax.set_ylabel("radians / relative error")
ax.set_title("Recovery of the canonical subspace")
ax.legend(fontsize=8)
ax = axes[1]
gaps = np.array([np.mean(bilinear_gap[n]) for n in NS])
ax.loglog(NS, gaps, "s-", color="C1", label="bilinear trained on N samples")
ax.loglog(NS, gaps[0] * NS[0] / np.array(NS, float), ":", color="k", label=r"$N^{-1}$")
ax.text(0.03, 0.05, f"trained on the population loss:\nexcess {pop_gap:.1e}, "
        + r"$\|A-A^*\|/\|A^*\|$" + f" = {pop_err:.1e}", transform=ax.transAxes, fontsize=8)
ax.set_xlabel("N (pairs)")
ax.set_ylabel(r"$L_{clip}(A) - (-\frac{1}{2}\sum_{i\leq k}\sigma_i^2)$")
ax.set_title("Bilinear model vs Proposition G1")
ax.legend(fontsize=8)
for ax in axes:
    ax.set_xticks(NS, [str(n) for n in NS])
    ax.minorticks_off()
fig.tight_layout()
fig_path = common.save_figure(fig, OUTDIR, "synthetic_gaussian_angles")
print("figure:", fig_path)

# %% [markdown]
# ## Metrics

# %%
metrics = {
    "experiment": "synthetic_gaussian",
    "quick": QUICK,
    "seed": SEED,
    "kernel_backend": common.KERNEL_BACKEND,
    "canonical_correlations": sigma,
    "tau": TAU,
    "max_principal_angle_by_n": {str(n): float(np.mean(angles[n])) for n in NS},
    "max_principal_angle_runs": {str(n): angles[n] for n in NS},
    "angle_slope": float(slope),
    "bilinear_relative_error_by_n": {str(n): float(np.mean(bilinear_err[n])) for n in NS},
    "bilinear_relative_error_slope": float(err_slope),
    "bilinear_excess_loss_by_n": {str(n): float(np.mean(bilinear_gap[n])) for n in NS},
    "bilinear_excess_loss_slope": float(gap_slope),
    "g1_minimum": L_STAR,
    "population_trained_gap": float(pop_gap),
    "population_trained_relative_error": float(pop_err),
    "max_final_scale_free_grad": max(final_grad),
    "max_start_loss_spread": max(start_spread),
    "seconds": time.perf_counter() - T0,
}
print("metrics:", common.write_json(JSON_PATH, metrics))
