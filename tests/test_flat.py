"""numerics.flat: flat directions of losses with known invariances (hand-written population
CLIP in factors, with and without a learned scale; the L2 two-sided loss; CLIP on a batch under
cosine similarity; quadratics with a known null space), their names, and project_out."""
import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, settings, strategies as st

from numerics import variants
from numerics.batch_fit import batch_objective, fit_batch
from numerics.encoders import LinearEncoders, population_minimizer
from numerics.fit_statistics import effective_parameters, invariant_statistic
from numerics.flat import FlatDirections, flat_directions, project_out
from numerics.models import random_gaussian_model
from numerics.optimize import balanced_factors
from numerics.user_loss import ClipControl

BILINEAR = "the bilinear invariance (M G_u, M^-T G_v)"
ROTATIONS = "joint rotations of the embedding space"


def _model(seed, n_u=3, n_v=2, n_e=2):
    return random_gaussian_model(np.random.default_rng(seed), n_u, n_v, n_e=n_e, min_gap=0.15)


def _clip_factors(fam, with_scale=False, ignored=False):
    """Population CLIP, L(A) = -tr(A C_vu) + 1/2 tr(A C_vv A^T C_uu) (MATH.md §4.1), of
    A = s G_u^T G_v, written by hand: value and gradient in [G_u, G_v, theta]."""
    m = fam.model
    C_uu, C_uv, C_vv = m.cov[: m.n_u, : m.n_u], m.cov[: m.n_u, m.n_u:], m.cov[m.n_u:, m.n_u:]

    def fun(x):
        p = fam.unpack(x)
        s = p.theta[0] if with_scale else 1.0
        A0 = p.G_u.T @ p.G_v
        A = s * A0
        R = C_uu @ A @ C_vv - C_uv
        val = -np.sum(A * C_uv) + 0.5 * np.trace(A @ C_vv @ A.T @ C_uu)
        g = [s * (p.G_v @ R.T).ravel(), s * (p.G_u @ R).ravel()]
        if with_scale:
            g.append([np.sum(R * A0)])
        if ignored:
            g.append([0.0])
        return val, np.concatenate(g)

    return fun


def _span_distance(T, S):
    """Largest principal angle between the column spans of T and S."""
    return float(np.max(sla.subspace_angles(T, S)))


@pytest.mark.parametrize("n_e", [1, 2])
def test_population_clip_at_its_minimum_is_flat_along_the_bilinear_invariance_only(n_e):
    m = _model(0, 3, 2, n_e)
    fam = LinearEncoders(m, "dot")
    x = population_minimizer(fam)
    fun = _clip_factors(fam)
    assert np.max(np.abs(fun(x)[1])) < 1e-12  # a stationary point (closed form)
    fd = flat_directions(fun, x, lambda y: invariant_statistic(fam, y), fam, [])
    # Landscape (MATH.md §4.1): zero eigenvalues are the n_e^2 of the GL(n_e) orbit only
    assert fd.count == n_e**2
    assert fd.names == [BILINEAR + (f" ({n_e**2})" if n_e > 1 else "")]
    # the invariant B does not move along them
    assert fd.moving == [] and fd.tangents.shape == (m.n_u * m.n_v, 0)


def test_a_statistic_that_sees_the_invariance_is_moved_and_its_tangents_are_returned():
    m = _model(1, 3, 3, 2)
    fam = LinearEncoders(m, "dot")
    x = population_minimizer(fam)
    G_u, _ = fam.split(x)
    fd = flat_directions(_clip_factors(fam), x, lambda y: fam.split(y)[0].ravel(), fam, [])
    assert fd.count == 4
    assert fd.moving == ["4 of the 4 flat dimension(s)"]
    # d/dt of G_u along (M G_u, M^-T G_v) is E G_u: the tangents span {vec(E G_u)}
    expected = np.array([(E.reshape(2, 2) @ G_u).ravel() for E in np.eye(4)]).T
    assert fd.tangents.shape == (6, 4)
    # central differences of a quadratic map with h = 1e-4 * |x|: O(h^2) error ~1e-8
    assert _span_distance(fd.tangents, expected) < 1e-5


