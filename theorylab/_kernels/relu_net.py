"""Kernels of the symmetric threshold two-layer network.

    f(x) = sum_i [relu(<w_i, x> - b_i) - relu(-<w_i, x> - b_i)]
         = sum_i sign(u_i) * max(|u_i| - b_i, 0),      u = W x,

with the logistic loss l(y f) = log(1 + exp(-y f)).  The thresholds ``b`` are
constants when differentiating (the spec's convention), so df/du_i = 1{|u_i| > b_i}.

Every kernel takes arrays and returns new arrays: no validation here (the model
class does it).

Parallelism and determinism: samples are cut into fixed chunks of ``CHUNK``
rows; a ``prange`` loop hands chunks to threads, and each chunk does its own
single-threaded GEMMs through BLAS (``np.dot``; SciPy's BLAS is pinned to one
thread, see ``_blas``).  The weight gradient, a sum over samples, is
accumulated as one partial per chunk, added in chunk order, ``GROUP`` chunks
at a time.  Chunking depends on N only, so the bits never depend on the thread
count, and temporaries stay O(GROUP (CHUNK m + m d)) whatever N is: no N x m
array and no N x m x d temporary is formed.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, prange

__all__ = ["CHUNK", "GROUP", "scores", "logistic", "loss_and_weight_gradient",
           "loss_and_input_gradient"]

CHUNK = 256  # rows per parallel task: a GEMM this tall still runs near BLAS peak
GROUP = 8    # chunks whose partial gradients are held at once (memory GROUP * m * d)


@jit
def _forward_chunk(U, b, y, need_slope):
    # Scores, per-sample losses and slopes dl/df of one chunk (rows summed in a fixed order).
    n, m = U.shape
    f = np.empty(n, dtype=U.dtype)
    loss = np.empty(n, dtype=U.dtype)
    slope = np.empty(n, dtype=U.dtype)
    for r in range(n):
        s = 0.0
        for i in range(m):
            u = U[r, i]
            a = abs(u) - b[i]
            if a > 0.0:
                s += a if u > 0.0 else -a
        f[r] = s
        if need_slope:
            t = y[r] * s
            if t > 0.0:  # overflow-free logistic for either sign of the margin
                e = math.exp(-t)
                loss[r] = math.log1p(e)
                slope[r] = -y[r] * (e / (1.0 + e))
            else:
                e = math.exp(t)
                loss[r] = -t + math.log1p(e)
                slope[r] = -y[r] / (1.0 + e)
    return f, loss, slope


@jit
def _gated(U, b, slope, scale):
    # A_ni = scale * slope_n * 1{|U_ni| > b_i}: the residual routed through open gates.
    n, m = U.shape
    A = np.empty_like(U)
    for r in range(n):
        s = slope[r] * scale
        for i in range(m):
            A[r, i] = s if abs(U[r, i]) > b[i] else 0.0
    return A


@jit(parallel=True)
def scores(X, W, b):
    """Network outputs f(x_n) for the rows of ``X`` (N, d); ``W`` (m, d), ``b`` (m,)."""
    n = X.shape[0]
    f = np.empty(n, dtype=X.dtype)
    dummy = np.empty(0, dtype=X.dtype)
    for c in prange((n + CHUNK - 1) // CHUNK):
        s, e = c * CHUNK, min(n, (c + 1) * CHUNK)
        f[s:e] = _forward_chunk(np.dot(X[s:e], W.T), b, dummy, False)[0]
    return f


@jit(parallel=True)
def logistic(f, y):
    """Per-sample logistic loss log(1 + exp(-y f)) and its slope dl/df.

    Evaluated in the overflow-free form for either sign of the margin; a NaN
    score gives a NaN loss (the caller checks), never a silent number.
    """
    n = f.shape[0]
    loss = np.empty_like(f)
    slope = np.empty_like(f)
    for r in prange(n):
        t = y[r] * f[r]
        if t > 0.0:
            e = math.exp(-t)
            loss[r] = math.log1p(e)
            slope[r] = -y[r] * (e / (1.0 + e))
        else:
            e = math.exp(t)
            loss[r] = -t + math.log1p(e)
            slope[r] = -y[r] / (1.0 + e)
    return loss, slope


@jit(parallel=True)
def loss_and_weight_gradient(X, y, W, b):
    """Per-sample losses, scores, and the gradient of the *mean* loss in ``W``.

    Returns
    -------
    loss : (N,) array
    f : (N,) array
    grad_W : (m, d) array
        (1/N) sum_n l'(f_n) 1{|u_n| > b} x_n^T, summed chunk by chunk in order.
    """
    n, d = X.shape
    m = W.shape[0]
    loss = np.empty(n, dtype=X.dtype)
    f = np.empty(n, dtype=X.dtype)
    G = np.zeros((m, d), dtype=W.dtype)
    n_chunks = (n + CHUNK - 1) // CHUNK
    partial = np.empty((min(GROUP, n_chunks), m, d), dtype=W.dtype)
    for g0 in range(0, n_chunks, GROUP):
        g1 = min(n_chunks, g0 + GROUP)
        for c in prange(g0, g1):
            s, e = c * CHUNK, min(n, (c + 1) * CHUNK)
            Xc = X[s:e]
            U = np.dot(Xc, W.T)
            fc, lc, sc = _forward_chunk(U, b, y[s:e], True)
            f[s:e] = fc
            loss[s:e] = lc
            partial[c - g0] = np.dot(_gated(U, b, sc, 1.0 / n).T, Xc)
        for c in range(g1 - g0):  # fixed order: deterministic
            G += partial[c]
    return loss, f, G


@jit(parallel=True)
def loss_and_input_gradient(X, y, W, b):
    """Per-sample losses, scores, and d loss_n / d x_n for every row (N, d)."""
    n = X.shape[0]
    loss = np.empty(n, dtype=X.dtype)
    f = np.empty(n, dtype=X.dtype)
    G = np.empty_like(X)
    for c in prange((n + CHUNK - 1) // CHUNK):
        s, e = c * CHUNK, min(n, (c + 1) * CHUNK)
        U = np.dot(X[s:e], W.T)
        fc, lc, sc = _forward_chunk(U, b, y[s:e], True)
        f[s:e] = fc
        loss[s:e] = lc
        G[s:e] = np.dot(_gated(U, b, sc, 1.0), W)
    return loss, f, G
