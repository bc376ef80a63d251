"""Kernels of the symmetric threshold two-layer network.

    f(x) = sum_i [relu(<w_i, x> - b_i) - relu(-<w_i, x> - b_i)]
         = sum_i sign(u_i) * max(|u_i| - b_i, 0),      u = W x,

with the logistic loss l(y f) = log(1 + exp(-y f)).  The thresholds ``b`` are
constants when differentiating (the spec's convention), so df/du_i = 1{|u_i| > b_i}.

Every kernel takes arrays and returns new arrays: no validation here (the model
class does it).  Matrix products go through BLAS via ``np.dot``; the elementwise
work runs in ``prange`` loops over samples, each sample written by one
iteration, so results do not depend on the thread count.  Memory stays at
O(N m + N d + m d): no N x m x d temporary is ever formed.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, prange

__all__ = [
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
    return _soft_threshold_sum(np.dot(X, W.T), b)


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
    U = np.dot(X, W.T)
    f = _soft_threshold_sum(U, b)
    loss, slope = logistic(f, y)
    A = _gate_times_slope(U, b, slope, 1.0 / X.shape[0])
    return loss, f, np.dot(A.T, X)


@jit
def loss_and_input_gradient(X, y, W, b):
    """Per-sample losses, scores, and d loss_n / d x_n for every row (N, d)."""
    U = np.dot(X, W.T)
    f = _soft_threshold_sum(U, b)
    loss, slope = logistic(f, y)
    A = _gate_times_slope(U, b, slope, 1.0)
    return loss, f, np.dot(A, W)
