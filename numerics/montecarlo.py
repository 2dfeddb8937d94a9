r"""Monte Carlo estimators with standard errors (MATH.md §2, §3, §4.3).

Population quantities that have no closed form for cosine or L2 similarity:
the population CLIP loss :math:`L_{clip}` (§3), the two expected conditional
KL divergences of Theorem 3.2 when the data conditionals are Gaussian (§4),
and the expected batch loss :math:`E[L_N]` (§2).  Every estimator returns an
:class:`MCEstimate` carrying its CLT standard error.

Log-partition functions :math:`\log Z_v(u) = \log E_{v'\sim\mu_v} e^{f(u, v')}`
are estimated from an independent *bank* of ``bank_size = M`` draws.  The
log of a sample mean is biased: with :math:`p_k = e^{f(u, v'_k)}/\hat Z`,

.. math:: E \log \hat Z = \log Z - \frac{\operatorname{Var}(e^{f})}{2 M Z^2} + O(M^{-2}),

so each :math:`\log \hat Z` is corrected by :math:`+\widehat{\operatorname{Var}}(p)/(2M)`
(the delta method), leaving a bias :math:`O(M^{-2})`; the size of the applied
correction is reported in ``detail["bias_correction"]``.  The bank is shared
by all samples, so its fluctuation is a variance term of order :math:`1/M`;
it is included in the standard error by the delta method (influence of bank
element :math:`k` on the estimate).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
from scipy.special import logsumexp

from ._validation import as_choice, as_covariance, as_dimension, as_float_array, as_temperature, fail
from .gaussian import _logdet, _true_conditionals, _validated

__all__ = [
    "MCEstimate",
    "gaussian_sampler",
    "linear_encoder",
    "pair_logits",
    "population_clip_loss_mc",
    "expected_kl_terms_mc",
    "expected_batch_loss_mc",
    "gaussian_kl_batch",
]

SIMILARITIES = ("dot", "l2", "cosine")
_CHUNK = 1024  # rows of a logit block: bounds memory at _CHUNK * bank_size floats


@dataclass(frozen=True)
class MCEstimate:
    """A Monte Carlo estimate with its standard error.

    Attributes
    ----------
    estimate : float
    standard_error : float
        CLT standard error (sample standard deviation over ``sqrt(n)``, plus
        the bank term where a bank is used).
    n_samples : int
    detail : dict
        Diagnostics (bank size, applied bias correction, ...).
    """

    estimate: float
    standard_error: float
    n_samples: int
    detail: dict = field(default_factory=dict)


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _as_count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < minimum:
        raise fail(name, value, f"an integer >= {minimum}")
    return int(value)


def _as_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise fail("rng", rng, "a numpy.random.Generator (np.random.default_rng(seed))")
    return rng


def _encode(encode, x, name, width=None):
    """Embeddings ``encode(x)``, checked to be (n, n_e) with one row per input row
    and, when ``width`` is given, the embedding width of the other encoder."""
    try:
        z = np.asarray(encode(x))
    except Exception as exc:  # e.g. a linear encoder of the wrong width
        raise fail(name, encode, f"an encoder accepting a batch of shape {x.shape} "
                                 f"(it raised {type(exc).__name__}: {exc})") from exc
    if z.ndim != 2 or z.shape[0] != x.shape[0] or z.shape[1] < 1 \
            or (width is not None and z.shape[1] != width):
        cols = "n_e" if width is None else str(width)
        raise fail(name, z, f"an encoder returning an array of shape ({x.shape[0]}, {cols}) "
                            "(one embedding per input row, the same width for both encoders)")
    return as_float_array(name, z, ndim=2).astype(np.float64, copy=False)


def _sample(sample, rng, n):
    """Draw ``sample(rng, n) -> (u, v)``, checked to be two 2-D arrays of ``n`` rows."""
    out = sample(rng, n)
    if not isinstance(out, tuple) or len(out) != 2:
        raise fail("sample", out, f"a callable returning a pair (u, v) of ({n}, dim) arrays")
    arrays = []
    for part, x in zip("uv", out):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] != n or x.shape[1] < 1:
            raise fail("sample", x, f"a callable returning {part} as a ({n}, n_{part}) array "
                                    f"(got shape {x.shape})")
        arrays.append(as_float_array("sample", x, ndim=2).astype(np.float64, copy=False))
    return tuple(arrays)


# --------------------------------------------------------------------------
# samplers and encoders
# --------------------------------------------------------------------------
def gaussian_sampler(cov, n_u):
    r"""Sampler of :math:`(u, v) \sim N(0, C)`: ``sample(rng, n) -> (u, v)``, shapes (n, n_u), (n, n_v)."""
    cov = as_covariance(cov)
    n_u = as_dimension(n_u, cov.shape[0])
    L = np.linalg.cholesky(cov)

    def sample(rng, n):
        x = rng.standard_normal((n, cov.shape[0])) @ L.T
        return x[:, :n_u], x[:, n_u:]

    return sample


def linear_encoder(G):
    r"""The linear encoder :math:`x \mapsto G x` as a function of a batch (rows are inputs)."""
    G = as_float_array("G", G, ndim=2).astype(np.float64, copy=False)
    return lambda x: np.asarray(x) @ G.T


def _logits(za, zb, tau, similarity):
    # Rectangular (n, m) blocks, so not numerics.kernels.clip_logits (square,
    # direct L2); the same zero-norm convention: callers reject zero cosine
    # embeddings with _check_norms first.
    if similarity == "dot":
        S = za @ zb.T
    elif similarity == "cosine":
        S = (za / np.linalg.norm(za, axis=1)[:, None]) @ (zb / np.linalg.norm(zb, axis=1)[:, None]).T
    else:
        S = za @ zb.T - 0.5 * np.sum(za * za, axis=1)[:, None] - 0.5 * np.sum(zb * zb, axis=1)[None, :]
    return S / tau


def _paired_logits(za, zb, tau, similarity):
    if similarity == "dot":
        s = np.einsum("ij,ij->i", za, zb)
    elif similarity == "cosine":
        s = np.einsum("ij,ij->i", za, zb) / (np.linalg.norm(za, axis=1) * np.linalg.norm(zb, axis=1))
    else:
        s = -0.5 * np.sum((za - zb) ** 2, axis=1)
    return s / tau


def pair_logits(za, zb, tau, similarity="dot"):
    r"""Logits :math:`f_{ik} = s(a_i, b_k)/\tau` of every pair, shape (n, m) (MATH.md §1)."""
    za = as_float_array("za", za, ndim=2).astype(np.float64, copy=False)
    zb = as_float_array("zb", zb, ndim=2).astype(np.float64, copy=False)
    if za.shape[1] != zb.shape[1]:
        raise fail("zb", zb, f"embeddings of dimension {za.shape[1]} like za")
    tau = as_temperature(tau)
    similarity = as_choice(similarity, SIMILARITIES, "similarity")
    _check_norms(similarity, za, zb)
    return _logits(za, zb, tau, similarity)


def _check_norms(similarity, *zs):
    if similarity == "cosine":
        for k, z in enumerate(zs):
            if np.any(np.linalg.norm(z, axis=1) == 0):
                raise fail("encode_u" if k == 0 else "encode_v", z,
                           "embeddings of non-zero norm for cosine similarity")


# --------------------------------------------------------------------------
# log-partition from a bank
# --------------------------------------------------------------------------
def _log_partition(za, zbank, tau, similarity):
    r"""Bias-corrected :math:`\log\hat Z(a_i)` over the bank, and the bank influence.

    Returns ``(logZ, correction, influence)``: ``logZ[i]`` includes the
    delta-method correction ``correction[i] = Var_k(p_ik) / (2M)``;
    ``influence[k] = mean_i p_ik`` (the derivative of ``mean_i log Z_i``
    with respect to the weight of bank element ``k``, up to the constant 1).
    """
    n, M = za.shape[0], zbank.shape[0]
    logZ = np.empty(n)
    corr = np.empty(n)
    infl = np.zeros(M)
    for s in range(0, n, _CHUNK):
        F = _logits(za[s:s + _CHUNK], zbank, tau, similarity)
        lz = logsumexp(F, axis=1) - np.log(M)
        p = np.exp(F - lz[:, None])  # mean 1 along each row
        c = np.var(p, axis=1, ddof=1) / (2.0 * M) if M > 1 else np.zeros(len(lz))
        logZ[s:s + _CHUNK] = lz + c
        corr[s:s + _CHUNK] = c
        infl += p.sum(axis=0)
    return logZ, corr, infl / n


def _mean_se(values):
    n = values.shape[0]
    return float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else np.inf


# --------------------------------------------------------------------------
# population CLIP loss
# --------------------------------------------------------------------------
def _validate_common(encode_u, encode_v, tau, similarity, n_samples, rng, bank_size):
    if not callable(encode_u):
        raise fail("encode_u", encode_u, "a callable mapping a batch (n, n_u) to (n, n_e)")
    if not callable(encode_v):
        raise fail("encode_v", encode_v, "a callable mapping a batch (n, n_v) to (n, n_e)")
    tau = as_temperature(tau)
    similarity = as_choice(similarity, SIMILARITIES, "similarity")
    n_samples = _as_count(n_samples, "n_samples", 2)
    bank_size = n_samples if bank_size is None else _as_count(bank_size, "bank_size", 2)
    return tau, similarity, n_samples, _as_rng(rng), bank_size


def population_clip_loss_mc(sample, encode_u, encode_v, tau, similarity, n_samples, rng,
                            *, bank_size=None):
    r"""Monte Carlo estimate of the population CLIP loss (MATH.md §3).

    .. math:: L_{clip} = -E_\mu f(u, v) + \tfrac12 E_{\mu_u}\log Z_v(u)
              + \tfrac12 E_{\mu_v}\log Z_u(v),\qquad f = s(g_u(u), g_v(v))/\tau.

    ``n_samples`` pairs :math:`(u_i, v_i)` give the outer expectations; an
    independent bank of ``bank_size`` pairs gives :math:`\hat Z_v(u_i)` (from
    its ``v`` part) and :math:`\hat Z_u(v_i)` (from its ``u`` part), bias-corrected
    as in the module docstring.

    Parameters
    ----------
    sample : callable
        ``sample(rng, n) -> (u, v)``, ``n`` draws from the joint law (e.g.
        :func:`gaussian_sampler`).
    encode_u, encode_v : callable
        Batch encoders, ``(n, n_u) -> (n, n_e)`` (e.g. :func:`linear_encoder`).
    tau : float
    similarity : {"dot", "l2", "cosine"}
    n_samples : int
    rng : numpy.random.Generator
    bank_size : int, optional
        Defaults to ``n_samples``.

    Returns
    -------
    MCEstimate
        Standard error :math:`\sqrt{\hat\sigma_h^2/n + \hat\sigma_\psi^2/M}`:
        the per-sample term plus the bank influence.
    """
    tau, similarity, n, rng, M = _validate_common(encode_u, encode_v, tau, similarity,
                                                  n_samples, rng, bank_size)
    if not callable(sample):
        raise fail("sample", sample, "a callable sample(rng, n) -> (u, v)")
    u, v = _sample(sample, rng, n)
    ub, vb = _sample(sample, rng, M)
    za = _encode(encode_u, u, "encode_u")
    zb = _encode(encode_v, v, "encode_v", za.shape[1])
    zab, zbb = _encode(encode_u, ub, "encode_u", za.shape[1]), _encode(encode_v, vb, "encode_v", za.shape[1])
    _check_norms(similarity, za, zb)
    _check_norms(similarity, zab, zbb)
    f = _paired_logits(za, zb, tau, similarity)
    lzv, cv, infl_v = _log_partition(za, zbb, tau, similarity)
    lzu, cu, infl_u = _log_partition(zb, zab, tau, similarity)
    h = -f + 0.5 * lzv + 0.5 * lzu
    est, se_h = _mean_se(h)
    psi = 0.5 * (infl_v + infl_u)
    se_bank = float(np.std(psi, ddof=1) / np.sqrt(M))
    return MCEstimate(est, float(np.hypot(se_h, se_bank)), n,
                      {"bank_size": M, "bias_correction": float(0.5 * (cv.mean() + cu.mean())),
                       "se_samples": se_h, "se_bank": se_bank})


# --------------------------------------------------------------------------
# expected KL terms of Theorem 3.2 (Gaussian data conditionals)
# --------------------------------------------------------------------------
def _gaussian_logpdf(x, mean, L, logdet):
    d = np.linalg.solve(L, (x - mean).T)
    return -0.5 * (np.sum(d * d, axis=0) + x.shape[1] * np.log(2 * np.pi) + logdet)


def _one_kl(rng, n, M, x_chol, x_dim, M_map, S_cond, target_chol, target_logdet,
            enc_x, enc_y, tau, similarity, x_first):
    r"""E_x KL(mu_{y|x} || nu_{y|x}), y the target modality; x ~ N(0, C_xx)."""
    x = rng.standard_normal((n, x_dim)) @ x_chol.T
    Ls = np.linalg.cholesky(S_cond)
    y = x @ M_map.T + rng.standard_normal((n, S_cond.shape[0])) @ Ls.T
    bank = rng.standard_normal((M, target_chol.shape[0])) @ target_chol.T
    zx = _encode(enc_x[0], x, enc_x[1])
    zy = _encode(enc_y[0], y, enc_y[1], zx.shape[1])
    zbank = _encode(enc_y[0], bank, enc_y[1], zx.shape[1])
    _check_norms(similarity, zx, zy)
    _check_norms(similarity, zbank)
    if x_first:
        f = _paired_logits(zx, zy, tau, similarity)
    else:
        f = _paired_logits(zy, zx, tau, similarity)
    # Z_y(x) = E_{y'~mu_y} exp f(x, y'); the logit is symmetric in its
    # arguments' roles only through `similarity`, so orient it as (u, v).
    if x_first:
        lz, corr, infl = _log_partition(zx, zbank, tau, similarity)
    else:
        lz, corr, infl = _log_partition_cols(zbank, zx, tau, similarity)
    log_true = _gaussian_logpdf(y, x @ M_map.T, Ls, _logdet(S_cond))
    log_marg = _gaussian_logpdf(y, 0.0, target_chol, target_logdet)
    # log nu_{y|x}(y) = f(x, y) + log mu_y(y) - log Z_y(x)
    h = log_true - (f + log_marg - lz)
    est, se_h = _mean_se(h)
    se_bank = float(np.std(infl, ddof=1) / np.sqrt(M))
    return MCEstimate(est, float(np.hypot(se_h, se_bank)), n,
                      {"bank_size": M, "bias_correction": float(corr.mean()),
                       "se_samples": se_h, "se_bank": se_bank})


def _log_partition_cols(zu_bank, zv, tau, similarity):
    """log Z_u(v_i) = log E_{u'} exp f(u', v_i): the same estimator with roles swapped."""
    if similarity in ("dot", "cosine", "l2"):
        # All three similarities are symmetric in their two arguments.
        return _log_partition(zv, zu_bank, tau, similarity)
    raise AssertionError(similarity)  # pragma: no cover


def expected_kl_terms_mc(cov, n_u, encode_u, encode_v, tau, similarity, n_samples, rng,
                         *, bank_size=None):
    r"""Monte Carlo estimates of the two expected KL terms of Theorem 3.2 (MATH.md §3, §4.3).

    .. math:: E_{\mu_u} KL(\mu_{v|u}\|\nu_{v|u}) = E_{u}E_{v\sim\mu_{v|u}}\Big[
              \log\mu_{v|u}(v|u) - f(u,v) - \log\mu_v(v) + \log Z_v(u)\Big],

    and symmetrically for :math:`u|v`, for :math:`\mu = N(0, C)` and any
    similarity: the data densities are the explicit Gaussian conditionals and
    marginals of §4 (evaluated exactly), :math:`v` is drawn from
    :math:`\mu_{v|u}` (regression map plus Cholesky noise, not from the
    joint), and :math:`\log Z` comes from an independent bank of the marginal
    (bias-corrected, module docstring).  The two terms use independent draws.

    Returns
    -------
    (MCEstimate, MCEstimate)
        ``E_u KL(mu_{v|u} || nu_{v|u})`` and ``E_v KL(mu_{u|v} || nu_{u|v})``.
    """
    cov, n_u = _validated(cov, n_u)  # the conditionals need the closed forms' conditioning
    tau, similarity, n, rng, M = _validate_common(encode_u, encode_v, tau, similarity,
                                                  n_samples, rng, bank_size)
    C_uu, C_vv = cov[:n_u, :n_u], cov[n_u:, n_u:]
    M_v, S_v, M_u, S_u = _true_conditionals(cov, n_u)
    L_uu, L_vv = np.linalg.cholesky(C_uu), np.linalg.cholesky(C_vv)
    eu, ev = (encode_u, "encode_u"), (encode_v, "encode_v")
    kl_v = _one_kl(rng, n, M, L_uu, n_u, M_v, S_v, L_vv, _logdet(C_vv), eu, ev,
                   tau, similarity, True)
    kl_u = _one_kl(rng, n, M, L_vv, cov.shape[0] - n_u, M_u, S_u, L_uu, _logdet(C_uu), ev, eu,
                   tau, similarity, False)
    return kl_v, kl_u


# --------------------------------------------------------------------------
# expected batch loss E[L_N]
# --------------------------------------------------------------------------
def expected_batch_loss_mc(sample, encode_u, encode_v, tau, similarity, batch_size, n_batches, rng):
    r"""Monte Carlo estimate of :math:`E[L_N]` over independent batches (MATH.md §2).

    Each of ``n_batches`` batches of ``batch_size = N`` pairs gives one value
    of the symmetric InfoNCE loss :math:`L_N`; the estimate is their mean and
    the standard error their standard deviation over :math:`\sqrt{n_{batches}}`.
    Batches of up to 256 pairs are evaluated densely and stacked; larger ones
    use the streaming kernel :func:`numerics.kernels.clip_loss`.
    """
    from .kernels import clip_loss

    if not callable(sample):
        raise fail("sample", sample, "a callable sample(rng, n) -> (u, v)")
    tau, similarity, _, rng, _ = _validate_common(encode_u, encode_v, tau, similarity, 2, rng, 2)
    N = _as_count(batch_size, "batch_size", 1)
    R = _as_count(n_batches, "n_batches", 2)
    u, v = _sample(sample, rng, N * R)
    za = _encode(encode_u, u, "encode_u")
    zb = _encode(encode_v, v, "encode_v", za.shape[1])
    _check_norms(similarity, za, zb)
    values = np.empty(R)
    if N <= 256:
        # The formula of numerics.kernels.clip_loss_from_logits, applied to a
        # stack of batches at once: that function takes one matrix and costs
        # ~170 us per call in validation and dispatch, which for thousands of
        # small batches (N = 4 .. 64) would dominate the run time.
        step = max(1, 2**22 // (N * N))
        for s in range(0, R, step):
            k = min(R, s + step) - s
            A = za[s * N:(s + k) * N].reshape(k, N, -1)
            B = zb[s * N:(s + k) * N].reshape(k, N, -1)
            F = np.stack([_logits(A[t], B[t], tau, similarity) for t in range(k)])
            diag = np.trace(F, axis1=1, axis2=2)
            values[s:s + k] = (-diag + 0.5 * (logsumexp(F, axis=2).sum(axis=1)
                                              + logsumexp(F, axis=1).sum(axis=1))) / N
    else:
        for t in range(R):
            values[t] = clip_loss(za[t * N:(t + 1) * N], zb[t * N:(t + 1) * N], tau, similarity)
    est, se = _mean_se(values)
    return MCEstimate(est, se, R, {"batch_size": N})


# --------------------------------------------------------------------------
# batched Gaussian KL
# --------------------------------------------------------------------------
def _as_batch(name, x, ndim_item):
    arr = as_float_array(name, x).astype(np.float64, copy=False)
    if arr.ndim != ndim_item + 1:
        raise fail(name, arr, f"an array with a leading batch axis and {ndim_item} more axes")
    return arr


def gaussian_kl_batch(m1, S1, m2, S2):
    r"""Batched :math:`KL(N(m_1, S_1)\|N(m_2, S_2))` over a leading batch axis (MATH.md §4).

    .. math:: \tfrac12[\operatorname{tr}(S_2^{-1}S_1) - n + (m_2 - m_1)^T S_2^{-1}(m_2 - m_1)
              + \log\det S_2 - \log\det S_1]

    Parameters
    ----------
    m1, m2 : array_like, shape (B, n)
    S1, S2 : array_like, shape (B, n, n)
        Symmetric positive definite.

    Returns
    -------
    ndarray, shape (B,)
    """
    m1, m2 = _as_batch("m1", m1, 1), _as_batch("m2", m2, 1)
    S1, S2 = _as_batch("S1", S1, 2), _as_batch("S2", S2, 2)
    B, n = m1.shape
    for name, arr, shape in (("m2", m2, (B, n)), ("S1", S1, (B, n, n)), ("S2", S2, (B, n, n))):
        if arr.shape != shape:
            raise fail(name, arr, f"shape {shape} (batch and size of m1)")
    if n < 1:
        raise fail("m1", m1, "vectors of length >= 1")
    chol = []
    for name, S in (("S1", S1), ("S2", S2)):
        scale = np.max(np.abs(S), axis=(1, 2), keepdims=True)
        with np.errstate(over="ignore", invalid="ignore"):  # huge entries: judged here
            if np.any(np.abs(S - np.swapaxes(S, 1, 2)) > 64 * np.finfo(np.float64).eps * scale):
                raise fail(name, S, "symmetric matrices")
        try:
            chol.append(np.linalg.cholesky(0.5 * S + 0.5 * np.swapaxes(S, 1, 2)))
        except np.linalg.LinAlgError:
            raise fail(name, S, "positive definite matrices") from None
    L1, L2 = chol
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
        X = np.linalg.solve(L2, L1)  # L2^{-1} L1: tr(S2^{-1} S1) = |X|_F^2
        tr = np.sum(X * X, axis=(1, 2))
        d = np.linalg.solve(L2, (m2 - m1)[..., None])[..., 0]
        logdet = lambda L: 2.0 * np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)), axis=1)
        kl = 0.5 * (tr - n + np.sum(d * d, axis=1) + logdet(L2) - logdet(L1))
    if not np.all(np.isfinite(tr)):
        raise fail("S2", S2, "covariances not so small against S1 that tr(S2^-1 S1) "
                             "overflows float64")
    if not np.all(np.isfinite(kl)):
        raise fail("m2", m2, "means with (m2 - m1)^T S2^-1 (m2 - m1) finite in float64")
    return kl
