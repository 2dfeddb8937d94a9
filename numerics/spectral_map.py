r"""The spectral map of a loss: what its minimiser does to each canonical pair (MATH.md §4.1,
§4.2, §4.4).

In whitened canonical coordinates the effective bilinear map of fitted encoders is

.. math:: M = U^T B V, \qquad K = U \operatorname{diag}(\sigma) V^T,
          \qquad B = C_{uu}^{1/2} A C_{vv}^{1/2},

and CLIP's population minimiser (Proposition G1) is :math:`M = \operatorname{diag}(\sigma)`:
every pair is kept with its own correlation.  A loss variant whose minimiser is
:math:`M = \operatorname{diag}(g(\sigma_1), \dots)` acts on the pairs through a map
:math:`g`; this module measures :math:`g` from paired fits (the variant and CLIP on the same
batches, :func:`numerics.batch_fit.paired_fits`) and the off-diagonal part of :math:`M`.

Under the L2 similarity (§4.2) the invariant is the whitened Gram matrix of
:math:`[G_uC_{uu}^{1/2},\ G_vC_{vv}^{1/2}]`; its cross block plays the part of :math:`B`, and
its canonical diagonal :math:`h` is put on the correlation scale through CLIP's own L2 map,
:func:`l2_correlation` (the inverse of :func:`l2_clip_coefficient`), so that CLIP's map is
the identity under both similarities.

Contents

* models: :func:`scalar_model` (one pair), :func:`pair_model` (several pairs, random
  marginals and canonical directions);
* :func:`canonical_map` of one fit, and :func:`correlation_scale` of its diagonal;
* :func:`limit_intercepts` (the :math:`1/N` extrapolation of paired differences, per
  replicate) and :func:`replicate_interval` (a t interval over replicates, with the
  optimisation floor :func:`optimisation_floor`);
* :func:`mixing_statistics` (off-diagonal mass and principal angles) and
  :func:`off_diagonal_test` (Hotelling's :math:`T^2`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import f as f_dist
from scipy.stats import t as t_dist

from . import gaussian
from ._validation import as_float_array, fail
from .batch_fit import FIT_GTOL
from .encoders import LinearEncoders
from .fit_statistics import effective_parameters
from .models import GaussianModel, random_orthogonal, random_spd

__all__ = ["DEFAULT_GRID", "DEFAULT_PAIR_SIGMAS", "HEAVY_TAIL_CORRELATION", "scalar_model", "pair_model",
           "canonical_frame", "canonical_map", "l2_clip_coefficient", "l2_correlation", "correlation_scale",
           "clip_canonical_limit", "limit_intercepts", "optimisation_floor", "ReplicateInterval",
           "replicate_interval", "control_variate_interval", "bias_exponent", "extrapolation_allowance",
           "extrapolation_bound", "widened", "mixing_statistics", "off_diagonal_test", "kept_pairs",
           "fit_thresholded_affine"]

#: Default grid of canonical correlations: nine midpoints of (0, 0.9).  Above
#: :data:`HEAVY_TAIL_CORRELATION` the finite-sample bias of a fit decays more slowly than
#: 1/N (see :data:`HEAVY_TAIL_CORRELATION`), so the default grid stays below 0.9.
DEFAULT_GRID = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85)
#: Canonical correlations of the multi-pair model (two pairs, both on the default grid, so
#: that each can be compared with its one-pair model; both kept by CLIP, so a collapse shows).
DEFAULT_PAIR_SIGMAS = ((0.75, 0.35),)
#: For a fitted coefficient :math:`b` the 1/N coefficient of the batch loss's bias
#: (Proposition N1) contains :math:`E_u e^{b^2 u^2} < \infty` only when :math:`b^2 < 1/2`;
#: past it the bias decays like :math:`N^{-1/(2b^2)}`, more slowly than 1/N (MATH.md §4.4;
#: :func:`bias_exponent`, :func:`extrapolation_bound`).
HEAVY_TAIL_CORRELATION = 1.0 / math.sqrt(2.0)


# --------------------------------------------------------------------------
# models with prescribed canonical correlations
# --------------------------------------------------------------------------
def _as_sigmas(sigma, name="sigma"):
    s = as_float_array(name, sigma).astype(np.float64).reshape(-1)
    if s.size < 1 or np.any(s <= 0) or np.any(s >= 1):
        raise fail(name, sigma, "canonical correlations in (0, 1)")
    return s


def scalar_model(sigma: float) -> GaussianModel:
    r"""The one-pair model :math:`n_u = n_v = n_e = 1`, unit variances, correlation ``sigma``."""
    s = float(_as_sigmas([sigma])[0])
    return GaussianModel(cov=np.array([[1.0, s], [s, 1.0]]), n_u=1, n_e=1, label=f"sigma={s:g}")


def pair_model(sigmas, rng: np.random.Generator, *, max_condition: float = 4.0) -> GaussianModel:
    r"""A model with :math:`n_u = n_v = n_e = k` and canonical correlations ``sigmas``
    (distinct, in (0, 1)), random marginal covariances (condition number ``max_condition``)
    and random canonical directions (:func:`numerics.gaussian.joint_covariance`): the
    whitening of every statistic is exercised, not assumed."""
    s = np.sort(_as_sigmas(sigmas, "sigmas"))[::-1]
    if s.size < 2 or np.any(np.diff(s) >= 0):
        raise fail("sigmas", sigmas, "at least two distinct canonical correlations in (0, 1)")
    k = s.size
    cov = gaussian.joint_covariance(random_spd(rng, k, max_condition=max_condition),
                                    random_spd(rng, k, max_condition=max_condition), s,
                                    random_orthogonal(rng, k), random_orthogonal(rng, k))
    return GaussianModel(cov=cov, n_u=k, n_e=k, label="sigma=(" + ", ".join(f"{x:g}" for x in s) + ")")


# --------------------------------------------------------------------------
# the canonical map of one fit
# --------------------------------------------------------------------------
def canonical_frame(model: GaussianModel):
    """``(U, sigma, V)``: the canonical directions (columns) and correlations of the model."""
    U, s, Vt = gaussian.canonical_directions(model.cov, model.n_u)
    return U, s, Vt.T


def canonical_map(fam: LinearEncoders, x, multiplier: float, frame=None) -> np.ndarray:
    r""":math:`M = U^TBV` of the fit ``x`` with the loss's logit multiplier folded in
    (:func:`numerics.fit_statistics.effective_parameters`), a ``(k, k)`` array.  Under
    ``"l2"``, :math:`B` is the cross block :math:`X^TY` of the whitened Gram matrix
    (:math:`X = G_uC_{uu}^{1/2}`, :math:`Y = G_vC_{vv}^{1/2}`)."""
    U, _, V = canonical_frame(fam.model) if frame is None else frame
    W = fam.invariant(effective_parameters(fam, x, multiplier))
    if fam.similarity == "l2":
        W = W[: fam.model.n_u, fam.model.n_u:]
    return U.T @ W @ V


def l2_clip_coefficient(sigma):
    r"""CLIP's L2 map (Proposition G4 (quantitative)): the canonical cross coefficient
    :math:`h = a^2 = w(\sigma) - 1`, :math:`w = (1 + \sqrt{9 - 8\sigma})/(4(1 - \sigma))`,
    elementwise (vectorised)."""
    s = np.asarray(sigma, dtype=np.float64)
    return (1.0 + np.sqrt(9.0 - 8.0 * s)) / (4.0 * (1.0 - s)) - 1.0


def l2_correlation(h):
    r"""The inverse of :func:`l2_clip_coefficient`: the correlation whose CLIP L2 minimiser
    has cross coefficient ``h`` (from :math:`2(1-\sigma)w^2 - w - 1 = 0`, :math:`w = 1 + h`):
    :math:`\sigma = 1 - (2 + h)/(2(1 + h)^2)`, odd in ``h`` (a negative coefficient maps to
    a negative correlation)."""
    h = np.asarray(h, dtype=np.float64)
    a = np.abs(h)
    return np.sign(h) * (1.0 - (2.0 + a) / (2.0 * (1.0 + a) ** 2))


def correlation_scale(values, similarity: str):
    """Canonical coefficients put on the correlation scale: the identity under ``"dot"``,
    :func:`l2_correlation` under ``"l2"``."""
    return l2_correlation(values) if similarity == "l2" else np.asarray(values, dtype=np.float64)


def clip_canonical_limit(sigma, similarity: str) -> np.ndarray:
    r"""CLIP's population canonical map :math:`\operatorname{diag}(\sigma)` (``"dot"``,
    Proposition G1) or :math:`\operatorname{diag}(h(\sigma))` (``"l2"``, :func:`l2_clip_coefficient`)."""
    s = np.asarray(sigma, dtype=np.float64)
    return np.diag(l2_clip_coefficient(s) if similarity == "l2" else s)


# --------------------------------------------------------------------------
# extrapolation and intervals over replicates
# --------------------------------------------------------------------------
def limit_intercepts(sizes, differences) -> np.ndarray:
    r"""Per replicate, the :math:`N \to \infty` limit of the paired differences: weighted
    least squares on :math:`(1, 1/N)` (weights :math:`N`, the inverse variance of an
    :math:`N^{-1/2}` fluctuation), as :func:`proofs_checks.verdict.extrapolate` does.
    ``differences`` has shape ``(R, k, d)``; returns ``(R, d)``."""
    n = np.asarray(sizes, dtype=np.float64)
    D = np.asarray(differences, dtype=np.float64)
    R, k, d = D.shape
    if k < 2:
        raise fail("sizes", list(sizes), "at least two batch sizes for the 1/N extrapolation")
    X = np.column_stack([np.ones(k), 1.0 / n])
    w = np.sqrt(n)
    Y = (D * w[None, :, None]).transpose(1, 0, 2).reshape(k, R * d)
    return np.linalg.lstsq(X * w[:, None], Y, rcond=None)[0][0].reshape(R, d)


def optimisation_floor(value) -> float:
    r"""A floor on a half-width for the fits' optimisation error.  A fit stops at
    :math:`\|\nabla\|_\infty \le` :data:`numerics.batch_fit.FIT_GTOL`; with balanced factors
    :math:`a_u = a_v = \sqrt b` the curvature along :math:`b` is :math:`2b`, so each fit's
    :math:`b` is off by at most about :math:`2\,\mathrm{gtol}/\sqrt{b}`; a paired difference
    doubles it and the extrapolation's intercept weights amplify it (their absolute values sum to
    1.77 for sizes 128, 256, 512 and to 3 for two sizes a factor 2 apart):
    :math:`12\,\mathrm{gtol}/\sqrt{\max(|b|, 0.01)}` bounds it (the 0.01 keeps a fit at
    :math:`b \approx 0`, where the curvature vanishes, finite)."""
    return 12.0 * FIT_GTOL / math.sqrt(max(abs(float(value)), 0.01))


@dataclass(frozen=True)
class ReplicateInterval:
    """A mean over replicates with its t interval: ``estimate``, ``lower``, ``upper``,
    ``se`` (standard error, optimisation floor included), ``dof`` (replicates - 1)."""

    estimate: float
    lower: float
    upper: float
    se: float
    dof: int


def replicate_interval(values, level: float = 0.95, floor: float = 0.0) -> ReplicateInterval:
    r"""Student's t interval for the mean of independent replicate values, widened by
    ``floor`` (added to the half-width; and :math:`(\text{floor}/2)^2` to the variance in ``se``,
    so that tests built on ``se`` see it too)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    R = v.size
    if R < 2:
        raise fail("values", values, "at least two replicate values")
    m = float(v.mean())
    se0 = float(v.std(ddof=1)) / math.sqrt(R)
    half = float(t_dist.ppf(0.5 + level / 2, R - 1)) * se0 + floor
    return ReplicateInterval(m, m - half, m + half, math.sqrt(se0**2 + (floor / 2) ** 2), R - 1)


