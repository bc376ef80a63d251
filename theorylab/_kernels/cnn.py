"""Kernels of the two-layer smoothed-ReLU patch CNN (Li & Li; Allen-Zhu & Li's form).

    F_k(X) = sum_r sum_p sigma(<w_{k,r}, x_p>),   W of shape (K, m, d), X of shape (N, P, d),

    sigma(z) = 0                        z <= 0
             = z^q / (q rho^(q-1))      0 <= z <= rho
             = z - (1 - 1/q) rho        z >= rho

with the softmax cross-entropy loss.  The filters are shared across patches, so
a block of samples is viewed as (rows = samples x P, d) and W as (K m, d): the
pre-activations, the input gradient and the weight gradient are GEMMs (BLAS via
``np.dot``, which theorylab pins to one thread, see ``_blas``).

Parallelism follows the package's rule: ``prange`` over fixed chunks of
``chunk_samples(P)`` samples (about ``CHUNK_ROWS`` rows), each chunk doing its
own GEMMs and elementwise work; weight-gradient partial sums are kept per chunk
and added in chunk order.  Chunks depend on (N, P) only, so every result is the
same bits for any Numba thread count.  Temporaries are O(chunk rows x K m) per
task plus the outputs: no N x P x K x m x d array is formed.

No validation here: the model class passes C-contiguous arrays of one floating
dtype, integer labels in [0, K), and integer q >= 2, rho > 0.
"""

from __future__ import annotations

import math

import numpy as np

from ._ascent import _ascent_row, _ascent_rows, _finite_rows
from ._jit import jit, prange
from ._sums import add_partials

__all__ = [
    "CHUNK_ROWS",
    "chunk_samples",
    "pgd_steps",
    "smoothed_relu",
    "smoothed_relu_derivative",
    "scores",
    "patch_scores",
    "loss_and_weight_gradient",
    "loss_and_input_gradient",
    "ascent_step",
    "ascent",
    "pgd",
    "scores_along",
]

CHUNK_ROWS = 256  # patch rows per parallel task: tall enough for near-peak GEMMs
GROUP = 64        # chunks whose partial weight gradients are held at once


