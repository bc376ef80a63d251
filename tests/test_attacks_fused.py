"""TwoLayerReLU's compiled fgm and pgd against theorylab.attacks' NumPy loops.

linf takes the same operations in the same order: equal bits.  l2 computes its
norms in another order: equal up to rounding.
"""

import numba
import numpy as np
import pytest

from theorylab import attacks
from theorylab._kernels import relu_net as k
from theorylab.models import TwoLayerReLU

RTOL = {np.float64: 1e-10, np.float32: 1e-4}
EPS_OF = {2: 0.8, np.inf: 0.2}


def _problem(n, dtype, seed=0):
    # A third of the rows lie near the x_0 axis, which no neuron sees: closed gates, a zero
    # gradient at X, so the zero-gradient policy is exercised too.
    rng = np.random.default_rng(seed)
    d, m = 16, 24
    W = rng.standard_normal((m, d)) / np.sqrt(d)
    W[:, 0] = 0.0
    model = TwoLayerReLU(d, m, threshold="norm", c=0.3, W=W, dtype=dtype)
    X = rng.standard_normal((n, d))
    X[::3, 1:] *= 0.01
    y = rng.choice([-1.0, 1.0], n)
    return model, X.astype(dtype), y


def _run(fused, model, X, y, eps, norm, **kw):
    # pgd and fgm on one path; a spy proves which one ran.
    calls = []
    for name in ("compiled_pgd", "compiled_fgm"):
        method = getattr(type(model), name).__get__(model)
        setattr(model, name, lambda *a, _m=method: calls.append(1) or _m(*a))
    try:
        with attacks.compiled_loops(fused):
            out = (attacks.pgd(model, X, y, eps, norm, steps=6, **kw),
                   attacks.fgm(model, X, y, eps, norm))
    finally:
        del model.compiled_pgd, model.compiled_fgm
    assert bool(calls) == fused
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [37, k.CHUNK, 2 * k.CHUNK + 89])
@pytest.mark.parametrize("norm", [2, np.inf])
@pytest.mark.parametrize("start", [{}, {"random_start": True, "restarts": 3, "seed": 5}])
def test_fused_attacks_match_the_numpy_loops(dtype, n, norm, start):
    model, X, y = _problem(n, dtype, seed=n)
    eps = EPS_OF[norm]
    G = model.input_gradient(X, y)
    assert (~G.any(axis=1)).sum() > n // 10  # zero-gradient rows are present
    pgd_f, fgm_f = _run(True, model, X, y, eps, norm, **start)
    pgd_g, fgm_g = _run(False, model, X, y, eps, norm, **start)
    assert pgd_f.dtype == fgm_f.dtype == np.dtype(dtype)
    # The attack did something: most rows moved, and it is not just the FGM step.
    assert np.count_nonzero(pgd_g.any(axis=1)) > n // 2
    assert not np.array_equal(pgd_g, fgm_g)
    if norm == np.inf:
        assert np.array_equal(pgd_f, pgd_g)
        assert np.array_equal(fgm_f, fgm_g)
    else:
        tol = RTOL[dtype]
        np.testing.assert_allclose(pgd_f, pgd_g, rtol=tol, atol=tol * eps)
        np.testing.assert_allclose(fgm_f, fgm_g, rtol=tol, atol=tol * eps)


@pytest.mark.parametrize("norm", [2, np.inf])
def test_fused_attacks_at_radius_zero_are_zero(norm):
    model, X, y = _problem(50, np.float64)
    for fused in (True, False):
        pgd_d, fgm_d = _run(fused, model, X, y, 0.0, norm, random_start=True)
        assert not pgd_d.any() and not fgm_d.any()


def test_fused_pgd_keeps_the_best_iterate_over_restarts():
    # The restarts' bests are merged by loss; the merged loss is never below any start's.
    model, X, y = _problem(300, np.float64, seed=3)
    kw = dict(steps=4, random_start=True, seed=11)
    one = attacks.pgd(model, X, y, 0.8, 2, restarts=1, **kw)
    three = attacks.pgd(model, X, y, 0.8, 2, restarts=3, **kw)
    l1 = model.loss(X + one, y, reduction="none")
    l3 = model.loss(X + three, y, reduction="none")
    assert np.all(l3 >= l1) and np.any(l3 > l1)


def test_fused_attacks_give_same_bits_for_any_thread_count():
    n_max = numba.config.NUMBA_NUM_THREADS
    if n_max < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2 to compare thread counts")
    model, X, y = _problem(3 * k.CHUNK + 37, np.float64, seed=2)
    before = numba.get_num_threads()
    out = []
    try:
        for t in (1, n_max):
            numba.set_num_threads(t)
            out.append([a for norm in (2, np.inf) for a in (
                attacks.pgd(model, X, y, EPS_OF[norm], norm, steps=5, random_start=True,
                            restarts=2, seed=1),
                attacks.fgm(model, X, y, EPS_OF[norm], norm))])
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*out):
        assert a.tobytes() == b.tobytes()