def control_variate_interval(variant, control, limit: float, level: float = 0.95,
                             floor: float = 0.0) -> ReplicateInterval:
    r"""The variant's population coefficient from replicate pairs ``(variant, control)`` of
    extrapolated fits on the same batches, the control's population value ``limit`` known.

    The regression of the variant's values :math:`y_r` on the control's :math:`x_r`, read at
    :math:`x = ` ``limit``: :math:`\hat g = \bar y + \hat\beta(\text{limit} - \bar x)`, the
    paired-difference estimate :math:`\text{limit} + \overline{y - x}` when
    :math:`\hat\beta = 1`, and far less noisy when the variant does not follow the control one
    for one (a thresholded pair: :math:`\beta = 0`; a map of slope :math:`g'(\sigma)`:
    :math:`\beta \approx g'`).  For jointly normal pairs, conditionally on the :math:`x_r` the
    prediction error is normal with standard error
    :math:`s\sqrt{1/R + (\text{limit} - \bar x)^2/S_{xx}}` on :math:`R - 2` degrees of
    freedom, so the t interval is exact whatever the :math:`x_r`.  ``floor`` is added as in
    :func:`replicate_interval`.  With no spread in the control (:math:`S_{xx} = 0`) the paired
    difference is used (``dof`` = R - 1)."""
    y = np.asarray(variant, dtype=np.float64).reshape(-1)
    x = np.asarray(control, dtype=np.float64).reshape(-1)
    R = y.size
    if R < 3 or x.size != R:
        raise fail("variant", y.shape, "at least three replicate values, as many as the control's")
    sxx = float(np.sum((x - x.mean()) ** 2))
    if sxx <= 1e-300:
        return replicate_interval(y - x + limit, level, floor)
    beta = float(np.sum((x - x.mean()) * (y - y.mean()))) / sxx
    pred = float(y.mean() + beta * (limit - x.mean()))
    resid = y - y.mean() - beta * (x - x.mean())
    s2 = float(np.sum(resid**2)) / (R - 2)
    se0 = math.sqrt(s2 * (1.0 / R + (limit - x.mean()) ** 2 / sxx))
    half = float(t_dist.ppf(0.5 + level / 2, R - 2)) * se0 + floor
    return ReplicateInterval(pred, pred - half, pred + half, math.sqrt(se0**2 + (floor / 2) ** 2), R - 2)


