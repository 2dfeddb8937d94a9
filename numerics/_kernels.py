r"""Numba kernels of the streaming CLIP loss (MATH.md §2).  No input checking here.

The logits are never stored as an :math:`N \times N` matrix.  They are
recomputed tile by tile, ``T = Y_blk @ X_tile.T`` (a small BLAS GEMM on
contiguous blocks), so that the extra memory is :math:`O(N n_e + \text{threads}
\cdot \text{tile})`.  The general logit handled is

.. math:: F_{ij} = \langle X_i, Y_j \rangle + \alpha_i + \beta_j,

which covers the three similarities once the wrapper has prepared ``X``,
``Y`` (temperature folded into ``Y``), ``alpha`` and ``beta``.  A tile is
stored *transposed*, ``T[jj, ii] = F[i0 + ii, j0 + jj]``, so that a column of
``F`` is a contiguous row of the tile.

Two passes:

1. log-sum-exp: the column LSE :math:`c_j` is exact (online over the row tiles
   with a running maximum per column); the row LSE :math:`r_i` reuses the same
   exponentials, :math:`e^{F_{ij} - G} = e^{F_{ij} - M_j} e^{M_j - G}` with a
   per-thread reference :math:`G` (the running maximum of all logits), so the
   pass costs one exponential per logit.  The reuse is exact up to rounding
   unless row :math:`i` lies more than ~600 below :math:`G` (then terms
   underflow); such rows are detected (``s_i < e^{-600}``) and redone by a
   direct row-wise LSE.
2. gradient: :math:`W = \partial L_N/\partial F = (P + Q)/(2N) - I/N` with
   :math:`Q_{ij} = e^{F_{ij} - c_j}` (one exponential) and
   :math:`P_{ij} = Q_{ij} e^{c_j - H} e^{H - r_i}`, :math:`H = \max_j c_j`;
   rows with :math:`H - r_i > 640` (where the factorisation could underflow)
   get their ``P`` part from a direct row pass.  Then
   ``gX += W Y`` and ``gY += W^T X`` tile by tile (rows of ``gX`` follow the rows of
   ``F``, rows of ``gY`` its columns).

Exponentials use a polynomial :func:`_exp_row` (Cody–Waite reduction, degree-13
Taylor polynomial, max relative error about 1 ulp) written as plain IEEE
arithmetic so that LLVM vectorises it; no ``fastmath`` anywhere.  Sums of
exponentials are accumulated in float64 whatever the input dtype.

BLAS calls inside ``prange`` must run single-threaded (the wrapper sets the
BLAS thread count to 1 around the call); otherwise the two thread pools fight.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: Below this argument ``exp`` is treated as 0; e^-708 ~ 3e-308 is the
#: smallest normal float64, and every quantity built from these terms is
#: compared with a sum that is at least e^-600 (see the module docstring).
_EXP_FLOOR = -708.0
#: A row whose LSE lies this far below the reference is recomputed directly.
_SAFE_GAP = 600.0


@njit(cache=True)
def _exp_row(x, shift, out, scratch):
    r"""``out[k] = exp(x[k] - shift)`` (float64), 0 below e^-708.

    Cody–Waite: :math:`x = k \ln 2 + r`, :math:`|r| \le \ln 2 / 2`, then a
    degree-13 Taylor polynomial (remainder :math:`< 4\cdot10^{-18}`) and the
    scale :math:`2^k` assembled from its bits in ``scratch`` (int64).
    """
    n = x.shape[0]
    for k in range(n):
        t = np.float64(x[k]) - shift
        t = t if t > _EXP_FLOOR else _EXP_FLOOR
        q = np.floor(t * _LOG2E + 0.5)
        r = (t - q * _LN2_HI) - q * _LN2_LO
        p = 1.6059043836821613e-10
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[k] = p
        scratch[k] = (np.int64(q) + 1023) << 52
    scale = scratch[:n].view(np.float64)
    for k in range(n):
        t = np.float64(x[k]) - shift
        out[k] = out[k] * scale[k] if t > _EXP_FLOOR else 0.0


@njit(cache=True)
def _row_max(x):
    """max of a 1-D array; eight independent chains so the loop is not latency bound."""
    n = x.shape[0]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = -np.inf
    k = 0
    while k + 8 <= n:
        a = np.float64(x[k]); m0 = a if a > m0 else m0
        a = np.float64(x[k + 1]); m1 = a if a > m1 else m1
        a = np.float64(x[k + 2]); m2 = a if a > m2 else m2
        a = np.float64(x[k + 3]); m3 = a if a > m3 else m3
        a = np.float64(x[k + 4]); m4 = a if a > m4 else m4
        a = np.float64(x[k + 5]); m5 = a if a > m5 else m5
        a = np.float64(x[k + 6]); m6 = a if a > m6 else m6
        a = np.float64(x[k + 7]); m7 = a if a > m7 else m7
        k += 8
    while k < n:
        a = np.float64(x[k]); m0 = a if a > m0 else m0
        k += 1
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@njit(cache=True)
def _row_sum(x):
    """Sum of a 1-D float64 array with eight partial sums (a fixed, reproducible order)."""
    n = x.shape[0]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    k = 0
    while k + 8 <= n:
        s0 += x[k]; s1 += x[k + 1]; s2 += x[k + 2]; s3 += x[k + 3]
        s4 += x[k + 4]; s5 += x[k + 5]; s6 += x[k + 6]; s7 += x[k + 7]
        k += 8
    while k < n:
        s0 += x[k]
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(cache=True)
def _tile(X, Y, alpha, beta, i0, i1, j0, j1, buf):
    """Logit tile ``T[jj, ii] = F[i0+ii, j0+jj]`` in ``buf`` (contiguous view returned)."""
    bj = j1 - j0
    bi = i1 - i0
    T = buf[: bj * bi].reshape((bj, bi))
    np.dot(Y[j0:j1], X[i0:i1].T, T)
    if alpha.shape[0] > 0:
        for jj in range(bj):
            b = beta[j0 + jj]
            for ii in range(bi):
                T[jj, ii] += alpha[i0 + ii] + b
    return T


@njit(cache=True)
def _direct_row_lse(X, Y, alpha, beta, i, frow, erow, scratch):
    """Row LSE of ``F[i, :]`` by a full row evaluation (the fallback of pass 1)."""
    np.dot(Y, X[i], frow)
    if alpha.shape[0] > 0:
        for j in range(frow.shape[0]):
            frow[j] += alpha[i] + beta[j]
    m = _row_max(frow)
    _exp_row(frow, m, erow, scratch)
    return m + np.log(_row_sum(erow))


@njit(cache=True, parallel=True)
def lse_pass(X, Y, alpha, beta, bj_size, bi_size, n_chunks):
    r"""Pass 1: row and column log-sum-exp of :math:`F` (see module docstring).

    Returns ``(r, c)``, float64 arrays of length ``N``.
    """
    N = X.shape[0]
    n_jb = (N + bj_size - 1) // bj_size
    n_ib = (N + bi_size - 1) // bi_size
    cmax = np.full(N, -np.inf)
    csum = np.zeros(N)
    s_acc = np.zeros((n_chunks, N))
    g_ref = np.full(n_chunks, -np.inf)
    for t in prange(n_chunks):
        buf = np.empty(bj_size * bi_size, dtype=X.dtype)
        ebuf = np.empty((bj_size, bi_size))
        scratch = np.empty(bi_size, dtype=np.int64)
        newmax = np.empty(bj_size)
        s = s_acc[t]
        G = -np.inf
        for jb in range(t * n_jb // n_chunks, (t + 1) * n_jb // n_chunks):
            j0 = jb * bj_size
            j1 = min(N, j0 + bj_size)
            for ib in range(n_ib):
                i0 = ib * bi_size
                i1 = min(N, i0 + bi_size)
                T = _tile(X, Y, alpha, beta, i0, i1, j0, j1, buf)
                tile_max = -np.inf
                for jj in range(j1 - j0):
                    m = max(_row_max(T[jj]), cmax[j0 + jj])
                    newmax[jj] = m
                    tile_max = max(tile_max, m)
                if tile_max > G:
                    # Rebase the row sums on the new reference (rare after the first tiles).
                    f = np.exp(G - tile_max)
                    for k in range(N):
                        s[k] *= f
                    G = tile_max
                for jj in range(j1 - j0):
                    j = j0 + jj
                    m = newmax[jj]
                    if m > cmax[j]:
                        csum[j] *= np.exp(cmax[j] - m)
                        cmax[j] = m
                    e = ebuf[jj, : i1 - i0]
                    _exp_row(T[jj], m, e, scratch)
                    csum[j] += _row_sum(e)
                    w = np.exp(m - G)
                    for ii in range(i1 - i0):
                        s[i0 + ii] += w * e[ii]
        g_ref[t] = G
    G = -np.inf
    for t in range(n_chunks):
        G = max(G, g_ref[t])
    r = np.zeros(N)
    for t in range(n_chunks):
        if g_ref[t] > -np.inf:
            f = np.exp(g_ref[t] - G)
            for k in range(N):
                r[k] += s_acc[t, k] * f
    floor = np.exp(-_SAFE_GAP)
    bad = np.empty(N, dtype=np.int64)
    n_bad = 0
    for k in range(N):
        if r[k] >= floor:
            r[k] = G + np.log(r[k])
        else:
            bad[n_bad] = k
            n_bad += 1
    if n_bad > 0:
        for b in prange(n_bad):
            frow = np.empty(N, dtype=X.dtype)
            erow = np.empty(N)
            scratch = np.empty(N, dtype=np.int64)
            k = bad[b]
            r[k] = _direct_row_lse(X, Y, alpha, beta, k, frow, erow, scratch)
    c = np.empty(N)
    for j in range(N):
        c[j] = cmax[j] + np.log(csum[j])
    return r, c


@njit(cache=True, parallel=True)
def grad_pass(X, Y, Xa, Ya, alpha, beta, r, c, bj_size, bi_size, n_chunks):
    r"""Pass 2: ``gX = W Ya`` and ``gY = W^T Xa`` with :math:`W = \partial L_N / \partial F`.

    ``Xa``, ``Ya`` are the matrices multiplied by ``W`` (``X``, ``Y``, possibly
    with an appended column of ones to obtain the row and column sums of ``W``).
    """
    N = X.shape[0]
    n_a = Xa.shape[1]
    dt = X.dtype
    n_jb = (N + bj_size - 1) // bj_size
    n_ib = (N + bi_size - 1) // bi_size
    inv2n = 0.5 / N
    invn = 1.0 / N
    H = -np.inf
    for j in range(N):
        H = max(H, c[j])
    a = np.empty(N)
    for j in range(N):
        a[j] = np.exp(c[j] - H)
    b = np.empty(N)
    bad = np.empty(N, dtype=np.int64)
    n_bad = 0
    for i in range(N):
        if H - r[i] <= _SAFE_GAP + 40.0:
            b[i] = np.exp(H - r[i])
        else:
            b[i] = 0.0
            bad[n_bad] = i
            n_bad += 1
    gx_acc = np.zeros((n_chunks, N, n_a), dtype=dt)
    gY = np.zeros((N, n_a), dtype=dt)
    for t in prange(n_chunks):
        buf = np.empty(bj_size * bi_size, dtype=dt)
        wbuf = np.empty(bj_size * bi_size, dtype=dt)
        qrow = np.empty(bi_size)
        scratch = np.empty(bi_size, dtype=np.int64)
        ty = np.empty((bj_size, n_a), dtype=dt)
        tx = np.empty((bi_size, n_a), dtype=dt)
        gx = gx_acc[t]
        for jb in range(t * n_jb // n_chunks, (t + 1) * n_jb // n_chunks):
            j0 = jb * bj_size
            j1 = min(N, j0 + bj_size)
            bj = j1 - j0
            for ib in range(n_ib):
                i0 = ib * bi_size
                i1 = min(N, i0 + bi_size)
                bi = i1 - i0
                T = _tile(X, Y, alpha, beta, i0, i1, j0, j1, buf)
                Wt = wbuf[: bj * bi].reshape((bj, bi))
                for jj in range(bj):
                    j = j0 + jj
                    q = qrow[:bi]
                    _exp_row(T[jj], c[j], q, scratch)
                    aj = a[j]
                    for ii in range(bi):
                        Wt[jj, ii] = (q[ii] + (q[ii] * aj) * b[i0 + ii]) * inv2n
                    if i0 <= j < i1:
                        Wt[jj, j - i0] -= invn
                tyv = ty[:bj]
                np.dot(Wt, Xa[i0:i1], tyv)
                for jj in range(bj):
                    for k in range(n_a):
                        gY[j0 + jj, k] += tyv[jj, k]
                txv = tx[:bi]
                np.dot(Wt.T, Ya[j0:j1], txv)
                for ii in range(bi):
                    for k in range(n_a):
                        gx[i0 + ii, k] += txv[ii, k]
    gX = np.zeros((N, n_a), dtype=dt)
    for t in range(n_chunks):
        gX += gx_acc[t]
    if n_bad > 0:
        # Rows far below H: their P part, exp(F_ij - r_i), directly row by row.
        frow = np.empty(N, dtype=dt)
        prow = np.empty(N)
        pw = np.empty(N, dtype=dt)
        scratch = np.empty(N, dtype=np.int64)
        for k in range(n_bad):
            i = bad[k]
            np.dot(Y, X[i], frow)
            if alpha.shape[0] > 0:
                for j in range(N):
                    frow[j] += alpha[i] + beta[j]
            _exp_row(frow, r[i], prow, scratch)
            for j in range(N):
                pw[j] = prow[j] * inv2n
            gX[i] += np.dot(pw, Ya)
            for j in range(N):
                if pw[j] != 0:
                    for kk in range(n_a):
                        gY[j, kk] += pw[j] * Xa[i, kk]
    return gX, gY
