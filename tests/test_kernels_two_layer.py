"""The two-layer kernels against plain NumPy and against finite differences."""

import numba
import numpy as np
import pytest

from theorylab._kernels import relu_net as k
from theorylab.models import TwoLayerReLU


def numpy_reference(X, y, W, b):
    U = X @ W.T
    f = (np.sign(U) * np.maximum(np.abs(U) - b, 0)).sum(1)
    loss = np.logaddexp(0, -y * f)
    slope = -y / (1 + np.exp(y * f))
    D = (np.abs(U) > b).astype(float)
    gW = (slope[:, None] * D).T @ X / len(y)
    gX = (slope[:, None] * D) @ W
    return f, loss, gW, gX


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((37, 11))
    W = rng.standard_normal((5, 11)) * 0.5
    b = np.abs(rng.standard_normal(5)) * 0.3
    y = rng.choice([-1.0, 1.0], 37)
    return X, y, W, b


def test_kernels_match_numpy(problem):
    X, y, W, b = problem
    f, loss, gW, gX = numpy_reference(X, y, W, b)
    l1, f1, gW1 = k.loss_and_weight_gradient(X, y, W, b)
    l2, f2, gX2 = k.loss_and_input_gradient(X, y, W, b)
    np.testing.assert_allclose(k.scores(X, W, b), f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f1, f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(l1, loss, rtol=1e-12)
    np.testing.assert_allclose(l2, loss, rtol=1e-12)
    np.testing.assert_allclose(gW1, gW, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gX2, gX, rtol=1e-10, atol=1e-14)


def test_logistic_is_stable_at_extreme_margins():
    f = np.array([1e4, -1e4, 0.0, 800.0])
    y = np.ones(4)
    loss, slope = k.logistic(f, y)
    assert np.isfinite(loss).all() and np.isfinite(slope).all()
    np.testing.assert_allclose(loss, [0.0, 1e4, np.log(2), 0.0], atol=1e-300)
    nan_loss, _ = k.logistic(np.array([np.nan]), np.ones(1))
    assert np.isnan(nan_loss[0])  # NaN is reported, not masked


def _central_diff(fun, A, h=1e-6):
    G = np.zeros_like(A)
    it = np.nditer(A, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        Ap, Am = A.copy(), A.copy()
        Ap[idx] += h
        Am[idx] -= h
        G[idx] = (fun(Ap) - fun(Am)) / (2 * h)
    return G


def test_weight_gradient_matches_central_differences(problem):
    X, y, W, b = problem
    _, _, gW = k.loss_and_weight_gradient(X, y, W, b)
    fd = _central_diff(lambda A: np.mean(k.loss_and_weight_gradient(X, y, A, b)[0]), W)
    np.testing.assert_allclose(gW, fd, rtol=1e-5, atol=1e-8)


def test_input_gradient_matches_central_differences(problem):
    X, y, W, b = problem
    model = TwoLayerReLU(11, 5, threshold="fixed", c=0.2, W=W)
    G = model.input_gradient(X, y)
    fd = _central_diff(lambda A: model.loss(A, y, reduction="none").sum(), X)
    np.testing.assert_allclose(G, fd, rtol=1e-5, atol=1e-8)


def test_float32_kernels_agree_with_float64(problem):
    X, y, W, b = problem
    f64 = k.loss_and_weight_gradient(X, y, W, b)[2]
    f32 = k.loss_and_weight_gradient(*(a.astype(np.float32) for a in (X, y, W, b)))[2]
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, f64, rtol=1e-3, atol=1e-5)


def test_numba_blas_is_pinned():
    # Without the pin, OpenBLAS splits the sample sum of A^T X across threads (seen at N=1000).
    from theorylab._kernels import _blas

    assert _blas.PINNED


def test_same_bits_for_any_thread_count():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((1000, 64))  # a shape where threaded OpenBLAS changed the bits
    W = rng.standard_normal((128, 64)) / 64
    b = np.full(128, 0.01)
    y = rng.choice([-1.0, 1.0], 2000)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = k.loss_and_weight_gradient(X, y, W, b)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = k.loss_and_weight_gradient(X, y, W, b)
    finally:
        numba.set_num_threads(before)
    for a, c in zip(one, many):
        assert np.array_equal(a, c)


def test_chunked_kernels_match_numpy_across_chunk_boundaries():
    # N spans several chunk groups, the last chunk partial: results equal the one-shot reference.
    rng = np.random.default_rng(5)
    n = (k.GROUP + 2) * k.CHUNK + 37  # more than one group, last chunk partial
    X = rng.standard_normal((n, 9))
    W = rng.standard_normal((6, 9)) * 0.4
    b = np.full(6, 0.1)
    y = rng.choice([-1.0, 1.0], n)
    f, loss, gW, gX = numpy_reference(X, y, W, b)
    np.testing.assert_allclose(k.scores(X, W, b), f, rtol=1e-12, atol=1e-12)
    l1, f1, gW1 = k.loss_and_weight_gradient(X, y, W, b)
    l2, f2, gX2 = k.loss_and_input_gradient(X, y, W, b)
    np.testing.assert_allclose(l1, loss, rtol=1e-12)
    np.testing.assert_allclose(gW1, gW, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(gX2, gX, rtol=1e-10, atol=1e-14)


def _skip_closed_gates(U, b):
    # The scores as first written: closed gates skipped, one branch per entry (float32 U:
    # |u| - b in float32, the row sum in float64, as the kernel types it).
    f = np.empty(U.shape[0], dtype=U.dtype)
    for r in range(U.shape[0]):
        s = 0.0
        for i in range(U.shape[1]):
            a = abs(U[r, i]) - b[i]
            if a > 0.0:
                s += float(a) if U[r, i] > 0.0 else -float(a)
        f[r] = s
    return f


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_branch_free_scores_have_the_bits_of_skipping_closed_gates(dtype):
    # Gates exactly at the threshold, signed zeros, zero thresholds, NaN and inf among
    # ordinary entries: the select form adds +-0.0 for a closed gate, which must change
    # no bit of any row sum (the sum is never -0.0), and a NaN must stay skipped.
    rng = np.random.default_rng(3)
    b = np.abs(rng.standard_normal(9)).astype(dtype)
    b[0] = 0.0
    U = rng.standard_normal((400, 9)).astype(dtype)
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf], dtype=dtype)
    U[::4] = rng.choice(specials, U[::4].shape)
    U[1::4, 1:] = b[1:] * rng.choice(np.array([-1, 1], dtype=dtype), (100, 8))  # |u| == b
    U[2::4] = -0.0
    f = k._forward_chunk(U, b, np.ones(400, dtype=dtype), False)[0]
    ref = _skip_closed_gates(U, b)
    assert np.array_equal(f.view(np.uint8), ref.view(np.uint8))  # bits, NaN and -0 included
    assert np.isfinite(ref).mean() > 0.5 and (ref != 0).mean() > 0.3  # not a trivial case


def test_gemms_alone_computes_the_products_it_times():
    # The benchmarks' GEMM profile does the chunks' products (not a no-op): per chunk
    # U[0, 0] + P[0, 0] + G[0, 0] of X_c W^T, A_c^T X_c and A_c W.
    rng = np.random.default_rng(2)
    X, W, A = rng.standard_normal((600, 7)), rng.standard_normal((5, 7)), rng.standard_normal((600, 5))
    want = sum((X[s:s + 256] @ W.T)[0, 0] + (A[s:s + 256].T @ X[s:s + 256])[0, 0]
               + (A[s:s + 256] @ W)[0, 0] for s in range(0, 600, k.CHUNK))
    np.testing.assert_allclose(k.gemms_alone(X, W, A, 2, 1, 3), want, rtol=1e-12)