def bias_exponent(b: float) -> float:
    r"""The slowest rate :math:`N^{-q}` at which what the 1/N extrapolation leaves of a fit's bias
    decays, for a fitted coefficient ``b`` (MATH.md §4.4, a tail estimate): the rows with
    :math:`e^{b^2u^2} \gtrsim N` contribute :math:`N^{-1/(2b^2)}`, and the regular expansion
    :math:`N^{-2}`, so :math:`q = \min(2, 1/(2b^2))`; below 1 (:math:`b > 1/\sqrt2`) it is the
    rate of the bias itself."""
    b2 = float(b) ** 2
    return 2.0 if b2 <= 0.25 else min(2.0, 1.0 / (2.0 * b2))


def extrapolation_allowance(sizes, p_min: float = 0.5) -> float:
    r"""The factor :math:`A` such that, for a residual :math:`cN^{-p}` with any :math:`p \ge` ``p_min``,
    the 1/N extrapolation from every size (:func:`limit_intercepts`) misses its limit by at most
    :math:`A` times the difference between the extrapolations from ``sizes[:-1]`` and from
    ``sizes[1:]``.  Every residual of a power law is :math:`c` times a function of :math:`p`, so
    :math:`A = \max_{p_{min} \le p \le 4} |r(p)| / |r_{early}(p) - r_{late}(p)|`, taken on a grid
    (the ratio decreases with :math:`p`; for sizes 128, 256, 512 it is 2.80 at :math:`p = 1/2`,
    1.37 at :math:`p = 1` and 0.72 at :math:`p = 2`).  ``p_min`` is :func:`bias_exponent` of the
    coefficient; 1/2 covers every :math:`b < 1`."""
    n = np.asarray(sizes, dtype=np.float64)
    if n.size < 3:
        raise fail("sizes", list(sizes), "at least three sizes to bound the extrapolation's residual")
    best = 0.0
    for p in np.linspace(min(p_min, 4.0), 4.0, 351):
        if abs(p - 1.0) < 1e-6:
            continue  # a 1/N term leaves no residual at all: 0/0
        y = n ** -p
        r = limit_intercepts(n, y[None, :, None])[0, 0]
        d = limit_intercepts(n[:-1], y[None, :-1, None])[0, 0] - limit_intercepts(n[1:], y[None, 1:, None])[0, 0]
        best = max(best, abs(r / d))
    return float(best)