def test_l2_two_sided_loss_is_flat_along_joint_rotations():
    m = _model(2, 3, 2, 2)
    fam = LinearEncoders(m, "l2")
    x = population_minimizer(fam, np.random.default_rng(0))
    obj = variants.l2_balanced_objective(m.cov, 3, 0.5)

    def fun(y):
        v, (gu, gv) = obj(*fam.split(y))
        return v, np.concatenate([gu.ravel(), gv.ravel()])

    fd = flat_directions(fun, x, lambda y: fam.invariant(y).ravel(), fam, [])
    assert fd.count == 1 and fd.names == [ROTATIONS]  # so(2) is one-dimensional
    assert fd.moving == []
    # the rotation generator W G, W = [[0, 1], [-1, 0]], is the flat direction: the Hessian
    # annihilates it (to the difference error ~1e-8 x the largest curvature)
    G_u, G_v = fam.split(x)
    W = np.array([[0.0, 1.0], [-1.0, 0.0]])
    t = np.concatenate([(W @ G_u).ravel(), (W @ G_v).ravel()])
    h = 1e-5
    Ht = (fun(x + h * t)[1] - fun(x - h * t)[1]) / (2 * h)
    assert np.linalg.norm(Ht) < 1e-6 * np.linalg.norm(t)


def test_a_learned_scale_trading_against_the_encoders_is_found_and_named():
    m = _model(3, 3, 2, 2)
    fam = LinearEncoders(m, "dot")
    A_star = population_minimizer(fam)
    G_u, G_v = balanced_factors(fam.split(A_star)[0].T @ fam.split(A_star)[1] / 2.0, 2)
    x = fam.pack(G_u, G_v, [2.0])  # s G_u^T G_v = A*
    fun = _clip_factors(fam, with_scale=True)
    assert np.max(np.abs(fun(x)[1])) < 1e-12  # stationary to rounding (A* in closed form)

    def effective(y):
        return invariant_statistic(fam, effective_parameters(fam, y, fam.unpack(y).theta[0]))

    fd = flat_directions(fun, x, effective, fam, ["logit_scale"])
    # the GL(2) orbit (4) and the ray (c G_u, G_v, s / c) (1)
    assert fd.count == 5
    assert fd.names == [BILINEAR + " (4)", "'logit_scale' traded against the encoders"]
    assert fd.moving == []  # the effective invariant s B is still along all of them
    # without folding the scale in, the ray moves the statistic (B alone scales with c)
    fd_raw = flat_directions(fun, x, lambda y: invariant_statistic(fam, y), fam, ["logit_scale"])
    assert fd_raw.moving == ["1 of the 5 flat dimension(s)"]
    ray = np.concatenate([G_u.ravel(), np.zeros(G_v.size), [-2.0]])  # d/dc of (c G_u, G_v, s/c)
    dB = (invariant_statistic(fam, x + 1e-6 * ray) - invariant_statistic(fam, x - 1e-6 * ray)) / 2e-6
    # both derivatives by central differences (h = 1e-4 and 1e-6): angles ~1e-8
    assert _span_distance(fd_raw.tangents, dB[:, None]) < 1e-5


def test_a_learned_scalar_the_loss_ignores_is_named_so():
    m = _model(4, 2, 2, 1)
    fam = LinearEncoders(m, "dot")
    x = fam.pack(*fam.split(population_minimizer(fam)), [0.7])
    fd = flat_directions(_clip_factors(fam, ignored=True), x, lambda y: invariant_statistic(fam, y), fam,
                         ["bias"])
    assert fd.count == 2
    assert fd.names == [BILINEAR, "'bias' (the loss does not depend on it)"]
    assert fd.moving == []


def test_cosine_clip_on_a_batch_is_flat_along_both_norms_and_rotations():
    m = random_gaussian_model(np.random.default_rng(5), 2, 2, n_e=2, min_gap=0.45, max_correlation=0.8,
                              max_condition=4.0)
    fam = LinearEncoders(m, "cosine")
    rng = np.random.default_rng(5)
    U, V = fam.sample(rng, 32)
    control = ClipControl(scale=4.0, learn=True)
    fit = fit_batch(fam, U, V, np.concatenate([population_minimizer(fam), control.theta0]), control)
    assert fit.converged
    fun = batch_objective(fam, U, V, control)
    fd = flat_directions(fun, fit.x, lambda y: fam.logits(y, U[:4], V[:4])[0].ravel(), fam, ["logit_scale"])
    # cosine logits ignore each encoder's norm (2) and joint rotations (1 for n_e = 2)
    assert fd.count == 3
    assert sorted(fd.names) == sorted([ROTATIONS, "the norm of the u-encoder", "the norm of the v-encoder"])
    assert fd.moving == []  # the logits themselves do not move


