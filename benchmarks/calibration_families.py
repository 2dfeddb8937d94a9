r"""Loss families of the kinds practitioners write, with their true answers derived, for
the verifier's calibration (``benchmarks/calibrate_verifier.py --kinds ...``).

Each family maps a variant name to ``(loss factory, verify_variant keywords, truth,
true relative distance)``; ``truth`` is the verdict a correct verifier gives with enough
data (``"ill-posed"``: INCONCLUSIVE with that reason, at once).

Notation: :math:`A^*` is CLIP's bilinear population minimiser on a model,
:math:`L_{\to}(F)` the row-wise (one-directional) InfoNCE and :math:`L_{\leftarrow}(F)`
the column-wise one.

``kinked``: :math:`\max(L_\to(F), L_\leftarrow(F)) - \kappa\,\overline{\mathrm{diag}\,F}`.
    In the bilinear Gaussian model each direction's population loss is
    :math:`-(1+\kappa)\operatorname{tr}(AC_{vu}) + \tfrac12\operatorname{tr}(A^TC_{uu}AC_{vv})`
    (the log-partition of a Gaussian is quadratic), minimised at :math:`(1+\kappa)A^*`.  Both
    branches are minimised at the same point, so their maximum is too (it is at least either
    branch everywhere, and equals the larger minimum there).  The relative distance to
    CLIP's minimiser is :math:`\kappa`; the batch loss has a kink where the two directions
    are equal, which finite-batch minimisers often sit on.  At :math:`\kappa = 0.05` the
    distance equals the default margin: a confirmation there is false, a refutation is power.
``stopgrad`` (torch): :math:`-(1+\kappa)\overline{\mathrm{diag}\,F} + \frac1N\sum_{ij}
    \mathrm{sg}(p_{ij})F_{ij}` with :math:`p` the row softmax of :math:`F` under
    ``detach()``.  Its value is linear in :math:`F` (no minimiser), but the field autograd
    returns is the gradient of :math:`L_\to - \kappa\,\overline{\mathrm{diag}\,F}`, whose
    stable zero is :math:`(1+\kappa)A^*` (above).  Training reaches CLIP's minimiser for
    :math:`\kappa = 0`; the relative distance is :math:`\kappa`.
``norm-invariant``: NT-Xent written on normalised embeddings, verified under dot
    similarity: blind to each encoder's norm, so its minimisers are rays and
    ``same-minimizers-as-clip`` is ill-posed there.
``reparametrised``: CLIP with a learned temperature :math:`\mathrm{softplus}(r) + 0.01`:
    CLIP's minimisers (the temperature is a rescaling of the logits).
``batch-standardised``: Barlow Twins (features standardised over the batch), claim
    ``same-subspace-as-clip`` on the default models.  With :math:`\lambda = 5\cdot10^{-3}` the
    two features of the third model (:math:`n_e = 2`, :math:`\sigma_1 = 0.8`) both take the
    top canonical pair when the gap is healthy: collapsed, the loss is
    :math:`2(1-\sigma_1)^2 + 2\lambda\sigma_1^2` against :math:`(1-\sigma_1)^2 + (1-\sigma_2)^2`
    for the two pairs, and turning one feature by an angle :math:`t` towards the second pair
    changes it by :math:`2[(1-\sigma_1)(\sigma_1-\sigma_2) - \lambda\sigma_1^2]t^2` to second
    order.  Seeds where the first margin is positive and the second exceeds four times
    :math:`\lambda\sigma_1^2` count as refuted (rank 1 cannot span the top-2 subspace); the
    others are left out (:func:`barlow_truth`).  With :math:`\lambda = 1` the loss is
    :math:`\|I - C\|_F^2`, minimised by the canonical pairs themselves: confirmed.
"""
from __future__ import annotations

import math

import numpy as np


def _row_terms(F):
    """Row InfoNCE and its row-softmax, with NumPy's own reductions (scipy's logsumexp costs
    2.7 times as much at N = 256, and the verifier calls a loss tens of thousands of times)."""
    m = F.max(axis=1, keepdims=True)
    e = np.exp(F - m)
    s = e.sum(axis=1, keepdims=True)
    value = float(np.mean(m[:, 0] + np.log(s[:, 0]) - np.diag(F)))
    return value, e / s


def _row(F):
    return _row_terms(F)[0]


def _row_grad(F):
    N = F.shape[0]
    return (_row_terms(F)[1] - np.eye(N)) / N


