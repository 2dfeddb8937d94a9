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
# are known.  Linear encoders $g_u(u) = G_u u$, $g_v(v) = G_v v$ with $G_u \in R^{n_e\times n_u}$,
# $G_v \in R^{n_e\times n_v}$ and the bilinear similarity give $f(u, v) = u^TAv$,
# $A = G_u^TG_v/\tau$.  Proposition G1: the rank-$n_e$ minimiser of the population loss has
# $\operatorname{range}(G_u^T) = C_{uu}^{-1/2}\operatorname{span}(U_{n_e})$, which for isotropic
# noise is $\operatorname{range}(W_u)$, the latent subspace.
#
# We draw $N$ pairs, minimise the finite-sample CLIP loss $L_N$ (MATH.md §2) over the encoders
# **to convergence** — full-batch BFGS on the exact loss and gradient of the streaming kernel,
# several starts, the best kept — and measure the largest principal angle between the learned and
# the true subspaces as $N$ grows.  The minimisers of $L_N$ converge at rate $O(N^{-1/2})$
# (MATH.md §3), so the angle should fall like $N^{-1/2}$: a slope of $-1/2$ on log-log axes.
# The cosine similarity (CLIP's) is fitted the same way at small $N$, and we measure why its
# finite-sample minimum is harder to reach.
#
# Run as a script: `python notebooks/synthetic_gaussian.py [--quick] [--json PATH] [--outdir DIR]`;
# as a notebook the same options come from the environment variable `NOTEBOOK_ARGS`.

# %%
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from scipy.linalg import subspace_angles

import _common as common
from numerics import gaussian, optimize
from numerics.models import random_orthogonal

RUN = common.setup("synthetic_gaussian", "Synthetic Gaussian experiment (MATH.md §4.1, §6)")
QUICK, SEED = RUN.quick, RUN.seed

# %% [markdown]
# ## The latent model and its canonical structure

# %%
N_U, N_V, K = 8, 6, 2
A_SCALES, B_SCALES, NOISE = np.array([2.0, 1.0]), np.array([1.5, 1.0]), 1.0
N_E = K
TAU = 1.0  # the bilinear temperature only rescales A; tau = 1 keeps A's entries of order one

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


# Proposition G1: range(G_u^T) = C_uu^{-1/2} span(U_{n_e}), range(G_v^T) = C_vv^{-1/2} span(V_{n_e})
TRUE_U = _inv_sqrt(C_uu) @ U[:, :N_E]
TRUE_V = _inv_sqrt(C_vv) @ Vt[:N_E].T
latent_check = max(subspace_angles(TRUE_U, W_u).max(), subspace_angles(TRUE_V, W_v).max())
A_STAR = gaussian.lowrank_minimizer(COV, N_U, N_E)
L_STAR = gaussian.lowrank_minimum(COV, N_U, N_E)
print("canonical correlations:", np.round(sigma, 4))
print(f"angle between the canonical subspaces and range(W): {latent_check:.2e} rad")


def sample(rng, n):
    z = rng.normal(size=(n, K))
    u = z @ W_u.T + NOISE * rng.normal(size=(n, N_U))
    v = z @ W_v.T + NOISE * rng.normal(size=(n, N_V))
    return u, v


def max_angle(G_u, G_v):
    """Largest principal angle of range(G_u^T), range(G_v^T) against the truth, over both views."""
    return float(max(subspace_angles(G_u.T, TRUE_U).max(), subspace_angles(G_v.T, TRUE_V).max()))


# %% [markdown]
# The model has two non-zero canonical correlations, and the canonical subspaces of Proposition G1
# coincide with the latent subspaces $\operatorname{range}(W_u)$, $\operatorname{range}(W_v)$ to
# rounding: recovering one is recovering the other.
#
# ## Bilinear CLIP over a range of $N$, fitted to convergence
#
# For each $N$ several independent data sets are drawn.  Each is fitted by BFGS on the kernel's
# exact $L_N$ and gradient from several random starts; the start with the lowest loss is kept.  A
# start first converges on a subsample of the data set (400, then 1600, then 6400 pairs, as far as
# $N$ allows) and then on all of it, so the expensive full-size fit starts close to its minimum.
# Reported per fit: the largest principal angle, the scale-free gradient norm
# $\max(\|\nabla_{G_u}L_N\|\|G_u\|, \|\nabla_{G_v}L_N\|\|G_v\|)$, and the spread of the final losses
# between starts.

# %%
if QUICK:
    NS = [100, 200, 400, 800, 1600]
    REPEATS = {n: 6 for n in NS}
    STARTS = {n: 2 for n in NS}
