"""Kernels of the two-layer smoothed-ReLU patch CNN (Li & Li; Allen-Zhu & Li's form).

    F_k(X) = sum_r sum_p sigma(<w_{k,r}, x_p>),   W of shape (K, m, d), X of shape (N, P, d),

    sigma(z) = 0                        z <= 0
             = z^q / (q rho^(q-1))      0 <= z <= rho
             = z - (1 - 1/q) rho        z >= rho

with the softmax cross-entropy loss.  The weights are shared across patches, so
X is viewed as (N*P, d) and W as (K*m, d): the pre-activations are one GEMM,
the weight gradient one GEMM and the input gradient one GEMM (BLAS via
``np.dot``).  The elementwise work runs in ``prange`` loops over samples; each
sample's rows are written by one iteration and summed in a fixed order, so the
results are the same bits for any Numba thread count.  Memory is
O(N P K m + N P d): no N x P x K x m x d temporary.

No validation here: the model class passes C-contiguous arrays of one floating
dtype, integer labels in [0, K), and integer q >= 2, rho > 0.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, prange

__all__ = [
    "smoothed_relu",
    "smoothed_relu_derivative",
    "scores",
    "patch_scores",
    "loss_and_weight_gradient",
    "loss_and_input_gradient",
    "ascent_step",
    "scores_along",
]


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


@jit
def _act(z, q, rho):
    return _act_slope(z, q, rho)[0]


@jit
def _dact(z, q, rho):
    return _act_slope(z, q, rho)[1]


@jit(parallel=True)
def smoothed_relu(Z, q, rho):
    """sigma applied elementwise to a 1-d array."""
    out = np.empty_like(Z)
    for i in prange(Z.shape[0]):
        out[i] = _act(Z[i], q, rho)
    return out


@jit(parallel=True)
def smoothed_relu_derivative(Z, q, rho):
    """sigma' applied elementwise to a 1-d array."""
    out = np.empty_like(Z)
    for i in prange(Z.shape[0]):
        out[i] = _dact(Z[i], q, rho)
    return out


@jit
def _preactivations(X, W):
    # (N*P, K*m) matrix of <w_{k,r}, x_{n,p}>, one GEMM.
    N, P, d = X.shape
    K, m, _ = W.shape
    return np.dot(X.reshape(N * P, d), W.reshape(K * m, d).T)


@jit(parallel=True)
def _sum_activations(Z, N, P, K, m, q, rho):
    # F[n, k] = sum_p sum_r sigma(Z[n P + p, k m + r]), fixed order per sample.
    F = np.empty((N, K), dtype=Z.dtype)
    for n in prange(N):
        for k in range(K):
            s = 0.0
            for p in range(P):
                row = n * P + p
                for r in range(m):
                    s += _act(Z[row, k * m + r], q, rho)
            F[n, k] = s
    return F


@jit(parallel=True)
def _patch_activations(Z, N, P, K, m, q, rho):
    # Fp[n, p, k] = sum_r sigma(Z[n P + p, k m + r]).
    Fp = np.empty((N, P, K), dtype=Z.dtype)
    for n in prange(N):
        for p in range(P):
            row = n * P + p
            for k in range(K):
                s = 0.0
                for r in range(m):
                    s += _act(Z[row, k * m + r], q, rho)
                Fp[n, p, k] = s
    return Fp


@jit(parallel=True)
def _forward_backward(Z, y, N, P, K, m, q, rho, scale):
    # One parallel region over samples: scores F, per-sample softmax
    # cross-entropy, and the backpropagated matrix
    #     S[n P + p, k m + r] = scale * g[n, k] * sigma'(Z[n P + p, k m + r]),
    # with g = softmax(F) - onehot(y).  The max is subtracted before exp, so
    # large scores neither overflow nor lose the loss; a NaN score gives a NaN
    # loss (the caller checks).  Fusing the three steps keeps the number of
    # thread synchronisations at one per call.
    F = np.empty((N, K), dtype=Z.dtype)
    loss = np.empty(N, dtype=Z.dtype)
    S = np.empty_like(Z)
    for n in prange(N):
        g = np.empty(K)
        mx = -np.inf
        for k in range(K):
            s = 0.0
            for p in range(P):
                row = n * P + p
                for r in range(m):
                    v, slope = _act_slope(Z[row, k * m + r], q, rho)
                    s += v
                    S[row, k * m + r] = slope
            F[n, k] = s
            g[k] = s
            if s > mx:
                mx = s
        tot = 0.0
        for k in range(K):
            g[k] = math.exp(g[k] - mx)
            tot += g[k]
        for k in range(K):
            g[k] = g[k] / tot
        g[y[n]] -= 1.0
        loss[n] = math.log(tot) + mx - F[n, y[n]]
        for p in range(P):
            row = n * P + p
            for k in range(K):
                gk = g[k] * scale
                for r in range(m):
                    S[row, k * m + r] *= gk
    return loss, F, S


