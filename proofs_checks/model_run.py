r"""What the verifier knows about one Gaussian model while its rounds run: the
control's target, the paired fits of every replicate, and the estimate and verdict
made from their statistics (:mod:`proofs_checks.verdict`).

The fits are :class:`numerics.batch_fit.PairedFit` records of
:func:`numerics.batch_fit.paired_fits`, run as independent :class:`ChainTask` s
(serially or on a Dask cluster, :mod:`proofs_checks.parallel`); the statistics are
:mod:`proofs_checks.claims`' (computed by :mod:`numerics.fit_statistics`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import subspace_angles

from numerics import gaussian
from numerics.batch_fit import ChainState, batch_objective, paired_fits, symmetrised
from numerics.encoders import LinearEncoders, nested_sample, population_minimizer, subspace_flip
from numerics.fit_statistics import Probes, common_factor, effective_parameters, feature_quotient, rank_profile
from numerics.flat import FlatDirections, flat_directions, project_out
from numerics.models import GaussianModel

from .claims import DEFAULT_SUBSPACE_MARGIN, IN_SUBSPACE, cosine_statistic, cosine_target, statistic, subspace_margin, target
from .verdict import (DEFAULT_RELATIVE_MARGIN, decide, estimate_delta, estimate_rank, slow_spread,
                      slowed_n_to_decide, spread_exponent)
from .verify_result import ModelVerdict

__all__ = ["ChainTask", "run_chain", "ModelRun"]


@dataclass
class ChainTask:
    """Fit the control and the variant at ``sizes`` on replicate ``r`` of model ``k``."""

    model: GaussianModel
    similarity: str
    seed: int
    k: int
    r: int
    sizes: list
    x_start: np.ndarray
    loss: object          # numerics.user_loss.UserLoss
    control: object       # numerics.user_loss.ClipControl
    state: ChainState | None = None
    probe: bool = False   # test that the loss depends on its inputs (first task of a model)
    objective: str = "value"  # or "training-field" (numerics.batch_fit.OBJECTIVES)
    flip: tuple | None = None  # a model symmetry: fit each batch with its image (numerics.batch_fit.symmetrised)


def run_chain(task: ChainTask):
    """``(records, state)`` of :func:`numerics.batch_fit.paired_fits` for one task."""
    fam = LinearEncoders(task.model, task.similarity)
    U, V = nested_sample(task.model, (task.seed, task.k, task.r), task.sizes[-1])
    return paired_fits(fam, U, V, task.sizes, task.x_start, task.loss, task.control,
                       rng=np.random.default_rng([task.seed, task.k, task.r, 7]),
                       state=task.state, probe=task.probe, objective=task.objective, flip=task.flip)


class ModelRun:
    """Everything the verifier knows about one model while its rounds run."""

    def __init__(self, k, model, similarity, claim, direction, margin, seed, rng, user, control):
        self.k, self.model = k, model
        self.fam = LinearEncoders(model, similarity)
        self.claim, self.direction = claim, direction
        self.user, self.control = user, control
        x_star = population_minimizer(self.fam, rng)
        self.x_start = self.fam.pack(*self.fam.split(x_star), control.theta0)
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
            self.T_c = self._stat(x_star, 1.0)
            self.T = target(self.fam, claim, direction, self.T_c)
        self.gap = None if self.T is None else self.T_c - self.T
        self.target_norm = math.nan if self.T is None else float(np.linalg.norm(self.T))
        self.margin_arg = margin
        if claim == "same-subspace-as-clip":
            self.margin = subspace_margin(DEFAULT_SUBSPACE_MARGIN if margin is None else margin)
        else:
            self.margin = margin if margin is not None else DEFAULT_RELATIVE_MARGIN * self.target_norm
        self.Uk = gaussian.canonical_directions(model.cov, model.n_u)[0][:, : model.n_e]
        # The subspace claim fits every batch together with its mirror image under the reflection
        # of the canonical directions outside CLIP's subspace (a symmetry of the model): a fit
        # that stays in CLIP's subspace then does so exactly, and sampling noise cannot move it
        # out; only an unstable direction of the loss does (numerics.encoders.subspace_flip).
        self.flip = subspace_flip(model) if claim == "same-subspace-as-clip" else None
        self.sizes = []
        self.chains = {}    # replicate -> {N: PairedFit}
        self.states = {}    # replicate -> ChainState
        self.verdict = None
        self.looks = 0      # tests made so far (verdict.look_level spends the error over them)
        # The loss's logit multiplier is known up to a constant factor when a learned scalar
        # is a reparametrised scale: the claim's statistic (unless it is the subspace) is then
        # compared on the quotient by that factor, fitted in result().
        self.quotient = bool(user.unidentified_scale) and claim != "same-subspace-as-clip"
        self.scale_factor = 1.0
        # A loss on batch-standardised features cannot see each feature's scale: under dot its
        # bilinear invariant is compared on the quotient by those scales, fit by fit.
        self.by_feature = (claim == "same-minimizers-as-clip" and similarity == "dot"
                           and user.standardises_features(similarity, np.random.default_rng([seed, k, 27183])))

    def _stat(self, x, multiplier):
        """The claim's statistic of a fit ``x`` whose loss multiplies the similarity by ``multiplier``."""
        if self.probes is not None:
            return cosine_statistic(self.fam, x, multiplier, self.claim, self.direction, self.probes)
        return statistic(self.fam, effective_parameters(self.fam, x, multiplier), self.claim, self.direction)

    def stat_u(self, x):
        return self._stat(x, self.scale_factor * self.user.multiplier(self.fam.unpack(x).theta))

    def stat_c(self, x):
        if self.pair_with_target:
            return self.T
        return self._stat(x, self.control.multiplier(self.fam.unpack(x).theta))

    objective = "value"  # what the variant's fits solve (numerics.batch_fit.OBJECTIVES)
    loss_kinked = False  # a fit of the loss, on any model, went through the nonsmooth phase

    def task(self, similarity, seed, r, sizes, probe) -> ChainTask:
        return ChainTask(self.model, similarity, seed, self.k, r, sizes, self.x_start, self.user,
                         self.control, self.states.get(r), probe, self.objective, self.flip)

    def find_flat(self, seed):
        """Flat directions of the variant's loss at its first fit of replicate 0."""
        if 0 not in self.chains:
            return
        N = min(self.chains[0])
        if self.chains[0][N].kinked or self.objective != "value":
            # At a kink the finite-difference Hessian means nothing, and a training field's
            # Jacobian is no Hessian: no flat directions are taken there (the statistics are
            # free of the family's invariances, and the scalars' roles are folded in).
            return
        U, V = nested_sample(self.model, (seed, self.k, 0), N)
        fun = batch_objective(self.fam, *symmetrised(U, V, self.flip), self.user)
        stat = self.stat_u
        if self.by_feature:  # aligned with the control's fit on the same batch, as in result()
            paired = self.stat_c(self.chains[0][N].x_c)
            stat = lambda x: feature_quotient(self.fam, x, paired)  # noqa: E731
        self.flat = flat_directions(fun, self.chains[0][N].x_u, stat, self.fam, self.user.learned)

    def evaluations(self) -> dict:
        """Mean loss evaluations of this model's paired fits by batch size (the cost model's count)."""
        by_size = {}
        for chain in self.chains.values():
            for N, rec in chain.items():
                by_size.setdefault(N, []).append(rec.evaluations)
        return {N: float(np.mean(v)) for N, v in by_size.items()}

    def add(self, r, records, state):
        self.chains.setdefault(r, {}).update({rec.N: rec for rec in records})
        self.states[r] = state

    def result(self, look=1) -> ModelVerdict:
        every = sorted(self.chains)
        sizes = sorted(set.intersection(*(set(self.chains[r]) for r in every)))
        # A fit that found no stationary point is not a sample of the minimiser:
        # its replicate is set aside, and too many of them make the model undecidable.
        reps = [r for r in every if all(self.chains[r][N].converged for N in sizes)]
        set_aside = len(every) - len(reps)
        usable = len(reps) >= max(2, (len(every) + 1) // 2)
        if not usable:
            reps = every
        SC = np.array([[self.stat_c(self.chains[r][N].x_c) for N in sizes] for r in reps])
        if self.quotient:
            self.scale_factor = self._common_factor([self.chains[r][sizes[-1]].x_u for r in reps], SC[:, -1])
        if self.by_feature:
            SU = np.array([[feature_quotient(self.fam, self.chains[r][N].x_u, SC[i, j]) for j, N in enumerate(sizes)]
                           for i, r in enumerate(reps)])
        else:
            SU = np.array([[self.stat_u(self.chains[r][N].x_u) for N in sizes] for r in reps])
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
            au.append([float(np.max(subspace_angles(self.fam.u_subspace(rec.x_u), self.Uk))) for rec in recs])
            ac.append([float(np.max(subspace_angles(self.fam.u_subspace(rec.x_c), self.Uk))) for rec in recs])
        # A kinked batch loss's minimiser is biased like N^{-1/2} (proofs_checks.verdict.estimate_delta).
        # The kink is the loss's, not the model's: a fit on any model that stalled at one
        # (loss_kinked, set by the verifier) counts, since this model's fits may all have
        # ended on one smooth branch and still be biased by which branch it was.
        kinked = self.loss_kinked or any(self.chains[r][N].kinked for r in reps for N in sizes)
        est = estimate_delta(sizes, D, gap, SU, look=look, rate=0.5 if kinked else 1.0)
        verdict, drifting, n_next = decide(est, self.margin)
        # Heavy-tailed fits (a softmax over the batch that a few pairs dominate) shrink their
        # spread more slowly than N^{-1/2}: the prediction of what would decide follows suit.
        if slow_spread(sizes, D):
            n_next = slowed_n_to_decide(n_next, sizes[-1], spread_exponent(sizes, D))
        if not usable:
            verdict, n_next = "inconclusive", None
        # A flat direction that still moves the statistic after the scalars' roles are folded
        # in is an unidentified scale: D was compared modulo it to first order only, which
        # cannot support a refutation.
        unidentified = bool(self.flat.moving)
        if unidentified and verdict == "refuted":
            verdict, n_next = "inconclusive", None
        rank = None
        if self.claim == "same-subspace-as-clip" and self.model.n_e >= 2:
            # The projectors cannot see a collapse onto fewer pairs (when n_e = min(n_u, n_v)
            # they are the identity whatever the fit): the rank decides that part of the claim.
            rank = estimate_rank(sizes, *[np.array([[rank_profile(self.fam, getattr(self.chains[r][N], x))
                                                      for N in sizes] for r in reps]) for x in ("x_u", "x_c")],
                                 look=look)
            trivial = self.model.n_e >= min(self.model.n_u, self.model.n_v)
            if rank.collapsed and usable:
                verdict, n_next = "refuted", None
            elif verdict == "confirmed" and trivial and not rank.full:
                verdict = "inconclusive"
        # The mirror image holds a fit at a point of CLIP's subspace whenever the sample makes
        # that point stable, also where the loss's own is not: fits split between the subspace
        # and points well outside it (more than half the margin) at the largest batch are no
        # evidence that the subspace holds.
        split = False
        if self.flip is not None and T is not None:
            d = [row[-1] for row in eu]  # each fit's distance from the subspace at the largest batch
            split = min(d) <= IN_SUBSPACE and max(d) > self.margin / 2
            if split and verdict == "confirmed":
                verdict = "inconclusive"
        m = self.model
        return ModelVerdict(m.label, m.n_u, m.n_v, m.n_e, m.sigma.tolist(), sizes, D,
                            np.array(eu).T, np.array(ec).T, np.array(au).T, np.array(ac).T,
                            self.target_norm, self.margin, float(np.linalg.norm(gap)), est,
                            verdict, drifting, n_next, set_aside, self.flat, usable,
                            self.scale_factor if self.quotient else None, unidentified, rank, split)

    def _common_factor(self, xs, targets) -> float:
        """The constant factor of a reparametrised scale that brings the variant's fits ``xs``
        closest to the statistics ``targets`` they are paired with."""
        ms = [self.user.multiplier(self.fam.unpack(x).theta) for x in xs]
        return common_factor(lambda t: np.array([self._stat(x, t * m) for x, m in zip(xs, ms)]), targets)