def extrapolation_bound(variant, control, variant_early, control_early, variant_late, control_late, sizes,
                        level: float = 0.95, p_min: float = 0.5) -> float:
    r"""A bound on the residual bias of the 1/N extrapolation in :func:`control_variate_interval`'s
    estimate (MATH.md §4.4): :func:`extrapolation_allowance` of ``sizes`` (and ``p_min``) times an upper
    confidence bound (at ``level``, t on R - 1 degrees of freedom) of the difference between the
    extrapolations from ``sizes[:-1]`` (``*_early``) and from ``sizes[1:]`` (``*_late``), taken per
    replicate with the regression's slope on the control held, so that a difference small by
    chance does not make the bound small.  ``variant``, ``control``: the extrapolations from every
    size (for the slope)."""
    y, x = np.asarray(variant, float), np.asarray(control, float)
    dy = np.asarray(variant_early, float) - np.asarray(variant_late, float)
    dx = np.asarray(control_early, float) - np.asarray(control_late, float)
    beta = float(np.cov(x, y)[0, 1] / np.var(x, ddof=1)) if np.var(x) > 0 else 1.0
    change = dy - beta * dx
    R = change.size
    ucb = abs(float(change.mean())) + float(t_dist.ppf(0.5 + level / 2, R - 1)) * float(change.std(ddof=1)) \
        / math.sqrt(R)
    return extrapolation_allowance(sizes, p_min) * ucb


