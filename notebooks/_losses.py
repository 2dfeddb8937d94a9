r"""Losses of the experiment notebooks on the library's logits, dense InfoNCE and
streaming CLIP kernel (MATH.md §1-§3; :mod:`numerics.infonce`, :mod:`numerics.kernels`).

* :func:`logits`: the rectangular logit matrix (:func:`numerics.infonce.logits`);
* :func:`clip_loss_and_grad`: :math:`L_N` and its gradients, streamed;
* :func:`one_sided_loss_and_grad`: the one-sided InfoNCE losses;
* :func:`grouped_infonce`: :math:`L_{N,\lambda}` of pairs whose second member takes few values.

Gradients in the logits go back to the embeddings through
:func:`numerics.infonce.logits_vjp`.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    # a source checkout without ``pip install -e .``
    sys.path.insert(0, str(_ROOT))

from numerics import infonce, kernels  # noqa: E402
from numerics._validation import as_choice, as_float_array, fail  # noqa: E402

__all__ = ["SERIAL_KERNEL_BELOW", "clip_loss_and_grad", "grouped_infonce", "logits", "one_sided_loss_and_grad"]


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
    on the logits of :func:`logits`; the gradients go back through
    :func:`numerics.infonce.logits_vjp`.
    """
    za, zb = _pair(za, zb, paired=True)
    conditional = as_choice(conditional, ("u|v", "v|u"), "conditional")
    lam = 1.0 if conditional == "u|v" else 0.0
    F = logits(za, zb, tau, similarity)
    ga, gb = infonce.logits_vjp(infonce.infonce_grad(F, lam), za, zb, tau, similarity)
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