@jit
def chunk_samples(P):
    """Samples per chunk for P patches (at least 1): a function of P only."""
    return max(1, CHUNK_ROWS // P)


@jit
def _ipow(t, e):
    # t^e for a small integer e >= 0 by repeated multiplication (libm pow is ~10x slower).
    out = 1.0
    for _ in range(e):
        out *= t
    return out


@jit
def _act_slope(z, q, rho):
    # sigma(z) and sigma'(z) in one branch-free pass (selects, no jumps: the sign of
    # z is unpredictable, and mispredicted branches dominated the elementwise cost):
    #   zp = max(z, 0), t = min(zp, rho) / rho,
    #   sigma = rho t^q / q + max(zp - rho, 0),   sigma' = t^(q-1).
    # The comparisons are written so that a NaN z gives NaN, never a silent 0.
    zp = 0.0 if z < 0.0 else z
    t = (rho if zp > rho else zp) / rho
    slope = _ipow(t, q - 1)
    return rho * slope * t / q + ((zp - rho) if zp > rho else 0.0), slope


@jit(parallel=True)
def smoothed_relu(Z, q, rho):
    """sigma applied elementwise to a 1-d array."""
    out = np.empty_like(Z)
    for i in prange(Z.shape[0]):
        out[i] = _act_slope(Z[i], q, rho)[0]
    return out


@jit(parallel=True)
def smoothed_relu_derivative(Z, q, rho):
    """sigma' applied elementwise to a 1-d array."""
    out = np.empty_like(Z)
    for i in prange(Z.shape[0]):
        out[i] = _act_slope(Z[i], q, rho)[1]
    return out


@jit
def _rows(X, s, e):
    # Samples s..e-1 of X (N, P, d) as a (rows, d) matrix (a view: X is C-contiguous).
    P, d = X.shape[1], X.shape[2]
    return X[s:e].reshape((e - s) * P, d)


@jit
def _sum_activations(Z, n, P, K, m, q, rho, F):
    # F[i, k] = sum_p sum_r sigma(Z[i P + p, k m + r]) for the n samples of a chunk.
    for i in range(n):
        for k in range(K):
            s = 0.0
            for p in range(P):
                row = i * P + p
                for r in range(m):
                    s += _act_slope(Z[row, k * m + r], q, rho)[0]
            F[i, k] = s


@jit
def _forward_backward(Z, y, n, P, K, m, q, rho, scale, F, loss):
    # For the n samples of a chunk: scores F, per-sample softmax cross-entropy and,
    # returned, S[i P + p, k m + r] = scale * g[i, k] * sigma'(Z[i P + p, k m + r])
    # with g = softmax(F) - onehot(y).  The max is subtracted before exp, so large
    # scores neither overflow nor lose the loss; a NaN score gives a NaN loss (the
    # caller checks).  Slopes are stored on the first pass and scaled on the second.
    S = np.empty_like(Z)
    g = np.empty(K)
    for i in range(n):
        mx = -np.inf
        for k in range(K):
            s = 0.0
            for p in range(P):
                row = i * P + p
                for r in range(m):
                    v, slope = _act_slope(Z[row, k * m + r], q, rho)
                    s += v
                    S[row, k * m + r] = slope
            F[i, k] = s
            g[k] = s
            if s > mx:
                mx = s
        tot = 0.0
        for k in range(K):
            g[k] = math.exp(g[k] - mx)
            tot += g[k]
        for k in range(K):
            g[k] = g[k] / tot
        g[y[i]] -= 1.0
        loss[i] = math.log(tot) + mx - F[i, y[i]]
        for p in range(P):
            row = i * P + p
            for k in range(K):
                gk = g[k] * scale
                for r in range(m):
                    S[row, k * m + r] *= gk
    return S


@jit(parallel=True)
def scores(X, W, q, rho):
    """Class scores F (N, K) for inputs ``X`` (N, P, d) and weights ``W`` (K, m, d)."""
    N, P, d = X.shape
    K, m, _ = W.shape
    WT = np.ascontiguousarray(W.reshape(K * m, d).T)
    F = np.empty((N, K), dtype=X.dtype)
    B = chunk_samples(P)
    for c in prange((N + B - 1) // B):
        s, e = c * B, min(N, (c + 1) * B)
        _sum_activations(np.dot(_rows(X, s, e), WT), e - s, P, K, m, q, rho, F[s:e])
    return F


@jit(parallel=True)
def patch_scores(X, W, q, rho):
    """Per-patch contributions (N, P, K) to the scores; they sum over P to :func:`scores`."""
    N, P, d = X.shape
    K, m, _ = W.shape
    WT = np.ascontiguousarray(W.reshape(K * m, d).T)
    Fp = np.empty((N, P, K), dtype=X.dtype)
    for n in prange(N):
        Z = np.dot(X[n], WT)  # (P, K m): small, but one sample per task keeps it simple
        for p in range(P):
            for k in range(K):
                s = 0.0
                for r in range(m):
                    s += _act_slope(Z[p, k * m + r], q, rho)[0]
                Fp[n, p, k] = s
    return Fp


@jit(parallel=True)
def loss_and_weight_gradient(X, y, W, q, rho):
    """Per-sample losses, scores, and the gradient of the *mean* loss in ``W``.

    Returns
    -------
    loss : (N,) array
    F : (N, K) array
    grad_W : (K, m, d) array
        (1/N) sum_n sum_p g_{n,k} sigma'(<w_{k,r}, x_{n,p}>) x_{n,p}: one GEMM per
        chunk, the chunks' partial sums added in chunk order.
    """
    N, P, d = X.shape
    K, m, _ = W.shape
    J = K * m
    WT = np.ascontiguousarray(W.reshape(J, d).T)
    F = np.empty((N, K), dtype=X.dtype)
    loss = np.empty(N, dtype=X.dtype)
    G = np.zeros((J, d), dtype=W.dtype)
    B = chunk_samples(P)
    n_chunks = (N + B - 1) // B
    partial = np.empty((min(GROUP, n_chunks), J, d), dtype=W.dtype)
    for g0 in range(0, n_chunks, GROUP):
        g1 = min(n_chunks, g0 + GROUP)
        for c in prange(g0, g1):
            s, e = c * B, min(N, (c + 1) * B)
            Xc = _rows(X, s, e)
            S = _forward_backward(np.dot(Xc, WT), y[s:e], e - s, P, K, m, q, rho, 1.0 / N,
                                  F[s:e], loss[s:e])
            partial[c - g0] = np.dot(S.T, Xc)
        add_partials(G, partial, g1 - g0)  # fixed order: deterministic (a serial loop)
    return loss, F, G.reshape(K, m, d)


@jit(parallel=True)
def loss_and_input_gradient(X, y, W, q, rho):
    """Per-sample losses, scores, and d loss_n / d X_n for every sample (N, P, d)."""
    N, P, d = X.shape
    K, m, _ = W.shape
    Wf = np.ascontiguousarray(W.reshape(K * m, d))
    WT = np.ascontiguousarray(Wf.T)
    F = np.empty((N, K), dtype=X.dtype)
    loss = np.empty(N, dtype=X.dtype)
    GX = np.empty_like(X)
    B = chunk_samples(P)
    for c in prange((N + B - 1) // B):
        s, e = c * B, min(N, (c + 1) * B)
        S = _forward_backward(np.dot(_rows(X, s, e), WT), y[s:e], e - s, P, K, m, q, rho, 1.0,
                              F[s:e], loss[s:e])
        GX[s:e] = np.dot(S, Wf).reshape(e - s, P, d)
    return loss, F, GX


@jit(parallel=True)
def ascent_step(D, G, step, eps, linf):
    """One projected steepest-ascent step on per-sample perturbations ``D`` (N, P, d).

    l_inf (``linf=True``): D + step sign(G), clipped to [-eps, eps].
    l2: D + step G / ||G_n||, then scaled back into the ball ||D_n|| <= eps.
    A sample whose gradient is exactly zero does not move (theorylab.attacks'
    ``zero_grad="zero"`` policy); a NaN gradient gives a NaN perturbation.
    Norms are per sample over all P d coordinates, computed after dividing by
    the largest entry, so tiny or huge gradients neither underflow nor overflow.
    """
    out = np.empty_like(D)
    for n in prange(D.shape[0]):
        _ascent_row(D, G, out, n, step, eps, linf)
    return out


@jit(parallel=True)
def ascent(X, y, W, q, rho, D0, steps, step, eps, linf):
    """``steps`` projected steepest-ascent steps from ``X + D0``; returns the last D (N, P, d).

    The whole attack of a chunk of samples runs in one task (samples are attacked
    independently): per step, the input gradient at X + D (two GEMMs) and the
    update of :func:`ascent_step`.  Chunk-local temporaries stay in cache and the
    thread pool synchronises once per attack instead of twice per step.  Same bits
    as alternating :func:`loss_and_input_gradient` and :func:`ascent_step`.
    """
    N, P, d = X.shape
    K, m, _ = W.shape
    Wf = np.ascontiguousarray(W.reshape(K * m, d))
    WT = np.ascontiguousarray(Wf.T)
    out = np.empty_like(X)
    B = chunk_samples(P)
    for c in prange((N + B - 1) // B):
        s, e = c * B, min(N, (c + 1) * B)
        n = e - s
        D = out[s:e]
        D[:, :, :] = D0[s:e]
        F = np.empty((n, K), dtype=X.dtype)
        loss = np.empty(n, dtype=X.dtype)
        for _ in range(steps):
            Xc = X[s:e] + D
            S = _forward_backward(np.dot(Xc.reshape(n * P, d), WT), y[s:e], n, P, K, m, q,
                                  rho, 1.0, F, loss)
            _ascent_rows(D, np.dot(S, Wf).reshape(n, P, d), step, eps, linf)
    return out


# -- theorylab.attacks.pgd, compiled ---------------------------------------
# One task attacks a chunk of samples from start to finish, as in :func:`attack`, and
# keeps the best iterate as attacks.pgd's loop does.  Losses and gradients are
# loss_and_input_gradient's (the same chunks, the same GEMMs on the same operands,
# _forward_backward with scale 1), the step is ascent_step's (the _ascent rows): the
# NumPy loop's bits in linf, equal up to rounding in l2 (NumPy's steepest_ascent and
# project round differently).  The last iterate's gradient is never used: not formed.


@jit
def _pgd_chunk(X, y, Wf, WT, K, m, q, rho, D, t0, t1, steps, step, eps, linf, best, best_loss,
               ok):
    # attacks.pgd for one start on the samples of one chunk (all arrays are its rows):
    # iterations t0..t1-1 of 0..steps, with D, best, best_loss and ok as in-place state
    # (consecutive ranges give the bits of one call).
    n, P, d = X.shape
    dt = X.dtype
    Xc = np.empty_like(X)
    Z = np.empty((n * P, K * m), dtype=dt)
    G = np.empty((n * P, d), dtype=dt)
    F = np.empty((n, K), dtype=dt)
    loss = np.empty(n, dtype=dt)
    zero_start = False
    if t0 == 0:
        best[:, :, :] = 0.0
        zero_start = not np.any(D != 0.0)
        if not zero_start:  # the running maximum starts at the loss at X (delta = 0)
            np.dot(X.reshape(n * P, d), WT, Z)
            _forward_backward(Z, y, n, P, K, m, q, rho, 1.0, F, best_loss)
    for t in range(t0, t1):
        for i in range(n):
            for p in range(P):
                for j in range(d):
                    Xc[i, p, j] = X[i, p, j] + D[i, p, j]
        np.dot(Xc.reshape(n * P, d), WT, Z)
        S = _forward_backward(Z, y, n, P, K, m, q, rho, 1.0, F, loss)
        if t == 0 and zero_start:
            best_loss[:] = loss  # X + 0 is X: the loss at X, and no row is better
        else:
            for i in range(n):
                if loss[i] > best_loss[i]:  # strict: the first best wins ties
                    best_loss[i] = loss[i]
                    best[i] = D[i]
        if t < steps:  # attacks.pgd steps only from these gradients, so only they are checked
            np.dot(S, Wf, G)
            _finite_rows(G.reshape(n, P * d), ok)
            _ascent_rows(D, G.reshape(n, P, d), step, eps, linf)


@jit
def pgd(X, y, W, q, rho, D0, steps, step, eps, linf):
    """Projected gradient ascent on the per-sample loss from ``X + D0``: one start.

    Reproduces one start of :func:`theorylab.attacks.pgd` (l2, or linf with
    ``linf=True``) on inputs ``X`` (N, P, d): ``steps`` moves of size ``step``
    along the steepest-ascent direction (norms per sample over P d coordinates),
    each projected onto the ball of radius ``eps``; a sample whose gradient is
    exactly zero does not move.  Pass ``step`` and ``eps`` as scalars of X's
    dtype (NumPy rounds them to it too); ``X`` and ``D0`` C-contiguous.

    Returns
    -------
    best : (N, P, d) array
        Per sample, the iterate of highest loss, the start delta = 0 included
        (first one on ties).
    best_loss : (N,) array
        Its loss.
    ok : (N,) bool array
        False for samples with a NaN or infinite gradient at a step taken (the
        caller raises, as ``steepest_ascent`` does).
    """
    D = D0.copy()
    best = np.empty_like(X)
    best_loss = np.empty(X.shape[0], dtype=X.dtype)
    ok = np.ones(X.shape[0], dtype=np.bool_)
    pgd_steps(X, y, W, q, rho, D, 0, steps + 1, steps, step, eps, linf, best, best_loss, ok)
    return best, best_loss, ok


@jit(parallel=True)
def pgd_steps(X, y, W, q, rho, D, t0, t1, steps, step, eps, linf, best, best_loss, ok):
    """Iterations ``t0 .. t1 - 1`` (of ``0 .. steps``) of :func:`pgd`, resumable.

    ``D`` (a copy of D0 at first), ``best``, ``best_loss`` and ``ok`` (all ones at
    first) are updated in place; consecutive ranges covering ``0 .. steps`` give
    :func:`pgd`'s bits, so the caller can return to Python between them.
    """
    N, P, d = X.shape
    K, m, _ = W.shape
    Wf = np.ascontiguousarray(W.reshape(K * m, d))
    WT = np.ascontiguousarray(Wf.T)
    B = chunk_samples(P)
    for c in prange((N + B - 1) // B):
        s, e = c * B, min(N, (c + 1) * B)
        _pgd_chunk(X[s:e], y[s:e], Wf, WT, K, m, q, rho, D[s:e], t0, t1, steps, step, eps,
                   linf, best[s:e], best_loss[s:e], ok[s:e])


@jit(parallel=True)
def scores_along(X, D, W, q, rho, ts):
    """Scores F(X + t D) for every t in ``ts``: array (len(ts), N, K).

    Pre-activations are linear in t, <w, x + t delta> = <w, x> + t <w, delta>, so
    two GEMMs per chunk serve the whole line; each t costs one elementwise pass.
    """
    N, P, d = X.shape
    K, m, _ = W.shape
    WT = np.ascontiguousarray(W.reshape(K * m, d).T)
    out = np.empty((ts.shape[0], N, K), dtype=X.dtype)
    B = chunk_samples(P)
    for c in prange((N + B - 1) // B):
        s, e = c * B, min(N, (c + 1) * B)
        Z0 = np.dot(_rows(X, s, e), WT)
        Z1 = np.dot(_rows(D, s, e), WT)
        for i in range(ts.shape[0]):
            _sum_activations(Z0 + ts[i] * Z1, e - s, P, K, m, q, rho, out[i, s:e])
    return out
