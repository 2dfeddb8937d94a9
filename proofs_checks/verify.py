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
(:mod:`numerics.flat`); any that moves the statistic is projected out.

Kinks and stop-gradients.  A fit that stalls at a kink (a clamp, ``max``, a hinge)
continues by gradient sampling to a Clarke stationarity certificate
(:mod:`numerics.nonsmooth`); a replicate is set aside only without one, and the note
says why.  Before the first fit and at it, the loss's gradient is checked against
central differences of its value (:mod:`numerics.gradient_check`): a user ``grad`` that
fails is an error; an autograd gradient that fails (a ``detach()``) defines a training
field, and with ``objective="auto"`` the variant is verified at its stable zero, what
training reaches (``result.objective == "training-field"``).

Under ``similarity="cosine"`` (no closed form) the control is CLIP with a
learned logit scale; ``same-minimizers-as-clip`` compares the effective
:math:`f = m\cos(G_uu, G_vv)` on fixed probe pairs, centred, against the
control's fits (the target is their mean at the largest batch); ``matches-*``
compare the model's conditionals, estimated by self-normalised importance
sampling of a marginal bank (MATH.md §5), with the true Gaussian ones
(:mod:`proofs_checks.claims`, computed by :mod:`numerics.fit_statistics`).

The route of a call
-------------------
One route for every loss: :func:`verify_variant` validates every argument
(:mod:`proofs_checks.verify_args`) before the loss is first called; the loss
becomes a :class:`numerics.user_loss.UserLoss` (a NumPy loss of ``F`` is one
with no scalars; its backend is chosen by :mod:`numerics.loss_backends`) and the
control a :class:`numerics.user_loss.ClipControl`.  Each model is a
:class:`proofs_checks.model_run.ModelRun`; its (model, replicate) chains of
paired fits, :func:`numerics.batch_fit.paired_fits`, run serially or on Dask
(:mod:`proofs_checks.parallel`); the statistics come from
:mod:`numerics.fit_statistics` through :mod:`proofs_checks.claims`, the flat
directions from :mod:`numerics.flat`, the estimate and verdict from
:mod:`proofs_checks.verdict`; :mod:`proofs_checks.schedule` decides what an
undecided model gets next within the budget, and
:mod:`proofs_checks.verify_result` holds what comes back.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from numerics._validation import fail
from numerics.batch_fit import ValueOnly, check_model_gradient
from numerics.encoders import subspace_flip
from numerics.models import GaussianModel, random_gaussian_model
from numerics.user_loss import ClipControl, UserLoss

from .claims import CLAIMS, DIRECTIONS
from .model_run import ModelRun, run_chain
from .parallel import DEFAULT_CONNECT_TIMEOUT, executor
from .schedule import DEFAULT_BUDGET, DEFAULT_REPLICATES, DEFAULT_SIZES, next_data, round_cost
from .verdict import DEFAULT_RELATIVE_MARGIN
from .verify_args import SIMILARITIES, validate
from .verify_result import EXIT_CODES, ModelVerdict, VariantVerification

__all__ = ["CLAIMS", "SIMILARITIES", "DIRECTIONS", "EXIT_CODES", "ModelVerdict",
           "VariantVerification", "verify_variant", "default_variant_models"]


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


def _margin_text(claim, margin) -> str:
    from .claims import DEFAULT_SUBSPACE_MARGIN

    if claim == "same-subspace-as-clip":
        return f"principal angles <= {DEFAULT_SUBSPACE_MARGIN if margin is None else margin:g} rad"
    return f"{margin:g} (absolute)" if margin is not None else \
        f"{DEFAULT_RELATIVE_MARGIN:.0%} of the target's norm"


