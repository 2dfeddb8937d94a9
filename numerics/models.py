r"""Seeded generators of Gaussian models (MATH.md §4) for checks and experiments.

The main job verifies every statement on an embedded default set of models
drawn here from a seed; the Hypothesis strategies of ``proofs_checks`` build
the same kind of covariance from drawn parameters through
:func:`numerics.gaussian.joint_covariance`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import gaussian
from ._validation import as_covariance, as_dimension, as_latent_dim, as_rng, fail
from .gaussian import _whitened, joint_covariance

__all__ = ["GaussianModel", "random_orthogonal", "random_spd", "random_gaussian_model", "default_models",
           "random_encoders", "small_bilinear"]


@dataclass(frozen=True)
class GaussianModel:
    r"""A joint Gaussian :math:`N(0, C)` of :math:`(u, v)` with a latent dimension to test.

    Attributes
    ----------
    cov : ndarray, shape (n_u + n_v, n_u + n_v)
    n_u : int
    n_e : int
        Latent dimension used by rank-constrained statements (Proposition G1).
    label : str
        Short description, used in reports.
    """

    cov: np.ndarray
    n_u: int
    n_e: int
    label: str = ""
    sigma: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # numerics.as_covariance's positive-definiteness rule (smallest eigenvalue > 100 n eps
        # times the largest); no conditioning rule, the closed forms apply it when called
        cov = as_covariance(self.cov)
        n_u = as_dimension(self.n_u, cov.shape[0])
        n_e = as_latent_dim(self.n_e, n_u, cov.shape[0] - n_u)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "n_u", n_u)
        object.__setattr__(self, "n_e", n_e)
        # The blocks C_uu, C_vv inherit the rule's margin (their eigenvalues interlace those
        # of C), so their inverse square roots are finite; checked all the same.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # judged below
            K = _whitened(cov, n_u)
        if not np.all(np.isfinite(K)):
            raise fail("cov", cov, "a covariance whose whitened cross-covariance "
                                   "C_uu^-1/2 C_uv C_vv^-1/2 is finite in float64")
        object.__setattr__(self, "sigma", np.linalg.svd(K, compute_uv=False))

    @property
    def n_v(self) -> int:
        return self.cov.shape[0] - self.n_u

    @property
    def eigengap(self) -> float:
        r""":math:`\sigma_{n_e} - \sigma_{n_e+1}` (with :math:`\sigma_{k+1} = 0` past the end)."""
        s = np.append(self.sigma, 0.0)
        return float(s[self.n_e - 1] - s[self.n_e])

    @property
    def condition_number(self) -> float:
        return float(np.linalg.cond(self.cov))


def random_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Haar-distributed orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    Z = rng.standard_normal((n, n))
    Q, R = np.linalg.qr(Z)
    return Q * np.sign(np.diag(R))


def random_spd(rng: np.random.Generator, n: int, *, max_condition: float = 10.0) -> np.ndarray:
    """Random SPD matrix with log-uniform eigenvalues in ``[1, max_condition]``."""
    if not np.isfinite(max_condition) or max_condition < 1:
        raise fail("max_condition", max_condition, "a finite number >= 1")
    w = np.exp(rng.uniform(0.0, np.log(max_condition), size=n))
    if n > 1:
        w[0], w[-1] = 1.0, max_condition  # attain the requested conditioning
    Q = random_orthogonal(rng, n)
    S = (Q * w) @ Q.T
    return 0.5 * (S + S.T)


def random_gaussian_model(
    rng: np.random.Generator,
    n_u: int,
    n_v: int,
    *,
    n_e: int | None = None,
    max_correlation: float = 0.9,
    min_gap: float = 0.05,
    rank: int | None = None,
    max_condition: float = 10.0,
    tie: bool = False,
) -> GaussianModel:
    r"""Draw a Gaussian model with controlled canonical structure.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_u, n_v : int
        Sizes of :math:`u` and :math:`v`.
    n_e : int, optional
        Latent dimension; drawn in ``1..min(n_u, n_v)`` if omitted.
    max_correlation : float
        Largest canonical correlation :math:`\sigma_1`, in ``(0, 1)`` (with
        ``tie=True`` an upper bound: the correlations are then drawn uniformly
        in ``[0.05, max_correlation]``).
    min_gap : float
        Enforced eigengap :math:`\sigma_{n_e} - \sigma_{n_e+1} \ge` ``min_gap``
        (ignored with ``tie=True``).
    rank : int, optional
        :math:`\operatorname{rank} C_{uv}`; defaults to ``min(n_u, n_v)``.
    max_condition : float
        Condition number of each marginal covariance block.
    tie : bool
        Make :math:`\sigma_{n_e} = \sigma_{n_e+1}` (needs ``n_e < rank``): the
        case where Proposition G1's minimiser is not unique.
    """
    k = min(n_u, n_v)
    n_e = int(rng.integers(1, k + 1)) if n_e is None else as_latent_dim(n_e, n_u, n_v)
    rank = k if rank is None else int(rank)
    if not 1 <= rank <= k:
        raise fail("rank", rank, f"an integer in 1..{k}")
    if not 0 < max_correlation < 1:
        raise fail("max_correlation", max_correlation, "a number in (0, 1)")
    if tie and n_e >= rank:
        raise fail("tie", tie, f"False when n_e={n_e} >= rank={rank} (no sigma_(n_e+1) to tie)")
    # Sorted correlations with a guaranteed gap at n_e: the top n_e lie in
    # [lo + gap, max], the rest in [0, lo].
    if tie:
        s = np.sort(rng.uniform(0.05, max_correlation, size=rank))[::-1]
        s[n_e] = s[n_e - 1]
    else:
        gap = min(min_gap, max_correlation / 2)
        lo = rng.uniform(0.0, max_correlation - gap) if n_e < rank else 0.0
        top = np.sort(rng.uniform(lo + gap, max_correlation, size=n_e))[::-1]
        top[0] = max_correlation
        rest = np.sort(rng.uniform(0.0, lo, size=rank - n_e))[::-1] if rank > n_e else np.empty(0)
        if rank > n_e:
            rest[0] = lo
        s = np.concatenate([top, rest])
    cov = joint_covariance(
        random_spd(rng, n_u, max_condition=max_condition),
        random_spd(rng, n_v, max_condition=max_condition),
        s,
        random_orthogonal(rng, n_u),
        random_orthogonal(rng, n_v),
    )
    label = f"n_u={n_u} n_v={n_v} n_e={n_e} rank={rank}" + (" tie" if tie else "")
    return GaussianModel(cov=cov, n_u=n_u, n_e=n_e, label=label)


def default_models(seed: int = 0, cases: int = 24, *, max_dim: int = 4) -> list[GaussianModel]:
    r"""The embedded default set of models for the main job.

    Sizes :math:`n_u, n_v` are drawn uniformly from :math:`1..` ``max_dim`` and
    :math:`n_e` from :math:`1..\min(n_u, n_v)`.  Model ``i`` with ``i % 3 == 2``
    draws a cross-covariance rank uniformly from :math:`1..\min(n_u, n_v)` (so
    it is deficient only when the draw is below the full rank); model ``i`` with
    ``i % 4 == 3`` ties :math:`\sigma_{n_e}` to :math:`\sigma_{n_e+1}` when
    :math:`n_e` is below that rank.  Largest correlation uniform in [0.3, 0.95]
    (for a tied model that draw is an upper bound, see :func:`random_gaussian_model`),
    condition number log-uniform in [1, 100].  Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    models = []
    for i in range(cases):
        n_u = int(rng.integers(1, max_dim + 1))
        n_v = int(rng.integers(1, max_dim + 1))
        k = min(n_u, n_v)
        rank = int(rng.integers(1, k + 1)) if i % 3 == 2 else k
        n_e = int(rng.integers(1, k + 1))
        tie = i % 4 == 3 and n_e < rank
        models.append(
            random_gaussian_model(
                rng, n_u, n_v, n_e=n_e, rank=rank, tie=tie,
                max_correlation=float(rng.uniform(0.3, 0.95)),
                max_condition=float(10 ** rng.uniform(0, 2)),
            )
        )
    return models


