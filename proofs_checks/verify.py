r"""Verify a user's contrastive loss variant against a claim (MATH.md §3, §4.1, §4.2).

:func:`verify_variant` answers, for a loss written as a function of the logit
matrix, whether the minimiser of its population loss over linear encoders
has the same minimisers as CLIP (Proposition G1), recovers the conditional
means (Proposition G2) or the conditionals (Proposition G3), on generated
Gaussian models.  The answer is one of three verdicts, each with a stated
margin: **confirmed** (the data show the variant within ``margin`` of the
claim), **refuted** (they show a difference that finite-:math:`N` bias cannot
explain) or **inconclusive** (they cannot tell; the result says which batch
size would likely decide).  The statistics are in :mod:`proofs_checks.verdict`.

How the data are made
---------------------
For each model and each of ``replicates`` independent samples, nested batches
of the sizes ``sizes`` are drawn (the batch of size ``N`` is the first ``N``
pairs of the sample: common random numbers across sizes).  On each batch the
CLIP loss (symmetric InfoNCE, the *control*) and the user's loss are
minimised over the encoders, the variant warm-started from the control's fit
and metric.  Both see the same logit matrices, so the paired difference of
their statistics carries far less noise than either.  While a model's
verdict is undecided and the time ``budget`` allows, its replicates are
doubled, then its largest batch, and the estimate is made again.

Statistics (all in whitened coordinates, so that they are scale-free):

* ``same-minimizers-as-clip``: bilinear, :math:`B = C_{uu}^{1/2}G_u^TG_vC_{vv}^{1/2}`;
  L2 (invariant under joint rotations only), the Gram matrix of
  :math:`[G_uC_{uu}^{1/2},\ G_vC_{vv}^{1/2}]`.  Target: CLIP's population minimiser.
* ``same-subspace-as-clip``: the projectors onto the whitened row spaces
  :math:`\operatorname{span} C_{uu}^{1/2}G_u^T` and :math:`\operatorname{span} C_{vv}^{1/2}G_v^T`
  (the scale and the shape of :math:`f` within the subspace are free).  Target:
  CLIP's, the top-:math:`n_e` canonical subspaces (Proposition G1).  Its margin
  is the largest principal angle, in radians (default 0.1).
* ``matches-conditional-means``: the model mean maps
  :math:`C_{vv}^{-1/2}N_vC_{uu}^{1/2}` (and/or the :math:`u|v` one), target the
  true regression map projected on the top-:math:`n_e` canonical directions
  (Proposition G2; the exact map when :math:`n_e \ge \operatorname{rank}C_{uv}`).
* ``matches-conditionals``: the mean maps and the whitened model covariances
  :math:`C_{vv}^{-1/2}\Sigma_vC_{vv}^{-1/2}`, target the true conditional
  restricted in the same way, :math:`I - V_{n_e}\Sigma_{n_e}^2V_{n_e}^T` (Proposition G3).
  The bilinear model can never move covariances (§4.1), so with
  ``similarity="dot"`` this claim is refuted whenever :math:`K \ne 0`.

The margin is 5 % of the target's norm unless ``margin=`` sets an absolute value
(for ``same-subspace-as-clip``: an angle in radians).

The user's loss
---------------
``loss(F) -> float`` with ``F`` the ``N x N`` logit matrix,
``F[i, j] = f(u_i, v_j)``, positives on the diagonal, the temperature folded
into the encoders (``"dot"``: :math:`F = (UG_u^T)(VG_v^T)^T`; ``"l2"``:
:math:`F_{ij} = -|G_uu_i - G_vv_j|^2/2`).  A gradient is optional: pass
``grad=`` (a callable ``F -> dL/dF``, an ``N x N`` array) or give the loss a
``grad`` attribute; otherwise central finite differences are taken in the few
encoder parameters (:math:`n_e(n_u + n_v)` of them, not the :math:`N^2` logits).

Losses as they are trained (:mod:`numerics.user_loss`): ``inputs="embeddings"``
takes ``loss(za, zb, **params)``; ``params`` are the loss's own scalars and
``learn`` those minimised with the encoders; ``backend`` is numpy, torch or
jax (autograd in float64).  The scalars' roles on the logits (scale,
log-scale, temperature, bias) are found by their defining identities and
folded into the *effective* similarity the statistics are computed from, so
that a learnable temperature does not count as a difference.  The flat
directions of the variant's batch loss are found and named
(:mod:`proofs_checks.flat`); any that moves the statistic is projected out.

Under ``similarity="cosine"`` (no closed form) the control is CLIP with a
learned logit scale; ``same-minimizers-as-clip`` compares the effective
:math:`f = m\cos(G_uu, G_vv)` on fixed probe pairs, centred, against the
control's fits (the target is their mean at the largest batch); ``matches-*``
compare the model's conditionals, estimated by self-normalised importance
sampling of a marginal bank (MATH.md §5), with the true Gaussian ones
(:mod:`proofs_checks.claims`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.linalg import subspace_angles

from numerics import gaussian, infonce
from numerics._validation import as_choice, as_count, fail
from numerics.encoders import (LinearEncoders, ScaledClip, loss_on_logits, nested_sample, paired_fits,
                               paired_user_fits, user_batch_objective,
                               population_minimizer)
from numerics.models import GaussianModel, random_gaussian_model

from . import report
from numerics.user_loss import INPUTS, UserLoss
from .claims import (CLAIMS, DEFAULT_SUBSPACE_MARGIN, DIRECTIONS, Probes, cosine_statistic, cosine_target,
                     effective_parameters, statistic as _statistic, subspace_margin, target as _target)
from .flat import FlatDirections, flat_directions, project_out
from .parallel import executor
from .verdict import DEFAULT_RELATIVE_MARGIN, DeltaEstimate, combine, decide, estimate_delta

__all__ = ["CLAIMS", "SIMILARITIES", "DIRECTIONS", "EXIT_CODES", "ModelVerdict",
           "VariantVerification", "verify_variant", "default_variant_models"]

#: Similarities the verifier fits under (cosine has no closed form: its control is
#: CLIP's own fits, with the logit scale learned).
SIMILARITIES = infonce.SIMILARITIES
#: Process exit code of each verdict (``python -m proofs_checks verify``).
EXIT_CODES = {"confirmed": 0, "refuted": 1, "inconclusive": 3}

#: Relative size of the random perturbation of the variant's first start:
#: large enough that a loss whose gradient vanishes at the control's fit
#: cannot pass by not moving, small enough to stay in the basin of a variant
#: that shares CLIP's minimisers.
START_PERTURBATION = 0.3
#: Default batch sizes per similarity (L2 invariants are estimated with about
#: twice the error of bilinear ones at equal N).
DEFAULT_SIZES = {"dot": (64, 128, 256), "l2": (128, 256, 512), "cosine": (64, 128, 256)}
DEFAULT_REPLICATES = 8
#: Default time budget (seconds) for the adaptive rounds after the first.
DEFAULT_BUDGET = 60.0
#: The budget is spent by a cost model, not a clock, so that a verdict does not
#: depend on the machine's load: a round costs sum(N^2) x (loss evaluations per
#: step) / NOMINAL_RATE seconds, the rate measured on 2 cores for a numpy loss
#: with a gradient (benchmarks/calibrate_verifier.py prints the real seconds).
#: Measured again after the dense InfoNCE moved off SciPy's array dispatch:
#: 1.25e6 (round 1) and 1.36e6 (a round at N = 512) units per second on 2
#: cores at a load of 2; the old 4e5 stopped one-directional InfoNCE one round
#: short of a verdict on 10 of 70 seeds.
NOMINAL_RATE = 1.2e6
#: The same for a torch or JAX loss, whose calls carry the framework's overhead
#: and often more work per logit (in-view negatives double N): 4e5, with which
#: open_clip's and lightly's losses gave their verdicts within 5 minutes on 2
#: busy cores (benchmarks/verify_real_losses.py).
AUTOGRAD_RATE = 4.0e5
#: Adaptive rounds double the replicates up to this many, then the largest batch.
MAX_REPLICATES = 32
#: Largest batch the adaptive schedule will use (dense N x N logits: 128 MiB at 4096).
MAX_SIZE = 4096


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def default_variant_models(seed: int = 0, count: int = 3, similarity: str = "dot") -> list[GaussianModel]:
    r"""Gaussian models for :func:`verify_variant`: small, well conditioned, with a
    healthy eigengap :math:`\sigma_{n_e} - \sigma_{n_e+1} \ge 0.25` so that the
    reference minimiser is unique and well resolved at moderate ``N``.

    Shapes cycle through ``(n_u, n_v, n_e)`` = (2, 2, 1), (3, 3, 1), (2, 3, 2):
    two rank-constrained cases and one full-rank case.  Under cosine similarity
    they are (2, 2, 2), (3, 3, 3), (2, 2, 2): a linear encoder with a null space
    sends some samples near 0, where their direction is arbitrary, and a finite
    batch's loss then has no minimiser (fits end at such a sample with a
    gradient in the hundreds), so cosine encoders are square, with every canonical
    correlation well away from 0 (``min_gap`` 0.45: with 0.25, 3 of 4 fits at
    N = 64 collapsed a direction of a 3 x 3 encoder and stopped at such a sample).
    """
    shapes = [(2, 2, 1), (3, 3, 1), (2, 3, 2)]
    min_gap = 0.25
    if similarity == "cosine":
        shapes, min_gap = [(2, 2, 2), (3, 3, 3), (2, 2, 2)], 0.45
    rng = np.random.default_rng([seed, 7919])
    out = []
    for i in range(count):
        n_u, n_v, n_e = shapes[i % len(shapes)]
        out.append(random_gaussian_model(rng, n_u, n_v, n_e=n_e, max_correlation=0.8,
                                         min_gap=min_gap, max_condition=4.0))
    return out



@dataclass
class _Chain:
    """Task: fit the control and the variant at ``sizes`` on replicate ``r`` of model ``k``."""

    model: GaussianModel
    similarity: str
    seed: int
    k: int
    r: int
    sizes: list
    loss: Callable
    grad: Callable | None
    x_star: np.ndarray
    state: tuple | None = None   # (x_c, H_c, x_u, H_u) after the last size fitted
    probe: bool = False           # test that the loss depends on F (first task of a model)
    user: UserLoss | None = None  # a loss with its own scalars, embeddings or a framework
    control: ScaledClip | None = None


def _run_chain(task: _Chain):
    fam = LinearEncoders(task.model, task.similarity)
    U, V = nested_sample(task.model, (task.seed, task.k, task.r), task.sizes[-1])
    if task.user is not None:
        return paired_user_fits(fam, U, V, task.sizes, task.x_star, task.user, task.control,
                                rng=np.random.default_rng([task.seed, task.k, task.r, 7]),
                                state=task.state, probe=task.probe, perturbation=START_PERTURBATION)
    return paired_fits(fam, U, V, task.sizes, task.x_star, loss_on_logits(task.loss), task.grad,
                       rng=np.random.default_rng([task.seed, task.k, task.r, 7]),
                       state=task.state, probe=task.probe, perturbation=START_PERTURBATION)


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
    differences : ndarray, shape (replicates, len(sizes), d)
        Paired differences :math:`D_r(N)` of the variant's and the control's statistics.
    user_errors, control_errors : ndarray, shape (len(sizes), replicates)
        :math:`\|\text{stat}(\hat\theta_u) - T\|` and the control's error to its own limit.
    angles_user, angles_control : ndarray, shape (len(sizes), replicates)
        Largest principal angle (radians) between the fitted whitened
        :math:`u`-encoder subspace and the top canonical subspace.
    target_norm : float
        :math:`\|T\|`, the scale of the relative margin.
    margin : float
        The absolute margin the verdict speaks of.
    control_gap : float
        Distance of CLIP's own population statistic from the claim's target.
    estimate : DeltaEstimate
        :math:`\hat\delta` with its bounds.
    verdict : {"confirmed", "refuted", "inconclusive"}
    drifting : bool
        The statistic still moves with N by more than the margin (no N-independent limit).
    n_to_decide : int or None
        Largest batch size that would likely decide an inconclusive verdict.
    set_aside : int
        Replicates left out because the variant's fit found no stationary point
        on one of their batches (its finite-batch loss may be unbounded below
        there): such a fit is not a sample of the variant's minimiser.
    flat : FlatDirections
        Flat directions of the variant's batch loss at its first fit
        (:mod:`proofs_checks.flat`); the differences are compared modulo the
        span of those that move the statistic.
    """

    label: str
    n_u: int
    n_v: int
    n_e: int
    sigma: list
    sizes: list
    differences: np.ndarray
    user_errors: np.ndarray
    control_errors: np.ndarray
    angles_user: np.ndarray
    angles_control: np.ndarray
    target_norm: float
    margin: float
    control_gap: float
    estimate: DeltaEstimate
    verdict: str
    drifting: bool
    n_to_decide: int | None
    set_aside: int = 0
    flat: FlatDirections = field(default_factory=FlatDirections)

    @property
    def passed(self) -> bool:
        """True iff the verdict is ``"confirmed"``."""
        return self.verdict == "confirmed"

    @property
    def user_error(self) -> np.ndarray:
        """RMS over replicates of the variant's error to the target at each size."""
        return np.sqrt(np.mean(self.user_errors**2, axis=1))

    @property
    def control_error(self) -> np.ndarray:
        """RMS over replicates of the control's error to its population limit at each size."""
        return np.sqrt(np.mean(self.control_errors**2, axis=1))

    @property
    def paired_spread(self) -> np.ndarray:
        """RMS over replicates of :math:`\\|D_r(N) - \\bar D(N)\\|` at each size."""
        D = self.differences
        return np.sqrt(np.mean(np.sum((D - D.mean(axis=0)) ** 2, axis=2), axis=0))

    def to_dict(self) -> dict:
        e = self.estimate
        rel = 1.0 / self.target_norm if self.target_norm > 0 else math.nan
        return {
            "label": self.label, "n_u": self.n_u, "n_v": self.n_v, "n_e": self.n_e,
            "sigma": [float(s) for s in self.sigma], "sizes": list(self.sizes),
            "replicates": int(self.differences.shape[0]),
            "verdict": self.verdict, "passed": self.passed, "drifting": self.drifting,
            "margin": self.margin, "relative_margin": self.margin * rel,
            "delta": e.delta, "delta_ci": [e.lower, e.upper],
            "relative_delta": e.delta * rel, "relative_delta_ci": [e.lower * rel, e.upper * rel],
            "drift_at_n_max": e.drift, "n_to_decide": self.n_to_decide,
            "replicates_set_aside": self.set_aside,
            "flat_directions": {"count": self.flat.count, "names": list(self.flat.names),
                                "moving_the_statistic": list(self.flat.moving)},
            "target_norm": self.target_norm, "control_gap": self.control_gap,
            "user_error": self.user_error.tolist(), "control_error": self.control_error.tolist(),
            "paired_spread": self.paired_spread.tolist(),
            "max_angle_user": self.angles_user.max(axis=1).tolist(),
            "max_angle_control": self.angles_control.max(axis=1).tolist(),
        }


