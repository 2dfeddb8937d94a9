r"""Tests of the notebooks' helper modules: IDX loader, synthetic ocean, shared helpers, runner.

The notebooks themselves are executed as notebooks in quick mode by CI
(``notebooks/_execute.py``), not here.
"""
from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notebooks"))

import _common  # noqa: E402
import _execute  # noqa: E402
import _mnist  # noqa: E402
import _ocean  # noqa: E402
from numerics import InvalidInputError  # noqa: E402
from numerics.infonce import logits_vjp  # noqa: E402


# --------------------------------------------------------------------------
# IDX loader
# --------------------------------------------------------------------------
def _idx_bytes(code, shape, payload):
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, dtype=">u4").tobytes() + payload


def test_load_idx_reads_hand_written_ubyte_images(tmp_path):
    # bytes laid out by hand from the format description, not by write_idx
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    path = tmp_path / "imgs-idx3-ubyte"
    path.write_bytes(_idx_bytes(0x08, images.shape, images.tobytes()))
    got = _mnist.load_idx(path)
    assert got.shape == (3, 4, 5) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, images)


def test_load_idx_reads_big_endian_types_and_gzip(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(7, 2)).astype(">f8")
    path = tmp_path / "x-idx2-double.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(_idx_bytes(0x0E, values.shape, values.tobytes()))
    got = _mnist.load_idx(path)
    np.testing.assert_array_equal(got, values.astype(np.float64))
    ints = np.array([-3, 70000, 5], dtype=">i4")
    path = tmp_path / "ints-idx1"
    path.write_bytes(_idx_bytes(0x0C, ints.shape, ints.tobytes()))
    np.testing.assert_array_equal(_mnist.load_idx(path), [-3, 70000, 5])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_idx_round_trips(tmp_path, dtype):
    rng = np.random.default_rng(2)
    arr = (rng.normal(size=(4, 3)) * 50).astype(dtype)
    path = _mnist.write_idx(tmp_path / "a.idx.gz", arr)
    np.testing.assert_array_equal(_mnist.load_idx(path), arr)


@pytest.mark.parametrize(
    "raw, what",
    [
        (b"\x01\x00\x08\x01" + np.array([2], ">u4").tobytes() + b"\x00\x00", "magic"),
        (b"\x00\x00\x07\x01" + np.array([2], ">u4").tobytes() + b"\x00\x00", "type code"),
        (b"\x00\x00\x08\x01" + np.array([3], ">u4").tobytes() + b"\x00\x00", "bytes"),
        (b"\x00\x00\x08\x02" + np.array([3], ">u4").tobytes(), "header"),
    ],
)
def test_load_idx_rejects_malformed_files(tmp_path, raw, what):
    path = tmp_path / "bad-idx"
    path.write_bytes(raw)
    with pytest.raises(InvalidInputError, match=what):
        _mnist.load_idx(path)


def test_load_mnist_from_a_folder_of_idx_files(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6, dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(0x08, images.shape, images.tobytes()))
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(_idx_bytes(0x08, labels.shape, labels.tobytes()))
    x, y, shape, source = _mnist.load_dataset(tmp_path)
    assert shape == (28, 28) and source.startswith("mnist:")
    np.testing.assert_allclose(x, images.reshape(6, -1) / 255.0, rtol=0, atol=0)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(InvalidInputError, match="t10k"):
        _mnist.load_mnist(tmp_path, "t10k")


def test_load_mnist_rejects_mismatched_lengths(tmp_path):
    images = np.zeros((5, 2, 2), np.uint8)
    labels = np.zeros(4, np.uint8)
    _mnist.write_idx(tmp_path / "train-images-idx3-ubyte", images)
    _mnist.write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    with pytest.raises(InvalidInputError, match="matching length"):
        _mnist.load_mnist(tmp_path)


# --------------------------------------------------------------------------
# synthetic ocean
# --------------------------------------------------------------------------
WV = _ocean.mode_wavevectors(1)


