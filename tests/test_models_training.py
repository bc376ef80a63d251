"""TwoLayerReLU behaviour, persistence, metrics and training."""

import numpy as np
import pytest

from theorylab import metrics
from theorylab.models import TwoLayerReLU, load
from theorylab.training import ThresholdSchedule, TrainingDiverged, train
from theorylab.worlds import SparseCoding


def test_network_is_odd_and_threshold_rules():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 6))
    for rule in ("max", "norm", "fixed"):
        m = TwoLayerReLU(6, 4, threshold=rule, c=0.3, init_scale=1.0, seed=1)
        np.testing.assert_allclose(m.decision_function(-X), -m.decision_function(X))
    m = TwoLayerReLU(6, 4, threshold="max", c=0.3, init_scale=1.0, seed=1)
    np.testing.assert_allclose(m.thresholds(), 0.3 * np.abs(m.W).max(1))
    m0 = TwoLayerReLU(6, 4, threshold="fixed", c=0.0, init_scale=1.0, seed=1)
    np.testing.assert_allclose(m0.decision_function(X), X @ m0.W.sum(0))  # b = 0: linear


def test_max_rule_uses_the_dictionary():
    w = SparseCoding(8, 2, dictionary="orthogonal", seed=0)
    m = TwoLayerReLU.for_world(w, c=0.5, init_scale=1.0)
    np.testing.assert_allclose(m.thresholds(), 0.5 * np.abs(m.W @ w.M).max(1))


def test_save_load_roundtrip(tmp_path):
    w = SparseCoding(8, 2, dictionary="orthogonal", seed=0)
    m = TwoLayerReLU.for_world(w, threshold="max", c=0.4, seed=3)
    m.W += 1.0
    m.metadata["world"] = w.spec()
    path = tmp_path / "net.npz"
    m.save(path)
    with np.load(path) as data:
        assert str(data["kind"]) == "TwoLayerReLU"
        assert data["W"].shape == (16, 8) and data["b"].shape == (16,)
    m2 = load(path)
    X = w.sample(50, 1).X
    np.testing.assert_array_equal(m2.decision_function(X), m.decision_function(X))
    np.testing.assert_array_equal(m2.W_init, m.W_init)
    assert m2.metadata["world"] == w.spec()


def test_load_rejects_foreign_files(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, W=np.ones(3))
    with pytest.raises(ValueError, match="kind"):
        load(p)


@pytest.mark.parametrize("kwargs, match", [
    (dict(d=4, m=0), "m must be"),
    (dict(d=4, m=2, threshold="relu"), "threshold must be"),
    (dict(d=4, m=2, c=-1.0), "c must be"),
    (dict(d=4, m=2, dtype=np.int32), "dtype"),
    (dict(d=4, m=2, W=np.ones((3, 4))), "W must have shape"),
    (dict(d=4, m=2, dictionary=np.ones((4, 4))), "orthonormal"),
])
def test_bad_model_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TwoLayerReLU(**kwargs)


def test_metrics_on_the_purified_oracle():
    w = SparseCoding(16, 2, dictionary="orthogonal", seed=2)
    oracle = TwoLayerReLU.purified(w)
    s = metrics.feature_structure(oracle.W, w.w_star, w.M)
    np.testing.assert_allclose(s["dense_ratio"], 0, atol=1e-12)
    assert s["sign_correct"].all() and s["coverage"] == 16
    # Add a dense mixture along M w*: ratio and alignment appear.
    W = oracle.W + 0.1 * w.label_direction[None, :] / 4
    s2 = metrics.feature_structure(W, w.w_star, w.M)
    assert np.all(s2["dense_ratio"] > 0.05) and np.all(s2["dense_alignment"] > 0.9)
    p = metrics.purification(W, oracle.W, W_init=oracle.W)
    assert p["fraction"] == 1.0


