r"""Shared helpers of the experiment notebooks (MATH.md §1-§3, §5, §6).

* :func:`setup`: the one bootstrap of every notebook (command line, output
  paths, seed, clock), the same whether the file runs as a script or as a
  notebook;
* :func:`show_figure`, :func:`write_json`, :func:`progress`: outputs;
* :func:`logits`, :func:`logits_backward`, :func:`clip_loss_and_grad`,
  :func:`one_sided_loss_and_grad`, :func:`grouped_infonce`: losses built on the
  library's logits, dense InfoNCE and streaming CLIP kernel
  (:mod:`numerics.infonce`, :mod:`numerics.kernels`);
* :class:`Encoder`, :class:`Adam`, :func:`train`: small encoders and a
  first-order training loop (mini-batches);
* :func:`fit_linear_encoders`: full-batch BFGS over linear encoders, from
  several starts;
* :func:`bank_mean`: importance-weighted bank means of a model conditional;
* :func:`loglog_slope`, :func:`percentile_interval`: the statistics of the
  reports.

Linear encoders follow the library's convention (MATH.md §1, :mod:`numerics.gaussian`):
:math:`G_u` has shape ``(n_e, n_u)``, the embedding of a row ``u`` is :math:`G_u u`,
and with the bilinear similarity :math:`A = G_u^T G_v / \tau`, :math:`f(u, v) = u^T A v`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    # a source checkout without ``pip install -e .``
    sys.path.insert(0, str(_ROOT))

from numerics import infonce, kernels  # noqa: E402
from numerics._validation import InvalidInputError, as_choice, as_float_array, as_temperature, fail  # noqa: E402

__all__ = [
    "InvalidInputError",
    "NOTEBOOK_ARGS",
    "SIMILARITIES",
    "Adam",
    "Encoder",
    "LinearFit",
    "Run",
    "bank_mean",
    "clip_loss_and_grad",
    "fit_linear_encoders",
    "grouped_infonce",
    "in_notebook",
    "logits",
    "logits_backward",
    "loglog_slope",
    "one_sided_loss_and_grad",
    "percentile_interval",
    "progress",
    "setup",
    "show_figure",
    "train",
    "write_json",
]

SIMILARITIES = infonce.SIMILARITIES

#: Environment variable read for the options when the file runs inside a
#: Jupyter kernel, whose own ``sys.argv`` is not ours (for example
#: ``NOTEBOOK_ARGS="--quick --outdir /tmp/nb"``).
NOTEBOOK_ARGS = "NOTEBOOK_ARGS"


# --------------------------------------------------------------------------
# the bootstrap of every notebook
# --------------------------------------------------------------------------
def in_notebook() -> bool:
    """Whether the code runs inside a Jupyter (IPython) kernel."""
    return "ipykernel" in sys.modules


@dataclass
class Run:
    """What :func:`setup` returns: the options and the paths of one run."""

    name: str
    args: argparse.Namespace
    quick: bool
    seed: int
    outdir: Path
    json_path: Path
    t0: float

    def elapsed(self) -> float:
        """Seconds since :func:`setup`."""
        return time.perf_counter() - self.t0


def _single_threaded_blas():
    """Keep NumPy's BLAS on one thread for the rest of the process.

    The notebooks multiply small matrices (a few thousand rows by at most 64
    columns), where BLAS threads cost more than they save: on a loaded 2-core
    machine a (1438, 64) x (64, 16) product and its transpose took 13 ms with
    the default threads and 0.9 ms with one.  The streaming kernel has its own
    (numba) threads and is not affected.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def setup(name: str, description: str, argv=None, *, extra=None) -> Run:
    r"""Parse ``[--quick] [--json PATH] [--outdir DIR] [--seed S]`` and start the clock.

    As a script the options come from the command line.  Inside a Jupyter
    kernel ``sys.argv`` holds the kernel's own arguments, so the options come
    from the environment variable :data:`NOTEBOOK_ARGS` instead (empty: full
    run, outputs in ``out/notebooks``).  ``extra`` is an optional callable
    that adds notebook-specific options to the parser.  NumPy's BLAS is kept
    on one thread from here on (:func:`_single_threaded_blas`).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small run for CI (< 3 minutes)")
    parser.add_argument("--json", type=Path, default=None, help="where to write the metrics (default OUTDIR/NAME.json)")
    parser.add_argument("--outdir", type=Path, default=Path("out") / "notebooks", help="folder for figures and JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    if extra is not None:
        extra(parser)
    if argv is None:
        argv = shlex.split(os.environ.get(NOTEBOOK_ARGS, "")) if in_notebook() else sys.argv[1:]
    args = parser.parse_args(argv)
    _single_threaded_blas()
    return Run(name=name, args=args, quick=bool(args.quick), seed=int(args.seed), outdir=args.outdir,
               json_path=args.json or args.outdir / f"{name}.json", t0=time.perf_counter())


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
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if not math.isfinite(value):
            raise fail("metrics", value, "finite numbers only (JSON has no NaN)")
        return value
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path, metrics: dict) -> Path:
    """Write ``metrics`` as indented JSON (numpy scalars converted, NaN refused)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=False) + "\n")
    return path


