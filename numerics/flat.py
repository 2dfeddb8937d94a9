r"""Flat directions of a variant's batch loss at its fit, named, and whether they move
the claim's statistic.

A loss with its own learned scalars often has minimisers that form a set: a
learnable temperature under dot similarity trades against the encoders' norm
(a ray), a bias that shifts every logit is invisible to the softmaxes, and every
similarity has its own invariances of the encoders (the bilinear
:math:`(MG_u, M^{-T}G_v)`, joint rotations, and under cosine the norm of each
encoder).  Where the optimiser stops along such a direction is arbitrary, so
the verifier must never read its statistic there.

:func:`flat_directions` takes the Hessian of the batch loss in all the fitted
parameters ``[G_u, G_v, theta]`` (central differences of the gradient), keeps
the eigenvectors whose curvature is below :data:`FLAT_RTOL` of the largest,
names them against the known invariances, and measures how far each moves the
claim's statistic.  The statistics use the *effective* similarity (the learned
scale folded in), so the expected flat directions leave them still; one that
moves them is returned as a tangent, and the verifier compares modulo its span.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .optimize import finite_difference_hessian

__all__ = ["FLAT_RTOL", "MOVE_RTOL", "FlatDirections", "flat_directions", "project_out"]

#: Curvature below this fraction of the largest is flat.  The Hessian is a
#: central difference of the gradient with step 1e-4 x max(1, |x|): its error is
#: about eps/1e-4 ~ 2e-12 with an exact gradient and 4e-7 with a differenced one
#: (eps^(2/3)/1e-4), both below 1e-5, while the curvature of a well-posed
#: direction of these small models is 1e-3 of the largest or more.
FLAT_RTOL = 1e-5
#: A unit generator of an invariance lies in the flat subspace when its distance to it is
#: below this: an exact invariance is flat to the Hessian's error (about 1e-6 relative,
#: FLAT_RTOL), a direction that merely overlaps the flat subspace is O(1) away.
INSIDE_RTOL = 1e-3
#: A flat direction moves the statistic if its derivative along it exceeds this
#: fraction of the statistic's norm (an invariance moves it by O(h^2) ~ 1e-8).
MOVE_RTOL = 1e-3


@dataclass
class FlatDirections:
    """Flat directions found at one fit.

    Attributes
    ----------
    count : int
        Dimension of the flat subspace.
    names : list of str
        What they are, in words (for the summary and the JSON).
    moving : list of str
        The names of those that move the claim's statistic.
    tangents : ndarray, shape (d, k)
        The statistic's derivatives along the flat directions that move it
        (``k = 0`` when none does): the span the verifier compares modulo.
    """

    count: int = 0
    names: list = field(default_factory=list)
    moving: list = field(default_factory=list)
    tangents: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def _generators(similarity, G_u, G_v, n_theta):
    """Named groups of tangent vectors of the encoders' invariances."""
    n_e = G_u.shape[0]
    pad = np.zeros(n_theta)
    vec = lambda a, b: np.concatenate([a.ravel(), b.ravel(), pad])  # noqa: E731
    groups = []
    if similarity == "dot":
        gens = []
        for a in range(n_e):
            for b in range(n_e):
                E = np.zeros((n_e, n_e))
                E[a, b] = 1.0
                gens.append(vec(E @ G_u, -E.T @ G_v))
        groups.append(("the bilinear invariance (M G_u, M^-T G_v)", gens))
    else:
        gens = []
        for a in range(n_e):
            for b in range(a + 1, n_e):
                W = np.zeros((n_e, n_e))
                W[a, b], W[b, a] = 1.0, -1.0
                gens.append(vec(W @ G_u, W @ G_v))
        if gens:
            groups.append(("joint rotations of the embedding space", gens))
        if similarity == "cosine":
            groups.append(("the norm of the u-encoder", [vec(G_u, 0 * G_v)]))
            groups.append(("the norm of the v-encoder", [vec(0 * G_u, G_v)]))
    return groups


def _rank(M, tol=1e-3):
    if M.size == 0:
        return 0
    s = np.linalg.svd(M, compute_uv=False)
    return int(np.sum(s > tol * max(1.0, s[0]))) if s.size else 0


