r"""Similarities, logits and the dense InfoNCE family (MATH.md §1, §2).

The one vocabulary of similarities, :data:`SIMILARITIES`, with
:math:`s(a, b)` for embeddings :math:`a = G_u u`, :math:`b = G_v v`:

* ``"dot"`` :math:`\langle a, b\rangle` (the bilinear logit :math:`u^TAv` of
  MATH.md §4.1 when :math:`A = G_u^TG_v/\tau`; ``"bilinear"`` is accepted as a
  synonym by :func:`as_similarity`),
* ``"l2"`` :math:`-|a - b|^2/2` (MATH.md §4.2),
* ``"cosine"`` :math:`\langle a/|a|, b/|b|\rangle` (MATH.md §4.3).

The logit of a pair is :math:`f = s/\tau`.  :func:`logits` gives the
rectangular matrix :math:`f(a_i, b_k)` of two sets (a batch, or a batch against
a bank); :func:`paired_logits` its diagonal; :func:`logits_vjp` pulls a
gradient in the logits back to the embeddings.

The dense :math:`\lambda`-balanced InfoNCE loss of a square logit matrix
(positives on the diagonal, rows indexed by :math:`u`) is

.. math:: L_{N,\lambda}(F) = -\frac1N\sum_i F_{ii}
          + \frac{1-\lambda}{N}\sum_i \log\sum_j e^{F_{ij}}
          + \frac{\lambda}{N}\sum_j \log\sum_i e^{F_{ij}},

with gradient :math:`((1-\lambda)P + \lambda Q - I)/N` (``P`` the row softmax,
``Q`` the column softmax).  :math:`\lambda = \tfrac12` is the symmetric CLIP
loss :math:`L_N` of MATH.md §2; :math:`L_{N,\lambda} - \log N` estimates
:math:`L_\lambda - I` (MATH.md §3).  :func:`stacked_infonce_loss` is the loss of
many batches of embeddings at once (a leading batch axis).  The streaming kernel
(:mod:`numerics.kernels`) computes :math:`L_N` without forming ``F``; the
functions here are the dense references for small ``N``.
"""
from __future__ import annotations

import numpy as np

from ._validation import as_choice, as_float_array, as_lambda, as_temperature, fail

__all__ = [
    "SIMILARITIES",
    "as_similarity",
    "logits",
    "paired_logits",
    "logits_vjp",
    "infonce_loss",
    "stacked_infonce_loss",
    "infonce_grad",
    "logsumexp",
]

#: The similarity names of the whole toolkit.
SIMILARITIES = ("dot", "l2", "cosine")
#: Accepted synonyms, mapped to their name in :data:`SIMILARITIES`.
SIMILARITY_SYNONYMS = {"bilinear": "dot"}


def as_similarity(value, name: str = "similarity", choices=SIMILARITIES) -> str:
    """Validate a similarity name (a synonym maps to its canonical name).

    ``choices`` restricts the accepted names (a subset of :data:`SIMILARITIES`)
    for a caller that supports only some of them.
    """
    if isinstance(value, str) and value in SIMILARITY_SYNONYMS:
        value = SIMILARITY_SYNONYMS[value]
    return as_choice(value, tuple(choices), name)


def check_nonzero_rows(name: str, z: np.ndarray) -> None:
    """Refuse embeddings with a zero row under cosine similarity (no direction)."""
    norms = row_norms(z)
    if np.any(norms == 0):
        k = int(np.flatnonzero(norms.ravel() == 0)[0])
        raise fail(name, z, f"embeddings of non-zero norm for cosine similarity (row {k} is 0)")


def row_norms(z):
    """Euclidean norms along the last axis without overflow or underflow
    (each row is scaled by its largest absolute entry first)."""
    m = np.max(np.abs(z), axis=-1).astype(np.float64)
    safe = np.where(m > 0, m, 1.0)
    return m * np.linalg.norm(z / safe[..., None].astype(z.dtype), axis=-1)