# --------------------------------------------------------------------------
# the verifier
# --------------------------------------------------------------------------
def verify_variant(loss: Callable[[np.ndarray], float], *, claim: str, inputs: str = "logits",
                   params: dict | None = None, learn=None, similarity: str = "dot",
                   backend: str = "auto", control_scale: float | None = None,
                   seed: int = 0, grad: Callable | None = None, models: list | None = None,
                   n_models: int = 3, sizes=None, replicates: int = DEFAULT_REPLICATES,
                   margin: float | None = None, budget: float = DEFAULT_BUDGET,
                   direction: str = "both", name: str | None = None, workers: int | str = "auto",
                   scheduler: str | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                   progress: Callable[[str], None] | None = None, objective: str = "auto") -> VariantVerification:
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
        Seeds the models and the samples and nothing else (an integer >= 0): a
        call is deterministic, whatever ``workers`` or ``scheduler``.
    grad : callable, optional
        ``grad(F) -> dL/dF`` (``N x N``); defaults to ``loss.grad`` if the loss
        has one, else ``loss.value_and_grad`` (``F -> (value, dL/dF)``, both in one
        pass) if it has that, else finite differences in the encoder parameters.
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
        Where the (model, replicate) fits run (:mod:`proofs_checks.parallel`); the result
        is the same.  ``"auto"`` (default): one forked process per available core on
        Linux (serial for a JAX loss, on one core, or elsewhere); ``1``: serially in
        this process; ``K > 1`` or a ``scheduler`` address: a Dask cluster.
    connect_timeout : float
        Seconds to wait for ``scheduler`` before raising
        :class:`proofs_checks.parallel.ClusterError` (default 10).
    progress : callable, optional
        Called with one line of text per round and model.
    objective : {"auto", "value", "training-field"}
        What the variant's fits solve.  ``"value"``: minimisers of the loss's value (with
        central differences of the value when the backend's gradient is not its gradient);
        ``"training-field"``: stable zeros of the field the backend's gradient defines, what
        training reaches for a loss with stop-gradients (``detach()``);  ``"auto"``: the
        training field iff the gradient check (:mod:`numerics.gradient_check`, at the start
        and at the first fit) finds that an autograd backend's gradient is not the value's.
        ``result.objective`` says which was used.

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
        the wrong shape, or one that disagrees with the loss's value (the
        gradient check).
    """
    a = validate(loss=loss, claim=claim, inputs=inputs, similarity=similarity, backend=backend,
                 direction=direction, seed=seed, sizes=sizes, replicates=replicates, margin=margin,
                 budget=budget, n_models=n_models, models=models, name=name, workers=workers,
                 scheduler=scheduler, connect_timeout=connect_timeout, progress=progress,
                 control_scale=control_scale, grad=grad, objective=objective)
    claim, inputs, similarity, direction = a["claim"], a["inputs"], a["similarity"], a["direction"]
    seed, replicates, margin, budget = a["seed"], a["replicates"], a["margin"], a["budget"]
    sizes = list(DEFAULT_SIZES[similarity]) if a["sizes"] is None else a["sizes"]
    models = a["models"] if a["models"] is not None else default_variant_models(seed, a["n_models"], similarity)
    say = progress if progress is not None else (lambda line: None)
    label = name or getattr(loss, "__name__", type(loss).__name__)
    # Only now is the loss called (to find its backend, then its scalars' roles).
    user = UserLoss(loss, inputs=inputs, params=params, learn=learn, backend=a["backend"], grad=grad, name=label)
    user.detect_roles(similarity, np.random.default_rng([seed, 31337]))
    if similarity == "cosine":  # the encoders cannot carry the scale: CLIP learns it, or it is fixed
        control = ClipControl(2.0 if control_scale is None else control_scale, learn=control_scale is None)
    else:
        control = ClipControl(1.0)
    ill_posed = _ill_posed(user, claim, similarity, seed)
    if ill_posed is not None:  # decided before any fit: no budget is spent on what cannot decide
        return _inconclusive_without_fits(claim, similarity, direction, seed, label, user, margin, budget,
                                          ill_posed)

    t0 = time.perf_counter()
    head = []
    if claim == "matches-conditionals" and similarity == "dot":
        head.append("the bilinear model's conditional covariances are C_vv, C_uu whatever the "
                    "encoders (MATH.md §4.1): this claim can only hold when K = 0")
    if claim == "same-subspace-as-clip" and any(subspace_flip(m) is not None for m in models):
        head.append("each fit takes its batch and the batch's mirror image under the reflection of the "
                    "canonical directions outside CLIP's subspace (a symmetry of the model): in that subspace no "
                    "sample pushes a fit out, only the loss does")
    roles = ", ".join(f"{k}: {v}" for k, v in user.roles.items()) or "none found"
    head.append(f"loss of {inputs}, backend {user.backend}; learned: "
                f"{', '.join(user.learned) or 'nothing'}; roles of its scalars ({roles})")
    asked = a["objective"]
    check = check_model_gradient(user, models[0], similarity, sizes[0], seed, None)
    chosen, head = _chosen_objective(user, asked, check, "at the start", head)
    setting = dict(models=models, similarity=similarity, claim=claim, direction=direction, margin=margin,
                   seed=seed, replicates=replicates, sizes=sizes, budget=budget, say=say, t0=t0)
    with executor(a["workers"], a["scheduler"], a["connect_timeout"]) as ex:  # serial once JAX is loaded
        runs, rounds, stopped, notes, redo = _rounds(ex, user, control, chosen, asked, setting)
        if redo is not None:  # the gradient check failed at the fit: what training reaches instead
            chosen, head = _chosen_objective(user, asked, redo, "at the first fit", head)
            runs, rounds, stopped, notes, _ = _rounds(ex, user, control, chosen, asked, setting)
    verdicts = [run.verdict for run in runs]
    notes = head + notes + _model_notes(claim, models, verdicts, user, runs)
    gradient, interface = _described(_fitted(user, chosen))
    return VariantVerification(claim, similarity, direction, seed, label, gradient,
                               _margin_text(claim, margin),
                               float(budget), verdicts, time.perf_counter() - t0, rounds, notes, interface,
                               stopped_by_budget=stopped,
                               objective="training-field" if chosen == "training-field" else "value")


def _fitted(user, chosen):
    """The loss as the variant's fits see it: a loss fitted by its value whose backend
    gradient is not the value's is differenced (:class:`numerics.batch_fit.ValueOnly`)."""
    return ValueOnly(user) if chosen == "value-differenced" else user


