r"""Encoders and their training for the experiment notebooks (MATH.md §4, §6).

* :class:`Encoder`, :class:`Adam`, :func:`train`: small encoders and a
  first-order training loop (mini-batches);
* :func:`fit_linear_encoders`: full-batch quasi-Newton over linear encoders on
  data, from several starts and with continuation over growing subsets: the
  library's one minimiser, :func:`numerics.optimize.minimize_factors`, on the
  loss lifted by :func:`numerics.optimize.linear_encoder_objective`.

Linear encoders follow the library's convention (MATH.md §1, :mod:`numerics.gaussian`):
:math:`G_u` has shape ``(n_e, n_u)`` and the embedding of a row ``u`` is :math:`G_u u`.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    # a source checkout without ``pip install -e .``
    sys.path.insert(0, str(_ROOT))

from numerics._validation import as_float_array, fail  # noqa: E402
from numerics.optimize import linear_encoder_objective, minimize_factors  # noqa: E402

from _progress import progress  # noqa: E402

__all__ = ["BFGS_MAX_PARAMS", "Adam", "Encoder", "LinearFit", "fit_linear_encoders", "train"]


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
    r"""Result of :func:`fit_linear_encoders`: the notebooks' view of a
    :class:`numerics.optimize.FactorFit`.

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
    grad_max : float
        Largest absolute entry of that gradient (the quantity ``gtol`` bounds).
    converged : bool
        Whether the best start converged on all the data, in the sense of
        :func:`numerics.optimize.is_converged`.
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
    grad_max: float
    converged: bool
    messages: list = field(default_factory=list)
    n_evals: int = 0


#: Largest number of encoder entries fitted by dense BFGS in :func:`fit_linear_encoders`
#: (L-BFGS-B beyond): SciPy's BFGS update costs two dense products of the size of the
#: inverse Hessian per iteration, negligible for a few dozen entries and about a second
#: for a thousand.
BFGS_MAX_PARAMS = 200


def fit_linear_encoders(objective, xu, xv, n_e: int, *, starts: int = 2, rng=None, stages=(),
                        init_scale: float = 1.0, gtol: float = 1e-8, maxiter: int = 2000) -> LinearFit:
    r"""Minimise ``objective(xu @ G_u.T, xv @ G_v.T)`` over linear encoders by full-batch quasi-Newton.

    ``objective(za, zb) -> (loss, grad_za, grad_zb)`` is evaluated on the whole
    data (for example :func:`_losses.clip_loss_and_grad`, the exact :math:`L_N`).
    :func:`numerics.optimize.minimize_factors` does the minimising, BFGS up to
    :data:`BFGS_MAX_PARAMS` encoder entries and L-BFGS-B beyond, without restarts.

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
        and so on, and last on all rows (the ``stages`` of
        :func:`numerics.optimize.minimize_factors`; BFGS carries its
        inverse-Hessian estimate from stage to stage).  Only for paired data
        (``N_v = N``).
    gtol : float
        Stopping tolerance on the largest gradient entry.
    maxiter : int
        Iterations per stage.

    Returns
    -------
    LinearFit
    """
    xu = as_float_array("xu", xu, ndim=2)
    xv = as_float_array("xv", xv, ndim=2)
    if isinstance(starts, bool) or int(starts) != starts or starts < 1:
        raise fail("starts", starts, "an integer >= 1")
    n, n_u, n_v = xu.shape[0], xu.shape[1], xv.shape[1]
    sizes = [int(s) for s in stages if s < n]
    if sizes and xv.shape[0] != n:
        raise fail("stages", stages, "no stages unless xu and xv are paired (same number of rows)")
    evals = [0]

    def counted(za, zb):
        evals[0] += 1
        return objective(za, zb)

    final = linear_encoder_objective(counted, xu, xv)
    fit = minimize_factors(
        final, n_u, n_v, n_e, starts=int(starts), rng=rng, gtol=gtol, maxiter=maxiter, restarts=0,
        init_scale=(init_scale / math.sqrt(n_u), init_scale / math.sqrt(n_v)), warn=False,
        method="BFGS" if n_e * (n_u + n_v) <= BFGS_MAX_PARAMS else "L-BFGS-B", wide=True,
        stages=[linear_encoder_objective(counted, xu[:m], xv[:m]) for m in sizes])
    _, (g_u, g_v) = final(fit.G_u, fit.G_v)
    grad_norm = max(float(np.linalg.norm(g_u) * np.linalg.norm(fit.G_u)),
                    float(np.linalg.norm(g_v) * np.linalg.norm(fit.G_v)))
    return LinearFit(G_u=fit.G_u, G_v=fit.G_v, loss=fit.value, start_losses=fit.start_values,
                     start_encoders=fit.start_factors, grad_norm=grad_norm, grad_max=fit.grad_norm,
                     converged=fit.converged, messages=fit.messages, n_evals=evals[0])
