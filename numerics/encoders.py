r"""Linear encoders of a Gaussian model: parameters, logits, pull-backs, invariants
(MATH.md §1, §2, §4).

A :class:`LinearEncoders` family holds a Gaussian model and a similarity.  Its
parameters travel as one flat vector ``x = [G_u.ravel(), G_v.ravel(), theta]``
(what :func:`numerics.optimize.minimize_factors` fits) with
:math:`G_u \in R^{n_e\times n_u}`, :math:`G_v \in R^{n_e\times n_v}`, the
temperature folded into the encoders (:math:`\tau = 1`) and ``theta`` a loss's
own learned scalars (empty for most losses).  :class:`EncoderParams` is that
triple; :meth:`LinearEncoders.unpack` and :meth:`LinearEncoders.pack` are the
only places the flat vector is sliced.  The family gives

* the logit matrix of a batch, :math:`F_{ij} = s(G_uu_i, G_vv_j)` (``"dot"``,
  ``"l2"`` or ``"cosine"``, :func:`numerics.infonce.logits`), and the pull-back of
  :math:`\partial L/\partial F` (or of :math:`\partial L/\partial z`) to the parameters;
* the model conditionals of the encoders (§4.1, §4.2);
* the invariants through which minimisers are compared, in whitened
  coordinates: the bilinear :math:`B = C_{uu}^{1/2}G_u^TG_vC_{vv}^{1/2}`
  (``"dot"``), or the Gram matrix of :math:`[G_uC_{uu}^{1/2},\ G_vC_{vv}^{1/2}]`
  (``"l2"``, invariant under joint rotations only);
* the whitened :math:`u`-encoder row space, for principal angles.

:func:`sample_pairs` is the one sampler of model pairs; :func:`nested_sample` draws
reproducible prefixes from it; :func:`subspace_flip` is the model's symmetry that fixes
CLIP's subspace (a batch's mirror image).  The fitting itself is :mod:`numerics.batch_fit`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from . import gaussian, variants
from ._validation import fail
from .infonce import _logits, _logits_vjp, _unit_vjp, as_similarity
from .models import GaussianModel
from .optimize import balanced_factors, minimize_factors

__all__ = ["EncoderParams", "LinearEncoders", "population_minimizer", "sample_pairs", "nested_sample",
           "subspace_flip", "SAMPLE_BLOCK"]


@dataclass(frozen=True)
class EncoderParams:
    """The fitted parameters ``(G_u, G_v, theta)``: encoders and a loss's learned scalars."""

    G_u: np.ndarray
    G_v: np.ndarray
    theta: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def x(self) -> np.ndarray:
        """The flat vector ``[G_u.ravel(), G_v.ravel(), theta]``."""
        return np.concatenate([np.ravel(self.G_u), np.ravel(self.G_v), np.ravel(self.theta)])

    @property
    def encoders(self) -> np.ndarray:
        """The flat encoder part ``[G_u.ravel(), G_v.ravel()]`` (``theta`` left out)."""
        return np.concatenate([np.ravel(self.G_u), np.ravel(self.G_v)])

    def replace(self, *, G_u=None, G_v=None, theta=None) -> "EncoderParams":
        """A copy with some parts replaced."""
        return EncoderParams(self.G_u if G_u is None else G_u, self.G_v if G_v is None else G_v,
                             self.theta if theta is None else np.asarray(theta, dtype=np.float64))


