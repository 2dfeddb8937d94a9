r"""Shared helpers of the experiment notebooks (MATH.md §2, §3, §5, §6).

Argument parsing, an Adam optimiser, small encoders with hand-written
back-propagation, a training loop, the importance-weighted bank mean of a
model conditional, JSON and figure writing.

The CLIP loss and its gradient come from :mod:`numerics.kernels`.  While that
module is absent (it is developed alongside the notebooks) a dense NumPy
implementation of the same finite-sample loss is used instead, and
:data:`KERNEL_BACKEND` says which one is active; the notebooks record it in
their JSON so that a result produced by the fallback can be recognised.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    # the notebooks run as plain scripts from a source checkout
    sys.path.insert(0, str(_ROOT))

from numerics._validation import InvalidInputError, as_choice, as_float_array, as_temperature, fail  # noqa: E402

try:  # pragma: no cover - which branch runs depends on the checkout
    from numerics.kernels import clip_loss as _kernel_clip_loss
    from numerics.kernels import clip_loss_and_grad as _kernel_clip_loss_and_grad

    KERNEL_BACKEND = "numerics.kernels"
except ImportError:  # pragma: no cover
    _kernel_clip_loss = None
    _kernel_clip_loss_and_grad = None
    KERNEL_BACKEND = "dense-numpy-fallback"

__all__ = [
    "InvalidInputError",
    "KERNEL_BACKEND",
    "SIMILARITIES",
    "Adam",
    "Encoder",
    "bank_mean",
    "clip_loss",
    "clip_loss_and_grad",
    "logits",
    "one_sided_loss_and_grad",
    "parse_args",
    "progress",
    "save_figure",
    "train",
    "write_json",
]

SIMILARITIES = ("dot", "l2", "cosine")


# --------------------------------------------------------------------------
# command line, progress, outputs
# --------------------------------------------------------------------------
def parse_args(description: str, argv=None, *, extra=None) -> argparse.Namespace:
    r"""Parse ``[--quick] [--json PATH] [--outdir DIR] [--seed S]``.

    Inside a Jupyter kernel ``sys.argv`` holds the kernel's own arguments, so
    they are ignored and the defaults (full run, outputs in ``out/notebooks``)
    apply.  ``extra`` is an optional callable that adds notebook-specific
    options to the parser.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small run for CI (< 3 minutes)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the metrics (default OUTDIR/NAME.json)")
    parser.add_argument("--outdir", type=Path, default=Path("out") / "notebooks", help="folder for figures and JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    if extra is not None:
        extra(parser)
    if argv is None:
        argv = [] if "ipykernel" in sys.modules else sys.argv[1:]
    args, _unknown = parser.parse_known_args(argv)
    return args


def progress(message: str) -> None:
    """One progress line on stderr (stdout stays free for results)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if not math.isfinite(value):
            raise fail("metrics", value, "finite numbers only (JSON has no NaN)")
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(path, metrics: dict) -> Path:
    """Write ``metrics`` as indented JSON (numpy scalars converted, NaN refused)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=False) + "\n")
    return path


def save_figure(fig, outdir, name: str, *, max_bytes: int = 300_000, dpi: int = 110) -> Path:
    """Save ``fig`` as ``OUTDIR/NAME.png``, lowering the resolution until the file is below ``max_bytes``."""
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{name}.png"
    while True:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        if path.stat().st_size <= max_bytes or dpi <= 40:
            break
        dpi = int(dpi * 0.8)
    if path.stat().st_size > max_bytes:
        warnings.warn(f"{path} is {path.stat().st_size} bytes, above {max_bytes}", stacklevel=2)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------
# logits and their back-propagation (MATH.md §1)
# --------------------------------------------------------------------------
def _check_pair(za, zb):
    za = as_float_array("za", za, ndim=2).astype(np.float64, copy=False)
    zb = as_float_array("zb", zb, ndim=2).astype(np.float64, copy=False)
    if za.shape[1] != zb.shape[1] or za.shape[0] == 0 or zb.shape[0] == 0:
        raise fail("zb", zb, f"a non-empty (m, {za.shape[1]}) array matching za of shape {za.shape}")
    return za, zb


def _normalise(z):
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    if np.any(norms == 0.0):
        raise fail("z", z, "embeddings with non-zero norm (cosine similarity is undefined at 0)")
    return z / norms, norms


