r"""The result objects of :func:`proofs_checks.verify_variant`: one :class:`ModelVerdict`
per Gaussian model and the :class:`VariantVerification` that combines them (the
summary, the JSON document, figures and a report folder; :mod:`proofs_checks.report`
renders them)."""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field

import numpy as np

from numerics.flat import FlatDirections

from . import report
from .verdict import DeltaEstimate, RankEstimate, combine, paired_spread, slow_spread, spread_exponent

__all__ = ["EXIT_CODES", "REASONS", "ModelVerdict", "VariantVerification"]

#: Options of ``verify`` that describe the loss (the ``fingerprint`` command takes them too);
#: the others belong to the claim or the run, and a fingerprint drops them.
_LOSS_OPTIONS = ("--inputs", "--param", "--learn", "--similarity", "--backend", "--grad", "--seed", "--quiet")

#: Process exit code of each verdict (``python -m proofs_checks verify``).  Exit 1 means
#: REFUTED and nothing else: usage, loading and infrastructure errors exit 2.
EXIT_CODES = {"confirmed": 0, "refuted": 1, "inconclusive": 3}
#: Why a verdict is inconclusive (``VariantVerification.reason``; None for a decided verdict).
REASONS = {
    "ill-posed": "the loss has an invariance that moves the claim's statistic (for example it "
                 "normalises its inputs): its minimisers form a set on which the claim has no "
                 "single answer; no fits were run",
    "no-stationary-point": "too many of the variant's fits found no stationary point",
    "drifting": "the variant's statistic still moves with N beyond the margin: no N-independent limit",
    "budget": "the next adaptive round would overrun the time budget",
    "schedule-exhausted": "the largest batch and the most replicates the schedule allows did not decide",
    "unidentified-scale": "a flat direction of the variant's loss moves the claim's statistic and no "
                          "scalar role explains it: compared to first order only, a difference is "
                          "never refuted on it",
}


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
    usable : bool
        Whether enough replicates were kept to decide (at least two, and at least half):
        when not, ``differences`` holds every replicate and the verdict is inconclusive.
    scale_factor : float or None
        For a loss whose logit multiplier is known up to a constant (a reparametrised
        scale), the constant fitted to compare on the quotient
        (:func:`numerics.fit_statistics.common_factor`); None otherwise.
    unidentified : bool
        A flat direction still moves the statistic (no scalar role explains it): the
        verdict is never REFUTED then.
    rank : RankEstimate or None
        For ``same-subspace-as-clip`` with :math:`n_e \ge 2`: how many canonical pairs the
        variant's minimiser keeps (:func:`proofs_checks.verdict.estimate_rank`); a confident
        collapse refutes the claim, and where :math:`n_e = \min(n_u, n_v)` only a confident
        full rank confirms it.
    split_fits : bool
        For ``same-subspace-as-clip``: at the largest batch some of the variant's fits lie in
        CLIP's subspace (:data:`proofs_checks.claims.IN_SUBSPACE`) and some lie more than half
        the margin from it.  The batch's
        mirror image holds a fit at a point of the subspace that the sample stabilises, so
        such a model is never confirmed.
    flat : FlatDirections
        Flat directions of the variant's batch loss at its first fit
        (:mod:`numerics.flat`); the differences are compared modulo the
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
    usable: bool = True
    scale_factor: float | None = None
    unidentified: bool = False
    rank: RankEstimate | None = None
    split_fits: bool = False

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
        return paired_spread(self.differences)

    @property
    def spread_exponent(self) -> float:
        r""":math:`p` in paired spread :math:`\propto N^{-p}` over the sizes
        (:func:`proofs_checks.verdict.spread_exponent`; 1/2 for fits at the usual rate)."""
        return spread_exponent(self.sizes, self.differences)

    @property
    def slow_spread(self) -> bool:
        """The paired spread shrinks clearly more slowly than :math:`N^{-1/2}`
        (:data:`proofs_checks.verdict.SLOW_SPREAD`, over enough replicates to tell)."""
        return slow_spread(self.sizes, self.differences)

    def to_dict(self) -> dict:
        e = self.estimate
        rel = 1.0 / self.target_norm if self.target_norm > 0 else math.nan
        p = self.spread_exponent
        return {
            "label": self.label, "n_u": self.n_u, "n_v": self.n_v, "n_e": self.n_e,
            "sigma": [float(s) for s in self.sigma], "sizes": list(self.sizes),
            "replicates": int(self.differences.shape[0]),
            "verdict": self.verdict, "passed": self.passed, "drifting": self.drifting,
            "margin": self.margin, "relative_margin": self.margin * rel,
            "delta": e.delta, "delta_ci": [e.lower, e.upper],
            "relative_delta": e.delta * rel, "relative_delta_ci": [e.lower * rel, e.upper * rel],
            "drift_at_n_max": e.drift, "n_to_decide": self.n_to_decide,
            "replicates_set_aside": self.set_aside, "fits_usable": self.usable,
            "scale_factor": self.scale_factor, "unidentified_flat": self.unidentified,
            "rank": None if self.rank is None else self.rank.to_dict(), "split_fits": self.split_fits,
            "flat_directions": {"count": self.flat.count, "names": list(self.flat.names),
                                "moving_the_statistic": list(self.flat.moving)},
            "target_norm": self.target_norm, "control_gap": self.control_gap,
            "user_error": self.user_error.tolist(), "control_error": self.control_error.tolist(),
            "paired_spread": self.paired_spread.tolist(),
            "spread_exponent": p if math.isfinite(p) else None,
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
    ``result.json`` and PNG figures.  ``reason`` (also ``to_dict()["reason"]``) is
    None for a decided verdict, else why it is inconclusive (:data:`REASONS`);
    ``advice`` says what to run instead, when something can be said.  ``objective``
    (also ``to_dict()["objective"]``) is what the variant's fits solved: ``"value"``
    (minimisers of the loss's value) or ``"training-field"`` (stable zeros of the field
    its backend's gradient defines, for a loss with stop-gradients).
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
    stopped_by_budget: bool = False
    advice: str | None = None
    objective: str = "value"
    command: list | None = None   # the CLI's arguments after "verify" (target first), when the CLI made it

    @property
    def fingerprint_hint(self) -> str | None:
        """The call that shows what a refuted loss learns instead (its spectral fingerprint,
        :func:`proofs_checks.fingerprint`): the CLI line when the CLI made this result (with
        the loss's options, without the claim's), else the Python call; None under cosine
        similarity, which has no canonical map."""
        if self.similarity == "cosine":
            return None
        if self.command is not None:
            args, keep = list(self.command[:1]), True
            for a in self.command[1:]:
                if a.startswith("--"):
                    keep = a.split("=", 1)[0] in _LOSS_OPTIONS
                if keep:
                    args.append(a)
            return shlex.join(["python", "-m", "proofs_checks", "fingerprint"] + args)
        i = self.interface
        opts = [f"inputs={i['inputs']!r}"] if i.get("inputs", "logits") != "logits" else []
        if i.get("params"):
            opts.append(f"params={i['params']!r}")
        opts += [f"similarity={self.similarity!r}", f"seed={self.seed}"]
        return f"proofs_checks.fingerprint({self.loss_name}, {', '.join(opts)})"

    @property
    def verdict(self) -> str:
        return combine(m.verdict for m in self.models)

    @property
    def reason(self) -> str | None:
        """None for a decided verdict; else why it is inconclusive, one of :data:`REASONS`."""
        if self.verdict != "inconclusive":
            return None
        if self.advice is not None and not self.models:
            return "ill-posed"
        open_ = [m for m in self.models if m.verdict == "inconclusive"]
        if any(not m.usable for m in open_):
            return "no-stationary-point"
        if any(m.unidentified and m.estimate.lower > 0 for m in open_):  # a refutation withheld
            return "unidentified-scale"
        if any(m.drifting for m in open_):
            return "drifting"
        return "budget" if self.stopped_by_budget else "schedule-exhausted"

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
            "verdict": self.verdict, "passed": self.passed, "reason": self.reason, "advice": self.advice,
            "objective": self.objective,
            "models": [m.to_dict() for m in self.models], "notes": list(self.notes),
            **self.interface,
        }

    def figures(self) -> list:
        return report.variant_figures(self)

    def write_report(self, directory):
        return report.write_variant_report(self, directory)