@jit
def scores(X, W, q, rho):
    """Class scores F (N, K) for inputs ``X`` (N, P, d) and weights ``W`` (K, m, d)."""
    N, P, _ = X.shape
    K, m, _ = W.shape
    return _sum_activations(_preactivations(X, W), N, P, K, m, q, rho)


@jit
def patch_scores(X, W, q, rho):
    """Per-patch contributions (N, P, K) to the scores; they sum over P to :func:`scores`."""
    N, P, _ = X.shape
    K, m, _ = W.shape
    return _patch_activations(_preactivations(X, W), N, P, K, m, q, rho)


@jit
def loss_and_weight_gradient(X, y, W, q, rho):
    """Per-sample losses, scores, and the gradient of the *mean* loss in ``W``.

    Returns
    -------
    loss : (N,) array
    F : (N, K) array
    grad_W : (K, m, d) array
        (1/N) sum_n sum_p g_{n,k} sigma'(<w_{k,r}, x_{n,p}>) x_{n,p}, one GEMM.
    """
    N, P, d = X.shape
    K, m, _ = W.shape
    Z = _preactivations(X, W)
    loss, F, S = _forward_backward(Z, y, N, P, K, m, q, rho, 1.0 / N)
    # X^T S (d, K m) rather than S^T X: same product, but with the long N P axis
    # as the inner dimension of a column-major GEMM OpenBLAS threads it far
    # better (S^T X measured ~10x slower on 2 busy cores).
    GT = np.dot(X.reshape(N * P, d).T, S)
    return loss, F, np.ascontiguousarray(GT.T).reshape(K, m, d)


@jit
def loss_and_input_gradient(X, y, W, q, rho):
    """Per-sample losses, scores, and d loss_n / d X_n for every sample (N, P, d)."""
    N, P, d = X.shape
    K, m, _ = W.shape
    Z = _preactivations(X, W)
    loss, F, S = _forward_backward(Z, y, N, P, K, m, q, rho, 1.0)
    return loss, F, np.dot(S, W.reshape(K * m, d)).reshape(N, P, d)


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
    N, P, d = D.shape
    out = np.empty_like(D)
    for n in prange(N):
        if linf:
            for p in range(P):
                for j in range(d):
                    v = D[n, p, j] + step * _sign(G[n, p, j])
                    out[n, p, j] = min(eps, max(-eps, v)) if v == v else v
        else:
            _l2_row(D, G, out, n, step, eps)
    return out


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
    dd = 0.0
    for p in range(P):
        for j in range(d):
            v = D[n, p, j] + c * (G[n, p, j] / big)
            out[n, p, j] = v
            dd += v * v
    nrm = math.sqrt(dd)
    if nrm > eps:
        f = eps / nrm
        for p in range(P):
            for j in range(d):
                out[n, p, j] *= f


@jit
def scores_along(X, D, W, q, rho, ts):
    """Scores F(X + t D) for every t in ``ts``: array (len(ts), N, K).

    Pre-activations are linear in t, <w, x + t delta> = <w, x> + t <w, delta>, so
    two GEMMs serve the whole line; each t costs one elementwise pass.
    """
    N, P, _ = X.shape
    K, m, _ = W.shape
    Z0 = _preactivations(X, W)
    Z1 = _preactivations(D, W)
    out = np.empty((ts.shape[0], N, K), dtype=Z0.dtype)
    for i in range(ts.shape[0]):
        out[i] = _sum_activations(Z0 + ts[i] * Z1, N, P, K, m, q, rho)
    return out