else:
    NS = [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]
    REPEATS = {100: 8, 200: 8, 400: 8, 800: 8, 1600: 8, 3200: 6, 6400: 4, 12800: 2, 25600: 2}
    STARTS = {n: (3 if n <= 6400 else 2) for n in NS}
STAGES = (400, 1600, 6400)
GTOL = 1e-8  # largest gradient entry; L_N is O(log N) and its rounding about 1e-15 relative


def fit(u, v, rng, similarity, tau, starts, stages=STAGES):
    objective = lambda za, zb: common.clip_loss_and_grad(za, zb, tau, similarity)  # noqa: E731
    return common.fit_linear_encoders(objective, u, v, N_E, starts=starts, rng=rng, stages=stages, gtol=GTOL)


runs = []  # one dict per (N, repeat)
for n in NS:
    for rep in range(REPEATS[n]):
        rng = np.random.default_rng([SEED, 1, n, rep])
        u, v = sample(rng, n)
        res = fit(u, v, rng, "dot", TAU, STARTS[n])
        A_hat = res.G_u.T @ res.G_v / TAU
        runs.append({
            "n": n, "angle": max_angle(res.G_u, res.G_v), "grad_norm": res.grad_norm,
            "start_spread": float(np.ptp(res.start_losses)), "converged": res.converged,
            "meets_gtol": res.grad_max <= GTOL, "evals": res.n_evals,
            "relative_error": float(np.linalg.norm(A_hat - A_STAR) / np.linalg.norm(A_STAR)),
            "excess_loss": float(gaussian.population_clip_loss(A_hat, COV, N_U) - L_STAR),
        })
    here = [r for r in runs if r["n"] == n]
    common.progress(f"N={n}: mean max angle {np.mean([r['angle'] for r in here]):.4f} rad, "
                    f"largest gradient {max(r['grad_norm'] for r in here):.1e} ({RUN.elapsed():.0f}s)")


def by_n(key, reduce=np.mean, rows=None):
    rows = runs if rows is None else rows
    return {n: float(reduce([r[key] for r in rows if r["n"] == n])) for n in sorted({r["n"] for r in rows})}


mean_angle = by_n("angle")
print(f"{'N':>6} {'runs':>4} {'mean angle':>11} {'max |grad|*|G|':>15} {'max start spread':>17} "
      f"{'|A-A*|/|A*|':>12} {'excess loss':>12}")
for n in NS:
    print(f"{n:6d} {REPEATS[n]:4d} {mean_angle[n]:11.4f} {by_n('grad_norm', max)[n]:15.1e} "
          f"{by_n('start_spread', max)[n]:17.1e} {by_n('relative_error')[n]:12.4f} {by_n('excess_loss')[n]:12.2e}")

# %% [markdown]
# Each row is one $N$: the mean over data sets of the largest principal angle, and the worst
# gradient norm and start spread among them.  Gradient norms many orders of magnitude below one
# and start spreads at the rounding level of $L_N$ say that every fit sits at the minimum of its
# loss: the angles measure the data, not the optimiser.  The relative error of $A$ and the excess
# population loss over Proposition G1's minimum $-\frac12\sum_{i\le k}\sigma_i^2$ shrink with $N$
# too.
#
# ## Rate of convergence
#
# The slope is a least-squares fit of $\log(\text{angle})$ against $\log N$ over every data set
# (independent points), with its 95 % t interval; the excess population loss is quadratic in the
# error of $A$, so its slope should be near $-1$.

# %%
n_all = np.array([r["n"] for r in runs], float)
slope, intercept, slope_ci = common.loglog_slope(n_all, [r["angle"] for r in runs])
err_slope, _, err_ci = common.loglog_slope(n_all, [r["relative_error"] for r in runs])
gap_slope, _, gap_ci = common.loglog_slope(n_all, [r["excess_loss"] for r in runs])
means = np.array([mean_angle[n] for n in NS])
monotone = bool(np.all(np.diff(means) < 0))
print(f"slope of log(max angle) against log N: {slope:.3f}, 95% CI [{slope_ci[0]:.3f}, {slope_ci[1]:.3f}] (theory -0.5)")
print(f"slope of log |A-A*|/|A*|: {err_slope:.3f} [{err_ci[0]:.3f}, {err_ci[1]:.3f}] (theory -0.5)")
print(f"slope of log excess population loss: {gap_slope:.3f} [{gap_ci[0]:.3f}, {gap_ci[1]:.3f}] (theory -1)")
print(f"mean angles fall monotonically with N: {monotone}; largest N = {NS[-1]}: mean angle {means[-1]:.4f} rad")

