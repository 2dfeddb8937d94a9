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

from . import gaussian
from ._validation import (as_count, as_covariance, as_dimension, as_float_array, as_lambda, as_rng,
                          as_temperature, fail)
from .infonce import _infonce, _logits, _paired, as_similarity, check_nonzero_rows, logsumexp
from .gaussian import _logdet, _true_conditionals, _validated

__all__ = [
    "MCEstimate",
    "gaussian_sampler",
    "linear_encoder",
    "population_clip_loss_mc",
    "expected_kl_terms_mc",
    "expected_batch_loss_mc",
    "balanced_loss_mc",
    "balanced_kl_mc",
]

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
def _encode(encode, x, name, similarity, width=None):
    """Embeddings ``encode(x)``, checked to be (n, n_e) with one row per input row,
    when ``width`` is given the embedding width of the other encoder, and rows
    of non-zero norm under cosine similarity; errors name the encoder."""
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
    z = as_float_array(name, z, ndim=2).astype(np.float64, copy=False)
    if similarity == "cosine":
        check_nonzero_rows(name, z)
    return z


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
    similarity = as_similarity(similarity)
    n_samples = as_count(n_samples, "n_samples", 2)
    bank_size = n_samples if bank_size is None else as_count(bank_size, "bank_size", 2)
    return tau, similarity, n_samples, as_rng(rng), bank_size


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
    za = _encode(encode_u, u, "encode_u", similarity)
    zb = _encode(encode_v, v, "encode_v", similarity, za.shape[1])
    zab = _encode(encode_u, ub, "encode_u", similarity, za.shape[1])
    zbb = _encode(encode_v, vb, "encode_v", similarity, za.shape[1])
    f = _paired(za, zb, tau, similarity)
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
            enc_x, enc_y, tau, similarity):
    r"""E_x KL(mu_{y|x} || nu_{y|x}), y the target modality; x ~ N(0, C_xx).

    Every similarity is symmetric, :math:`s(a, b) = s(b, a)`, so the logit and
    the log-partition :math:`\log Z_y(x)` need no orientation.
    """
    x = rng.standard_normal((n, x_dim)) @ x_chol.T
    Ls = np.linalg.cholesky(S_cond)
    y = x @ M_map.T + rng.standard_normal((n, S_cond.shape[0])) @ Ls.T
    bank = rng.standard_normal((M, target_chol.shape[0])) @ target_chol.T
    zx = _encode(enc_x[0], x, enc_x[1], similarity)
    zy = _encode(enc_y[0], y, enc_y[1], similarity, zx.shape[1])
    zbank = _encode(enc_y[0], bank, enc_y[1] + " (bank)", similarity, zx.shape[1])
    f = _paired(zx, zy, tau, similarity)
    lz, corr, infl = _log_partition(zx, zbank, tau, similarity)
    log_true = _gaussian_logpdf(y, x @ M_map.T, Ls, _logdet(S_cond))
    log_marg = _gaussian_logpdf(y, 0.0, target_chol, target_logdet)
    # log nu_{y|x}(y) = f(x, y) + log mu_y(y) - log Z_y(x)
    h = log_true - (f + log_marg - lz)
    est, se_h = _mean_se(h)
    se_bank = float(np.std(infl, ddof=1) / np.sqrt(M))
    return MCEstimate(est, float(np.hypot(se_h, se_bank)), n,
                      {"bank_size": M, "bias_correction": float(corr.mean()),
                       "se_samples": se_h, "se_bank": se_bank})


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
                   tau, similarity)
    kl_u = _one_kl(rng, n, M, L_vv, cov.shape[0] - n_u, M_u, S_u, L_uu, _logdet(C_uu), ev, eu,
                   tau, similarity)
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
    N = as_count(batch_size, "batch_size", 1)
    R = as_count(n_batches, "n_batches", 2)
    u, v = _sample(sample, rng, N * R)
    za = _encode(encode_u, u, "encode_u", similarity)
    zb = _encode(encode_v, v, "encode_v", similarity, za.shape[1])
    values = np.empty(R)
    if N <= 256:
        # The dense InfoNCE of numerics.infonce on a stack of batches at once:
        # one validated call per matrix costs ~170 us, which for thousands of
        # small batches (N = 4 .. 64) would dominate the run time.
        step = max(1, 2**22 // (N * N))
        for s in range(0, R, step):
            k = min(R, s + step) - s
            A = za[s * N:(s + k) * N].reshape(k, N, -1)
            B = zb[s * N:(s + k) * N].reshape(k, N, -1)
            values[s:s + k] = _infonce(_logits(A, B, tau, similarity), 0.5)
    else:
        for t in range(R):
            values[t] = clip_loss(za[t * N:(t + 1) * N], zb[t * N:(t + 1) * N], tau, similarity)
    est, se = _mean_se(values)
    return MCEstimate(est, se, R, {"batch_size": N})


# --------------------------------------------------------------------------
# the lambda-balanced loss L_lambda for any similarity (two routes)
# --------------------------------------------------------------------------
def _linear_encoders(G_u, G_v, tau, cov, n_u):
    from .variants import _encoders

    cov, n_u = gaussian._validated(cov, n_u)
    G_u, G_v, tau = _encoders(G_u, G_v, tau, n_u, cov.shape[0] - n_u)
    return G_u, G_v, tau, cov, n_u


def balanced_loss_mc(G_u, G_v, tau, cov, n_u, lam, *, similarity="cosine", n_samples=4096,
                     batch=256, rng=None):
    r"""Monte Carlo estimate of the forward :math:`L_\lambda` through its InfoNCE form
    (MATH.md §3, §4.3), for linear encoders and any similarity.

    .. math:: L_\lambda = I + E[L_{N,\lambda}] - \log N + O(1/N),

    with :math:`L_{N,\lambda}` the dense balanced InfoNCE of a batch
    (:func:`numerics.infonce.infonce_loss`) and :math:`I` the Gaussian mutual
    information (closed form).  The ``n_samples`` pairs drawn from :math:`N(0, C)`
    form independent batches of ``batch`` pairs; the standard error is over
    batches.  The nested :math:`\log E\exp` carries a Jensen bias
    :math:`O(1/\text{batch})` that the standard error does not include.

    Returns
    -------
    MCEstimate
        ``detail`` holds the batch size and the number of batches.
    """
    G_u, G_v, tau, cov, n_u = _linear_encoders(G_u, G_v, tau, cov, n_u)
    lam = as_lambda(lam)
    similarity = as_similarity(similarity)
    batch = as_count(batch, "batch", 2)
    n_samples = as_count(n_samples, "n_samples", 2 * batch)
    rng = np.random.default_rng(0) if rng is None else as_rng(rng)
    n_b = n_samples // batch
    L = np.linalg.cholesky(cov)
    z = rng.standard_normal((n_b, batch, cov.shape[0])) @ L.T
    za, zb = z[..., :n_u] @ G_u.T, z[..., n_u:] @ G_v.T
    if similarity == "cosine":
        check_nonzero_rows("G_u", za)
        check_nonzero_rows("G_v", zb)
    with np.errstate(over="ignore", invalid="ignore"):
        vals = _infonce(_logits(za, zb, tau, similarity), lam) - np.log(batch)
    if not np.all(np.isfinite(vals)):
        raise fail("G_u, G_v, tau", (G_u, G_v, tau), "encoders whose logits are finite in float64")
    est, se = _mean_se(vals)
    I = gaussian._mutual_information(cov, n_u)
    return MCEstimate(est + I, se, n_b * batch, {"batch": batch, "n_batches": n_b})


def balanced_kl_mc(G_u, G_v, tau, cov, n_u, lam, *, similarity="cosine", n_samples=20000,
                   rng=None, bank_size=None):
    r"""Monte Carlo estimate of the forward :math:`L_\lambda` through its KL form
    (MATH.md §3, §4.3), for linear encoders and any similarity:

    .. math:: L_\lambda = \lambda\, E_v KL(\mu_{u|v}\|\nu_{u|v})
              + (1-\lambda)\, E_u KL(\mu_{v|u}\|\nu_{v|u}),

    each term from :func:`expected_kl_terms_mc` (exact Gaussian data densities,
    bias-corrected log-partitions).  The two terms use independent draws, so
    the standard errors combine as :math:`\sqrt{\lambda^2 s_u^2 + (1-\lambda)^2 s_v^2}`.

    Returns
    -------
    MCEstimate
        ``detail`` holds both terms' estimates.
    """
    G_u, G_v, tau, cov, n_u = _linear_encoders(G_u, G_v, tau, cov, n_u)
    lam = as_lambda(lam)
    similarity = as_similarity(similarity)
    rng = np.random.default_rng(0) if rng is None else as_rng(rng)
    kv, ku = expected_kl_terms_mc(cov, n_u, linear_encoder(G_u), linear_encoder(G_v), tau,
                                  similarity, n_samples, rng, bank_size=bank_size)
    est = lam * ku.estimate + (1 - lam) * kv.estimate
    se = float(np.hypot(lam * ku.standard_error, (1 - lam) * kv.standard_error))
    return MCEstimate(float(est), se, kv.n_samples,
                      {"kl_v": kv.estimate, "kl_u": ku.estimate})
