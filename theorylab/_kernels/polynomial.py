"""Kernels of the low-degree polynomial baselines.

Two families (see :mod:`theorylab.models.polynomial`):

* coordinate-separable polynomials in the dictionary basis,
  f(x) = sum_j sum_e C[e, j] t_j^deg[e] with t = M^T x (``deg`` increasing);
* the full degree-D space through the kernel k(x, x') = (gamma <x, x'> + coef0)^D,
  f(x) = sum_n alpha_n k(x, x_n).

Array in, array out, no validation.  GEMMs go through NumPy's BLAS; elementwise work
runs in ``prange`` loops where each iteration owns its output row; reductions
over samples use fixed 256-row chunks combined in chunk order, so the bits do
not depend on the thread count.  Kernel evaluations against a training set are
done in row blocks of ``_BLOCK`` test points: memory O(_BLOCK * N_train).

Parallel kernels are only called from Python (the GEMM-then-elementwise
compositions are plain functions): a cached jitted function calling a parallel
one can segfault when loaded from the cache (numba #8578).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, n_chunks, prange

__all__ = ["separable_scores", "separable_slopes", "separable_weight_gradient",
           "separable_worst_margins", "separable_worst_points", "poly_gram", "poly_predict"]

_BLOCK = 512


@jit
def _ipow(t, e):
    r = 1.0
    for _ in range(e):
        r *= t
    return r


@jit
def _poly_at(C, degrees, j, t):
    # Powers built incrementally over the increasing degrees (one _ipow per gap).
    p = _ipow(t, degrees[0])
    s = C[0, j] * p
    for e in range(1, degrees.shape[0]):
        p *= _ipow(t, degrees[e] - degrees[e - 1])
        s += C[e, j] * p
    return s


@jit(parallel=True)
def separable_scores(T, C, degrees, b):
    """f_n = b + sum_j sum_e C[e, j] T[n, j]^degrees[e]; ``T`` (N, d), ``C`` (E, d)."""
    n, d = T.shape
    f = np.empty(n, dtype=T.dtype)
    for r in prange(n):
        s = 0.0
        for j in range(d):
            s += _poly_at(C, degrees, j, T[r, j])
        f[r] = s + b
    return f


@jit(parallel=True)
def separable_slopes(T, C, degrees, scale):
    """D[n, j] = scale_n * d f / d t_j at T[n, j] (the input gradient in dictionary coordinates)."""
    n, d = T.shape
    D = np.empty_like(T)
    for r in prange(n):
        for j in range(d):
            t = T[r, j]
            s = 0.0
            for e in range(degrees.shape[0]):
                k = degrees[e]
                if k > 0:
                    s += k * C[e, j] * _ipow(t, k - 1)
            D[r, j] = scale[r] * s
    return D


@jit(parallel=True)
def separable_weight_gradient(T, slope, degrees):
    """G[e, j] = (1/N) sum_n slope_n T[n, j]^degrees[e]: the gradient of a mean loss in C."""
    n, d = T.shape
    ne = degrees.shape[0]
    nc = n_chunks(n)
    part = np.zeros((nc, ne, d), dtype=T.dtype)
    for c in prange(nc):
        for r in range(c * 256, min(n, (c + 1) * 256)):
            s = slope[r]
            for j in range(d):
                t = T[r, j]
                for e in range(ne):
                    part[c, e, j] += s * _ipow(t, degrees[e])
    G = np.zeros((ne, d), dtype=T.dtype)
    for c in range(nc):  # chunk order: deterministic
        G += part[c]
    return G / n


@jit(parallel=True)
def separable_worst_margins(T, y, C, degrees, b, crit, ncrit, eps):
    """Exact min over |delta_j| <= eps of y f(t + delta), separable f (linf box in t).

    The minimum of a sum of one-variable polynomials over a box is the sum of
    the per-coordinate minima; each is attained at an end of [t - eps, t + eps]
    or at a critical point of coordinate j's polynomial inside it
    (``crit[j, :ncrit[j]]``, real roots of its derivative).
    """
    n, d = T.shape
    out = np.empty(n, dtype=T.dtype)
    for r in prange(n):
        yr = y[r]
        total = yr * b
        for j in range(d):
            lo = T[r, j] - eps
            hi = T[r, j] + eps
            best = min(yr * _poly_at(C, degrees, j, lo), yr * _poly_at(C, degrees, j, hi))
            for q in range(ncrit[j]):
                t = crit[j, q]
                if lo < t < hi:
                    best = min(best, yr * _poly_at(C, degrees, j, t))
            total += best
        out[r] = total
    return out


@jit(parallel=True)
def separable_worst_points(T, y, C, degrees, crit, ncrit, eps):
    """The minimiser t + delta of y f over the box |delta_j| <= eps (separable f).

    Same candidates as :func:`separable_worst_margins` (interval ends, interior
    critical points), same order and strict comparisons, so y f at the returned
    points is that function's minimum.
    """
    n, d = T.shape
    out = np.empty_like(T)
    for r in prange(n):
        yr = y[r]
        for j in range(d):
            lo = T[r, j] - eps
            hi = T[r, j] + eps
            vlo = yr * _poly_at(C, degrees, j, lo)
            vhi = yr * _poly_at(C, degrees, j, hi)
            best, arg = (vlo, lo) if vlo <= vhi else (vhi, hi)
            for q in range(ncrit[j]):
                t = crit[j, q]
                if lo < t < hi:
                    v = yr * _poly_at(C, degrees, j, t)
                    if v < best:
                        best, arg = v, t
            out[r, j] = arg
    return out


@jit(parallel=True)
def _power_inplace(S, degree, gamma, coef0):
    n, m = S.shape
    for r in prange(n):
        for c in range(m):
            S[r, c] = _ipow(gamma * S[r, c] + coef0, degree)


def poly_gram(X, Y, degree, gamma, coef0):
    """K[n, l] = (gamma <x_n, y_l> + coef0)^degree, written in place over one GEMM."""
    K = X @ Y.T
    _power_inplace(K, degree, gamma, coef0)
    return K


@jit(parallel=True)
def _poly_block(S, alpha, degree, gamma, coef0, f, A, offset):
    # f_r = sum_c alpha_c k_rc ; A_rc = alpha_c d k_rc / d s_rc, so grad f = A Xtr.
    n, m = S.shape
    for r in prange(n):
        s = 0.0
        for c in range(m):
            u = gamma * S[r, c] + coef0
            p = _ipow(u, degree - 1)
            s += alpha[c] * p * u
            A[r, c] = alpha[c] * degree * gamma * p
        f[offset + r] = s


def poly_predict(X, Xtr, alpha, degree, gamma, coef0, b, with_grad):
    """Scores f(x) = b + sum_n alpha_n k(x, x_n) and, if ``with_grad``, d f / d x (N, d).

    Processed in row blocks of ``_BLOCK`` test points (memory O(_BLOCK N_train)).
    """
    n, d = X.shape
    f = np.empty(n, dtype=X.dtype)
    G = np.zeros((n, d), dtype=X.dtype) if with_grad else None
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        S = X[start:stop] @ Xtr.T
        A = np.empty_like(S)
        _poly_block(S, alpha, degree, gamma, coef0, f, A, start)
        if with_grad:
            G[start:stop] = A @ Xtr
    return f + b, G
