"""A sound lower bound on the worst-case margin of the frozen-gate (empirical) NTK.

f(x) = b + sum_i g_i(x) <v_i, x> with g_i(x) = 1{|<w0_i, x>| > b0_i} (two-sided)
or 1{<w0_i, x> > b0_i}.  On the ball, the gate's pre-activation lies in
s0_i -/+ eps ||w0_i||_q: a gate open (closed) on the whole interval contributes
the linear term y <v_i, x + delta> (resp. 0); an undecided gate contributes
either, so at least min(0, y <v_i, x> - eps ||v_i||_q).  The open terms are
bounded together, y <Lambda, x> - eps ||Lambda||_q with Lambda = sum_open v_i,
which is exact when no gate is undecided.  The gates are discontinuous, so the
function is piecewise linear but not continuous: attacks that follow the
gradient (G V) do not see the jumps, this bound does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ntk_bounds"]

_EPS = np.finfo(np.float64).eps


def ntk_bounds(X, y, W0, b0, two_sided, V, b, eps, p):
    """Per point, a sound lower bound on min over the p-ball of y f(x + delta).

    Returns
    -------
    (N,) float64 array
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    N, d = X.shape
    qd = 1.0 if p == np.inf else 2.0
    S0 = X @ W0.T
    rw = eps * np.linalg.norm(W0, ord=qd, axis=1)
    tol = 4 * (d + 2) * _EPS * (np.abs(X).max(axis=1)[:, None] * np.abs(W0).sum(axis=1) + rw)
    lo, hi = S0 - rw - tol, S0 + rw + tol
    if two_sided:
        on = (lo > b0) | (hi < -b0)
        off = (lo >= -b0) & (hi <= b0)
    else:
        on = lo > b0
        off = hi <= b0
    unsure = ~(on | off)
    T0 = y[:, None] * (X @ V.T)                                # y <v_i, x>
    rv = eps * np.linalg.norm(V, ord=qd, axis=1)
    Lam = (on * y[:, None]) @ V                                # sum over open gates of y v_i
    dual = np.linalg.norm(Lam, ord=qd, axis=1)
    lin = (T0 * on).sum(axis=1)
    undecided = np.minimum(0.0, T0 - rv) * unsure
    bound = y * b + lin - eps * dual + undecided.sum(axis=1)
    scale = np.abs(b) + (np.abs(T0) * (on | unsure)).sum(axis=1) + eps * dual + (
        rv * unsure).sum(axis=1)
    return bound - 8 * (W0.shape[0] + d + 4) * _EPS * scale