def _chosen_objective(user, asked, check, where, head):
    """``(objective, notes)``: what the fits solve, given the gradient check ``check`` made
    ``where``: "value", "value-differenced" (the value, by central differences, when the
    backend's gradient is not its gradient) or "training-field".  A user ``grad`` that
    disagrees with the value is an error naming ``grad``."""
    if check is None or check.passed:
        if check is not None and where == "at the start":
            head = head + [f"gradient check {where}: the {_grad_kind(user)} agrees with the value's central "
                           f"differences ({check.describe()})"]
        return ("training-field" if asked == "training-field" else "value"), head
    if user.backend == "numpy":
        raise fail("grad", user.grad, f"a gradient of the loss's value: {where}, along a random direction, "
                                      f"it disagrees with the value's central differences ({check.describe()})")
    chosen = "value-differenced" if asked == "value" else "training-field"
    what = ("the variant is fitted to the value's minimisers by central differences of the value"
            if chosen == "value-differenced" else
            "the variant is fitted to the stable zero of that training field (what training reaches)")
    note = (f"gradient check {where}: the {_grad_kind(user)} is not the gradient of the loss's value "
            f"(a stop-gradient, detach(), in the loss?): {check.describe()}; {what}")
    return chosen, head + [note]


def _grad_kind(user):
    return "user grad" if user.backend == "numpy" else f"{user.backend} autograd gradient"


