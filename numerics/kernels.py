r"""Streaming symmetric InfoNCE (CLIP) loss and gradient in :math:`O(N n_e)` memory (MATH.md §2).

For a batch of embedding pairs :math:`(a_i, b_i)`, :math:`i = 1..N`, with
logits :math:`F_{ij} = s(a_i, b_j)/\tau`,

.. math:: L_N = -\frac1N \sum_i F_{ii}
          + \frac1{2N}\sum_i \log\sum_j e^{F_{ij}}
          + \frac1{2N}\sum_j \log\sum_i e^{F_{ij}},
   \qquad
   \frac{\partial L_N}{\partial F} = \frac{P + Q}{2N} - \frac{I}{N},

with :math:`P` the row softmax and :math:`Q` the column softmax of ``F``.
Similarities: ``"dot"`` :math:`s = \langle a, b\rangle`, ``"l2"``
:math:`s = -|a - b|^2/2`, ``"cosine"`` :math:`s = \langle a/|a|, b/|b|\rangle`
(gradients flow through the normalisation).

:func:`clip_loss_and_grad` and :func:`clip_loss` never form the
:math:`N \times N` logits: they stream tiles through the numba kernels of
:mod:`numerics._kernels` (two passes, exact log-sum-exp, one exponential per
logit per pass) on all numba threads.  :func:`clip_logits`,
:func:`clip_loss_from_logits` and :func:`clip_loss_grad_from_logits` are dense
references for small ``N``, from :mod:`numerics.infonce`.

Dtypes: float32 and float64 inputs are computed in their own dtype (logit
tiles, GEMMs, gradients); sums of exponentials and log-sum-exps are always
accumulated in float64.  Mixed float32/float64 inputs are promoted to float64;
integer inputs are converted to float64.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import os
from contextlib import contextmanager

import numba
import numpy as np

from . import _kernels
from ._validation import as_float_array, as_temperature, fail
from .infonce import SIMILARITIES, _infonce, _infonce_grad, _logits, as_similarity, row_norms as _row_norms

__all__ = [
    "SIMILARITIES",
    "clip_loss_and_grad",
    "clip_loss",
    "clip_logits",
    "clip_loss_from_logits",
    "clip_loss_grad_from_logits",
]

#: Documented accuracy: ``|L_N - exact| <= 64 * eps * max(|LSE|, |F_ii|)``
#: (measured against mpmath in the tests).  Inputs whose bound exceeds
#: ``ABS_ERROR_LIMIT`` nats are refused rather than answered with no correct digit.
_ERROR_FACTOR = 64.0
ABS_ERROR_LIMIT = 1.0

#: Tile shape (columns of F per block, rows of F per tile): two float64 tiles
#: of 128 x 512 (0.5 MiB each) stay in a core's L2 cache while being reused.
_BJ, _BI = 128, 512


# --------------------------------------------------------------------------
# BLAS threads: the GEMMs run inside numba's prange, one per thread, so the
# BLAS library numba calls (SciPy's OpenBLAS) must not spawn its own threads.
# --------------------------------------------------------------------------
def _find_scipy_openblas():
    try:
        import scipy
    except ImportError:  # pragma: no cover - scipy is a hard dependency
        return None
    root = os.path.dirname(os.path.dirname(scipy.__file__))
    for path in sorted(glob.glob(os.path.join(root, "scipy.libs", "libscipy_openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
            get, set_ = lib.scipy_openblas_get_num_threads, lib.scipy_openblas_set_num_threads
        except (OSError, AttributeError):
            continue
        get.restype = ctypes.c_int
        set_.argtypes = [ctypes.c_int]
        return get, set_
    return None


_OPENBLAS = _find_scipy_openblas()


@contextmanager
def _single_threaded_blas():
    if _OPENBLAS is None:
        yield
        return
    get, set_ = _OPENBLAS
    before = get()
    set_(1)
    try:
        yield
    finally:
        set_(before)


# --------------------------------------------------------------------------
# validation and preparation
# --------------------------------------------------------------------------
def _validate(za, zb, tau, similarity):
    za = as_float_array("za", za, ndim=2)
    zb = as_float_array("zb", zb, ndim=2)
    if za.shape != zb.shape:
        raise fail("zb", zb, f"an array of the same shape as za, {za.shape}")
    if za.shape[0] < 1 or za.shape[1] < 1:
        raise fail("za", za, "an (N, n_e) array with N >= 1 and n_e >= 1")
    tau = as_temperature(tau)
    similarity = as_similarity(similarity)
    dtype = np.result_type(za.dtype, zb.dtype)
    za = np.ascontiguousarray(za, dtype=dtype)
    zb = np.ascontiguousarray(zb, dtype=dtype)
    with np.errstate(over="ignore", divide="ignore"):
        t = dtype.type(tau)
        representable = bool(np.isfinite(t) and t > 0 and np.isfinite(1 / t))
    if not representable:
        raise fail("tau", tau, f"a temperature representable in {dtype} (1/tau finite and tau > 0)")
    if similarity == "cosine":
        for name, z in (("za", za), ("zb", zb)):
            norms = _row_norms(z)
            if np.any(norms == 0):
                k = int(np.flatnonzero(norms == 0)[0])
                raise fail(name, z, f"rows of non-zero norm for cosine similarity (row {k} is 0)")
    return za, zb, tau, similarity


def _quiet_overflow(fn):
    """Run ``fn`` with floating-point overflow warnings off: overflow is not
    silent here, it is turned into an InvalidInputError by the finiteness and
    accuracy checks (``_finite_or_fail``, ``_loss``)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def _finite_or_fail(values, za, tau):
    """The result of finite input is finite unless the logits overflow the dtype."""
    for v in values:
        if not np.all(np.isfinite(v)):
            raise fail("za", za, f"embeddings whose logits s(a, b)/tau (tau={tau:g}) stay finite in "
                                 f"{za.dtype}: rescale the embeddings, raise tau or use float64")
    return values


