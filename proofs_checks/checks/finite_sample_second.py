r"""Propositions N1 and N2 by routes other than plain Monte Carlo (MATH.md §2, §3).

* ``n1-quadrature``: in scalar Gaussian models :math:`E[L_N]` is computed exactly
  (to :math:`10^{-13}`) for :math:`N = 1, 2, 4, \dots, 4096`
  (:func:`numerics.finite_sample.scalar_expected_batch_loss`), so the bias
  coefficient :math:`b = \lim N(E[L_N] - \log N - L_{clip})` comes out of
  Richardson's table, independently of the delta method behind the closed form.
* ``n1-monte-carlo-cv``: the Monte Carlo check of N1 in the multivariate default
  models, with the batch loss's first-order projection removed as a control
  variate (:func:`numerics.finite_sample.expected_batch_loss_bias_cv`): about
  :math:`\sqrt N` times less noise, enough to see the sign of :math:`b`.
* ``n2-quadrature``: the InfoNCE bound :math:`E[L_N] \ge \log N - I` exactly in
  scalar models, for the bilinear critics and the optimal one (the pointwise
  mutual information), where it is also shown tight:
  :math:`E[L_N] - (\log N - I) \le \log(1 + \chi^2/N)` (Jensen), with
  :math:`\chi^2 = \chi^2(\mu\|\mu_u\otimes\mu_v)`.

Check functions take the implementations under test as keyword arguments so
that a test can feed a perturbed formula and watch the check fail.
"""
from __future__ import annotations

import numpy as np

from numerics import finite_sample as fs
from numerics import gaussian
from numerics.models import small_bilinear

# The closed-form bias of Proposition N1 lives with the first N1 check for now.

from ..registry import CaseResult, register
from ..tolerances import monte_carlo_mde, monte_carlo_tolerance, richardson_tolerance

__all__ = ["ScalarModel", "scalar_models", "check_n1_quadrature", "check_n1_control_variate",
           "check_n2_quadrature"]

#: Batch sizes of the quadrature checks: doubling, for Richardson's table.
SIZES = 2 ** np.arange(0, 13)


class ScalarModel:
    r"""A scalar Gaussian pair: :math:`\operatorname{var}u = s_u^2`, :math:`\operatorname{var}v = s_v^2`,
    correlation :math:`\rho`.  A bilinear logit :math:`a\,\tilde u\tilde v` in the
    standardised variables is :math:`A = a/(s_us_v)` in the original ones."""

    def __init__(self, rho, s_u, s_v, a):
        self.rho, self.s_u, self.s_v, self.a = float(rho), float(s_u), float(s_v), float(a)
        self.cov = np.array([[s_u * s_u, rho * s_u * s_v], [rho * s_u * s_v, s_v * s_v]])
        self.A = np.array([[a / (s_u * s_v)]])
        self.label = f"rho={rho:.3f} a={a:+.3f} scales=({s_u:.2f}, {s_v:.2f})"


def scalar_models(rng, count, *, rho_range=(0.3, 0.9), a_range=(0.1, 0.2)):
    r"""``count`` scalar models with random scales, :math:`\rho` and :math:`|a|` in the ranges
    (random sign of :math:`a`).  :math:`|a| \le 0.2` keeps :math:`E e^{kf}` finite up to
    :math:`k = 5`, so the :math:`1/N` expansion of N1 holds well past its first terms."""
    out = []
    for _ in range(count):
        rho = float(rng.uniform(*rho_range))
        a = float(rng.choice([-1.0, 1.0]) * rng.uniform(*a_range))
        s_u, s_v = 10 ** rng.uniform(-0.5, 0.5, size=2)
        out.append(ScalarModel(rho, s_u, s_v, a))
    return out


