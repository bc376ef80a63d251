"""theorylab.images: tasks, patches, the full-batch / low-rank loop, D_R / D_NR, experiments."""

import numpy as np
import pytest

from theorylab import images
from theorylab.datasets import ImageSet
from theorylab.images import ilyas
from theorylab.models import SmoothedReLUCNN, TwoLayerReLU


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny problems: threads only add overhead (and spin on a shared machine).
    with images.single_threaded():
        yield


def _toy_set(n=240, K=4, side=4, seed=0):
    # K class templates plus pixel noise: learnable in a few dozen GD steps.
    rng = np.random.default_rng(seed)
    templates = rng.random((K, side, side))
    y = np.arange(n) % K
    X = np.clip(templates[y] + 0.3 * rng.standard_normal((n, side, side)), 0, 1)
    return ImageSet(X, y.astype(np.int64), "toy")


def test_patches_roundtrip_and_layout():
    X = np.arange(2 * 8 * 8, dtype=float).reshape(2, 64)
    P = images.to_patches(X, (8, 8), 4)
    assert P.shape == (2, 4, 16)
    img = X[1].reshape(8, 8)
    np.testing.assert_array_equal(P[1, 1], img[:4, 4:].ravel())   # top-right patch
    np.testing.assert_array_equal(P[1, 2], img[4:, :4].ravel())   # bottom-left patch
    np.testing.assert_array_equal(images.from_patches(P, (8, 8), 4), X)
    C = np.random.default_rng(0).random((3, 4 * 4 * 3))
    Pc = images.to_patches(C, (4, 4, 3), 2)
    assert Pc.shape == (3, 4, 12)
    np.testing.assert_array_equal(Pc[2, 3], C[2].reshape(4, 4, 3)[2:, 2:].ravel())
    np.testing.assert_array_equal(images.from_patches(Pc, (4, 4, 3), 2), C)
    with pytest.raises(ValueError, match="patch"):
        images.to_patches(X, (8, 8), 3)


def test_make_task_binary_and_multiclass():
    ds = _toy_set()
    t = images.make_task(ds, binary=((0, 1), (2, 3)), n_train=200, seed=1)
    assert t.binary and t.n_classes == 2 and t.d == 16
    assert t.X_train.shape == (200, 16) and t.X_test.shape == (40, 16)
    assert set(np.unique(t.y_train)) == {-1.0, 1.0}
    np.testing.assert_allclose(t.X_train.mean(axis=0), 0, atol=1e-12)   # centred on train
    m = images.make_task(ds, binary=None, classes=(3, 1), n_train=100, seed=1)
    assert m.n_classes == 2 and not m.binary and len(m.y_train) + len(m.y_test) == 120
    assert set(np.unique(m.y_train)) == {0, 1}
    with pytest.raises(ValueError, match="binary"):
        images.make_task(ds, binary=((0, 1), (1, 2)))
    with pytest.raises(ValueError, match="n_train"):
        images.make_task(ds, n_train=240)


def test_fit_learns_and_adversarial_needs_a_positive_radius():
    t = images.make_task(_toy_set(), binary=((0, 1), (2, 3)), n_train=200)
    a = TwoLayerReLU(16, 8, threshold="norm", c=0.5, init_scale=0.1, seed=0)
    b = a.copy()
    h = images.fit(a, t.X_train, t.y_train, steps=60, lr=0.5)
    assert h["loss"][-1] < 0.5 * h["loss"][0] and h.final["train_accuracy"] > 0.9
    # An adversarial name with eps = 0 would train on clean points: refused up front.
    with pytest.raises(ValueError, match="eps must be > 0 with adversarial='fgm'"):
        images.fit(b, t.X_train, t.y_train, steps=60, lr=0.5, adversarial="fgm", eps=0.0)
    np.testing.assert_array_equal(b.W, b.W_init)
    with pytest.raises(ValueError, match="adversarial"):
        images.fit(b, t.X_train, t.y_train, steps=1, lr=0.5, adversarial="cw")


def test_adversarial_fit_same_seed_same_bits():
    t = images.make_task(_toy_set(), binary=((0, 1), (2, 3)), n_train=200)
    runs = []
    for _ in range(2):
        net = TwoLayerReLU(16, 8, threshold="norm", c=0.5, init_scale=0.1, seed=3)
        images.fit(net, t.X_train, t.y_train, steps=20, lr=0.5, adversarial="pgd", eps=0.3,
                   norm="inf", pgd_steps=3, seed=7)
        runs.append(net.W)
    np.testing.assert_array_equal(*runs)