class LinearEncoders:
    """Encoder family of a Gaussian model under ``"dot"``, ``"l2"`` or ``"cosine"``
    similarity (module docstring; cosine normalises the encoder outputs, and has no
    Gaussian model conditionals or bilinear invariant)."""

    def __init__(self, model: GaussianModel, similarity: str = "dot"):
        if not isinstance(model, GaussianModel):
            raise fail("model", model, "a numerics.models.GaussianModel")
        self.model = model
        self.similarity = as_similarity(similarity)
        C_uu, _, C_vv = gaussian.split_covariance(model.cov, model.n_u)
        self.Ru, self.Rv = gaussian.sym_power(C_uu, 0.5), gaussian.sym_power(C_vv, 0.5)
        self.Riu, self.Riv = gaussian.sym_power(C_uu, -0.5), gaussian.sym_power(C_vv, -0.5)
        self._nu = model.n_e * model.n_u

    @property
    def size(self) -> int:
        """Number of encoder parameters, :math:`n_e (n_u + n_v)`."""
        return self.model.n_e * (self.model.n_u + self.model.n_v)

    # ------------------------------------------------------------------
    # the flat parameter vector
    # ------------------------------------------------------------------
    def unpack(self, x) -> EncoderParams:
        """The :class:`EncoderParams` of a flat vector (entries past :attr:`size` are ``theta``)."""
        x = np.asarray(x, dtype=np.float64)
        m = self.model
        return EncoderParams(x[: self._nu].reshape(m.n_e, m.n_u), x[self._nu: self.size].reshape(m.n_e, m.n_v),
                             x[self.size:])

    @staticmethod
    def pack(G_u, G_v, theta=()) -> np.ndarray:
        """The flat vector of ``(G_u, G_v, theta)``."""
        return EncoderParams(G_u, G_v, np.asarray(theta, dtype=np.float64)).x

    def split(self, x):
        """``(G_u, G_v)`` of a flat vector (``theta``, if any, is ignored)."""
        p = self.unpack(x)
        return p.G_u, p.G_v

    def encoders(self, x) -> np.ndarray:
        """The encoder part of a flat vector, ``theta`` dropped."""
        return self.unpack(x).encoders

    # ------------------------------------------------------------------
    # logits, embeddings and their pull-backs
    # ------------------------------------------------------------------
    def embed(self, x, U, V):
        """``(za, zb, Za, Zb)``: what reaches a loss of embeddings (normalised rows under
        cosine similarity) and the raw encoder outputs ``Za = U G_uᵀ``, ``Zb = V G_vᵀ``."""
        G_u, G_v = self.split(x)
        Za, Zb = U @ G_u.T, V @ G_v.T
        if self.similarity == "cosine":
            return _unit(Za), _unit(Zb), Za, Zb
        return Za, Zb, Za, Zb

    def logits(self, x, U, V):
        """``(F, Za, Zb)``: the batch's logit matrix and the raw embeddings."""
        _, _, Za, Zb = self.embed(x, U, V)
        return _logits(Za, Zb, 1.0, self.similarity), Za, Zb

    def pullback(self, dF, Za, Zb, U, V):
        r"""Gradient in the encoder parameters from :math:`\partial L/\partial F`: the logits'
        vector-Jacobian product (:func:`numerics.infonce.logits_vjp`), then
        :math:`Z_a = UG_u^T`, :math:`Z_b = VG_v^T`."""
        dZa, dZb = _logits_vjp(dF, Za, Zb, 1.0, self.similarity)
        return np.concatenate([(dZa.T @ U).ravel(), (dZb.T @ V).ravel()])

    def embeddings_pullback(self, dza, dzb, Za, Zb, U, V):
        r"""Gradient in the encoder parameters from :math:`\partial L/\partial z_a`,
        :math:`\partial L/\partial z_b` (through the normalisation :math:`z = Z/|Z|` under
        cosine similarity: :math:`\partial_Z = (I - zz^T)\partial_z / |Z|`)."""
        if self.similarity == "cosine":
            na, nb = _norms(Za), _norms(Zb)
            dza, dzb = _unit_vjp(dza, Za / na, na), _unit_vjp(dzb, Zb / nb, nb)
        return np.concatenate([(dza.T @ U).ravel(), (dzb.T @ V).ravel()])

    # ------------------------------------------------------------------
    # what the statistics are made of
    # ------------------------------------------------------------------
    def conditionals(self, x):
        r"""Model conditionals ``(N_v, Sigma_v, N_u, Sigma_u)`` of the encoders (MATH.md §4.1, §4.2)."""
        G_u, G_v = self.split(x)
        m = self.model
        if self.similarity == "cosine":
            raise fail("similarity", "cosine", "'dot' or 'l2' for Gaussian model conditionals")
        if self.similarity == "l2":
            return variants.l2_conditionals(G_u, G_v, 1.0, m.cov, m.n_u)
        return gaussian.bilinear_model_conditionals(G_u.T @ G_v, m.cov, m.n_u)

    def invariant(self, x):
        """The whitened invariant of the parameters (module docstring), a 2-D array."""
        G_u, G_v = self.split(x)
        if self.similarity == "cosine":
            raise fail("similarity", "cosine", "'dot' or 'l2' for a whitened invariant")
        if self.similarity == "l2":
            W = np.hstack([G_u @ self.Ru, G_v @ self.Rv])
            return W.T @ W
        return self.Ru @ G_u.T @ G_v @ self.Rv

    def u_subspace(self, x):
        r"""Basis of the whitened :math:`u`-encoder row space, :math:`C_{uu}^{1/2}G_u^T` (n_u, n_e)."""
        G_u, _ = self.split(x)
        return self.Ru @ G_u.T

    def sample(self, rng: np.random.Generator, n: int):
        """``n`` pairs ``(U, V)`` drawn from the model, shapes (n, n_u), (n, n_v)."""
        return sample_pairs(self.model, rng.standard_normal((n, self.model.cov.shape[0])))


def _norms(Z):
    """Row norms of ``Z`` (a column); a zero row is an error (its direction is undefined)."""
    n = np.linalg.norm(Z, axis=1, keepdims=True)
    if np.any(n == 0):
        raise fail("encoders", Z, "encoder outputs of non-zero norm under cosine similarity")
    return n


def _unit(Z):
    return Z / _norms(Z)