def _rounds(ex, user, control, chosen, asked, st):
    """Run the rounds until every model is decided or the budget is spent: ``(runs, rounds,
    stopped, notes, redo)``; ``redo`` is the failed gradient check at the first fit when the
    objective must change (``asked="auto"``, an autograd loss fitted by its value), else None."""
    fit_loss = _fitted(user, chosen)
    objective = "training-field" if chosen == "training-field" else "value"
    runs = [ModelRun(k, m, st["similarity"], st["claim"], st["direction"], st["margin"], st["seed"],
                     np.random.default_rng([st["seed"], k, 104729]), fit_loss, control)
            for k, m in enumerate(st["models"])]
    for run in runs:
        run.objective = objective
    seed, budget, say, t0 = st["seed"], st["budget"], st["say"], st["t0"]
    plan = {run.k: (list(range(st["replicates"])), list(st["sizes"])) for run in runs}
    rounds, used, stopped, notes = 0, 0.0, False, []
    while plan:
        rounds += 1
        tasks = []
        for run in runs:
            if run.k not in plan:
                continue
            reps, new_sizes = plan[run.k]
            for r in reps:
                todo = [N for N in (run.sizes if r not in run.states else []) + new_sizes
                        if N not in run.chains.get(r, {})]
                tasks.append(run.task(st["similarity"], seed, r, sorted(set(todo)), probe=(rounds == 1 and r == 0)))
            run.sizes = sorted(set(run.sizes) | set(new_sizes))
        for task, (records, state) in zip(tasks, ex.map(run_chain, tasks)):
            runs[task.k].add(task.r, records, state)
            for rec in records:
                if not rec.converged:
                    notes.append(f"{task.model.label}, replicate {task.r}, N={rec.N}: the "
                                 f"variant's fit did not reach a stationary point ({rec.cause or 'not certified'}; "
                                 f"moved {rec.moved:.3g} from its start)")
        if rounds == 1 and user.has_gradient() and fit_loss is user and 0 in runs[0].chains:
            first = runs[0].chains[0][min(runs[0].chains[0])]
            check = check_model_gradient(user, runs[0].model, st["similarity"], first.N, seed, first.x_u)
            if not check.passed and (user.backend == "numpy" or (asked == "auto" and objective == "value")):
                return runs, rounds, stopped, notes, check
            notes.append(f"gradient check at the first fit: {'agrees' if check.passed else 'disagrees'} "
                         f"({check.describe()})")
        tested, plan = set(plan), {}
        loss_kinked = any(rec.kinked for run in runs for chain in run.chains.values() for rec in chain.values())
        for run in runs:
            if run.k not in tested:
                continue  # decided earlier, no new data: its verdict stands
            if rounds == 1:
                run.find_flat(seed)
            run.looks += 1
            run.loss_kinked = loss_kinked
            run.verdict = v = run.result(run.looks)
            say(f"round {rounds}, model {run.k + 1}/{len(runs)} ({run.model.label}): "
                f"{v.verdict}, delta = {v.estimate.delta:.3g} "
                f"[{v.estimate.lower:.3g}, {v.estimate.upper:.3g}], margin {v.margin:.3g}, "
                f"N <= {v.sizes[-1]}, {v.differences.shape[0]} replicates, "
                f"{time.perf_counter() - t0:.1f} s")
            if v.verdict != "inconclusive":
                continue  # a drifting model is never confirmed, but more data may refute it
            more = next_data(len(run.chains), v.sizes[-1])
            if more is not None:
                plan[run.k] = more
        if plan:
            cost = sum(round_cost(runs[k].sizes, reps, new, runs[k].evaluations(), user.backend)
                       for k, (reps, new) in plan.items())
            if used + cost > budget:
                notes.append(f"stopped after round {rounds}: the next round (about {cost:.0f} s "
                             f"nominal) would overrun the budget of {budget:g} s")
                plan, stopped = {}, True
            else:
                used += cost
    return runs, rounds, stopped, notes, None


def _ill_posed(user, claim, similarity, seed) -> str | None:
    """The advice for a claim that the loss's invariances make ill-posed, or None.

    A loss blind to an encoder's norm (it normalises its inputs) has, under dot or L2
    similarity, minimisers that run along that norm, which moves every statistic but the
    subspace projectors: no single answer exists, and cosine similarity is the family
    where the question is well posed."""
    if claim == "same-subspace-as-clip":
        return None  # projectors do not see the encoders' norms
    if user.standardises_features(similarity, np.random.default_rng([seed, 27183])):
        if claim == "same-minimizers-as-clip" and similarity == "dot":
            return None  # compared modulo each feature's scale (numerics.fit_statistics.feature_quotient)
        return ("the loss standardises each feature over the batch (it sees neither the encoders' norms nor "
                "any feature's scale), so its minimisers run along those scales and the claim's statistic "
                "moves with them: ask 'same-subspace-as-clip' (the subspace and the rank), or "
                "'same-minimizers-as-clip' under dot similarity, which is compared modulo each feature's scale")
    blind = user.scale_invariances(similarity, np.random.default_rng([seed, 27182]))
    if not blind:
        return None
    which = " and ".join({"u": "u", "v": "v"}[b] + "-encoder" for b in blind)
    return (f"the loss does not see the norm of the {which} outputs (it normalises its inputs), so under "
            f"{similarity} similarity its minimisers run along that norm and the claim's statistic moves "
            "with it: use similarity='cosine' (or --similarity cosine), or the claim "
            "'same-subspace-as-clip', which does not see the norm")


def _described(user):
    """The loss's gradient kind and interface (inputs, backend, scalars and their roles), as reported."""
    gradient = "finite differences" if not user.has_gradient() else \
        ("user" if user.backend == "numpy" else f"{user.backend} autograd")
    interface = {"inputs": user.inputs, "backend": user.backend, "params": dict(user.params),
                 "learned": list(user.learned), "roles": dict(user.roles)}
    return gradient, interface


def _inconclusive_without_fits(claim, similarity, direction, seed, label, user, margin, budget, advice):
    gradient, interface = _described(user)
    return VariantVerification(claim, similarity, direction, seed, label, gradient, _margin_text(claim, margin),
                               float(budget), [], 0.0, 0, [], interface, advice=advice)


