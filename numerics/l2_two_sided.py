r"""The two-sided L2 loss of Proposition G4 in closed form (MATH.md §4.2).

With the L2 logit :math:`f = -|G_uu - G_vv|^2/(2\tau)` and :math:`\lambda = \tfrac12`,
the loss is :math:`L^{L2}_{1/2} = \tfrac12(E_u KL(\mu_{v|u}\|\nu_{v|u}) + E_v KL(\mu_{u|v}\|\nu_{u|v}))`.
Everything here is in the scaled encoders :math:`H = G/\sqrt\tau` (the loss
depends on :math:`G` and :math:`\tau` only through them), so :math:`\tau = 1`.

One canonical pair
------------------
For :math:`u, v` standard normal with correlation :math:`\sigma` and scalar
encoders :math:`a, b`, with :math:`\alpha = a^2`, :math:`\beta = b^2`, the
Gaussian KL of §4 and the model conditionals of §4.2 give (derivation in
:mod:`theory.l2_two_sided`)

.. math:: L(a, b) = \tfrac14\Big[\alpha + \beta - 4\sigma ab
          + a^2b^2\Big(\frac1{1+\alpha} + \frac1{1+\beta}\Big)
          - \log(1+\alpha) - \log(1+\beta)\Big] - \tfrac12\log(1-\sigma^2).

On the diagonal :math:`a = b`, with :math:`w = 1 + a^2` (the model precision),
:math:`L = \tfrac12[2(1-\sigma)w + 1/w - \log w - 1 - 2(1-\sigma) - \log(1-\sigma^2)]`,
minimised at the root :math:`w \ge 1` of :math:`2(1-\sigma)w^2 - w - 1 = 0`:

.. math:: w(\sigma) = \frac{1 + q}{4(1-\sigma)},\quad q = \sqrt{9 - 8\sigma},\qquad
          \varphi(\sigma) = \tfrac12\Big[\frac{1+q}2 + \frac{4(1-\sigma)}{1+q} - 1
          - 2(1-\sigma) - \log\frac{(1+q)(1+\sigma)}4\Big],

written without the cancelling logarithms of :math:`w` and :math:`1-\sigma^2`
(:math:`w(1-\sigma^2) = (1+q)(1+\sigma)/4`), so that it keeps its relative
accuracy as :math:`\sigma \to 1`.  Diagonal encoders in canonical coordinates
decouple the pairs, so :math:`\sum_i\varphi(\sigma_i)` is attained;
that it is the minimum over all encoders is observed, not proved
(:data:`theory.l2_two_sided.G4_QUANTITATIVE`).
"""
from __future__ import annotations

import numpy as np

from ._validation import fail
from .gaussian import _validated, _whitened, sym_power

__all__ = [
    "two_sided_pair_loss",
    "two_sided_pair_precision",
    "two_sided_pair_minimum",
    "two_sided_minimum",
    "two_sided_canonical_encoders",
]


def _as_sigma(sigma):
    s = np.asarray(sigma, dtype=float)
    if not np.all(np.isfinite(s)) or np.any(s < 0) or np.any(s >= 1):
        raise fail("sigma", sigma, "canonical correlations in [0, 1)")
    return s


def two_sided_pair_loss(a, b, sigma):
    r""":math:`L(a, b)` of one canonical pair (module docstring), vectorised over arrays."""
    s = _as_sigma(sigma)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    al, be = a * a, b * b
    return (0.25 * (al + be - 4 * s * a * b + al * be * (1 / (1 + al) + 1 / (1 + be))
                    - np.log1p(al) - np.log1p(be)) - 0.5 * np.log1p(-s * s))


def two_sided_pair_precision(sigma):
    r""":math:`w(\sigma) = (1 + \sqrt{9 - 8\sigma})/(4(1-\sigma))`, the optimal
    :math:`1 + a^2 = 1 + b^2` of one canonical pair (module docstring)."""
    s = _as_sigma(sigma)
    return (1 + np.sqrt(9 - 8 * s)) / (4 * (1 - s))


