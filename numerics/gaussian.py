r"""Closed forms for the Gaussian setting with bilinear similarity (MATH.md §4, §4.1).

Conventions: ``cov`` is the joint covariance of :math:`(u, v)`, of size
:math:`n_u + n_v`, ``n_u`` the size of :math:`u`; ``A`` is the
:math:`n_u \times n_v` bilinear matrix with the temperature folded in, so the
logit is :math:`f(u, v) = u^T A v` and, with linear encoders,
:math:`A = G_u^T G_v / \tau`.

Every public function validates its arguments and raises
:class:`numerics.InvalidInputError` on bad input; the private ``_`` helpers do
the arithmetic and no checking.
"""
from __future__ import annotations

import numpy as np

from ._validation import (
    as_bilinear,
    as_covariance,
    as_covariance_batch,
    as_dimension,
    as_float_array,
    as_latent_dim,
    fail,
)

__all__ = [
    "sym_power",
    "split_covariance",
    "whitened_cross_covariance",
    "canonical_correlations",
    "canonical_directions",
    "mutual_information",
    "gaussian_entropy",
    "gaussian_kl",
    "gaussian_kl_batch",
    "whitened_bilinear",
    "batch_loss_bias",
    "true_conditionals",
    "bilinear_model_conditionals",
    "population_clip_loss",
    "population_clip_loss_grad",
    "expected_kl_terms",
    "conditional_loss",
    "lowrank_minimizer",
    "lowrank_minimum",
    "joint_covariance",
]


# --------------------------------------------------------------------------
# validation front door
# --------------------------------------------------------------------------
def _validated(cov, n_u):
    # the positive-definiteness rule, then the README's conditioning rule (numerics._validation)
    cov = as_covariance(cov, conditioning=True)
    n_u = as_dimension(n_u, cov.shape[0])
    return cov, n_u


def _finite(result, A):
    """Results of valid input are finite unless ``A`` is so large that they overflow."""
    parts = result if isinstance(result, tuple) else (result,)
    if not all(np.all(np.isfinite(p)) for p in parts):
        raise fail("A", A, "entries small enough that the result is finite in float64")
    return result


def _blocks(cov, n_u):
    return cov[:n_u, :n_u], cov[:n_u, n_u:], cov[n_u:, n_u:]


def sym_power(S, power):
    r""":math:`S^p` of a symmetric positive definite ``S``, through ``eigh``.

    The result is exactly symmetric (``Q diag(w^p) Q^T``), which the whitening
    :math:`C^{\pm1/2}` of every module relies on.  No validation: pass a
    validated covariance block (:func:`split_covariance`).
    """
    w, Q = np.linalg.eigh(S)
    return (Q * w**power) @ Q.T


def _logdet(S):
    """log det of a symmetric positive definite matrix via Cholesky."""
    L = np.linalg.cholesky(S)
    return 2.0 * float(np.sum(np.log(np.diag(L))))


def _whitened(cov, n_u):
    """K = C_uu^{-1/2} C_uv C_vv^{-1/2} (the whitened *cross-covariance*)."""
    C_uu, C_uv, C_vv = _blocks(cov, n_u)
    return sym_power(C_uu, -0.5) @ C_uv @ sym_power(C_vv, -0.5)


# --------------------------------------------------------------------------
# model statistics
# --------------------------------------------------------------------------
def split_covariance(cov, n_u):
    r"""Return the blocks :math:`(C_{uu}, C_{uv}, C_{vv})` of a validated joint covariance."""
    cov, n_u = _validated(cov, n_u)
    C_uu, C_uv, C_vv = _blocks(cov, n_u)
    return C_uu.copy(), C_uv.copy(), C_vv.copy()


def whitened_cross_covariance(cov, n_u):
    r"""Whitened cross-covariance :math:`K = C_{uu}^{-1/2} C_{uv} C_{vv}^{-1/2}` (MATH.md §4)."""
    cov, n_u = _validated(cov, n_u)
    return _whitened(cov, n_u)


