"""Kernels of the neural-tangent baselines (first layer trained, output layer fixed).

Empirical NTK with gates frozen at init: phi(x) = x (x) g(x) / sqrt(m), so

    K_m(x, x') = <x, x'> * (1/m) sum_i g_i(x) g_i(x'),
    f(x) = sum_i g_i(x) <v_i, x>            (head V, shape (m, d)).

Gates: ``two_sided`` g_i = 1{|<w_i, x>| > b_i} (the symmetric threshold network
of Feature Purification) or one-sided g_i = 1{<w_i, x> > b_i} (a plain ReLU net).

Analytic (infinite-width) NTK of the one-sided gate with b = 0 and Gaussian
init, the arc-cosine kernel of order 0 times the linear kernel:

    K(x, x') = <x, x'> (pi - theta) / (2 pi),   cos theta = <x, x'> / (|x| |x'|).

Array in, array out, no validation.  Each Gram matrix is one GEMM (NumPy's
BLAS) written in place, then transformed elementwise in ``prange`` loops (one
output row per iteration); other temporaries are row blocks of ``_BLOCK`` rows,
so memory is O(N M + _BLOCK M).  No reductions across threads: same bits for
any thread count.  Parallel kernels are only called from Python (the
GEMM-then-elementwise compositions are plain functions): a cached jitted
function calling a parallel one can segfault when loaded from the cache
(numba #8578).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, prange

__all__ = ["gates", "empirical_gram", "head_scores", "head_from_dual", "arccos_gram",
           "arccos_predict", "row_norms"]

_BLOCK = 512
_TWO_PI = 2.0 * math.pi
_SIN_TINY = 1e-7  # below this x and x' are parallel: the cone point, subgradient 0


@jit(parallel=True)
def row_norms(X):
    """Euclidean norm of each row, scaled by the row's largest entry (no under/overflow)."""
    n, d = X.shape
    out = np.empty(n, dtype=X.dtype)
    for r in prange(n):
        s = 0.0
        for j in range(d):
            s = max(s, abs(X[r, j]))
        acc = 0.0
        if s > 0.0:
            for j in range(d):
                q = X[r, j] / s
                acc += q * q
        out[r] = s * math.sqrt(acc)
    return out


@jit(parallel=True)
def _threshold_inplace(U, b, two_sided):
    n, m = U.shape
    for r in prange(n):
        for i in range(m):
            u = U[r, i]
            U[r, i] = 1.0 if (abs(u) if two_sided else u) > b[i] else 0.0


def gates(X, W0, b0, two_sided):
    """Frozen gate pattern G (N, m) of ``X`` under init weights ``W0`` and thresholds ``b0``."""
    U = X @ W0.T
    _threshold_inplace(U, b0, two_sided)
    return U


@jit(parallel=True)
def _mul_rows(K, P, start, scale):
    n, m = P.shape
    for r in prange(n):
        for c in range(m):
            K[start + r, c] *= P[r, c] * scale


def empirical_gram(X, GX, Y, GY):
    """K = (X Y^T) o (GX GY^T) / m, the gate overlap product built in row blocks."""
    m = GX.shape[1]
    K = X @ Y.T
    for start in range(0, X.shape[0], _BLOCK):
        stop = min(X.shape[0], start + _BLOCK)
        _mul_rows(K, GX[start:stop] @ GY.T, start, 1.0 / m)
    return K


@jit(parallel=True)
def _rowdot(A, B):
    n, m = A.shape
    out = np.empty(n, dtype=A.dtype)
    for r in prange(n):
        s = 0.0
        for c in range(m):
            s += A[r, c] * B[r, c]
        out[r] = s
    return out


def head_scores(X, G, V, b):
    """f_n = b + sum_i G[n, i] <v_i, x_n>: the linear head on frozen-gate features."""
    return _rowdot(X @ V.T, G) + b


def head_from_dual(Xtr, Gtr, alpha):
    """V = (1/m) Gtr^T diag(alpha) Xtr: the head whose scores equal sum_n alpha_n K_m(x, x_n)."""
    return (Gtr.T @ (Xtr * alpha[:, None])) / Gtr.shape[1]


@jit
def _arccos_entry(s, nx, ny):
    # (K, kappa0, cos, sin) for one pair; kappa0 = 1/4 (theta = pi/2) when a norm is 0.
    a = nx * ny
    if a == 0.0:
        return 0.0, 0.25, 0.0, 1.0
    c = min(1.0, max(-1.0, s / a))
    k0 = (math.pi - math.acos(c)) / _TWO_PI
    return s * k0, k0, c, math.sqrt(max(0.0, 1.0 - c * c))