@dataclass
class VariantVerification:
    """Result of :func:`verify_variant`.

    ``verdict`` is ``"confirmed"``, ``"refuted"`` or ``"inconclusive"``;
    ``passed`` (also ``bool(result)``) means confirmed; ``exit_code`` is the
    CLI's (0, 1, 3).  ``summary()`` (also ``str(result)``) is a readable
    report, ``to_dict()`` the JSON document, ``figures()`` one matplotlib
    figure per model and ``write_report(dir)`` a folder with ``report.md``,
    ``result.json`` and PNG figures.
    """

    claim: str
    similarity: str
    direction: str
    seed: int
    loss_name: str
    gradient: str
    margin: str
    budget: float
    models: list
    seconds: float = 0.0
    rounds: int = 1
    notes: list = field(default_factory=list)
    interface: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return combine(m.verdict for m in self.models)

    @property
    def passed(self) -> bool:
        return len(self.models) > 0 and self.verdict == "confirmed"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def __bool__(self) -> bool:
        return self.passed

    def summary(self) -> str:
        return report.variant_summary(self)

    __str__ = summary

    def to_dict(self) -> dict:
        return {
            "claim": self.claim, "similarity": self.similarity, "direction": self.direction,
            "seed": self.seed, "loss": self.loss_name, "gradient": self.gradient,
            "margin": self.margin, "budget": self.budget, "rounds": self.rounds,
            "verdict": self.verdict, "passed": self.passed,
            "models": [m.to_dict() for m in self.models], "notes": list(self.notes),
            **self.interface,
        }

    def figures(self) -> list:
        return report.variant_figures(self)

    def write_report(self, directory):
        return report.write_variant_report(self, directory)


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