def _prepare(za, zb, tau, similarity):
    r"""Write :math:`F_{ij} = \langle X_i, Y_j\rangle + \alpha_i + \beta_j` for the similarity.

    For ``"l2"`` both sets are first translated by their common mean (the
    similarity and hence the loss and gradients are translation invariant);
    this keeps :math:`|a|^2` and :math:`|b|^2` small so the expansion
    :math:`-|a-b|^2/2 = \langle a,b\rangle - |a|^2/2 - |b|^2/2` cancels less.
    """
    dt = za.dtype
    empty = np.zeros(0, dtype=np.float64)
    if similarity == "dot":
        return za, np.ascontiguousarray(zb / dt.type(tau)), empty, empty, {}
    if similarity == "cosine":
        na = _row_norms(za).astype(dt)
        nb = _row_norms(zb).astype(dt)
        X = np.ascontiguousarray(za / na[:, None])
        Yhat = zb / nb[:, None]
        Y = np.ascontiguousarray(Yhat / dt.type(tau))
        return X, Y, empty, empty, {"na": na, "nb": nb, "Yhat": Yhat}
    center = 0.5 * (za.mean(axis=0) + zb.mean(axis=0))
    X = np.ascontiguousarray(za - center)
    B = zb - center
    Y = np.ascontiguousarray(B / dt.type(tau))
    alpha = -np.einsum("ij,ij->i", X, X, dtype=np.float64) / (2.0 * tau)
    beta = -np.einsum("ij,ij->i", B, B, dtype=np.float64) / (2.0 * tau)
    return X, Y, alpha, beta, {"B": B}


def _diagonal(X, Y, alpha, beta):
    d = np.einsum("ij,ij->i", X, Y, dtype=np.float64)
    if alpha.shape[0]:
        d = d + alpha + beta
    return d


