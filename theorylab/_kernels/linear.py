"""Kernels of linear classifiers f(x) = <w, x> + b under the logistic loss.

Array in, array out, no validation (the model class does it).

One fused pass over ``X`` computes scores, losses and the weight gradient (a
GEMV and its transpose would read ``X`` twice; both are memory-bound).  Rows
are processed in fixed 256-row chunks, each chunk accumulating its own partial
sums, combined in chunk order: the bits do not depend on the thread count.

Parallel kernels here are only ever called from Python, never from another
jitted function: a cached non-parallel function calling a parallel one can
segfault when loaded from the cache (numba #8578).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, n_chunks, prange

__all__ = ["scores", "objective", "loss_and_input_gradient"]


@jit
def _logistic1(t):
    # (log(1 + e^-t), sigmoid(-t)) in the overflow-free form for either sign of t.
    if t > 0.0:
        e = math.exp(-t)
        return math.log1p(e), e / (1.0 + e)
    e = math.exp(t)
    return -t + math.log1p(e), 1.0 / (1.0 + e)


@jit(parallel=True)
def scores(X, w, b):
    """f(x_n) = <w, x_n> + b for the rows of ``X`` (N, d)."""
    n, d = X.shape
    f = np.empty(n, dtype=X.dtype)
    for r in prange(n):
        s = 0.0
        for j in range(d):
            s += X[r, j] * w[j]
        f[r] = s + b
    return f


@jit(parallel=True)
def _objective_parts(X, y, w, b):
    n, d = X.shape
    nc = n_chunks(n)
    gw = np.zeros((nc, d), dtype=X.dtype)
    lb = np.zeros((nc, 2), dtype=X.dtype)  # per chunk: sum of losses, sum of slopes
    for c in prange(nc):
        for r in range(c * 256, min(n, (c + 1) * 256)):
            s = b
            for j in range(d):
                s += X[r, j] * w[j]
            loss, sig = _logistic1(y[r] * s)
            slope = -y[r] * sig
            lb[c, 0] += loss
            lb[c, 1] += slope
            for j in range(d):
                gw[c, j] += slope * X[r, j]
    return gw, lb


def objective(X, y, w, b, l2):
    """Regularised mean logistic loss and its gradient in (w, b).

    J(w, b) = (1/N) sum_n log(1 + exp(-y_n (<w, x_n> + b))) + (l2 / 2) ||w||^2;
    the intercept is not penalised.

    Returns
    -------
    value : float
    grad_w : (d,) array
    grad_b : float
    """
    gw, lb = _objective_parts(X, y, w, b)
    n = X.shape[0]
    g = np.zeros(X.shape[1])
    tot = np.zeros(2)
    for c in range(gw.shape[0]):  # chunk order: deterministic
        g += gw[c]
        tot += lb[c]
    return tot[0] / n + 0.5 * l2 * float(w @ w), g / n + l2 * w, tot[1] / n


@jit(parallel=True)
def loss_and_input_gradient(X, y, w, b):
    """Per-sample logistic losses and d loss_n / d x_n = l'(f_n) w, shape (N, d)."""
    n, d = X.shape
    loss = np.empty(n, dtype=X.dtype)
    G = np.empty((n, d), dtype=X.dtype)
    for r in prange(n):
        s = b
        for j in range(d):
            s += X[r, j] * w[j]
        lo, sig = _logistic1(y[r] * s)
        loss[r] = lo
        slope = -y[r] * sig
        for j in range(d):
            G[r, j] = slope * w[j]
    return loss, G