def _logits(za, zb, tau, similarity):
    if similarity == "dot":
        return za @ zb.T / tau
    if similarity == "cosine":
        return _normalise(za)[0] @ _normalise(zb)[0].T / tau
    sq = (za**2).sum(1)[:, None] + (zb**2).sum(1)[None, :] - 2.0 * za @ zb.T
    return -0.5 * sq / tau


def logits(za, zb, tau, similarity="dot"):
    r"""Logit matrix :math:`F_{ij} = s(z_{a,i}, z_{b,j}) / \tau` for the similarities of MATH.md §1.

    ``dot``: :math:`\langle a, b\rangle`; ``cosine``: :math:`\langle a/|a|, b/|b|\rangle`;
    ``l2``: :math:`-|a - b|^2 / 2`.
    """
    za, zb = _check_pair(za, zb)
    tau = as_temperature(tau)
    similarity = as_choice(similarity, SIMILARITIES, "similarity")
    return _logits(za, zb, tau, similarity)


def _backprop(dF, za, zb, tau, similarity):
    """Gradients of a scalar with respect to ``za``, ``zb`` given its gradient ``dF`` in the logits."""
    if similarity == "dot":
        return dF @ zb / tau, dF.T @ za / tau
    if similarity == "cosine":
        na, ra = _normalise(za)
        nb, rb = _normalise(zb)
        ga, gb = dF @ nb / tau, dF.T @ na / tau
        # derivative of z/|z|: project out the radial direction, divide by the norm
        ga = (ga - na * (ga * na).sum(1, keepdims=True)) / ra
        gb = (gb - nb * (gb * nb).sum(1, keepdims=True)) / rb
        return ga, gb
    rows, cols = dF.sum(1), dF.sum(0)
    ga = -(rows[:, None] * za - dF @ zb) / tau
    gb = -(cols[:, None] * zb - dF.T @ za) / tau
    return ga, gb


def _logsumexp(F, axis):
    m = F.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.exp(F - m).sum(axis=axis))


def _softmax(F, axis):
    E = np.exp(F - F.max(axis=axis, keepdims=True))
    return E / E.sum(axis=axis, keepdims=True)


#: Below this batch size the kernels run on one numba thread: measured on a
#: loaded 2-core machine (OpenMP layer), a parallel launch cost 60-100 ms per
#: call against 1.5 ms serial at N = 256 and was no faster up to N = 4096.
SERIAL_KERNEL_BELOW = 8192


@contextlib.contextmanager
def _kernel_threads(n):
    if n >= SERIAL_KERNEL_BELOW:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _dense_clip_loss_and_grad(za, zb, tau, similarity):
    r"""Dense reference of the symmetric InfoNCE loss (MATH.md §2); development fallback only."""
    n = za.shape[0]
    F = _logits(za, zb, tau, similarity)
    loss = -np.trace(F) / n + 0.5 * _logsumexp(F, 1).mean() + 0.5 * _logsumexp(F, 0).mean()
    dF = (_softmax(F, 1) + _softmax(F, 0)) / (2 * n) - np.eye(n) / n
    ga, gb = _backprop(dF, za, zb, tau, similarity)
    return float(loss), ga, gb


def clip_loss_and_grad(za, zb, tau, similarity="dot"):
    r"""Finite-sample CLIP loss :math:`L_N` (MATH.md §2) and its gradients in ``za`` and ``zb``.

    .. math:: L_N = -\frac1N \sum_i F_{ii} + \frac1{2N}\sum_i \log\sum_j e^{F_{ij}}
              + \frac1{2N}\sum_j \log\sum_i e^{F_{ij}}.

    Delegates to :func:`numerics.kernels.clip_loss_and_grad` when available.
    """
    za, zb = _check_pair(za, zb)
    if za.shape[0] != zb.shape[0]:
        raise fail("zb", zb, f"as many rows as za ({za.shape[0]}): the pairs (za_i, zb_i)")
    tau = as_temperature(tau)
    similarity = as_choice(similarity, SIMILARITIES, "similarity")
    if _kernel_clip_loss_and_grad is not None:
        with _kernel_threads(za.shape[0]):
            loss, ga, gb = _kernel_clip_loss_and_grad(za, zb, tau, similarity=similarity)
        return float(loss), np.asarray(ga), np.asarray(gb)
    return _dense_clip_loss_and_grad(za, zb, tau, similarity)