def test_clean_training_reaches_high_accuracy_at_d64():
    world = SparseCoding(64, 3, seed=0)
    model = TwoLayerReLU.for_world(world, seed=1)
    hist = train(model, world, steps=400, schedule=ThresholdSchedule(1.0, 0.5, 200), seed=2)
    assert hist.final["clean_accuracy"] >= 0.98
    assert hist.final["sign_correct"] == 1.0
    assert hist["step"][-1] == 400
    assert model.metadata["world"] == world.spec()


def test_training_is_reproducible_and_adversarial_mode_runs():
    world = SparseCoding(16, 2, seed=0)
    runs = []
    for _ in range(2):
        model = TwoLayerReLU.for_world(world, seed=1)
        train(model, world, steps=20, batch_size=64, adversarial="pgd", eps=0.1, norm="inf",
              pgd_steps=3, seed=5)
        runs.append(model.W)
    assert np.array_equal(*runs)


def test_full_batch_mode_uses_a_fixed_sample():
    world = SparseCoding(16, 2, seed=0)
    model = TwoLayerReLU.for_world(world, seed=1)
    hist = train(model, world, steps=30, mode="full", n_train=200, seed=3, log_every=1)
    assert hist["loss"][-1] < hist["loss"][0]
    with pytest.raises(ValueError, match="n_train"):
        train(model, world, steps=3, mode="full")


def test_divergence_is_an_error_with_history():
    # The logistic gradient is bounded, so even lr=1e308 saturates instead of
    # overflowing; an overflow is simulated by corrupting one weight mid-run.
    world = SparseCoding(16, 2, seed=0)
    model = TwoLayerReLU.for_world(world, seed=1, threshold="fixed", c=0.01)

    def corrupt(step, model, record):
        if step == 3:
            model.W[0, 0] = np.inf

    with pytest.raises(TrainingDiverged, match="loss is (nan|inf) at step 3") as info:
        train(model, world, steps=10, batch_size=32, log_every=1, seed=0, callback=corrupt)
    assert info.value.step == 3 and len(info.value.history.records) == 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=0), "steps must be"),
    (dict(steps=5, lr=0.0), "lr must be"),
    (dict(steps=5, eps=-1.0), "eps must be"),
    (dict(steps=5, norm="l3"), "norm must be"),
    (dict(steps=5, adversarial="cw"), "adversarial must be"),
    (dict(steps=5, mode="batch"), "mode must be"),
])
def test_bad_training_arguments(kwargs, match):
    world = SparseCoding(8, 2, seed=0)
    model = TwoLayerReLU.for_world(world)
    with pytest.raises(ValueError, match=match):
        train(model, world, **kwargs)


def test_world_model_dimension_mismatch():
    with pytest.raises(ValueError, match="world.d"):
        train(TwoLayerReLU(4, 2), SparseCoding(8, 2), steps=2)


def test_training_on_given_data_is_rotation_equivariant():
    # l2 training commutes with rotations: identity world vs orthogonal world fed the
    # rotated points and the rotated init give the same weights in the z-basis.
    wid = SparseCoding(16, 2, seed=0)
    worth = SparseCoding(16, 2, dictionary="orthogonal", seed=0)
    s = wid.sample(200, 1)
    a = TwoLayerReLU.for_world(wid, seed=3)
    b = TwoLayerReLU.for_world(worth, W=a.W @ worth.M.T)
    for model, world, X in ((a, wid, s.X), (b, worth, s.X @ worth.M.T)):
        train(model, world, steps=30, data=(X, s.y), adversarial="fgm", eps=0.2, norm=2,
              eval_size=10, seed=0)
    np.testing.assert_allclose(b.W @ worth.M, a.W, atol=1e-10)
    with pytest.raises(ValueError, match="data"):
        train(a, wid, steps=2, data=s.X)


def test_frozen_thresholds_are_reused_and_released():
    m = TwoLayerReLU(6, 4, init_scale=1.0, seed=0)
    b = m.thresholds()
    with m.frozen_thresholds() as fb:
        m.W *= 2.0  # not allowed inside in real code; shows the frozen value is served
        assert np.array_equal(m.thresholds(), fb) and np.array_equal(fb, b)
    np.testing.assert_allclose(m.thresholds(), 2 * b)  # recomputed after the block