def _logits(za, zb, tau, similarity):
    r"""Logits :math:`s(a_i, b_k)/\tau`, shape (..., n, m); no checking.

    Works on stacks (leading axes).  ``"l2"`` expands
    :math:`-|a-b|^2/2 = \langle a, b\rangle - |a|^2/2 - |b|^2/2` after moving
    both sets by their common mean (distances are translation invariant), so
    that the cancellation is relative to the spread of the data, not to its
    offset.
    """
    if similarity == "dot":
        S = za @ np.swapaxes(zb, -1, -2)
    elif similarity == "cosine":
        a = za / row_norms(za)[..., None].astype(za.dtype)
        b = zb / row_norms(zb)[..., None].astype(zb.dtype)
        S = a @ np.swapaxes(b, -1, -2)
    else:
        c = 0.5 * (za.mean(axis=-2, keepdims=True) + zb.mean(axis=-2, keepdims=True))
        a, b = za - c, zb - c
        S = (a @ np.swapaxes(b, -1, -2) - 0.5 * np.sum(a * a, axis=-1)[..., :, None]
             - 0.5 * np.sum(b * b, axis=-1)[..., None, :])
    return S / tau


def _paired(za, zb, tau, similarity):
    if similarity == "dot":
        s = np.einsum("...ij,...ij->...i", za, zb)
    elif similarity == "cosine":
        s = np.einsum("...ij,...ij->...i", za / row_norms(za)[..., None],
                      zb / row_norms(zb)[..., None])
    else:
        s = -0.5 * np.sum((za - zb) ** 2, axis=-1)
    return s / tau


def _embeddings(za, zb, similarity, *, paired):
    za = as_float_array("za", za, ndim=2).astype(np.float64, copy=False)
    zb = as_float_array("zb", zb, ndim=2).astype(np.float64, copy=False)
    if za.shape[1] != zb.shape[1] or za.shape[1] < 1:
        raise fail("zb", zb, f"embeddings of dimension {za.shape[1]} like za")
    if paired and za.shape[0] != zb.shape[0]:
        raise fail("zb", zb, f"as many rows as za ({za.shape[0]} pairs)")
    if similarity == "cosine":
        check_nonzero_rows("za", za)
        check_nonzero_rows("zb", zb)
    return za, zb


def _finite(out, name, value):
    if not np.all(np.isfinite(out)):
        raise fail(name, value, "embeddings whose logits s(a, b)/tau are finite in float64 "
                                "(rescale the embeddings or raise tau)")
    return out


def logits(za, zb, tau=1.0, similarity="dot"):
    r"""Logit matrix :math:`F_{ik} = s(a_i, b_k)/\tau` of two sets of embeddings (MATH.md §1).

    Parameters
    ----------
    za : array_like, shape (n, n_e)
    zb : array_like, shape (m, n_e)
    tau : float
        Temperature, > 0.
    similarity : {"dot", "l2", "cosine"}

    Returns
    -------
    ndarray, shape (n, m)
        For a batch of pairs (``m = n``) the positives lie on the diagonal.

    Raises
    ------
    numerics.InvalidInputError
        Non-finite or mis-shaped embeddings, a zero embedding under cosine
        similarity, logits that overflow.
    """
    similarity = as_similarity(similarity)
    tau = as_temperature(tau)
    za, zb = _embeddings(za, zb, similarity, paired=False)
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite(_logits(za, zb, tau, similarity), "za", za)


def paired_logits(za, zb, tau=1.0, similarity="dot"):
    r"""Logits :math:`f(a_i, b_i)` of the positive pairs only, shape (n,): the diagonal
    of :func:`logits` at :math:`O(n\,n_e)` cost."""
    similarity = as_similarity(similarity)
    tau = as_temperature(tau)
    za, zb = _embeddings(za, zb, similarity, paired=True)
    with np.errstate(over="ignore", invalid="ignore"):
        return _finite(_paired(za, zb, tau, similarity), "za", za)


def _unit_vjp(g, unit, norms):
    r"""Gradient in :math:`z` from :math:`g = \partial L/\partial\hat z` through the
    normalisation :math:`\hat z = z/|z|`: :math:`(I - \hat z\hat z^T)g/|z|`, row by row; no checking."""
    return (g - unit * np.sum(g * unit, axis=-1, keepdims=True)) / norms


def _logits_vjp(dF, za, zb, tau, similarity):
    r"""Vector-Jacobian product of :func:`_logits`: ``(dza, dzb)`` from ``dF``; no checking.

    Works on stacks (leading axes).  Under ``"cosine"`` ``za``, ``zb`` are the raw
    (unnormalised) embeddings and the result is the gradient with respect to them.
    """
    swap = lambda x: np.swapaxes(x, -1, -2)  # noqa: E731
    if similarity == "dot":
        return dF @ zb / tau, swap(dF) @ za / tau
    if similarity == "cosine":
        ra, rb = row_norms(za)[..., None], row_norms(zb)[..., None]
        a, b = za / ra, zb / rb
        return _unit_vjp(dF @ b / tau, a, ra), _unit_vjp(swap(dF) @ a / tau, b, rb)
    rows, cols = np.sum(dF, axis=-1)[..., None], np.sum(dF, axis=-2)[..., None]
    return (dF @ zb - rows * za) / tau, (swap(dF) @ za - cols * zb) / tau


