"""Kernels of the symmetric threshold two-layer network.

    f(x) = sum_i [relu(<w_i, x> - b_i) - relu(-<w_i, x> - b_i)]
         = sum_i sign(u_i) * max(|u_i| - b_i, 0),      u = W x,

with the logistic loss l(y f) = log(1 + exp(-y f)).  The thresholds ``b`` are
constants when differentiating (the spec's convention), so df/du_i = 1{|u_i| > b_i}.

Every kernel takes arrays and returns new arrays: no validation here (the model
class does it).  Matrix products go through BLAS via ``np.dot``; the elementwise
work runs in ``prange`` loops over samples, each sample written by one
iteration, so results do not depend on the thread count.

Samples are processed in fixed blocks of ``BLOCK`` rows, so the temporaries are
O(BLOCK m) whatever N is (training on N = 65536 points needs no N x m array),
and the weight gradient is summed block by block in a fixed order: the bits do
not depend on the thread count either.  No N x m x d temporary is ever formed.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, prange

BLOCK = 2048  # rows per block: large enough for full-speed GEMMs, small enough for cache

__all__ = [
    "BLOCK",
    "scores",
    "logistic",
    "loss_and_weight_gradient",
    "loss_and_input_gradient",
]


@jit(parallel=True)
def _soft_threshold_sum(U, b):
    # f_n = sum_i sign(U_ni) (|U_ni| - b_i)_+ ; summed in a fixed order per row.
    n, m = U.shape
    f = np.empty(n, dtype=U.dtype)
    for r in prange(n):
        s = 0.0
        for i in range(m):
            u = U[r, i]
            a = abs(u) - b[i]
            if a > 0.0:
                s += a if u > 0.0 else -a
        f[r] = s
    return f


@jit
def scores(X, W, b):
    """Network outputs f(x_n) for the rows of ``X`` (N, d); ``W`` (m, d), ``b`` (m,)."""
    n = X.shape[0]
    f = np.empty(n, dtype=X.dtype)
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        f[start:stop] = _soft_threshold_sum(np.dot(X[start:stop], W.T), b)
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
            sig = e / (1.0 + e)  # sigmoid(-t)
        else:
            e = math.exp(t)
            loss[r] = -t + math.log1p(e)
            sig = 1.0 / (1.0 + e)
        slope[r] = -y[r] * sig
    return loss, slope


@jit(parallel=True)
def _gate_times_slope(U, b, slope, scale):
    # A_ni = scale * slope_n * 1{|U_ni| > b_i}: the residual routed through open gates.
    n, m = U.shape
    A = np.empty_like(U)
    for r in prange(n):
        s = slope[r] * scale
        for i in range(m):
            A[r, i] = s if abs(U[r, i]) > b[i] else 0.0
    return A


@jit
def loss_and_weight_gradient(X, y, W, b):
    """Per-sample losses, scores, and the gradient of the *mean* loss in ``W``.

    Returns
    -------
    loss : (N,) array
    f : (N,) array
    grad_W : (m, d) array
        (1/N) sum_n l'(f_n) 1{|u_n| > b} x_n^T, one GEMM.
    """
    n = X.shape[0]
    loss = np.empty(n, dtype=X.dtype)
    f = np.empty(n, dtype=X.dtype)
    G = np.zeros_like(W)
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        Xb = X[start:stop]
        U = np.dot(Xb, W.T)
        fb = _soft_threshold_sum(U, b)
        lb, sb = logistic(fb, y[start:stop])
        A = _gate_times_slope(U, b, sb, 1.0 / n)
        G += np.dot(A.T, Xb)  # blocks summed in order: deterministic
        loss[start:stop] = lb
        f[start:stop] = fb
    return loss, f, G


@jit
def loss_and_input_gradient(X, y, W, b):
    """Per-sample losses, scores, and d loss_n / d x_n for every row (N, d)."""
    n = X.shape[0]
    loss = np.empty(n, dtype=X.dtype)
    f = np.empty(n, dtype=X.dtype)
    G = np.empty_like(X)
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        U = np.dot(X[start:stop], W.T)
        fb = _soft_threshold_sum(U, b)
        lb, sb = logistic(fb, y[start:stop])
        G[start:stop] = np.dot(_gate_times_slope(U, b, sb, 1.0), W)
        loss[start:stop] = lb
        f[start:stop] = fb
    return loss, f, G