def random_encoders(model: "GaussianModel", rng: np.random.Generator, scale: float = 1.0):
    r"""Random linear encoders :math:`G_u = P_u C_{uu}^{-1/2}`, :math:`G_v = P_v C_{vv}^{-1/2}`
    with Gaussian :math:`P` of entries :math:`N(0, \text{scale}^2/n)`, shapes
    ``(n_e, n_u)`` and ``(n_e, n_v)``.

    The factor :math:`C^{-1/2}` makes the embeddings :math:`O(\text{scale})`
    whatever the conditioning of the model, so Monte Carlo variances stay
    moderate.
    """
    if not isinstance(model, GaussianModel):
        raise fail("model", model, "a numerics.models.GaussianModel")
    rng = as_rng(rng)
    C_uu, _, C_vv = gaussian.split_covariance(model.cov, model.n_u)
    P_u = rng.standard_normal((model.n_e, model.n_u)) * scale / np.sqrt(model.n_u)
    P_v = rng.standard_normal((model.n_e, model.n_v)) * scale / np.sqrt(model.n_v)
    return P_u @ gaussian.sym_power(C_uu, -0.5), P_v @ gaussian.sym_power(C_vv, -0.5)


def small_bilinear(model: GaussianModel, rng: np.random.Generator, scale: float = 0.3) -> np.ndarray:
    r"""A random bilinear ``A`` (shape (n_u, n_v)) whose whitened matrix
    :math:`B = C_{uu}^{1/2}AC_{vv}^{1/2}` has spectral norm ``scale``.

    Small ``scale`` keeps the moments the finite-sample statements need finite:
    :math:`E e^{2f}` requires the spectral radius of :math:`2AC_{vv}A^TC_{uu}` below 1.
    """
    if not isinstance(model, GaussianModel):
        raise fail("model", model, "a numerics.models.GaussianModel")
    rng = as_rng(rng)
    C_uu, _, C_vv = gaussian.split_covariance(model.cov, model.n_u)
    B = rng.standard_normal((model.n_u, model.n_v))
    B *= scale / np.linalg.norm(B, 2)
    return gaussian.sym_power(C_uu, -0.5) @ B @ gaussian.sym_power(C_vv, -0.5)
