"""train_many: a batch of independent full-batch runs in one compiled loop.

The contract is bit-equality: run r of a batch ends with exactly the weights of
``train(model_r, world, data=(X_r, y_r))`` alone, for every threshold rule and
dtype, for any thread count and any batch the run is part of.
"""

import numpy as np
import pytest

from theorylab._kernels._jit import kernel_threads
from theorylab.models import LinearClassifier, TwoLayerReLU
from theorylab.training import ThresholdSchedule, TrainingDiverged, train, train_many
from theorylab.worlds import SparseCoding

STEPS = 12


def _setup(S=4, d=24, n=300, dictionary="identity", threshold="max", dtype=np.float64, c=0.5):
    w = SparseCoding(d, 3, dictionary=dictionary, seed=1)
    data = [w.sample(n, 100 + r, dtype=dtype) for r in range(S)]

    def models():
        return [TwoLayerReLU.for_world(w, seed=r, threshold=threshold, dtype=dtype, c=c)
                for r in range(S)]

    return w, [(s.X, s.y) for s in data], models


def _alone(w, data, models, **kw):
    for m, xy in zip(models, data):
        train(m, w, steps=STEPS, data=xy, eval_size=8, **kw)
    return models


@pytest.mark.parametrize("threshold,dictionary,dtype", [
    ("max", "identity", np.float64), ("max", "orthogonal", np.float64),
    ("norm", "identity", np.float64), ("fixed", "identity", np.float64),
    ("max", "identity", np.float32), ("max", "orthogonal", np.float32)])
def test_each_run_has_the_bits_of_training_it_alone(threshold, dictionary, dtype):
    c = 0.02 if threshold == "fixed" else 0.5
    w, data, models = _setup(threshold=threshold, dictionary=dictionary, dtype=dtype, c=c)
    sched = None if threshold == "fixed" else ThresholdSchedule(1.0, 0.5, STEPS // 2)
    batch = models()
    res = train_many(batch, data, steps=STEPS, lr=0.5, schedule=sched)
    alone = _alone(w, data, models(), schedule=sched)
    assert res.status == ["done"] * len(batch)
    for a, b in zip(batch, alone):
        assert a.W.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a.W, b.W)
        assert a.c == b.c
    # The runs moved: bit-equality of untouched weights would prove nothing.
    assert all(not np.array_equal(a.W, a.W_init) for a in batch)
    assert np.all(res.loss[:, -1] < res.loss[:, 0])


def test_bits_do_not_depend_on_threads_or_on_the_batch():
    w, data, models = _setup(S=5)
    out = {}
    for threads in (1, 2):
        with kernel_threads(threads):
            ms = models()
            train_many(ms, data, steps=STEPS)
            out[threads] = np.stack([m.W for m in ms])
    np.testing.assert_array_equal(out[1], out[2])
    sub = models()[1:4:2]  # runs 1 and 3 in a batch of their own
    train_many(sub, [data[1], data[3]], steps=STEPS)
    np.testing.assert_array_equal(np.stack([m.W for m in sub]), out[1][[1, 3]])


def test_stacked_arrays_and_per_model_c():
    w, data, models = _setup(S=3)
    X = np.stack([x for x, _ in data])
    y = np.stack([t for _, t in data])
    a, b = models(), models()
    for m, c in zip(a + b, [0.3, 0.5, 0.7] * 2):
        m.c = c
    train_many(a, (X, y), steps=STEPS)
    _alone(w, data, b)
    for ma, mb in zip(a, b):
        np.testing.assert_array_equal(ma.W, mb.W)


def test_divergence_is_reported_and_weights_stay_finite():
    w, data, models = _setup(S=3)
    data = [(1e4 * x, y) for x, y in data]  # gradients ~1e3: lr * gradient overflows
    ms = models()
    res = train_many(ms, data, steps=5, lr=1e306)
    assert res.status == ["diverged"] * 3
    assert list(res.diverged_at) == [0, 0, 0]
    with pytest.raises(TrainingDiverged) as err:  # training alone stops at the same step
        train(models()[0], w, steps=5, lr=1e306, data=data[0], eval_size=8)
    assert err.value.step == 0
    for m in ms:
        assert np.isfinite(m.W).all()
        np.testing.assert_array_equal(m.W, m.W_init)  # the last finite weights
    assert np.isfinite(res.loss[:, 0]).all() and np.isnan(res.loss[:, 1:]).all()