def test_wavevectors_and_prior_scale():
    assert WV.shape == (4, 2)
    assert {tuple(w) for w in WV} == {(1, 0), (0, 1), (1, 1), (1, -1)}
    assert len(_ocean.mode_wavevectors(2)) == 12  # (5*5 - 1) / 2 half-plane wavevectors
    # the prior's expected mean square speed over the cell, by Monte Carlo on a grid
    rng = np.random.default_rng(4)
    std = _ocean.prior_std(WV, rms_speed=1.0)
    coef = _ocean.sample_coefficients(rng, 4000, std)
    g = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    X, Y = np.meshgrid(g, g)
    ms = np.mean(_ocean.velocity(coef, X, Y, WV) ** 2) * 2  # two components
    # Monte Carlo: mean of 4000 independent squared-speed averages; relative sd < 0.03, 5 sigma
    assert abs(ms - 1.0) < 0.15


def test_velocity_is_the_rotated_gradient_of_the_streamfunction():
    # central differences of psi, independent of the velocity code; error O(h^2) * |psi'''|
    rng = np.random.default_rng(5)
    coef = rng.normal(size=(3, 8))
    x, y = rng.uniform(0, 2 * np.pi, size=(2, 50))
    h = 1e-5
    psi = lambda x_, y_: _ocean.streamfunction(coef, x_, y_, WV)  # noqa: E731
    u_fd = -(psi(x, y + h) - psi(x, y - h)) / (2 * h)
    v_fd = (psi(x + h, y) - psi(x - h, y)) / (2 * h)
    vel = _ocean.velocity(coef, x, y, WV)
    scale = np.abs(coef).sum(1, keepdims=True) * 2
    assert np.max(np.abs(vel[:, 0] - u_fd) / scale) < 1e-8
    assert np.max(np.abs(vel[:, 1] - v_fd) / scale) < 1e-8


def test_velocity_is_divergence_free():
    rng = np.random.default_rng(6)
    coef = rng.normal(size=(2, 8))
    x, y = rng.uniform(0, 2 * np.pi, size=(2, 40))
    h = 1e-5
    vel = lambda x_, y_: _ocean.velocity(coef, x_, y_, WV)  # noqa: E731
    div = (vel(x + h, y)[:, 0] - vel(x - h, y)[:, 0] + vel(x, y + h)[:, 1] - vel(x, y - h)[:, 1]) / (2 * h)
    # rounding of the central difference: eps * |u| / h ~ 1e-11 per term
    assert np.max(np.abs(div)) < 1e-8


def test_rk4_matches_the_exact_solution_of_a_shear_flow():
    # psi = a cos(y): u = a sin(y), v = 0, so x(t) = x0 + a sin(y0) t and y(t) = y0 exactly
    coef = np.zeros((1, 8))
    j = [tuple(w) for w in WV].index((0, 1))
    coef[0, 2 * j] = 0.7
    starts = np.array([[0.3, 0.4], [1.0, 2.5], [4.0, 5.9]])
    tracks = _ocean.advect(coef, starts, WV, dt=0.1, n_steps=20, every=5)
    t = np.arange(5) * 0.5
    expected_x = starts[:, :1] + 0.7 * np.sin(starts[:, 1:]) * t
    np.testing.assert_allclose(tracks[0, :, :, 0], expected_x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tracks[0, :, :, 1], np.repeat(starts[:, 1:], 5, axis=1), rtol=0, atol=1e-14)


def _cellular_flow():
    # psi = sin x sin y = (cos(x - y) - cos(x + y)) / 2: closed orbits with non-uniform speed
    coef = np.zeros((1, 8))
    wv = [tuple(w) for w in WV]
    coef[0, 2 * wv.index((1, -1))] = 0.5
    coef[0, 2 * wv.index((1, 1))] = -0.5
    return coef


def test_cellular_flow_coefficients_give_sin_sin():
    coef = _cellular_flow()
    rng = np.random.default_rng(7)
    x, y = rng.uniform(0, 2 * np.pi, size=(2, 20))
    np.testing.assert_allclose(_ocean.streamfunction(coef, x, y, WV)[0], np.sin(x) * np.sin(y), atol=1e-14)