def check_n1_quadrature(models, rng, *, bias=gaussian.batch_loss_bias, clip_loss=gaussian.population_clip_loss,
                        expected_loss=fs.scalar_expected_batch_loss, count=2, sizes=SIZES):
    r"""Proposition N1 by quadrature: :math:`N(E[L_N] - \log N - L_{clip}) \to b`.

    Three cases per scalar model:

    * ``E[L_1] = 0``: :math:`L_1 \equiv 0` (one pair), a control of the quadrature
      itself, within its error estimate;
    * ``b``: Richardson's limit (two orders, sizes up to 4096) of
      :math:`N\,D_N` against the closed form ``bias(A, cov, 1)``, within
      :func:`~proofs_checks.tolerances.richardson_tolerance`.  It also holds the
      limit :math:`D_N \to 0` (with :math:`L_{clip}` from ``clip_loss``): a wrong
      :math:`L_{clip}` makes :math:`N D_N` grow like :math:`N`;
    * ``expansion converges``: the truncation estimate of the table at the top
      sizes is at most half of the one a doubling earlier, as a remainder
      :math:`O(N^{-2})` requires (it would double if :math:`N D_N` grew like
      :math:`N`, which the ``b`` case alone could absorb in its own tolerance).
    """
    cases = []
    for sm in scalar_models(rng, count):
        q = expected_loss(fs.bilinear_scalar_logit(sm.a), sm.rho, sizes)
        cases.append(CaseResult(f"{sm.label} E[L_1] = 0", abs(float(q.values[0])), float(q.error[0]),
                                {"E_L_1": float(q.values[0])}))
        L = clip_loss(sm.A, sm.cov, 1)
        R1 = sizes * (q.values - np.log(sizes) - L)
        limit, trunc, prop = fs.richardson_limit(sizes, R1, sizes * q.error, orders=2)
        _, trunc_prev, _ = fs.richardson_limit(sizes[:-1], R1[:-1], sizes[:-1] * q.error[:-1],
                                               orders=2)
        b = bias(sm.A, sm.cov, 1)
        cases.append(CaseResult(f"{sm.label} b", abs(limit - b), richardson_tolerance(trunc, prop),
                                {"b_quadrature": limit, "b_closed_form": b, "N_D_N": R1.tolist()}))
        # Under the 1/N expansion the table's truncation estimate shrinks by about 4 per
        # doubling (2 leaves room for a moment-limited remainder); a wrong L_clip adds
        # c N to N D_N and makes it grow by 2 instead.
        cases.append(CaseResult(f"{sm.label} expansion converges", trunc,
                                0.5 * trunc_prev + richardson_tolerance(0.0, prop),
                                {"truncation": trunc, "previous_truncation": trunc_prev}))
    return cases


