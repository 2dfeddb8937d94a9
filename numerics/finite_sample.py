r"""The expected finite-sample loss :math:`E[L_N]` by routes other than plain Monte Carlo
(MATH.md §2, §3; Propositions N1 and N2).

Two tools:

* **Quadrature in a scalar model** (:func:`scalar_expected_batch_loss`):
  :math:`u, v` standard normal with correlation :math:`\rho` and a symmetric
  logit :math:`f(u, v) = f(v, u)`.  For every batch size :math:`N`, to about
  :math:`10^{-13}`, by a three-dimensional quadrature whose cost does not
  grow with :math:`N`.
* **A control-variate Monte Carlo estimator of the bias**
  :math:`D_N = E[L_N] - \log N - L_{clip}` for the bilinear Gaussian model
  (:func:`expected_batch_loss_bias_cv`): the batch loss minus its first-order
  (Hájek) projection on the pairs, whose mean is known by a Gaussian integral.
  Its variance per batch is :math:`O(N^{-2})` instead of :math:`O(N^{-1})`.

Quadrature (derivation)
-----------------------
By exchangeability of the pairs, the row terms of :math:`L_N` all have the law
of :math:`\log\sum_j e^{f(u_1, v_j)}`, and for a symmetric logit of a pair
whose law is symmetric under :math:`u \leftrightarrow v` (unit variances) the
column terms have the same law, so

.. math:: E[L_N] = -E_\mu f + E\log X_N,\qquad
          X_N = e^{f(u_1, v_1)} + \sum_{j=2}^N e^{f(u_1, v_j)},

with :math:`(u_1, v_1) \sim \mu` and :math:`v_2, \dots, v_N \sim N(0, 1)`
independent of :math:`(u_1, v_1)` (they belong to other pairs).  Frullani's
integral :math:`\log x = \int_0^\infty (e^{-t} - e^{-tx})\,dt/t` and the
independence of the negatives given :math:`u_1` give, with :math:`t = e^s`,

.. math:: E\log X_N = E_{(u,v_1)\sim\mu}\int_{-\infty}^{\infty}
          \Big(e^{-e^s} - e^{-e^s e^{f(u, v_1)}}\,\Lambda_u(e^s)^{N-1}\Big)\,ds,
          \qquad \Lambda_u(t) = E_{v\sim N(0,1)}\, e^{-t e^{f(u, v)}} .

The :math:`s`-integrand is analytic and decays exponentially on the left
(like :math:`e^s E X_N`) and double-exponentially on the right, so the
trapezoidal rule converges geometrically; :math:`\Lambda_u` is a trapezoidal
rule on a uniform grid of :math:`v` (Gaussian weights renormalised to sum to
1, so that :math:`\Lambda_u(0) = 1` exactly), and the outer expectation is a
tensor Gauss–Hermite rule in :math:`(u, v_1) = (x, \rho x + \sqrt{1-\rho^2}\,y)`.
:math:`1 - \Lambda` and :math:`e^{-t} - e^{y}` are formed with ``expm1`` /
``log1p``, without which the left tail loses :math:`N\epsilon` per node.
The error is estimated a posteriori as the difference with a coarser rule
(fewer Gauss–Hermite nodes, wider steps): for these geometrically convergent
rules the finer result is far more accurate than that difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from ._validation import as_bilinear, as_count, as_rng, fail
from .gaussian import _blocks, _validated
from .infonce import _stacked_infonce
from .montecarlo import MCEstimate

__all__ = [
    "QuadratureEstimate",
    "scalar_expected_batch_loss",
    "bilinear_scalar_logit",
    "pmi_scalar_logit",
    "pmi_bias_coefficient",
    "richardson_limit",
    "bilinear_batch_influence",
    "expected_batch_loss_bias_cv",
]


@dataclass(frozen=True)
class QuadratureEstimate:
    r"""Values of a quadrature with their a-posteriori error estimates.

    Attributes
    ----------
    sizes : ndarray of int
    values : ndarray
        :math:`E[L_N]` for each batch size.
    error : ndarray
        :math:`|\text{fine} - \text{coarse}|` plus a rounding floor
        :math:`64\,\epsilon\,(1 + |\text{value}|)`.
    """

    sizes: np.ndarray
    values: np.ndarray
    error: np.ndarray


#: (Gauss–Hermite nodes per axis, s-step, v-step) of the fine and coarse rules.
#: Measured on a = 0.25, rho = 0.9 against (90, 0.05, 0.02): the fine rule is
#: within 2e-15 of it up to N = 4096, the coarse within 1e-13.
_FINE = (48, 0.2, 0.05)
_COARSE = (32, 0.3, 0.1)
_S_HALF = 40.0   # s in [-40, 40]: e^{-40} E X_N and exp(-e^{40} X_N) are both below 1e-16
_V_HALF = 10.0   # the normal mass beyond |v| = 10 is 1.5e-23


def bilinear_scalar_logit(a):
    r"""The scalar bilinear logit :math:`f(u, v) = a\,u\,v`."""
    a = float(a)
    return lambda u, v: a * u * v


def pmi_scalar_logit(rho):
    r"""The pointwise mutual information of a standard bivariate normal with correlation
    :math:`\rho`, the optimal InfoNCE critic (MATH.md §3, Theorem 3.2):

    .. math:: f(u, v) = -\tfrac12\log(1-\rho^2)
              - \frac{\rho^2u^2 - 2\rho uv + \rho^2v^2}{2(1-\rho^2)} .
    """
    rho = float(rho)
    c = 1.0 - rho * rho
    return lambda u, v: -0.5 * np.log(c) - (rho * rho * (u * u + v * v) - 2 * rho * u * v) / (2 * c)


def pmi_bias_coefficient(cov, n_u):
    r""":math:`\tfrac12\chi^2(\mu\,\|\,\mu_u\otimes\mu_v) = \tfrac12\big(\prod_i (1-\sigma_i^2)^{-1} - 1\big)`.

    For the critic :math:`f = \log\frac{d\mu}{d(\mu_u\otimes\mu_v)}` the partition
    functions are 1 and the delta method of Proposition N1 gives
    :math:`b = E_\mu e^f - \tfrac12 E_{\mu_u\otimes\mu_v}e^{2f} - \tfrac12
    = \tfrac12(E_{\mu_u\otimes\mu_v} r^2 - 1)`, :math:`r = e^f`, which is half the
    :math:`\chi^2` divergence; for a Gaussian
    :math:`E_{\mu_u\otimes\mu_v}r^2 = \det(I - K^TK)^{-1}` (a Gaussian integral).
    Hence :math:`E[L_N] - (\log N - I) = b/N + O(N^{-2})`: the InfoNCE bound of
    Proposition N2 is attained as :math:`N \to \infty`.
    """
    cov, n_u = _validated(cov, n_u)
    from .gaussian import _whitened

    s = np.linalg.svd(_whitened(cov, n_u), compute_uv=False)
    return 0.5 * (float(np.prod(1.0 / (1.0 - s * s))) - 1.0)


def _as_sizes(sizes):
    arr = np.asarray(sizes)
    if arr.ndim != 1 or arr.size < 1 or arr.dtype.kind not in "iu" or np.any(arr < 1):
        raise fail("sizes", sizes, "a non-empty sequence of batch sizes N >= 1")
    return arr.astype(np.int64)


def _as_rho(rho):
    if isinstance(rho, bool) or not isinstance(rho, Real) or not -1 < float(rho) < 1:
        raise fail("rho", rho, "a correlation in (-1, 1)")
    return float(rho)


def _row_term(logit, rho, sizes, n_gh, h, h_v):
    r""":math:`E\log X_N` for each ``N`` (module docstring); no checking."""
    x, wx = hermegauss(n_gh)
    wx = wx / wx.sum()
    v1 = rho * x[:, None] + np.sqrt(1.0 - rho * rho) * x[None, :]
    u = np.broadcast_to(x[:, None], v1.shape)
    W = wx[:, None] * wx[None, :]
    s = np.arange(-_S_HALF, _S_HALF + h / 2, h)
    t = np.exp(s)
    vg = np.linspace(-_V_HALF, _V_HALF, int(round(2 * _V_HALF / h_v)) + 1)
    pv = np.exp(-0.5 * vg * vg)
    pv /= pv.sum()
    with np.errstate(over="ignore", under="ignore"):
        ef = np.exp(logit(x[:, None], vg[None, :]))                 # e^{f(u_a, v_k)}
        tf = t[None, :, None] * ef[:, None, :]
        one_minus = -np.expm1(-tf) @ pv                             # 1 - Lambda_u(t)
        lam = np.exp(-tf) @ pv                                      # Lambda_u(t)
        with np.errstate(divide="ignore"):
            log_lam = np.where(one_minus < 0.5, np.log1p(-np.minimum(one_minus, 0.5)),
                               np.log(lam))
        te1 = t[None, None, :] * np.exp(logit(u, v1))[:, :, None]
        em = np.expm1(-t)
        out = np.empty(len(sizes))
        for k, N in enumerate(sizes):
            y = -te1 if N == 1 else -te1 + (N - 1) * log_lam[:, None, :]
            integrand = em[None, None, :] - np.expm1(y)
            out[k] = float(np.sum(W * integrand.sum(axis=2)) * h)
    return out


def _mean_logit(logit, rho, n_gh):
    x, wx = hermegauss(n_gh)
    wx = wx / wx.sum()
    v1 = rho * x[:, None] + np.sqrt(1.0 - rho * rho) * x[None, :]
    return float(np.sum(wx[:, None] * wx[None, :] * logit(np.broadcast_to(x[:, None], v1.shape), v1)))


def scalar_expected_batch_loss(logit, rho, sizes) -> QuadratureEstimate:
    r"""Exact :math:`E[L_N]` (to quadrature accuracy) in the scalar model, MATH.md §2.

    .. math:: E[L_N] = -E_\mu f + E_{(u,v_1)\sim\mu}\int_{\mathbb R}
              \Big(e^{-e^s} - e^{-e^s e^{f(u,v_1)}}\Lambda_u(e^s)^{N-1}\Big)ds

    (derivation in the module docstring), for :math:`(u, v)` standard normal
    with correlation ``rho`` and a logit ``f`` symmetric in its arguments.

    Parameters
    ----------
    logit : callable
        ``logit(u, v)`` on broadcast arrays, with ``f(u, v) = f(v, u)``
        (e.g. :func:`bilinear_scalar_logit`, :func:`pmi_scalar_logit`).  The
        symmetry is checked on the quadrature nodes.
    rho : float
        Correlation in (-1, 1).
    sizes : sequence of int
        Batch sizes :math:`N \ge 1`.

    Returns
    -------
    QuadratureEstimate
    """
    if not callable(logit):
        raise fail("logit", logit, "a callable logit(u, v) on arrays")
    rho = _as_rho(rho)
    sizes = _as_sizes(sizes)
    x, _ = hermegauss(_FINE[0])
    fx = np.asarray(logit(x[:, None], x[None, :]), dtype=float)
    if fx.shape != (x.size, x.size) or not np.all(np.isfinite(fx)):
        raise fail("logit", logit, "a callable returning finite values on broadcast arrays")
    if np.max(np.abs(fx - fx.T)) > 64 * np.finfo(float).eps * max(1.0, float(np.max(np.abs(fx)))):
        raise fail("logit", logit, "a symmetric logit, f(u, v) = f(v, u)")
    values = {}
    for name, (n_gh, h, h_v) in (("fine", _FINE), ("coarse", _COARSE)):
        values[name] = -_mean_logit(logit, rho, n_gh) + _row_term(logit, rho, sizes, n_gh, h, h_v)
    fine = values["fine"]
    err = np.abs(fine - values["coarse"]) + 64 * np.finfo(float).eps * (1.0 + np.abs(fine))
    return QuadratureEstimate(sizes, fine, err)


def richardson_limit(sizes, values, errors=None, *, orders: int = 3):
    r"""Limit of :math:`R_1(N) = c + c_1/N + c_2/N^2 + \dots` from values at doubling ``N``.

    Richardson's table :math:`R_{k+1}(N) = (2^k R_k(2N) - R_k(N))/(2^k - 1)` on the
    last ``orders + 1`` sizes (which must double).  Returns
    ``(limit, truncation, propagated)``: the top entry, the difference between the
    last two orders (the usual estimate of the truncation error, conservative
    when the expansion holds), and the propagation of ``errors`` on the inputs
    (each step multiplies absolute errors by at most :math:`(2^k + 1)/(2^k - 1)`).
    """
    sizes = np.asarray(sizes, dtype=float)[-(orders + 1):]
    R = np.asarray(values, dtype=float)[-(orders + 1):]
    if np.any(sizes[1:] != 2 * sizes[:-1]):
        raise fail("sizes", sizes, "doubling batch sizes (N, 2N, 4N, ...)")
    E = (np.zeros_like(R) if errors is None else np.asarray(errors, dtype=float)[-(orders + 1):])
    prev_top = R[-1]
    for k in range(1, orders + 1):
        prev_top = R[-1]
        R = (2**k * R[1:] - R[:-1]) / (2**k - 1)
        E = (2**k * E[1:] + E[:-1]) / (2**k - 1)
    return float(R[-1]), float(abs(R[-1] - prev_top)), float(E[-1])


# --------------------------------------------------------------------------
# control variate for the bilinear Gaussian model
# --------------------------------------------------------------------------
def bilinear_batch_influence(A, cov, n_u):
    r"""The first-order projection of :math:`L_N - \log N` on single pairs, plus 1:
    :math:`\tilde\psi(u, v)` with :math:`E\tilde\psi = L_{clip} + 1` (MATH.md §3).

    For :math:`f = u^TAv` and :math:`\mu = N(0, C)`,

    .. math:: \tilde\psi(u, v) = -f(u,v) + \tfrac12\log Z_v(u) + \tfrac12\log Z_u(v)
              + \tfrac12 h_u(v) + \tfrac12 h_v(u),

    :math:`\log Z_v(u) = \tfrac12 u^TM_vu`, :math:`M_v = AC_{vv}A^T` (the Gaussian
    moment generating function), and :math:`h_u(v) = E_{u'}\,e^{f(u',v)}/Z_v(u')`,
    the weight pair :math:`v` carries as a negative in the other rows:

    .. math:: h_u(v) = \det(I + C_{uu}M_v)^{-1/2}
              \exp\big(\tfrac12 (Av)^T(C_{uu}^{-1} + M_v)^{-1}Av\big),

    and symmetrically :math:`h_v(u)` with :math:`M_u = A^TC_{uu}A`.  Both have mean
    1 (:math:`E_vE_{u'}e^{f(u',v)}/Z_v(u') = E_{u'}Z_v(u')/Z_v(u') = 1`), and the
    first three terms have mean :math:`L_{clip}` by its definition, whatever
    closed form one uses for it.

    Returns a function ``psi(u, v)`` of arrays of shapes (n, n_u), (n, n_v).
    """
    cov, n_u = _validated(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    C_uu, _, C_vv = _blocks(cov, n_u)
    M_v, M_u = A @ C_vv @ A.T, A.T @ C_uu @ A
    W_u = np.linalg.inv(np.linalg.inv(C_uu) + M_v)
    W_v = np.linalg.inv(np.linalg.inv(C_vv) + M_u)
    d_u = np.linalg.det(np.eye(n_u) + C_uu @ M_v) ** -0.5
    d_v = np.linalg.det(np.eye(cov.shape[0] - n_u) + C_vv @ M_u) ** -0.5

    def psi(u, v):
        uA, Av = u @ A, v @ A.T
        f = np.einsum("ij,ij->i", uA, v)
        return (-f + 0.25 * np.einsum("ij,ij->i", u @ M_v, u) + 0.25 * np.einsum("ij,ij->i", v @ M_u, v)
                + 0.5 * d_u * np.exp(0.5 * np.einsum("ij,ij->i", Av @ W_u, Av))
                + 0.5 * d_v * np.exp(0.5 * np.einsum("ij,ij->i", uA @ W_v, uA)))

    return psi


def expected_batch_loss_bias_cv(A, cov, n_u, batch_size, n_batches, rng, *,
                                influence=bilinear_batch_influence) -> MCEstimate:
    r"""Monte Carlo estimate of :math:`D_N = E[L_N] - \log N - L_{clip}` with a control variate.

    .. math:: \hat D_N = \frac1R\sum_{r=1}^R\Big(L_N^{(r)} - \log N
              - \frac1N\sum_{k}\tilde\psi(u_k^{(r)}, v_k^{(r)})\Big) + 1,

    unbiased because :math:`E\tilde\psi = L_{clip} + 1`
    (:func:`bilinear_batch_influence`).  Subtracting the first-order projection
    removes the :math:`O(N^{-1})` part of :math:`\operatorname{Var} L_N`; what is
    left is :math:`O(N^{-2})` per batch (a degenerate U-statistic and the
    second-order terms of the logarithms), so at equal cost the standard error
    is about :math:`\sqrt N` times smaller than that of the plain estimator.
    Batches are independent; the standard error is the sample standard
    deviation over :math:`\sqrt R`.
    """
    cov, n_u = _validated(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    N = as_count(batch_size, "batch_size", 1)
    R = as_count(n_batches, "n_batches", 2)
    rng = as_rng(rng)
    psi = influence(A, cov, n_u)
    L = np.linalg.cholesky(cov)
    x = rng.standard_normal((R * N, cov.shape[0])) @ L.T
    u, v = x[:, :n_u], x[:, n_u:]
    values = np.empty(R)
    step = max(1, 2**22 // (N * N))
    for s in range(0, R, step):
        k = min(R, s + step) - s
        U = u[s * N:(s + k) * N].reshape(k, N, n_u)
        V = v[s * N:(s + k) * N].reshape(k, N, -1)
        # L_N of each batch: f = u^T A v is the dot logit of the embeddings (A^T u, v)
        values[s:s + k] = _stacked_infonce(U @ A, V, 1.0, "dot", 0.5)
    cv = values - np.log(N) - np.asarray(psi(u, v)).reshape(R, N).mean(axis=1) + 1.0
    return MCEstimate(float(np.mean(cv)), float(np.std(cv, ddof=1) / np.sqrt(R)), R,
                      {"batch_size": N, "plain_se": float(np.std(values, ddof=1) / np.sqrt(R))})
