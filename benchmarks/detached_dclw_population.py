r"""The population training field of the detached DCLW loss on the verifier's default models,
computed apart from the verifier: where its stable zero lies, and why finite batches scatter it.

The loss (``tests/test_verify_kinks_stopgrad.py:dclw_detached``: lightly's DCLW computation,
weights :math:`w_i = 2 - N\,\mathrm{softmax}_i(a_i\cdot b_i/\sigma)` under ``detach()``,
:math:`\sigma = 1/2`, intra- and inter-view negatives, unnormalised embeddings
:math:`a = G_uu`, :math:`b = G_vv`, both directions averaged) has, as :math:`N \to \infty`,
the training field :math:`\nabla_\theta P(\theta)` of

.. math:: P = \tfrac12\big(E_a\log(e^{a^TS_{aa}a/2} + e^{a^TS_{bb}a/2})
          + E_b\log(e^{b^TS_{bb}b/2} + e^{b^TS_{aa}b/2})\big)
          - 2E[a\cdot b] + \tilde E[a\cdot b],

with :math:`S_{aa} = G_uC_{uu}G_u^T`, :math:`S_{bb} = G_vC_{vv}G_v^T` (a Gaussian negative's
:math:`E e^{a\cdot a'} = e^{a^TS_{aa}a/2}`), and :math:`\tilde E` the expectation under the
detached tilt :math:`e^{x}`, :math:`x = a\cdot b/\sigma = z^TQz/\sigma`,
:math:`Q = \tfrac12\begin{pmatrix}0 & G_u^TG_v\\ G_v^TG_u & 0\end{pmatrix}`: a Gaussian with
covariance :math:`(C^{-1} - 2Q/\sigma)^{-1}`, finite iff :math:`\kappa = (2/\sigma)
\lambda_{max}(C^{1/2}QC^{1/2}) < 1`.  The tilt weight :math:`e^x` then has tail index
:math:`1/\kappa`: the batch's self-normalised weights have a finite variance iff
:math:`\kappa < 1/2`.  The negatives' expectations are taken by Gauss-Hermite quadrature
(30 nodes per axis), the field by torch autograd with the tilt detached, its zeros by the
flow :math:`x \leftarrow x - 0.05\,\phi(x)` (3000 steps), then ``scipy.optimize.root``, and their
stability from the central-difference Jacobian.

    python benchmarks/detached_dclw_population.py
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import root

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numerics import gaussian  # noqa: E402
from numerics.encoders import LinearEncoders, population_minimizer  # noqa: E402
from numerics.fit_statistics import subspace_statistic  # noqa: E402
from proofs_checks.verify import default_variant_models  # noqa: E402

SIGMA = 0.5


def _quadrature(d, n=30):
    x, w = hermegauss(n)
    w = w / w.sum()
    return (np.array(list(itertools.product(x, repeat=d))),
            np.prod(np.array(list(itertools.product(w, repeat=d))), axis=1))


def population_field(model):
    """The field :math:`\\nabla P` (module docstring) as a function of the flat encoders."""
    import torch

    C = torch.tensor(model.cov, dtype=torch.float64)
    n_u, n_e = model.n_u, model.n_e
    n_v = C.shape[0] - n_u
    blocks = (C[:n_u, :n_u], C[n_u:, n_u:])
    roots = [torch.linalg.cholesky(B) for B in blocks]
    nodes = [tuple(torch.tensor(a) for a in _quadrature(n)) for n in (n_u, n_v)]
    C_inv = torch.linalg.inv(C)

    def negatives(G, H, L, nodes_w, C_own, C_other):
        g, w = nodes_w
        a = (g @ L.T) @ G.T
        qa = 0.5 * ((a @ (G @ C_own @ G.T)) * a).sum(1)
        qb = 0.5 * ((a @ (H @ C_other @ H.T)) * a).sum(1)
        return (w * torch.logaddexp(qa, qb)).sum()

    def field(x):
        x = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        G_u, G_v = x[: n_e * n_u].reshape(n_e, n_u), x[n_e * n_u:].reshape(n_e, n_v)
        with torch.no_grad():
            Q = torch.zeros_like(C)
            Q[:n_u, n_u:] = G_u.T @ G_v / 2
            Q[n_u:, :n_u] = G_v.T @ G_u / 2
            tilted = torch.linalg.inv(C_inv - 2 * Q / SIGMA)
            if torch.linalg.eigvalsh(tilted).min() <= 0:
                raise FloatingPointError("E exp(x) is infinite here (kappa >= 1)")
        P = (-2 * torch.trace(G_u @ C[:n_u, n_u:] @ G_v.T) + torch.trace(G_u @ tilted[:n_u, n_u:] @ G_v.T)
             + 0.5 * (negatives(G_u, G_v, roots[0], nodes[0], *blocks)
                      + negatives(G_v, G_u, roots[1], nodes[1], blocks[1], blocks[0])))
        return torch.autograd.grad(P, x)[0].numpy()

    return field


def kappa(model, fam, x):
    r""":math:`(2/\sigma)\lambda_{max}(C^{1/2}QC^{1/2})`: the tilt's tail is :math:`1/\kappa`."""
    G_u, G_v = fam.split(x)
    n_u = model.n_u
    Q = np.zeros_like(model.cov)
    Q[:n_u, n_u:] = G_u.T @ G_v / 2
    Q[n_u:, :n_u] = Q[:n_u, n_u:].T
    R = gaussian.sym_power(model.cov, 0.5)
    return 2 / SIGMA * float(np.linalg.eigvalsh(R @ Q @ R).max())


def main() -> int:
    for k, model in enumerate(default_variant_models(0, 3, "dot")):
        fam = LinearEncoders(model, "dot")
        x_star = population_minimizer(fam)
        target = subspace_statistic(fam, x_star)
        phi = population_field(model)
        rng = np.random.default_rng(k)
        found = []
        for start in range(4):  # CLIP's encoders at a smaller scale, moved at random; then random
            x0 = (0.4 * x_star if start < 2 else 0.0) + 0.1 * rng.standard_normal(x_star.shape)
            try:
                for _ in range(3000):  # the training flow first (what training does), then root finding
                    x0 = x0 - 0.05 * phi(x0)
                res = root(phi, x0, method="hybr", tol=1e-13)
            except FloatingPointError:
                continue
            if not res.success or np.max(np.abs(res.fun)) > 1e-9 or np.linalg.norm(res.x) < 1e-6:
                continue
            h = 1e-6
            J = np.array([(phi(res.x + h * e) - phi(res.x - h * e)) / (2 * h) for e in np.eye(res.x.size)]).T
            ev = np.linalg.eigvals(J).real
            found.append((bool(ev.min() > -1e-8 * np.abs(ev).max()), res.x, ev))
        print(f"model {k + 1} ({model.label}, canonical correlations {np.round(model.sigma, 3).tolist()}):")
        for stable, x, ev in found:
            dist = float(np.linalg.norm(subspace_statistic(fam, x) - target))
            kp = kappa(model, fam, x)
            print(f"  {'stable' if stable else 'unstable'} zero, |encoders| {np.linalg.norm(x):.4f}: projector "
                  f"distance from CLIP's subspace {dist:.1e}, kappa {kp:.3f} (tail index {1 / kp:.2f}), "
                  f"Jacobian eigenvalues in [{ev.min():.3g}, {ev.max():.3g}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
