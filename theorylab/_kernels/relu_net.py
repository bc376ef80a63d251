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

from ._ascent import _ascent_rows, _finite_rows
from ._jit import get_num_threads, jit, prange
from ._sums import add_partials

__all__ = ["CHUNK", "GROUP", "RULES", "scores", "logistic", "loss_and_weight_gradient",
           "loss_and_input_gradient", "margin_and_input_gradient", "pgd", "pgd_steps", "fgm",
           "fgm_loss_and_weight_gradient", "gemms_alone", "thresholds", "train_full_batch_many"]

RULES = {"max": 0, "norm": 1, "fixed": 2}  # threshold rules, as the many-runs kernel codes them

CHUNK = 256  # rows per parallel task: a GEMM this tall still runs near BLAS peak
GROUP = 8    # chunks whose partial gradients are held at once (memory GROUP * m * d)


@jit
def _logistic_entry(t, yr):
    # log(1 + exp(-t)) and its slope dl/df at margin t = y f, overflow-free for either sign.
    if t > 0.0:
        e = math.exp(-t)
        return math.log1p(e), -yr * (e / (1.0 + e))
    e = math.exp(t)
    return -t + math.log1p(e), -yr / (1.0 + e)


@jit
def _open_part(u, bi):
    # sign(u) max(|u| - b_i, 0) without a branch (an open gate is unpredictable, and the
    # mispredictions cost a third of the forward pass).  A closed gate gives +-0.0, which
    # leaves a row's sum unchanged: the sum starts at +0.0 and is never -0.0 (x + y is
    # -0.0 only for -0.0 + -0.0), so the bits are those of skipping the term.  A NaN u or
    # b_i gives 0 (a > 0.0 is false), as skipping did.
    a = abs(u) - bi
    t = a if a > 0.0 else 0.0
    return t if u > 0.0 else -t


@jit
def _forward_into(U, b, y, need_slope, f, loss, slope):
    # Scores, per-sample losses and slopes dl/df of the rows of U into f, loss, slope
    # (their first U.shape[0] entries); each row summed in a fixed order.
    n, m = U.shape
    for r in range(n):
        s = 0.0
        for i in range(m):
            s += _open_part(U[r, i], b[i])
        f[r] = s
        if need_slope:
            loss[r], slope[r] = _logistic_entry(y[r] * s, y[r])


@jit
def _forward_chunk(U, b, y, need_slope):
    n = U.shape[0]
    f = np.empty(n, dtype=U.dtype)
    loss = np.empty(n, dtype=U.dtype)
    slope = np.empty(n, dtype=U.dtype)
    _forward_into(U, b, y, need_slope, f, loss, slope)
    return f, loss, slope


@jit
def _gated_into(U, b, slope, scale, A):
    # A_ni = scale * slope_n * 1{|U_ni| > b_i}: the residual routed through open gates.
    n, m = U.shape
    for r in range(n):
        s = slope[r] * scale
        for i in range(m):
            A[r, i] = s if abs(U[r, i]) > b[i] else 0.0


@jit
def _gated(U, b, slope, scale):
    A = np.empty_like(U)
    _gated_into(U, b, slope, scale, A)
    return A


@jit
def _chunk_gradient_into(Xc, yc, W, b, scale, U, A, P, f, loss, slope):
    # Rows Xc: scores, losses, and the partial gradient P = scale * sum_n l'_n 1{|u_n|>b}
    # x_n^T, into work arrays (U, A: at least Xc's rows x m; P: m x d; f, loss, slope: at
    # least Xc's rows).  Every weight gradient goes through here.  Reusing the arrays matters: with fresh arrays per chunk, glibc trims and
    # re-faults the threads' heaps, and two threads then scaled 1.7x instead of 2x (page
    # faults serialise on the process's memory map).
    k = Xc.shape[0]
    Uc = U[:k]
    Ac = A[:k]
    np.dot(Xc, W.T, Uc)
    _forward_into(Uc, b, yc, True, f, loss, slope)
    _gated_into(Uc, b, slope, scale, Ac)
    np.dot(Ac.T, Xc, P)


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
        loss[r], slope[r] = _logistic_entry(y[r] * f[r], y[r])
    return loss, slope


