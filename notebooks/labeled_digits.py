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
# # Labeled digits: CLIP against the mode-seeking one-sided variant
#
# MATH.md §3, §5, §6.  The two modalities are an image $u$ and its one-hot label $v = e_k$.
# The model conditional of images given a label is an exponential tilt of the image marginal,
#
# $$\nu_{u|v=k}(du) = \frac{e^{f(u, e_k)}\,\mu_u(du)}{Z_u(e_k)},$$
#
# estimated on a bank of images $u_j$ by self-normalised importance weights
# $w_j \propto e^{f(u_j, e_k)}$ (MATH.md §5).
#
# * **CLIP**: cosine similarity, symmetric loss ($\lambda = \tfrac12$), linear encoders.
# * **mode-seeking**: bilinear similarity $f(u, e_k) = u^T A e_k = a_k^T u$, one-sided loss on
#   $u|v$ ($\lambda = 1$).  Its stationarity condition in $a_k$ is moment matching,
#   $E_{\nu_{u|v=k}}[u] = E_{\mu}[u \mid k]$ (MATH.md §6), as soon as the latent dimension lets each
#   class have its own tilt direction ($n_e \ge 10$).
#
# **The seed's expectation**: the mode-seeking variant captures class statistics (the class means
# of the images) better than CLIP.  **Headline metric**, fixed before any result was seen: the RMS
# pixel error of the class means of $\nu_{u|v=k}$ estimated on a **held-out** bank, against the
# empirical class means of that bank.  Secondary: the same on the training bank (where moment
# matching holds by construction), and the accuracy of label retrieval
# $\hat k(u) = \arg\max_k f(u, e_k)$ (MATH.md §5) on both banks.
#
# **Design.** $k$-fold cross-fitting: each fold is the held-out bank of models fitted on the other
# folds, so every image is held out exactly once and the held-out class means use all the data.
# The whole cross-fit is repeated over training seeds (a new fold partition and new initial
# encoders each time).  95 % intervals come from a bootstrap over the seeds and over the images of
# the held-out banks.
#
# Run as a script: `python notebooks/labeled_digits.py [--quick] [--json PATH] [--outdir DIR] [--mnist DIR]`;
# as a notebook the same options come from the environment variable `NOTEBOOK_ARGS`.
# By default the data are scikit-learn's 8x8 digits; `--mnist DIR` reads the MNIST IDX files.

# %%
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import _common as common
import _mnist
from numerics.importance import self_normalised_moments
from numerics.infonce import logits_vjp


def _extra(parser):
    parser.add_argument("--mnist", type=Path, default=None, help="folder with the MNIST IDX files (default: sklearn digits)")
    parser.add_argument("--max-images", type=int, default=6000, help="random subset size for large datasets")


RUN = common.setup("labeled_digits", "Labeled digits experiment (MATH.md §6)", extra=_extra)
QUICK, SEED = RUN.quick, RUN.seed

# %% [markdown]
# ## Data

# %%
images, labels, IMAGE_SHAPE, SOURCE = _mnist.load_dataset(RUN.args.mnist, max_images=RUN.args.max_images,
                                                          rng=np.random.default_rng([SEED, 0]))
N_IMAGES, N_CLASSES = images.shape[0], 10
ONEHOT = np.eye(N_CLASSES)
print(f"{SOURCE}: {N_IMAGES} images of shape {IMAGE_SHAPE}, class counts {np.bincount(labels, minlength=N_CLASSES)}")

# %% [markdown]
# ## The two losses
#
# Column $j$ of the $N\times N$ logit matrix depends only on the label of pair $j$, so both losses
# are computed on the $N \times 10$ logits $H_{ik} = f(u_i, e_k)$
# (`_common.grouped_infonce`).  On the same pairs this equals the streaming CLIP kernel:

# %%
N_E, TAU_CLIP, K_FOLDS = 16, 0.1, 5
MODELS = {  # name: (temperature, similarity, lambda)
    "clip": (TAU_CLIP, "cosine", 0.5),
    "mode_seeking": (1.0, "dot", 1.0),
}


def objective_for(y, tau, similarity, lam):
    """``objective(za, emb)`` for the fitter: ``emb`` holds the ten class embeddings."""
    def objective(za, emb):
        H = common.logits(za, emb, tau, similarity)
        loss, dH = common.grouped_infonce(H, y, lam)
        ga, g_emb = logits_vjp(dH, za, emb, tau, similarity)
        return loss, ga, g_emb
    return objective


