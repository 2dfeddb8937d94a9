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
# Metrics: the error of the class means of $\nu_{u|v=k}$ (on a held-out bank) against the empirical
# class means, and the held-out classification accuracy of label retrieval
# $\hat k(u) = \arg\max_k f(u, e_k)$ (MATH.md §5).
#
# Run as a script: `python notebooks/labeled_digits.py [--quick] [--json PATH] [--outdir DIR] [--mnist DIR]`.
# By default the data are scikit-learn's 8x8 digits; `--mnist DIR` reads the MNIST IDX files.

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

import _common as common
import _mnist


def _extra(parser):
    parser.add_argument("--mnist", type=Path, default=None, help="folder with the MNIST IDX files (default: sklearn digits)")
    parser.add_argument("--max-images", type=int, default=6000, help="random subset size for large datasets")


ARGS = common.parse_args("Labeled digits experiment (MATH.md §6)", extra=_extra)
QUICK = ARGS.quick
OUTDIR = ARGS.outdir
JSON_PATH = ARGS.json or OUTDIR / "labeled_digits.json"
SEED = ARGS.seed
T0 = time.perf_counter()

# %% [markdown]
# ## Data

# %%
rng = np.random.default_rng([SEED, 0])
images, labels, IMAGE_SHAPE, SOURCE = _mnist.load_dataset(ARGS.mnist, max_images=ARGS.max_images, rng=rng)
N_CLASSES = 10
perm = rng.permutation(images.shape[0])
n_train = int(0.7 * images.shape[0])
tr, te = perm[:n_train], perm[n_train:]
img_train, img_test, y_train, y_test = images[tr], images[te], labels[tr], labels[te]
MEAN, SCALE = img_train.mean(0), img_train.std()
x_train, x_test = (img_train - MEAN) / SCALE, (img_test - MEAN) / SCALE
onehot = np.eye(N_CLASSES)
v_train = onehot[y_train]
N_U = x_train.shape[1]
print(f"{SOURCE}: {len(tr)} training and {len(te)} held-out images of shape {IMAGE_SHAPE}")


def class_means(img, y):
    return np.stack([img[y == k].mean(0) for k in range(N_CLASSES)])


true_means_test = class_means(img_test, y_test)
true_means_train = class_means(img_train, y_train)

# %% [markdown]
# ## Training
#
# Full-batch Adam; both models have linear encoders into $n_e = 16$ dimensions.  CLIP uses the
# kernels' cosine loss and gradients with $\tau = 0.1$ (the usual CLIP range); the mode-seeking
# model uses the one-sided bilinear loss (the temperature is folded into $A$).

# %%
N_E, TAU_CLIP = 16, 0.1
STEPS = 400 if QUICK else 2000
rng_fit = np.random.default_rng([SEED, 1])
models = {}
clip_u, clip_v = common.Encoder(rng_fit, N_U, N_E), common.Encoder(rng_fit, N_CLASSES, N_E)
hist_clip = common.train(
    (clip_u, clip_v, x_train, v_train),
    lambda za, zb: common.clip_loss_and_grad(za, zb, TAU_CLIP, "cosine"),
    len(tr), steps=STEPS, lr=0.02, label="CLIP (cosine)",
)
models["clip"] = (clip_u, clip_v, TAU_CLIP, "cosine")


def grouped_one_sided(za, emb, y):
    r"""One-sided bilinear :math:`u|v` loss when ``v`` takes the ten values :math:`e_k`.

    Column ``j`` of the :math:`N\times N` logit matrix only depends on the label of pair ``j``,
    so the loss of :func:`_common.one_sided_loss_and_grad` is
    :math:`-\frac1N\sum_j f(u_j, e_{k_j}) + \sum_k \frac{n_k}{N}\log\sum_i e^{f(u_i, e_k)}`,
    computed here on the :math:`N \times 10` logits.  Returns the loss and the gradients in
    ``za`` and in the class embeddings ``emb``.
    """
    n = za.shape[0]
    F = za @ emb.T
    counts = np.bincount(y, minlength=emb.shape[0])
    m = F.max(0)
    E = np.exp(F - m)
    lse = m + np.log(E.sum(0))
    loss = -F[np.arange(n), y].mean() + counts @ lse / n
    dF = E / E.sum(0) * (counts / n)
    dF[np.arange(n), y] -= 1.0 / n
    return float(loss), dF @ emb, dF.T @ za


# the grouped form must agree with the generic N x N one-sided loss on the same pairs
_za, _emb = rng_fit.normal(size=(40, N_E)), rng_fit.normal(size=(N_CLASSES, N_E))
_ref = common.one_sided_loss_and_grad(_za, _emb[y_train[:40]], 1.0, "dot", conditional="u|v")
_got = grouped_one_sided(_za, _emb, y_train[:40])
assert abs(_ref[0] - _got[0]) < 1e-12 and np.allclose(_ref[1], _got[1], rtol=1e-10, atol=1e-13)
assert np.allclose(onehot[y_train[:40]].T @ _ref[2], _got[2], rtol=1e-10, atol=1e-13)