def two_sided_pair_minimum(sigma):
    r""":math:`\varphi(\sigma)`, the two-sided L2 loss of one canonical pair at its best
    diagonal encoder (module docstring).  :math:`\varphi(0) = 0`,
    :math:`\varphi(\sigma) = \sigma^2/6 + O(\sigma^3)` and
    :math:`\varphi(\sigma) = (1-\sigma)/4 + O((1-\sigma)^2)` as :math:`\sigma \to 1`."""
    s = _as_sigma(sigma)
    q = np.sqrt(9 - 8 * s)
    # The closed form (module docstring) cancels O(1) terms down to sigma^2/6.  With
    # d = 3 - q = 8 sigma / (3 + q) (no cancellation) it is, exactly,
    #   phi = [A + B + C] / 2,  A = sigma - log(1 + sigma),  B = -d/4 - log(1 - d/4),
    #   C = -sigma d / (3 + q),
    # three terms of order sigma^2 (A ~ sigma^2/2, B ~ sigma^2/18, C ~ -2 sigma^2/9): the
    # sum loses at most a factor ~2.3 to cancellation, at every sigma in [0, 1].
    d = 8 * s / (3 + q)
    return 0.5 * (-_log1pmx(s) - _log1pmx(-d / 4) - s * d / (3 + q))


def _log1pmx(x):
    r""":math:`\log(1 + x) - x`, accurate to a few ulps also for small :math:`|x|` (where the
    difference cancels): the series :math:`\sum_{k \ge 2} (-1)^{k+1}x^k/k` for
    :math:`|x| < 0.1` (40 terms: :math:`0.1^{40}` is far below rounding), else directly
    (relative condition :math:`\le 2/|x| \le 20`)."""
    x = np.asarray(x, dtype=np.float64)
    small = np.abs(x) < 0.1
    xs = np.where(small, x, 0.0)
    series = np.zeros_like(xs)
    for k in range(41, 1, -1):  # Horner in x of sum_{k>=2} (-1)^(k+1) x^(k-2) / k, times x^2
        series = series * xs + (-1.0) ** (k + 1) / k
    with np.errstate(invalid="ignore", divide="ignore"):
        direct = np.log1p(np.where(small, 0.0, x)) - np.where(small, 0.0, x)
    return np.where(small, series * xs * xs, direct)


def two_sided_minimum(cov, n_u):
    r""":math:`\sum_i \varphi(\sigma_i)` over the canonical correlations of ``cov``:
    the two-sided L2 loss at :func:`two_sided_canonical_encoders`."""
    cov, n_u = _validated(cov, n_u)
    s = np.linalg.svd(_whitened(cov, n_u), compute_uv=False)
    return float(np.sum(two_sided_pair_minimum(s)))


def two_sided_canonical_encoders(cov, n_u, tau=1.0):
    r"""Encoders :math:`G_u, G_v` (``n_e = min(n_u, n_v)`` rows) attaining
    :func:`two_sided_minimum`: row :math:`i` is
    :math:`\sqrt\tau\,a_i\,(C_{uu}^{-1/2}u_i)^T` and :math:`\sqrt\tau\,a_i\,(C_{vv}^{-1/2}v_i)^T`,
    :math:`a_i = \sqrt{w(\sigma_i) - 1}`, with :math:`K = U\Sigma V^T` (canonical pairs).
    In the canonical coordinates :math:`x_i = u_i^TC_{uu}^{-1/2}u`,
    :math:`y_i = v_i^TC_{vv}^{-1/2}v` the logit is
    :math:`-\sum_i a_i^2(x_i - y_i)^2/2`: the pairs decouple.
    """
    cov, n_u = _validated(cov, n_u)
    U, s, Vt = np.linalg.svd(_whitened(cov, n_u), full_matrices=False)
    a = np.sqrt(np.maximum(two_sided_pair_precision(np.clip(s, 0.0, None)) - 1.0, 0.0))
    C_uu, C_vv = cov[:n_u, :n_u], cov[n_u:, n_u:]
    G_u = np.sqrt(tau) * (a[:, None] * U.T) @ sym_power(C_uu, -0.5)
    G_v = np.sqrt(tau) * (a[:, None] * Vt) @ sym_power(C_vv, -0.5)
    return G_u, G_v