def test_rk4_conserves_the_streamfunction_with_fourth_order_error():
    # in a steady flow psi is constant along trajectories; RK4's global error is O(dt^4)
    coef = _cellular_flow()
    starts = np.array([[0.5, 0.7], [2.0, 1.0], [1.2, 2.9]])
    psi0 = np.sin(starts[:, 0]) * np.sin(starts[:, 1])
    errors = []
    for dt in (0.2, 0.1, 0.05):
        n = int(round(4.0 / dt))
        tracks = _ocean.advect(coef, starts, WV, dt=dt, n_steps=n, every=n)
        end = tracks[0, :, -1]
        errors.append(np.max(np.abs(np.sin(end[:, 0]) * np.sin(end[:, 1]) - psi0)))
    errors = np.array(errors)
    assert errors[-1] < 1e-5
    orders = np.log2(errors[:-1] / errors[1:])
    # halving dt divides a fourth-order error by 16 (order 4); allow 3.5..4.6 for the
    # higher-order terms still present at dt = 0.2
    assert np.all((orders > 3.5) & (orders < 4.6)), orders


def test_advect_validates_its_arguments():
    coef = np.zeros((1, 8))
    starts = np.zeros((2, 2))
    with pytest.raises(InvalidInputError, match="every"):
        _ocean.advect(coef, starts, WV, dt=0.1, n_steps=10, every=3)
    with pytest.raises(InvalidInputError, match="dt"):
        _ocean.advect(coef, starts, WV, dt=-0.1, n_steps=10)
    with pytest.raises(InvalidInputError, match="coef"):
        _ocean.advect(np.zeros((1, 7)), starts, WV, dt=0.1, n_steps=10)
    with pytest.raises(InvalidInputError, match="starts"):
        _ocean.advect(coef, np.zeros((2, 3)), WV, dt=0.1, n_steps=10)


def test_observe_drops_release_and_adds_noise_of_the_stated_size():
    rng = np.random.default_rng(8)
    tracks = np.zeros((200, 3, 6, 2))
    obs = _ocean.observe(tracks, 0.1, rng)
    assert obs.shape == (200, 3 * 5 * 2)
    # sample sd of 6000 normals: relative standard error 1/sqrt(2*6000) ~ 0.009, 5 sigma
    assert abs(obs.std() / 0.1 - 1) < 0.05


# --------------------------------------------------------------------------
# shared helpers: losses and their gradients
# --------------------------------------------------------------------------
def _central_difference(f, z, idx, h=1e-6):
    E = np.zeros_like(z)
    E[idx] = h
    return (f(z + E) - f(z - E)) / (2 * h)


@pytest.mark.parametrize("similarity", ["dot", "l2", "cosine"])
@pytest.mark.parametrize("conditional", ["u|v", "v|u"])
def test_one_sided_loss_gradient_matches_finite_differences(similarity, conditional):
    rng = np.random.default_rng(9)
    za, zb = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    loss, ga, gb = _common.one_sided_loss_and_grad(za, zb, 0.7, similarity, conditional)
    for idx in [(0, 0), (3, 2), (5, 1)]:
        fa = _central_difference(lambda z: _common.one_sided_loss_and_grad(z, zb, 0.7, similarity, conditional)[0], za, idx)
        fb = _central_difference(lambda z: _common.one_sided_loss_and_grad(za, z, 0.7, similarity, conditional)[0], zb, idx)
        # central difference: truncation h^2 |L'''| plus rounding eps/h, both below 1e-8
        assert abs(fa - ga[idx]) < 1e-7 and abs(fb - gb[idx]) < 1e-7


def _one_sided_by_loops(za, zb, tau, conditional):
    # MATH.md §3 written out term by term with the dot similarity
    n = za.shape[0]
    F = [[float(za[i] @ zb[j]) / tau for j in range(n)] for i in range(n)]
    total = 0.0
    for i in range(n):
        others = [F[j][i] for j in range(n)] if conditional == "u|v" else [F[i][j] for j in range(n)]
        total += -F[i][i] + np.log(sum(np.exp(x) for x in others))
    return total / n