def logits_vjp(dF, za, zb, tau=1.0, similarity="dot"):
    r"""Gradients in ``za`` and ``zb`` of a scalar :math:`\Phi(F)` of the logits
    :math:`F = ` :func:`logits` ``(za, zb, tau, similarity)``, given :math:`dF = \partial\Phi/\partial F`.

    The chain rule through :math:`F_{ik} = s(a_i, b_k)/\tau`:

    * ``dot``: :math:`\partial_a = dF\,b/\tau`, :math:`\partial_b = dF^T a/\tau`;
    * ``cosine``: the same with the unit vectors :math:`\hat a = a/|a|`, :math:`\hat b`,
      then the derivative of :math:`z \mapsto z/|z|`, :math:`(I - \hat z\hat z^T)/|z|`:
      :math:`\partial_{a_i} = (I - \hat a_i\hat a_i^T)(dF\,\hat b)_i/(\tau|a_i|)`;
    * ``l2``: :math:`\partial_{a_i} = -\sum_k dF_{ik}(a_i - b_k)/\tau`,
      :math:`\partial_{b_k} = \sum_i dF_{ik}(a_i - b_k)/\tau`.

    Parameters
    ----------
    dF : array_like, shape (n, m)
    za : array_like, shape (n, n_e)
    zb : array_like, shape (m, n_e)
        Raw embeddings (under ``cosine`` the gradient is in the unnormalised vectors).
    tau : float
    similarity : {"dot", "l2", "cosine"}

    Returns
    -------
    dza : ndarray, shape (n, n_e)
    dzb : ndarray, shape (m, n_e)

    Raises
    ------
    numerics.InvalidInputError
        Non-finite or mis-shaped input, ``dF`` not of shape ``(n, m)``, a zero
        embedding under cosine similarity, gradients that overflow.
    """
    similarity = as_similarity(similarity)
    tau = as_temperature(tau)
    za, zb = _embeddings(za, zb, similarity, paired=False)
    dF = as_float_array("dF", dF, ndim=2).astype(np.float64, copy=False)
    if dF.shape != (za.shape[0], zb.shape[0]):
        raise fail("dF", dF, f"shape {(za.shape[0], zb.shape[0])}, one entry per logit of (za, zb)")
    with np.errstate(over="ignore", invalid="ignore"):
        dza, dzb = _logits_vjp(dF, za, zb, tau, similarity)
    return _finite(dza, "dF", dF), _finite(dzb, "dF", dF)