def _model_notes(claim, models, verdicts, user, runs=()) -> list:
    """The notes on each model's verdict: flat directions, set-aside replicates (with the
    causes of their fits' failures, :attr:`numerics.batch_fit.PairedFit.cause`), drift."""
    notes = []
    causes = {run.model.label: _cause_counts(run) for run in runs}
    if claim == "same-subspace-as-clip":
        for m in models:
            sides = [side for side, n in (("u", m.n_u), ("v", m.n_v)) if m.n_e >= n]
            if sides:
                notes.append(f"{m.label}: n_e = n_{' = n_'.join(sides)}, so the {' and '.join(sides)}-side "
                             "projector is the identity whatever the fit: the rank decides there (the claim "
                             "needs all n_e canonical pairs kept)")
    by_feature = [run.model.label for run in runs if getattr(run, "by_feature", False)]
    if by_feature:
        notes.append(f"{'; '.join(by_feature)}: the loss standardises each feature over the batch: its bilinear "
                     "invariant is compared modulo each feature's scale")
    for v in verdicts:
        if v.rank is not None and (v.rank.collapsed or not v.rank.full):
            r = v.rank
            notes.append(f"{v.label}: the variant's minimiser keeps {r.kept} of {r.n_e} canonical pairs "
                         f"((s_{r.n_e}/s_1)^2 = {r.variant[-1]:.2g} [{r.variant_lower[-1]:.2g}, "
                         f"{r.variant_upper[-1]:.2g}], CLIP's {r.control[-1]:.2g})"
                         + ("; a collapse: it cannot span the top-n_e subspace" if r.collapsed else ""))
        if v.split_fits:
            notes.append(f"{v.label}: at N = {v.sizes[-1]} some of the variant's fits lie in CLIP's subspace and "
                         "some more than half the margin from it: its point in the subspace is one the samples sometimes make stable, so "
                         "this model is not confirmed (larger batches tell which way it goes)")
        if v.scale_factor is not None:
            notes.append(f"{v.label}: {', '.join(user.unidentified_scale)} rescales the logits in a parametrisation "
                         f"known up to a constant: compared modulo a common factor (fitted {v.scale_factor:.3g}); "
                         "a variant that only rescales CLIP's similarity passes this comparison")
        # The family's own invariances are flat for every loss; they are worth a note when the
        # loss has scalars that may trade against them, or when one moves the statistic.
        if v.flat.count and (user.size or v.flat.moving):
            notes.append(f"{v.label}: {v.flat.count} flat direction(s) of the variant's loss at its fit: "
                         + "; ".join(v.flat.names) + (
                             "; they leave the statistic unchanged" if not v.flat.moving else
                             f"; {v.flat.moving[0]} move the statistic: compared modulo them to first order, "
                             "so a difference is never refuted on them"))
        if v.set_aside:
            total = v.differences.shape[0] + (v.set_aside if v.usable else 0)
            why = causes.get(v.label) or "its finite-batch loss may be unbounded below there"
            notes.append(f"{v.label}: {v.set_aside} of {total} replicates set aside: the variant's fit "
                         f"found no stationary point on one of their batches ({why})"
                         + ("" if v.usable else "; too many to decide"))
        if v.verdict == "inconclusive" and v.usable and not v.unidentified and v.slow_spread:
            more = (f"N ~ {v.n_to_decide} would likely decide" if v.n_to_decide is not None
                    else "no feasible batch size is likely to decide")
            notes.append(f"{v.label}: the paired spread shrinks like N^-{max(v.spread_exponent, 0):.2f} between "
                         f"N = {v.sizes[0]} and {v.sizes[-1]}, not N^-1/2: the fits have heavy tails (a "
                         f"softmax over the batch that a few pairs dominate?), so more data decides slowly ({more})")
        if v.drifting:
            ratio = v.estimate.drift_ratio
            size = f"{ratio:.0%} of its size" if ratio < 10 else "more than 10 times its size"
            notes.append(f"{v.label}: no N-independent limit: the variant's statistic still moves by "
                         f"{v.estimate.drift:.3g} ({size}, margin "
                         f"{v.margin:.3g}) at N = {v.sizes[-1]}, like 1/N; it is never confirmed")
    return notes


def _cause_counts(run) -> str:
    """Why the model's uncertified fits have no certificate, counted: "kink not resolved: 2, ..."."""
    counts = {}
    for chain in run.chains.values():
        for rec in chain.values():
            if not rec.converged:
                key = getattr(rec, "cause", None) or "not certified"
                counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k}: {n} fit(s)" for k, n in sorted(counts.items()))