def show_figure(fig, outdir, name: str, *, max_bytes: int = 300_000, dpi: int = 110) -> Path:
    """Save ``fig`` as ``OUTDIR/NAME.png`` (resolution lowered until below ``max_bytes``) and show it.

    In a notebook the figure stays open, so the inline backend draws it under
    the cell; in a script it is closed once saved.  No backend is chosen here:
    ``MPLBACKEND`` or matplotlib's default decides.
    """
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
    if not in_notebook():
        plt.close(fig)
    return path


# --------------------------------------------------------------------------
# logits and losses on top of numerics.infonce and numerics.kernels (MATH.md §1-§3)
# --------------------------------------------------------------------------
def _pair(za, zb, *, paired):
    za = as_float_array("za", za, ndim=2).astype(np.float64, copy=False)
    zb = as_float_array("zb", zb, ndim=2).astype(np.float64, copy=False)
    if za.shape[1] != zb.shape[1] or za.shape[0] == 0 or zb.shape[0] == 0:
        raise fail("zb", zb, f"a non-empty (m, {za.shape[1]}) array matching za of shape {za.shape}")
    if paired and za.shape[0] != zb.shape[0]:
        raise fail("zb", zb, f"as many rows as za ({za.shape[0]}): the pairs (za_i, zb_i)")
    return za, zb


def logits(za, zb, tau, similarity="dot"):
    r"""Rectangular logit matrix :math:`F_{ij} = s(a_i, b_j)/\tau`, shape ``(n, m)`` (MATH.md §1).

    The library's one logit implementation, :func:`numerics.infonce.logits`
    (whose formula :func:`numerics.kernels.clip_logits` also uses for a square
    batch): ``dot`` :math:`\langle a, b\rangle`, ``cosine``
    :math:`\langle a/|a|, b/|b|\rangle`, ``l2`` :math:`-|a - b|^2/2`.
    """
    return infonce.logits(za, zb, tau, similarity)


def _unit(z):
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    return z / norms, norms


