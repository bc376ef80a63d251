"""A sound lower bound on the worst-case margin of the smoothed-ReLU patch CNN.

F_k(X) = sum_{r, p} sigma(<w_{k,r}, x_p>), margin F_y - max_{j != y} F_j.  For a
perturbation Delta of the whole input with ||Delta||_p <= eps (over all P d
coordinates), each patch moves by at most that much, so every pre-activation
z = <w, x_p + delta_p> lies in [z0 - eps ||w||_q, z0 + eps ||w||_q].  sigma is
convex and non-decreasing, so on that interval

* a tangent line lies below it (used for the true class y, at the centre z0),
* the chord lies above it (used for the competing class j).

Both lines are linear in Delta, so F_y - F_j >= c + <Lambda, Delta> >=
c - eps ||Lambda||_q (the linear relaxation); interval bounds (IBP:
sum sigma(l) for y minus sum sigma(u) for j) are also sound, and the bound
returned is the larger of the two, minus a rounding margin.  The certified
margin is the minimum over the competing classes j != y.
"""

from __future__ import annotations

import numpy as np

__all__ = ["cnn_bounds"]

_EPS = np.finfo(np.float64).eps


def _sigma(z, q, rho):
    zp = np.maximum(z, 0.0)
    return np.where(zp <= rho, zp ** q / (q * rho ** (q - 1)), zp - (1.0 - 1.0 / q) * rho)


def _dsigma(z, q, rho):
    zp = np.maximum(z, 0.0)
    return np.where(zp <= rho, (zp / rho) ** (q - 1), 1.0)


def cnn_bounds(X, y, W, q, rho, eps, p):
    """Per point, a sound lower bound on min over the ball of F_y - max_{j != y} F_j.

    Parameters
    ----------
    X : (N, P, d) array
    y : (N,) int array
    W : (K, m, d) array
    q : int
    rho : float
    eps : float
    p : {2.0, inf}

    Returns
    -------
    (N,) float64 array
    """
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    N, P, d = X.shape
    K, m, _ = W.shape
    qd = 1.0 if p == np.inf else 2.0
    Wf = W.reshape(K * m, d)
    Z0 = np.einsum("npd,cd->npc", X, Wf)                       # (N, P, K m)
    r = eps * np.linalg.norm(Wf, ord=qd, axis=1)              # (K m,)
    # Rounding of z0 and of the radius: widen the intervals so they stay sound.
    tol = 4 * (d + 2) * _EPS * (np.abs(X).reshape(N, P, 1, d).max(axis=3) *
                                np.abs(Wf).sum(axis=1) + r)
    lo, hi = Z0 - r - tol, Z0 + r + tol
    s_lo, s_hi = _sigma(lo, q, rho), _sigma(hi, q, rho)
    # Tangent at the centre (below sigma), chord (above sigma).
    a_t = _dsigma(Z0, q, rho)
    c_t = _sigma(Z0, q, rho) - a_t * Z0
    width = hi - lo
    a_c = np.where(width > 0, (s_hi - s_lo) / np.where(width > 0, width, 1.0), 0.0)
    c_c = s_lo - a_c * lo
    a_t = a_t.reshape(N, P, K, m)
    a_c = a_c.reshape(N, P, K, m)
    lin_t = (a_t * Z0.reshape(N, P, K, m) + c_t.reshape(N, P, K, m)).sum(axis=(1, 3))  # (N, K)
    lin_c = (a_c * Z0.reshape(N, P, K, m) + c_c.reshape(N, P, K, m)).sum(axis=(1, 3))
    ibp_lo = s_lo.reshape(N, P, K, m).sum(axis=(1, 3))
    ibp_hi = s_hi.reshape(N, P, K, m).sum(axis=(1, 3))
    rows = np.arange(N)
    Ay = a_t[rows, :, y]                                       # (N, P, m)
    Gy = np.einsum("npm,nmd->npd", Ay, W[y])                   # tangent coefficients of class y
    best = np.full(N, np.inf)
    for j in range(K):
        Lam = Gy - np.einsum("npm,md->npd", a_c[:, :, j], W[j])
        dual = np.linalg.norm(Lam.reshape(N, -1), ord=qd, axis=1)
        relax = lin_t[rows, y] - lin_c[:, j] - eps * dual
        ibp = ibp_lo[rows, y] - ibp_hi[:, j]
        bound = np.maximum(relax, ibp)
        scale = (np.abs(lin_t[rows, y]) + np.abs(lin_c[:, j]) + eps * dual
                 + np.abs(ibp_lo[rows, y]) + np.abs(ibp_hi[:, j]))
        bound = bound - 8 * (P * m + d + 4) * _EPS * scale  # its own rounding
        bound[y == j] = np.inf
        best = np.minimum(best, bound)
    return best
