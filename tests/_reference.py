r"""An independent implementation of the Gaussian closed forms, for the tests only.

It shares no code with ``numerics.gaussian`` and takes different routes:
Cholesky whitening instead of symmetric square roots, canonical correlations
from a generalised eigenproblem, losses as expectations of quadratic forms of
the joint vector :math:`x = (u, v)`, :math:`E\,x^T Q x = \operatorname{tr}(QC)`.
"""
import numpy as np
import scipy.linalg as sla


def blocks(cov, n_u):
    return cov[:n_u, :n_u], cov[:n_u, n_u:], cov[n_u:, n_u:]


def chol_whitening(cov, n_u):
    C_uu, C_uv, C_vv = blocks(cov, n_u)
    L_u = np.linalg.cholesky(C_uu)
    L_v = np.linalg.cholesky(C_vv)
    K = sla.solve_triangular(L_u, sla.solve_triangular(L_v, C_uv.T, lower=True).T, lower=True)
    return L_u, L_v, K


def canonical_correlations(cov, n_u):
    """sqrt of the eigenvalues of C_uu^{-1} C_uv C_vv^{-1} C_vu (generalised eigenproblem)."""
    C_uu, C_uv, C_vv = blocks(cov, n_u)
    k = min(C_uu.shape[0], C_vv.shape[0])
    M = C_uv @ np.linalg.solve(C_vv, C_uv.T)
    w = sla.eigh(0.5 * (M + M.T), C_uu, eigvals_only=True)[::-1][:k]
    return np.sqrt(np.clip(w, 0.0, None))


def mutual_information(cov, n_u):
    s = canonical_correlations(cov, n_u)
    return -0.5 * float(np.sum(np.log1p(-s**2)))


def clip_loss(A, cov, n_u):
    """1/2 |B - K|^2 - 1/2 |K|^2 in Cholesky-whitened coordinates, B = L_u^T A L_v."""
    L_u, L_v, K = chol_whitening(cov, n_u)
    B = L_u.T @ A @ L_v
    return 0.5 * np.sum((B - K) ** 2) - 0.5 * np.sum(K**2)


def kl_terms(A, cov, n_u):
    """Each expected KL equals 1/2(|B - K|^2 - |K|^2) + I (MATH.md §4.1)."""
    v = clip_loss(A, cov, n_u) + mutual_information(cov, n_u)
    return v, v


def _quad_nll(M, S, n_cond, cov, cond_first):
    r"""-E log N(y; M x, S) as tr(Q C) of the joint vector, x the conditioning block."""
    n = cov.shape[0]
    Sinv = np.linalg.inv(S)
    # y - M x = P z with z = (u, v) in the joint ordering
    n_y = S.shape[0]
    P = np.zeros((n_y, n))
    if cond_first:  # x = u (first n_cond coordinates), y = v
        P[:, :n_cond] = -M
        P[:, n_cond:] = np.eye(n_y)
    else:  # x = v (last n_cond coordinates), y = u
        P[:, : n - n_cond] = np.eye(n_y)
        P[:, n - n_cond:] = -M
    quad = np.trace(P.T @ Sinv @ P @ cov)
    return 0.5 * (n_y * np.log(2 * np.pi) + np.linalg.slogdet(S)[1] + quad)


def conditional_loss(A, cov, n_u):
    C_uu, _, C_vv = blocks(cov, n_u)
    n_v = cov.shape[0] - n_u
    nll_v = _quad_nll(C_vv @ A.T, C_vv, n_u, cov, True)
    nll_u = _quad_nll(C_uu @ A, C_uu, n_v, cov, False)
    return 0.5 * (nll_v + nll_u)


def lowrank_minimizer(cov, n_u, n_e):
    L_u, L_v, K = chol_whitening(cov, n_u)
    U, s, Vt = np.linalg.svd(K)
    B = (U[:, :n_e] * s[:n_e]) @ Vt[:n_e]
    # A = L_u^{-T} B L_v^{-1}
    X = sla.solve_triangular(L_u.T, B, lower=False)
    return sla.solve_triangular(L_v.T, X.T, lower=False).T


def clip_loss_quadrature_1d(a, cov):
    r"""L_clip for n_u = n_v = 1 by nested quadrature of its definition (MATH.md §3):
    -E f + 1/2 E_u log Z_v(u) + 1/2 E_v log Z_u(v), with Z by quadrature too."""
    from scipy import integrate, stats

    c_uu, c_uv, c_vv = cov[0, 0], cov[0, 1], cov[1, 1]
    su, sv = np.sqrt(c_uu), np.sqrt(c_vv)

    def log_z(x, s):  # log E_{y ~ N(0, s^2)} exp(a x y), integrated around the peak
        peak = a * x * s**2
        g = lambda y: a * x * y - 0.5 * (y / s) ** 2  # noqa: E731
        val, _ = integrate.quad(lambda y: np.exp(g(y) - g(peak)), peak - 12 * s, peak + 12 * s,
                                epsabs=0, epsrel=1e-13, limit=200)
        return np.log(val) + g(peak) - np.log(np.sqrt(2 * np.pi) * s)

    def e_log_z(s_out, s_in):
        val, _ = integrate.quad(lambda x: log_z(x, s_in) * stats.norm.pdf(x, scale=s_out),
                                -12 * s_out, 12 * s_out, epsabs=0, epsrel=1e-12, limit=200)
        return val

    return -a * c_uv + 0.5 * e_log_z(su, sv) + 0.5 * e_log_z(sv, su)


def inv_sqrtm(S):
    """S^{-1/2} by scipy's Schur-based sqrtm and an inverse (not eigh like the library)."""
    return np.linalg.inv(np.real(sla.sqrtm(S)))


def canonical_correlations_svd(cov, n_u):
    """Singular values of C_uu^{-1/2} C_uv C_vv^{-1/2} with Schur square roots: unlike the
    eigenproblem route of canonical_correlations, zero correlations come out at rounding
    level (~1e-16), not at its square root, so ranks can be read off."""
    C_uu, C_uv, C_vv = blocks(cov, n_u)
    return np.linalg.svd(inv_sqrtm(C_uu) @ C_uv @ inv_sqrtm(C_vv), compute_uv=False)


def logits(za, zb, tau, sim):
    """F_ij = s(a_i, b_j)/tau in float64, formed directly: dot, -|a - b|^2/2 (differences,
    not the library's expansion), cosine of explicitly normalised rows."""
    za, zb = np.asarray(za, np.float64), np.asarray(zb, np.float64)
    if sim == "dot":
        return za @ zb.T / tau
    if sim == "l2":
        return -0.5 * np.sum((za[:, None, :] - zb[None, :, :]) ** 2, axis=2) / tau
    x = za / np.linalg.norm(za, axis=1, keepdims=True)
    y = zb / np.linalg.norm(zb, axis=1, keepdims=True)
    return x @ y.T / tau


def central_difference(phi, x, h):
    """Central differences of a scalar function, one coordinate at a time (step ``h``)."""
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (phi(x + e) - phi(x - e)) / (2 * h)
    return g