def kinked_max(kappa: float):
    """max(row InfoNCE, column InfoNCE) - kappa mean(diag F), with the active branch's gradient
    (given with the value, ``loss.value_and_grad``: computing them apart took each direction's
    softmax twice, 45 % of a verdict's time)."""
    def loss(F):
        return max(_row(F), _row(F.T)) - kappa * float(np.mean(np.diag(F)))

    def value_and_grad(F):
        # one pass per direction for the value and the gradient together (loss.value_and_grad)
        (r, p), (c, q) = _row_terms(F), _row_terms(F.T)
        g = p if r >= c else q.T
        N = F.shape[0]
        return max(r, c) - kappa * float(np.mean(np.diag(F))), (g - (1 + kappa) * np.eye(N)) / N

    loss.value_and_grad = value_and_grad
    loss.__name__ = f"max_directions_kappa_{kappa:g}"
    return loss


def stopgrad_linear(kappa: float):
    """The row InfoNCE's training field through a linear surrogate with detached weights (torch)."""
    import torch

    def loss(F):
        N = F.shape[0]
        p = torch.softmax(F, dim=1).detach()
        return -(1 + kappa) * torch.diagonal(F).mean() + (p * F).sum() / N

    loss.__name__ = f"stopgrad_kappa_{kappa:g}"
    return loss


def nt_xent(za, zb, temperature=0.5):
    """NT-Xent (cross-view negatives) on normalised embeddings."""
    a = za / np.linalg.norm(za, axis=1, keepdims=True)
    b = zb / np.linalg.norm(zb, axis=1, keepdims=True)
    F = a @ b.T / temperature
    return 0.5 * (_row(F) + _row(F.T))


def _softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def softplus_temperature_clip(F, raw):
    """CLIP with a learned temperature softplus(raw) + 0.01."""
    t = _softplus(raw) + 0.01
    return 0.5 * (_row(F / t) + _row(F.T / t))


def _softplus_grad(F, raw):
    t = _softplus(raw) + 0.01
    return 0.5 * (_row_grad(F / t) + _row_grad(F.T / t).T) / t


softplus_temperature_clip.grad = _softplus_grad


def barlow_twins(lambd: float):
    def loss(za, zb):
        a = (za - za.mean(0)) / za.std(0, ddof=1)
        b = (zb - zb.mean(0)) / zb.std(0, ddof=1)
        c = a.T @ b / za.shape[0]
        return float(np.sum((1 - np.diag(c)) ** 2) + lambd * (np.sum(c**2) - np.sum(np.diag(c) ** 2)))

    loss.__name__ = f"barlow_twins_{lambd:g}"
    return loss


def barlow_truth(seed: int, lambd: float = 5e-3) -> str | None:
    """The collapse's truth on the default models of ``seed`` (module docstring), or None."""
    from proofs_checks.verify import default_variant_models

    s1, s2 = sorted(default_variant_models(seed, 3, "dot")[2].sigma, reverse=True)[:2]
    if (1 - s1) ** 2 + 2 * lambd * s1**2 < (1 - s2) ** 2 and (1 - s1) * (s1 - s2) > 4 * lambd * s1**2:
        return "refuted"
    return None


MINIMIZERS = {"claim": "same-minimizers-as-clip"}
SUBSPACE = {"claim": "same-subspace-as-clip", "inputs": "embeddings"}

#: kind -> variant -> (loss factory, verify_variant keywords, truth, true relative distance);
#: a callable truth takes the seed (None: the seed is left out).
FAMILIES = {
    "kinked": {
        "kinked kappa=0": (lambda: kinked_max(0.0), MINIMIZERS, "confirmed", 0.0),
        "kinked kappa=0.05": (lambda: kinked_max(0.05), MINIMIZERS, "refuted", 0.05),
        "kinked kappa=0.1": (lambda: kinked_max(0.1), MINIMIZERS, "refuted", 0.1),
    },
    "stopgrad": {
        "stopgrad kappa=0": (lambda: stopgrad_linear(0.0), MINIMIZERS, "confirmed", 0.0),
        "stopgrad kappa=0.05": (lambda: stopgrad_linear(0.05), MINIMIZERS, "refuted", 0.05),
        "stopgrad kappa=0.1": (lambda: stopgrad_linear(0.1), MINIMIZERS, "refuted", 0.1),
    },
    "norm-invariant": {
        "nt-xent under dot": (lambda: nt_xent, {**MINIMIZERS, "inputs": "embeddings"}, "ill-posed", math.nan),
    },
    "reparametrised": {
        "softplus temperature": (lambda: softplus_temperature_clip, {**MINIMIZERS, "params": {"raw": 0.5}},
                                 "confirmed", 0.0),
    },
    "batch-standardised": {
        "barlow lambda=5e-3": (lambda: barlow_twins(5e-3), SUBSPACE, barlow_truth, math.nan),
        "barlow lambda=1": (lambda: barlow_twins(1.0), SUBSPACE, "confirmed", 0.0),
    },
}
