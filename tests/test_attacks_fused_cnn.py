"""SmoothedReLUCNN's compiled pgd against theorylab.attacks' NumPy loop.

linf takes the same operations in the same order: equal bits.  l2 computes its
norms in another order: equal up to rounding.
"""

import numba
import numpy as np
import pytest

from theorylab import attacks
from theorylab._kernels import cnn as k
from theorylab.models import SmoothedReLUCNN

RTOL = {np.float64: 1e-10, np.float32: 1e-4}
EPS_OF = {2: 0.8, np.inf: 0.2}  # 0.2 is not a float32: the rounding of eps is exercised
K, M, D, P = 3, 4, 7, 5
B = k.chunk_samples(P)  # samples per chunk (51)


def _problem(n, dtype, seed=0):
    # Weights of scale 0.5 put pre-activations in all three pieces of sigma.  Every fifth
    # sample is zero: all pre-activations 0, so sigma' = 0 and the gradient at X is exactly
    # zero (the zero-gradient policy: such a sample does not move from a zero start).
    rng = np.random.default_rng(seed)
    model = SmoothedReLUCNN(K, M, D, W=0.5 * rng.standard_normal((K, M, D)), dtype=dtype)
    X = rng.standard_normal((n, P, D))
    X[::5] = 0.0
    y = rng.integers(0, K, n)
    return model, X.astype(dtype), y


def _pgd(fused, model, X, y, eps, norm, **kw):
    # attacks.pgd on one path; a spy proves which one ran.
    calls = []
    if "pgd" in model.capabilities.compiled:
        method = model.compiled_pgd
        model.compiled_pgd = lambda *a: calls.append(1) or method(*a)
    try:
        with attacks.compiled_loops(fused):
            out = attacks.pgd(model, X, y, eps, norm, **kw)
    finally:
        model.__dict__.pop("compiled_pgd", None)
    assert len(calls) == (kw.get("restarts", 1) if fused else 0)
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [37, B, 2 * B + 19])
@pytest.mark.parametrize("norm", [2, np.inf])
@pytest.mark.parametrize("start", [{}, {"random_start": True, "restarts": 3, "seed": 5}])
def test_fused_pgd_matches_the_numpy_loop(dtype, n, norm, start):
    model, X, y = _problem(n, dtype, seed=n)
    eps = EPS_OF[norm]
    assert (~model.input_gradient(X, y).any(axis=(1, 2))).sum() >= n // 5
    got = _pgd(True, model, X, y, eps, norm, steps=6, **start)
    ref = _pgd(False, model, X, y, eps, norm, steps=6, **start)
    assert got.dtype == np.dtype(dtype) and got.shape == X.shape
    assert np.count_nonzero(ref.any(axis=(1, 2))) > n // 2  # the attack moved most samples
    if norm == np.inf:
        assert np.array_equal(got, ref)
    else:
        tol = RTOL[dtype]
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * eps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm", [2, np.inf])
def test_random_starts_worse_than_x_give_zero(dtype, norm):
    # With step size 0 every iterate is the random start, so the best is delta = 0 exactly
    # where the loss at X beats every start's: the loss at X must seed the running maximum.
    n = 2 * B + 19
    model, X, y = _problem(n, dtype, seed=4)
    kw = dict(steps=3, step_size=0.0, random_start=True, restarts=2, seed=7)
    got = _pgd(True, model, X, y, EPS_OF[norm], norm, **kw)
    ref = _pgd(False, model, X, y, EPS_OF[norm], norm, **kw)
    assert got.tobytes() == ref.tobytes()  # no step taken: the same bits in l2 too
    moved = ref.any(axis=(1, 2))
    assert n // 10 < np.count_nonzero(moved) < n - n // 10


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("linf", [True, False])
def test_kernel_keeps_the_best_iterate_with_the_loss_kernels_bits(dtype, linf):
    # One start from 0: the loss returned is loss_and_input_gradient's at X + best, bit for
    # bit, never below the loss at X, and the best is not just the last iterate.
    n, steps = 2 * B + 19, 6
    model, X, y = _problem(n, dtype, seed=1)
    W, q, rho = model.W, model.q, model.rho
    dt = np.dtype(dtype).type
    eps = EPS_OF[np.inf if linf else 2]
    step = dt(2.5 * eps / steps)
    best, best_loss, ok = k.pgd(X, y, W, q, rho, np.zeros_like(X), steps, step, dt(eps), linf)
    assert ok.all() and best_loss.dtype == np.dtype(dtype)
    assert np.array_equal(best_loss, k.loss_and_input_gradient(X + best, y, W, q, rho)[0])
    loss0 = k.loss_and_input_gradient(X, y, W, q, rho)[0]
    assert np.all(best_loss >= loss0) and np.any(best_loss > loss0)
    last = k.ascent(X, y, W, q, rho, np.zeros_like(X), steps, step, dt(eps), linf)
    last_loss = k.loss_and_input_gradient(X + last, y, W, q, rho)[0]
    assert np.all(best_loss >= last_loss)  # the best iterate is never worse than the last
    if linf:  # sign steps overshoot: somewhere the last iterate is not the best
        assert not np.array_equal(best, last)