def _broken(kind):
    # "nan": a NaN weight; NaN gates stay closed, so losses stay finite while gradients
    # are NaN.  "inf": two huge weights on x_0 = +-1; rows with y x_0 < 0 have an infinite
    # loss and gradient +-inf (finite steps in linf), rows with y x_0 > 0 a zero gradient.
    model, X, y = _problem(300, np.float64)
    if kind == "nan":
        model.W[2, 3] = np.nan
        return model, X, y, np.zeros(300, dtype=bool)
    model.W[:, 0] = 0.0
    model.W[:2, 0] = 1e308
    X[:, 0] = np.where(np.arange(300) % 2, 1.0, -1.0)
    return model, X, y, y * X[:, 0] > 0


@pytest.mark.parametrize("kind", ["nan", "inf"])
@pytest.mark.parametrize("norm", [2, np.inf])
@pytest.mark.parametrize("fused", [True, False])
def test_non_finite_gradients_raise_on_both_paths(monkeypatch, kind, norm, fused):
    model, X, y, _ = _broken(kind)
    model.threshold, model.c = "fixed", 0.1
    monkeypatch.setitem(attacks._core._COMPILED, "enabled", fused)
    if kind == "nan":  # the public attacks refuse a NaN weight before any step
        with pytest.raises(ValueError, match=r"TwoLayerReLU\.W holds NaN"):
            attacks.pgd(model, X, y, 0.5, norm, steps=3)
    # On validated arrays (a training step's attack) the gradient policy still holds.
    p = float(norm)
    with pytest.raises(ValueError, match="gradient contains NaN or infinite values"):
        attacks.get("pgd").run(model, X, y, 0.5, p, steps=3)
    with pytest.raises(ValueError, match="gradient contains NaN or infinite values"):
        attacks.get("fgm").run(model, X, y, 0.5, p)


@pytest.mark.parametrize("linf", [True, False])
def test_kernels_flag_exactly_the_rows_with_non_finite_gradients(linf):
    model, X, y, finite = _broken("inf")
    b = np.full(model.m, 0.1)
    G = k.loss_and_input_gradient(X, y, model.W, b)[2]
    assert np.array_equal(np.isfinite(G).all(axis=1), finite) and finite.any()
    delta, ok = k.fgm(X, y, model.W, b, 0.5, linf)
    best, _, ok_pgd = k.pgd(X, y, model.W, b, np.zeros_like(X), 3, 0.2, 0.5, linf)
    assert np.array_equal(ok, finite) and np.array_equal(ok_pgd, finite)
    if linf:  # sign(inf) is finite: only the flags tell
        assert np.isfinite(delta).all() and np.isfinite(best).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm", [2, np.inf])
def test_fused_fgm_step_has_the_bits_of_its_three_parts(dtype, norm):
    # fgm_loss_and_weight_gradient = loss_and_weight_gradient(X + fgm(X)), every bit, for
    # several groups of chunks (a ragged last one) and any thread count.
    model, X, y = _problem(2 * k.GROUP * k.CHUNK + 37, dtype, seed=7)
    W, b, eps = model.W, model.thresholds(), np.dtype(dtype).type(EPS_OF[norm])
    delta, ok = k.fgm(X, y, W, b, eps, norm == np.inf)
    ref = k.loss_and_weight_gradient(X + delta, y, W, b)
    before = numba.get_num_threads()
    try:
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            out = k.fgm_loss_and_weight_gradient(X, y, W, b, eps, norm == np.inf)
            for a, r in zip(out[:3], ref):
                assert np.array_equal(a, r)
            assert np.array_equal(out[3], ok) and ok.all()
    finally:
        numba.set_num_threads(before)
    assert np.abs(ref[2]).max() > 0  # a real gradient


def test_fused_fgm_step_flags_non_finite_rows():
    model, X, y = _problem(300, np.float64)
    X[5, 3] = np.inf
    ok = k.fgm_loss_and_weight_gradient(X, y, model.W, model.thresholds(), 0.5, False)[3]
    assert not ok[5] and ok.sum() == 299


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("norm", [2, np.inf])
def test_fgm_training_takes_the_fused_step_with_the_same_bits(monkeypatch, dtype, norm):
    # train_two_layer's FGM step runs the fused kernel (a spy counts it) and ends with the
    # weights and losses of attacking, adding delta and taking the gradient separately.
    import dataclasses

    from theorylab.attacks._registry import ATTACKS
    from theorylab.training import train
    from theorylab.worlds import SparseCoding

    world = SparseCoding(16, 2, seed=0)

    def fit():
        model = TwoLayerReLU.for_world(world, seed=1, dtype=dtype)
        h = train(model, world, steps=6, mode="full", n_train=600, adversarial="fgm",
                  eps=EPS_OF[norm] / 4, norm=norm, log_every=1, eval_size=16, seed=2)
        return model.W, [r["loss"] for r in h.records]

    calls = []
    fused = TwoLayerReLU.compiled_fgm_weight_gradient
    monkeypatch.setattr(TwoLayerReLU, "compiled_fgm_weight_gradient",
                        lambda *a: calls.append(1) or fused(*a))
    W1, L1 = fit()
    assert len(calls) == 6
    monkeypatch.setitem(ATTACKS, "fgm", dataclasses.replace(ATTACKS["fgm"], train_step=None))
    W2, L2 = fit()
    assert len(calls) == 6  # the second run took the unfused path
    np.testing.assert_array_equal(W1, W2)
    assert L1 == L2 and L1[-1] != L1[0]
