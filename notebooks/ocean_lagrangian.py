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
# # Lagrangian data assimilation: from drifter tracks to the flow
#
# MATH.md §5, §6.  The Eulerian state $v$ is the coefficient vector of a streamfunction with a
# few Fourier modes and Gaussian coefficients; the flow it defines is steady and incompressible.
# Drifters released at known positions are advected with RK4 and their positions observed with
# noise: those observations are $u$.  The task is to reconstruct the velocity field from the
# drifters.
#
# Three reconstructions of the conditional mean $E[v \mid u]$ are compared on held-out flows:
#
# 1. **contrastive** — CLIP (cosine, $\lambda = \tfrac12$) with small perceptron encoders, then
#    the model conditional $\nu_{v|u} \propto e^{f(u, v)}\mu_v$ estimated by the self-normalised
#    importance-weighted mean over a bank of prior draws (MATH.md §5);
# 2. **contrastive_l2** — the L2 generative variant (MATH.md §4.2): one-sided on $v|u$
#    ($\lambda = 0$), $f = -|g_u(u) - G_v v|^2 / 2\tau$ with a linear $g_v$, whose model
#    conditional under the Gaussian prior is Gaussian in closed form,
#    $\nu_{v|u} = N(\Sigma_v G_v^T g_u(u)/\tau, \Sigma_v)$, $\Sigma_v = (C_{vv}^{-1} + G_v^TG_v/\tau)^{-1}$;
# 3. baselines: the **prior** mean, and **gaussian_regression**, the best linear (Kalman-type,
#    ensemble-covariance) estimate $\bar v + \hat C_{vu}\hat C_{uu}^{-1}(u - \bar u)$ fitted on the
#    same training pairs.
#
# The score is the RMSE of the reconstructed velocity on a grid against the true velocity.
#
# Run as a script: `python notebooks/ocean_lagrangian.py [--quick] [--json PATH] [--outdir DIR]`;
# as a notebook the same options come from the environment variable `NOTEBOOK_ARGS`.

# %%
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

import _common as common
import _ocean as ocean
from numerics.importance import self_normalised_moments

RUN = common.setup("ocean_lagrangian", "Lagrangian data-assimilation experiment (MATH.md §5, §6)")
QUICK, SEED = RUN.quick, RUN.seed

# %% [markdown]
# ## The synthetic ocean

# %%
WV = ocean.mode_wavevectors(1)  # 4 modes, 8 coefficients
STD = ocean.prior_std(WV, rms_speed=1.0)
N_V = STD.shape[0]
STARTS = np.array([[x, y] for y in (np.pi / 2, 3 * np.pi / 2) for x in (np.pi / 3, np.pi, 5 * np.pi / 3)])
DT, N_STEPS, EVERY = 0.05, 40, 8  # observe every 0.4 time units up to t = 2
NOISE = 0.1  # position noise, in units of the 2*pi cell
N_TRAIN = 4000 if QUICK else 20000
N_TEST = 500 if QUICK else 2000
N_BANK = 4000 if QUICK else 20000

rng = np.random.default_rng([SEED, 0])


def simulate(n):
    coef = ocean.sample_coefficients(rng, n, STD)
    tracks = ocean.advect(coef, STARTS, WV, dt=DT, n_steps=N_STEPS, every=EVERY)
    return coef, tracks, ocean.observe(tracks, NOISE, rng)


c_train, _, u_train = simulate(N_TRAIN)
c_test, tracks_test, u_test = simulate(N_TEST)
c_bank = ocean.sample_coefficients(rng, N_BANK, STD)
N_U = u_train.shape[1]
common.progress(f"simulated {N_TRAIN} + {N_TEST} flows, u of dimension {N_U} ({RUN.elapsed():.1f}s)")

# encoders see standardised observations and whitened coefficients (prior N(0, I))
U_MEAN, U_SCALE = u_train.mean(0), u_train.std(0)
xu_train, xu_test = (u_train - U_MEAN) / U_SCALE, (u_test - U_MEAN) / U_SCALE
w_train, w_test, w_bank = c_train / STD, c_test / STD, c_bank / STD

GX = np.linspace(0, 2 * np.pi, 32, endpoint=False)
GRID_X, GRID_Y = np.meshgrid(GX, GX)
PHI = ocean.velocity_basis(GRID_X, GRID_Y, WV).reshape(-1, N_V)  # velocity = PHI @ coef


