r"""Verify a user's contrastive loss variant against a claim (MATH.md §3, §4.1, §4.2).

:func:`verify_variant` answers, for a loss written as a function of the logit
matrix, whether its minimiser over linear encoders has the same minimisers
as CLIP (Proposition G1), recovers the conditional means (Proposition G2) or
the conditionals (Proposition G3), on generated Gaussian models.

How it decides
--------------
For each model and each replicate, one sample of ``max(sizes)`` pairs is drawn;
the batches of size ``N`` are its first ``N`` rows (nested common random
numbers).  On each batch the CLIP loss (symmetric InfoNCE, the *control*) and
the user's loss are minimised over the encoders; both see the same logit
matrices through the same code path.  The claim's statistic ``stat`` (an
invariant of the encoders, see below) gives

* the user's error :math:`e_u(N) = \|\text{stat}(\hat\theta_u(N)) - T\|_F` with
  ``T`` the claim's target;
* the resolution :math:`r(N) = \|\text{stat}(\hat\theta_c(N)) - \text{stat}(\theta^*_c)\|_F`:
  the error of the control, whose population minimiser :math:`\theta^*_c` is
  known (:func:`numerics.gaussian.lowrank_minimizer`, or an optimisation of the
  closed form for L2), so that :math:`r(N)` is pure finite-:math:`N` error
  (fluctuation :math:`O(N^{-1/2})`, bias :math:`O(1/N)`).

If the variant's population minimiser satisfies the claim, :math:`e_u(N)` is
a finite-sample error of the same kind as :math:`r(N)`: it shrinks like
:math:`N^{-1/2}` with a constant set by the relative efficiency of the two
estimators.  If not, :math:`e_u(N)` tends to the distance :math:`\delta > 0`
of its limit from the target and stops shrinking.

The resolution is pooled over every size and replicate under the control's
:math:`N^{-1/2}` law, :math:`\hat r(N) = \rho/\sqrt N` with
:math:`\rho^2 = \operatorname{mean}_{N,\text{rep}}\, N r^2`, which is far more
stable than the error of a single batch.  A model is **refuted** when

.. math:: \hat e_u(N_{max}) > k\, \hat r(N_{max}), \qquad k = 3
          \ (\text{``spread\_factor''}),

with :math:`\hat e_u(N_{max})` the root mean square over replicates, and
**confirmed** otherwise; the claim is confirmed iff every model is.  Why
:math:`k = 3`: for an asymptotically normal estimator with the control's
efficiency, :math:`\hat e_u/\hat r` is about
:math:`\sqrt{\chi^2_d/d}` with :math:`d \ge 6` degrees of freedom (at least
two replicates of an error with at least three free directions), whose 99.9 %
quantile is 1.93; ``k = 3`` then still accepts a variant whose estimator has
up to :math:`(3/1.93)^2 \approx 2.4` times the control's variance.  A
difference :math:`\delta` below :math:`k\,\hat r(N_{max})` cannot be seen: that
*resolution* is printed with every verdict; raise ``sizes`` to sharpen it.
The slope of :math:`\log e_u` against :math:`\log N` (about :math:`-1/2` for a
consistent variant) and the limit :math:`\hat\delta` of a least-squares fit
:math:`e_u^2 \approx c_0 + c_1/N` are reported as diagnostics only: finite-N
biases of wrong variants can be large and make both unreliable.

Statistics (all in whitened coordinates, so that they are scale-free):

* ``same-minimizers-as-clip``: bilinear, :math:`B = C_{uu}^{1/2}G_u^TG_vC_{vv}^{1/2}`;
  L2 (invariant under joint rotations only), the Gram matrix of
  :math:`[H_uC_{uu}^{1/2},\ H_vC_{vv}^{1/2}]`.  Target: the control's limit.
* ``matches-conditional-means``: the model mean maps
  :math:`C_{vv}^{-1/2}N_vC_{uu}^{1/2}` (and/or the :math:`u|v` one), target the
  true regression map projected on the top-:math:`n_e` canonical directions
  (Proposition G2; the exact map when :math:`n_e \ge \operatorname{rank}C_{uv}`).
* ``matches-conditionals``: the mean maps and the whitened model covariances
  :math:`C_{vv}^{-1/2}\Sigma_vC_{vv}^{-1/2}`, target the true conditional
  restricted in the same way, :math:`I - V_{n_e}\Sigma_{n_e}^2V_{n_e}^T` (Proposition G3).
  The bilinear model can never move covariances (§4.1), so with
  ``similarity="dot"`` this claim is refuted whenever :math:`K \ne 0`.

The user's loss
---------------
``loss(F) -> float`` with ``F`` the ``N x N`` logit matrix,
``F[i, j] = f(u_i, v_j)``, positives on the diagonal, the temperature folded
into the encoders (``"dot"``: :math:`F = (UG_u^T)(VG_v^T)^T`; ``"l2"``:
:math:`F_{ij} = -|G_uu_i - G_vv_j|^2/2`).  A gradient is optional: pass
``grad=`` (a callable ``F -> dL/dF``, an ``N x N`` array) or give the loss a
``grad`` attribute; otherwise central finite differences are taken in the few
encoder parameters (:math:`n_e(n_u + n_v)` of them, not the :math:`N^2` logits).
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.linalg import subspace_angles

from numerics import gaussian, infonce
from numerics._validation import as_choice, as_count, fail
from numerics.encoders import (LinearEncoders, check_depends_on_logits, fit_batch, loss_on_logits,
                               population_minimizer)
from numerics.models import GaussianModel, random_gaussian_model

__all__ = ["CLAIMS", "SIMILARITIES", "DIRECTIONS", "ModelVerdict", "VariantVerification",
           "verify_variant", "default_variant_models"]

CLAIMS = ("same-minimizers-as-clip", "matches-conditional-means", "matches-conditionals")
#: "dot" (alias "bilinear") and "l2" have Gaussian closed forms; cosine has none.
SIMILARITIES = ("dot", "l2")
DIRECTIONS = ("both", "v|u", "u|v")

SPREAD_FACTOR = 3.0
#: Relative size of the random perturbation of the variant's first start (see
#: :func:`verify_variant`): large enough that a loss whose gradient vanishes at
#: the control's fit cannot pass by not moving, small enough to stay in the
#: basin of a variant that shares CLIP's minimisers.
START_PERTURBATION = 0.3
#: Default batch sizes per similarity (see :func:`verify_variant`).
DEFAULT_SIZES = {"dot": (128, 256, 512), "l2": (256, 512, 1024, 2048)}


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def default_variant_models(seed: int = 0, count: int = 3) -> list[GaussianModel]:
    r"""Gaussian models for :func:`verify_variant`: small, well conditioned, with a
    healthy eigengap :math:`\sigma_{n_e} - \sigma_{n_e+1} \ge 0.25` so that the
    reference minimiser is unique and well resolved at moderate ``N``.

    Shapes cycle through ``(n_u, n_v, n_e)`` = (2, 2, 1), (3, 3, 1), (2, 3, 2):
    two rank-constrained cases and one full-rank case.
    """
    shapes = [(2, 2, 1), (3, 3, 1), (2, 3, 2)]
    rng = np.random.default_rng([seed, 7919])
    out = []
    for i in range(count):
        n_u, n_v, n_e = shapes[i % len(shapes)]
        out.append(random_gaussian_model(rng, n_u, n_v, n_e=n_e, max_correlation=0.8,
                                         min_gap=0.25, max_condition=4.0))
    return out


# --------------------------------------------------------------------------
# statistics of the claims
# --------------------------------------------------------------------------
def _statistic(fam, x, claim, direction):
    if claim == "same-minimizers-as-clip":
        return fam.invariant(x).ravel()
    N_v, Sig_v, N_u, Sig_u = fam.conditionals(x)
    parts = []
    if direction in ("both", "v|u"):
        parts.append(fam.Riv @ N_v @ fam.Ru)
        if claim == "matches-conditionals":
            parts.append(fam.Riv @ Sig_v @ fam.Riv)
    if direction in ("both", "u|v"):
        parts.append(fam.Riu @ N_u @ fam.Rv)
        if claim == "matches-conditionals":
            parts.append(fam.Riu @ Sig_u @ fam.Riu)
    return np.concatenate([p.ravel() for p in parts])


def _target(fam, claim, direction, control_stat):
    if claim == "same-minimizers-as-clip":
        return control_stat
    m = fam.model
    U, s, Vt = gaussian.canonical_directions(m.cov, m.n_u)
    k = m.n_e
    Bt = (Vt[:k].T * s[:k]) @ U[:, :k].T  # whitened projected regression map v|u
    parts = []
    if direction in ("both", "v|u"):
        parts.append(Bt)
        if claim == "matches-conditionals":
            parts.append(np.eye(m.n_v) - (Vt[:k].T * s[:k] ** 2) @ Vt[:k])
    if direction in ("both", "u|v"):
        parts.append(Bt.T)
        if claim == "matches-conditionals":
            parts.append(np.eye(m.n_u) - (U[:, :k] * s[:k] ** 2) @ U[:, :k].T)
    return np.concatenate([p.ravel() for p in parts])


def _clip_value_and_grad(F):
    r"""CLIP loss :math:`L_N - \log N` and :math:`\partial/\partial F = (P + Q)/(2N) - I/N` (MATH.md §2)."""
    return infonce.infonce_loss(F) - math.log(F.shape[0]), infonce.infonce_grad(F)


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------
@dataclass
class ModelVerdict:
    r"""The verdict on one Gaussian model.

    Attributes
    ----------
    label : str
    sizes : list of int
    user_error, resolution : ndarray, shape (len(sizes),)
        RMS over replicates of :math:`e_u(N)` and :math:`r(N)`.
    user_errors, control_errors : ndarray, shape (len(sizes), replicates)
    slope : float
        Least-squares slope of :math:`\log e_u` against :math:`\log N`.
    limit : float
        Extrapolated :math:`\hat\delta` (fit :math:`e_u^2 \approx c_0 + c_1/N`).
    control_gap : float
        Distance of the control's own population statistic from the claim's
        target (0 when CLIP itself satisfies the claim).
    angles_user, angles_control : ndarray, shape (len(sizes), replicates)
        Largest principal angle (radians) between the fitted whitened
        :math:`u`-encoder subspace and the top canonical subspace.
    passed : bool
    """

    label: str
    n_u: int
    n_v: int
    n_e: int
    sigma: list
    sizes: list
    user_errors: np.ndarray
    control_errors: np.ndarray
    angles_user: np.ndarray
    angles_control: np.ndarray
    control_gap: float
    spread_factor: float = SPREAD_FACTOR

    @property
    def user_error(self) -> np.ndarray:
        return np.sqrt(np.mean(self.user_errors**2, axis=1))

    @property
    def resolution(self) -> np.ndarray:
        r"""Pooled control error :math:`\rho/\sqrt N` at each size."""
        n = np.asarray(self.sizes, dtype=float)
        rho = math.sqrt(float(np.mean(n[:, None] * self.control_errors**2)))
        return rho / np.sqrt(n)

    @property
    def control_error(self) -> np.ndarray:
        """RMS over replicates of the control's error at each size (unpooled)."""
        return np.sqrt(np.mean(self.control_errors**2, axis=1))

    @property
    def slope(self) -> float:
        logn = np.log(np.asarray(self.sizes, dtype=float))
        loge = np.log(np.maximum(self.user_error, 1e-300))
        return float(np.polyfit(logn, loge, 1)[0]) if len(self.sizes) > 1 else math.nan

    @property
    def limit(self) -> float:
        n = np.asarray(self.sizes, dtype=float)
        if len(n) < 2:
            return math.nan
        X = np.column_stack([np.ones_like(n), 1.0 / n])
        c = np.linalg.lstsq(X, self.user_error**2, rcond=None)[0]
        return float(math.sqrt(max(0.0, c[0])))

    @property
    def ratio(self) -> float:
        """:math:`e_u(N_{max}) / r(N_{max})`."""
        return float(self.user_error[-1] / max(self.resolution[-1], 1e-300))

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.ratio)) and self.ratio <= self.spread_factor

    def to_dict(self) -> dict:
        return {
            "label": self.label, "n_u": self.n_u, "n_v": self.n_v, "n_e": self.n_e,
            "sigma": [float(s) for s in self.sigma], "sizes": list(self.sizes),
            "user_error": self.user_error.tolist(), "resolution": self.resolution.tolist(),
            "control_error": self.control_error.tolist(),
            "user_errors": self.user_errors.tolist(), "control_errors": self.control_errors.tolist(),
            "ratio": self.ratio, "slope": self.slope, "limit": self.limit,
            "control_gap": self.control_gap,
            "max_angle_user": self.angles_user.max(axis=1).tolist(),
            "max_angle_control": self.angles_control.max(axis=1).tolist(),
            "passed": self.passed,
        }


