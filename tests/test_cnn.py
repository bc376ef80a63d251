"""The smoothed-ReLU CNN: kernels, gradients, persistence, validation, attacks, training."""

import numba
import numpy as np
import pytest

from theorylab import attacks
from theorylab._kernels import cnn as k
from theorylab.attacks import erasure_threshold, structured_accuracy
from theorylab.models import SmoothedReLUCNN, load
from theorylab.training import TrainingDiverged, train
from theorylab.training import feature_summary, logit_decomposition
from theorylab.worlds import RobustNonRobustPatches


def srelu_ref(z, q, rho):
    zp = np.maximum(z, 0.0)
    return np.where(zp <= rho, zp ** q / (q * rho ** (q - 1)), zp - (1 - 1 / q) * rho)


def dsrelu_ref(z, q, rho):
    zp = np.maximum(z, 0.0)
    return np.where(zp <= rho, (zp / rho) ** (q - 1), 1.0)


def numpy_reference(X, y, W, q, rho):
    """Plain einsum implementation of spec 2.2's formulas (N x K x m x P temporaries)."""
    n = len(y)
    Z = np.einsum("npd,kmd->nkmp", X, W)
    F = srelu_ref(Z, q, rho).sum(axis=(2, 3))
    Fs = F - F.max(axis=1, keepdims=True)
    prob = np.exp(Fs) / np.exp(Fs).sum(axis=1, keepdims=True)
    loss = np.log(np.exp(Fs).sum(axis=1)) - Fs[np.arange(n), y]
    g = prob.copy()
    g[np.arange(n), y] -= 1
    S = dsrelu_ref(Z, q, rho) * g[:, :, None, None]
    gW = np.einsum("nkmp,npd->kmd", S, X) / n
    gX = np.einsum("nkmp,kmd->npd", S, W)
    return F, loss, gW, gX


@pytest.fixture
def problem():
    # Weights of scale 0.5 put pre-activations in all three pieces of sigma.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, 5, 7))
    W = 0.5 * rng.standard_normal((3, 4, 7))
    y = rng.integers(0, 3, 9)
    return X, y, W