def clip_loss(za, zb, tau, similarity="dot"):
    r"""Loss-only :math:`L_N` (MATH.md §2); see :func:`clip_loss_and_grad`."""
    za, zb = _check_pair(za, zb)
    tau = as_temperature(tau)
    similarity = as_choice(similarity, SIMILARITIES, "similarity")
    if _kernel_clip_loss is not None:
        with _kernel_threads(za.shape[0]):
            return float(_kernel_clip_loss(za, zb, tau, similarity=similarity))
    return _dense_clip_loss_and_grad(za, zb, tau, similarity)[0]


def one_sided_loss_and_grad(za, zb, tau, similarity="dot", conditional="u|v"):
    r"""One-sided finite-sample InfoNCE loss (MATH.md §3, :math:`\lambda \in \{0, 1\}`) and gradients.

    ``conditional="u|v"`` (:math:`\lambda = 1`) keeps only the column-wise
    cross-entropy, the finite-sample form of :math:`E_{\mu_v} KL(\mu_{u|v}\,\|\,\nu_{u|v})`
    up to constants:

    .. math:: L = -\frac1N \sum_i F_{ii} + \frac1N \sum_j \log \sum_i e^{F_{ij}},
              \qquad \partial L/\partial F = (Q - I)/N,

    with :math:`Q` the softmax over each column.  ``conditional="v|u"``
    (:math:`\lambda = 0`) uses the rows instead.  With the bilinear similarity
    the stationarity condition in the column of a value :math:`v` is moment
    matching, :math:`E_{\nu_{u|v}}[G_u u] = E_{\mu_{u|v}}[G_u u]` (MATH.md §6).
    """
    za, zb = _check_pair(za, zb)
    if za.shape[0] != zb.shape[0]:
        raise fail("zb", zb, f"as many rows as za ({za.shape[0]}): the pairs (za_i, zb_i)")
    tau = as_temperature(tau)
    similarity = as_choice(similarity, SIMILARITIES, "similarity")
    conditional = as_choice(conditional, ("u|v", "v|u"), "conditional")
    n = za.shape[0]
    F = _logits(za, zb, tau, similarity)
    axis = 0 if conditional == "u|v" else 1
    loss = -np.trace(F) / n + _logsumexp(F, axis).mean()
    dF = (_softmax(F, axis) - np.eye(n)) / n
    ga, gb = _backprop(dF, za, zb, tau, similarity)
    return float(loss), ga, gb


# --------------------------------------------------------------------------
# model conditional by self-normalised importance weighting (MATH.md §5)
# --------------------------------------------------------------------------
def bank_mean(F, bank):
    r"""Self-normalised importance-weighted bank means of a model conditional (MATH.md §5).

    For query ``q`` and bank items ``x_j ~ mu``, ``F[q, j] = f(q, x_j)``; the
    estimate of :math:`E_{\nu}[x \mid q]` is :math:`\sum_j w_{qj} x_j` with
    :math:`w_{qj} \propto e^{F_{qj}}`.

    Returns
    -------
    means : ndarray, shape (n_queries, dim)
    ess : ndarray, shape (n_queries,)
        Effective sample size :math:`1/\sum_j w_{qj}^2` of each weighting; a
        small value means the bank is too small for that conditional.
    """
    F = as_float_array("F", F, ndim=2)
    bank = as_float_array("bank", bank, ndim=2)
    if bank.shape[0] != F.shape[1]:
        raise fail("bank", bank, f"{F.shape[1]} rows, one per column of F")
    W = _softmax(F, 1)
    return W @ bank, 1.0 / (W**2).sum(1)


