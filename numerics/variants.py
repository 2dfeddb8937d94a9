r"""Balanced and flexible contrastive losses (MATH.md end of §3, §4.1, §4.2, §4.3).

The :math:`\lambda`-balanced loss with divergence :math:`D` is

.. math:: L_\lambda(g) = \lambda\, E_{\mu_v} D(\mu_{u|v} \| \nu_{u|v})
          + (1 - \lambda)\, E_{\mu_u} D(\mu_{v|u} \| \nu_{v|u}),

with :math:`D(p\|q) = KL(p\|q)` (``divergence="forward"``) or
:math:`KL(q\|p)` (``divergence="reverse"``).  :math:`\lambda = 0` keeps only
the :math:`v|u` term (the row-wise InfoNCE of a logit matrix, whose rows are
indexed by :math:`u`), :math:`\lambda = 1` only the :math:`u|v` term and
:math:`\lambda = \tfrac12` with the forward KL is :math:`L_{clip} + I`
(Theorem 3.2).

Gaussian closed forms are given for linear encoders with the bilinear logit
:math:`f = u^T A v` (§4.1) and the L2 logit
:math:`f = -|G_u u - G_v v|^2 / (2\tau)` (§4.2); the cosine logit has no
closed form and is estimated by Monte Carlo (§4.3,
:func:`numerics.montecarlo.balanced_loss_mc`, :func:`numerics.montecarlo.balanced_kl_mc`).
Minimisers are found by :func:`numerics.optimize.minimize_factors` on the
objectives built here; the finite-sample losses live in :mod:`numerics.infonce`.

Conventions: every ``*_kl_terms`` function returns ``(kl_v, kl_u)`` with
``kl_v`` the :math:`v|u` term :math:`E_{\mu_u} D(\mu_{v|u}\|\nu_{v|u})` and
``kl_u`` the :math:`u|v` term.  Every public function validates its input and
raises :class:`numerics.InvalidInputError`; the ``_`` helpers do no checking.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from ._validation import (
    as_bilinear,
    as_choice,
    as_float_array,
    as_lambda,
    as_latent_dim,
    as_temperature,
    fail,
)
from . import gaussian
from .optimize import finite_difference_objective, minimize_factors
from .gaussian import (
    _blocks,
    _expected_gaussian_kl,
    _logdet,
    _mutual_information,
    sym_power,
    _true_conditionals,
    _whitened,
)

__all__ = [
    "DIVERGENCES",
    "l2_conditionals",
    "bilinear_kl_terms",
    "l2_kl_terms",
    "balanced_loss",
    "bilinear_balanced_loss",
    "bilinear_balanced_loss_grad",
    "l2_balanced_loss",
    "l2_infonce_terms",
    "l2_infonce_terms_grad",
    "l2_one_sided_minimum",
    "l2_one_sided_minimizer",
    "projected_regression_maps",
    "l2_balanced_objective",
    "two_sided_diagonal_value",
    "fit_two_sided_pair",
]

DIVERGENCES = ("forward", "reverse")


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _validated(cov, n_u):
    # The same front door as numerics.gaussian: conditioning is checked too.
    return gaussian._validated(cov, n_u)


#: Largest accepted :math:`\|G C G^T\|_2/\tau` of an L2 encoder: beyond it the
#: Woodbury covariance :math:`C - CG^T(\tau I + GCG^T)^{-1}GC` of the tilt is a
#: difference of terms :math:`10^{12}` times larger than the result, which keeps
#: fewer than about 3 digits (:math:`10^{12}\epsilon \approx 2\times10^{-4}`) and
#: can stop being positive definite.
TILT_LIMIT = 1e12


def _check_tilt(G_u, G_v, tau, cov, n_u, names=("G_u", "G_v")):
    """Reject L2 encoders whose tilt |G|^2/tau is too strong for float64 (TILT_LIMIT)."""
    C_uu, _, C_vv = _blocks(cov, n_u)
    for name, G, C in ((names[0], G_u, C_uu), (names[1], G_v, C_vv)):
        with np.errstate(over="ignore", invalid="ignore"):
            g = float(np.linalg.norm(G @ C @ G.T, 2)) if np.all(np.isfinite(G @ C @ G.T)) else np.inf
        if not g / tau <= TILT_LIMIT:
            if g <= TILT_LIMIT:  # the encoder alone is fine: the temperature is too small
                raise fail("tau", tau, f"a temperature >= |{name} C {name}^T| / {TILT_LIMIT:g} = "
                                       f"{g / TILT_LIMIT:.3g} (float64 Woodbury tilt)")
            raise fail(name, G, f"an encoder with |{name} C {name}^T| / tau <= {TILT_LIMIT:g} "
                                f"(got {g / tau:.3g}; the L2 tilt would lose positive definiteness)")


def _finite_terms(terms, names):
    """Return float terms, raising InvalidInputError naming the culprit if one is not finite."""
    terms = tuple(float(t) for t in terms)
    if not all(np.isfinite(terms)):
        raise fail(names, terms, "finite expected divergences (the inputs overflow float64)")
    return terms


def _as_encoder(G, n, name, n_e=None):
    arr = as_float_array(name, G).astype(np.float64, copy=False)
    if arr.ndim != 2 or arr.shape[1] != n or arr.shape[0] < 1 or (n_e is not None and arr.shape[0] != n_e):
        rows = "n_e" if n_e is None else str(n_e)
        raise fail(name, arr, f"a matrix of shape ({rows}, {n})")
    return arr


def _encoders(G_u, G_v, tau, n_u, n_v, names=("G_u", "G_v")):
    G_u = _as_encoder(G_u, n_u, names[0])
    G_v = _as_encoder(G_v, n_v, names[1], G_u.shape[0])
    return G_u, G_v, as_temperature(tau)


# --------------------------------------------------------------------------
# model conditionals
# --------------------------------------------------------------------------
def l2_conditionals(G_u, G_v, tau, cov, n_u):
    r"""Model conditionals of the L2 tilt :math:`f = -|G_u u - G_v v|^2/(2\tau)` (MATH.md §4.2).

    .. math:: \nu_{v|u} = N(\Sigma_v G_v^T G_u u / \tau,\ \Sigma_v), \quad
              \Sigma_v = (C_{vv}^{-1} + G_v^T G_v/\tau)^{-1},

    and symmetrically :math:`\nu_{u|v} = N(\Sigma_u G_u^T G_v v/\tau, \Sigma_u)`,
    :math:`\Sigma_u = (C_{uu}^{-1} + G_u^T G_u/\tau)^{-1}` (complete the square in
    :math:`\exp f \cdot \mu_v`).  Returns ``(N_v, Sigma_v, N_u, Sigma_u)``.
    """
    cov, n_u = _validated(cov, n_u)
    G_u, G_v, tau = _encoders(G_u, G_v, tau, n_u, cov.shape[0] - n_u)
    _check_tilt(G_u, G_v, tau, cov, n_u)
    return _l2_conditionals(G_u, G_v, tau, cov, n_u)


def _l2_conditionals(G_u, G_v, tau, cov, n_u):
    C_uu, _, C_vv = _blocks(cov, n_u)
    # Sigma = (C^{-1} + G^T G / tau)^{-1} = C - C G^T (tau I + G C G^T)^{-1} G C:
    # the Woodbury form never inverts C and stays symmetric positive definite.
    def tilt(C, G):
        S = tau * np.eye(G.shape[0]) + G @ C @ G.T
        Sig = C - C @ G.T @ np.linalg.solve(S, G @ C)
        return 0.5 * (Sig + Sig.T)

    Sig_v, Sig_u = tilt(C_vv, G_v), tilt(C_uu, G_u)
    N_v = Sig_v @ G_v.T @ G_u / tau
    N_u = Sig_u @ G_u.T @ G_v / tau
    return N_v, Sig_v, N_u, Sig_u


def projected_regression_maps(cov, n_u, n_e):
    r"""True regression maps restricted to the top-:math:`n_e` canonical directions
    (the target of Proposition G2, MATH.md §4.1).

    With :math:`K = U\Sigma V^T`,

    .. math:: P_v M_v = C_{vv}^{1/2} V_{n_e} \Sigma_{n_e} U_{n_e}^T C_{uu}^{-1/2},
              \qquad P_u M_u = C_{uu}^{1/2} U_{n_e} \Sigma_{n_e} V_{n_e}^T C_{vv}^{-1/2},

    where :math:`M_v = C_{vu}C_{uu}^{-1}` and
    :math:`P_v = C_{vv}^{1/2} V_{n_e}V_{n_e}^T C_{vv}^{-1/2}` projects onto the top
    canonical directions of :math:`v` (orthogonally in the :math:`C_{vv}^{-1}` inner
    product).  For :math:`n_e \ge \operatorname{rank} C_{uv}` these are the
    exact maps :math:`M_v`, :math:`M_u`.  Returns ``(PM_v, PM_u)``.
    """
    cov, n_u = _validated(cov, n_u)
    n_e = as_latent_dim(n_e, n_u, cov.shape[0] - n_u)
    C_uu, _, C_vv = _blocks(cov, n_u)
    U, s, Vt = np.linalg.svd(_whitened(cov, n_u), full_matrices=False)
    Bt = (Vt[:n_e].T * s[:n_e]) @ U[:, :n_e].T
    PM_v = sym_power(C_vv, 0.5) @ Bt @ sym_power(C_uu, -0.5)
    PM_u = sym_power(C_uu, 0.5) @ Bt.T @ sym_power(C_vv, -0.5)
    return PM_v, PM_u


# --------------------------------------------------------------------------
# expected divergences
# --------------------------------------------------------------------------
def _kl_terms(model, cov, n_u, divergence):
    N_v, Sig_v, N_u, Sig_u = model
    C_uu, _, C_vv = _blocks(cov, n_u)
    M_v, S_v, M_u, S_u = _true_conditionals(cov, n_u)
    if divergence == "forward":
        return (_expected_gaussian_kl(M_v, S_v, N_v, Sig_v, C_uu),
                _expected_gaussian_kl(M_u, S_u, N_u, Sig_u, C_vv))
    return (_expected_gaussian_kl(N_v, Sig_v, M_v, S_v, C_uu),
            _expected_gaussian_kl(N_u, Sig_u, M_u, S_u, C_vv))


def bilinear_kl_terms(A, cov, n_u, *, divergence="forward"):
    r"""Both expected conditional divergences of the bilinear model (MATH.md §3, §4.1).

    Forward: :math:`(E_u KL(\mu_{v|u}\|\nu_{v|u}),\ E_v KL(\mu_{u|v}\|\nu_{u|v}))`;
    reverse: :math:`(E_u KL(\nu_{v|u}\|\mu_{v|u}),\ E_v KL(\nu_{u|v}\|\mu_{u|v}))`,
    the conditioning variable drawn from the data marginal in both cases.
    Each is the Gaussian KL averaged over the conditioning variable :math:`x`:

    .. math:: \tfrac12[\operatorname{tr}(S_2^{-1}S_1) - n + \operatorname{tr}(D^T S_2^{-1} D\, C_{xx})
              + \log\det S_2 - \log\det S_1], \quad D = M_2 - M_1.
    """
    cov, n_u = _validated(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    divergence = as_choice(divergence, DIVERGENCES, "divergence")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported by _finite_terms
        if divergence == "forward":
            terms = gaussian._expected_kl_terms(A, cov, n_u)
        else:
            terms = _kl_terms(gaussian.bilinear_model_conditionals(A, cov, n_u), cov, n_u, divergence)
    return _finite_terms(terms, "A")


def l2_kl_terms(G_u, G_v, tau, cov, n_u, *, divergence="forward"):
    r"""Both expected conditional divergences of the L2 model (MATH.md §3, §4.2).

    Same conventions as :func:`bilinear_kl_terms`, with the model conditionals
    of :func:`l2_conditionals`.
    """
    cov, n_u = _validated(cov, n_u)
    G_u, G_v, tau = _encoders(G_u, G_v, tau, n_u, cov.shape[0] - n_u)
    divergence = as_choice(divergence, DIVERGENCES, "divergence")
    _check_tilt(G_u, G_v, tau, cov, n_u)
    try:
        terms = _kl_terms(_l2_conditionals(G_u, G_v, tau, cov, n_u), cov, n_u, divergence)
    except np.linalg.LinAlgError:
        raise fail("G_u, G_v, tau", (G_u, G_v, tau),
                   "encoders and temperature whose tilted covariances stay positive definite") from None
    return _finite_terms(terms, "G_u, G_v, tau")


def _as_divergence(name, x):
    arr = np.asarray(x) if not isinstance(x, str) else None
    if arr is None or arr.ndim != 0 or arr.dtype.kind not in "iuf":
        raise fail(name, x, "a real scalar expected divergence")
    value = float(arr)
    if not np.isfinite(value) or value < 0:
        raise fail(name, x, "a finite expected divergence >= 0")
    return value


def balanced_loss(kl_v, kl_u, lam):
    r""":math:`L_\lambda = \lambda\,\text{kl}_u + (1 - \lambda)\,\text{kl}_v` (MATH.md §3)."""
    kl_v, kl_u = _as_divergence("kl_v", kl_v), _as_divergence("kl_u", kl_u)
    lam = as_lambda(lam)
    return lam * kl_u + (1.0 - lam) * kl_v


def bilinear_balanced_loss(A, cov, n_u, lam, *, divergence="forward"):
    r"""The :math:`\lambda`-balanced loss of the bilinear model (MATH.md §3, §4.1)."""
    kv, ku = bilinear_kl_terms(A, cov, n_u, divergence=divergence)
    return balanced_loss(kv, ku, lam)


def bilinear_balanced_loss_grad(A, cov, n_u, lam, *, divergence="forward"):
    r"""Gradient in ``A`` of :func:`bilinear_balanced_loss`.

    Only the mean terms depend on ``A`` (the bilinear covariances are fixed).
    With :math:`D_v = C_{vv}A^T - M_v`, :math:`D_u = C_{uu}A - M_u` and
    :math:`W` the precision inside the KL (model precision for the forward,
    data precision :math:`S^{-1}` for the reverse divergence):

    .. math:: \nabla_A = (1-\lambda)\, C_{uu} D_v^T W_v C_{vv} + \lambda\, C_{uu} W_u D_u C_{vv}.
    """
    cov, n_u = _validated(cov, n_u)
    A = as_bilinear(A, n_u, cov.shape[0] - n_u)
    lam = as_lambda(lam)
    divergence = as_choice(divergence, DIVERGENCES, "divergence")
    C_uu, _, C_vv = _blocks(cov, n_u)
    M_v, S_v, M_u, S_u = _true_conditionals(cov, n_u)
    W_v = np.linalg.inv(C_vv if divergence == "forward" else S_v)
    W_u = np.linalg.inv(C_uu if divergence == "forward" else S_u)
    D_v = C_vv @ A.T - M_v
    D_u = C_uu @ A - M_u
    return (1 - lam) * C_uu @ D_v.T @ W_v @ C_vv + lam * C_uu @ W_u @ D_u @ C_vv


def l2_balanced_loss(G_u, G_v, tau, cov, n_u, lam, *, divergence="forward"):
    r"""The :math:`\lambda`-balanced loss of the L2 model (MATH.md §3, §4.2)."""
    kv, ku = l2_kl_terms(G_u, G_v, tau, cov, n_u, divergence=divergence)
    return balanced_loss(kv, ku, lam)


# --------------------------------------------------------------------------
# InfoNCE form of the L2 loss (an independent route, with gradients)
# --------------------------------------------------------------------------
def _l2_infonce(H_u, H_v, cov, n_u, grad):
    C_uu, C_uv, C_vv = _blocks(cov, n_u)
    n_e = H_u.shape[0]
    Xu = H_u @ C_uu @ H_u.T
    Xv = H_v @ C_vv @ H_v.T
    Xuv = H_u @ C_uv @ H_v.T
    Ef = -0.5 * (np.trace(Xu) + np.trace(Xv) - 2 * np.trace(Xuv))
    Rv = np.linalg.inv(np.eye(n_e) + Xv)
    Ru = np.linalg.inv(np.eye(n_e) + Xu)
    lzv = -0.5 * _logdet(np.eye(n_e) + Xv) - 0.5 * float(np.sum(Rv * Xu))
    lzu = -0.5 * _logdet(np.eye(n_e) + Xu) - 0.5 * float(np.sum(Ru * Xv))
    values = (float(Ef), lzv, lzu)
    if not grad:
        return values
    dEf = (-(H_u @ C_uu - H_v @ C_uv.T), -(H_v @ C_vv - H_u @ C_uv))
    dlzv = (-Rv @ H_u @ C_uu, -Rv @ H_v @ C_vv + Rv @ Xu @ Rv @ H_v @ C_vv)
    dlzu = (-Ru @ H_u @ C_uu + Ru @ Xv @ Ru @ H_u @ C_uu, -Ru @ H_v @ C_vv)
    return values, (dEf, dlzv, dlzu)


def l2_infonce_terms(G_u, G_v, tau, cov, n_u):
    r"""The three population terms of the L2 InfoNCE losses (MATH.md §3, §4.2).

    With :math:`H = G/\sqrt\tau`, :math:`X_u = H_u C_{uu} H_u^T`,
    :math:`X_v = H_v C_{vv} H_v^T`:

    .. math:: E_\mu f = -\tfrac12 \operatorname{tr}(X_u + X_v - 2 H_u C_{uv} H_v^T),

    .. math:: E_{\mu_u}\log Z_v(u) = -\tfrac12\log\det(I + X_v)
              - \tfrac12\operatorname{tr}((I + X_v)^{-1} X_u)

    (a Gaussian integral of :math:`\exp(-|a - w|^2/2)` with
    :math:`w = H_v v \sim N(0, X_v)`), and :math:`E\log Z_u` with
    :math:`u, v` swapped.  Returns ``(E_f, E_log_Z_v, E_log_Z_u)``; then
    :math:`L_\lambda = I - E f + \lambda E\log Z_u + (1-\lambda)E\log Z_v`
    for the forward divergence.  No conditional is used: this is the route
    independent of :func:`l2_kl_terms`.
    """
    cov, n_u = _validated(cov, n_u)
    G_u, G_v, tau = _encoders(G_u, G_v, tau, n_u, cov.shape[0] - n_u)
    _check_tilt(G_u, G_v, tau, cov, n_u)
    return _finite_terms(_l2_infonce(G_u / np.sqrt(tau), G_v / np.sqrt(tau), cov, n_u, grad=False),
                         "G_u, G_v, tau")


def l2_infonce_terms_grad(H_u, H_v, cov, n_u):
    r"""Values and gradients of :func:`l2_infonce_terms` in the scaled encoders
    :math:`H_u = G_u/\sqrt\tau`, :math:`H_v = G_v/\sqrt\tau` (``tau`` is redundant with
    the scale of the encoders, so optimisers work in ``H``).

    Returns ``(values, grads)`` with ``grads[k] = (d/dH_u, d/dH_v)`` of term ``k``.
    """
    cov, n_u = _validated(cov, n_u)
    H_u, H_v, _ = _encoders(H_u, H_v, 1.0, n_u, cov.shape[0] - n_u, names=("H_u", "H_v"))
    _check_tilt(H_u, H_v, 1.0, cov, n_u, names=("H_u", "H_v"))
    return _l2_infonce(H_u, H_v, cov, n_u, grad=True)


# --------------------------------------------------------------------------
# Proposition G3
# --------------------------------------------------------------------------
def l2_one_sided_minimum(cov, n_u, n_e):
    r"""Minimum of the one-sided L2 loss :math:`L_0 = E_{\mu_u} KL(\mu_{v|u}\|\nu_{v|u})`
    over linear encoders of latent dimension :math:`n_e` (Proposition G3, MATH.md §4.2):

    .. math:: \min L_0 = -\tfrac12 \sum_{i > n_e} \log(1 - \sigma_i^2).

    This is the value of the KL itself; the InfoNCE form
    :math:`-E f + E \log Z_v = L_0 - I` has minimum
    :math:`\tfrac12\sum_{i\le n_e}\log(1-\sigma_i^2)`.  Zero when
    :math:`n_e \ge \operatorname{rank} C_{uv}`.
    """
    cov, n_u = _validated(cov, n_u)
    n_e = as_latent_dim(n_e, n_u, cov.shape[0] - n_u)
    s = np.linalg.svd(_whitened(cov, n_u), compute_uv=False)
    return -0.5 * float(np.sum(np.log1p(-s[n_e:] ** 2)))


def l2_one_sided_minimizer(cov, n_u, n_e, tau=1.0):
    r"""A minimiser of the one-sided L2 loss (Proposition G3, MATH.md §4.2).

    In canonical coordinates :math:`\tilde u = U^T C_{uu}^{-1/2} u`,
    :math:`\tilde v = V^T C_{vv}^{-1/2} v` the encoders are diagonal on the top
    :math:`n_e` pairs with

    .. math:: b_i^2 = \frac{\tau\sigma_i^2}{1-\sigma_i^2}, \qquad
              a_i b_i = \frac{\tau\sigma_i}{1-\sigma_i^2},

    so :math:`a_i = \sqrt{\tau/(1-\sigma_i^2)}` (for :math:`\sigma_i = 0` both
    vanish and the pair is left alone).  Returns ``(G_u, G_v)`` of shapes
    ``(n_e, n_u)``, ``(n_e, n_v)``.
    """
    cov, n_u = _validated(cov, n_u)
    n_e = as_latent_dim(n_e, n_u, cov.shape[0] - n_u)
    tau = as_temperature(tau)
    C_uu, _, C_vv = _blocks(cov, n_u)
    U, s, Vt = np.linalg.svd(_whitened(cov, n_u), full_matrices=False)
    s = s[:n_e]
    b = np.sqrt(tau * s**2 / (1 - s**2))
    a = np.where(s > 0, np.sqrt(tau / (1 - s**2)), 0.0)
    G_u = a[:, None] * (U[:, :n_e].T @ sym_power(C_uu, -0.5))
    G_v = b[:, None] * (Vt[:n_e] @ sym_power(C_vv, -0.5))
    return G_u, G_v


# --------------------------------------------------------------------------
# objectives for numerics.optimize.minimize_factors
# --------------------------------------------------------------------------
def l2_balanced_objective(cov, n_u, lam):
    r"""Objective for :func:`numerics.optimize.minimize_factors`: the forward :math:`L_\lambda` of the L2 model
    in the InfoNCE form :math:`I - E f + \lambda E\log Z_u + (1-\lambda)E\log Z_v`
    (:func:`l2_infonce_terms`) and its gradient in the scaled encoders ``H``."""
    cov, n_u = _validated(cov, n_u)
    lam = as_lambda(lam)
    I = _mutual_information(cov, n_u)

    def objective(H_u, H_v):
        (Ef, lzv, lzu), (dEf, dlzv, dlzu) = _l2_infonce(H_u, H_v, cov, n_u, True)
        value = I - Ef + (1 - lam) * lzv + lam * lzu
        grads = tuple(-dEf[k] + (1 - lam) * dlzv[k] + lam * dlzu[k] for k in range(2))
        return value, grads

    return objective


# --------------------------------------------------------------------------
# Proposition G4: the two-sided L2 loss on diagonal encoders
# --------------------------------------------------------------------------
def _one_pair_kl_sum(a, b, s, kl_terms=l2_kl_terms):
    r"""Two-sided KL sum of one canonical pair with scalar encoders ``a``, ``b`` (H scale):
    :math:`\tfrac12(KL_v + KL_u)` from the 2 x 2 model, through :func:`l2_kl_terms`
    (or ``kl_terms`` of the same signature)."""
    cov = np.array([[1.0, s], [s, 1.0]])
    kv, ku = kl_terms([[a]], [[b]], 1.0, cov, 1)
    return 0.5 * (kv + ku)


def two_sided_diagonal_value(sigma):
    r"""Smallest two-sided L2 loss :math:`\tfrac12(E KL_v + E KL_u)` among *diagonal* encoders
    in canonical coordinates with :math:`a_i = b_i`: the sum over pairs of a scalar minimum.

    Any such encoder is feasible for the full problem, so this is an upper bound
    on the two-sided minimum; pairs with :math:`\sigma_i = 0` contribute 0.
    """
    sigma = as_float_array("sigma", sigma, ndim=1).astype(np.float64, copy=False)
    if np.any(sigma < 0) or np.any(sigma >= 1):
        raise fail("sigma", sigma, "canonical correlations in [0, 1)")
    total = 0.0
    for s in sigma:
        if s <= 0:
            continue
        res = minimize_scalar(lambda t: _one_pair_kl_sum(np.exp(t), np.exp(t), s),
                              bounds=(-12.0, 6.0), method="bounded",
                              options={"xatol": 1e-10})
        total += float(res.fun)
    return total


def fit_two_sided_pair(s, rng=None, *, starts: int = 3, kl_terms=l2_kl_terms):
    r"""The two-sided L2 loss of one canonical pair of correlation ``s``,
    :math:`\tfrac12(KL_v + KL_u)` at scalar encoders :math:`(a, b)`, minimised by BFGS over
    the plane (central-difference gradients, ``starts`` random starts of standard
    deviation 2, no restarts): Proposition G4's step 4(a) observes that the minimum
    lies on the diagonal :math:`a = b`, where it is :math:`\varphi(s)`
    (:func:`numerics.l2_two_sided.two_sided_pair_minimum`).

    ``kl_terms`` (default :func:`l2_kl_terms`) gives the two expected divergences of the
    2 x 2 model.  Returns the :class:`numerics.optimize.FactorFit` (``G_u = [[a]]``,
    ``G_v = [[b]]``); no warning when it did not converge (read ``converged``).
    """
    arr = np.asarray(s) if not isinstance(s, str) else None
    if arr is None or arr.ndim != 0 or arr.dtype.kind not in "iuf" or not 0 <= float(arr) < 1:
        raise fail("s", s, "a canonical correlation in [0, 1)")
    s = float(arr)
    pair = finite_difference_objective(lambda Gu, Gv: _one_pair_kl_sum(Gu[0, 0], Gv[0, 0], s, kl_terms))
    return minimize_factors(pair, 1, 1, 1, starts=starts, rng=rng, init_scale=2.0, gtol=1e-10,
                            restarts=0, warn=False)