def logits_backward(dF, za, zb, tau, similarity="dot"):
    r"""Gradients in ``za`` and ``zb`` of a scalar :math:`\Phi(F)` given :math:`\partial\Phi/\partial F`.

    The chain rule through :math:`F_{ij} = s(a_i, b_j)/\tau`:

    * ``dot``: :math:`\partial_a = dF\,b/\tau`, :math:`\partial_b = dF^T a/\tau`;
    * ``cosine``: the same on the unit vectors, then the derivative of
      :math:`z \mapsto z/|z|`, :math:`(I - \hat z\hat z^T)/|z|`;
    * ``l2``: :math:`\partial_{a_i} = -\sum_j dF_{ij}(a_i - b_j)/\tau`,
      :math:`\partial_{b_j} = \sum_i dF_{ij}(a_i - b_j)/\tau`.
    """
    za, zb = _pair(za, zb, paired=False)
    dF = as_float_array("dF", dF, ndim=2)
    if dF.shape != (za.shape[0], zb.shape[0]):
        raise fail("dF", dF, f"shape {(za.shape[0], zb.shape[0])}, one entry per logit")
    tau = as_temperature(tau)
    similarity = infonce.as_similarity(similarity)
    if similarity == "dot":
        return dF @ zb / tau, dF.T @ za / tau
    if similarity == "cosine":
        na, ra = _unit(za)
        nb, rb = _unit(zb)
        ga, gb = dF @ nb / tau, dF.T @ na / tau
        ga = (ga - na * (ga * na).sum(1, keepdims=True)) / ra
        gb = (gb - nb * (gb * nb).sum(1, keepdims=True)) / rb
        return ga, gb
    rows, cols = dF.sum(1), dF.sum(0)
    return -(rows[:, None] * za - dF @ zb) / tau, -(cols[:, None] * zb - dF.T @ za) / tau


#: Below this batch size the streaming kernel runs on one numba thread:
#: measured on a loaded 2-core machine, a parallel launch cost 60-100 ms per
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


def clip_loss_and_grad(za, zb, tau, similarity="dot"):
    r"""Finite-sample CLIP loss :math:`L_N` (MATH.md §2) and its gradients in ``za`` and ``zb``.

    :func:`numerics.kernels.clip_loss_and_grad` (streamed, exact), on one
    numba thread below :data:`SERIAL_KERNEL_BELOW` pairs.
    """
    za, zb = np.asarray(za), np.asarray(zb)
    with _kernel_threads(za.shape[0] if za.ndim else 0):
        loss, ga, gb = kernels.clip_loss_and_grad(za, zb, tau, similarity)
    return float(loss), np.asarray(ga), np.asarray(gb)


def one_sided_loss_and_grad(za, zb, tau, similarity="dot", conditional="u|v"):
    r"""One-sided finite-sample InfoNCE loss (MATH.md §3, :math:`\lambda \in \{0, 1\}`) and gradients.

    ``conditional="u|v"`` (:math:`\lambda = 1`) keeps only the column-wise
    cross-entropy, the finite-sample form of :math:`E_{\mu_v} KL(\mu_{u|v}\,\|\,\nu_{u|v})`
    up to constants:

    .. math:: L = -\frac1N \sum_i F_{ii} + \frac1N \sum_j \log \sum_i e^{F_{ij}},
              \qquad \partial L/\partial F = (Q - I)/N,

    with :math:`Q` the softmax over each column.  ``conditional="v|u"``
    (:math:`\lambda = 0`) uses the rows instead.  Loss and :math:`\partial L/\partial F`
    are :func:`numerics.infonce.infonce_loss` and :func:`numerics.infonce.infonce_grad`
    on the logits of :func:`logits`; the gradients go back through :func:`logits_backward`.
    """
    za, zb = _pair(za, zb, paired=True)
    conditional = as_choice(conditional, ("u|v", "v|u"), "conditional")
    lam = 1.0 if conditional == "u|v" else 0.0
    F = logits(za, zb, tau, similarity)
    ga, gb = logits_backward(infonce.infonce_grad(F, lam), za, zb, tau, similarity)
    return infonce.infonce_loss(F, lam), ga, gb


