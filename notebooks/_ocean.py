r"""A synthetic ocean for the Lagrangian data-assimilation experiment (MATH.md §6).

A steady, doubly periodic, incompressible 2-D flow on :math:`[0, 2\pi)^2` is
given by a streamfunction with a few Fourier modes,

.. math:: \psi(x, y) = \sum_{m} a_m \cos(\kappa_m\cdot x) + b_m \sin(\kappa_m\cdot x),
          \qquad (u, v) = (-\partial_y \psi,\ \partial_x \psi),

so that :math:`\nabla\cdot(u, v) = 0` identically.  The coefficients
:math:`c = (a_1, b_1, a_2, b_2, \dots)` are Gaussian (the Eulerian state).
Drifters are advected with the classical fourth-order Runge–Kutta scheme
(a numba kernel) and observed with Gaussian position noise (the Lagrangian
data).  Positions are not wrapped into the periodic cell, so tracks stay
continuous.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numba
import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from numerics._validation import as_float_array, fail  # noqa: E402

__all__ = [
    "mode_wavevectors",
    "prior_std",
    "sample_coefficients",
    "streamfunction",
    "velocity",
    "velocity_basis",
    "advect",
    "observe",
]


def mode_wavevectors(max_wavenumber: int = 1) -> np.ndarray:
    r"""Wavevectors :math:`\kappa = (k, l)` of one half-plane with :math:`\max(|k|, |l|) \le K`.

    Only one of :math:`\pm\kappa` is kept (the cosine/sine pair of a mode
    already spans both).  ``max_wavenumber=1`` gives (1, 0), (0, 1), (1, 1),
    (1, -1): four modes, eight coefficients.
    """
    if not isinstance(max_wavenumber, (int, np.integer)) or max_wavenumber < 1:
        raise fail("max_wavenumber", max_wavenumber, "an integer >= 1")
    K = int(max_wavenumber)
    out = [(k, l) for k in range(0, K + 1) for l in range(-K, K + 1) if (k > 0 or l > 0)]
    return np.array(sorted(out, key=lambda w: (w[0] ** 2 + w[1] ** 2, w)), dtype=np.float64)


def prior_std(wavevectors, *, rms_speed: float = 1.0) -> np.ndarray:
    r"""Standard deviations of the coefficients :math:`(a_m, b_m)`.

    Mode :math:`m` has coefficient standard deviation proportional to
    :math:`|\kappa_m|^{-2}` (a red spectrum: velocity amplitude
    :math:`\propto |\kappa_m|^{-1}`), scaled so that the expected mean square
    speed over the cell is ``rms_speed**2``.  For a single mode the cell
    average of :math:`|\nabla\psi|^2` is :math:`|\kappa|^2 (a^2 + b^2)/2`.
    """
    wv = as_float_array("wavevectors", wavevectors, ndim=2)
    k2 = (wv**2).sum(1)
    std = np.repeat(1.0 / k2, 2)
    mean_sq_speed = float(np.sum(np.repeat(k2, 2) * std**2) / 2)
    return std * rms_speed / np.sqrt(mean_sq_speed)


def sample_coefficients(rng, n: int, std) -> np.ndarray:
    """``n`` draws of the coefficients from :math:`N(0, \\operatorname{diag}(std^2))`."""
    std = as_float_array("std", std, ndim=1)
    return rng.normal(size=(int(n), std.shape[0])) * std


def _check(coef, wavevectors):
    coef = as_float_array("coef", coef)
    wv = as_float_array("wavevectors", wavevectors, ndim=2)
    if wv.shape[1] != 2 or coef.shape[-1] != 2 * wv.shape[0]:
        raise fail("coef", coef, f"last axis of length 2 * {wv.shape[0]} (a cosine and a sine per wavevector)")
    return np.atleast_2d(coef).astype(np.float64), wv


def _phases(wv, x, y):
    return np.multiply.outer(x, wv[:, 0]) + np.multiply.outer(y, wv[:, 1])


def streamfunction(coef, x, y, wavevectors) -> np.ndarray:
    r""":math:`\psi(x, y)` for each coefficient vector; shape ``coef.shape[:-1] + x.shape``."""
    coef, wv = _check(coef, wavevectors)
    x, y = np.asarray(x, float), np.asarray(y, float)
    th = _phases(wv, x, y)
    basis = np.stack([np.cos(th), np.sin(th)], axis=-1).reshape(th.shape[:-1] + (-1,))
    return np.einsum("...m,nm->n...", basis, coef)


def velocity_basis(x, y, wavevectors):
    r"""Matrix :math:`\Phi` with :math:`(u, v)(x, y) = \Phi c`, shape ``x.shape + (2, n_coef)``.

    The velocity is linear in the coefficients, so reconstruction errors of
    the field are linear images of coefficient errors.
    """
    wv = as_float_array("wavevectors", wavevectors, ndim=2)
    x, y = np.asarray(x, float), np.asarray(y, float)
    th = _phases(wv, x, y)
    s, c = np.sin(th), np.cos(th)
    k, l = wv[:, 0], wv[:, 1]
    # psi_m = a cos(th) + b sin(th): u = -d psi / dy, v = d psi / dx
    u = np.stack([l * s, -l * c], axis=-1).reshape(th.shape[:-1] + (-1,))
    v = np.stack([-k * s, k * c], axis=-1).reshape(th.shape[:-1] + (-1,))
    return np.stack([u, v], axis=-2)


def velocity(coef, x, y, wavevectors) -> np.ndarray:
    r"""Velocity :math:`(-\partial_y\psi, \partial_x\psi)`; shape ``(n, 2) + x.shape``."""
    coef, wv = _check(coef, wavevectors)
    Phi = velocity_basis(x, y, wv)
    return np.moveaxis(np.einsum("...dm,nm->n...d", Phi, coef), -1, 1)


@numba.njit(cache=True)
def _vel(coef, kx, ky, x, y):
    u = 0.0
    v = 0.0
    for m in range(kx.shape[0]):
        th = kx[m] * x + ky[m] * y
        s = np.sin(th)
        c = np.cos(th)
        # d psi/d theta for psi = a cos + b sin
        dpsi = -coef[2 * m] * s + coef[2 * m + 1] * c
        u -= ky[m] * dpsi
        v += kx[m] * dpsi
    return u, v


@numba.njit(cache=True)
def _rk4_tracks(coef, kx, ky, x0, y0, dt, n_steps, every):
    n, n_d = coef.shape[0], x0.shape[0]
    n_obs = n_steps // every + 1
    out = np.empty((n, n_d, n_obs, 2))
    for i in range(n):
        c = coef[i]
        for d in range(n_d):
            x = x0[d]
            y = y0[d]
            out[i, d, 0, 0] = x
            out[i, d, 0, 1] = y
            for t in range(1, n_steps + 1):
                k1u, k1v = _vel(c, kx, ky, x, y)
                k2u, k2v = _vel(c, kx, ky, x + 0.5 * dt * k1u, y + 0.5 * dt * k1v)
                k3u, k3v = _vel(c, kx, ky, x + 0.5 * dt * k2u, y + 0.5 * dt * k2v)
                k4u, k4v = _vel(c, kx, ky, x + dt * k3u, y + dt * k3v)
                x += dt * (k1u + 2.0 * k2u + 2.0 * k3u + k4u) / 6.0
                y += dt * (k1v + 2.0 * k2v + 2.0 * k3v + k4v) / 6.0
                if t % every == 0:
                    out[i, d, t // every, 0] = x
                    out[i, d, t // every, 1] = y
    return out


def advect(coef, starts, wavevectors, *, dt: float, n_steps: int, every: int = 1) -> np.ndarray:
    r"""Drifter tracks by classical RK4 in the steady flow of each coefficient vector.

    Parameters
    ----------
    coef : array, shape (n, 2 * n_modes)
    starts : array, shape (n_drifters, 2)
        Release positions, shared by every flow.
    dt : float
        Time step; the global error of RK4 is :math:`O(dt^4)`.
    n_steps : int
    every : int
        Record the position every ``every`` steps (``n_steps`` must be a multiple).

    Returns
    -------
    tracks : ndarray, shape (n, n_drifters, n_steps // every + 1, 2)
        Positions at times ``0, every*dt, ...``, release position first.
    """
    coef, wv = _check(coef, wavevectors)
    starts = as_float_array("starts", starts, ndim=2)
    if starts.shape[1] != 2:
        raise fail("starts", starts, "an (n_drifters, 2) array of positions")
    if not (np.isfinite(dt) and dt > 0):
        raise fail("dt", dt, "a positive time step")
    if int(n_steps) < 1 or int(every) < 1 or int(n_steps) % int(every):
        raise fail("every", every, f"a positive divisor of n_steps={n_steps}")
    return _rk4_tracks(coef, wv[:, 0].copy(), wv[:, 1].copy(), starts[:, 0].astype(float).copy(),
                       starts[:, 1].astype(float).copy(), float(dt), int(n_steps), int(every))


def observe(tracks, noise_std: float, rng) -> np.ndarray:
    r"""Noisy observations of the positions after release, flattened per flow.

    The release positions are known and dropped; the remaining positions get
    independent :math:`N(0, \text{noise\_std}^2)` errors.  Shape
    ``(n, n_drifters * (n_obs - 1) * 2)``.
    """
    tracks = as_float_array("tracks", tracks, ndim=4)
    if not (np.isfinite(noise_std) and noise_std >= 0):
        raise fail("noise_std", noise_std, "a non-negative standard deviation")
    obs = tracks[:, :, 1:, :]
    obs = obs + noise_std * rng.normal(size=obs.shape)
    return obs.reshape(obs.shape[0], -1)