ms_u, ms_v = common.Encoder(rng_fit, N_U, N_E), common.Encoder(rng_fit, N_CLASSES, N_E)
opt = common.Adam(ms_u.params + ms_v.params, 0.02, total_steps=STEPS)
hist_ms = np.empty(STEPS)
for t in range(STEPS):
    hist_ms[t], g_za, g_emb = grouped_one_sided(ms_u(x_train), ms_v(onehot), y_train)
    opt.step(ms_u.backward(g_za) + ms_v.backward(g_emb))
    if (t + 1) % (STEPS // 5) == 0:
        common.progress(f"mode-seeking (one-sided u|v, bilinear): step {t + 1}/{STEPS} loss {hist_ms[t]:.5f}")
models["mode_seeking"] = (ms_u, ms_v, 1.0, "dot")
common.progress(f"trained ({time.perf_counter() - T0:.1f}s)")

# %% [markdown]
# ## Class means of the model conditional and retrieval accuracy

# %%


def label_logits(name, x):
    """``F[k, j] = f(u_j, e_k)`` for every class ``k`` and image ``j``."""
    enc_u, enc_v, tau, sim = models[name]
    return common.logits(enc_v(onehot), enc_u(x), tau, sim)


def rms(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


class_mean_error, class_mean_error_train, recovered, ess = {}, {}, {}, {}
retrieval, retrieval_calibrated = {}, {}
log_prior = np.log(np.bincount(y_train, minlength=N_CLASSES) / len(y_train))
for name in models:
    F_test = label_logits(name, x_test)
    recovered[name], ess_k = common.bank_mean(F_test, img_test)
    ess[name] = float(np.min(ess_k))
    class_mean_error[name] = rms(recovered[name], true_means_test)
    F_train = label_logits(name, x_train)
    class_mean_error_train[name] = rms(common.bank_mean(F_train, img_train)[0], true_means_train)
    retrieval[name] = float(np.mean(F_test.argmax(0) == y_test))
    # Bayes reading of nu_{u|v}: p(k | u) ∝ p_k exp f(u, k) / Z_u(k), Z_u from the training images
    log_Z = np.log(np.mean(np.exp(F_train - F_train.max(1, keepdims=True)), 1)) + F_train.max(1)
    retrieval_calibrated[name] = float(np.mean((F_test - log_Z[:, None] + log_prior[:, None]).argmax(0) == y_test))
no_tilt_error = rms(np.broadcast_to(img_test.mean(0), true_means_test.shape), true_means_test)
# scale of the sampling noise in the held-out target: the training class means scored the same way
reference_error = rms(true_means_train, true_means_test)
print(f"class-mean RMS pixel error (held-out bank): {class_mean_error}; no tilt at all: {no_tilt_error:.4f}; "
      f"training class means: {reference_error:.4f}")
print(f"class-mean RMS pixel error (training bank): {class_mean_error_train}")
print(f"held-out retrieval accuracy argmax_k f: {retrieval}")
print(f"held-out accuracy of the Bayes reading of nu_(u|v): {retrieval_calibrated}")
print(f"smallest effective bank size over the classes (held-out bank of {len(te)}): {ess}")

# %% [markdown]
# ## Figure: the recovered class means as images

# %%
rows = [("empirical class means (held out)", true_means_test),
        (f"CLIP: E_nu[u | k], error {class_mean_error['clip']:.3f}", recovered["clip"]),
        (f"mode-seeking: E_nu[u | k], error {class_mean_error['mode_seeking']:.3f}", recovered["mode_seeking"])]
fig, axes = plt.subplots(3, N_CLASSES, figsize=(N_CLASSES * 0.9, 3 * 1.15))
fig.subplots_adjust(hspace=0.5, wspace=0.05, top=0.9, bottom=0.08)
for r, (title, means) in enumerate(rows):
    for k in range(N_CLASSES):
        ax = axes[r, k]
        ax.imshow(means[k].reshape(IMAGE_SHAPE), cmap="gray_r", vmin=0, vmax=max(true_means_test.max(), 1e-12))
        ax.set_xticks([])
        ax.set_yticks([])
        if r == len(rows) - 1:
            ax.set_xlabel(f"k = {k}", fontsize=8)
    box = axes[r, 0].get_position()
    fig.text(0.5, box.y1 + 0.015, title, ha="center", va="bottom", fontsize=9)
fig_path = common.save_figure(fig, OUTDIR, "labeled_digits_class_means")
print("figure:", fig_path)

# %% [markdown]
# ## Metrics

# %%
metrics = {
    "experiment": "labeled_digits",
    "quick": QUICK,
    "seed": SEED,
    "source": SOURCE,
    "kernel_backend": common.KERNEL_BACKEND,
    "n_train": len(tr),
    "n_test": len(te),
    "class_mean_error": class_mean_error,
    "class_mean_error_training_bank": class_mean_error_train,
    "class_mean_error_without_tilt": no_tilt_error,
    "class_mean_error_of_training_means": reference_error,
    "retrieval_accuracy": retrieval,
    "bayes_accuracy_from_nu_u_given_v": retrieval_calibrated,
    "min_bank_ess": ess,
    "final_loss": {"clip": float(hist_clip[-1]), "mode_seeking": float(hist_ms[-1])},
    "seconds": time.perf_counter() - T0,
}
print("metrics:", common.write_json(JSON_PATH, metrics))
