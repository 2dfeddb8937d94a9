r"""Tests of the notebooks' helper modules: IDX loader, synthetic ocean, shared helpers.

The notebooks themselves are executed in quick mode by CI, not here.
"""
from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notebooks"))

import _common  # noqa: E402
import _mnist  # noqa: E402
import _ocean  # noqa: E402
from numerics import InvalidInputError  # noqa: E402


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
# shared helpers
# --------------------------------------------------------------------------
@pytest.mark.parametrize("similarity", ["dot", "l2", "cosine"])
@pytest.mark.parametrize("conditional", ["u|v", "v|u"])
def test_one_sided_loss_gradient_matches_finite_differences(similarity, conditional):
    rng = np.random.default_rng(9)
    za, zb = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    loss, ga, gb = _common.one_sided_loss_and_grad(za, zb, 0.7, similarity, conditional)
    h = 1e-6
    for z, g, which in ((za, ga, 0), (zb, gb, 1)):
        for idx in [(0, 0), (3, 2), (5, 1)]:
            E = np.zeros_like(z)
            E[idx] = h
            args_p = (za + E, zb) if which == 0 else (za, zb + E)
            args_m = (za - E, zb) if which == 0 else (za, zb - E)
            fd = (_common.one_sided_loss_and_grad(*args_p, 0.7, similarity, conditional)[0]
                  - _common.one_sided_loss_and_grad(*args_m, 0.7, similarity, conditional)[0]) / (2 * h)
            # central difference: truncation h^2 |L'''| plus rounding eps/h, both below 1e-8
            assert abs(fd - g[idx]) < 1e-7


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


def test_bank_mean_weights_and_effective_size():
    bank = np.arange(8.0).reshape(4, 2)
    means, ess = _common.bank_mean(np.zeros((1, 4)), bank)
    np.testing.assert_allclose(means[0], bank.mean(0))
    assert ess[0] == pytest.approx(4.0)
    means, ess = _common.bank_mean(np.array([[0.0, 800.0, 0.0, 0.0]]), bank)
    np.testing.assert_allclose(means[0], bank[1])
    assert ess[0] == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="bank"):
        _common.bank_mean(np.zeros((1, 3)), bank)


def test_adam_minimises_a_quadratic():
    x = np.array([3.0, -2.0])
    opt = _common.Adam([x], 0.1, total_steps=2000)
    for _ in range(2000):
        opt.step([2 * (x - np.array([1.0, 0.5]))])
    np.testing.assert_allclose(x, [1.0, 0.5], atol=1e-3)


def test_write_json_refuses_nan(tmp_path):
    path = _common.write_json(tmp_path / "m.json", {"a": np.float64(1.5), "b": {3: np.int64(2)}})
    assert path.read_text().count("1.5") == 1
    with pytest.raises(InvalidInputError, match="finite"):
        _common.write_json(tmp_path / "n.json", {"a": float("nan")})


@pytest.mark.parametrize("conditional, lam", [("u|v", 1.0), ("v|u", 0.0)])
def test_one_sided_loss_matches_the_balanced_infonce_of_numerics(conditional, lam):
    # an independent implementation: numerics.variants writes L_{N,lambda} on the logit matrix,
    # with the 1/N inside the log-sum-exp (hence the log N offset)
    from numerics.variants import empirical_balanced_infonce, empirical_balanced_infonce_grad

    rng = np.random.default_rng(11)
    za, zb = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    F = _common.logits(za, zb, 0.4, "dot")
    loss, ga, _ = _common.one_sided_loss_and_grad(za, zb, 0.4, "dot", conditional)
    assert abs(loss - np.log(8) - empirical_balanced_infonce(F, lam)) < 1e-12
    np.testing.assert_allclose(ga, empirical_balanced_infonce_grad(F, lam) @ zb / 0.4, rtol=1e-10, atol=1e-14)