def grouped_infonce(H, labels, lam=0.5):
    r"""InfoNCE loss :math:`L_{N,\lambda}` of pairs whose second member takes few values, and its gradient.

    When the pairs are :math:`(u_i, w_{y_i})` with :math:`y_i \in \{0..K-1\}`
    (an image and one of ``K`` labels), the :math:`N \times N` logits are
    :math:`F_{ij} = H_{i y_j}` with :math:`H_{ik} = f(u_i, w_k)`, so

    .. math:: L_{N,\lambda} = -\frac1N\sum_i H_{iy_i}
              + \frac{1-\lambda}N \sum_i \log\sum_k n_k e^{H_{ik}}
              + \frac{\lambda}N \sum_k n_k \log\sum_i e^{H_{ik}},

    with :math:`n_k` the number of pairs with label ``k``: the loss of
    MATH.md §2 (:math:`\lambda = \tfrac12`) or §3 (:math:`\lambda = 1`: the
    :math:`u|v` cross-entropy only) in :math:`O(NK)` instead of :math:`O(N^2)`.

    Returns
    -------
    loss : float
    dH : ndarray, shape (N, K)
        :math:`\partial L_{N,\lambda}/\partial H`.
    """
    H = as_float_array("H", H, ndim=2)
    labels = np.asarray(labels)
    n, k = H.shape
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= k:
        raise fail("labels", labels, f"{n} integer labels in 0..{k - 1}, one per row of H")
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:
        raise fail("lam", lam, "a number in [0, 1]")
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    rows = np.arange(n)
    with np.errstate(divide="ignore"):
        log_counts = np.log(counts)  # -inf for an absent label: it is no candidate
    R = H + log_counts
    row_lse = infonce.logsumexp(R, axis=1)
    col_lse = infonce.logsumexp(H, axis=0)
    loss = -H[rows, labels].mean() + (1 - lam) * row_lse.mean() + lam * (counts @ col_lse) / n
    dH = (1 - lam) * np.exp(R - row_lse[:, None]) / n + lam * np.exp(H - col_lse) * counts / n
    dH[rows, labels] -= 1.0 / n
    return float(loss), dH


# --------------------------------------------------------------------------
# model conditional by self-normalised importance weighting (MATH.md §5)
# --------------------------------------------------------------------------
def bank_mean(F, bank, weights=None):
    r"""Self-normalised importance-weighted bank means of a model conditional (MATH.md §5).

    For query ``q`` and bank items ``x_j ~ mu``, ``F[q, j] = f(q, x_j)``; the
    estimate of :math:`E_{\nu}[x \mid q]` is :math:`\sum_j w_{qj} x_j` with
    :math:`w_{qj} \propto c_j e^{F_{qj}}`, where the multiplicities
    :math:`c_j` (``weights``, default 1) let a resampled bank be used without
    copying it.

    Returns
    -------
    means : ndarray, shape (n_queries, dim)
    ess : ndarray, shape (n_queries,)
        Effective sample size :math:`(\sum_j c_j w_{qj})^2/\sum_j c_j w_{qj}^2`
        of each weighting, in bank items; a small value means the bank is too
        small for that conditional.
    """
    F = as_float_array("F", F, ndim=2)
    bank = as_float_array("bank", bank, ndim=2)
    if bank.shape[0] != F.shape[1]:
        raise fail("bank", bank, f"{F.shape[1]} rows, one per column of F")
    c = np.ones(F.shape[1]) if weights is None else as_float_array("weights", weights, ndim=1)
    if c.shape != (F.shape[1],) or np.any(c < 0) or not np.any(c > 0):
        raise fail("weights", weights, f"{F.shape[1]} non-negative multiplicities, not all zero")
    keep = c > 0
    E = np.exp(F[:, keep] - F[:, keep].max(1, keepdims=True)) * c[keep]
    W = E / E.sum(1, keepdims=True)
    per_item = W / c[keep]
    return W @ bank[keep], 1.0 / (c[keep] * per_item**2).sum(1)