@pytest.mark.parametrize("q, rho", [(3, 0.5), (2, 0.3), (4, 1.0)])
def test_kernels_match_numpy(problem, q, rho):
    X, y, W = problem
    F, loss, gW, gX = numpy_reference(X, y, W, q, rho)
    Z = np.einsum("npd,kmd->nkmp", X, W)
    assert (Z < 0).any() and ((Z > 0) & (Z < rho)).any() and (Z > rho).any()
    l1, F1, gW1 = k.loss_and_weight_gradient(X, y, W, q, rho)
    l2, F2, gX2 = k.loss_and_input_gradient(X, y, W, q, rho)
    np.testing.assert_allclose(k.scores(X, W, q, rho), F, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(k.patch_scores(X, W, q, rho).sum(axis=1), F, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(F1, F, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(l1, loss, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(l2, loss, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gW1, gW, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(gX2, gX, rtol=1e-10, atol=1e-13)


def test_float32_kernels_match_float64(problem):
    X, y, W = problem
    m64 = SmoothedReLUCNN(3, 4, 7, W=W)
    m32 = SmoothedReLUCNN(3, 4, 7, W=W, dtype=np.float32)
    G32 = m32.input_gradient(X.astype(np.float32), y)
    assert G32.dtype == np.float32
    # float32 has ~7 significant digits; scores of size ~10 agree to ~1e-5.
    np.testing.assert_allclose(m32.decision_function(X), m64.decision_function(X), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(G32, m64.input_gradient(X, y), rtol=1e-4, atol=1e-5)


def test_cross_entropy_is_stable_for_huge_scores():
    X = np.ones((2, 1, 1))
    W = np.array([[[1e6]], [[0.0]]])  # F = (1e6 - const, 0)
    loss, F, _ = k.loss_and_input_gradient(X, np.array([0, 1]), W, 3, 0.5)
    assert np.isfinite(loss).all()
    np.testing.assert_allclose(loss, [0.0, F[1, 0]], rtol=1e-12)
    nan_loss, _, _ = k.loss_and_input_gradient(X, np.array([0, 1]), W * np.nan, 3, 0.5)
    assert np.isnan(nan_loss).all()  # reported, never masked


def _central_diff(fun, A, h=1e-6):
    G = np.zeros_like(A)
    for idx in np.ndindex(A.shape):
        Ap, Am = A.copy(), A.copy()
        Ap[idx] += h
        Am[idx] -= h
        G[idx] = (fun(Ap) - fun(Am)) / (2 * h)
    return G


def test_weight_gradient_matches_central_differences(problem):
    X, y, W = problem
    model = SmoothedReLUCNN(3, 4, 7, W=W)
    _, _, gW = model.weight_gradient(X, y)
    fd = _central_diff(lambda A: np.mean(k.loss_and_weight_gradient(X, y, A, 3, 0.5)[0]), W)
    np.testing.assert_allclose(gW, fd, rtol=1e-5, atol=1e-8)


def test_input_gradient_matches_central_differences(problem):
    X, y, W = problem
    model = SmoothedReLUCNN(3, 4, 7, W=W)
    G = model.input_gradient(X, y)
    fd = _central_diff(lambda A: model.loss(A, y, reduction="none").sum(), X)
    np.testing.assert_allclose(G, fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("q, rho", [(2, 0.5), (3, 0.5), (4, 0.1)])
def test_smoothed_relu_is_c1(q, rho):
    for z0 in (0.0, rho):
        for delta in (1e-4, 1e-6, 1e-8):
            z = np.array([z0 - delta, z0, z0 + delta])
            v = k.smoothed_relu(z, q, rho)
            dv = k.smoothed_relu_derivative(z, q, rho)
            # Continuity of value and slope: jumps shrink with delta (a kink would not).
            assert abs(v[2] - v[0]) <= 2.1 * delta
            assert abs(dv[2] - dv[0]) <= 4 * q * delta / rho
    z = np.linspace(-1, 2 * rho + 1, 1001)
    np.testing.assert_allclose(k.smoothed_relu(z, q, rho), srelu_ref(z, q, rho), rtol=1e-13,
                               atol=1e-15)
    np.testing.assert_allclose(k.smoothed_relu_derivative(z, q, rho), dsrelu_ref(z, q, rho),
                               rtol=1e-13, atol=1e-15)
    h = 1e-6
    num = (k.smoothed_relu(z + h, q, rho) - k.smoothed_relu(z - h, q, rho)) / (2 * h)
    # Where sigma'' jumps (by (q-1)/rho at rho) a central difference is off by up to
    # h (q-1) / (4 rho); elsewhere by O(h^2).
    np.testing.assert_allclose(num, k.smoothed_relu_derivative(z, q, rho),
                               atol=h * (q - 1) / (2 * rho))


def test_kernels_give_same_bits_for_any_thread_count():
    n_max = numba.config.NUMBA_NUM_THREADS
    if n_max < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2 to compare thread counts")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((301, 4, 33))
    W = 0.3 * rng.standard_normal((4, 5, 33))
    y = rng.integers(0, 4, 301)
    old = numba.get_num_threads()
    out = []
    try:
        for t in (1, n_max):
            numba.set_num_threads(t)
            out.append([*k.loss_and_weight_gradient(X, y, W, 3, 0.5),
                        *k.loss_and_input_gradient(X, y, W, 3, 0.5),
                        k.patch_scores(X, W, 3, 0.5),
                        k.ascent(X, y, W, 3, 0.5, np.zeros_like(X), 3, 0.02, 0.05, True),
                        k.ascent(X, y, W, 3, 0.5, np.zeros_like(X), 2, 0.2, 0.3, False)])
    finally:
        numba.set_num_threads(old)
    for a, b in zip(*out):
        assert a.tobytes() == b.tobytes()


def test_public_methods_and_protocol(problem):
    X, y, W = problem
    model = SmoothedReLUCNN(3, 4, 7, W=W)
    F = model.decision_function(X)
    assert F.shape == (9, 3)
    np.testing.assert_array_equal(model.predict(X), F.argmax(axis=1))
    assert model.accuracy(X, y) == pytest.approx(np.mean(F.argmax(axis=1) == y))
    assert model.loss(X, y) == pytest.approx(model.loss(X, y, reduction="none").mean())
    assert model.input_gradient(X, y).shape == X.shape
    np.testing.assert_allclose(model.patch_contributions(X).sum(axis=1), F, rtol=1e-12)
    # A tie F_y == max_j F_j counts as an error, as for the binary models.
    zero = SmoothedReLUCNN(3, 4, 7, W=np.zeros((3, 4, 7)))
    assert zero.accuracy(X, y) == 0.0
    # The patch count is free: filters are shared across patches.
    assert model.decision_function(X[:, :2]).shape == (9, 3)


def test_save_load_roundtrip(tmp_path, problem):
    X, y, W = problem
    model = SmoothedReLUCNN(3, 4, 7, q=4, rho=0.25, init_scale=0.1, seed=3)
    model.W += W
    model.metadata["note"] = "trained"
    path = tmp_path / "cnn.npz"
    model.save(path)
    with np.load(path) as data:
        assert str(data["kind"]) == "SmoothedReLUCNN"
        assert data["W"].shape == (3, 4, 7) and int(data["q"]) == 4
        assert float(data["rho"]) == 0.25
    back = load(path)
    assert isinstance(back, SmoothedReLUCNN) and back.q == 4 and back.rho == 0.25
    assert back.decision_function(X).tobytes() == model.decision_function(X).tobytes()
    np.testing.assert_array_equal(back.W_init, model.W_init)
    assert back.metadata == {"note": "trained"}
    c = model.copy()
    c.W += 1
    assert not np.array_equal(c.W, model.W)


@pytest.mark.parametrize("kwargs, name", [
    (dict(K=1, m=2, d=3), "K"),
    (dict(K=2, m=0, d=3), "m"),
    (dict(K=2, m=2, d=0), "d"),
    (dict(K=2, m=2, d=3, q=1), "q"),
    (dict(K=2, m=2, d=3, q=2.5), "q"),
    (dict(K=2, m=2, d=3, rho=0.0), "rho"),
    (dict(K=2, m=2, d=3, init_scale=-1.0), "init_scale"),
    (dict(K=2, m=2, d=3, dtype=np.int32), "dtype"),
    (dict(K=2, m=2, d=3, W=np.ones((2, 2, 4))), "W"),
    (dict(K=2, m=2, d=3, W=np.full((2, 2, 3), np.nan)), "W"),
    (dict(K=2, m=2, d=3, seed=-2), "seed"),
])
def test_bad_constructor_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        SmoothedReLUCNN(**kwargs)


def test_bad_inputs_raise_before_work(problem):
    X, y, W = problem
    model = SmoothedReLUCNN(3, 4, 7, W=W)
    Xnan = X.copy()
    Xnan[0, 0, 0] = np.nan
    cases = [
        (lambda: model.decision_function(Xnan), "^X contains NaN"),
        (lambda: model.decision_function(X[:, :, :5]), "^X must have shape"),
        (lambda: model.decision_function(X[0]), "^X must have 3 dimensions"),
        (lambda: model.loss(X, y[:4]), "^y must have shape"),
        (lambda: model.loss(X, y + 3), r"^y must contain labels in \[0, 2\]"),
        (lambda: model.loss(X, y - 1.5), "^y must contain integer"),
        (lambda: model.loss(X, y, reduction="sum"), "^reduction"),
        (lambda: model.input_gradient(Xnan, y), "^X contains NaN"),
        (lambda: model.weight_gradient(X, -y - 1), "^y must contain labels"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match):
            fn()


def test_generic_attacks_work_on_the_cnn(problem):
    X, y, W = problem
    model = SmoothedReLUCNN(3, 4, 7, W=W)
    d_inf = attacks.fgm(model, X, y, 0.1, "inf")
    assert d_inf.shape == X.shape and np.abs(d_inf).max() == pytest.approx(0.1)
    d2 = attacks.pgd(model, X, y, 0.5, 2, steps=10, random_start=True, seed=0)
    assert (np.linalg.norm(d2.reshape(9, -1), axis=1) <= 0.5 + 1e-12).all()
    assert (model.loss(X + d2, y, reduction="none") >= model.loss(X, y, reduction="none")).all()
    assert attacks.robust_accuracy(model, X, y, 0.0, "inf") == model.accuracy(X, y)
    curve = attacks.robustness_curve(model, X, y, [0.05, 0.2, 1.0], "inf", steps=5)
    assert curve.clean_accuracy == model.accuracy(X, y)
    assert np.all(np.diff(curve.accuracy) <= 0)  # PGD keeps the best iterate: monotone here


@pytest.fixture(scope="module")
def trained():
    # A small world where v wins the race (n_nonrobust beta^3 / alpha^3 = 3).
    world = RobustNonRobustPatches(3, 6, 64, s=2, alpha=1.0, beta=1.0, n_nonrobust=3,
                                   noise=0.3, seed=0)
    model = SmoothedReLUCNN(3, 6, 64, seed=0)
    hist = train(model, world, steps=150, lr=0.5, n_train=192, eval_size=300, seed=0)
    return world, model, hist


def test_standard_training_fits_and_learns_v(trained):
    world, model, hist = trained
    fin = hist.final
    # Spec 6.1 Test 1 reaches clean accuracy 1.0 at d=256 in 300 steps; this world is easier.
    assert fin["clean_accuracy"] >= 0.98
    assert fin["loss"] < hist.records[0]["loss"] / 10
    assert fin["gamma_v"] > 5 * fin["gamma_u"]
    assert hist["step"][0] == 0 and hist["step"][-1] == 150
    # The logit decomposition adds up to the true-class score.
    S = world.sample(100, 9)
    parts = logit_decomposition(model, S)
    Fy = model.decision_function(S.X)[np.arange(100), S.y].mean()
    assert sum(parts.values()) == pytest.approx(Fy, rel=1e-10)
    assert parts["logit_nonrobust"] > parts["logit_robust"]
    # Past the erasure radius beta / ||v||_1 the structured attack wins.
    assert structured_accuracy(model, world, S, 2 * world.erasure_radius()) < 0.5
    assert 0.3 < erasure_threshold(model, world, S) / world.erasure_radius() < 1.5


def test_feature_summary_on_planted_weights():
    world = RobustNonRobustPatches(3, 4, 32, s=2, alpha=1, beta=1, n_nonrobust=2, noise=0.1)
    W = np.zeros((3, 2, 32))
    W[:, 0] = 2 * world.U
    W[:, 1] = -world.V
    s = feature_summary(W, world.U, world.V)
    assert s["gamma_u"] == pytest.approx(2.0) and s["gamma_v_min"] == pytest.approx(-1.0)
    assert s["gamma_u_cross"] == pytest.approx(0.0, abs=1e-12)


def test_training_is_reproducible_and_detects_divergence(trained):
    world, _, _ = trained
    runs = []
    for _ in range(2):
        m = SmoothedReLUCNN(3, 6, 64, seed=1)
        train(m, world, steps=3, n_train=32, eval_size=10, seed=4, adversarial="pgd", eps=0.05,
              random_start=True)
        runs.append(m.W.tobytes())
    assert runs[0] == runs[1]
    # Weights of 1e308 overflow the pre-activations of some patch to inf, so the
    # loss is inf - inf = NaN at the first step: it must stop the run, not continue.
    m = SmoothedReLUCNN(3, 6, 64, W=np.full((3, 6, 64), 1e308))
    with pytest.raises(TrainingDiverged) as err:
        train(m, world, steps=5, n_train=32, eval_size=10)
    assert err.value.step == 0


@pytest.mark.parametrize("kwargs, name", [
    (dict(steps=0), "steps"),
    (dict(lr=0.0), "lr"),
    (dict(adversarial="fgsm"), "adversarial"),
    (dict(eps=-0.1), "eps"),
    (dict(norm="l1"), "norm"),
    (dict(eps_ramp=-1), "eps_ramp"),
    (dict(eval_eps=float("nan")), "eval_eps"),
])
def test_trainer_rejects_bad_arguments(trained, kwargs, name):
    world, _, _ = trained
    args = dict(steps=2, n_train=8, eval_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name} "):
        train(SmoothedReLUCNN(3, 6, 64), world, **args)
    with pytest.raises(ValueError, match="does not match"):
        train(SmoothedReLUCNN(3, 6, 32), world, steps=1)


def test_training_attack_matches_generic_fgm_and_a_numpy_pgd(problem):
    from theorylab.training import adversarial_examples

    X, y, W = problem
    model = SmoothedReLUCNN(3, 4, 7, W=W)
    for norm in (np.inf, 2.0):
        one = adversarial_examples(model, X, y, 0.1, norm)
        np.testing.assert_allclose(one - X, attacks.fgm(model, X, y, 0.1, norm), rtol=1e-12,
                                   atol=1e-15)
    # Three sign steps of size 2.5 eps / 3 with clipping, last iterate (the spec's pilot).
    D = np.zeros_like(X)
    for _ in range(3):
        D = np.clip(D + 0.05 * np.sign(model.input_gradient(X + D, y)), -0.06, 0.06)
    got = adversarial_examples(model, X, y, 0.06, np.inf, steps=3)
    np.testing.assert_allclose(got, X + D, rtol=1e-12, atol=1e-15)
    D2 = adversarial_examples(model, X, y, 0.3, 2.0, steps=4, random_start=True,
                              rng=np.random.default_rng(0)) - X
    assert (np.linalg.norm(D2.reshape(9, -1), axis=1) <= 0.3 * (1 + 1e-12)).all()
    # A zero gradient (all filters silent) leaves the point where it is, in both norms.
    silent = SmoothedReLUCNN(3, 4, 7, W=np.zeros((3, 4, 7)))
    for norm in (np.inf, 2.0):
        np.testing.assert_array_equal(adversarial_examples(silent, X, y, 0.1, norm, steps=2), X)


def test_l2_adversarial_training_logs_robust_accuracy_and_ramps(trained, capsys):
    world, _, _ = trained
    m = SmoothedReLUCNN(3, 6, 64, seed=2)
    hist = train(m, world, steps=4, n_train=32, eval_size=20, adversarial="fgm", norm="l2",
                 eps=0.5, eps_ramp=4, eval_eps=0.3, log_every=2, progress=True, seed=1)
    assert hist.config["norm"] == "l2"
    np.testing.assert_allclose(hist["eps"], [0.0, 0.25, 0.5])  # steps 0, 2 and the end
    for key in ("robust_accuracy", "structured_accuracy", "gamma_u_cross", "logit_noise"):
        assert np.isfinite(hist[key]).all()
    assert "adversarial" in capsys.readouterr().err  # the tqdm bar, only when asked
    quiet = train(SmoothedReLUCNN(3, 6, 64, seed=2), world, steps=1, n_train=8, eval_size=4)
    assert np.isnan(quiet.final["robust_accuracy"])  # no eval_eps: not measured, not faked
    assert "standard" not in capsys.readouterr().err
