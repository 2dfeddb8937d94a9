r"""The spectral fingerprint of a loss: which statistics of the data its minimiser
recovers instead of CLIP's (MATH.md §4.1, §4.2, §4.4).

In whitened canonical coordinates CLIP's population minimiser is
:math:`M = U^TBV = \operatorname{diag}(\sigma_1, \dots, \sigma_{n_e})` (Proposition G1):
every canonical pair is kept with its own correlation.  :func:`fingerprint` measures
what a variant does instead:

* **the map** :math:`g(\sigma)` on a grid of correlations, each with an interval, read
  off one-pair models;
* **separability, mixing, rank** on models with two pairs: whether a pair's
  coefficient depends on the other pair (interaction), whether :math:`M` has an
  off-diagonal part (and the largest angle of its singular vectors to the canonical
  axes), and how many pairs are kept;
* **drift**: whether the fits still move with :math:`N` beyond the :math:`1/N`
  extrapolation (the verifier's drift test of :mod:`proofs_checks.verdict`);
* **a diagnosis**: one of :data:`KINDS`, with the numbers behind it.

How it is measured.  On every model, ``replicates`` independent samples are drawn and,
on nested batches of ``sizes``, CLIP (the control) and the variant are fitted on the
same batches (:func:`numerics.batch_fit.paired_fits`, warm-started along the sizes).
Each fit's canonical map is extrapolated to :math:`N \to \infty` in :math:`1/N` per
replicate; the variant's coefficient is then estimated against the control's, whose
population value is known exactly (:func:`numerics.spectral_map.control_variate_interval`):
the paired difference, regression-adjusted, plus the known limit.  Its interval is widened by
a bound on the residual of the extrapolation (:func:`numerics.spectral_map.extrapolation_bound`:
past a coefficient of :math:`1/\sqrt2` the finite-sample bias decays more slowly than
:math:`1/N`, MATH.md §4.4).  The numerics are
in :mod:`numerics.spectral_map`; this module runs the fits, diagnoses, and builds the
:class:`proofs_checks.fingerprint_result.Fingerprint`.

Cosine similarity has no canonical-coordinate form (the logit is not a quadratic form
of :math:`(u, v)`), so the fingerprint refuses it, naming ``similarity``
(docs/fingerprint.md says why, and what to run instead).
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
from scipy.stats import chi2, norm
from scipy.stats import t as t_dist

from numerics._validation import as_float_array, fail
from numerics.batch_fit import check_model_gradient, paired_fits
from numerics.encoders import LinearEncoders, nested_sample, population_minimizer
from numerics.spectral_map import (DEFAULT_GRID, DEFAULT_PAIR_SIGMAS, HEAVY_TAIL_CORRELATION, bias_exponent,
                                   fit_thresholded_affine,
                                   canonical_frame, canonical_map, control_variate_interval, correlation_scale,
                                   extrapolation_bound, limit_intercepts, mixing_statistics, off_diagonal_test,
                                   optimisation_floor, pair_model, scalar_model, widened)
from numerics.user_loss import ClipControl, UserLoss

from .fingerprint_result import KINDS, Fingerprint, PairModelResult
from .verdict import DEFAULT_RELATIVE_MARGIN, DRIFT_RATIO, estimate_delta, extrapolate
from .verify_args import validate

__all__ = ["KINDS", "Fingerprint", "fingerprint", "diagnose", "DEFAULT_FINGERPRINT_SIZES",
           "DEFAULT_FINGERPRINT_REPLICATES", "TEST_LEVEL", "ACCEPT_LEVEL", "RESOLUTION", "RANK_RESOLUTION",
           "MIXING_RESOLUTION"]

#: Nested batch sizes of every one-pair model.  Measured on the alignment-weighted family
#: (48 replicates, paired differences): a linear 1/N extrapolation left a bias below 0.001
#: for sigma <= 0.7 from 64-256 as from 256-1024, and -0.005 at sigma = 0.9 from every
#: range, with or without a 1/N^2 term (the heavy tail of
#: numerics.spectral_map.HEAVY_TAIL_CORRELATION; numerics.spectral_map.extrapolation_bound bounds it).  With
#: the tighter regression intervals, 64 left visible 1/N^2 residuals at sigma ~ 0.5, so the
#: sizes start at 128; stopping at 512 keeps a NumPy loss without gradient near 30 s.
DEFAULT_FINGERPRINT_SIZES = (128, 256, 512)
#: Independent samples per model.
DEFAULT_FINGERPRINT_REPLICATES = 8
#: Level of the goodness-of-fit tests behind a kind (each rejects a true form with
#: probability 1 %).
TEST_LEVEL = 0.99
#: A form is accepted only when its goodness-of-fit p-value is at least this (and rejected
#: below 1 - TEST_LEVEL): between the two the data neither show nor exclude it, and the
#: kind is "undetermined" unless another form is accepted.
ACCEPT_LEVEL = 0.05
#: A "clip" or "proportional" diagnosis needs the factor c known to within this
#: half-width (the verifier's default margin, 5 % of the target): coarser intervals
#: cannot tell CLIP from a 5 % change, and the kind is "undetermined".
RESOLUTION = DEFAULT_RELATIVE_MARGIN
#: A pair counts as kept when its coefficient's interval lies above this, dropped when it
#: lies within +- this (a correlation of 0.05 carries 0.1 % of a nat of information).
RANK_RESOLUTION = 0.05
#: Off-diagonal mass (relative to the diagonal) above which a significant mixing counts.
MIXING_RESOLUTION = 0.05


def _as_grid(sigmas, name):
    s = as_float_array(name, sigmas).astype(np.float64).reshape(-1)
    if s.size < 3 or np.any(s <= 0) or np.any(s >= 1) or np.any(np.diff(s) <= 0):
        raise fail(name, sigmas, "at least three increasing canonical correlations in (0, 1)")
    return s


def _as_pairs(pair_sigmas):
    if pair_sigmas is None:
        return []
    out = []
    try:
        for p in pair_sigmas:
            s = np.sort(np.asarray(p, dtype=np.float64).reshape(-1))[::-1]
            if s.size < 2 or np.any(s <= 0) or np.any(s >= 1) or np.any(np.diff(s) >= 0):
                raise ValueError
            out.append(s)
    except (TypeError, ValueError):
        raise fail("pair_sigmas", pair_sigmas, "a list of tuples of at least two distinct correlations "
                                               "in (0, 1), or () for no multi-pair models") from None
    return out


def _as_level(level):
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.5 <= float(level) < 1:
        raise fail("level", level, "a confidence level in [0.5, 1)")
    return float(level)


# --------------------------------------------------------------------------
# fitting one model
# --------------------------------------------------------------------------
def _fit_model(model, similarity, sizes, replicates, seed, key, user, control, probe):
    """Per replicate: the extrapolated canonical maps of the variant and of the control
    (``(R, k*k)`` each, diagonals on the correlation scale), the paired differences of the
    diagonal at every size ``(R, len(sizes), k)``, the variant's diagonal ``(R, len(sizes), k)``
    and how many replicates were set aside (a variant fit with no stationary point)."""
    fam = LinearEncoders(model, similarity)
    frame = canonical_frame(model)
    x_star = population_minimizer(fam, np.random.default_rng([seed, *key, 3]))
    G_u, G_v = fam.split(x_star)
    # Unbalanced factors (same B): gradient descent conserves G_u G_u^T - G_v G_v^T, and from
    # balanced factors a batch whose coefficient has the other sign can only be reached
    # through the saddle at 0, where a fit stops (seen at sigma = 0.15, N = 64).
    x_start = fam.pack(math.sqrt(2.0) * G_u, G_v / math.sqrt(2.0), control.theta0)
    k = model.n_e
    diag = np.eye(k, dtype=bool).ravel()
    MU, MC, D, GU, aside = [], [], [], [], 0
    for r in range(replicates):
        U, V = nested_sample(model, (seed, *key, r), sizes[-1])
        recs, _ = paired_fits(fam, U, V, sizes, x_start, user, control,
                              rng=np.random.default_rng([seed, *key, r, 7]), probe=probe and r == 0)
        if not all(rec.converged for rec in recs):
            aside += 1
            continue
        mu, mc = [], []
        for rec in recs:
            for x, loss, out in ((rec.x_u, user, mu), (rec.x_c, control, mc)):
                M = canonical_map(fam, x, loss.multiplier(fam.unpack(x).theta), frame).ravel()
                M[diag] = correlation_scale(M[diag], similarity)
                out.append(M)
        mu, mc = np.array(mu), np.array(mc)
        MU.append(mu)
        MC.append(mc)
        D.append(mu[:, diag] - mc[:, diag])
        GU.append(mu[:, diag])
    if len(MU) < max(3, (replicates + 1) // 2):
        return None, aside
    MU, MC = np.array(MU), np.array(MC)
    out = dict(IU=limit_intercepts(sizes, MU), IC=limit_intercepts(sizes, MC), D=np.array(D), GU=np.array(GU),
               diag=diag, sizes=list(sizes), early=None)
    if len(sizes) > 2:  # the extrapolations without the largest and without the smallest size
        out.update(early=(limit_intercepts(sizes[:-1], MU[:, :-1]), limit_intercepts(sizes[:-1], MC[:, :-1])),
                   late=(limit_intercepts(sizes[1:], MU[:, 1:]), limit_intercepts(sizes[1:], MC[:, 1:])))
    return out, aside


def _coefficient(data, i, limit, level):
    """The interval of diagonal coefficient ``i`` (correlation scale) of a fitted model."""
    j = np.flatnonzero(data["diag"])[i]
    iu, ic = data["IU"][:, j], data["IC"][:, j]
    floor = optimisation_floor(np.mean(iu))
    iv = control_variate_interval(iu, ic, limit, level, floor=floor)
    if data["early"] is None:
        return iv
    (eu, ec), (lu, lc) = data["early"], data["late"]
    # the slowest rate the residual may have, from the largest coefficient of either fit
    p_min = bias_exponent(max(limit, abs(iv.lower), abs(iv.upper)))
    return widened(iv, extrapolation_bound(iu, ic, eu[:, j], ec[:, j], lu[:, j], lc[:, j], data["sizes"], level,
                                           p_min))


def _drifting(sizes, data, i, sigma):
    """The verifier's drift test (:func:`proofs_checks.verdict.decide`) on one coefficient, with
    the size its 1/N term is compared to floored at :data:`RANK_RESOLUTION`: a coefficient near
    0 (a thresholded pair) moves by a large fraction of itself without drifting anywhere."""
    D = data["D"][:, :, i:i + 1]
    est = estimate_delta(sizes, D)
    _, beta = extrapolate(sizes, D)
    size = max(float(np.median(np.abs(data["GU"][:, -1, i]))), RANK_RESOLUTION)
    ratio = float(np.median(np.abs(beta[:, 0]))) / sizes[-1] / size
    margin = DEFAULT_RELATIVE_MARGIN * max(sigma, 0.2)
    drifting = bool((est.drift_significant and est.drift > margin) or ratio > DRIFT_RATIO)
    # a coefficient clearly away from 0 at the smallest batch that moves significantly: if its
    # limit is 0, it shrinks with N rather than sitting at 0 (a sigmoid loss with a fixed bias)
    shrinking = bool(est.drift_significant and float(np.median(np.abs(data["GU"][:, 0, i]))) > RANK_RESOLUTION)
    return drifting, shrinking


# --------------------------------------------------------------------------
# the public function
# --------------------------------------------------------------------------
def fingerprint(loss: Callable, *, inputs: str = "logits", params: dict | None = None, learn=None,
                similarity: str = "dot", backend: str = "auto", seed: int = 0, grad: Callable | None = None,
                sigmas=None, pair_sigmas=DEFAULT_PAIR_SIGMAS, sizes=None,
                replicates: int = DEFAULT_FINGERPRINT_REPLICATES, level: float = 0.95,
                closed_form: Callable | None = None, name: str | None = None,
                progress: Callable[[str], None] | None = None) -> Fingerprint:
    r"""The spectral fingerprint of ``loss``: the map :math:`g(\sigma)` its minimiser applies
    to each canonical pair, with separability, mixing, rank, drift and a diagnosis
    (module docstring; docs/fingerprint.md).

    Parameters
    ----------
    loss, inputs, params, learn, backend, grad, seed, name
        As for :func:`proofs_checks.verify_variant`: a NumPy, PyTorch or JAX loss of the
        logits or of the embeddings, with its own scalars (some learned).
    similarity : {"dot", "l2"}
        ``"cosine"`` is refused (no canonical-coordinate form; docs/fingerprint.md).
    sigmas : sequence of float, optional
        The grid of canonical correlations (increasing, in (0, 1), at least three);
        default :data:`numerics.spectral_map.DEFAULT_GRID`.
    pair_sigmas : sequence of tuples
        Correlations of the multi-pair models (``()``: none; separability, mixing and rank
        are then not measured).  A pair whose correlation is not on the grid gets its own
        one-pair model for the separability comparison.
    sizes : sequence of int, optional
        Nested batch sizes (default :data:`DEFAULT_FINGERPRINT_SIZES`); the multi-pair
        models use all but the largest (when there are more than two).
    replicates : int
        Independent samples per model (at least 4).
    level : float
        Confidence level of every interval (default 0.95).
    closed_form : callable, optional
        ``closed_form(sigma) -> g``, a map to compare with (drawn in the figure, and
        its largest standardised deviation reported).
    progress : callable, optional
        Called with one line of text per model.

    Returns
    -------
    Fingerprint

    Raises
    ------
    numerics.InvalidInputError
        Any invalid argument (named, with its value and what was expected), including
        ``similarity="cosine"`` and a loss blind to the encoders' norms.
    """
    a = validate(loss=loss, inputs=inputs, similarity=similarity, backend=backend, seed=seed, sizes=sizes,
                 replicates=replicates, name=name, progress=progress, grad=grad)
    inputs, similarity, seed = a["inputs"], a["similarity"], a["seed"]
    if similarity == "cosine":
        raise fail("similarity", "cosine", "'dot' or 'l2': the cosine logit m cos(G_u u, G_v v) is not a "
                                           "quadratic form of (u, v), so its minimiser has no canonical "
                                           "map (use verify_variant(..., similarity='cosine') for its "
                                           "effective similarity on probe pairs)")
    if a["replicates"] < 4:
        raise fail("replicates", replicates, "an integer >= 4 (the intervals need 2 degrees of freedom "
                                             "after the regression on the control)")
    sizes = list(DEFAULT_FINGERPRINT_SIZES) if a["sizes"] is None else a["sizes"]
    grid = _as_grid(DEFAULT_GRID if sigmas is None else sigmas, "sigmas")
    pairs = _as_pairs(pair_sigmas)
    level = _as_level(level)
    if closed_form is not None and not callable(closed_form):
        raise fail("closed_form", closed_form, "a callable sigma -> g, or None")
    say = progress if progress is not None else (lambda line: None)
    label = name or getattr(loss, "__name__", type(loss).__name__)
    user = UserLoss(loss, inputs=inputs, params=params, learn=learn, backend=a["backend"], grad=grad, name=label)
    user.detect_roles(similarity, np.random.default_rng([seed, 31337]))
    blind = user.scale_invariances(similarity, np.random.default_rng([seed, 27182]))
    if blind:
        raise fail("loss", label, f"a loss that sees the norm of the encoder outputs: this one does not "
                                  f"({', '.join(blind)}), so under similarity={similarity!r} its minimisers "
                                  "run along rays and have no canonical map; use verify_variant with "
                                  "similarity='cosine' or the claim 'same-subspace-as-clip'")
    check = check_model_gradient(user, scalar_model(0.5), similarity, 128, seed, None)
    if check is not None and not check.passed:
        raise fail("loss", label, "a loss whose backend gradient is the gradient of its value: this one's is "
                                  f"not ({check.describe()}; a stop-gradient?), and the fingerprint fits the "
                                  "value only; verify_variant(..., objective='training-field') verifies what "
                                  "training reaches")
    control = ClipControl(1.0)
    R = a["replicates"]
    t0 = time.perf_counter()
    notes = []
    roles = ", ".join(f"{k}: {v}" for k, v in user.roles.items())
    if any(r in ("scale", "log_scale", "temperature") for r in user.roles.values()):
        notes.append(f"the loss's logit scale ({roles}) is folded into B: g is the map of the effective "
                     "similarity (a learned scale trades against the encoders' norm, so the map is "
                     "identified exactly, not only up to a common factor)")
    extra = sorted({float(s) for p in pairs for s in p if not np.any(np.isclose(grid, s, atol=1e-12))})
    points = list(grid) + extra
    est, drift, set_aside = [], [], 0
    for k, s in enumerate(points):
        data, aside = _fit_model(scalar_model(s), similarity, sizes, R, seed, (1, k), user, control, k == 0)
        set_aside += aside
        if data is None:
            raise fail("loss", label, f"a loss whose fits reach a stationary point: at sigma = {s:g}, "
                                      f"{aside} of {R} replicates found none (is the loss unbounded below?)")
        iv = _coefficient(data, 0, s, level)
        dr, amount = _drifting(sizes, data, 0, s)
        est.append(iv)
        drift.append((dr, amount))
        say(f"sigma = {s:.3g}: g = {iv.estimate:.4f} [{iv.lower:.4f}, {iv.upper:.4f}]"
            f"{' (drifting)' if dr else ''}, {time.perf_counter() - t0:.1f} s")
    scalar = {float(s): iv for s, iv in zip(points, est)}
    pair_results = []
    # Multi-pair fits have 4x the parameters (8 for two pairs, each differenced without a
    # gradient) and converge in more steps: they stop one size short of the one-pair models.
    pair_sizes = sizes[:-1] if len(sizes) > 2 else sizes
    for m, sig in enumerate(pairs):
        model = pair_model(sig, np.random.default_rng([seed, 2, m, 11]))
        data, aside = _fit_model(model, similarity, pair_sizes, R, seed, (2, m), user, control, False)
        set_aside += aside
        if data is None:
            notes.append(f"multi-pair model {model.label}: too many fits found no stationary point; left out")
            continue
        pair_results.append(_pair_result(model, sig, data, scalar, level, similarity))
        p = pair_results[-1]
        say(f"{model.label}: diagonal {np.round(p.g, 4).tolist()}, mixing {p.mixing:.3g} (p = {p.mixing_p:.2g}), "
            f"kept {p.kept}, {time.perf_counter() - t0:.1f} s")
    if set_aside:
        notes.append(f"{set_aside} replicate(s) set aside: the variant's fit found no stationary point on "
                     "one of their batches")
    n = grid.size
    g = np.array([iv.estimate for iv in est[:n]])
    ci = np.array([[iv.lower, iv.upper] for iv in est[:n]])
    se = np.array([iv.se for iv in est[:n]])
    dof = np.array([iv.dof for iv in est[:n]])
    drifting = [bool(d[0]) for d in drift[:n]]
    shrinking = [bool(d[1]) for d in drift[:n]]
    heavy = grid[np.maximum(np.abs(g), grid) > HEAVY_TAIL_CORRELATION]
    if heavy.size:
        notes.append("at sigma >= %.3g a fitted coefficient exceeds 1/sqrt(2): the finite-sample bias there "
                     "decays more slowly than 1/N (MATH.md §4.4); those intervals carry a bound on the "
                     "extrapolation's residual and are wider" % heavy.min())
    diag = diagnose(grid, g, se, dof, ci, drifting, pair_results, level, shrinking)
    if user.unidentified_scale:
        # The scalar's parametrisation leaves the logits' unit unidentified (numerics.user_loss):
        # g is known up to a common factor, under which g = c sigma is CLIP's map.
        notes.append(f"{', '.join(user.unidentified_scale)} rescales the logits in a parametrisation known "
                     "only up to a constant: g is measured with the loss at its initial scalars as the unit, "
                     "so it is known up to a common factor, and 'proportional' is 'clip' here")
        if diag["kind"] == "proportional":
            diag = dict(diag, kind="clip", diagnosis="same as CLIP modulo a common factor: " + diag["diagnosis"])
    cf = None
    if closed_form is not None:
        try:
            ref = np.array([float(closed_form(float(s))) for s in grid])
        except Exception as exc:
            raise fail("closed_form", closed_form, f"a callable sigma -> g that works on the grid "
                                                    f"({type(exc).__name__}: {exc})") from None
        z = np.abs(g - ref) / np.where(se > 0, se, np.inf)
        cf = {"values": ref.tolist(), "covered": bool(np.all((ci[:, 0] <= ref) & (ref <= ci[:, 1]))),
              "max_z": float(np.max(z))}
    return Fingerprint(loss_name=label, similarity=similarity, seed=seed, sizes=list(sizes), replicates=R,
                       level=level, sigma=grid, g=g, g_ci=ci, g_se=se, drifting=drifting,
                       kind=diag["kind"], factor=diag["factor"], shift=diag["shift"], rank=diag["rank"],
                       mixing=diag["mixing"], separable=diag["separable"], diagnosis=diag["diagnosis"],
                       tests=diag["tests"], pair_models=pair_results, closed_form=cf,
                       closed_form_fn=closed_form, notes=notes, seconds=time.perf_counter() - t0,
                       interface={"inputs": user.inputs, "backend": user.backend, "params": dict(user.params),
                                  "learned": list(user.learned), "roles": dict(user.roles)})


def _pair_result(model, sig, data, scalar, level, similarity) -> PairModelResult:
    """Separability, mixing and rank on one multi-pair model."""
    k = len(sig)
    ivs = [_coefficient(data, i, float(sig[i]), level) for i in range(k)]
    inter = []
    for i, iv in enumerate(ivs):
        ref = scalar[float(sig[i])]
        d = iv.estimate - ref.estimate
        se = math.hypot(iv.se, ref.se)
        q = float(t_dist.ppf(0.5 + level / 2, min(iv.dof, ref.dof)))
        inter.append((d, d - q * se, d + q * se, _z(d / se if se > 0 else 0.0, min(iv.dof, ref.dof))))
    off = ~data["diag"]
    D_off = data["IU"][:, off] - data["IC"][:, off]     # the control's off-diagonal limit is 0
    M = np.zeros((k, k))
    M[np.eye(k, dtype=bool)] = [iv.estimate for iv in ivs]
    M[~np.eye(k, dtype=bool)] = D_off.mean(axis=0)
    mass, angle = mixing_statistics(M, floor=RANK_RESOLUTION)
    p_mix = off_diagonal_test(D_off) if D_off.shape[0] > D_off.shape[1] else 1.0
    lo = np.array([iv.lower for iv in ivs])
    hi = np.array([iv.upper for iv in ivs])
    kept = int(np.sum(lo > RANK_RESOLUTION))
    dropped = int(np.sum((lo >= -RANK_RESOLUTION) & (hi <= RANK_RESOLUTION)))
    expected = int(sum(scalar[float(s)].lower > RANK_RESOLUTION for s in sig))
    return PairModelResult(label=model.label, sigma=[float(s) for s in sig],
                           g=[iv.estimate for iv in ivs], g_ci=[[iv.lower, iv.upper] for iv in ivs],
                           interaction=[[d, a, b] for d, a, b, _ in inter], interaction_z=[z for *_, z in inter],
                           mixing=mass, mixing_p=p_mix, angle=angle, kept=kept, dropped=dropped,
                           expected_kept=expected)


def _z(t, dof):
    """A t statistic on ``dof`` degrees of freedom as the standard normal with the same tail
    probability (so that sums of squares are chi-squared)."""
    return float(norm.isf(t_dist.sf(abs(t), dof))) * (1 if t >= 0 else -1)


# --------------------------------------------------------------------------
# diagnosis
# --------------------------------------------------------------------------
def _gof(z, dof_removed):
    """p-value of sum(z^2) against chi-squared with len(z) - dof_removed degrees of freedom."""
    k = len(z) - dof_removed
    return float(chi2.sf(float(np.sum(np.square(z))), k)) if k > 0 else 1.0


def _fit_affine(sigma, g, se, dof):
    r"""Weighted least squares of :math:`g = \max(c\sigma + d, 0)`
    (:func:`numerics.spectral_map.fit_thresholded_affine`): ``(c, d, cov, z)``."""
    c, d, cov = fit_thresholded_affine(sigma, g, se)
    pred = np.maximum(c * sigma + d, 0.0)
    z = [_z(t, k) for t, k in zip((g - pred) / se, dof)]
    return c, d, cov, z


def diagnose(sigma, g, se, dof, ci, drifting, pair_results, level=0.95, shrinking=None) -> dict:
    r"""The kind of a measured map and the numbers behind it (docs/fingerprint.md).

    In order: ``"drift"`` (a grid point still moves with N), ``"mixing"`` (a multi-pair
    model's off-diagonal part is significant at :data:`TEST_LEVEL` and above
    :data:`MIXING_RESOLUTION` of its diagonal), ``"collapse"`` (fewer pairs kept than the
    one-pair map keeps, or none at all), ``"undetermined"`` if the pairs interact (not
    separable: the map is not a function of sigma alone), then the first of ``"clip"``
    (:math:`g = \sigma`), ``"proportional"`` (:math:`g = c\sigma`, :math:`c \ne 1`),
    ``"shifted"`` (:math:`g = \max(c\sigma + d, 0)`, :math:`d \ne 0`) that the data
    accept (goodness of fit p >= :data:`ACCEPT_LEVEL`), ``"nonlinear"`` when every form is
    rejected (p < 1 - :data:`TEST_LEVEL`), and ``"undetermined"`` otherwise: the intervals
    too wide to tell (the factor's half-width above :data:`RESOLUTION`), or a form neither
    accepted nor rejected.  ``shrinking`` (per grid point: away from 0 at the smallest batch
    and moving significantly) turns a map that is 0 in the limit into ``"drift"``."""
    sigma, g, se = (np.asarray(x, dtype=float) for x in (sigma, g, se))
    n = sigma.size
    alpha = 1.0 - TEST_LEVEL
    accept = ACCEPT_LEVEL
    q = float(t_dist.ppf(0.5 + level / 2, max(int(np.min(dof)), 1)))
    w = 1.0 / se**2
    c = float(np.sum(w * g * sigma) / np.sum(w * sigma**2))
    c_se = float(1.0 / math.sqrt(np.sum(w * sigma**2)))
    factor = {"c": c, "ci": [c - q * c_se, c + q * c_se]}
    p_id = _gof([_z(t, d) for t, d in zip((g - sigma) / se, dof)], 0)
    p_prop = _gof([_z(t, d) for t, d in zip((g - c * sigma) / se, dof)], 1)
    ca, da, cov, z_aff = _fit_affine(sigma, g, se, dof)
    p_aff = _gof(z_aff, 2)
    d_se = float(math.sqrt(cov[1, 1])) if np.isfinite(cov[1, 1]) else math.inf
    shift = {"c": ca, "d": da, "d_ci": [da - q * d_se, da + q * d_se],
             "threshold": (-da / ca if ca > 0 and da < 0 else None)}
    monotone = not any(ci[i, 0] > ci[j, 1] for i in range(n) for j in range(i + 1, n))
    tests = {"identity_p": p_id, "proportional_p": p_prop, "affine_p": p_aff, "monotone": monotone}
    separable, mixing, rank, collapse = True, 0.0, None, None
    if pair_results:
        zs = [z for p in pair_results for z in p.interaction_z]
        p_sep = _gof(zs, 0)
        separable = p_sep >= alpha
        tests["separable_p"] = p_sep
        mixing = max(p.mixing for p in pair_results)
        tests["mixing_p"] = min(p.mixing_p for p in pair_results)
        rank = max(p.kept for p in pair_results)
        collapse = next((p for p in pair_results if p.kept < p.expected_kept and
                         p.kept + p.dropped == len(p.sigma)), None)
    resolved = q * c_se <= RESOLUTION * max(abs(c), 1.0)
    c_txt = f"c = {c:.3f} [{factor['ci'][0]:.3f}, {factor['ci'][1]:.3f}]"
    worst = max(pair_results, key=lambda p: p.mixing, default=None)
    all_zero = bool(np.all(ci[:, 1] <= RANK_RESOLUTION) and np.all(ci[:, 0] >= -RANK_RESOLUTION))
    if any(drifting):
        kind = "drift"
        where = ", ".join(f"{s:g}" for s, d in zip(sigma, drifting) if d)
        text = (f"drifts with N: the fitted map still moves like 1/N at N = max (sigma = {where}); "
                "no N-independent limit")
    elif all_zero and shrinking is not None and sum(shrinking) > n / 2:
        kind = "drift"
        text = (f"drifts with N: the fitted map shrinks towards 0 like 1/N at {sum(shrinking)} of {n} grid points "
                "(away from 0 at the smallest batch, 0 in the limit): no N-independent minimiser")
    elif worst is not None and tests["mixing_p"] < alpha and mixing > MIXING_RESOLUTION:
        kind = "mixing"
        text = (f"mixes pairs: off-diagonal mass {mixing:.3f} of the diagonal on {worst.label} "
                f"(p = {worst.mixing_p:.2g}), singular vectors up to {math.degrees(worst.angle):.1f} deg from "
                "the canonical axes")
    elif collapse is not None or all_zero:
        kind = "collapse"
        r = 0 if collapse is None else collapse.kept
        text = (f"collapses to rank {r}: " + ("every g(sigma) lies within +-%g of 0" % RANK_RESOLUTION
                                             if collapse is None else
                                             f"{collapse.label} keeps {collapse.kept} pair(s) where the one-pair "
                                             f"map keeps {collapse.expected_kept}"))
        rank = r if rank is None else min(rank, r)
    elif not separable:
        kind = "undetermined"
        p = max(pair_results, key=lambda p: max(abs(z) for z in p.interaction_z))
        i = int(np.argmax(np.abs(p.interaction_z)))
        d, lo, hi = p.interaction[i]
        text = (f"pairs interact (not separable): on {p.label} the pair at sigma = {p.sigma[i]:g} gets "
                f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}] relative to its one-pair model, so g is not a function "
                "of sigma alone")
    elif p_id >= accept and factor["ci"][0] <= 1.0 <= factor["ci"][1] and resolved:
        kind = "clip"
        text = f"same as CLIP: g = sigma ({c_txt}; identity not rejected, p = {p_id:.2g})"
    elif p_prop >= accept and not (factor["ci"][0] <= 1.0 <= factor["ci"][1]) and resolved:
        kind = "proportional"
        text = f"proportional: g = c*sigma, {c_txt} (fit p = {p_prop:.2g})"
    elif p_aff >= accept and not (shift["d_ci"][0] <= 0.0 <= shift["d_ci"][1]) and p_prop < alpha:
        kind = "shifted"
        thr = f", threshold sigma = {shift['threshold']:.3f}" if shift["threshold"] is not None else ""
        text = (f"shifted/thresholded: g = max(c*sigma + d, 0), c = {ca:.3f}, d = {da:+.3f} "
                f"[{shift['d_ci'][0]:+.3f}, {shift['d_ci'][1]:+.3f}]{thr} (fit p = {p_aff:.2g})")
    elif p_prop < alpha and p_aff < alpha and p_id < alpha:
        kind = "nonlinear"
        text = (f"non-linear, {'monotone' if monotone else 'not monotone'}: no form g = c*sigma (p = {p_prop:.2g}) "
                f"or max(c*sigma + d, 0) (p = {p_aff:.2g}) fits; g/sigma runs from {g[0] / sigma[0]:.3f} "
                f"to {g[-1] / sigma[-1]:.3f}")
    else:
        kind = "undetermined"
        text = (f"undetermined: no form is accepted (p >= {ACCEPT_LEVEL:g}) or all rejected (p < {alpha:.2g}): "
                f"identity p = {p_id:.2g}, proportional p = {p_prop:.2g}, max(c*sigma + d, 0) p = {p_aff:.2g}; "
                f"{c_txt} (a 'clip' or 'proportional' kind needs a half-width <= {RESOLUTION:g})")
    return {"kind": kind, "factor": factor if kind in ("proportional", "clip") else
            dict(factor, note="not a proportional map: c is the best factor, not a description"),
            "shift": shift, "rank": rank, "mixing": mixing, "separable": separable,
            "diagnosis": text, "tests": tests}
