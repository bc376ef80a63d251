"""Row-wise projected steepest-ascent helpers shared by the attack kernels.

Perturbations are per sample, shape (n, P, d): the norm of sample i is taken
over all of its P d coordinates.  Flat inputs (n, d) are passed as the view
``D.reshape(n, 1, d)``.  Serial helpers: the callers parallelise over chunks.
"""

from __future__ import annotations

import math

from ._jit import jit


@jit
def _sign(g):
    # sign with NaN kept (np.sign semantics): a NaN gradient must not become a zero step.
    if g > 0.0:
        return 1.0
    if g < 0.0:
        return -1.0
    if g == 0.0:
        return 0.0
    return g


@jit
def _l2_row(D, G, out, n, step, eps):
    # out_n = D_n + step G_n / ||G_n||, projected onto ||.|| <= eps (sample n).
    _, P, d = D.shape
    big = 0.0
    for p in range(P):
        for j in range(d):
            a = abs(G[n, p, j])
            if a > big or a != a:
                big = a
    c = 0.0
    if big > 0.0 or big != big:
        ss = 0.0
        for p in range(P):
            for j in range(d):
                t = G[n, p, j] / big
                ss += t * t
        c = step / math.sqrt(ss)
    else:
        big = 1.0  # zero gradient: no move
    vmax = 0.0
    for p in range(P):
        for j in range(d):
            v = D[n, p, j] + c * (G[n, p, j] / big)
            out[n, p, j] = v
            if abs(v) > vmax or v != v:
                vmax = abs(v)
    # ||out_n|| from the row divided by its largest entry: no under/overflow at 1e-200 or 1e200.
    dd = 0.0
    if vmax > 0.0 or vmax != vmax:
        for p in range(P):
            for j in range(d):
                t = out[n, p, j] / vmax
                dd += t * t
    nrm = vmax * math.sqrt(dd)
    if nrm > eps:
        f = eps / nrm
        for p in range(P):
            for j in range(d):
                out[n, p, j] *= f


@jit
def _ascent_row(D, G, out, n, step, eps, linf):
    # out_n = one projected steepest-ascent step from D_n (linf: sign step, then clip).
    _, P, d = D.shape
    if linf:
        for p in range(P):
            for j in range(d):
                v = D[n, p, j] + step * _sign(G[n, p, j])
                out[n, p, j] = min(eps, max(-eps, v)) if v == v else v
    else:
        _l2_row(D, G, out, n, step, eps)


@jit
def _ascent_rows(D, G, step, eps, linf):
    # In place: one projected steepest-ascent step for every sample of a chunk
    # (each entry is read before it is overwritten).
    for i in range(D.shape[0]):
        _ascent_row(D, G, D, i, step, eps, linf)


@jit
def _finite_rows(G, ok):
    # ok[i] = False where row i of G (n, d) holds a NaN or an infinity (v - v is then NaN).
    n, d = G.shape
    for i in range(n):
        acc = 0.0
        for j in range(d):
            acc += G[i, j] - G[i, j]
        if acc != 0.0:
            ok[i] = False