def _loss(X, Y, alpha, beta):
    """Run pass 1 and assemble L_N; returns (loss, r, c) with r, c the row/column LSEs."""
    N = X.shape[0]
    n_chunks = max(1, min(numba.get_num_threads(), (N + _BJ - 1) // _BJ))
    with _single_threaded_blas():
        r, c = _kernels.lse_pass(X, Y, alpha, beta, _BJ, _BI, n_chunks)
    diag = _diagonal(X, Y, alpha, beta)
    # Each term is O(max |F|); summing the three sums separately and then
    # combining keeps the cancellation between them to one rounding each.
    loss = (0.5 * (np.sum(r) + np.sum(c)) - np.sum(diag)) / N
    # The absolute rounding error of L_N is about eps * max(|r|, |c|, |F_ii|)
    # (the cancellation between the log-sum-exps and the diagonal).  Past
    # ABS_ERROR_LIMIT nats no digit of an O(log N) loss would be right: refuse.
    scale = max(float(np.max(np.abs(r))), float(np.max(np.abs(c))), float(np.max(np.abs(diag))))
    bound = _ERROR_FACTOR * float(np.finfo(X.dtype).eps) * scale
    if not bound <= ABS_ERROR_LIMIT:
        raise fail("za", X, f"logits small enough for {X.dtype}: |F| reaches {scale:.3g}, so the "
                            f"rounding error of L_N could reach {bound:.3g} nats (limit "
                            f"{ABS_ERROR_LIMIT}); rescale the embeddings, raise tau or use float64")
    return float(loss), r, c


@_quiet_overflow
def clip_loss(za, zb, tau, similarity="dot"):
    r"""Symmetric InfoNCE loss :math:`L_N` of a batch (MATH.md §2), streamed.

    Parameters
    ----------
    za, zb : array_like, shape (N, n_e)
        Embeddings :math:`g_u(u_i)` and :math:`g_v(v_i)`; row ``i`` of each is
        a positive pair.  float32 or float64 (mixed: promoted to float64).
    tau : float
        Temperature :math:`\tau > 0`.
    similarity : {"dot", "l2", "cosine"}

    Returns
    -------
    loss : numpy.float64 or numpy.float32
        :math:`L_N`, in the promoted input dtype.

    Notes
    -----
    Memory :math:`O(N n_e)` plus one tile per thread; see
    :func:`clip_loss_and_grad` for the formula and the accuracy.
    """
    za, zb, tau, similarity = _validate(za, zb, tau, similarity)
    X, Y, alpha, beta, _ = _prepare(za, zb, tau, similarity)
    # finite: _loss refuses any batch whose log-sum-exps or diagonal are not finite
    loss, _, _ = _loss(X, Y, alpha, beta)
    return za.dtype.type(loss)


@_quiet_overflow
def clip_loss_and_grad(za, zb, tau, similarity="dot"):
    r"""Symmetric InfoNCE loss and its gradients in the embeddings (MATH.md §2), streamed.

    .. math:: L_N = -\frac1N \sum_i F_{ii} + \frac1{2N}\sum_i \operatorname{LSE}_j F_{ij}
              + \frac1{2N}\sum_j \operatorname{LSE}_i F_{ij},
              \qquad F_{ij} = s(a_i, b_j)/\tau,

    .. math:: \frac{\partial L_N}{\partial a_i} = \sum_j W_{ij}
              \frac{\partial F_{ij}}{\partial a_i},\quad
              \frac{\partial L_N}{\partial b_j} = \sum_i W_{ij}
              \frac{\partial F_{ij}}{\partial b_j},\quad
              W = \frac{P + Q}{2N} - \frac IN.

    Parameters
    ----------
    za, zb : array_like, shape (N, n_e)
        Paired embeddings (row ``i`` of each is a positive pair); finite,
        float32 or float64.  Mixed dtypes are promoted to float64.
    tau : float
        Temperature :math:`\tau > 0`.
    similarity : {"dot", "l2", "cosine"}
        ``"dot"``: :math:`\langle a, b\rangle`; ``"l2"``: :math:`-|a-b|^2/2`;
        ``"cosine"``: :math:`\langle a/|a|, b/|b|\rangle` on the raw
        embeddings (zero rows are invalid).

    Returns
    -------
    loss : numpy scalar of the input dtype
    grad_za, grad_zb : ndarray, shape (N, n_e), input dtype

    Raises
    ------
    numerics.InvalidInputError
        Non-finite or non-2-D input, shape mismatch, ``N < 1``, bad ``tau``
        or ``similarity``, zero rows under cosine.

    Notes
    -----
    Two passes over tiles of the logits (never the full matrix): pass 1
    computes the row and column log-sum-exps exactly (running maxima), pass 2
    recomputes the tiles, forms ``W`` and accumulates ``W Y`` and ``W^T X``
    with BLAS.  Extra memory :math:`O(N n_e)` per thread plus a few tiles.
    In float64 the result agrees with a dense log-sum-exp evaluation to about
    ``1e-13`` relative for moderate logits; the log-sum-exp is exact for any
    logit range representable in the dtype.  The summation order depends on
    the number of numba threads, so results with different thread counts
    agree to rounding, not bit for bit.
    """
    za, zb, tau, similarity = _validate(za, zb, tau, similarity)
    X, Y, alpha, beta, aux = _prepare(za, zb, tau, similarity)
    loss, r, c = _loss(X, Y, alpha, beta)
    if similarity == "l2":
        ones = np.ones((X.shape[0], 1), dtype=X.dtype)
        Xa = np.ascontiguousarray(np.hstack([X, ones]))
        Ya = np.ascontiguousarray(np.hstack([Y, ones]))
    else:
        Xa, Ya = X, Y
    N = X.shape[0]
    n_chunks = max(1, min(numba.get_num_threads(), (N + _BJ - 1) // _BJ))
    with _single_threaded_blas():
        gX, gY = _kernels.grad_pass(X, Y, Xa, Ya, alpha, beta, r, c, _BJ, _BI, n_chunks)
    t = X.dtype.type(tau)
    if similarity == "dot":
        grad_za, grad_zb = gX, gY / t
    elif similarity == "cosine":
        gYhat = gY / t
        Yhat = aux["Yhat"]
        grad_za = (gX - X * np.einsum("ij,ij->i", X, gX)[:, None]) / aux["na"][:, None]
        grad_zb = (gYhat - Yhat * np.einsum("ij,ij->i", Yhat, gYhat)[:, None]) / aux["nb"][:, None]
    else:
        n_e = X.shape[1]
        rows, cols = gX[:, n_e], gY[:, n_e]
        grad_za = gX[:, :n_e] - X * (rows / t)[:, None]
        grad_zb = (gY[:, :n_e] - aux["B"] * cols[:, None]) / t
    dt = X.dtype
    return _finite_or_fail((dt.type(loss), np.ascontiguousarray(grad_za, dtype=dt),
                            np.ascontiguousarray(grad_zb, dtype=dt)), za, tau)


# --------------------------------------------------------------------------
# dense references (small N)
# --------------------------------------------------------------------------
@_quiet_overflow
def clip_logits(za, zb, tau, similarity="dot"):
    r"""Dense logits :math:`F_{ij} = s(a_i, b_j)/\tau` (an :math:`N\times N` array; small N only).

    The kernels' validation (same shapes, dtype promotion, representable
    ``tau``) in front of :func:`numerics.infonce.logits`' formula, formed in full.
    """
    za, zb, tau, similarity = _validate(za, zb, tau, similarity)
    return _finite_or_fail((_logits(za, zb, tau, similarity),), za, tau)[0]


def _as_logits(F):
    F = as_float_array("F", F, ndim=2)
    if F.shape[0] != F.shape[1] or F.shape[0] < 1:
        raise fail("F", F, "a square (N, N) matrix of logits with N >= 1")
    return F


def clip_loss_from_logits(F):
    r"""Dense :math:`L_N` from a square logit matrix (MATH.md §2): :func:`numerics.infonce.infonce_loss`
    at :math:`\lambda = 1/2`.

    .. math:: L_N = -\frac1N\operatorname{tr}F + \frac1{2N}\sum_i \operatorname{LSE}_j F_{ij}
              + \frac1{2N}\sum_j \operatorname{LSE}_i F_{ij}
    """
    F = _as_logits(F)
    with np.errstate(over="ignore", invalid="ignore"):
        loss = float(_infonce(F, 0.5))
    if not np.isfinite(loss):
        raise fail("F", F, "logits whose spread max F - min F is finite in float64")
    return loss


def clip_loss_grad_from_logits(F):
    r"""Dense :math:`\partial L_N/\partial F = (P + Q)/(2N) - I/N` (MATH.md §2)."""
    return _infonce_grad(_as_logits(F), 0.5)