_rng = np.random.default_rng([SEED, 9])
_za, _emb = _rng.normal(size=(200, N_E)), _rng.normal(size=(N_CLASSES, N_E))
_grouped = objective_for(labels[:200], TAU_CLIP, "cosine", 0.5)(_za, _emb)
_kernel = common.clip_loss_and_grad(_za, _emb[labels[:200]], TAU_CLIP, "cosine")
print(f"grouped CLIP loss {_grouped[0]:.12f}, kernel on the 200 x 200 pairs {_kernel[0]:.12f}")
print(f"largest gradient difference: {np.abs(_grouped[1] - _kernel[1]).max():.1e} (images), "
      f"{np.abs(_grouped[2] - ONEHOT[labels[:200]].T @ _kernel[2]).max():.1e} (class embeddings)")

# %% [markdown]
# The grouped form and the kernel agree to rounding, so the fits below minimise the CLIP loss of
# MATH.md §2 (and, for $\lambda = 1$, its one-sided variant of §3) at $O(10N)$ instead of
# $O(N^2)$ cost.
#
# ## Cross-fitted training over seeds
#
# Linear encoders into $n_e = 16$ dimensions, fitted by full-batch L-BFGS (the encoders have
# $16 \times (64 + 10)$ entries).  Images are standardised with the pixel mean and scale of the
# training folds.

# %%
SEEDS = 2 if QUICK else 10
MAXITER = 300 if QUICK else 1000
GTOL = 1e-6