# --------------------------------------------------------------------------
# encoders, optimiser, training loop
# --------------------------------------------------------------------------
class Encoder:
    r"""Linear map or one-hidden-layer perceptron :math:`x \mapsto W_2 \tanh(W_1 x + b_1) + b_2`.

    ``hidden=0`` gives the linear encoder :math:`x \mapsto G x` (plus ``b`` if
    ``bias``), the class of MATH.md §4.  Parameters live in :attr:`params`
    (a list the optimiser updates in place); :meth:`forward` keeps what
    :meth:`backward` needs.
    """

    def __init__(self, rng, n_in: int, n_out: int, *, hidden: int = 0, bias: bool = False, scale: float = 1.0):
        self.hidden = int(hidden)
        self.bias = bool(bias)
        if self.hidden:
            W1 = rng.normal(size=(n_in, hidden)) * math.sqrt(1.0 / n_in)
            W2 = rng.normal(size=(hidden, n_out)) * math.sqrt(1.0 / hidden) * scale
            self.params = [W1, np.zeros(hidden), W2, np.zeros(n_out)]
        else:
            G = rng.normal(size=(n_in, n_out)) * math.sqrt(1.0 / n_in) * scale
            self.params = [G] + ([np.zeros(n_out)] if self.bias else [])
        self._cache = None

    def forward(self, x):
        if self.hidden:
            W1, b1, W2, b2 = self.params
            h = np.tanh(x @ W1 + b1)
            self._cache = (x, h)
            return h @ W2 + b2
        self._cache = (x,)
        out = x @ self.params[0]
        return out + self.params[1] if self.bias else out

    __call__ = forward

    def backward(self, grad_out):
        """Gradients of the parameters given the gradient of the last :meth:`forward` output."""
        if self.hidden:
            x, h = self._cache
            W1, b1, W2, b2 = self.params
            gh = (grad_out @ W2.T) * (1.0 - h**2)
            return [x.T @ gh, gh.sum(0), h.T @ grad_out, grad_out.sum(0)]
        (x,) = self._cache
        grads = [x.T @ grad_out]
        return grads + [grad_out.sum(0)] if self.bias else grads

    @property
    def matrix(self):
        """The matrix :math:`G` (shape ``(n_in, n_out)``) of a linear encoder."""
        if self.hidden:
            raise AttributeError("a perceptron encoder has no single matrix")
        return self.params[0]


class Adam:
    r"""Adam (Kingma & Ba) on a list of arrays updated in place.

    The step size follows a cosine decay from ``lr`` to ``lr * final_fraction``
    over ``total_steps`` so that a fixed budget of full-batch steps ends close
    to a stationary point instead of hovering at the noise floor of a fixed
    step.
    """

    def __init__(self, params, lr=1e-2, *, betas=(0.9, 0.999), eps=1e-8, total_steps=None, final_fraction=0.01):
        self.params = params
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)
        self.total_steps, self.final_fraction = total_steps, float(final_fraction)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def current_lr(self):
        if not self.total_steps:
            return self.lr
        frac = min(self.t / self.total_steps, 1.0)
        return self.lr * (self.final_fraction + (1 - self.final_fraction) * 0.5 * (1 + math.cos(math.pi * frac)))

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        lr = self.current_lr()
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            mhat = m / (1 - b1**self.t)
            vhat = v / (1 - b2**self.t)
            p -= lr * mhat / (np.sqrt(vhat) + self.eps)


def train(encoders, objective, n: int, *, steps: int, lr: float, rng=None, batch_size=None, label="", every=None):
    r"""Minimise ``objective(za, zb) -> (loss, grad_za, grad_zb)`` over two encoders with Adam.

    ``encoders = (enc_a, enc_b, xa, xb)``: the encoders and their full input
    arrays of ``n`` rows.  Full batch when ``batch_size`` is None (the empirical
    loss :math:`L_N` itself), seeded mini-batches otherwise.

    Returns
    -------
    history : ndarray
        The loss at every step.
    """
    enc_a, enc_b, xa, xb = encoders
    params = enc_a.params + enc_b.params
    opt = Adam(params, lr, total_steps=steps)
    history = np.empty(steps)
    every = every or max(steps // 5, 1)
    for t in range(steps):
        if batch_size is None or batch_size >= n:
            idx = slice(None)
        else:
            idx = rng.choice(n, size=batch_size, replace=False)
        za, zb = enc_a(xa[idx]), enc_b(xb[idx])
        loss, ga, gb = objective(za, zb)
        if not math.isfinite(loss):
            raise FloatingPointError(f"{label}: loss became {loss} at step {t}")
        opt.step(enc_a.backward(ga) + enc_b.backward(gb))
        history[t] = loss
        if label and (t + 1) % every == 0:
            progress(f"{label}: step {t + 1}/{steps} loss {loss:.5f}")
    return history