# --------------------------------------------------------------------------
# encoders, optimisers, training
# --------------------------------------------------------------------------
class Encoder:
    r"""Linear map or one-hidden-layer perceptron :math:`x \mapsto W_2 \tanh(W_1 x + b_1) + b_2`.

    ``hidden=0`` gives the linear encoder :math:`x \mapsto G x` (plus ``b`` if
    ``bias``), the class of MATH.md §4, with :math:`G` of shape
    ``(n_out, n_in)`` as in :mod:`numerics.gaussian`.  Inputs are rows: a
    batch ``x`` of shape ``(N, n_in)`` maps to ``x @ G.T``.  Parameters live in
    :attr:`params` (a list the optimiser updates in place); :meth:`forward`
    keeps what :meth:`backward` needs.
    """

    def __init__(self, rng, n_in: int, n_out: int, *, hidden: int = 0, bias: bool = False, scale: float = 1.0):
        self.hidden = int(hidden)
        self.bias = bool(bias)
        if self.hidden:
            W1 = rng.normal(size=(hidden, n_in)) * math.sqrt(1.0 / n_in)
            W2 = rng.normal(size=(n_out, hidden)) * math.sqrt(1.0 / hidden) * scale
            self.params = [W1, np.zeros(hidden), W2, np.zeros(n_out)]
        else:
            G = rng.normal(size=(n_out, n_in)) * math.sqrt(1.0 / n_in) * scale
            self.params = [G] + ([np.zeros(n_out)] if self.bias else [])
        self._cache = None

    def forward(self, x):
        if self.hidden:
            W1, b1, W2, b2 = self.params
            h = np.tanh(x @ W1.T + b1)
            self._cache = (x, h)
            return h @ W2.T + b2
        self._cache = (x,)
        out = x @ self.params[0].T
        return out + self.params[1] if self.bias else out

    __call__ = forward

    def backward(self, grad_out):
        """Gradients of the parameters given the gradient of the last :meth:`forward` output."""
        if self.hidden:
            x, h = self._cache
            W1, b1, W2, b2 = self.params
            gh = (grad_out @ W2) * (1.0 - h**2)
            return [gh.T @ x, gh.sum(0), grad_out.T @ h, grad_out.sum(0)]
        (x,) = self._cache
        grads = [grad_out.T @ x]
        return grads + [grad_out.sum(0)] if self.bias else grads

    @property
    def matrix(self):
        """The matrix :math:`G` (shape ``(n_out, n_in)``) of a linear encoder."""
        if self.hidden:
            raise AttributeError("a perceptron encoder has no single matrix")
        return self.params[0]