def _as_margin(margin):
    if margin is None:
        return None
    if isinstance(margin, bool) or not isinstance(margin, (int, float, np.integer, np.floating)) \
            or not math.isfinite(margin) or margin <= 0:
        raise fail("margin", margin, "an absolute margin > 0 (whitened Frobenius norm), or None "
                                     f"for {DEFAULT_RELATIVE_MARGIN:.0%} of the target's norm")
    return float(margin)


def _round_cost(run, reps, new_sizes, finite_differences) -> float:
    """Nominal seconds of an adaptive round for one model (:data:`NOMINAL_RATE`, or
    :data:`AUTOGRAD_RATE` for a torch or JAX loss)."""
    sizes = sorted(set(run.sizes) | set(new_sizes)) if not new_sizes else list(new_sizes)
    per_fit = 1.0 + (2 * run.fam.size if finite_differences else 1.0)  # control + variant
    rate = NOMINAL_RATE if run.user is None or run.user.backend == "numpy" else AUTOGRAD_RATE
    return len(reps) * sum(N * N for N in sizes) * per_fit / rate


def _margin_text(claim, margin) -> str:
    if claim == "same-subspace-as-clip":
        return f"principal angles <= {DEFAULT_SUBSPACE_MARGIN if margin is None else margin:g} rad"
    return f"{margin:g} (absolute)" if margin is not None else \
        f"{DEFAULT_RELATIVE_MARGIN:.0%} of the target's norm"