# %% [markdown]
# A slope interval that contains $-0.5$ is the $N^{-1/2}$ rate of MATH.md §3; the angle at the
# largest $N$ is the accuracy reached.  The excess loss slope near $-1$ confirms that the error in
# $A$ is a sampling error of order $N^{-1/2}$ around Proposition G1's minimiser.
#
# ## Cosine similarity: a minimum on the boundary of differentiability
#
# CLIP's cosine similarity, same data model, same fitting procedure, at small $N$ only.  The
# extra column is the smallest embedding norm $\min_i |G_u u_i|$ relative to the median: the
# cosine logit is not differentiable where an embedding vanishes.

# %%
NS_COS = [100, 200, 400] if QUICK else [100, 200, 400, 800, 1600]
REPEATS_COS, STARTS_COS = (2, 2) if QUICK else (3, 3)
cos_runs = []
for n in NS_COS:
    for rep in range(REPEATS_COS):
        rng = np.random.default_rng([SEED, 3, n, rep])
        u, v = sample(rng, n)
        res = fit(u, v, rng, "cosine", TAU, STARTS_COS, stages=())
        norms = np.linalg.norm(u @ res.G_u.T, axis=1)
        others = [max_angle(Gu, Gv) for Gu, Gv in res.start_encoders]
        cos_runs.append({
            "n": n, "angle": max_angle(res.G_u, res.G_v), "grad_norm": res.grad_norm,
            "start_spread": float(np.ptp(res.start_losses)), "start_angle_spread": float(np.ptp(others)),
            "min_norm_ratio": float(norms.min() / np.median(norms)), "converged": res.converged,
        })
    common.progress(f"cosine N={n} ({RUN.elapsed():.0f}s)")
cos_mean = by_n("angle", rows=cos_runs)
print(f"{'N':>6} {'mean angle':>11} {'max |grad|*|G|':>15} {'max loss spread':>16} {'max angle spread':>17} "
      f"{'min |G_u u|/median':>19}")
for n in NS_COS:
    print(f"{n:6d} {cos_mean[n]:11.4f} {by_n('grad_norm', max, cos_runs)[n]:15.1e} "
          f"{by_n('start_spread', max, cos_runs)[n]:16.1e} {by_n('start_angle_spread', max, cos_runs)[n]:17.1e} "
          f"{by_n('min_norm_ratio', min, cos_runs)[n]:19.1e}")

# %% [markdown]
# The cosine fits end with one embedding almost at the origin (the last column, many orders of
# magnitude below one): the minimiser pulls a pair to the point where its direction, and so its
# logit, is undefined and can take any value.  There the loss is not differentiable, the
# gradient does not vanish, and BFGS stops on a failed line search instead of a small gradient;
# the starts end at different losses and angles.  The angles still fall with $N$, but the smooth
# bilinear problem above is the one on which convergence can be shown and the rate measured.
#
# ## Proposition G1 on the population loss
#
# BFGS on the closed-form population loss $L_{clip}(A) = -\operatorname{tr}(AC_{vu}) +
# \tfrac12\operatorname{tr}(AC_{vv}A^TC_{uu})$ over the factors (no SVD anywhere) must reach the
# minimum and the minimiser $A^*$ of Proposition G1.

# %%
rng = np.random.default_rng([SEED, 2])
pop = optimize.minimize_over_factors(
    lambda A: gaussian.population_clip_loss(A / TAU, COV, N_U), N_U, N_V, N_E,
    grad=lambda A: gaussian.population_clip_loss_grad(A / TAU, COV, N_U) / TAU,
    starts=1, rng=rng, init_scale=0.3, gtol=1e-12, maxiter=10000)
A_pop = pop.A / TAU
pop_gap = gaussian.population_clip_loss(A_pop, COV, N_U) - L_STAR
pop_err = np.linalg.norm(A_pop - A_STAR) / np.linalg.norm(A_STAR)
print(f"G1 minimum {L_STAR:.6f}; population-trained gap {pop_gap:.2e}, |A-A*|/|A*| {pop_err:.2e}, "
      f"converged: {pop.converged}")

# %% [markdown]
# Gap and relative error at the rounding level: without any sample, optimisation over the factors
# finds Proposition G1's minimiser, so the errors of the finite-sample fits above are sampling
# errors.
#
# ## Figure

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
ax = axes[0]
ns = np.array(NS, float)
ax.scatter(n_all, [r["angle"] for r in runs], color="C0", alpha=0.35, s=12)
ax.loglog(NS, means, "o", color="C0", label="bilinear CLIP: largest principal angle (mean)")
ax.loglog(ns, np.exp(intercept) * ns**slope, "-", color="C0", alpha=0.7,
          label=f"fit: slope {slope:.2f}, 95% CI [{slope_ci[0]:.2f}, {slope_ci[1]:.2f}]")