class Adam:
    r"""Adam (Kingma & Ba) on a list of arrays updated in place.

    The step size follows a cosine decay from ``lr`` to ``lr * final_fraction``
    over ``total_steps``, so that a fixed budget of steps ends close to a
    stationary point instead of hovering at the noise floor of a fixed step.
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
    arrays of ``n`` rows.  Full batch when ``batch_size`` is None or at least
    ``n`` (the empirical loss :math:`L_N` itself); otherwise mini-batches
    drawn without replacement from ``rng`` (``numpy.random.default_rng(0)``
    when ``rng`` is None, so that a run is reproducible).

    Returns
    -------
    history : ndarray
        The loss at every step.
    """
    enc_a, enc_b, xa, xb = encoders
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1):
        raise fail("batch_size", batch_size, "None or an integer >= 1")
    full = batch_size is None or batch_size >= n
    if not full and rng is None:
        rng = np.random.default_rng(0)
    params = enc_a.params + enc_b.params
    opt = Adam(params, lr, total_steps=steps)
    history = np.empty(steps)
    every = every or max(steps // 5, 1)
    for t in range(steps):
        idx = slice(None) if full else rng.choice(n, size=int(batch_size), replace=False)
        za, zb = enc_a(xa[idx]), enc_b(xb[idx])
        loss, ga, gb = objective(za, zb)
        if not math.isfinite(loss):
            raise FloatingPointError(f"{label}: loss became {loss} at step {t}")
        opt.step(enc_a.backward(ga) + enc_b.backward(gb))
        history[t] = loss
        if label and (t + 1) % every == 0:
            progress(f"{label}: step {t + 1}/{steps} loss {loss:.5f}")
    return history


@dataclass
class LinearFit:
    r"""Result of :func:`fit_linear_encoders`.

    Attributes
    ----------
    G_u : ndarray, shape (n_e, n_u)
    G_v : ndarray, shape (n_e, n_v)
        The encoders of the start with the lowest final loss.
    loss : float
        Its loss.
    start_losses : ndarray
        Final loss of every start; ``start_losses.max() - start_losses.min()``
        is the spread between starts.
    start_encoders : list of (G_u, G_v)
        Final encoders of every start.
    grad_norm : float
        :math:`\max(\|\nabla_{G_u} L\|\,\|G_u\|,\ \|\nabla_{G_v} L\|\,\|G_v\|)` at the
        best start (Frobenius norms).  The product does not change when an
        encoder is rescaled, so it is comparable across similarities
        (cosine is blind to the scale of each encoder).
    converged : bool
        Whether the best start met the optimiser's convergence test at the last stage.
    messages : list of str
        The optimiser's final message for every start.
    n_evals : int
        Loss and gradient evaluations, all starts and stages.
    """

    G_u: np.ndarray
    G_v: np.ndarray
    loss: float
    start_losses: np.ndarray
    start_encoders: list
    grad_norm: float
    converged: bool
    messages: list = field(default_factory=list)
    n_evals: int = 0


def _positive_definite(H, floor=1e-8):
    """Symmetric part of ``H`` with its eigenvalues raised to ``floor`` times the largest.

    BFGS's inverse-Hessian estimate is positive definite in exact arithmetic;
    along the invariances of the loss (flat directions) rounding can leave it
    barely indefinite, which SciPy refuses as a starting estimate.
    """
    w, Q = np.linalg.eigh(0.5 * (H + H.T))
    P = (Q * np.maximum(w, floor * w.max())) @ Q.T
    return 0.5 * (P + P.T)  # exactly symmetric, as SciPy checks


#: Largest number of encoder entries fitted by dense BFGS in :func:`fit_linear_encoders`.
BFGS_MAX_PARAMS = 200


def fit_linear_encoders(objective, xu, xv, n_e: int, *, starts: int = 2, rng=None, stages=(),
                        init_scale: float = 1.0, gtol: float = 1e-8, maxiter: int = 2000) -> LinearFit:
    r"""Minimise ``objective(xu @ G_u.T, xv @ G_v.T)`` over linear encoders by full-batch quasi-Newton.

    ``objective(za, zb) -> (loss, grad_za, grad_zb)`` is evaluated on the whole
    data (for example :func:`clip_loss_and_grad`, the exact :math:`L_N`); the
    chain rule gives :math:`\nabla_{G_u} = (\partial L/\partial z_a)^T x_u`.
    BFGS (dense quasi-Newton) up to :data:`BFGS_MAX_PARAMS` encoder entries,
    L-BFGS beyond: SciPy's BFGS update costs two dense products of the size
    of the inverse Hessian per iteration, negligible for a few dozen entries
    and about a second for a thousand.

    Parameters
    ----------
    objective : callable
    xu : ndarray, shape (N, n_u)
    xv : ndarray, shape (N_v, n_v)
        Rows of the second input (``N_v = N`` for paired data; the objective
        decides how rows are paired).
    n_e : int
        Latent dimension.
    starts : int
        Independent random starts (entries :math:`N(0, \text{init\_scale}^2/n_{in})`);
        the start with the lowest final loss is kept.
    rng : numpy.random.Generator, optional
        Source of the starts (``default_rng(0)`` if omitted).
    stages : sequence of int
        Continuation: each start is first fitted on the first ``stages[0]``
        rows of ``xu`` and ``xv``, then from there on the first ``stages[1]``,
        and so on, and last on all rows.  On a large data set the early stages
        are cheap and leave few iterations to the expensive last one (BFGS
        also carries its inverse-Hessian estimate from stage to stage).  Only
        for paired data (``N_v = N``).
    gtol : float
        Stopping tolerance on the largest gradient entry.
    maxiter : int
        Iterations per stage.

    Returns
    -------
    LinearFit
    """
    from scipy.optimize import minimize

    xu = as_float_array("xu", xu, ndim=2)
    xv = as_float_array("xv", xv, ndim=2)
    if isinstance(starts, bool) or int(starts) != starts or starts < 1:
        raise fail("starts", starts, "an integer >= 1")
    n, n_u, n_v = xu.shape[0], xu.shape[1], xv.shape[1]
    sizes = [int(s) for s in stages if s < n] + [n]
    if len(sizes) > 1 and xv.shape[0] != n:
        raise fail("stages", stages, "no stages unless xu and xv are paired (same number of rows)")
    rng = np.random.default_rng(0) if rng is None else rng
    k = n_e * n_u
    evals = [0]
    if n_e * (n_u + n_v) <= BFGS_MAX_PARAMS:
        method, options = "BFGS", {"gtol": gtol, "maxiter": maxiter}
    else:
        method, options = "L-BFGS-B", {"gtol": gtol, "maxiter": maxiter, "maxcor": 30, "ftol": 1e-15}

    def fun(x, m):
        G_u, G_v = x[:k].reshape(n_e, n_u), x[k:].reshape(n_e, n_v)
        a, b = xu[:m], (xv[:m] if m < n else xv)
        loss, ga, gb = objective(a @ G_u.T, b @ G_v.T)
        evals[0] += 1
        return loss, np.concatenate([(ga.T @ a).ravel(), (gb.T @ b).ravel()])

    results = []
    for _ in range(int(starts)):
        x = np.concatenate([rng.normal(size=k) / math.sqrt(n_u), rng.normal(size=n_e * n_v) / math.sqrt(n_v)])
        x *= init_scale
        hess_inv = None
        for m in sizes:
            opts = dict(options)
            if method == "BFGS" and hess_inv is not None:
                # L_N is a mean over pairs: its curvature hardly changes from one stage to the
                # next, so the last estimate saves the iterations that rebuild it
                opts["hess_inv0"] = hess_inv
            res = minimize(fun, x, args=(m,), jac=True, method=method, options=opts)
            x = res.x
            hess_inv = _positive_definite(res.hess_inv) if method == "BFGS" else None
        results.append(res)
    best = min(results, key=lambda r: r.fun)
    G_u, G_v = best.x[:k].reshape(n_e, n_u), best.x[k:].reshape(n_e, n_v)
    _, g = fun(best.x, n)
    grad_norm = max(float(np.linalg.norm(g[:k]) * np.linalg.norm(G_u)), float(np.linalg.norm(g[k:]) * np.linalg.norm(G_v)))
    return LinearFit(
        G_u=G_u.copy(), G_v=G_v.copy(), loss=float(best.fun),
        start_losses=np.array([float(r.fun) for r in results]),
        start_encoders=[(r.x[:k].reshape(n_e, n_u).copy(), r.x[k:].reshape(n_e, n_v).copy()) for r in results],
        grad_norm=grad_norm, converged=bool(best.success), messages=[str(r.message) for r in results],
        n_evals=evals[0],
    )


# --------------------------------------------------------------------------
# statistics of the reports
# --------------------------------------------------------------------------
def loglog_slope(n, values, level: float = 0.95):
    r"""Least-squares slope of :math:`\log y` against :math:`\log n`, with a t confidence interval.

    Every ``(n_i, y_i)`` is one independent run (repeats at the same ``n``
    are separate points), so the ordinary least-squares standard error with
    ``len(n) - 2`` degrees of freedom applies.

    Returns
    -------
    slope, intercept : float
        :math:`\log y \approx \text{intercept} + \text{slope}\,\log n`.
    interval : tuple of float
        The ``level`` confidence interval of the slope.
    """
    from scipy import stats

    x = np.log(as_float_array("n", n, ndim=1))
    y = np.log(as_float_array("values", values, ndim=1))
    if x.shape != y.shape or x.size < 3 or np.ptp(x) == 0:
        raise fail("n", n, "at least 3 points with at least 2 distinct n, as many as values")
    X = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    dof = x.size - 2
    se = math.sqrt(float(resid @ resid) / dof / float(((x - x.mean()) ** 2).sum()))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return float(coef[1]), float(coef[0]), (float(coef[1] - half), float(coef[1] + half))


def percentile_interval(samples, level: float = 0.95):
    """Equal-tailed percentile interval of bootstrap ``samples`` (an array of replicates)."""
    samples = as_float_array("samples", samples, ndim=1)
    if samples.size < 2:
        raise fail("samples", samples, "at least 2 bootstrap replicates")
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