def sample_pairs(model: GaussianModel, normals) -> tuple[np.ndarray, np.ndarray]:
    r"""Pairs ``(U, V)`` of the model from standard normal rows: :math:`z = Lx` with
    :math:`LL^T = C` the Cholesky factor, split into its ``u`` and ``v`` blocks.  The
    toolkit's one sampler of model pairs: every draw of the verifier goes through it."""
    Z = np.asarray(normals, dtype=np.float64) @ np.linalg.cholesky(model.cov).T
    return Z[:, : model.n_u], Z[:, model.n_u:]


#: Rows of a sample drawn per seeded block, so that every prefix is reproducible.
SAMPLE_BLOCK = 64


def nested_sample(model: GaussianModel, key, n: int):
    """The first ``n`` pairs of the sample named by the integer tuple ``key``: seeded
    blocks of :data:`SAMPLE_BLOCK` rows, so that any prefix is the same, bit for bit,
    however many rows are asked for.  Returns ``(U, V)`` of shapes (n, n_u), (n, n_v)."""
    d = model.cov.shape[0]
    # Each block is transformed on its own: a product's rounding can depend on its number of
    # rows (BLAS picks other kernels), so one product of the stacked blocks would make a
    # prefix equal only to about 1 ulp.
    blocks = [sample_pairs(model, np.random.default_rng([*key, b, 104729]).standard_normal((SAMPLE_BLOCK, d)))
              for b in range(-(-n // SAMPLE_BLOCK))]
    return np.vstack([b[0] for b in blocks])[:n], np.vstack([b[1] for b in blocks])[:n]


def subspace_flip(model: GaussianModel):
    r"""``(T_u, T_v)``: the reflection of every canonical direction outside CLIP's top-:math:`n_e`
    subspace, a symmetry of the model, or None when no direction lies outside
    (:math:`n_e = n_u = n_v`).

    .. math:: T_u = C_{uu}^{1/2}(2\Pi_u - I)C_{uu}^{-1/2},\qquad
              T_v = C_{vv}^{1/2}(2\Pi_v - I)C_{vv}^{-1/2},

    with :math:`\Pi_u = U_{n_e}U_{n_e}^T`, :math:`\Pi_v = V_{n_e}V_{n_e}^T` the whitened
    projectors onto the top :math:`n_e` canonical directions (:math:`K = U\Sigma V^T`).  In
    canonical coordinates it flips the sign of each pair :math:`k > n_e` on both sides at once
    (and of each unpaired direction), so :math:`(T_uu, T_vv)` has the law of :math:`(u, v)`:
    :math:`T_uC_{uu}T_u^T = C_{uu}`, :math:`T_uC_{uv}T_v^T = U D\Sigma D V^T = C_{uv}`.  A
    batch's image ``(U T_u^T, V T_v^T)`` is therefore a batch of the model too, and encoders whose
    whitened row spaces lie in CLIP's subspace are fixed by it: :math:`G_uT_u = G_u`.  An
    objective averaged over a batch and its image is exactly invariant under the reflection,
    so at such encoders its gradient (or training field) has no component leaving the
    subspace, whatever the sample (MATH.md §4.1)."""
    n_u, n_e = model.n_u, model.n_e
    n_v = model.cov.shape[0] - n_u
    if n_e == n_u == n_v:
        return None
    U, _, Vt = gaussian.canonical_directions(model.cov, n_u)
    C_uu, C_vv = model.cov[:n_u, :n_u], model.cov[n_u:, n_u:]

    def reflection(C, W):
        R, R_inv = gaussian.sym_power(C, 0.5), gaussian.sym_power(C, -0.5)
        return R @ (2.0 * W @ W.T - np.eye(len(C))) @ R_inv

    return reflection(C_uu, U[:, :n_e]), reflection(C_vv, Vt[:n_e].T)


def population_minimizer(family: LinearEncoders, rng: np.random.Generator | None = None):
    r"""Encoder parameters (flat) of the CLIP loss's population minimiser for the family.

    ``"dot"``: the balanced factors of Proposition G1's :math:`A^*`
    (:func:`numerics.gaussian.lowrank_minimizer`); ``"cosine"`` has no closed
    form and gets the same factors, as a start.  ``"l2"``: a minimiser of the
    closed-form symmetric L2 loss (:func:`numerics.variants.l2_balanced_objective`
    with :math:`\lambda = 1/2`) from four starts.
    """
    m = family.model
    if family.similarity in ("dot", "cosine"):  # cosine has no closed form: A*'s factors start its fits
        return family.pack(*balanced_factors(gaussian.lowrank_minimizer(m.cov, m.n_u, m.n_e), m.n_e))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = minimize_factors(variants.l2_balanced_objective(m.cov, m.n_u, 0.5), m.n_u, m.n_v, m.n_e,
                               starts=4, rng=rng, init_scale=0.7, gtol=1e-10, restarts=0)
    return fit.x