def test_low_rank_chain_rule_and_rank():
    rng = np.random.default_rng(0)
    W0, G = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    lr = images.LowRank(W0, 2, seed=1)
    lr.A = rng.standard_normal((6, 2))
    # The chain rule against finite differences of L(W) = <G, W> (so dL/dW = G).
    A, B = lr.A.copy(), lr.B.copy()
    lr.step(G, 1e-3)
    h = 1e-6
    E = np.zeros_like(A)
    E[2, 1] = h
    dA = (np.sum(G * ((A + E) @ B)) - np.sum(G * ((A - E) @ B))) / (2 * h)
    assert np.isclose((A - lr.A)[2, 1] / 1e-3, dA)
    assert np.linalg.matrix_rank(lr.W - W0) <= 2
    # Spectral start: the first step is the best rank-r approximation of a full step.
    sp = images.LowRank.spectral(W0, 2, G)
    sp.step(G, 1e-3)
    U, S, Vt = np.linalg.svd(G)
    np.testing.assert_allclose(sp.W - W0, -1e-3 * (U[:, :2] * S[:2]) @ Vt[:2], atol=1e-12)
    with pytest.raises(ValueError, match="rank"):
        images.LowRank(W0, 6)


def test_low_rank_fit_stays_low_rank():
    t = images.make_task(_toy_set(), binary=((0, 1), (2, 3)), n_train=200)
    net = TwoLayerReLU(16, 8, threshold="norm", c=0.5, init_scale=0.1, seed=0)
    images.fit(net, t.X_train, t.y_train, steps=30, lr=0.5)
    W0 = net.W.copy()
    lr = images.LowRank(W0, 1, seed=0)
    images.fit(net, t.X_train, t.y_train, steps=20, lr=0.5, adversarial="fgm", eps=0.5,
               low_rank=lr)
    D = net.W - W0
    assert np.abs(D).max() > 0
    s = np.linalg.svd(D, compute_uv=False)
    assert s[1] < 1e-10 * s[0]


@pytest.mark.parametrize("kind", ["two_layer", "cnn"])
def test_representation_gradient_matches_finite_differences(kind):
    rng = np.random.default_rng(0)
    if kind == "two_layer":
        model = TwoLayerReLU(6, 4, threshold="norm", c=0.2, init_scale=1.0, seed=0)
        X = rng.standard_normal((3, 6))
    else:
        model = SmoothedReLUCNN(3, 2, 5, init_scale=0.5, seed=0)
        X = rng.standard_normal((3, 2, 5))
    target = ilyas.representation(model, rng.standard_normal(X.shape))
    _, G = ilyas._rep_and_grad(model, X, target)
    f = lambda Z: 0.5 * np.sum((ilyas.representation(model, Z) - target) ** 2)  # noqa: E731
    for idx in [(0, 1), (2, 4)] if kind == "two_layer" else [(0, 1, 2), (2, 0, 4)]:
        E = np.zeros_like(X)
        E[idx] = 1e-6
        assert np.isclose(G[idx], (f(X + E) - f(X - E)) / 2e-6, rtol=1e-4, atol=1e-8)


def test_robust_and_nonrobust_datasets():
    t = images.make_task(_toy_set(), binary=None, n_train=200)
    Xtr = images.to_patches(t.X_train, (4, 4), 2)
    Xte = images.to_patches(t.X_test, (4, 4), 2)
    net = SmoothedReLUCNN(4, 4, 4, init_scale=0.3, seed=0)
    images.fit(net, Xtr, t.y_train, steps=80, lr=0.5)
    start = Xte[::-1].copy()
    X_r, resid = ilyas.robust_dataset(net, Xte, start, steps=100, step_size=0.2)
    before = np.linalg.norm(ilyas.representation(net, start) - ilyas.representation(net, Xte))
    after = np.linalg.norm(ilyas.representation(net, X_r) - ilyas.representation(net, Xte))
    assert after < 0.2 * before and np.median(resid) < 0.2
    X_nr, tgt, success = ilyas.non_robust_dataset(net, Xte, t.y_test, 1.0, 2, steps=20)
    np.testing.assert_array_equal(tgt, (t.y_test + 1) % 4)
    assert np.linalg.norm((X_nr - Xte).reshape(len(Xte), -1), axis=1).max() <= 1.0 + 1e-9
    assert success > net.accuracy(Xte, tgt) + 0.3
    d = ilyas.targeted_pgd(net, Xte, tgt, 0.1, "inf", steps=5)
    assert np.abs(d).max() <= 0.1 + 1e-12