def stratified_folds(rng, y, k):
    """Fold index of every item: each class dealt round-robin over the folds after a shuffle."""
    fold = np.empty(y.shape[0], dtype=int)
    for c in range(N_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = (np.arange(idx.size) + rng.integers(k)) % k
    return fold


crossfits = []  # per seed: fold index of every image and, per fold and model, H = f(u_j, e_k) for all images
fit_log = {name: {"grad_norm": [], "converged": [], "final_loss": []} for name in MODELS}
for s in range(SEEDS):
    rng = np.random.default_rng([SEED, 1, s])
    fold = stratified_folds(rng, labels, K_FOLDS)
    H = []
    for f in range(K_FOLDS):
        train = fold != f
        mean, scale = images[train].mean(0), images[train].std()
        x_all = (images - mean) / scale
        H.append({})
        for name, (tau, sim, lam) in MODELS.items():
            res = common.fit_linear_encoders(objective_for(labels[train], tau, sim, lam), x_all[train], ONEHOT, N_E,
                                             starts=1, rng=rng, gtol=GTOL, maxiter=MAXITER)
            H[f][name] = common.logits(x_all @ res.G_u.T, ONEHOT @ res.G_v.T, tau, sim)
            fit_log[name]["grad_norm"].append(res.grad_norm)
            fit_log[name]["converged"].append(res.converged)
            fit_log[name]["final_loss"].append(res.loss)
    crossfits.append({"fold": fold, "H": H})
    common.progress(f"seed {s + 1}/{SEEDS}: {K_FOLDS} folds x {len(MODELS)} models fitted ({RUN.elapsed():.0f}s)")
for name, log in fit_log.items():
    print(f"{name}: {sum(log['converged'])}/{len(log['converged'])} fits converged (numerics.optimize.is_converged); "
          f"largest scale-free gradient {max(log['grad_norm']):.1e}; final losses "
          f"{min(log['final_loss']):.4f}..{max(log['final_loss']):.4f}")

# %% [markdown]
# The convergence summary says whether the fits reached a stationary point (scale-free gradient
# $\|\nabla_G L\|\|G\|$ small) or stopped at the iteration budget; the spread of the final losses
# is over seeds and folds (different training data), not only over starts.
#
# ## Metrics and their bootstrap intervals
#
# For one seed and bank weights $c_j$ (the multiplicity of image $j$ in a resampled bank, 1 for the
# data as they are), fold $f$ gives the importance-weighted class means
# $\hat m^f_k = \sum_{j \in \text{bank}_f} c_j e^{H_{jk}} u_j / \sum_j c_j e^{H_{jk}}$ and the
# empirical class means $m^f_k$ of the same bank.  The cross-fitted error is the RMS over classes and
# pixels of $\frac1K\sum_f (\hat m^f - m^f)$.  Reference: the bank's overall mean used for every
# class (no tilt at all).
#
# Intervals: each bootstrap replicate resamples the seeds (with replacement) and the images
# (multinomial multiplicities $c$, shared by both models, so that their difference is paired), and
# recomputes every held-out metric averaged over the resampled seeds.  The training-bank metrics
# are resampled over seeds only: the models were fitted to that bank, and a resampled training bank
# is no longer the bank they were fitted to (moment matching would no longer hold on it).
#
# An error norm is biased upwards by the sampling noise it contains, and a resampled bank adds that
# noise a second time: measured errors near the noise level sit below their own percentile
# interval.  So every metric is reported bias-corrected, $2\hat\theta - \bar\theta^*$, with the
# basic bootstrap interval $[2\hat\theta - q^*_{0.975},\ 2\hat\theta - q^*_{0.025}]$; for the
# class-mean errors this is done on the mean square (where noise adds) and the square root taken
# after (a corrected mean square at or below zero is an error indistinguishable from noise).

# %%
BOOT = 400 if QUICK else 2000
BANKS = ("held_out", "training")


def mse(a):
    return float(np.mean(a**2))


def seed_metrics(cf, bank, c):
    """All metrics of one cross-fit on one bank (``"held_out"`` or ``"training"``) with multiplicities ``c``.

    Class-mean errors are returned squared (mean over classes and pixels): sampling noise adds to
    them on that scale, which is where the bootstrap corrects for it.
    """
    fold, out = cf["fold"], {}
    est = {name: [] for name in MODELS}
    target, overall, ess = [], [], {name: [] for name in MODELS}
    hits = {name: 0.0 for name in MODELS}
    accuracy = {name: [] for name in MODELS}
    for f in range(K_FOLDS):
        in_bank = (fold == f) if bank == "held_out" else (fold != f)
        w = c * in_bank
        cls = np.stack([w * (labels == k) for k in range(N_CLASSES)])
        target.append(cls @ images / cls.sum(1, keepdims=True))
        overall.append(np.broadcast_to(w @ images / w.sum(), target[-1].shape))
        for name in MODELS:
            Hf = cf["H"][f][name]
            moments = self_normalised_moments(Hf.T, images, weights=w)
            means, ess_k = moments.means, moments.ess
            est[name].append(means)
            ess[name].append(ess_k.min())
            correct = w * (Hf.argmax(1) == labels)
            hits[name] += correct.sum()
            accuracy[name].append(correct.sum() / w.sum())
    t = np.mean(target, 0)
    for name in MODELS:
        out[f"class_mean_mse/{name}"] = mse(np.mean(est[name], 0) - t)
        # held out: every image counted once over the folds; training: the mean of the fold accuracies
        out[f"retrieval_accuracy/{name}"] = (hits[name] / c.sum() if bank == "held_out"
                                             else float(np.mean(accuracy[name])))
        out[f"min_bank_ess/{name}"] = float(np.min(ess[name]))
    out["class_mean_mse/difference"] = out["class_mean_mse/mode_seeking"] - out["class_mean_mse/clip"]
    out["class_mean_mse/without_tilt"] = mse(np.mean(overall, 0) - t)
    return out


ones = np.ones(N_IMAGES)
point = {bank: [seed_metrics(cf, bank, ones) for cf in crossfits] for bank in BANKS}
measured = {bank: {key: float(np.mean([m[key] for m in point[bank]])) for key in point[bank][0]} for bank in BANKS}

rng_boot = np.random.default_rng([SEED, 2])
replicates = {bank: {key: [] for key in measured[bank]} for bank in BANKS}
for b in range(BOOT):
    seeds = rng_boot.integers(SEEDS, size=SEEDS)
    c = rng_boot.multinomial(N_IMAGES, np.full(N_IMAGES, 1.0 / N_IMAGES)).astype(float)
    cache = {s: seed_metrics(crossfits[s], "held_out", c) for s in set(seeds.tolist())}
    for key in replicates["held_out"]:
        replicates["held_out"][key].append(np.mean([cache[s][key] for s in seeds]))
    for key in replicates["training"]:
        replicates["training"][key].append(np.mean([point["training"][s][key] for s in seeds]))
common.progress(f"{BOOT} bootstrap replicates ({RUN.elapsed():.0f}s)")


def corrected(value, reps):
    """Bias-corrected estimate and basic bootstrap interval: 2 x value minus the replicates."""
    lo, hi = common.percentile_interval(reps)
    return 2 * value - float(np.mean(reps)), (2 * value - hi, 2 * value - lo)


estimate, interval = {}, {}
for bank in BANKS:
    estimate[bank], interval[bank] = {}, {}
    for key, value in measured[bank].items():
        est_, (lo, hi) = corrected(value, replicates[bank][key])
        if key.startswith("class_mean_mse/") and not key.endswith("difference"):
            # back to an RMS pixel error; a corrected mean square below 0 is an error within noise
            key = "class_mean_error/" + key.split("/")[1]
            est_, lo, hi = (float(np.sqrt(max(x, 0.0))) for x in (est_, lo, hi))
        estimate[bank][key], interval[bank][key] = est_, (lo, hi)

# the sampling noise of the target: RMS standard error of the empirical class means of all images
noise_floor = float(np.sqrt(np.mean([images[labels == k].var(0, ddof=1) / np.sum(labels == k)
                                     for k in range(N_CLASSES)])))
print(f"RMS standard error of the empirical class means (sampling noise of the target): {noise_floor:.4f}")

print(f"{'bank':9s} {'metric':38s} {'estimate':>9s}  95% interval")
for bank in BANKS:
    for key, value in estimate[bank].items():
        lo, hi = interval[bank][key]
        print(f"{bank:9s} {key:38s} {value:9.4f}  [{lo:.4f}, {hi:.4f}]")

# %% [markdown]
# Every metric is an average over the training seeds of the cross-fitted value, bias-corrected,
# with its 95 % interval.  The class-mean errors are to be read against "without tilt" (what no
# model at all achieves) and against the standard error of the empirical class means (printed
# above), the scale below which an error cannot be told from noise.  The effective bank size says
# how many images carry each class's weights.
#
# ## Verdict on the seed's expectation
#
# The headline is the held-out class-mean error.  The expectation holds if the 95 % interval of
# the paired difference of the mean squared errors (mode-seeking minus CLIP) lies below zero, does
# not hold if it lies above, and cannot be decided at this sample size if it contains zero.

# %%


def verdict(lo, hi):
    if hi < 0:
        return "holds"
    if lo > 0:
        return "does not hold"
    return "cannot be decided at this sample size"


VERDICT = {bank: verdict(*interval[bank]["class_mean_mse/difference"]) for bank in BANKS}
for bank in BANKS:
    lo, hi = interval[bank]["class_mean_mse/difference"]
    print(f"{bank} bank: mean squared class-mean error, mode-seeking minus CLIP = "
          f"{estimate[bank]['class_mean_mse/difference']:+.2e} [{lo:+.2e}, {hi:+.2e}]: the expectation {VERDICT[bank]}")
print(f"Headline (held-out bank): the seed's expectation {VERDICT['held_out']}.")

# %% [markdown]
# The verdict is read off the intervals, with the rule stated before the computation; the
# training-bank line is secondary (there, moment matching makes the mode-seeking error vanish by
# construction).
#
# ## Figures: recovered class means and the intervals

# %%
cf0 = crossfits[0]
recovered = {}
for name in MODELS:
    recovered[name] = np.mean([self_normalised_moments(cf0["H"][f][name].T, images,
                                                       weights=ones * (cf0["fold"] == f)).means
                               for f in range(K_FOLDS)], 0)
class_means = np.stack([images[labels == k].mean(0) for k in range(N_CLASSES)])
rows = [("empirical class means (all images)", class_means),
        ("CLIP: cross-fitted E_nu[u | k] on held-out banks (seed 0)", recovered["clip"]),
        ("mode-seeking: cross-fitted E_nu[u | k] on held-out banks (seed 0)", recovered["mode_seeking"])]
fig, axes = plt.subplots(3, N_CLASSES, figsize=(N_CLASSES * 0.9, 3 * 1.15))
fig.subplots_adjust(hspace=0.5, wspace=0.05, top=0.9, bottom=0.08)
for r, (title, means) in enumerate(rows):
    for k in range(N_CLASSES):
        ax = axes[r, k]
        ax.imshow(means[k].reshape(IMAGE_SHAPE), cmap="gray_r", vmin=0, vmax=max(class_means.max(), 1e-12))
        ax.set_xticks([])
        ax.set_yticks([])
        if r == len(rows) - 1:
            ax.set_xlabel(f"k = {k}", fontsize=8)
    box = axes[r, 0].get_position()
    fig.text(0.5, box.y1 + 0.015, title, ha="center", va="bottom", fontsize=9)
means_path = common.show_figure(fig, RUN.outdir, "labeled_digits_class_means")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
panels = [("class_mean_error", "class-mean RMS pixel error"), ("retrieval_accuracy", "retrieval accuracy")]
for ax, (metric, title) in zip(axes, panels):
    ylabels = []
    for i, (bank, name) in enumerate([(b_, n_) for b_ in BANKS for n_ in MODELS]):
        key = f"{metric}/{name}"
        lo, hi = interval[bank][key]
        value = estimate[bank][key]
        ax.errorbar([value], [i], xerr=[[max(value - lo, 0.0)], [max(hi - value, 0.0)]], fmt="o",
                    color="C0" if name == "clip" else "C1", capsize=3)
        ylabels.append(f"{name}\n{bank.replace('_', '-')} bank")
    if metric == "class_mean_error":
        ax.axvline(noise_floor, color="0.6", ls=":", label="standard error of the\nempirical class means")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(range(len(ylabels)), ylabels, fontsize=7)
    ax.set_title(f"{title} (95% intervals)", fontsize=9)
fig.tight_layout()
intervals_path = common.show_figure(fig, RUN.outdir, "labeled_digits_intervals")
print("figures:", means_path, intervals_path)

# %% [markdown]
# First figure: the class means of the model conditionals, estimated on held-out banks, next to
# the empirical ones.  Second: the bias-corrected estimates with their 95 % intervals; the dotted
# line is the standard error of the empirical class means.
#
# ## Metrics

# %%


def _per_model(bank, metric):
    return {name: estimate[bank][f"{metric}/{name}"] for name in MODELS}


def _per_model_ci(bank, metric):
    return {name: interval[bank][f"{metric}/{name}"] for name in MODELS}


metrics = {
    "experiment": "labeled_digits",
    "quick": QUICK,
    "seed": SEED,
    "source": SOURCE,
    "n_images": N_IMAGES,
    "folds": K_FOLDS,
    "training_seeds": SEEDS,
    "bootstrap_replicates": BOOT,
    "headline": "class_mean_error on the held_out bank",
    "class_mean_error": {bank: _per_model(bank, "class_mean_error") for bank in BANKS},
    "class_mean_error_ci": {bank: _per_model_ci(bank, "class_mean_error") for bank in BANKS},
    "class_mean_error_measured": {bank: {name: float(np.sqrt(measured[bank][f"class_mean_mse/{name}"])) for name in MODELS}
                                  for bank in BANKS},
    "class_mean_mse_difference": {bank: estimate[bank]["class_mean_mse/difference"] for bank in BANKS},
    "class_mean_mse_difference_ci": {bank: interval[bank]["class_mean_mse/difference"] for bank in BANKS},
    "retrieval_accuracy": {bank: _per_model(bank, "retrieval_accuracy") for bank in BANKS},
    "retrieval_accuracy_ci": {bank: _per_model_ci(bank, "retrieval_accuracy") for bank in BANKS},
    "class_mean_error_without_tilt": {bank: estimate[bank]["class_mean_error/without_tilt"] for bank in BANKS},
    "class_mean_error_without_tilt_ci": {bank: interval[bank]["class_mean_error/without_tilt"] for bank in BANKS},
    "class_mean_standard_error": noise_floor,
    "min_bank_ess": {bank: _per_model(bank, "min_bank_ess") for bank in BANKS},
    "min_bank_ess_ci": {bank: _per_model_ci(bank, "min_bank_ess") for bank in BANKS},
    "fits_converged": {name: f"{sum(log['converged'])}/{len(log['converged'])}" for name, log in fit_log.items()},
    "max_scale_free_grad": {name: max(log["grad_norm"]) for name, log in fit_log.items()},
    "verdict": VERDICT,
    "seconds": RUN.elapsed(),
}
print("metrics:", common.write_json(RUN.json_path, metrics))