def velocity_rmse(c_hat, c_true):
    """RMSE over flows, grid points and both velocity components."""
    return float(np.sqrt(np.mean(((c_hat - c_true) @ PHI.T) ** 2)))


# %% [markdown]
# Each training pair is a flow (its coefficients, $v$) and the noisy drifter positions it produces
# ($u$); the bank is a separate set of prior draws of $v$ for the importance-weighted estimates.
#
# ## Baselines: prior mean and linear-Gaussian regression

# %%
estimates = {"prior": np.zeros_like(c_test)}
X = np.hstack([u_train, np.ones((N_TRAIN, 1))])
coef_reg, *_ = np.linalg.lstsq(X, c_train, rcond=None)
estimates["gaussian_regression"] = np.hstack([u_test, np.ones((N_TEST, 1))]) @ coef_reg

# %% [markdown]
# The prior mean is what an estimate knows without the drifters; the regression is the best linear
# use of them, the reference a non-linear method has to beat.
#
# ## Contrastive encoders (CLIP, cosine)
#
# Mini-batch Adam on the symmetric loss $L_B$ with the kernels' gradients.  The temperature is
# fixed at 0.1: the cosine logit spans $2/\tau$ nats, and an informative posterior over the flow
# needs likelihood ratios of tens of nats.

# %%
N_E, TAU, BATCH = 16, 0.1, 256
STEPS = 1500 if QUICK else 6000
rng_fit = np.random.default_rng([SEED, 1])
enc_u = common.Encoder(rng_fit, N_U, N_E, hidden=128)
enc_v = common.Encoder(rng_fit, N_V, N_E, hidden=64)
hist_clip = common.train(
    (enc_u, enc_v, xu_train, w_train),
    lambda za, zb: common.clip_loss_and_grad(za, zb, TAU, "cosine"),
    N_TRAIN, steps=STEPS, lr=3e-3, rng=rng_fit, batch_size=BATCH, label="CLIP (cosine)",
)
F = common.logits(enc_u(xu_test), enc_v(w_bank), TAU, "cosine")
bank = self_normalised_moments(F, w_bank)
w_hat, ess = bank.means, bank.ess
estimates["contrastive"] = w_hat * STD
common.progress(f"CLIP trained; bank ESS median {np.median(ess):.1f} ({RUN.elapsed():.1f}s)")

# %% [markdown]
# The median effective bank size says how many bank flows carry the weights of a typical query: a
# value near 1 would mean the bank is too small for the model conditional.
#
# ## L2 generative variant (one-sided on v|u)

# %%
TAU_L2 = 1.0  # the encoder scales absorb the temperature of the L2 logit
l2_u = common.Encoder(rng_fit, N_U, N_E, hidden=128)
l2_v = common.Encoder(rng_fit, N_V, N_E)  # linear: the Gaussian conditional is then exact
hist_l2 = common.train(
    (l2_u, l2_v, xu_train, w_train),
    lambda za, zb: common.one_sided_loss_and_grad(za, zb, TAU_L2, "l2", conditional="v|u"),
    N_TRAIN, steps=STEPS, lr=3e-3, rng=rng_fit, batch_size=BATCH, label="L2 one-sided (v|u)",
)
G_v = l2_v.matrix  # (n_e, n_v): g_v(w) = G_v w, as in MATH.md §4.2
Sigma = np.linalg.inv(np.eye(N_V) + G_v.T @ G_v / TAU_L2)  # prior of w is N(0, I)
w_l2 = l2_u(xu_test) @ G_v / TAU_L2 @ Sigma  # rows of Sigma G_v^T g_u(u) / tau (Sigma is symmetric)
estimates["contrastive_l2"] = w_l2 * STD
bank_l2 = self_normalised_moments(common.logits(l2_u(xu_test), l2_v(w_bank), TAU_L2, "l2"), w_bank)
w_l2_bank, ess_l2 = bank_l2.means, bank_l2.ess
estimates["contrastive_l2_bank"] = w_l2_bank * STD
common.progress(f"L2 variant trained ({RUN.elapsed():.1f}s)")

# %% [markdown]
# With a linear $g_v$ and the Gaussian prior the model conditional of the L2 variant is Gaussian in
# closed form (MATH.md §4.2), so its mean needs no bank; the bank estimate of the same model is
# kept as a check of the importance weighting.
#
# ## Scores