@pytest.mark.parametrize("norm", [2, np.inf])
def test_radius_zero_gives_zero(norm):
    model, X, y = _problem(60, np.float64)
    for fused in (True, False):
        with attacks.compiled_loops(fused):
            out = attacks.pgd(model, X, y, 0.0, norm, steps=4, random_start=True, restarts=2)
        assert out.tobytes() == np.zeros_like(X).tobytes()
    # The kernel itself at eps = 0 with a positive step: every iterate is +-0, none is
    # strictly better than X, so the best stays +0 (not -0) with the loss at X.
    loss0 = k.loss_and_input_gradient(X, y, model.W, model.q, model.rho)[0]
    best, best_loss, ok = k.pgd(X, y, model.W, model.q, model.rho, np.zeros_like(X), 4, 0.1,
                                0.0, norm == np.inf)
    assert ok.all() and best.tobytes() == np.zeros_like(X).tobytes()
    assert np.array_equal(best_loss, loss0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_pgd_gives_same_bits_for_any_thread_count(dtype):
    n_max = numba.config.NUMBA_NUM_THREADS
    if n_max < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2 to compare thread counts")
    model, X, y = _problem(5 * B + 23, dtype, seed=2)
    before = numba.get_num_threads()
    out = []
    try:
        for t in (1, n_max):
            numba.set_num_threads(t)
            out.append([_pgd(True, model, X, y, EPS_OF[norm], norm, steps=5, **kw)
                        for norm in (2, np.inf)
                        for kw in ({}, {"random_start": True, "restarts": 2, "seed": 1})])
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*out):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("norm", [2, np.inf])
@pytest.mark.parametrize("fused", [True, False])
def test_nan_weight_raises_on_both_paths(monkeypatch, norm, fused):
    model, X, y = _problem(2 * B + 19, np.float64)
    model.W[1, 2, 3] = np.nan
    monkeypatch.setitem(attacks._core._COMPILED, "enabled", fused)
    with pytest.raises(ValueError, match=r"SmoothedReLUCNN\.W holds NaN"):
        attacks.pgd(model, X, y, 0.5, norm, steps=3)
    # On validated arrays (a training step's attack) the gradient policy still holds.
    with pytest.raises(ValueError, match="gradient contains NaN or infinite values"):
        attacks.get("pgd").run(model, X, y, 0.5, float(norm), steps=3)


@pytest.mark.parametrize("linf", [True, False])
def test_kernel_flags_exactly_the_rows_with_non_finite_gradients(linf):
    # A huge weight on coordinate 3, and x_{p,3} >= 1 in absolute value with one sign per
    # sample: where it is positive the scores overflow (NaN loss and gradient); where it
    # is negative that filter stays off and the gradient finite, also after the steps.
    model, X, y = _problem(2 * B + 19, np.float64)
    W = model.W.copy()
    W[1, 2, 3] = 1e308
    sign = np.where(np.arange(X.shape[0]) % 3 == 0, 1.0, -1.0)
    X[:, :, 3] = sign[:, None] * (1.0 + np.abs(X[:, :, 3]))
    G = k.loss_and_input_gradient(X, y, W, model.q, model.rho)[2]
    finite = np.isfinite(G).all(axis=(1, 2))
    assert np.array_equal(finite, sign < 0)
    _, _, ok = k.pgd(X, y, W, model.q, model.rho, np.zeros_like(X), 3, 0.1, 0.5, linf)
    assert np.array_equal(ok, finite)