def check_n1_control_variate(models, rng, *, bias=gaussian.batch_loss_bias,
                             estimator=fs.expected_batch_loss_bias_cv,
                             influence=fs.bilinear_batch_influence,
                             sizes=(8, 16, 64), total=2**15, n_models=3):
    r"""Proposition N1 by Monte Carlo with a control variate:
    :math:`\hat D_N = b/N` within 5 standard errors, :math:`N = 8, 16, 64`.

    The estimator subtracts the first-order projection :math:`\tilde\psi` of the
    batch loss (mean :math:`L_{clip} + 1` by construction), so its standard error
    is about :math:`\sqrt N` times smaller than that of ``n1-monte-carlo`` at the
    same number of pairs.  The :math:`O(N^{-2})` remainder is of order
    :math:`b^2/N^2 \lesssim 10^{-4}` at :math:`N = 8` (whitened norm 0.3),
    against tolerances of about :math:`3\cdot10^{-3}`.  Each case reports its
    minimum detectable effect (``mde``) and ``sign_margin``
    :math:`= 2|b|/N / \text{mde}`: above 1, a wrong sign of :math:`b` is caught
    with probability at least 0.8 by that case alone.
    """
    cases = []
    for m in models[:n_models]:
        A = small_bilinear(m, rng)
        b = bias(A, m.cov, m.n_u)
        for N in sizes:
            est = estimator(A, m.cov, m.n_u, N, max(2, total // N), rng, influence=influence)
            mde = monte_carlo_mde(est.standard_error)
            cases.append(CaseResult(f"{m.label} N={N}", abs(est.estimate - b / N),
                                    monte_carlo_tolerance(est.standard_error),
                                    {"bias": est.estimate, "predicted": b / N,
                                     "se": est.standard_error, "plain_se": est.detail["plain_se"],
                                     "mde": mde, "sign_margin": 2 * abs(b) / N / mde}))
    return cases


def check_n2_quadrature(models, rng, *, mutual_information=gaussian.mutual_information,
                        chi2_half=fs.pmi_bias_coefficient,
                        expected_loss=fs.scalar_expected_batch_loss, count=2, sizes=SIZES[::2]):
    r"""Proposition N2 exactly: :math:`E[L_N] \ge \log N - I` for :math:`N = 1, 4, 16, \dots, 4096`.

    Per scalar model (:math:`\rho \in [0.3, 0.8]`), three critics: the bilinear
    optimum :math:`a = \rho` (standardised), a random bilinear :math:`a`, and the
    pointwise mutual information (the optimal critic).  Cases:

    * ``bound``: the violation :math:`\max_N(\log N - I - E[L_N])^+` within the
      quadrature error;
    * ``tight`` (PMI critic): the excess over Jensen's upper bound,
      :math:`\max_N(E[L_N] - \log N + I - \log(1 + \chi^2/N))^+`, with
      :math:`\tfrac12\chi^2` from ``chi2_half``; the gap is
      :math:`\approx\chi^2/(2N)`, so together the two cases pin :math:`I` from both
      sides to about :math:`10^{-4}\chi^2` (an overstated :math:`I`, which the
      one-sided Monte Carlo check cannot see, fails here).
    """
    cases = []
    for sm in scalar_models(rng, count, rho_range=(0.3, 0.8), a_range=(0.1, 0.5)):
        I = mutual_information(sm.cov, 1)
        critics = (("A* (a = rho)", fs.bilinear_scalar_logit(sm.rho)),
                   (f"a = {sm.a:+.3f}", fs.bilinear_scalar_logit(sm.a)),
                   ("PMI", fs.pmi_scalar_logit(sm.rho)))
        for name, logit in critics:
            q = expected_loss(logit, sm.rho, sizes)
            gap = q.values - (np.log(sizes) - I)
            tol = float(np.max(q.error))
            label = f"rho={sm.rho:.3f} scales=({sm.s_u:.2f}, {sm.s_v:.2f}) {name}"
            cases.append(CaseResult(f"{label} bound", max(0.0, float(-np.min(gap))), tol,
                                    {"min_gap": float(np.min(gap)), "gap_at_max_N": float(gap[-1])}))
            if name == "PMI":
                upper = np.log1p(2.0 * chi2_half(sm.cov, 1) / sizes)
                cases.append(CaseResult(f"{label} tight", max(0.0, float(np.max(gap - upper))), tol,
                                        {"N_gap": (sizes * gap).tolist(),
                                         "min_slack": float(np.min(upper - gap))}))
    return cases


register("n1-quadrature", statement="Proposition N1", method="quadrature",
         description="scalar models: exact E[L_N], N = 1..4096; Richardson lim N D_N = closed-form b",
         )(check_n1_quadrature)
register("n1-monte-carlo-cv", statement="Proposition N1", method="monte-carlo",
         description="E[L_N] - log N - L_clip = b/N within 5 SE with a control variate, N = 8..64",
         )(check_n1_control_variate)
register("n2-quadrature", statement="Proposition N2", method="quadrature",
         description="scalar models: exact E[L_N] >= log N - I (N = 1..4096), tight for the PMI "
                     "critic (gap <= log(1 + chi^2/N))",
         )(check_n2_quadrature)