@jit
def loss_and_weight_gradient(X, y, W, b):
    """Per-sample losses, scores, and the gradient of the *mean* loss in ``W``.

    Returns
    -------
    loss : (N,) array
    f : (N,) array
    grad_W : (m, d) array
        (1/N) sum_n l'(f_n) 1{|u_n| > b} x_n^T, summed chunk by chunk in order.
    """
    loss, f, G, _ = _weight_gradient(X, y, W, b, np.zeros(1, dtype=X.dtype)[0], False, False)
    return loss, f, G


@jit(parallel=True)
def _weight_gradient(X, y, W, b, eps, linf, fgm_first):
    # loss_and_weight_gradient at X, or (fgm_first) at X + fgm(X, y, W, b, eps, linf)[0]
    # formed chunk by chunk.  The partials of GROUP chunks at a time are added in chunk
    # order.  ok flags the rows whose input gradient or delta is not finite.
    n, d = X.shape
    m = W.shape[0]
    dt = X.dtype
    loss = np.empty(n, dtype=dt)
    f = np.empty(n, dtype=dt)
    ok = np.ones(n, dtype=np.bool_)
    G = np.zeros((m, d), dtype=W.dtype)
    n_chunks = (n + CHUNK - 1) // CHUNK
    partial = np.empty((min(GROUP, n_chunks), m, d), dtype=W.dtype)
    for g0 in range(0, n_chunks, GROUP):
        g1 = min(n_chunks, g0 + GROUP)
        for c in prange(g0, g1):
            s, e = c * CHUNK, min(n, (c + 1) * CHUNK)
            k = e - s
            U, A = np.empty((k, m), dtype=dt), np.empty((k, m), dtype=dt)
            sc = np.empty(k, dtype=dt)
            Xc = X[s:e]
            if fgm_first:
                Xc = _fgm_points(Xc, y[s:e], W, b, eps, linf, U, A, sc, ok[s:e])
            _chunk_gradient_into(Xc, y[s:e], W, b, 1.0 / n, U, A, partial[c - g0], f[s:e],
                                 loss[s:e], sc)
        add_partials(G, partial, g1 - g0)  # fixed order: deterministic
    return loss, f, G, ok


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