@pytest.mark.parametrize("conditional", ["u|v", "v|u"])
def test_one_sided_loss_matches_the_formula_written_out(conditional):
    rng = np.random.default_rng(11)
    za, zb = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    loss = _common.one_sided_loss_and_grad(za, zb, 0.4, "dot", conditional)[0]
    # both sides add 7 terms of order 10 in float64
    assert abs(loss - _one_sided_by_loops(za, zb, 0.4, conditional)) < 1e-12


def test_one_sided_losses_average_to_the_symmetric_loss():
    # L_N is the mean of the row-wise and column-wise cross-entropies (MATH.md §2)
    rng = np.random.default_rng(10)
    za, zb = rng.normal(size=(9, 4)), rng.normal(size=(9, 4))
    for sim in ("dot", "l2", "cosine"):
        sym = _common.clip_loss_and_grad(za, zb, 0.5, sim)
        uv = _common.one_sided_loss_and_grad(za, zb, 0.5, sim, "u|v")
        vu = _common.one_sided_loss_and_grad(za, zb, 0.5, sim, "v|u")
        assert abs(sym[0] - 0.5 * (uv[0] + vu[0])) < 1e-12
        np.testing.assert_allclose(sym[1], 0.5 * (uv[1] + vu[1]), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(sym[2], 0.5 * (uv[2] + vu[2]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("similarity", ["dot", "l2", "cosine"])
def test_rectangular_logits_are_the_library_logits(similarity):
    # the backward pass is numerics.infonce.logits_vjp, tested in tests/test_infonce.py
    rng = np.random.default_rng(12)
    za, zb = rng.normal(size=(5, 3)), rng.normal(size=(8, 3))
    F = _common.logits(za, zb, 0.3, similarity)
    assert F.shape == (5, 8)
    a, b = za[2], zb[6]
    expected = {"dot": a @ b, "l2": -0.5 * np.sum((a - b) ** 2),
                "cosine": a @ b / np.linalg.norm(a) / np.linalg.norm(b)}[similarity] / 0.3
    assert abs(F[2, 6] - expected) < 1e-13 * max(1.0, abs(expected))


@pytest.mark.parametrize("similarity, tau", [("cosine", 0.1), ("dot", 1.0), ("l2", 0.5)])
def test_grouped_infonce_equals_the_streaming_kernel_on_the_expanded_pairs(similarity, tau):
    rng = np.random.default_rng(13)
    y = rng.integers(0, 4, size=30)
    y[:4] = [0, 1, 2, 3]
    za, emb = rng.normal(size=(30, 5)), rng.normal(size=(4, 5))
    H = _common.logits(za, emb, tau, similarity)
    loss, dH = _common.grouped_infonce(H, y, 0.5)
    ga, g_emb = logits_vjp(dH, za, emb, tau, similarity)
    k_loss, k_ga, k_gb = _common.clip_loss_and_grad(za, emb[y], tau, similarity)
    # the kernel streams tiles in another summation order: agreement to rounding of O(10) terms
    assert abs(loss - k_loss) < 1e-12
    np.testing.assert_allclose(ga, k_ga, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(g_emb, np.eye(4)[y].T @ k_gb, rtol=1e-9, atol=1e-13)


def test_grouped_infonce_one_sided_and_with_an_absent_label():
    rng = np.random.default_rng(14)
    y = np.array([0, 2, 2, 0, 2, 0, 0])  # label 1 never occurs: no pair, no candidate
    za, emb = rng.normal(size=(7, 3)), rng.normal(size=(3, 3))
    H = _common.logits(za, emb, 1.0, "dot")
    loss, dH = _common.grouped_infonce(H, y, 1.0)
    assert abs(loss - _one_sided_by_loops(za, emb[y], 1.0, "u|v")) < 1e-12
    assert np.all(dH[:, 1] == 0.0)
    for lam in (0.0, 0.3, 1.0):
        loss, dH = _common.grouped_infonce(H, y, lam)
        for idx in [(0, 0), (4, 2), (2, 1)]:
            fd = _central_difference(lambda M: _common.grouped_infonce(M, y, lam)[0], H, idx)
            assert abs(fd - dH[idx]) < 1e-8
    with pytest.raises(InvalidInputError, match="labels"):
        _common.grouped_infonce(H, np.array([0, 1, 3, 0, 0, 0, 0]), 0.5)
    with pytest.raises(InvalidInputError, match="lam"):
        _common.grouped_infonce(H, y, 1.5)


# --------------------------------------------------------------------------
# shared helpers: encoders, training, fitting
# --------------------------------------------------------------------------
def test_linear_encoders_follow_the_library_convention():
    # G_u of shape (n_e, n_u), embedding G_u u, f(u, v) = u^T A v with A = G_u^T G_v / tau (MATH.md §1)
    rng = np.random.default_rng(15)
    enc_u, enc_v = _common.Encoder(rng, 5, 2), _common.Encoder(rng, 4, 2)
    assert enc_u.matrix.shape == (2, 5) and enc_v.matrix.shape == (2, 4)
    u, v = rng.normal(size=(3, 5)), rng.normal(size=(6, 4))
    A = enc_u.matrix.T @ enc_v.matrix / 0.7
    F = _common.logits(enc_u(u), enc_v(v), 0.7, "dot")
    np.testing.assert_allclose(F, u @ A @ v.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(enc_u(u)[1], enc_u.matrix @ u[1], rtol=1e-14)


@pytest.mark.parametrize("hidden, bias", [(0, False), (0, True), (6, False)])
def test_encoder_backward_matches_finite_differences(hidden, bias):
    rng = np.random.default_rng(16)
    enc = _common.Encoder(rng, 4, 3, hidden=hidden, bias=bias)
    x, W = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    enc(x)
    grads = enc.backward(W)
    assert [g.shape for g in grads] == [p.shape for p in enc.params]
    for p, g in zip(enc.params, grads):
        idx = tuple(0 for _ in p.shape)
        h = 1e-6
        p[idx] += h
        up = np.sum(W * enc(x))
        p[idx] -= 2 * h
        down = np.sum(W * enc(x))
        p[idx] += h
        assert abs((up - down) / (2 * h) - g[idx]) < 1e-7


def test_adam_minimises_a_quadratic():
    x = np.array([3.0, -2.0])
    opt = _common.Adam([x], 0.1, total_steps=2000)
    for _ in range(2000):
        opt.step([2 * (x - np.array([1.0, 0.5]))])
    np.testing.assert_allclose(x, [1.0, 0.5], atol=1e-3)


def _train_minibatch(rng):
    init = np.random.default_rng(18)
    enc_a, enc_b = _common.Encoder(init, 3, 2), _common.Encoder(init, 3, 2)
    data = np.random.default_rng(19)
    xa, xb = data.normal(size=(40, 3)), data.normal(size=(40, 3))
    objective = lambda za, zb: _common.clip_loss_and_grad(za, zb, 1.0, "dot")  # noqa: E731
    return _common.train((enc_a, enc_b, xa, xb), objective, 40, steps=5, lr=0.01, rng=rng, batch_size=8)


def test_train_with_mini_batches_and_no_rng_is_seeded():
    # once crashed (rng.choice on None); now the mini-batches come from default_rng(0)
    np.testing.assert_array_equal(_train_minibatch(None), _train_minibatch(np.random.default_rng(0)))
    assert not np.array_equal(_train_minibatch(None), _train_minibatch(np.random.default_rng(1)))
    with pytest.raises(InvalidInputError, match="batch_size"):
        _common.train((None, None, None, None), None, 40, steps=1, lr=0.1, batch_size=0)


@pytest.mark.parametrize("stages", [(), (30,)])
def test_fit_linear_encoders_reaches_a_known_minimiser(stages):
    # objective 1/2 |za - x_u G_u*^T|^2 + 1/2 |zb - x_v G_v*^T|^2: unique minimiser G* (full-rank inputs)
    rng = np.random.default_rng(20)
    xu, xv = rng.normal(size=(60, 4)), rng.normal(size=(60, 3))
    Gu_star, Gv_star = rng.normal(size=(2, 4)), rng.normal(size=(2, 3))
    ta, tb = xu @ Gu_star.T, xv @ Gv_star.T
    calls = []

    def objective(za, zb):
        calls.append(za.shape[0])
        da, db = za - ta[:za.shape[0]], zb - tb[:zb.shape[0]]
        return 0.5 * (np.sum(da**2) + np.sum(db**2)), da, db

    fit = _common.fit_linear_encoders(objective, xu, xv, 2, starts=3, rng=rng, stages=stages, gtol=1e-10)
    assert fit.converged and fit.start_losses.shape == (3,) and len(fit.start_encoders) == 3
    # a quadratic with Hessian eigenvalues O(60): gtol 1e-10 puts G within about 1e-11 of G*
    np.testing.assert_allclose(fit.G_u, Gu_star, atol=1e-9)
    np.testing.assert_allclose(fit.G_v, Gv_star, atol=1e-9)
    assert fit.loss < 1e-15 and np.ptp(fit.start_losses) < 1e-15 and fit.grad_norm < 1e-8
    assert fit.grad_max <= 1e-10
    assert fit.n_evals == len(calls)
    assert (30 in calls) == bool(stages)
    # dense BFGS below BFGS_MAX_PARAMS entries (SciPy's BFGS message, not L-BFGS-B's)
    assert all(m.startswith("Optimization terminated") for m in fit.messages)


def test_fit_linear_encoders_uses_l_bfgs_b_for_many_entries():
    # the quadratic of the test above with 12 x (12 + 10) = 264 > BFGS_MAX_PARAMS entries
    rng = np.random.default_rng(23)
    xu, xv = rng.normal(size=(80, 12)), rng.normal(size=(80, 10))
    Gu_star, Gv_star = rng.normal(size=(12, 12)), rng.normal(size=(12, 10))
    ta, tb = xu @ Gu_star.T, xv @ Gv_star.T

    def objective(za, zb):
        da, db = za - ta[:za.shape[0]], zb - tb[:zb.shape[0]]
        return 0.5 * (np.sum(da**2) + np.sum(db**2)), da, db

    assert 12 * 22 > _common.BFGS_MAX_PARAMS
    fit = _common.fit_linear_encoders(objective, xu, xv, 12, starts=2, rng=rng, stages=(40,), gtol=1e-9)
    assert all(m.startswith("CONVERGENCE") for m in fit.messages) and fit.converged
    assert len(fit.start_encoders) == 2 and fit.start_losses.shape == (2,)
    # Hessian eigenvalues between ~10 and ~200 (80 rows of 12 normals): gtol 1e-9 leaves G
    # within about 1e-10 of G*; 1e-8 allows for L-BFGS-B's last step stopping at ftol
    np.testing.assert_allclose(fit.G_u, Gu_star, atol=1e-8)
    np.testing.assert_allclose(fit.G_v, Gv_star, atol=1e-8)


def test_fit_linear_encoders_validates():
    xu, xv = np.zeros((10, 2)), np.zeros((5, 2))
    with pytest.raises(InvalidInputError, match="starts"):
        _common.fit_linear_encoders(None, xu, xu, 1, starts=0)
    with pytest.raises(InvalidInputError, match="stages"):
        _common.fit_linear_encoders(None, xu, xv, 1, stages=(4,))


def test_fit_linear_encoders_starts_and_stages_as_documented():
    """Random starts have entries N(0, init_scale^2 / n_in), G_u's then G_v's drawn at once
    from rng; stages of at least N rows are no stage (the last fit is on all rows anyway)."""
    rng = np.random.default_rng(24)
    xu, xv = rng.normal(size=(30, 4)), rng.normal(size=(30, 9))
    seen = []

    def objective(za, zb):
        seen.append((za.shape[0], za, zb))
        return 0.5 * (np.sum(za**2) + np.sum(zb**2)), za, zb

    _common.fit_linear_encoders(objective, xu, xv, 2, starts=1, rng=np.random.default_rng(5), init_scale=3.0)
    z = np.random.default_rng(5).standard_normal(2 * (4 + 9))
    G_u, G_v = (3.0 * z[:8] / 2.0).reshape(2, 4), (3.0 * z[8:] / 3.0).reshape(2, 9)
    np.testing.assert_allclose(seen[0][1], xu @ G_u.T, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(seen[0][2], xv @ G_v.T, rtol=1e-13, atol=1e-14)
    evals = len(seen)
    seen.clear()
    _common.fit_linear_encoders(objective, xu, xv, 2, starts=1, rng=np.random.default_rng(5), init_scale=3.0,
                                stages=(30, 45))
    assert len(seen) == evals and {n for n, _, _ in seen} == {30}


# --------------------------------------------------------------------------
# shared helpers: statistics, outputs, bootstrap of the notebooks
# --------------------------------------------------------------------------
def test_loglog_slope_against_scipy_linregress():
    from scipy import stats

    rng = np.random.default_rng(21)
    n = np.repeat([100.0, 400.0, 1600.0, 6400.0], 3)
    y = 2.0 * n**-0.5 * np.exp(0.2 * rng.normal(size=n.size))
    slope, intercept, (lo, hi) = _common.loglog_slope(n, y)
    ref = stats.linregress(np.log(n), np.log(y))
    assert abs(slope - ref.slope) < 1e-12 and abs(intercept - ref.intercept) < 1e-12
    half = stats.t.ppf(0.975, n.size - 2) * ref.stderr
    assert abs((hi - lo) / 2 - half) < 1e-12 and abs((hi + lo) / 2 - slope) < 1e-12
    exact = _common.loglog_slope(n, 3.0 * n**-0.5)
    assert abs(exact[0] + 0.5) < 1e-12 and exact[2][1] - exact[2][0] < 1e-10
    with pytest.raises(InvalidInputError, match="n"):
        _common.loglog_slope([100.0, 100.0, 100.0], [1.0, 2.0, 3.0])


def test_percentile_interval():
    samples = np.random.default_rng(22).permutation(np.arange(1.0, 1002.0))
    # 1..1001 in any order: the 2.5% and 97.5% quantiles are 26 and 976 (to the rounding of 0.025 * 1000)
    np.testing.assert_allclose(_common.percentile_interval(samples), (26.0, 976.0), rtol=1e-12)
    with pytest.raises(InvalidInputError, match="samples"):
        _common.percentile_interval([1.0])


def test_write_json_refuses_nan(tmp_path):
    path = _common.write_json(tmp_path / "m.json", {"a": np.float64(1.5), "b": {3: np.int64(2)}, "c": np.bool_(True)})
    assert path.read_text().count("1.5") == 1 and "true" in path.read_text()
    with pytest.raises(InvalidInputError, match="finite"):
        _common.write_json(tmp_path / "n.json", {"a": float("nan")})


@pytest.fixture
def restored_blas_threads():
    # setup() keeps BLAS on one thread for the rest of a notebook; not for the rest of the suite
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=None):
        yield


def test_setup_reads_the_command_line_or_the_environment_in_a_kernel(tmp_path, monkeypatch, restored_blas_threads):
    run = _common.setup("demo", "demo", ["--quick", "--outdir", str(tmp_path), "--seed", "3"])
    assert run.quick and run.seed == 3 and run.json_path == tmp_path / "demo.json" and run.elapsed() >= 0
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    monkeypatch.setenv(_common.NOTEBOOK_ARGS, f"--outdir '{tmp_path}/a b' --json {tmp_path}/x.json")
    run = _common.setup("demo", "demo")
    assert not run.quick and run.outdir == tmp_path / "a b" and run.json_path == tmp_path / "x.json"
    monkeypatch.delenv(_common.NOTEBOOK_ARGS)
    assert _common.setup("demo", "demo").json_path == Path("out") / "notebooks" / "demo.json"


def test_show_figure_saves_and_closes_outside_a_notebook(tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = _common.show_figure(fig, tmp_path, "f")
    assert path == tmp_path / "f.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)


def test_runner_counts_figures_and_reads_acceptance():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("x"), nbformat.v4.new_code_cell("1")]
    assert _execute.count_figures(nb) == 0
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBO", "text/plain": "f"}),
                           nbformat.v4.new_output("stream", text="hi")]
    assert _execute.count_figures(nb) == 1
    assert _execute.failed_acceptance({"acceptance": {"a": True, "b": False}}) == ["b"]
    assert _execute.failed_acceptance({}) == []