def flat_directions(fun, x, statistic, family, theta_names) -> FlatDirections:
    r"""Flat directions of ``fun`` (``x -> (value, gradient)``) at ``x`` (module docstring).

    ``statistic(x)`` is the claim's statistic; ``family`` the
    :class:`numerics.encoders.LinearEncoders` whose flat parameters ``x`` are
    (:meth:`~numerics.encoders.LinearEncoders.unpack`), with learned scalars ``theta_names``.
    """
    x = np.asarray(x, dtype=np.float64)
    similarity, n_theta = family.similarity, family.unpack(x).theta.size
    H, _ = finite_difference_hessian(lambda y: fun(y)[1], x, step=1e-4)
    evals, evecs = np.linalg.eigh(H)
    top = float(np.max(np.abs(evals)))
    if top == 0 or not np.all(np.isfinite(evals)):
        return FlatDirections()
    Q = evecs[:, np.abs(evals) <= FLAT_RTOL * top]
    k = Q.shape[1]
    if k == 0:
        return FlatDirections()
    G_u, G_v = family.split(x)
    names, explained = [], np.zeros((x.size, 0))
    for name, gens in _generators(similarity, G_u, G_v, n_theta):
        Gm = np.array(gens).T
        Gm = Gm / np.maximum(np.linalg.norm(Gm, axis=0), 1e-300)
        # An invariance is named only for its generators that lie in the flat subspace (not
        # those that merely overlap it): the rank of the part of span(Gm) inside span(Q).
        inside = Gm[:, np.linalg.norm(Gm - Q @ (Q.T @ Gm), axis=0) <= INSIDE_RTOL]
        r = _rank(Q.T @ inside) if inside.size else 0
        if r:
            names.append(f"{name} ({r})" if r > 1 else name)
            explained = np.hstack([explained, Q @ (Q.T @ inside)])
    # What the invariances do not explain: name the learned scalars it involves.
    if explained.shape[1]:
        B, s, _ = np.linalg.svd(explained, full_matrices=False)
        B = B[:, s > 1e-3 * s[0]]
        R = Q - B @ (B.T @ Q)
    else:
        R = Q
    rest = _rank(R)
    if rest:
        for i, pname in enumerate(theta_names):
            j = family.size + i  # the i-th learned scalar's coordinate
            e = np.zeros(x.size)
            e[j] = 1.0
            if abs(H[j, j]) <= FLAT_RTOL * top and np.all(np.abs(H[j]) <= FLAT_RTOL * top):
                names.append(f"'{pname}' (the loss does not depend on it)")
            elif float(np.linalg.norm(R.T @ e)) > 0.05:
                names.append(f"'{pname}' traded against the encoders")
        unnamed = rest - sum(n.startswith("'") for n in names)
        if unnamed > 0:
            names.append(f"{unnamed} other direction(s)")
    # Which of them move the statistic.
    s0 = np.asarray(statistic(x), dtype=np.float64)
    h = 1e-4 * max(1.0, float(np.max(np.abs(x))))
    T = np.array([(statistic(x + h * q) - statistic(x - h * q)) / (2 * h) for q in Q.T]).T
    moves = np.linalg.norm(T, axis=0) > MOVE_RTOL * max(float(np.linalg.norm(s0)), 1e-12)
    moving = []
    if np.any(moves):  # the eigenbasis of the flat subspace is arbitrary: count the span moved,
        # relative to its own largest derivative (as the test above is relative to |s0|)
        sv = np.linalg.svd(T[:, moves], compute_uv=False)
        moving = [f"{int(np.sum(sv > 1e-6 * sv[0]))} of the {k} flat dimension(s)"]
    return FlatDirections(count=k, names=names, moving=moving, tangents=T[:, moves])


def project_out(D, tangents):
    """``D`` (..., d) with its components along the span of ``tangents`` (d, k) removed."""
    if tangents.size == 0:
        return D
    U, s, _ = np.linalg.svd(tangents, full_matrices=False)
    U = U[:, s > 1e-8 * s[0]]
    return D - (D @ U) @ U.T
