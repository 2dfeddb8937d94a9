r"""Monte Carlo checks: Theorem 3.2 for cosine and L2 similarity, and the
finite-sample facts of MATH.md §2-§3 (Propositions N1 and N2).

Every comparison uses the standard errors of its own estimates
(:func:`~proofs_checks.tolerances.monte_carlo_tolerance`).  Each check runs
on the first few default models only, to stay within a few seconds.
Check functions take the implementations under test as keyword arguments so
that a test can feed a perturbed formula and watch the check fail.
"""
from __future__ import annotations

import numpy as np

from numerics import gaussian, montecarlo, variants
from numerics.models import random_encoders, small_bilinear

from ..registry import CaseResult, register
from ..tolerances import monte_carlo_mde, monte_carlo_tolerance

__all__ = [
    "check_theorem_3_2_monte_carlo",
    "check_n1_monte_carlo",
    "check_n2_monte_carlo",
]

#: Models used per check (the first ones of the default set).
MODELS = 3


def check_theorem_3_2_monte_carlo(models, rng, *, clip_loss_mc=montecarlo.population_clip_loss_mc,
                                  kl_terms_mc=montecarlo.expected_kl_terms_mc,
                                  mutual_information=gaussian.mutual_information,
                                  l2_kl_terms=variants.l2_kl_terms,
                                  n_samples=6000, bank_size=400, similarities=("cosine", "l2")):
    r"""Theorem 3.2 for similarities without a closed form:
    :math:`L_{clip} = \tfrac12(E KL_{v|u} + E KL_{u|v}) - I` by two independent routes.

    Left: :math:`L_{clip}` from joint samples and a bank (:func:`population_clip_loss_mc`).
    Right: the KL integrands with the exact Gaussian conditional densities,
    :math:`v` drawn from :math:`\mu_{v|u}` (:func:`expected_kl_terms_mc`), plus the
    closed-form :math:`I`.  All estimates use independent draws, so the
    standard error of the difference is
    :math:`\sqrt{se_L^2 + (se_{KL_v}^2 + se_{KL_u}^2)/4}`.

    Power.  The standard errors are dominated by the per-sample term (the
    bank term is 5-10 times smaller at equal sizes) while the cost grows like
    ``n_samples * bank_size``; hence many samples and a modest bank
    (6000 and 400: tolerances 0.04-0.3 nats, 12-25 % of :math:`|L_{clip}|` when
    :math:`|L_{clip}| > 0.5`, against 26-67 % with 1000 and 1000; about 2 s on
    an idle 2-core machine).  The bank bias left after the delta-method correction is
    :math:`O(M^{-2})`, about :math:`10^{-6}` here against standard errors of
    order :math:`10^{-2}`.  For L2 the two expected KL terms also have a closed
    form (:func:`numerics.variants.l2_kl_terms`, Gaussian conditionals of §4.2,
    no sampling), so each Monte Carlo route is also compared with it alone
    (cases ``clip route`` and ``KL route``), with the tolerance of that single
    route: a third, independent route.
    """
    cases = []
    for m in models[:MODELS]:
        I = mutual_information(m.cov, m.n_u)
        sample = montecarlo.gaussian_sampler(m.cov, m.n_u)
        for sim in similarities:
            G_u, G_v = random_encoders(m, rng)
            tau = 0.5 if sim == "cosine" else 1.0
            enc_u, enc_v = montecarlo.linear_encoder(G_u), montecarlo.linear_encoder(G_v)
            lhs = clip_loss_mc(sample, enc_u, enc_v, tau, sim, n_samples, rng, bank_size=bank_size)
            kv, ku = kl_terms_mc(m.cov, m.n_u, enc_u, enc_v, tau, sim, n_samples, rng,
                                 bank_size=bank_size)
            rhs = 0.5 * (kv.estimate + ku.estimate) - I
            se = float(np.sqrt(lhs.standard_error**2
                               + 0.25 * (kv.standard_error**2 + ku.standard_error**2)))
            # KL >= 0 is part of the claim: a clearly negative estimate is an error too.
            neg = max(0.0, -kv.estimate - 5 * kv.standard_error, -ku.estimate - 5 * ku.standard_error)
            cases.append(CaseResult(f"{m.label} {sim}", abs(lhs.estimate - rhs) + neg,
                                    monte_carlo_tolerance(se),
                                    {"L_clip": lhs.estimate, "rhs": rhs, "se": se,
                                     "mde": monte_carlo_mde(se)}))
            if sim == "l2":
                kv0, ku0 = l2_kl_terms(G_u, G_v, tau, m.cov, m.n_u)
                exact = 0.5 * (kv0 + ku0) - I
                cases.append(CaseResult(f"{m.label} l2 clip route vs closed form",
                                        abs(lhs.estimate - exact),
                                        monte_carlo_tolerance(lhs.standard_error),
                                        {"L_clip": lhs.estimate, "closed_form": exact,
                                         "se": lhs.standard_error,
                                         "mde": monte_carlo_mde(lhs.standard_error)}))
                se_kl = 0.5 * float(np.hypot(kv.standard_error, ku.standard_error))
                cases.append(CaseResult(f"{m.label} l2 KL route vs closed form",
                                        abs(rhs - exact), monte_carlo_tolerance(se_kl),
                                        {"rhs": rhs, "closed_form": exact, "se": se_kl,
                                         "mde": monte_carlo_mde(se_kl),
                                         "kl_v": (kv.estimate, kv0), "kl_u": (ku.estimate, ku0)}))
    return cases