def widened(iv: ReplicateInterval, extra: float) -> ReplicateInterval:
    """``iv`` with ``extra`` added on both sides (and :math:`(\text{extra}/2)^2` to the variance in ``se``)."""
    return ReplicateInterval(iv.estimate, iv.lower - extra, iv.upper + extra, math.sqrt(iv.se**2 + (extra / 2) ** 2),
                             iv.dof)


# --------------------------------------------------------------------------
# off-diagonal structure
# --------------------------------------------------------------------------
def mixing_statistics(M, floor: float = 0.0) -> tuple[float, float]:
    r"""``(mass, angle)`` of a canonical map ``M``: the off-diagonal mass
    :math:`\|M - \operatorname{diag}M\|_F / \max(\|\operatorname{diag}M\|, \text{floor})` (``inf``
    when both vanish and the off-diagonal does not; a ``floor`` keeps a collapsed map, diagonal
    near 0, from "mixing" by noise), and the largest angle (radians) between a singular vector of
    :math:`M` (left or right, those of its non-zero singular values) and its nearest
    canonical axis."""
    M = np.asarray(M, dtype=np.float64)
    d = np.diag(np.diag(M))
    dn = float(np.linalg.norm(d))
    off = float(np.linalg.norm(M - d))
    dn = max(dn, floor)
    mass = off / dn if dn > 0 else (0.0 if off == 0 else math.inf)
    P, s, Qt = np.linalg.svd(M)
    keep = s > 1e-12 * max(1.0, float(s.max(initial=0.0)))
    angle = 0.0
    for vecs in (P[:, keep].T, Qt[keep]):
        for v in vecs:
            angle = max(angle, float(np.arccos(min(1.0, float(np.max(np.abs(v)))))))
    return mass, angle


def off_diagonal_test(offdiag) -> float:
    r"""p-value of Hotelling's :math:`T^2` test that the off-diagonal entries of the canonical
    map have mean 0, from per-replicate values ``offdiag`` of shape ``(R, p)``:
    :math:`T^2 = R\bar x^TS^{-1}\bar x`, :math:`\frac{R-p}{p(R-1)}T^2 \sim F(p, R-p)`.
    Returns 1.0 when the entries are identically zero (nothing mixes)."""
    X = np.asarray(offdiag, dtype=np.float64)
    R, p = X.shape
    m = X.mean(axis=0)
    if not np.any(m):
        return 1.0
    if R <= p:
        raise fail("offdiag", X.shape, f"more replicates than off-diagonal entries ({p})")
    S = np.cov(X, rowvar=False, ddof=1).reshape(p, p)
    S = S + np.eye(p) * (1e-12 * max(float(np.trace(S)), 1e-300))
    T2 = R * float(m @ np.linalg.solve(S, m))
    return float(f_dist.sf((R - p) / (p * (R - 1)) * T2, p, R - p))


def kept_pairs(lower, upper, resolution: float) -> tuple[int, int]:
    """``(kept, undecided)`` pairs from the intervals of their canonical coefficients: kept
    when the interval lies above ``resolution``, dropped when it lies within
    ``[-resolution, resolution]``, undecided otherwise."""
    lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    kept = int(np.sum(lo > resolution))
    dropped = int(np.sum((lo >= -resolution) & (hi <= resolution)))
    return kept, int(lo.size - kept - dropped)


def fit_thresholded_affine(sigma, g, se):
    r"""Weighted least squares of :math:`g = \max(c\sigma + d, 0)` (weights :math:`1/se`),
    from the weighted straight line, by :func:`scipy.optimize.least_squares`:
    ``(c, d, cov)`` with the Gauss-Newton covariance :math:`(J^TJ)^{-1}` (infinite when
    :math:`J` is singular, for example when every point is thresholded)."""
    from scipy.optimize import least_squares

    sigma, g, w = np.asarray(sigma, float), np.asarray(g, float), 1.0 / np.asarray(se, float)
    c0, d0 = np.polyfit(sigma, g, 1, w=w)
    res = least_squares(lambda p: (np.maximum(p[0] * sigma + p[1], 0.0) - g) * w, [c0, d0])
    J = res.jac
    try:
        cov = np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        cov = np.full((2, 2), np.inf)
    return float(res.x[0]), float(res.x[1]), cov