ax.loglog(ns, np.exp(intercept) * ns[0] ** slope * (ns / ns[0]) ** -0.5, ":", color="k", label=r"$N^{-1/2}$")
ax.loglog(NS_COS, [cos_mean[n] for n in NS_COS], "^--", color="C3", alpha=0.8,
          label="cosine CLIP (non-smooth minimum)")
ax.set_xlabel("N (pairs)")
ax.set_ylabel("largest principal angle (rad)")
ax.set_title("Recovery of the canonical subspace")
ax.legend(fontsize=7.5)
ax = axes[1]
gaps = np.array([by_n("excess_loss")[n] for n in NS])
errs = np.array([by_n("relative_error")[n] for n in NS])
ax.loglog(NS, errs, "s-", color="C1", label=r"$\|A-A^*\|/\|A^*\|$")
ax.loglog(ns, errs[0] * (ns / ns[0]) ** -0.5, ":", color="0.4", label=r"$N^{-1/2}$")
ax.loglog(NS, gaps, "d-", color="C2", label=r"$L_{clip}(A) - \min L_{clip}$")
ax.loglog(ns, gaps[0] * ns[0] / ns, ":", color="k", label=r"$N^{-1}$")
ax.set_xlabel("N (pairs)")
ax.set_title("Bilinear fits against Proposition G1")
ax.legend(fontsize=7.5)
for ax in axes:
    ax.set_xticks(NS, [str(n) for n in NS], fontsize=7)
    ax.minorticks_off()
fig.tight_layout()
fig_path = common.show_figure(fig, RUN.outdir, "synthetic_gaussian_angles")
print("figure:", fig_path)

# %% [markdown]
# Left: every fitted data set (dots), their means, the least-squares line and the $N^{-1/2}$
# reference through the same first point; the cosine fits are the dashed triangles.  Right: the
# error of $A$ falls like $N^{-1/2}$ and the excess population loss like $N^{-1}$.
#
# ## Metrics

# %%
acceptance = {"angles_fall_monotonically": monotone, "slope_in_[-0.7,-0.3]": bool(-0.7 <= slope <= -0.3)}
if not QUICK:
    acceptance["largest_n_angle_below_0.1"] = bool(means[-1] < 0.1)
metrics = {
    "experiment": "synthetic_gaussian",
    "quick": QUICK,
    "seed": SEED,
    "similarity": "dot",
    "tau": TAU,
    "canonical_correlations": sigma,
    "max_principal_angle_by_n": {str(n): mean_angle[n] for n in NS},
    "max_principal_angle_runs": {str(n): [r["angle"] for r in runs if r["n"] == n] for n in NS},
    "angle_slope": slope,
    "angle_slope_ci95": slope_ci,
    "max_scale_free_grad_by_n": {str(n): v for n, v in by_n("grad_norm", max).items()},
    "max_start_loss_spread_by_n": {str(n): v for n, v in by_n("start_spread", max).items()},
    # BFGS's own test (largest gradient entry below GTOL); the others stopped on "precision loss",
    # a line search that can no longer lower L_N in float64, with the gradients listed above
    "fits_meeting_gtol": f"{sum(r['meets_gtol'] for r in runs)}/{len(runs)}",
    # numerics.optimize.is_converged: the gradient test, or precision loss at the rounding floor
    "fits_converged": f"{sum(r['converged'] for r in runs)}/{len(runs)}",
    "starts_by_n": {str(n): STARTS[n] for n in NS},
    "bilinear_relative_error_by_n": {str(n): v for n, v in by_n("relative_error").items()},
    "bilinear_relative_error_slope": err_slope,
    "bilinear_relative_error_slope_ci95": err_ci,
    "bilinear_excess_loss_by_n": {str(n): v for n, v in by_n("excess_loss").items()},
    "bilinear_excess_loss_slope": gap_slope,
    "bilinear_excess_loss_slope_ci95": gap_ci,
    "cosine_max_principal_angle_by_n": {str(n): v for n, v in cos_mean.items()},
    "cosine_max_scale_free_grad_by_n": {str(n): v for n, v in by_n("grad_norm", max, cos_runs).items()},
    "cosine_max_start_loss_spread_by_n": {str(n): v for n, v in by_n("start_spread", max, cos_runs).items()},
    "cosine_min_embedding_norm_ratio_by_n": {str(n): v for n, v in by_n("min_norm_ratio", min, cos_runs).items()},
    "g1_minimum": L_STAR,
    "population_trained_gap": float(pop_gap),
    "population_trained_relative_error": float(pop_err),
    "acceptance": acceptance,
    "seconds": RUN.elapsed(),
}
print("acceptance:", acceptance)
print("metrics:", common.write_json(RUN.json_path, metrics))