def test_check_params_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown keys.*epsilon"):
        images.check_params({"epsilon": 1.0})
    with pytest.raises(ValueError, match="eps_train"):
        images.check_params({"eps_train": -1.0})
    with pytest.raises(ValueError, match="norm"):
        images.check_params({"norm": 1})
    with pytest.raises(ValueError, match="fresh_attack"):
        images.check_params({"fresh_attack": "cw"})
    assert images.check_params({"m": 4})["m"] == 4


_TINY = dict(n_train=300, m=8, steps=40, adv_steps=20, eval_steps=5, cnn_m=2, dr_steps=20,
             nr_steps=5, n_probe=40, eps_ramp=5)


def test_experiments_on_digits_smoke_and_same_bits():
    pytest.importorskip("sklearn")
    a = images.purification_experiment(_TINY, seed=0)
    b = images.purification_experiment(_TINY, seed=0)
    np.testing.assert_array_equal(a["arrays"]["W_adv"], b["arrays"]["W_adv"])
    assert a["fraction"] == b["fraction"] and 0.0 <= a["fraction"] <= 1.0
    assert a["clean_accuracy"] > 0.8   # 0-4 vs 5-9 is learnable in 40 steps
    low = images.low_rank_experiment(_TINY, seed=0, ranks=(1, 2), base=a)
    assert low["robust_accuracy_full"] == a["robust_accuracy_adv"]
    assert set(low["arrays"]["ranks"]) == {1, 2} and 0 < low["full_update_energy_r1"] <= 1
    r = images.robust_nonrobust_experiment(dict(_TINY, steps=30), seed=0)
    assert r["chance"] == 0.1 and len(r["arrays"]["std"]["step"]) >= 2
    for key in ("std_dr", "std_dnr", "adv_dr", "adv_dnr", "cnn_fraction"):
        assert 0.0 <= r[key] <= 1.0


def test_figures_are_figures():
    from matplotlib.figure import Figure

    from theorylab.plots import images as plots

    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 16))
    assert isinstance(plots.feature_tiles(W, W + 0.1, (4, 4), n=3, ratio=np.ones(5)), Figure)
    arr = {"ranks": [1, 2], "robust": [0.2, 0.3], "robust_full": 0.4, "robust_clean": 0.1,
           "energy": [0.5, 0.7]}
    assert isinstance(plots.low_rank_curve({"l2": arr}), Figure)
    series = {k: [0.1, 0.5] for k in ("dr", "dnr", "clean", "robust")}
    series["step"] = [0, 10]
    assert isinstance(plots.dataset_curves({"std": series, "adv": series}, chance=0.1), Figure)
    ex = {"source": rng.random((2, 4, 4)), "robust": rng.random((2, 4, 4)),
          "nonrobust": rng.random((2, 4, 4)), "y": [0, 1], "t": [1, 2], "patch": 2,
          "image_shape": (4, 4), "mean": np.zeros(16)}
    assert isinstance(plots.dataset_examples(
        ex, unpatch=lambda X: images.from_patches(X, (4, 4), 2)), Figure)


def test_single_threaded_restores_the_thread_count():
    import numba

    top = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(top)
    with pytest.raises(RuntimeError):
        with images.single_threaded():
            assert numba.get_num_threads() == 1
            raise RuntimeError
    assert numba.get_num_threads() == top


def test_experiments_run_on_a_cifar10_directory(tmp_path):
    # The same measurements on colour images from the on-disk CIFAR-10 format.
    import pickle

    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        obj = {b"data": rng.integers(0, 256, (40, 3072), dtype=np.uint8),
               b"labels": rng.integers(0, 10, 40).tolist()}
        with open(tmp_path / name, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    params = dict(_TINY, dataset="cifar10", data_path=str(tmp_path), n_train=150, n_probe=10,
                  patch=8, steps=5, adv_steps=3, dr_steps=3, nr_steps=2)
    a = images.purification_experiment(params, seed=0)
    assert a["arrays"]["W_clean"].shape == (8, 3072) and a["arrays"]["image_shape"] == (32, 32, 3)
    r = images.robust_nonrobust_experiment(params, seed=0)
    assert r["arrays"]["cnn_weights"]["W_clean"].shape == (10 * 2, 8 * 8 * 3)
    with pytest.raises(FileNotFoundError, match="CIFAR-10 directory not found.*none"):
        images.purification_experiment(dict(params, data_path=str(tmp_path / "none")))