@jit(parallel=True)
def _arccos_inplace(S, nx, ny):
    n, m = S.shape
    for r in prange(n):
        for c in range(m):
            S[r, c] = _arccos_entry(S[r, c], nx[r], ny[c])[0]


@jit(parallel=True)
def _arccos_sym_tiles(S, nx, tile, BI, BJ):
    # Upper-triangle tiles (BI <= BJ) transformed once and mirrored: half the acos calls.
    # Each (r, c) pair belongs to exactly one tile, so no two iterations write one entry.
    n = S.shape[0]
    for t in prange(BI.shape[0]):
        r0 = BI[t] * tile
        c0 = BJ[t] * tile
        for r in range(r0, min(n, r0 + tile)):
            for c in range(max(c0, r), min(n, c0 + tile)):
                v = _arccos_entry(S[r, c], nx[r], nx[c])[0]
                S[r, c] = v
                S[c, r] = v


_TILE = 64  # 64 x 64 doubles = 32 KiB: a tile and its mirror stay in L2


def arccos_gram(X, Y, nx, ny):
    """K[n, l] = <x_n, y_l> (pi - theta_nl) / (2 pi); ``nx``, ``ny`` the row norms.

    When ``Y is X`` (a training Gram) the result is symmetric: only the upper
    triangle is transformed, in 64 x 64 tiles, and mirrored.
    """
    K = X @ Y.T
    if Y is X:
        nb = (X.shape[0] + _TILE - 1) // _TILE
        BI, BJ = np.triu_indices(nb)
        _arccos_sym_tiles(K, nx, _TILE, BI.astype(np.int64), BJ.astype(np.int64))
    else:
        _arccos_inplace(K, nx, ny)
    return K


@jit(parallel=True)
def _arccos_block(S, C, nx, ny, alpha, f, A, B, offset, with_grad):
    # Scores from S = <x, x'>; with_grad: grad_x K(x, x') = x' (k0 + c / (2 pi sin))
    # - (x / |x|) c^2 |x'| / (2 pi sin), the singular parts cancelling in norm (dropped at
    # the cone point).  The coefficients depend on the angle only, so they come from C,
    # the cosines of the unit rows: S / (|x| |x'|) lost ~44 bits when |x| was subnormal.
    # B holds the coefficient of the unit vector x / |x| (|x| may be 1e-310 or 1e300).
    n, m = S.shape
    for r in prange(n):
        fr = 0.0
        br = 0.0
        for c in range(m):
            fr += alpha[c] * _arccos_entry(S[r, c], nx[offset + r], ny[c])[0]
            if with_grad:
                k0, cs, sn = _arccos_entry(C[r, c], 1.0, 1.0)[1:]
                coef = k0
                if sn > _SIN_TINY and nx[offset + r] > 0.0:
                    coef += cs / (_TWO_PI * sn)
                    br += alpha[c] * cs * cs * ny[c] / (_TWO_PI * sn)
                A[r, c] = alpha[c] * coef
        f[offset + r] = fr
        B[offset + r] = br


def _unit_rows(X):
    # Rows divided by their length, scaled by their largest entry first (no under/overflow);
    # zero rows stay zero.
    if X.shape[1] == 0:
        return X.copy()
    big = np.abs(X).max(axis=1, keepdims=True)
    U = X / np.where(big > 0, big, 1.0)
    nu = np.linalg.norm(U, axis=1, keepdims=True)
    return U / np.where(nu > 0, nu, 1.0)


def arccos_predict(X, nx, Xtr, ntr, alpha, b, with_grad):
    """Scores b + sum_n alpha_n K(x, x_n) and, if ``with_grad``, d f / d x (N, d)."""
    n, d = X.shape
    f = np.empty(n, dtype=X.dtype)
    B = np.zeros(n, dtype=X.dtype)
    G = np.zeros((n, d), dtype=X.dtype) if with_grad else None
    Tu = _unit_rows(Xtr) if with_grad else None
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        S = X[start:stop] @ Xtr.T
        A = np.empty_like(S)
        if with_grad:
            U = _unit_rows(X[start:stop])
            C = U @ Tu.T  # cosines, whatever the scale of x (one more GEMM, gradient only)
        else:
            C = S  # unused
        _arccos_block(S, C, nx, ntr, alpha, f, A, B, start, with_grad)
        if with_grad:
            G[start:stop] = A @ Xtr - U * B[start:stop, None]
    return f + b, G