def test_a_strictly_convex_loss_has_no_flat_direction():
    rng = np.random.default_rng(6)
    fam = LinearEncoders(_model(6), "dot")
    P = rng.standard_normal((fam.size, fam.size))
    P = P @ P.T + np.eye(fam.size)
    fd = flat_directions(lambda y: (0.5 * y @ P @ y, P @ y), rng.standard_normal(fam.size), lambda y: y, fam, [])
    assert isinstance(fd, FlatDirections)
    assert (fd.count, fd.names, fd.moving, fd.tangents.size) == (0, [], [], 0)
    # the zero loss: no curvature at all, nothing to report
    assert flat_directions(lambda y: (0.0, 0 * y), np.ones(fam.size), lambda y: y, fam, []).count == 0


def test_a_flat_subspace_orthogonal_to_every_invariance_is_counted_as_other():
    m = _model(7, 3, 2, 2)
    fam = LinearEncoders(m, "dot")
    x = population_minimizer(fam)
    G_u, G_v = fam.split(x)
    # the generators of the bilinear invariance at x, and a unit vector orthogonal to all of them
    gens = np.array([np.concatenate([(E.reshape(2, 2) @ G_u).ravel(), (-E.reshape(2, 2).T @ G_v).ravel()])
                     for E in np.eye(4)]).T
    q = np.random.default_rng(7).standard_normal(fam.size)
    Qg, _ = np.linalg.qr(gens)
    q -= Qg @ (Qg.T @ q)
    q /= np.linalg.norm(q)
    P = 1.5 * (np.eye(fam.size) - np.outer(q, q))  # P q = 0, every other eigenvalue 1.5
    fd = flat_directions(lambda y: (0.5 * (y - x) @ P @ (y - x), P @ (y - x)), x, lambda y: y, fam, [])
    assert fd.count == 1
    assert fd.names == ["1 other direction(s)"]
    assert fd.moving == ["1 of the 1 flat dimension(s)"]
    assert _span_distance(fd.tangents, q[:, None]) < 1e-6  # a linear statistic: differences exact to ~1e-12


@pytest.mark.parametrize("similarity", ["dot", "l2"])
def test_a_flat_direction_that_is_no_invariance_is_not_named_after_one(similarity):
    m = _model(8, 3, 2, 2)
    fam = LinearEncoders(m, similarity)
    rng = np.random.default_rng(8)
    d = fam.size
    q = rng.standard_normal(d)
    q /= np.linalg.norm(q)
    P = rng.standard_normal((d, d))
    Pr = np.eye(d) - np.outer(q, q)
    P = Pr @ (P @ P.T + np.eye(d)) @ Pr  # one flat direction q, random: no invariance is flat here
    x0 = rng.standard_normal(d)
    fd = flat_directions(lambda y: (0.5 * y @ P @ y, P @ y), x0, lambda y: y[:3], fam, [])
    assert fd.count == 1
    assert fd.names == ["1 other direction(s)"]