@dataclass
class VariantVerification:
    """Result of :func:`verify_variant`.

    ``passed`` is True iff every model confirms the claim.  ``summary()`` (also
    ``str(result)``) is a readable report, ``to_dict()`` the JSON document,
    ``figures()`` one matplotlib figure per model and ``write_report(dir)``
    a folder with ``report.md``, ``result.json`` and PNG figures.
    """

    claim: str
    similarity: str
    direction: str
    seed: int
    loss_name: str
    gradient: str
    sizes: list
    replicates: int
    models: list
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return len(self.models) > 0 and all(m.passed for m in self.models)

    def __bool__(self) -> bool:
        return self.passed

    def summary(self) -> str:
        verdict = "CONFIRMED" if self.passed else "REFUTED"
        lines = [f"{self.loss_name}: claim '{self.claim}' ({self.similarity} similarity"
                 + (f", direction {self.direction}" if self.claim != "same-minimizers-as-clip" else "")
                 + f") {verdict}: consistent with the claim on {sum(m.passed for m in self.models)} "
                 f"of {len(self.models)} models",
                 f"  seed {self.seed}, sizes N = {list(self.sizes)}, {self.replicates} replicates, "
                 f"gradient: {self.gradient}, {self.seconds:.1f} s",
                 f"  rule: refuted iff e_user(N_max) > {SPREAD_FACTOR:g} x resolution(N_max) "
                 "(resolution = CLIP control's error, pooled as rho / sqrt(N))"]
        for m in self.models:
            lines.append(f"  [{'ok' if m.passed else 'REFUTED'}] {m.label}: e_user = "
                         + ", ".join(f"{e:.3g}" for e in m.user_error)
                         + "; resolution = " + ", ".join(f"{r:.3g}" for r in m.resolution)
                         + f"; ratio {m.ratio:.2f}, slope {m.slope:+.2f}, limit {m.limit:.3g}"
                         + (f", CLIP's own gap {m.control_gap:.3g}" if m.control_gap > 0 else ""))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __str__ = summary

    def to_dict(self) -> dict:
        return {
            "claim": self.claim, "similarity": self.similarity, "direction": self.direction,
            "seed": self.seed, "loss": self.loss_name, "gradient": self.gradient,
            "sizes": list(self.sizes), "replicates": self.replicates,
            "spread_factor": SPREAD_FACTOR,
            "passed": self.passed, "models": [m.to_dict() for m in self.models],
            "notes": list(self.notes),
        }

    def figures(self) -> list:
        """One figure per model: error against N (with the resolution and an
        :math:`N^{-1/2}` guide) and the largest principal angle against N."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        figs = []
        for m in self.models:
            fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6))
            n = np.asarray(m.sizes, dtype=float)
            ax1.loglog(n, m.user_error, "o-", label="variant: error to target")
            ax1.loglog(n, m.control_error, "s", label="CLIP control: error")
            ax1.loglog(n, m.resolution, "--", label=r"resolution $\rho/\sqrt{N}$")
            ax1.loglog(n, SPREAD_FACTOR * m.resolution, ":", color="grey",
                       label=f"{SPREAD_FACTOR:g} x resolution")
            ax1.set_xlabel("N (pairs per batch)")
            ax1.set_ylabel("Frobenius error (whitened)")
            ax1.set_title(("ok" if m.passed else "REFUTED") + f": {m.label}", fontsize=9)
            ax1.legend(fontsize=7)
            ax2.semilogx(n, np.degrees(m.angles_user.mean(axis=1)), "o-", label="variant")
            ax2.semilogx(n, np.degrees(m.angles_control.mean(axis=1)), "s--", label="CLIP control")
            ax2.set_xlabel("N (pairs per batch)")
            ax2.set_ylabel("largest principal angle (deg)")
            ax2.set_title("u-encoder subspace vs top canonical subspace", fontsize=9)
            ax2.legend(fontsize=7)
            fig.tight_layout()
            figs.append(fig)
        return figs

    def write_report(self, directory) -> Path:
        """Write ``report.md``, ``result.json`` and ``model_<k>.png`` to ``directory``;
        return the path of ``report.md``."""
        import matplotlib.pyplot as plt

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        lines = [f"# Variant verification: {self.loss_name}", "",
                 f"**Claim** `{self.claim}` with `{self.similarity}` similarity: "
                 f"**{'CONFIRMED' if self.passed else 'REFUTED'}**", "", "```", self.summary(), "```", ""]
        for k, (m, fig) in enumerate(zip(self.models, self.figures())):
            name = f"model_{k}.png"
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
            lines += [f"## Model {k}: {m.label}", "",
                      f"canonical correlations {np.round(m.sigma, 3).tolist()}; verdict "
                      f"{'ok' if m.passed else 'REFUTED'} (ratio {m.ratio:.2f}, slope {m.slope:+.2f})",
                      "", f"![model {k}]({name})", ""]
        path = out / "report.md"
        path.write_text("\n".join(lines), encoding="utf-8")
        return path


# --------------------------------------------------------------------------
# the verifier
# --------------------------------------------------------------------------
def _as_sizes(sizes):
    try:
        arr = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise fail("sizes", sizes, "a sequence of integers >= 16") from None
    if len(arr) < 2 or any(s < 16 for s in arr) or any(a >= b for a, b in zip(arr, arr[1:])):
        raise fail("sizes", sizes, "at least two increasing integers >= 16")
    if any(s != float(t) for s, t in zip(arr, sizes)):
        raise fail("sizes", sizes, "integers")
    return arr


def verify_variant(loss: Callable[[np.ndarray], float], *, claim: str, similarity: str = "dot",
                   seed: int = 0, grad: Callable | None = None, models: list | None = None,
                   n_models: int = 3, sizes=None, replicates: int = 2,
                   direction: str = "both", name: str | None = None,
                   progress: Callable[[str], None] | None = None) -> VariantVerification:
    r"""Verify ``claim`` for the contrastive loss ``loss`` on Gaussian models.

    Parameters
    ----------
    loss : callable
        ``loss(F) -> float`` of the ``N x N`` logit matrix ``F``
        (``F[i, j] = f(u_i, v_j)``, positives on the diagonal).
    claim : {"same-minimizers-as-clip", "matches-conditional-means", "matches-conditionals"}
    similarity : {"dot", "l2"}
        The logit family the encoders feed (``"bilinear"`` is an alias of ``"dot"``).
        Cosine has no Gaussian closed form and is not supported here.
    seed : int
        Seeds the models, the samples and nothing else: a call is deterministic.
    grad : callable, optional
        ``grad(F) -> dL/dF`` (``N x N``); defaults to ``loss.grad`` if the loss
        has one, else finite differences in the encoder parameters.
    models : list of GaussianModel, optional
        Defaults to :func:`default_variant_models` ``(seed, n_models)``.
    sizes : sequence of int, optional
        Batch sizes ``N`` (increasing, at least two).  Defaults to
        :data:`DEFAULT_SIZES` for the similarity: (128, 256, 512) for ``"dot"``;
        (256, 512, 1024, 2048) for ``"l2"``, whose invariants are estimated
        with about twice the error at equal ``N``.
    replicates : int
        Independent samples per model (common to the variant and the control).
    direction : {"both", "v|u", "u|v"}
        Which conditionals the ``matches-*`` claims concern: rows of ``F``
        normalise over :math:`v` (the :math:`v|u` conditional), columns over
        :math:`u`.  A one-directional row-wise InfoNCE targets ``"v|u"``.
    name : str, optional
        Name used in the report (defaults to the loss's ``__name__``).
    progress : callable, optional
        Called with one line of text per model and batch size.

    Returns
    -------
    VariantVerification

    Raises
    ------
    numerics.InvalidInputError
        Unknown ``claim``, ``similarity`` or ``direction``; ``n_models`` not an
        integer >= 1; ``models`` not a non-empty list of ``GaussianModel``; a
        ``loss`` that is not callable, raises, returns a non-number or a
        non-finite value; a ``loss`` that does not depend on ``F`` (the same
        value for random encoders: a constant loss is rejected, not refuted,
        since no claim about its minimisers can be tested); a ``grad``
        returning a non-finite array or the wrong shape.

    Notes
    -----
    The variant's first fit starts from the control's fit plus a random
    perturbation of relative size :data:`START_PERTURBATION`, so that the
    variant must reach its own stationary point; a fit that stops short of
    one is reported in ``notes``.
    """
    claim = as_choice(claim, CLAIMS, "claim")
    similarity = infonce.as_similarity(similarity, choices=SIMILARITIES)
    direction = as_choice(direction, DIRECTIONS, "direction")
    if not callable(loss):
        raise fail("loss", loss, "a callable loss(F) -> float")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise fail("seed", seed, "an integer")
    sizes = _as_sizes(DEFAULT_SIZES[similarity] if sizes is None else sizes)
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or replicates < 1:
        raise fail("replicates", replicates, "an integer >= 1")
    if grad is None and callable(getattr(loss, "grad", None)):
        grad = loss.grad
    if grad is not None and not callable(grad):
        raise fail("grad", grad, "a callable grad(F) -> dL/dF, or None")
    n_models = as_count(n_models, "n_models", 1)
    if models is None:
        models = default_variant_models(int(seed), n_models)
    if not isinstance(models, (list, tuple)) or len(models) < 1:
        raise fail("models", models, "a non-empty list of numerics.models.GaussianModel, or None")
    for k, m in enumerate(models):
        if not isinstance(m, GaussianModel):
            raise fail(f"models[{k}]", m, "a numerics.models.GaussianModel")
    if progress is not None and not callable(progress):
        raise fail("progress", progress, "a callable taking one line of text, or None")
    if name is not None and not isinstance(name, str):
        raise fail("name", name, "a string, or None")
    label = name or getattr(loss, "__name__", type(loss).__name__)
    user_value = loss_on_logits(loss)
    t0 = time.perf_counter()
    verdicts = []
    notes = []
    if claim == "matches-conditionals" and similarity == "dot":
        notes.append("the bilinear model's conditional covariances are C_vv, C_uu whatever the "
                     "encoders (MATH.md 4.1): this claim can only hold when K = 0")
    for k, m in enumerate(models):
        rng = np.random.default_rng([int(seed), k, 104729])
        fam = LinearEncoders(m, similarity)
        x_star = population_minimizer(fam, rng)
        T_c = _statistic(fam, x_star, claim, direction)
        T = _target(fam, claim, direction, T_c)
        shape = (len(sizes), replicates)
        eu, ec, au, ac = (np.empty(shape) for _ in range(4))
        Uk = gaussian.canonical_directions(m.cov, m.n_u)[0][:, : m.n_e]
        L = np.linalg.cholesky(m.cov)
        for r in range(replicates):
            Z = rng.standard_normal((sizes[-1], m.cov.shape[0])) @ L.T
            x_c, x_u, H_u = x_star, None, None
            for i, N in enumerate(sizes):
                U, V = Z[:N, : m.n_u], Z[:N, m.n_u:]
                fit_c = fit_batch(fam, U, V, x_c, None, joint=_clip_value_and_grad)
                x_c, H_c = fit_c.x, fit_c.hess_inv
                if x_u is None:
                    if r == 0:
                        check_depends_on_logits(fam, U, V, x_c, user_value, rng)
                    # First size: start at the control's fit moved by a random
                    # perturbation of relative size START_PERTURBATION, never at
                    # the control's fit itself: a loss whose gradient vanishes
                    # there (flat, or stationary at CLIP's point by accident)
                    # must not pass by standing still.  Later sizes warm-start
                    # from the variant's fit on the previous (nested) batch.
                    x0 = x_c + START_PERTURBATION * np.linalg.norm(x_c) / math.sqrt(x_c.size) \
                        * rng.standard_normal(x_c.shape)
                else:
                    x0 = x_u
                fit_u = fit_batch(fam, U, V, x0, user_value, grad,
                                  hess_inv=H_c if H_u is None else H_u)
                x_u, nit, H_u, ok = fit_u.x, fit_u.n_iter, fit_u.hess_inv, fit_u.converged
                moved = float(np.linalg.norm(x_u - x0))
                if not ok:
                    notes.append(f"{m.label}, N={N}: the variant's fit did not reach a stationary "
                                 f"point (moved {moved:.3g} from its start)")
                eu[i, r] = float(np.linalg.norm(_statistic(fam, x_u, claim, direction) - T))
                ec[i, r] = float(np.linalg.norm(_statistic(fam, x_c, claim, direction) - T_c))
                au[i, r] = float(np.max(subspace_angles(fam.u_subspace(x_u), Uk)))
                ac[i, r] = float(np.max(subspace_angles(fam.u_subspace(x_c), Uk)))
                if progress is not None:
                    progress(f"model {k + 1}/{len(models)} ({m.label}) replicate {r + 1}/{replicates} "
                             f"N={N}: error {eu[i, r]:.3g}, control {ec[i, r]:.3g}, "
                             f"{nit} iterations, {time.perf_counter() - t0:.1f} s")
        verdicts.append(ModelVerdict(m.label, m.n_u, m.n_v, m.n_e, m.sigma.tolist(), list(sizes),
                                     eu, ec, au, ac, float(np.linalg.norm(T_c - T))))
    return VariantVerification(claim, similarity, direction, int(seed), label,
                               "user" if grad is not None else "finite differences",
                               list(sizes), int(replicates), verdicts,
                               time.perf_counter() - t0, notes)