def _batch_losses(m, A, rng, sizes, total, batch_loss_mc):
    sample = montecarlo.gaussian_sampler(m.cov, m.n_u)
    enc_u = montecarlo.linear_encoder(A.T)  # f = <A^T u, v> = u^T A v
    enc_v = montecarlo.linear_encoder(np.eye(m.n_v))
    return [(N, batch_loss_mc(sample, enc_u, enc_v, 1.0, "dot", N, max(2, total // N), rng))
            for N in sizes]


def check_n1_monte_carlo(models, rng, *, clip_loss=gaussian.population_clip_loss,
                         batch_loss_mc=montecarlo.expected_batch_loss_mc, bias=gaussian.batch_loss_bias,
                         sizes=(16, 64, 256), total=2**15):
    r"""Proposition N1: :math:`E[L_N] - \log N = L_{clip} + b/N + O(N^{-2})`.

    :math:`E[L_N]` by Monte Carlo over independent batches (the streaming
    batch loss), :math:`L_{clip}` by the bilinear closed form
    (:func:`numerics.gaussian.population_clip_loss`), and the :math:`1/N`
    coefficient :math:`b` by its own closed form (:func:`numerics.gaussian.batch_loss_bias`).
    The whitened norm of ``A`` is 0.3, so the :math:`O(N^{-2})` remainder
    (of order :math:`b^2/N^2 \lesssim 10^{-4}` at :math:`N = 16`) stays below the
    standard errors (about :math:`10^{-3}`).  The smallest ``N`` is
    where the bias itself exceeds the standard error, so dropping ``b`` fails.
    """
    cases = []
    for m in models[:MODELS]:
        A = small_bilinear(m, rng)
        L = clip_loss(A, m.cov, m.n_u)
        b = bias(A, m.cov, m.n_u)
        for N, est in _batch_losses(m, A, rng, sizes, total, batch_loss_mc):
            d = est.estimate - np.log(N) - L
            cases.append(CaseResult(f"{m.label} N={N}", abs(d - b / N),
                                    monte_carlo_tolerance(est.standard_error),
                                    {"bias": d, "predicted": b / N, "se": est.standard_error,
                                     "mde": monte_carlo_mde(est.standard_error)}))
    return cases


def check_n2_monte_carlo(models, rng, *, batch_loss_mc=montecarlo.expected_batch_loss_mc,
                         mutual_information=gaussian.mutual_information,
                         minimizer=gaussian.lowrank_minimizer, sizes=(4, 32, 256), total=2**14):
    r"""Proposition N2 (InfoNCE bound): :math:`E[L_N] \ge \log N - I(u; v)` for every ``N``.

    At the bilinear optimum :math:`A^*` (Proposition G1, the tightest
    bilinear logit) and at a small random ``A``.  The error is the violation
    :math:`\max(0, \log N - I - \hat E[L_N])`, held under ``k`` standard errors.

    What it can and cannot detect: it is a one-sided check of an inequality.
    It fails when an estimate of :math:`E[L_N]` (or a value of :math:`I`) puts
    the loss clearly below :math:`\log N - I`: e.g. a batch loss missing its
    positive pair in the normaliser, a sign error in the alignment term or an
    overstated mutual information.  It cannot detect errors that only raise
    :math:`E[L_N]` (an understated :math:`I`, a spurious positive bias), nor
    check how tight the bound is; Proposition N1 (``n1-monte-carlo``) checks
    the value of :math:`E[L_N]` itself.
    """
    cases = []
    for m in models[:MODELS]:
        I = mutual_information(m.cov, m.n_u)
        for name, A in (("A*", minimizer(m.cov, m.n_u, m.n_e)), ("random A", small_bilinear(m, rng))):
            for N, est in _batch_losses(m, A, rng, sizes, total, batch_loss_mc):
                gap = est.estimate - (np.log(N) - I)
                cases.append(CaseResult(f"{m.label} {name} N={N}", max(0.0, -gap),
                                        monte_carlo_tolerance(est.standard_error),
                                        {"E_L_N": est.estimate, "bound": np.log(N) - I,
                                         # a downward error must also close the gap to be seen
                                         "mde": max(gap, 0.0) + monte_carlo_mde(est.standard_error)}))
    return cases


register("thm3.2-monte-carlo", statement="Theorem 3.2", method="monte-carlo",
         description="cosine and L2: MC L_clip = (MC E KL_v|u + MC E KL_u|v)/2 - I within 5 SE",
         )(check_theorem_3_2_monte_carlo)
register("n1-monte-carlo", statement="Proposition N1", method="monte-carlo",
         description="E[L_N] - log N = L_clip + b/N (closed-form b) within 5 SE, N = 16..256",
         )(check_n1_monte_carlo)
register("n2-monte-carlo", statement="Proposition N2", method="monte-carlo",
         description="InfoNCE bound E[L_N] >= log N - I at A* and random A, N = 4..256",
         )(check_n2_monte_carlo)