def whitened_bilinear(A, cov, n_u):
    r"""Whitened bilinear matrix :math:`B = C_{uu}^{1/2} A C_{vv}^{1/2}` (MATH.md §4.1).

    The invariant through which minimisers are compared: in the whitened
    coordinates :math:`\tilde u = C_{uu}^{-1/2}u`, :math:`\tilde v = C_{vv}^{-1/2}v`
    the logit :math:`u^TAv` reads :math:`\tilde u^T B \tilde v`, and Proposition G1's
    minimiser is :math:`B^* = U_{n_e}\Sigma_{n_e}V_{n_e}^T`, the truncated SVD of
    :math:`K` (:func:`whitened_cross_covariance`).
    """
    cov, n_u = _validated(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    C_uu, _, C_vv = _blocks(cov, n_u)
    return sym_power(C_uu, 0.5) @ A @ sym_power(C_vv, 0.5)


def canonical_correlations(cov, n_u):
    r"""Canonical correlations: the singular values of :math:`K`, descending (MATH.md §4).

    Returns an array of length :math:`\min(n_u, n_v)` with entries in
    :math:`[0, 1)`; zeros pad the directions beyond :math:`\operatorname{rank} C_{uv}`.
    """
    cov, n_u = _validated(cov, n_u)
    return np.linalg.svd(_whitened(cov, n_u), compute_uv=False)


def canonical_directions(cov, n_u):
    r"""Full SVD :math:`K = U \Sigma V^T` of the whitened cross-covariance.

    Returns ``(U, sigma, Vt)`` with ``U`` of shape ``(n_u, k)``, ``Vt`` of shape
    ``(k, n_v)``, ``k = min(n_u, n_v)``.
    """
    cov, n_u = _validated(cov, n_u)
    return np.linalg.svd(_whitened(cov, n_u), full_matrices=False)


def _mutual_information(cov, n_u):
    C_uu, _, C_vv = _blocks(cov, n_u)
    return 0.5 * (_logdet(C_uu) + _logdet(C_vv) - _logdet(cov))


def mutual_information(cov, n_u):
    r"""Mutual information :math:`I(u; v)` of :math:`N(0, C)` (MATH.md §4).

    .. math:: I = \tfrac12(\log\det C_{uu} + \log\det C_{vv} - \log\det C)
              = -\tfrac12 \sum_i \log(1 - \sigma_i^2).

    Computed from Cholesky log-determinants, which keeps its accuracy when a
    canonical correlation approaches 1 (where ``log(1 - sigma**2)`` of a
    rounded ``sigma`` loses it).
    """
    cov, n_u = _validated(cov, n_u)
    return _mutual_information(cov, n_u)


def gaussian_entropy(S):
    r"""Differential entropy :math:`h(N(m, S)) = \tfrac12 \log\det(2\pi e S)`."""
    S = as_covariance(S, "S", min_size=1)
    n = S.shape[0]
    return 0.5 * (n * np.log(2 * np.pi * np.e) + _logdet(S))


def _gaussian_kl(m1, S1, m2, S2):
    n = S1.shape[0]
    L2 = np.linalg.cholesky(S2)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
        X = np.linalg.solve(L2, S1)
        tr = float(np.trace(np.linalg.solve(L2.T, X)))
        d = np.linalg.solve(L2, m2 - m1)
        kl = 0.5 * (tr - n + float(d @ d) + _logdet(S2) - _logdet(S1))
    if not np.isfinite(tr):
        raise fail("S2", S2, "a covariance not so small against S1 that tr(S2^-1 S1) overflows float64")
    if not np.isfinite(kl):
        raise fail("m2", m2, "a mean with (m2 - m1)^T S2^-1 (m2 - m1) finite in float64")
    return kl


def gaussian_kl(m1, S1, m2, S2):
    r"""Kullback–Leibler divergence :math:`KL(N(m_1, S_1) \| N(m_2, S_2))` (MATH.md §4).

    .. math:: \tfrac12[\operatorname{tr}(S_2^{-1} S_1) - n + (m_2 - m_1)^T S_2^{-1}(m_2 - m_1)
              + \log\det S_2 - \log\det S_1]
    """
    S1 = _as_any_cov(S1, "S1")
    S2 = _as_any_cov(S2, "S2")
    n = S1.shape[0]
    if S2.shape != S1.shape:
        raise fail("S2", S2, f"a matrix of the same shape as S1, {S1.shape}")
    m1 = _as_mean(m1, n, "m1")
    m2 = _as_mean(m2, n, "m2")
    return _gaussian_kl(m1, S1, m2, S2)


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
    # the rule of numerics.as_covariance, matrix by matrix; Cholesky succeeds on what it accepts
    L1, L2 = (np.linalg.cholesky(as_covariance_batch(S, name)) for name, S in (("S1", S1), ("S2", S2)))
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


def _as_any_cov(S, name):
    return as_covariance(S, name, min_size=1)


def _as_marginal(S, name):
    """A marginal covariance: the positive-definiteness rule of :func:`numerics.as_covariance`
    (its smallest eigenvalue exceeds ``100 n eps`` times the largest, so ``sym_power(S, 0.5)``
    of the same matrix scaled by an even power of 2 has positive eigenvalues, whatever the
    sign of the rounding; no conditioning rule, as before)."""
    return _as_any_cov(S, name)


def _as_mean(m, n, name):
    arr = as_float_array(name, m, ndim=1).astype(np.float64, copy=False)
    if arr.shape != (n,):
        raise fail(name, arr, f"a vector of length {n}")
    return arr


def true_conditionals(cov, n_u):
    r"""Regression maps and covariances of the data conditionals (MATH.md §4).

    :math:`\mu_{v|u} = N(M_v u, S_v)`, :math:`M_v = C_{vu} C_{uu}^{-1}`,
    :math:`S_v = C_{vv} - C_{vu} C_{uu}^{-1} C_{uv}`, and symmetrically for
    :math:`u|v`.  Returns ``(M_v, S_v, M_u, S_u)``.
    """
    cov, n_u = _validated(cov, n_u)
    return _true_conditionals(cov, n_u)


def _true_conditionals(cov, n_u):
    C_uu, C_uv, C_vv = _blocks(cov, n_u)
    M_v = np.linalg.solve(C_uu, C_uv).T
    M_u = np.linalg.solve(C_vv, C_uv.T).T
    S_v = C_vv - M_v @ C_uv
    S_u = C_uu - M_u @ C_uv.T
    return M_v, 0.5 * (S_v + S_v.T), M_u, 0.5 * (S_u + S_u.T)


def bilinear_model_conditionals(A, cov, n_u):
    r"""Model conditionals of the bilinear tilt (MATH.md §4.1).

    :math:`\nu_{v|u} = N(C_{vv} A^T u, C_{vv})`, :math:`\nu_{u|v} = N(C_{uu} A v, C_{uu})`.
    Returns ``(N_v, C_vv, N_u, C_uu)`` where ``N_v = C_vv A^T`` and ``N_u = C_uu A``
    are the maps from the conditioning variable to the model mean.
    """
    cov, n_u = _validated(cov, n_u)
    C_uu, _, C_vv = _blocks(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by _finite
        result = (C_vv @ A.T, C_vv.copy(), C_uu @ A, C_uu.copy())
    return _finite(result, A)


# --------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------
def _population_clip_loss(A, cov, n_u):
    C_uu, C_uv, C_vv = _blocks(cov, n_u)
    return float(-np.sum(A * C_uv) + 0.5 * np.trace(A @ C_vv @ A.T @ C_uu))


def population_clip_loss(A, cov, n_u):
    r"""Population CLIP loss of the bilinear logit :math:`f = u^T A v` (MATH.md §3, §4.1).

    .. math:: L_{clip}(A) = -\operatorname{tr}(A C_{vu})
              + \tfrac12 \operatorname{tr}(A C_{vv} A^T C_{uu})
              = \tfrac12\|B - K\|_F^2 - \tfrac12\|K\|_F^2,
              \quad B = C_{uu}^{1/2} A C_{vv}^{1/2}.

    The first term is the alignment term :math:`-E f`; each expected
    log-partition :math:`E_{\mu_u}\log Z_v(u)` and :math:`E_{\mu_v}\log Z_u(v)`
    equals :math:`\tfrac12 \operatorname{tr}(A C_{vv} A^T C_{uu})` because
    :math:`\log E \exp` of a Gaussian linear form is half its variance; with
    their weights :math:`\tfrac12` they add up to the quadratic term.
    """
    cov, n_u = _validated(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by _finite
        result = _population_clip_loss(A, cov, n_u)
    return _finite(result, A)


def population_clip_loss_grad(A, cov, n_u):
    r"""Gradient of :func:`population_clip_loss` in ``A``: :math:`-C_{uv} + C_{uu} A C_{vv}`."""
    cov, n_u = _validated(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    C_uu, C_uv, C_vv = _blocks(cov, n_u)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by _finite
        result = -C_uv + C_uu @ A @ C_vv
    return _finite(result, A)


def _expected_gaussian_kl(M_true, S_true, M_model, S_model, C_cond):
    r"""E_x KL(N(M_true x, S_true) || N(M_model x, S_model)) for x ~ N(0, C_cond)."""
    n = S_true.shape[0]
    L = np.linalg.cholesky(S_model)
    Sinv_S = np.linalg.solve(L.T, np.linalg.solve(L, S_true))
    D = M_model - M_true
    W = np.linalg.solve(L, D)  # S_model^{-1/2}-ish factor of the mean error map
    mean_term = float(np.sum((W @ C_cond) * W))
    return 0.5 * (float(np.trace(Sinv_S)) - n + mean_term + _logdet(S_model) - _logdet(S_true))


def _expected_kl_terms(A, cov, n_u):
    C_uu, _, C_vv = _blocks(cov, n_u)
    M_v, S_v, M_u, S_u = _true_conditionals(cov, n_u)
    kl_v = _expected_gaussian_kl(M_v, S_v, C_vv @ A.T, C_vv, C_uu)
    kl_u = _expected_gaussian_kl(M_u, S_u, C_uu @ A, C_uu, C_vv)
    return kl_v, kl_u


def expected_kl_terms(A, cov, n_u):
    r"""The two expected conditional KL divergences of Theorem 3.2 (MATH.md §3, §4.1).

    Returns ``(E_u KL(mu_{v|u} || nu_{v|u}), E_v KL(mu_{u|v} || nu_{u|v}))``,
    each computed from the explicit Gaussian conditionals
    (:func:`true_conditionals`, :func:`bilinear_model_conditionals`) by the
    Gaussian KL formula averaged over the conditioning variable:

    .. math:: E_u KL = \tfrac12[\operatorname{tr}(C_{vv}^{-1} S_v) - n_v
              + \operatorname{tr}(D^T C_{vv}^{-1} D C_{uu}) + \log\det C_{vv} - \log\det S_v],
              \quad D = C_{vv}A^T - C_{vu}C_{uu}^{-1}.
    """
    cov, n_u = _validated(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by _finite
        result = _expected_kl_terms(A, cov, n_u)
    return _finite(result, A)


def _expected_model_nll(M_model, S_model, C_cond, C_target, C_cross):
    r"""-E log N(y; M x, S) for (x, y) jointly Gaussian, E x y^T = C_cross."""
    n = S_model.shape[0]
    # E (y - Mx)(y - Mx)^T = C_yy - M C_xy - C_yx M^T + M C_xx M^T
    E = C_target - M_model @ C_cross - C_cross.T @ M_model.T + M_model @ C_cond @ M_model.T
    L = np.linalg.cholesky(S_model)
    quad = float(np.trace(np.linalg.solve(L.T, np.linalg.solve(L, E))))
    return 0.5 * (n * np.log(2 * np.pi) + _logdet(S_model) + quad)


def conditional_loss(A, cov, n_u):
    r"""Conditional loss :math:`L_{cond}` (MATH.md §3) of the bilinear model.

    .. math:: L_{cond}(A) = -\tfrac12 E_\mu[\log \nu_{v|u}(v|u) + \log \nu_{u|v}(u|v)],

    evaluated as the expected negative log-density of the model conditionals
    under the joint Gaussian (second moments of the residuals
    :math:`v - C_{vv}A^T u` and :math:`u - C_{uu} A v`).  It does not use
    :func:`population_clip_loss`; Theorem 2.8 relates the two.
    """
    cov, n_u = _validated(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by _finite
        result = _conditional_loss(A, cov, n_u)
    return _finite(result, A)


def _conditional_loss(A, cov, n_u):
    C_uu, C_uv, C_vv = _blocks(cov, n_u)
    nll_v = _expected_model_nll(C_vv @ A.T, C_vv, C_uu, C_vv, C_uv)
    nll_u = _expected_model_nll(C_uu @ A, C_uu, C_vv, C_uu, C_uv.T)
    return 0.5 * (nll_v + nll_u)


# --------------------------------------------------------------------------
# Proposition G1
# --------------------------------------------------------------------------
def lowrank_minimizer(cov, n_u, n_e):
    r"""Minimiser :math:`A^*` of :math:`L_{clip}` over :math:`\operatorname{rank} A \le n_e`
    (Proposition G1, MATH.md §4.1).

    .. math:: A^* = C_{uu}^{-1/2} U_{n_e} \Sigma_{n_e} V_{n_e}^T C_{vv}^{-1/2},

    the truncated SVD of :math:`K` mapped back (Eckart–Young).  When
    :math:`\sigma_{n_e} = \sigma_{n_e+1}` the minimiser is not unique and this
    returns the one picked by the SVD routine.
    """
    cov, n_u = _validated(cov, n_u)
    n_v = cov.shape[0] - n_u
    n_e = as_latent_dim(n_e, n_u, n_v)
    C_uu, _, C_vv = _blocks(cov, n_u)
    U, s, Vt = np.linalg.svd(_whitened(cov, n_u), full_matrices=False)
    B = (U[:, :n_e] * s[:n_e]) @ Vt[:n_e]
    return sym_power(C_uu, -0.5) @ B @ sym_power(C_vv, -0.5)


def lowrank_minimum(cov, n_u, n_e):
    r"""Minimum value :math:`-\tfrac12 \sum_{i \le n_e} \sigma_i^2` of Proposition G1."""
    cov, n_u = _validated(cov, n_u)
    n_e = as_latent_dim(n_e, n_u, cov.shape[0] - n_u)
    s = np.linalg.svd(_whitened(cov, n_u), compute_uv=False)
    return -0.5 * float(np.sum(s[:n_e] ** 2))


# --------------------------------------------------------------------------
# construction
# --------------------------------------------------------------------------
def joint_covariance(C_uu, C_vv, sigma, U=None, V=None):
    r"""Joint covariance with prescribed marginals and canonical structure.

    .. math:: C_{uv} = C_{uu}^{1/2}\, U \operatorname{diag}(\sigma)\, V^T C_{vv}^{1/2},

    so that the canonical correlations are ``sigma`` (sorted) and the canonical
    directions ``U``, ``V`` (orthonormal columns; identity-like if omitted).
    Positive definite iff every ``sigma`` lies in ``[0, 1)``.

    Every argument is validated, in the order of the signature, before any
    arithmetic: a singular ``C_vv`` is reported as ``C_vv`` even when ``C_uu``
    has entries large enough to overflow the result (that is judged last).
    """
    C_uu = _as_marginal(C_uu, "C_uu")
    C_vv = _as_marginal(C_vv, "C_vv")
    n_u, n_v = C_uu.shape[0], C_vv.shape[0]
    k = min(n_u, n_v)
    sigma = as_float_array("sigma", sigma).astype(np.float64, copy=False).reshape(-1)
    if sigma.shape[0] > k or np.any(sigma < 0) or np.any(sigma >= 1):
        raise fail("sigma", sigma, f"at most {k} canonical correlations in [0, 1)")
    r = sigma.shape[0]
    U = np.eye(n_u) if U is None else as_float_array("U", U, ndim=2).astype(np.float64, copy=False)
    V = np.eye(n_v) if V is None else as_float_array("V", V, ndim=2).astype(np.float64, copy=False)
    for name, M, n in (("U", U, n_u), ("V", V, n_v)):
        if M.shape[0] != n or M.shape[1] < r or not np.allclose(M[:, :r].T @ M[:, :r], np.eye(r), atol=1e-10):
            raise fail(name, M, f"a ({n}, >= {r}) matrix with orthonormal columns")
    U, V = U[:, :r], V[:, :r]
    # square roots of the marginals scaled by even powers of 2 (exact), so that
    # entries near the float64 maximum do not overflow on the way
    e_u, e_v = (2 * (np.frexp(np.max(np.abs(C)))[1] // 2) for C in (C_uu, C_vv))
    core = sym_power(np.ldexp(C_uu, -e_u), 0.5) @ (U * sigma) @ V.T @ sym_power(np.ldexp(C_vv, -e_v), 0.5)
    with np.errstate(over="ignore", invalid="ignore"):  # judged below
        C_uv = np.ldexp(np.ldexp(core, e_u // 2), e_v // 2)
        cov = np.block([[C_uu, C_uv], [C_uv.T, C_vv]])
        cov = 0.5 * cov + 0.5 * cov.T
    if not np.all(np.isfinite(cov)):
        name, C = ("C_uu", C_uu) if np.max(np.abs(C_uu)) >= np.max(np.abs(C_vv)) else ("C_vv", C_vv)
        raise fail(name, C, "entries small enough that the joint covariance is finite in float64")
    return cov


# --------------------------------------------------------------------------
# finite-sample bias of the batch loss (Proposition N1)
# --------------------------------------------------------------------------
def _det_half(M):
    r""":math:`\det(M)^{-1/2}` for :math:`M = I - QC`, or ``inf`` when
    :math:`E e^{x^TQx/2}` diverges.  :math:`QC` is similar to the symmetric
    :math:`C^{1/2}QC^{1/2}`, so :math:`M` has real eigenvalues, and the integral
    converges iff all of them are positive: the sign of :math:`\det M` alone
    misses an even number of non-positive ones."""
    if not np.min(np.linalg.eigvals(M).real) > 0:
        return np.inf
    sign, logdet = np.linalg.slogdet(M)
    return float(np.exp(-0.5 * logdet))


def batch_loss_bias(A, cov, n_u):
    r"""First-order bias coefficient :math:`b` of :math:`E[L_N] - \log N = L_{clip} + b/N + O(N^{-2})`
    for the bilinear logit :math:`f = u^T A v` under :math:`N(0, C)` (Proposition N1).

    The delta method on :math:`\log\frac1N\sum_j e^{F_{ij}}` (the positive
    pair :math:`j = i` shifts the mean, the :math:`N-1` negatives give the
    variance) gives, per direction,

    .. math:: b_{row} = E_\mu\frac{e^{f(u,v)}}{Z_v(u)}
              - \tfrac12 E_{u}\frac{E_{v'}e^{2f(u,v')}}{Z_v(u)^2} - \tfrac12,
              \qquad b = \tfrac12(b_{row} + b_{col}).

    With :math:`Z_v(u) = e^{q(u)/2}`, :math:`q = u^T A C_{vv} A^T u`, both
    expectations are Gaussian integrals of quadratic forms,
    :math:`E e^{x^T Q x/2} = \det(I - QC)^{-1/2}`.  Returns ``inf`` when one
    of them diverges (the logits' second moment is infinite).
    """
    cov, n_u = _validated(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    C_uu, _, C_vv = _blocks(cov, n_u)
    n_v = cov.shape[0] - n_u
    Mv = A @ C_vv @ A.T
    Mu = A.T @ C_uu @ A
    Z = np.zeros((n_v, n_v))
    Qr = np.block([[-Mv, A], [A.T, Z]])
    Qc = np.block([[np.zeros((n_u, n_u)), A], [A.T, -Mu]])
    I = np.eye(cov.shape[0])
    halves = (_det_half(I - Qr @ cov), _det_half(np.eye(n_u) - 2 * Mv @ C_uu),
              _det_half(I - Qc @ cov), _det_half(np.eye(n_v) - 2 * Mu @ C_vv))
    if not all(np.isfinite(h) for h in halves):  # documented: inf, not -inf or inf - inf
        return np.inf
    b_row = halves[0] - 0.5 * halves[1] - 0.5
    b_col = halves[2] - 0.5 * halves[3] - 0.5
    return 0.5 * (b_row + b_col)