# --------------------------------------------------------------------------
# project_out
# --------------------------------------------------------------------------
@settings(deadline=None, max_examples=30)
@given(d=st.integers(2, 8), k_frac=st.floats(0, 1), rows=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_project_out_removes_exactly_the_span(d, k_frac, rows, seed):
    k = 1 + int(k_frac * (d - 1))
    rng = np.random.default_rng(seed)
    T = rng.standard_normal((d, k)) + np.eye(d, k)
    D = rng.standard_normal((rows, d))
    out = project_out(D, T)
    assert out.shape == D.shape
    # nothing left along the span (normal-equation projector as the reference; cond(T) ~ a few,
    # squared by the normal equations: ~1e-14)
    np.testing.assert_allclose(out @ T, 0.0, atol=1e-10)
    removed = D - out
    ref = D @ T @ np.linalg.solve(T.T @ T, T.T)
    np.testing.assert_allclose(removed, ref, atol=1e-9)
    # idempotent, and the orthogonal complement is untouched
    np.testing.assert_allclose(project_out(out, T), out, atol=1e-12)
    N = sla.null_space(T.T)
    if N.size:  # (orthonormal complement by SVD: rounding ~1e-15)
        np.testing.assert_allclose(out @ N, D @ N, atol=1e-10)


def test_project_out_with_no_tangent_or_a_repeated_one():
    rng = np.random.default_rng(9)
    D = rng.standard_normal((3, 5))
    assert project_out(D, np.zeros((5, 0))) is D
    t = rng.standard_normal(5)
    T = np.column_stack([t, 2 * t])  # rank 1: only one direction removed
    out = project_out(D, T)
    u = t / np.linalg.norm(t)
    # one unit vector, two routes (SVD and normalisation): rounding ~1e-16
    np.testing.assert_allclose(out, D - np.outer(D @ u, u), atol=1e-12)


# --------------------------------------------------------------------------
# which generators are named: quadratics flat along one chosen direction
# --------------------------------------------------------------------------
def _flat_along(fam, x, directions):
    """A quadratic around x whose flat subspace is exactly span(directions) (every other
    curvature 1.5), value and gradient."""
    Q, _ = np.linalg.qr(np.array(directions).T)
    P = 1.5 * (np.eye(fam.size) - Q @ Q.T)
    return lambda y: (0.5 * (y - x) @ P @ (y - x), P @ (y - x))


def test_a_coordinate_scaling_of_the_embeddings_is_no_rotation():
    """Under L2, scaling one embedding coordinate of both encoders (diag(1, 0) G) is no
    invariance: flat along it, the loss has an unnamed direction, not a joint rotation."""
    fam = LinearEncoders(_model(10, 3, 2, 2), "l2")
    x = np.random.default_rng(10).standard_normal(fam.size)
    G_u, G_v = fam.split(x)
    D = np.diag([1.0, 0.0])
    fd = flat_directions(_flat_along(fam, x, [fam.pack(D @ G_u, D @ G_v)]), x, lambda y: y, fam, [])
    assert fd.count == 1 and fd.names == ["1 other direction(s)"]
    # and the rotation itself is named (one generator for n_e = 2)
    W = np.array([[0.0, 1.0], [-1.0, 0.0]])
    fd = flat_directions(_flat_along(fam, x, [fam.pack(W @ G_u, W @ G_v)]), x, lambda y: y, fam, [])
    assert fd.count == 1 and fd.names == [ROTATIONS]


def test_each_cosine_norm_is_named_only_when_it_is_flat():
    """Under cosine the u-norm (G_u, 0) and the v-norm (0, G_v) are separate invariances: a loss
    flat along one only is named after that one.  (Zero entries in the encoders are ordinary
    values.)"""
    fam = LinearEncoders(_model(11, 3, 2, 2), "cosine")
    x = np.random.default_rng(11).standard_normal(fam.size)
    G_u, G_v = fam.split(x)
    G_u[0, 0], G_v[1, 1] = 0.0, 0.0
    x = fam.pack(G_u, G_v)
    u_norm, v_norm = fam.pack(G_u, 0 * G_v), fam.pack(0 * G_u, G_v)
    U_NORM, V_NORM = "the norm of the u-encoder", "the norm of the v-encoder"
    for dirs, names in [([u_norm], [U_NORM]), ([v_norm], [V_NORM]), ([u_norm, v_norm], [U_NORM, V_NORM])]:
        fd = flat_directions(_flat_along(fam, x, dirs), x, lambda y: y, fam, [])
        assert fd.count == len(dirs) and fd.names == names


def test_the_hessian_is_differenced_with_the_documented_step():
    """Central differences of the gradient with step 1e-4 max(1, |x|_inf) (FLAT_RTOL's budget)."""
    fam = LinearEncoders(_model(12), "dot")
    for scale in (0.5, 3.0):
        x = np.random.default_rng(12).uniform(-1, 1, fam.size)
        x *= scale / np.max(np.abs(x))
        points = []

        def fun(y):
            points.append(np.array(y))
            return 0.5 * float((y - x) @ (y - x)), y - x

        flat_directions(fun, x, lambda y: y, fam, [])
        h = 1e-4 * max(1.0, scale)
        steps = np.array([np.max(np.abs(p - x)) for p in points])  # x +- h e_i (rounding of x + h)
        assert np.all(np.abs(steps - h) <= 1e-9 * h), steps
        assert len(points) == 2 * fam.size


def test_rank_counts_singular_values_strictly_above_the_relative_tolerance():
    from numerics.flat import _rank

    assert _rank(np.zeros((4, 0))) == 0 and _rank(np.zeros((0, 3))) == 0
    assert _rank(np.diag([1.0, 1e-3])) == 1            # equal to tol x max(1, s_max): not counted
    assert _rank(np.diag([1.0, 1.5e-3])) == 2
    assert _rank(np.diag([4.0, 3e-3])) == 1            # relative to s_max = 4 above 1
    assert _rank(np.diag([0.5, 1.5e-3])) == 2          # and to 1 below it
    assert _rank(np.diag([1.0, 5e-7]), 1e-6) == 1
    assert _rank(np.zeros((3, 2))) == 0


def test_the_statistic_is_differenced_with_the_documented_step_and_unit_directions():
    """The statistic's derivative along each unit flat direction q: central differences with
    step 1e-4 max(1, |x|_inf); for a linear statistic it is q itself (unit norm)."""
    fam = LinearEncoders(_model(14), "dot")
    x = np.random.default_rng(14).uniform(-0.5, 0.5, fam.size)
    q = np.random.default_rng(15).standard_normal(fam.size)
    points = []

    def stat(y):
        points.append(np.array(y))
        return 3.0 * y

    fd = flat_directions(_flat_along(fam, x, [q]), x, stat, fam, [])
    assert fd.count == 1 and len(points) == 3
    np.testing.assert_array_equal(points[0], x)
    h = 1e-4  # max |x| < 1
    assert all(abs(np.max(np.abs(p - x)) - h * np.max(np.abs(fd.tangents)) / 3.0) <= 1e-9 * h
               for p in points[1:])
    # d/dt 3 (x + t q) = 3 q: norm 3 (differences of a linear map: rounding ~1e-12 relative)
    assert abs(np.linalg.norm(fd.tangents) - 3.0) < 1e-9
    assert _span_distance(fd.tangents, q[:, None]) < 1e-6


def _flat_along_e0(fam):
    """x = 0 and a diagonal quadratic flat along e_0 exactly (curvature 1 elsewhere)."""
    p = np.ones(fam.size)
    p[0] = 0.0
    return np.zeros(fam.size), lambda y: (0.5 * float(y @ (p * y)), p * y)


@pytest.mark.parametrize("s0_norm, slope, moves", [
    (1.0, 1e-3, False),      # exactly MOVE_RTOL |s0|: does not move (strict)
    (1.0, 2e-3, True),
    (10.0, 1e-3, False),     # relative to |s0| = 10: threshold 1e-2
    (10.0, 2e-2, True),
    (0.01, 1e-4, True),      # |s0| < 1: threshold 1e-5, not 1e-3
    (0.01, 5e-6, False),
    (0.0, 1e-5, True),       # a zero statistic: threshold 1e-3 x 1e-12
])
def test_a_flat_direction_moves_the_statistic_above_move_rtol_of_its_norm(s0_norm, slope, moves):
    """A statistic worth s0 at x and s0 +- slope h e at x +- h q (h the documented step, exact
    dyadic arithmetic at the boundary): its derivative along the flat direction is slope."""
    fam = LinearEncoders(_model(16), "dot")
    x, fun = _flat_along_e0(fam)
    h = 1e-4  # |x| = 0

    def stat(y):
        return np.array([s0_norm, slope * h * np.sign(y[0] - x[0])])

    fd = flat_directions(fun, x, stat, fam, [])
    assert fd.count == 1
    assert fd.moving == (["1 of the 1 flat dimension(s)"] if moves else [])
    assert fd.tangents.shape == (2, 1 if moves else 0)


def test_curvature_at_flat_rtol_of_the_largest_is_flat():
    """Flat: |eigenvalue| <= FLAT_RTOL x the largest (the boundary included), relative to it."""
    fam = LinearEncoders(_model(17), "dot")
    for top, low, count in [(1.0, 1e-5, 1), (1.0, 2e-5, 0), (100.0, 5e-4, 1), (100.0, 2e-3, 0)]:
        p = np.full(fam.size, top)
        p[2] = low
        fd = flat_directions(lambda y: (0.5 * float(y @ (p * y)), p * y), np.zeros(fam.size), lambda y: y, fam, [])
        assert fd.count == count, (top, low)


def test_a_small_generator_near_the_flat_direction_is_not_counted_as_inside():
    """Each generator is normalised on its own before its distance to the flat subspace is
    measured: a generator of small norm (rows of the encoders 200 times smaller) at 0.05 rad
    from the flat direction is not inside it (distance 0.05 > INSIDE_RTOL)."""
    fam = LinearEncoders(_model(13, 3, 2, 2), "dot")
    rng = np.random.default_rng(13)
    G_u, G_v = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    G_u[1] *= 0.005
    G_v[0] *= 0.005
    x = fam.pack(G_u, G_v)
    E = np.array([[0.0, 1.0], [0.0, 0.0]])
    g = fam.pack(E @ G_u, -E.T @ G_v)  # the generator (a, b) = (0, 1): norm ~1e-2
    g /= np.linalg.norm(g)
    w = rng.standard_normal(fam.size)
    w -= g * (g @ w)
    w /= np.linalg.norm(w)
    q = np.cos(0.05) * g + np.sin(0.05) * w
    fd = flat_directions(_flat_along(fam, x, [q]), x, lambda y: y, fam, [])
    assert fd.count == 1 and fd.names == ["1 other direction(s)"]
    # along the generator itself it is the invariance
    fd = flat_directions(_flat_along(fam, x, [g]), x, lambda y: y, fam, [])
    assert fd.count == 1 and fd.names == [BILINEAR]


def test_two_generators_of_an_invariance_are_counted():
    fam = LinearEncoders(_model(18, 3, 2, 2), "dot")
    x = np.random.default_rng(18).standard_normal(fam.size)
    G_u, G_v = fam.split(x)
    gens = [fam.pack(E @ G_u, -E.T @ G_v) for E in (np.diag([1.0, 0.0]), np.diag([0.0, 1.0]))]
    fd = flat_directions(_flat_along(fam, x, gens), x, lambda y: y, fam, [])
    assert fd.count == 2 and fd.names == [BILINEAR + " (2)"]


def test_project_out_ignores_a_direction_below_1e_8_of_the_largest():
    """Tangents that differ by rounding-level amounts (1e-9 relative) span one direction."""
    rng = np.random.default_rng(19)
    t = rng.standard_normal(6)
    t /= np.linalg.norm(t)
    w = rng.standard_normal(6)
    w -= t * (t @ w)
    w /= np.linalg.norm(w)
    T = 1000.0 * np.column_stack([t, t + 1e-9 * w])  # singular values ~1414 and ~7e-7
    D = rng.standard_normal((2, 6))
    out = project_out(D, T)
    # only t removed (one unit vector: rounding ~1e-15); the w component is kept
    np.testing.assert_allclose(out, D - np.outer(D @ t, t), atol=1e-12)
    np.testing.assert_allclose(out @ w, D @ w, atol=1e-12)


def test_a_small_statistic_moved_by_a_small_derivative_is_counted():
    fam = LinearEncoders(_model(16), "dot")
    x, fun = _flat_along_e0(fam)
    # |s0| = 1e-6, derivative 5e-7 along e_0 (step h = 1e-4): it moves (5e-7 > 1e-3 x 1e-6)
    fd = flat_directions(fun, x, lambda y: np.array([1e-6, 5e-7 * 1e-4 * np.sign(y[0])]), fam, [])
    assert fd.tangents.shape == (2, 1)
    assert fd.moving == ["1 of the 1 flat dimension(s)"]


def test_project_out_keeps_a_direction_at_exactly_1e_8_of_the_largest():
    """The kept directions are those with singular value strictly above 1e-8 of the largest."""
    T = np.zeros((5, 2))
    T[0, 0], T[1, 1] = 1.0, 1e-8  # singular values exactly 1 and 1e-8 (a diagonal SVD)
    D = np.arange(10.0).reshape(2, 5)
    out = project_out(D, T)
    want = D.copy()
    want[:, 0] = 0.0  # only e_0 removed
    np.testing.assert_array_equal(out, want)


# --------------------------------------------------------------------------
# naming the learned scalars of the unexplained flat directions
# --------------------------------------------------------------------------
def _diag_quadratic(d, diag, pairs=()):
    """Gradient H y of a quadratic at x = 0, H diagonal (exact differences) plus symmetric pairs."""
    H = np.diag(np.asarray(diag, dtype=float))
    for (i, j), v in pairs:
        H[i, j] = H[j, i] = v
    return np.zeros(d), (lambda y: (0.5 * float(y @ H @ y), H @ y))


@pytest.mark.parametrize("top, curvature, name", [
    (1.0, 1e-5, "'b' (the loss does not depend on it)"),   # exactly FLAT_RTOL x top: independent
    (4.0, 2e-5, "'b' (the loss does not depend on it)"),   # relative to the largest curvature
    (4.0, 1e-3, None),                                       # curved: not flat at all
])
def test_a_learned_scalar_with_no_curvature_is_named_independent(top, curvature, name):
    fam = LinearEncoders(_model(20), "dot")
    d = fam.size + 1
    diag = np.full(d, top)
    diag[-1] = curvature
    x, fun = _diag_quadratic(d, diag)
    fd = flat_directions(fun, x, lambda y: y, fam, ["b"])
    assert fd.names == ([name] if name else [])


def test_a_scalar_coupled_to_the_encoders_is_not_independent_even_without_its_own_curvature():
    """H[b, b] = 0 but H[b, 0] != 0: the loss depends on b; the flat direction (an encoder
    coordinate, no invariance) is unnamed."""
    fam = LinearEncoders(_model(21), "dot")
    d = fam.size + 1
    diag = np.ones(d)
    diag[1], diag[-1] = 0.0, 0.0
    x, fun = _diag_quadratic(d, diag, [((0, d - 1), 0.5)])
    fd = flat_directions(fun, x, lambda y: y, fam, ["b"])
    assert fd.count == 1 and fd.names == ["1 other direction(s)"]


def test_each_learned_scalar_is_looked_up_at_its_own_coordinate():
    """Two scalars: the first curved, the second ignored by the loss."""
    fam = LinearEncoders(_model(22), "dot")
    d = fam.size + 2
    diag = np.ones(d)
    diag[-1] = 0.0
    x, fun = _diag_quadratic(d, diag)
    fd = flat_directions(fun, x, lambda y: y, fam, ["a", "b"])
    assert fd.names == ["'b' (the loss does not depend on it)"]
    diag[-1], diag[-2] = 1.0, 0.0
    x, fun = _diag_quadratic(d, diag)
    assert flat_directions(fun, x, lambda y: y, fam, ["a", "b"]).names == ["'a' (the loss does not depend on it)"]


def test_a_scalar_is_traded_only_above_5_percent_of_a_flat_direction():
    """A flat direction along an encoder coordinate with a component w on the scalar: named
    'traded' for w = 0.2, not for w = 0.03."""
    fam = LinearEncoders(_model(23), "dot")
    d = fam.size + 1
    x = np.zeros(d)
    for w, traded in ((0.2, True), (0.03, False)):
        q = np.zeros(d)
        q[1], q[-1] = 1.0, w
        q /= np.linalg.norm(q)
        P = np.eye(d) - np.outer(q, q)
        fd = flat_directions(lambda y: (0.5 * float(y @ P @ y), P @ y), x, lambda y: y, fam, ["b"])
        assert fd.count == 1
        assert fd.names == (["'b' traded against the encoders"] if traded else ["1 other direction(s)"])


def test_the_statistic_step_grows_with_the_parameters():
    """h = 1e-4 max(1, |x|_inf): at |x|_inf = 3 the statistic is evaluated at x +- 3e-4 q."""
    fam = LinearEncoders(_model(24), "dot")
    x = np.random.default_rng(24).uniform(-1, 1, fam.size)
    x *= 3.0 / np.max(np.abs(x))
    q = np.random.default_rng(25).standard_normal(fam.size)
    q /= np.linalg.norm(q)
    points = []

    def stat(y):
        points.append(np.array(y))
        return y

    fd = flat_directions(_flat_along(fam, x, [q]), x, stat, fam, [])
    assert fd.count == 1 and len(points) == 3
    steps = [float(np.linalg.norm(p - x)) for p in points[1:]]
    np.testing.assert_allclose(steps, 3e-4, rtol=1e-9)