def logsumexp(x, axis=-1, keepdims=False):
    r""":math:`\log\sum e^{x}` along ``axis``, shifted by the maximum (exact for finite
    input; ``-inf`` rows stay ``-inf``).  The plain NumPy form: SciPy's
    array-API dispatch costs more than the arithmetic at the sizes the
    verifier calls it thousands of times."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):  # a row of -inf has log-sum-exp -inf, exactly
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _infonce(F, lam):
    r""":math:`L_{N,\lambda}` of a logit matrix or a stack (..., N, N); no checking.

    Each positive is subtracted inside its own log-sum-exp before averaging
    (:math:`\operatorname{LSE}_j F_{ij} - F_{ii}`): these terms stay moderate when
    the logits are huge, so the mean does not overflow for finite ``F``.
    """
    N = F.shape[-1]
    d = np.diagonal(F, axis1=-2, axis2=-1)
    rows = logsumexp(F, axis=-1) - d
    cols = logsumexp(F, axis=-2) - d
    # divide before summing: N terms near the float64 maximum must not overflow the sum
    return np.sum(((1 - lam) * rows + lam * cols) / N, axis=-1)


def _infonce_grad(F, lam):
    N = F.shape[-1]
    P = np.exp(F - logsumexp(F, axis=-1, keepdims=True))
    Q = np.exp(F - logsumexp(F, axis=-2, keepdims=True))
    return ((1 - lam) * P + lam * Q - np.eye(N)) / N


def _softmax(F, axis):
    """``(log-sum-exp, softmax)`` of ``F`` along ``axis``, with one exponential per entry."""
    m = np.max(F, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(F - m)
    s = np.sum(e, axis=axis, keepdims=True)
    return np.squeeze(np.log(s) + m, axis=axis), e / s


def infonce_value_and_grad(F, lam=0.5):
    r"""``(L_{N,lambda}(F), dL/dF)`` of a square logit matrix in one pass (two exponentials
    per entry), for optimisers; no validation (pass a finite ``(N, N)`` float array)."""
    N = F.shape[-1]
    d = np.diagonal(F, axis1=-2, axis2=-1)
    r, P = _softmax(F, -1)
    c, Q = _softmax(F, -2)
    value = float(np.sum(((1 - lam) * (r - d) + lam * (c - d)) / N))
    return value, ((1 - lam) * P + lam * Q - np.eye(N)) / N


def _as_square(F):
    F = as_float_array("F", F).astype(np.float64, copy=False)
    if F.ndim < 2 or F.shape[-1] != F.shape[-2] or F.shape[-1] < 1:
        raise fail("F", F, "a square (N, N) logit matrix, or a stack (..., N, N), with N >= 1")
    return F


def infonce_loss(F, lam=0.5):
    r"""The dense :math:`\lambda`-balanced InfoNCE loss :math:`L_{N,\lambda}(F)` (module docstring).

    Parameters
    ----------
    F : array_like, shape (N, N) or (..., N, N)
        Logits, positives on the diagonal, rows indexed by :math:`u` (a row
        normalises over :math:`v`: the :math:`v|u` term).  A stack gives one
        value per matrix.
    lam : float in [0, 1]
        Weight of the column (:math:`u|v`) term; ``0.5`` is CLIP's :math:`L_N`.

    Returns
    -------
    float, or ndarray of shape ``F.shape[:-2]`` for a stack.
    """
    F = _as_square(F)
    lam = as_lambda(lam)
    with np.errstate(over="ignore", invalid="ignore"):
        out = _infonce(F, lam)
    if not np.all(np.isfinite(out)):
        raise fail("F", F, "finite logits whose spread max F - F_ii fits in float64")
    return float(out) if F.ndim == 2 else out


def infonce_grad(F, lam=0.5):
    r"""Gradient :math:`\partial L_{N,\lambda}/\partial F = ((1-\lambda)P + \lambda Q - I)/N`,
    the shape of ``F`` (a stack gives one gradient per matrix)."""
    F = _as_square(F)
    lam = as_lambda(lam)
    return _infonce_grad(F, lam)


def _stacked_infonce(za, zb, tau, similarity, lam):
    r""":math:`L_{N,\lambda}` of each batch of the stacks ``za``, ``zb`` (R, N, n_e); no checking."""
    return _infonce(_logits(za, zb, tau, similarity), lam)


def stacked_infonce_loss(za, zb, tau=1.0, similarity="dot", lam=0.5):
    r"""The dense InfoNCE loss :math:`L_{N,\lambda}` of ``R`` batches of pairs at once.

    Batch :math:`r` holds the pairs :math:`(a_{ri}, b_{ri})`, :math:`i \le N`; its value is
    :func:`infonce_loss` of its logits :math:`F^{(r)}_{ik} = s(a_{ri}, b_{rk})/\tau`
    (positives on the diagonal).  Each term is divided by :math:`N` before the sum, so
    logits near the float64 maximum do not overflow it.

    Parameters
    ----------
    za, zb : array_like, shape (R, N, n_e)
    tau : float
    similarity : {"dot", "l2", "cosine"}
    lam : float in [0, 1]

    Returns
    -------
    ndarray, shape (R,)
    """
    similarity = as_similarity(similarity)
    tau = as_temperature(tau)
    lam = as_lambda(lam)
    za = as_float_array("za", za, ndim=3).astype(np.float64, copy=False)
    zb = as_float_array("zb", zb, ndim=3).astype(np.float64, copy=False)
    if za.shape != zb.shape or min(za.shape) < 1:
        raise fail("zb", zb, f"a non-empty stack of batches of the shape of za {za.shape}")
    if similarity == "cosine":
        check_nonzero_rows("za", za)
        check_nonzero_rows("zb", zb)
    with np.errstate(over="ignore", invalid="ignore"):
        out = _stacked_infonce(za, zb, tau, similarity, lam)
    return _finite(out, "za", za)