def test_bad_input_is_a_value_error_naming_it():
    w, data, models = _setup(S=2)
    ms = models()
    other = TwoLayerReLU(w.d, 7)
    bad_X = np.array(data[0][0])
    bad_X[0, 0] = np.nan
    cases = [
        (dict(models=[], data=data), "models"),
        (dict(models=[ms[0], LinearClassifier(w.d)], data=data), "models[1]"),
        (dict(models=[ms[0], other], data=data), "models[1]"),
        (dict(models=ms, data=data[:1]), "data"),
        (dict(models=ms, data=[data[0], (bad_X, data[1][1])]), "data[1][0]"),
        (dict(models=ms, data=[data[0], (data[1][0][:10], data[1][1][:10])]), "data"),
        (dict(models=ms, data=[data[0], (data[1][0], 2 * data[1][1])]), "labels"),
        (dict(models=ms, data=data, steps=0), "steps"),
        (dict(models=ms, data=data, lr=0.0), "lr"),
        (dict(models=ms, data=data, schedule="ramp"), "schedule"),
    ]
    for kw, word in cases:
        kw.setdefault("steps", 3)
        with pytest.raises(ValueError, match=word.replace("[", r"\[").replace("]", r"\]")):
            train_many(**kw)
    for m in ms:
        np.testing.assert_array_equal(m.W, m.W_init)  # nothing ran


def test_float32_loss_overflow_stops_both_paths_alike():
    # Per-sample losses ~1e37: their float32 sum overflows although the mean would not.
    # train (np.mean in float32) stops; so must train_many.
    w = SparseCoding(4, 1, seed=0)
    s = w.sample(2048, 1, dtype=np.float32)
    W = np.full((4, 4), 1e36, dtype=np.float32)

    def model():
        return TwoLayerReLU(4, 4, threshold="fixed", c=0.0, W=W, dtype=np.float32)

    with pytest.raises(TrainingDiverged):
        train(model(), w, steps=2, data=(s.X, s.y), eval_size=8)
    res = train_many([model()], [(s.X, s.y)], steps=2)
    assert res.status == ["diverged"] and res.diverged_at[0] == 0


@pytest.mark.parametrize("scale", [1e20, 1e-24])
def test_norm_rule_thresholds_neither_overflow_nor_underflow(scale):
    W = scale * np.array([[3.0, 4.0], [0.0, 1.0]], dtype=np.float32)
    net = TwoLayerReLU(2, 2, threshold="norm", c=0.5, W=W, dtype=np.float32)
    np.testing.assert_allclose(net.thresholds(), 0.5 * scale * np.array([5.0, 1.0]), rtol=1e-6)


def test_more_bad_input_is_a_value_error():
    w, data, models = _setup(S=2)
    ms = models()
    for kw, word in [(dict(models=ms[0], data=data), "models"),
                     (dict(models=ms, data=None), "data"),
                     (dict(models=ms, data=5), "data"),
                     (dict(models=ms, data=data, schedule=(1.0,)), "schedule")]:
        with pytest.raises(ValueError, match=word):
            train_many(steps=3, **kw)
    ms[1].W = ms[1].W.astype(np.float32)  # a float64 model holding float32 weights
    with pytest.raises(ValueError, match=r"models\[1\]\.W"):
        train_many(ms, data, steps=3)
    ms[1].W = np.full_like(ms[0].W, np.nan)
    with pytest.raises(ValueError, match=r"models\[1\]\.W"):
        train_many(ms, data, steps=3)


def test_a_lone_run_spreads_its_chunks_over_the_threads_with_the_same_bits():
    # S = 1 (and the S mod T run left over by S = 3) takes its chunks of samples on all
    # threads; several GROUPs of chunks and a ragged last chunk, bits as training it alone
    # and the same whichever way the kernel splits the work.
    from theorylab._kernels import relu_net as K

    n = 2 * K.GROUP * K.CHUNK + 37
    w, data, models = _setup(S=3, n=n)
    alone = _alone(w, data, models())
    for threads in (1, 2):
        with kernel_threads(threads):
            one = models()[:1]
            train_many(one, data[:1], steps=STEPS)
            np.testing.assert_array_equal(one[0].W, alone[0].W)
            three = models()
            train_many(three, data, steps=STEPS)
            for a, b in zip(three, alone):
                np.testing.assert_array_equal(a.W, b.W)
    # The ways of running one run, called directly: its chunks on one or on several workers.
    X, y = data[0]
    W0, c = models()[0].W, np.full(STEPS, 0.5)
    runs = {}
    for workers in (1, 2, 3):  # 3 workers on any number of threads: a ragged split
        W, L = W0.copy(), np.empty(STEPS)
        assert K._train_run(X, y, W, c, 0.5, 0, np.zeros((0, 0)), L, workers) == -1
        runs[workers] = (W, L)
    for workers in (2, 3):
        np.testing.assert_array_equal(runs[workers][0], runs[1][0])
        np.testing.assert_array_equal(runs[workers][1], runs[1][1])
    assert not np.array_equal(runs[1][0], W0)