@jit(parallel=True)
def margin_and_input_gradient(X, y, W, b):
    """Per-sample margins y f(x_n) and their input gradients y sum_i 1{|u_i| > b_i} w_i."""
    n = X.shape[0]
    marg = np.empty(n, dtype=X.dtype)
    G = np.empty_like(X)
    dummy = np.empty(0, dtype=X.dtype)
    for c in prange((n + CHUNK - 1) // CHUNK):
        s, e = c * CHUNK, min(n, (c + 1) * CHUNK)
        U = np.dot(X[s:e], W.T)
        marg[s:e] = y[s:e] * _forward_chunk(U, b, dummy, False)[0]
        G[s:e] = np.dot(_gated(U, b, y[s:e], 1.0), W)
    return marg, G


# -- attacks ---------------------------------------------------------------
# theorylab.attacks' PGD and FGM loops, compiled.  One task attacks a chunk of rows from
# start to finish (rows are attacked independently): per step the input gradient at
# X + D, with loss_and_input_gradient's arithmetic (same helpers, same GEMM calls), then
# the projected steepest-ascent update of _ascent.  The NumPy loop cost as much as the
# GEMMs (validation, masks and norms over (N, d) twice per step); here a step is two
# GEMMs plus three passes over the chunk's (CHUNK, d) rows, which stay in cache.


@jit
def _input_gradient_into(Xc, y, W, b, U, A, G, f, loss, slope):
    # loss_and_input_gradient's arithmetic for the rows of Xc, into preallocated arrays.
    np.dot(Xc, W.T, U)
    _forward_into(U, b, y, True, f, loss, slope)
    _gated_into(U, b, slope, 1.0, A)
    np.dot(A, W, G)


@jit
def _pgd_chunk(X, y, W, b, D, t0, t1, steps, step, eps, linf, best, best_loss, ok):
    # attacks.pgd for one start on the rows of one chunk (all arguments are its rows):
    # iterations t0..t1-1 of 0..steps.  D (the iterate), best, best_loss and ok are the
    # state, updated in place, so calls over consecutive ranges give the bits of one call.
    n, d = X.shape
    dt = X.dtype
    Xc, G = np.empty_like(X), np.empty_like(X)
    U = np.empty((n, W.shape[0]), dtype=dt)
    A = np.empty_like(U)
    f, loss, slope = np.empty(n, dtype=dt), np.empty(n, dtype=dt), np.empty(n, dtype=dt)
    zero_start = False
    if t0 == 0:
        best[:, :] = 0.0
        zero_start = not np.any(D != 0.0)
        if not zero_start:  # the running maximum starts at the loss at X (delta = 0)
            np.dot(X, W.T, U)
            _forward_into(U, b, y, True, f, best_loss, slope)
    for t in range(t0, t1):
        for i in range(n):
            for j in range(d):
                Xc[i, j] = X[i, j] + D[i, j]
        _input_gradient_into(Xc, y, W, b, U, A, G, f, loss, slope)
        if t == 0 and zero_start:
            best_loss[:] = loss  # X + 0 is X: this is the loss at X, and no row is better
        else:
            for i in range(n):
                if loss[i] > best_loss[i]:
                    best_loss[i] = loss[i]
                    best[i, :] = D[i, :]
        if t < steps:  # attacks.pgd steps only from these gradients, so only they are checked
            _finite_rows(G, ok)
            _ascent_rows(D.reshape(n, 1, d), G.reshape(n, 1, d), step, eps, linf)


@jit
def pgd(X, y, W, b, D0, steps, step, eps, linf):
    """Projected gradient ascent on the per-sample loss from ``X + D0``: one start.

    Reproduces one start of :func:`theorylab.attacks.pgd` (l2, or linf with
    ``linf=True``): ``steps`` moves of size ``step`` along the steepest-ascent
    direction, each projected onto the ball of radius ``eps``; a row whose
    gradient is exactly zero does not move.  Pass ``step`` and ``eps`` as
    scalars of X's dtype (NumPy rounds them to it too).

    Returns
    -------
    best : (N, d) array
        Per row, the iterate of highest loss, the start delta = 0 included
        (first one on ties).
    best_loss : (N,) array
        Its loss.
    ok : (N,) bool array
        False for rows with a NaN or infinite gradient at a step taken (the
        caller raises, as ``steepest_ascent`` does).
    """
    n = X.shape[0]
    D = D0.copy()
    best = np.empty_like(X)
    best_loss = np.empty(n, dtype=X.dtype)
    ok = np.ones(n, dtype=np.bool_)
    pgd_steps(X, y, W, b, D, 0, steps + 1, steps, step, eps, linf, best, best_loss, ok)
    return best, best_loss, ok


@jit(parallel=True)
def pgd_steps(X, y, W, b, D, t0, t1, steps, step, eps, linf, best, best_loss, ok):
    """Iterations ``t0 .. t1 - 1`` (of ``0 .. steps``) of :func:`pgd`, resumable.

    ``D`` (the iterate, starting as a copy of D0), ``best``, ``best_loss`` and ``ok``
    (all ones at first) are updated in place; consecutive ranges covering
    ``0 .. steps`` give :func:`pgd`'s bits, so a caller can return to Python between
    them (Ctrl-C is only seen there).  Returns nothing.
    """
    n = X.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        s, e = c * CHUNK, min(n, (c + 1) * CHUNK)
        _pgd_chunk(X[s:e], y[s:e], W, b, D[s:e], t0, t1, steps, step, eps, linf, best[s:e],
                   best_loss[s:e], ok[s:e])


@jit(parallel=True)
def fgm(X, y, W, b, eps, linf):
    """Fast gradient method: the steepest-ascent step of radius ``eps`` at ``X``.

    linf (``linf=True``): eps sign(g); l2: eps g / ||g|| (norm after dividing
    by the row's largest entry); a zero gradient gives a zero row.  Computed
    as one step of :func:`pgd` from 0 (its projection changes l2 rows by
    rounding only, linf rows not at all).  ``eps`` of X's dtype.

    Returns
    -------
    delta : (N, d) array
    ok : (N,) bool array
        False for rows whose gradient holds a NaN or an infinity.
    """
    n, d = X.shape
    m = W.shape[0]
    delta = np.zeros_like(X)
    ok = np.ones(n, dtype=np.bool_)
    for c in prange((n + CHUNK - 1) // CHUNK):
        s, e = c * CHUNK, min(n, (c + 1) * CHUNK)
        k = e - s
        U, A = np.empty((k, m), dtype=X.dtype), np.empty((k, m), dtype=X.dtype)
        G = np.empty((k, d), dtype=X.dtype)
        f, loss, slope = (np.empty(k, dtype=X.dtype), np.empty(k, dtype=X.dtype),
                          np.empty(k, dtype=X.dtype))
        _input_gradient_into(X[s:e], y[s:e], W, b, U, A, G, f, loss, slope)
        _finite_rows(G, ok[s:e])
        _ascent_rows(delta[s:e].reshape(k, 1, d), G.reshape(k, 1, d), eps, eps, linf)
    return delta, ok

@jit
def fgm_loss_and_weight_gradient(X, y, W, b, eps, linf):
    """One FGM training step's arithmetic: :func:`loss_and_weight_gradient` at ``X + delta``.

    ``delta`` is :func:`fgm`'s (radius ``eps`` of X's dtype, l2 or linf), formed
    chunk by chunk: per 256-row chunk the input gradient, the steepest-ascent step,
    x + delta and the chunk's weight-gradient partial, all in the chunk's work
    arrays, so the perturbed points never exist as an (N, d) array and the data is
    read once.  Same operations on the same operands as ``fgm``, NumPy's ``X +
    delta`` and ``loss_and_weight_gradient``, so the same bits.

    Returns
    -------
    loss, f : (N,) arrays
        At the perturbed points.
    grad_W : (m, d) array
    ok : (N,) bool array
        False for rows whose input gradient or delta holds a NaN or an infinity
        (the caller raises, as ``fgm`` does).
    """
    return _weight_gradient(X, y, W, b, eps, linf, True)


@jit
def _fgm_points(Xc, yc, W, b, eps, linf, U, A, slope, ok):
    # Xc + fgm's delta for the rows of one chunk, as a new (k, d) array: fgm's arithmetic
    # (the input gradient, then the steepest-ascent step from 0), then NumPy's X + delta.
    k, d = Xc.shape
    Gx, Xa = np.empty((k, d), dtype=Xc.dtype), np.zeros((k, d), dtype=Xc.dtype)
    f, loss = np.empty(k, dtype=Xc.dtype), np.empty(k, dtype=Xc.dtype)
    _input_gradient_into(Xc, yc, W, b, U, A, Gx, f, loss, slope)
    _finite_rows(Gx, ok)
    _ascent_rows(Xa.reshape(k, 1, d), Gx.reshape(k, 1, d), eps, eps, linf)
    _finite_rows(Xa, ok)
    for i in range(k):
        for j in range(d):
            Xa[i, j] = Xc[i, j] + Xa[i, j]
    return Xa


@jit(parallel=True)
def gemms_alone(X, W, A, n_scores, n_weight, n_input):
    """The GEMMs of a workload alone, chunked as the kernels run them: a profile.

    Per 256-row chunk, on the chunks in parallel and single-threaded BLAS:
    ``n_scores`` products X_c W^T, ``n_weight`` weight-gradient partials A_c^T X_c
    and ``n_input`` input gradients A_c W (``A`` of shape (N, m)), one of each kind
    in turn, as the steps of the kernels alternate them.
    ``benchmarks/bench_peers`` compares a workload's time with this one to split it
    into GEMMs and the rest.  Returns a sum of the products (nothing is dropped).
    """
    n, d = X.shape
    m = W.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    out = np.zeros(n_chunks, dtype=X.dtype)
    for c in prange(n_chunks):
        s, e = c * CHUNK, min(n, (c + 1) * CHUNK)
        Xc, Ac = X[s:e], A[s:e]
        U, P, G = np.empty((e - s, m), X.dtype), np.empty((m, d), X.dtype), np.empty_like(Xc)
        for r in range(max(n_scores, n_weight, n_input)):  # interleaved, as in a step
            if r < n_scores:
                np.dot(Xc, W.T, U)
            if r < n_weight:
                np.dot(Ac.T, Xc, P)
            if r < n_input:
                np.dot(Ac, W, G)
        out[c] = U[0, 0] + P[0, 0] + G[0, 0]
    return out.sum()


# -- many independent runs -------------------------------------------------
# Users run thousands of small trainings (a batch of seeds).  The kernel below runs
# the whole full-batch GD loop of each run compiled: a batch one run per thread
# (``prange`` over runs, no synchronisation at all), and a lone run with its chunks of
# samples on all threads (one parallel region per step).  Either way a run repeats
# exactly the arithmetic of ``loss_and_weight_gradient`` (the same chunk partials added
# in the same order), so its bits equal those of training it alone, for any thread
# count and any batch it is part of.


@jit
def thresholds(W, c, rule, M):
    """Thresholds b (m,) of ``W`` at coefficient ``c`` (of W's dtype) under rule code ``rule``.

    ``RULES``: 0 "max", b_i = c max_j |(W M)_ij| (``M`` of shape (0, 0) means the
    identity); 1 "norm", b_i = c ||w_i||; 2 "fixed", b_i = c.
    """
    m, d = W.shape
    b = np.empty(m, dtype=W.dtype)
    if rule == 0:
        C = W if M.shape[0] == 0 else np.dot(W, M)
        for i in range(m):
            a = abs(C[i, 0])
            for j in range(1, d):
                v = abs(C[i, j])
                if v > a or v != v:  # a NaN weight gives a NaN threshold, as np.max does
                    a = v
            b[i] = c * a
    elif rule == 1:
        for i in range(m):  # ||w_i|| scaled by its largest entry: no overflow or underflow
            big = 0.0
            for j in range(d):
                v = abs(W[i, j])
                if v > big or v != v:
                    big = v
            acc = 0.0
            if big > 0.0:
                for j in range(d):
                    q = W[i, j] / big
                    acc += q * q
            elif big != big:
                acc = big
            b[i] = c * (big * math.sqrt(acc))
    else:
        for i in range(m):
            b[i] = c
    return b


@jit
def _mean_or_inf(total, n, dt):
    # The mean loss, or inf when the loss sum overflows W's dtype (what np.mean in that
    # dtype, the single-run path's divergence test, reports).
    if total > np.finfo(dt).max:
        return np.inf
    return total / n


@jit
def _mean_loss_and_gradient_serial(X, y, W, b, G, U, A, P, f, loss, slope):
    # loss_and_weight_gradient's sums, chunk after chunk on this thread (U, A: CHUNK x m;
    # P: m x d; f, loss, slope: CHUNK); returns the mean loss (_mean_or_inf).
    n = X.shape[0]
    G[:, :] = 0.0
    total = 0.0
    for c in range((n + CHUNK - 1) // CHUNK):
        s, e = c * CHUNK, min(n, (c + 1) * CHUNK)
        _chunk_gradient_into(X[s:e], y[s:e], W, b, 1.0 / n, U, A, P, f, loss, slope)
        G += P
        for r in range(e - s):
            total += loss[r]
    return _mean_or_inf(total, n, W.dtype)


@jit(parallel=True)
def _mean_loss_and_gradient_chunked(X, y, W, b, G, U, A, P, f, loss, slope):
    # The same sums with the chunks on all threads (one run using every core): the
    # partials P[j] (slots x m x d) of groups of P.shape[0] chunks are added in chunk
    # order and the per-row losses (f, loss, slope: N) in row order afterwards, so the
    # bits are _mean_loss_and_gradient_serial's for any thread count.  Worker w takes
    # the chunks w, w + workers, ... of a group with its own U[w], A[w] (workers x CHUNK
    # x m): work arrays that stay in its cache, as the serial path's do.
    n = X.shape[0]
    n_chunks = (n + CHUNK - 1) // CHUNK
    G[:, :] = 0.0
    for g0 in range(0, n_chunks, P.shape[0]):
        g1 = min(n_chunks, g0 + P.shape[0])
        workers = min(U.shape[0], g1 - g0)
        for w in prange(workers):
            for c in range(g0 + w, g1, workers):
                s, e = c * CHUNK, min(n, (c + 1) * CHUNK)
                _chunk_gradient_into(X[s:e], y[s:e], W, b, 1.0 / n, U[w], A[w], P[c - g0],
                                     f[s:e], loss[s:e], slope[s:e])
        add_partials(G, P, g1 - g0)  # fixed order: deterministic
    total = 0.0
    for r in range(n):
        total += loss[r]
    return _mean_or_inf(total, n, W.dtype)


@jit
def _train_run(X, y, W, c, eta, rule, M, loss, workers):
    # Full-batch GD of one run, W (m, d) updated in place; loss (steps,) receives the mean
    # loss before each step.  Returns the step whose loss or update was not finite, or -1.
    # workers > 1: the run's chunks go to that many threads (a run trained alone), else
    # this thread does them all (one run per thread); the bits are the same.
    m, d = W.shape
    n = X.shape[0]
    dt = W.dtype
    chunked = workers > 1
    slots = min(GROUP, (n + CHUNK - 1) // CHUNK) if chunked else 1
    rows = n if chunked else min(CHUNK, n)
    G, Wn = np.empty((m, d), dtype=dt), np.empty((m, d), dtype=dt)
    U = np.empty((workers if chunked else 1, CHUNK, m), dtype=dt)
    A = np.empty_like(U)
    P = np.empty((slots, m, d), dtype=dt)
    f, lo, sl = np.empty(rows, dtype=dt), np.empty(rows, dtype=dt), np.empty(rows, dtype=dt)
    for t in range(c.shape[0]):
        b = thresholds(W, c[t], rule, M)
        if chunked:
            L = _mean_loss_and_gradient_chunked(X, y, W, b, G, U, A, P, f, lo, sl)
        else:
            L = _mean_loss_and_gradient_serial(X, y, W, b, G, U[0], A[0], P[0], f, lo, sl)
        loss[t] = L
        if not np.isfinite(L):
            return t
        probe = 0.0
        for i in range(m):  # W - lr G, rounded as NumPy's W -= lr * G rounds it
            for j in range(d):
                v = W[i, j] - eta * G[i, j]
                Wn[i, j] = v
                probe += v - v  # 0 for a finite v, NaN for inf or NaN: one test below
        if probe != 0.0:
            return t
        W[:, :] = Wn
    return -1


def train_full_batch_many(X, y, W0, c, lr, rule, M):
    """Full-batch GD on ``S`` independent networks, the whole loop compiled.

    Parameters
    ----------
    X : (S, N, d) array
        Run r trains on ``X[r]`` with labels ``y[r]`` (S, N).
    W0 : (S, m, d) array
        Initial weights (not modified).
    c : (steps,) array of W's dtype
        Threshold coefficient at each step (a schedule, or a constant).
    lr : (1,) array of W's dtype
        Step size (an array so that float32 runs multiply in float32, as NumPy does).
    rule : int
        Threshold rule code (``RULES``); ``M`` the dictionary or a (0, 0) array.

    Returns
    -------
    W : (S, m, d) array
        Final weights; a diverged run keeps its last finite weights.
    loss : (S, steps) array
        Mean loss before each step (summed in order; NaN for steps not taken).
    diverged_at : (S,) int64 array
        The step whose loss or update was not finite, or -1.

    Notes
    -----
    With T threads, runs go one per thread in groups of T; the S mod T left over
    (a lone run: S = 1) are trained one after the other, each with its chunks of
    samples on all T threads.  Both ways add the same chunk partials in the same
    order, so the bits do not depend on T.
    """
    # T comes from Python: Numba cannot cache a kernel that asks for the thread count.
    return _train_full_batch_many(X, y, W0, c, lr, rule, M, get_num_threads())


@jit(parallel=True)
def _train_full_batch_many(X, y, W0, c, lr, rule, M, T):
    S = X.shape[0]
    steps = c.shape[0]
    W = W0.copy()
    loss = np.full((S, steps), np.nan, dtype=X.dtype)
    diverged_at = np.full(S, -1, dtype=np.int64)
    eta = lr[0]
    whole = S - S % T
    for r in prange(whole):  # runs are independent: any thread, same bits
        diverged_at[r] = _train_run(X[r], y[r], W[r], c, eta, rule, M, loss[r], 1)
    for r in range(whole, S):
        diverged_at[r] = _train_run(X[r], y[r], W[r], c, eta, rule, M, loss[r], T)
    return W, loss, diverged_at