class _ModelRun:
    """Everything the verifier knows about one model while its rounds run."""

    def __init__(self, k, model, similarity, claim, direction, margin, seed, rng, user=None, control=None):
        self.k, self.model = k, model
        self.fam = LinearEncoders(model, similarity)
        self.claim, self.direction = claim, direction
        self.user, self.control = user, control
        self.ng = self.fam.size
        self.x_star = population_minimizer(self.fam, rng)
        self.x_start = self.x_star if control is None else np.concatenate([self.x_star, control.theta0])
        self.probes = Probes(model, np.random.default_rng([seed, k, 15485863])) \
            if similarity == "cosine" else None
        self.flat = FlatDirections()
        # Under cosine there is no closed form for CLIP's minimiser: same-minimizers compares
        # with the control's fits (target estimated from them), matches-* with the true
        # conditionals directly (the "control statistic" is the target itself).
        self.pair_with_target = similarity == "cosine" and claim.startswith("matches")
        if similarity == "cosine" and claim == "same-minimizers-as-clip":
            self.T_c = self.T = None
        elif self.pair_with_target:
            self.T_c = self.T = cosine_target(self.fam, claim, direction, self.probes)
        else:
            self.T_c = self._stat(self.x_star, 1.0)
            self.T = _target(self.fam, claim, direction, self.T_c)
        self.gap = None if self.T is None else self.T_c - self.T
        self.target_norm = math.nan if self.T is None else float(np.linalg.norm(self.T))
        self.margin_arg = margin
        if claim == "same-subspace-as-clip":
            self.margin = subspace_margin(DEFAULT_SUBSPACE_MARGIN if margin is None else margin)
        else:
            self.margin = margin if margin is not None else DEFAULT_RELATIVE_MARGIN * self.target_norm
        self.Uk = gaussian.canonical_directions(model.cov, model.n_u)[0][:, : model.n_e]
        self.sizes = []
        self.chains = {}    # replicate -> {N: record}
        self.states = {}    # replicate -> chain state
        self.verdict = None
        self.looks = 0      # tests made so far (verdict.look_level spends the error over them)

    def _stat(self, x, multiplier):
        """The claim's statistic of a fit ``x`` whose loss multiplies the similarity by ``multiplier``."""
        if self.probes is not None:
            return cosine_statistic(self.fam, x, multiplier, self.claim, self.direction, self.probes)
        return _statistic(self.fam, effective_parameters(self.fam, x, multiplier), self.claim, self.direction)

    def stat_u(self, x):
        return self._stat(x, 1.0 if self.user is None else self.user.multiplier(x[self.ng:]))

    def stat_c(self, x):
        if self.pair_with_target:
            return self.T
        return self._stat(x, 1.0 if self.control is None else self.control.multiplier(x[self.ng:]))

    def find_flat(self, seed, similarity):
        """Flat directions of the variant's loss at its first fit of replicate 0."""
        if self.user is None or 0 not in self.chains:
            return
        N = min(self.chains[0])
        U, V = nested_sample(self.model, (seed, self.k, 0), N)
        fun = user_batch_objective(self.fam, U, V, self.user)
        self.flat = flat_directions(fun, self.chains[0][N]["x_u"], self.stat_u, similarity,
                                    lambda x: self.fam.split(x[: self.ng]), self.user.size,
                                    self.user.learned)

    def add(self, r, records, state):
        self.chains.setdefault(r, {}).update({rec["N"]: rec for rec in records})
        self.states[r] = state

    def result(self, look=1) -> ModelVerdict:
        every = sorted(self.chains)
        sizes = sorted(set.intersection(*(set(self.chains[r]) for r in every)))
        # A fit that found no stationary point is not a sample of the minimiser:
        # its replicate is set aside, and too many of them make the model undecidable.
        reps = [r for r in every if all(self.chains[r][N]["converged"] for N in sizes)]
        set_aside = len(every) - len(reps)
        usable = len(reps) >= max(2, (len(every) + 1) // 2)
        if not usable:
            reps = every
        SU = np.array([[self.stat_u(self.chains[r][N]["x_u"]) for N in sizes] for r in reps])
        SC = np.array([[self.stat_c(self.chains[r][N]["x_c"]) for N in sizes] for r in reps])
        T, T_c, gap = self.T, self.T_c, self.gap
        if T is None:  # estimated: the control's mean statistic at the largest batch
            T = T_c = SC[:, -1].mean(axis=0)
            gap = np.zeros_like(T)
            self.target_norm = float(np.linalg.norm(T))
            if self.margin_arg is None:
                self.margin = DEFAULT_RELATIVE_MARGIN * self.target_norm
        D = project_out(SU - SC, self.flat.tangents)
        gap = project_out(gap, self.flat.tangents)
        eu, ec, au, ac = [], [], [], []
        for i, r in enumerate(reps):
            recs = [self.chains[r][N] for N in sizes]
            eu.append([float(np.linalg.norm(a - T)) for a in SU[i]])
            ec.append([float(np.linalg.norm(b - T_c)) for b in SC[i]])
            au.append([float(np.max(subspace_angles(self.fam.u_subspace(rec["x_u"]), self.Uk)))
                       for rec in recs])
            ac.append([float(np.max(subspace_angles(self.fam.u_subspace(rec["x_c"]), self.Uk)))
                       for rec in recs])
        est = estimate_delta(sizes, D, gap, SU, look=look)
        verdict, drifting, n_next = decide(est, self.margin)
        if not usable:
            verdict, n_next = "inconclusive", None
        m = self.model
        return ModelVerdict(m.label, m.n_u, m.n_v, m.n_e, m.sigma.tolist(), sizes, D,
                            np.array(eu).T, np.array(ec).T, np.array(au).T, np.array(ac).T,
                            self.target_norm, self.margin, float(np.linalg.norm(gap)), est,
                            verdict, drifting, n_next, set_aside, self.flat)


def verify_variant(loss: Callable[[np.ndarray], float], *, claim: str, inputs: str = "logits",
                   params: dict | None = None, learn=None, similarity: str = "dot",
                   backend: str = "auto", control_scale: float | None = None,
                   seed: int = 0, grad: Callable | None = None, models: list | None = None,
                   n_models: int = 3, sizes=None, replicates: int = DEFAULT_REPLICATES,
                   margin: float | None = None, budget: float = DEFAULT_BUDGET,
                   direction: str = "both", name: str | None = None, workers: int = 1,
                   scheduler: str | None = None,
                   progress: Callable[[str], None] | None = None) -> VariantVerification:
    r"""Verify ``claim`` for the contrastive loss ``loss`` on Gaussian models.

    Parameters
    ----------
    loss : callable or torch.nn.Module
        ``loss(F, **params) -> float`` of the ``N x N`` logit matrix ``F``
        (``F[i, j] = f(u_i, v_j)``, positives on the diagonal), or with
        ``inputs="embeddings"`` ``loss(za, zb, **params)`` of the ``N x n_e``
        encoder outputs.  NumPy, PyTorch or JAX (``backend``).
    claim : {"same-minimizers-as-clip", "same-subspace-as-clip", "matches-conditional-means", "matches-conditionals"}
    inputs : {"logits", "embeddings"}
        What the loss takes (:mod:`numerics.user_loss`).
    params : dict, optional
        Initial values of the loss's own scalars, passed by keyword
        (``{"logit_scale": 10.0, "logit_bias": -2.0}``).
    learn : list of str, optional
        The names in ``params`` minimised jointly with the encoders (default:
        all of them); the rest stay fixed.  A ``torch.nn.Module``'s own
        parameters are always learned.
    similarity : {"dot", "l2", "cosine"}
        The logit family the encoders feed (``"bilinear"`` is a synonym of
        ``"dot"``).  Under ``"cosine"`` the encoder outputs are normalised and
        the control, CLIP, learns its logit scale (see ``control_scale``).
    backend : {"auto", "numpy", "torch", "jax"}
        Where the loss is evaluated and differentiated (float64 autograd for
        torch and jax, which are optional extras); ``"auto"`` picks torch for a
        ``torch.nn.Module`` or a loss returning a torch tensor, jax likewise.
    control_scale : float, optional
        Under cosine similarity, fix the control's logit scale at this value
        instead of learning it.
    seed : int
        Seeds the models and the samples and nothing else: a call is
        deterministic, whatever ``workers`` or ``scheduler``.
    grad : callable, optional
        ``grad(F) -> dL/dF`` (``N x N``); defaults to ``loss.grad`` if the loss
        has one, else finite differences in the encoder parameters.
    models : list of GaussianModel, optional
        Defaults to :func:`default_variant_models` ``(seed, n_models)``.
    sizes : sequence of int, optional
        Batch sizes of the first round (increasing, at least two); defaults to
        :data:`DEFAULT_SIZES` for the similarity.
    replicates : int
        Independent samples per model in the first round (>= 2).
    margin : float, optional
        Absolute margin on the whitened Frobenius distance; default 5 % of
        the norm of the claim's target, model by model.  For
        ``same-subspace-as-clip``, the largest principal angle in radians
        (default :data:`proofs_checks.claims.DEFAULT_SUBSPACE_MARGIN`).
    budget : float
        Seconds the adaptive rounds may take after the first round (0: none).
    direction : {"both", "v|u", "u|v"}
        Which conditionals the ``matches-*`` claims concern: rows of ``F``
        normalise over :math:`v` (the :math:`v|u` conditional), columns over
        :math:`u`.  A one-directional row-wise InfoNCE targets ``"v|u"``.
    name : str, optional
        Name used in the report (defaults to the loss's ``__name__``).
    workers, scheduler
        Run the (model, replicate) fits on a Dask cluster
        (:mod:`proofs_checks.parallel`); the result is the same.
    progress : callable, optional
        Called with one line of text per round and model.

    Returns
    -------
    VariantVerification

    Raises
    ------
    numerics.InvalidInputError
        Unknown ``claim``, ``similarity`` or ``direction``; counts, sizes,
        ``margin`` or ``budget`` out of range; ``models`` not a non-empty list
        of ``GaussianModel``; a ``loss`` that is not callable, raises, returns a
        non-number or a non-finite value; a ``loss`` that does not depend on
        ``F`` (a constant loss is rejected, not refuted: no claim about its
        minimisers can be tested); a ``grad`` returning a non-finite array or
        the wrong shape.
    """
    claim = as_choice(claim, CLAIMS, "claim")
    similarity = infonce.as_similarity(similarity, choices=SIMILARITIES)
    inputs = as_choice(inputs, INPUTS, "inputs")
    direction = as_choice(direction, DIRECTIONS, "direction")
    if not callable(loss):
        raise fail("loss", loss, "a callable loss(F) -> float")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise fail("seed", seed, "an integer")
    seed = int(seed)
    sizes = _as_sizes(DEFAULT_SIZES[similarity] if sizes is None else sizes)
    replicates = as_count(replicates, "replicates", 2)
    margin = _as_margin(margin)
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)) \
            or not math.isfinite(budget) or budget < 0:
        raise fail("budget", budget, "a number of seconds >= 0")
    if name is not None and not isinstance(name, str):
        raise fail("name", name, "a string, or None")
    label = name or getattr(loss, "__name__", type(loss).__name__)
    user = UserLoss(loss, inputs=inputs, params=params, learn=learn, backend=backend, grad=grad, name=label)
    control = None
    if user.backend == "numpy" and inputs == "logits" and not user.params and similarity != "cosine":
        user, grad = None, user.grad   # a numpy function of F alone: the direct path
    else:
        grad = None
        user.detect_roles(similarity, np.random.default_rng([seed, 31337]))
        if similarity == "cosine":
            if control_scale is not None and (isinstance(control_scale, bool) or not isinstance(
                    control_scale, (int, float)) or not math.isfinite(control_scale) or control_scale <= 0):
                raise fail("control_scale", control_scale, "a logit scale > 0, or None to learn it")
            control = ScaledClip(2.0 if control_scale is None else control_scale,
                                 learn=control_scale is None)
    if grad is not None and not callable(grad):
        raise fail("grad", grad, "a callable grad(F) -> dL/dF, or None")
    n_models = as_count(n_models, "n_models", 1)
    if models is None:
        models = default_variant_models(seed, n_models, similarity)
    if not isinstance(models, (list, tuple)) or len(models) < 1:
        raise fail("models", models, "a non-empty list of numerics.models.GaussianModel, or None")
    for k, m in enumerate(models):
        if not isinstance(m, GaussianModel):
            raise fail(f"models[{k}]", m, "a numerics.models.GaussianModel")
    if progress is not None and not callable(progress):
        raise fail("progress", progress, "a callable taking one line of text, or None")
    say = progress if progress is not None else (lambda line: None)

    t0 = time.perf_counter()
    notes = []
    if claim == "matches-conditionals" and similarity == "dot":
        notes.append("the bilinear model's conditional covariances are C_vv, C_uu whatever the "
                     "encoders (MATH.md 4.1): this claim can only hold when K = 0")
    if user is not None:
        roles = ", ".join(f"{k}: {v}" for k, v in user.roles.items()) or "none found"
        notes.append(f"loss of {inputs}, backend {user.backend}; learned: "
                     f"{', '.join(user.learned) or 'nothing'}; roles of its scalars ({roles})")
    runs = [_ModelRun(k, m, similarity, claim, direction, margin, seed,
                      np.random.default_rng([seed, k, 104729]), user, control)
            for k, m in enumerate(models)]
    plan = {run.k: (list(range(replicates)), list(sizes)) for run in runs}
    rounds, used = 0, 0.0
    with executor(workers, scheduler) as ex:
        while plan:
            rounds += 1
            tasks = []
            for run in runs:
                if run.k not in plan:
                    continue
                reps, new_sizes = plan[run.k]
                for r in reps:
                    state = run.states.get(r)
                    todo = [N for N in (run.sizes if state is None else []) + new_sizes
                            if N not in run.chains.get(r, {})]
                    tasks.append(_Chain(run.model, similarity, seed, run.k, r, sorted(set(todo)),
                                        loss if user is None else None, grad, run.x_start, state,
                                        probe=(rounds == 1 and r == 0), user=user, control=control))
                run.sizes = sorted(set(run.sizes) | set(new_sizes))
            for task, (records, state) in zip(tasks, ex.map(_run_chain, tasks)):
                runs[task.k].add(task.r, records, state)
                for rec in records:
                    if not rec["converged"]:
                        notes.append(f"{task.model.label}, replicate {task.r}, N={rec['N']}: the "
                                     "variant's fit did not reach a stationary point (moved "
                                     f"{rec['moved']:.3g} from its start)")
            tested, plan = set(plan), {}
            for run in runs:
                if run.k not in tested:
                    continue  # decided earlier, no new data: its verdict stands
                if rounds == 1:
                    run.find_flat(seed, similarity)
                run.looks += 1
                run.verdict = run.result(run.looks)
                v = run.verdict
                say(f"round {rounds}, model {run.k + 1}/{len(runs)} ({run.model.label}): "
                    f"{v.verdict}, delta = {v.estimate.delta:.3g} "
                    f"[{v.estimate.lower:.3g}, {v.estimate.upper:.3g}], margin {v.margin:.3g}, "
                    f"N <= {v.sizes[-1]}, {v.differences.shape[0]} replicates, "
                    f"{time.perf_counter() - t0:.1f} s")
                if v.verdict != "inconclusive":
                    continue  # a drifting model is never confirmed, but more data may refute it
                R = len(run.chains)  # set-aside replicates count: their indices are taken
                if R < MAX_REPLICATES:
                    plan[run.k] = (list(range(R, min(2 * R, MAX_REPLICATES))), [])
                elif 2 * v.sizes[-1] <= MAX_SIZE:
                    plan[run.k] = (list(range(R)), [2 * v.sizes[-1]])
            if plan:
                cost = sum(_round_cost(runs[k], reps, new, (grad is None) if user is None else not user.has_gradient()) for k, (reps, new) in plan.items())
                if used + cost > budget:
                    notes.append(f"stopped after round {rounds}: the next round (about {cost:.0f} s "
                                 f"nominal) would overrun the budget of {budget:g} s")
                    plan = {}
                else:
                    used += cost
    verdicts = [run.verdict for run in runs]
    if claim == "same-subspace-as-clip":
        full = [m.label for m in models if m.n_e >= min(m.n_u, m.n_v)]
        if full:
            notes.append(f"{', '.join(full)}: n_e = min(n_u, n_v), so the subspace is the whole space "
                         "and the claim holds trivially there; only models with n_e < n test it")
    for v in verdicts:
        if v.flat.count:
            notes.append(f"{v.label}: {v.flat.count} flat direction(s) of the variant's loss at its fit: "
                         + "; ".join(v.flat.names) + (
                             "; they leave the statistic unchanged" if not v.flat.moving else
                             f"; {v.flat.moving[0]} move the statistic: compared modulo them"))
        if v.set_aside:
            total = v.differences.shape[0] + (0 if 2 * v.set_aside > v.differences.shape[0] else v.set_aside)
            notes.append(f"{v.label}: {v.set_aside} of {total} replicates set aside: the variant's fit "
                         "found no stationary point on one of their batches (its finite-batch loss "
                         "may be unbounded below there)"
                         + ("; too many to decide" if 2 * v.set_aside > v.differences.shape[0] else ""))
        if v.drifting:
            notes.append(f"{v.label}: no N-independent limit: the variant's statistic still moves by "
                         f"{v.estimate.drift:.3g} ({v.estimate.drift_ratio:.0%} of its size, margin "
                         f"{v.margin:.3g}) at N = {v.sizes[-1]}, like 1/N; it is never confirmed")
    gradient = "finite differences" if (grad is None if user is None else not user.has_gradient()) else \
        ("user" if user is None or user.backend == "numpy" else f"{user.backend} autograd")
    interface = {"inputs": inputs, "backend": "numpy" if user is None else user.backend,
                 "params": {} if user is None else dict(user.params),
                 "learned": [] if user is None else list(user.learned),
                 "roles": {} if user is None else dict(user.roles)}
    return VariantVerification(claim, similarity, direction, seed, label, gradient,
                               _margin_text(claim, margin),
                               float(budget), verdicts, time.perf_counter() - t0, rounds, notes, interface)