# %%
rmse = {name: velocity_rmse(est, c_test) for name, est in estimates.items()}
for name, value in rmse.items():
    print(f"velocity RMSE {name:22s} {value:.4f}  ({value / rmse['prior']:.3f} x prior)")

# %% [markdown]
# Velocity RMSE on the grid over the held-out flows, and its ratio to the prior mean's: below 1 the
# drifters were used, below the regression's ratio they were used better than linearly.
#
# ## Figure: true and reconstructed flows with the drifter tracks

# %%
k = 0
ext = np.linspace(-1.5, 2 * np.pi + 1.5, 80)
EX, EY = np.meshgrid(ext, ext)
panels = [("truth", c_test[k]), ("contrastive (CLIP bank mean)", estimates["contrastive"][k]),
          ("L2 generative variant", estimates["contrastive_l2"][k]),
          ("linear-Gaussian regression", estimates["gaussian_regression"][k])]
psis = [ocean.streamfunction(c, EX, EY, WV)[0] for _, c in panels]
lim = max(np.abs(p).max() for p in psis)
fig, axes = plt.subplots(1, 4, figsize=(14, 4.0), sharex=True, sharey=True)
obs = u_test[k].reshape(len(STARTS), -1, 2)
for ax, (title, c), psi in zip(axes, panels, psis):
    ax.contourf(EX, EY, psi, levels=np.linspace(-lim, lim, 15), cmap="RdBu_r")
    ax.contour(EX, EY, psi, levels=np.linspace(-lim, lim, 15), colors="k", linewidths=0.3)
    qs = slice(None, None, 9)
    vel = ocean.velocity(c, EX[qs, qs], EY[qs, qs], WV)[0]
    ax.quiver(EX[qs, qs], EY[qs, qs], vel[0], vel[1], color="0.2", scale=25)
    for d in range(len(STARTS)):
        ax.plot(tracks_test[k, d, :, 0], tracks_test[k, d, :, 1], "-", color="gold", lw=1.5)
        ax.plot(obs[d, :, 0], obs[d, :, 1], "o", color="k", ms=2.5)
        ax.plot(*STARTS[d], "^", color="gold", ms=5, mec="k")
    err = velocity_rmse(c[None], c_test[k][None])
    ax.set_title(title if title == "truth" else f"{title}\nRMSE {err:.3f}", fontsize=9)
    ax.set_aspect("equal")
axes[0].set_ylabel("y")
for ax in axes:
    ax.set_xlabel("x")
fig.suptitle("Streamfunction (colour), velocity (arrows), drifter tracks (gold) and observations (dots)", fontsize=10, y=1.0)
fig.tight_layout()
fig_path = common.show_figure(fig, RUN.outdir, "ocean_lagrangian_fields", dpi=90)
print("figure:", fig_path)

fig, ax = plt.subplots(figsize=(6, 3.5))
names = ["prior", "gaussian_regression", "contrastive", "contrastive_l2", "contrastive_l2_bank"]
ax.bar(range(len(names)), [rmse[n] for n in names], color=["0.6", "C0", "C1", "C2", "C2"])
ax.axhline(0.8 * rmse["prior"], color="k", ls=":", label="0.8 x prior")
ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
ax.set_ylabel("velocity RMSE on the grid")
ax.legend(fontsize=8)
fig.tight_layout()
bar_path = common.show_figure(fig, RUN.outdir, "ocean_lagrangian_rmse")
print("figure:", bar_path)

# %% [markdown]
# One held-out flow with its drifters, and the reconstructions: the closer the streamfunction
# pattern is to the truth, the lower the RMSE in the panel title.  The bars repeat the scores over
# all held-out flows.
#
# ## Metrics

# %%
metrics = {
    "experiment": "ocean_lagrangian",
    "quick": QUICK,
    "seed": SEED,
    "n_train": N_TRAIN,
    "n_test": N_TEST,
    "n_bank": N_BANK,
    "observation_dim": N_U,
    "rmse": rmse,
    "rmse_ratio_to_prior": {k_: v_ / rmse["prior"] for k_, v_ in rmse.items()},
    "bank_ess_median": {"contrastive": float(np.median(ess)), "contrastive_l2_bank": float(np.median(ess_l2))},
    "final_loss": {"clip": float(np.mean(hist_clip[-50:])), "l2_one_sided": float(np.mean(hist_l2[-50:]))},
    "seconds": RUN.elapsed(),
}
print("metrics:", common.write_json(RUN.json_path, metrics))
