"""The robust / non-robust patch world and its structured attack."""

import numpy as np
import pytest

from theorylab.attacks import structured_attack
from theorylab.worlds import RobustNonRobustPatches


def small_world(**kw):
    args = dict(K=3, P=6, d=40, s=4, alpha=1.0, beta=0.7, n_nonrobust=3, noise=0.2, seed=5)
    args.update(kw)
    return RobustNonRobustPatches(**args)


def test_feature_vectors_layout_A():
    w = small_world()
    np.testing.assert_allclose(np.linalg.norm(w.U, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(w.V, axis=1), 1.0, rtol=1e-12)
    supports = [set(np.flatnonzero(u)) for u in w.U]
    assert all(len(sp) == w.s for sp in supports)
    assert all(not (a & b) for i, a in enumerate(supports) for b in supports[i + 1:])  # disjoint
    np.testing.assert_allclose(np.abs(w.U[w.U != 0]), 1 / np.sqrt(w.s), rtol=1e-12)
    np.testing.assert_allclose(np.abs(w.V), 1 / np.sqrt(w.d), rtol=1e-12)  # dense sign vectors
    np.testing.assert_allclose(np.abs(w.V).sum(axis=1), np.sqrt(w.d), rtol=1e-12)
    np.testing.assert_allclose(w.U @ w.V.T, 0.0, atol=1e-15)  # balanced signs, even s
    np.testing.assert_allclose(w.U @ w.U.T, np.eye(w.K), atol=1e-15)


def test_odd_sparsity_keeps_u_v_nearly_orthogonal():
    w = small_world(s=3)
    np.testing.assert_allclose(np.abs(w.U @ w.V.T), 1 / np.sqrt(3 * w.d), rtol=1e-12)


def test_feature_vectors_layout_B_are_both_sparse():
    w = small_world(layout="B", threat="l2", s=2)
    for F in (w.U, w.V):
        np.testing.assert_allclose(np.linalg.norm(F, axis=1), 1.0)
        assert ((F != 0).sum(axis=1) == 2).all()
    assert not (set(np.flatnonzero(w.U.any(0))) & set(np.flatnonzero(w.V.any(0))))
    with pytest.raises(ValueError, match="s must be"):
        small_world(layout="B", s=7)  # 2 K s = 42 > d = 40


def test_sample_structure():
    w = small_world()
    S = w.sample(300, 1)
    assert S.X.shape == (300, 6, 40) and S.y.dtype == np.int64
    assert set(np.unique(S.y)) <= {0, 1, 2}
    assert (S.nonrobust.sum(axis=1) == 3).all()
    assert not S.nonrobust[np.arange(300), S.robust_patch].any()
    assert ((S.robust.astype(int) + S.nonrobust + S.noise_only) == 1).all()
    # Removing the planted features leaves only the noise: recover it and check its scale.
    clean = S.X.copy()
    clean[np.arange(300), S.robust_patch] -= w.alpha * w.U[S.y]
    clean -= w.beta * S.nonrobust[:, :, None] * w.V[S.y][:, None, :]
    norms = np.linalg.norm(clean, axis=2)
    # E||xi||^2 = noise^2; the mean over 1800 patches is within a few % of it.
    assert abs(np.mean(norms ** 2) / w.noise ** 2 - 1) < 0.05
    # The robust patch correlates with u_y by alpha, up to noise of std noise/sqrt(d).
    corr = np.einsum("nd,nd->n", S.X[np.arange(300), S.robust_patch], w.U[S.y])
    assert abs(corr.mean() - w.alpha) < 0.02


def test_labels_are_balanced():
    y = small_world(K=4).sample(8000, 2).y
    frac = np.bincount(y, minlength=4) / y.size
    # Binomial std sqrt(.25 * .75 / 8000) = 0.0048; 0.025 is ~5 std.
    assert np.all(np.abs(frac - 0.25) < 0.025)


def test_same_seed_same_bits_and_spec_roundtrip():
    w = small_world()
    a, b = w.sample(50, 7), w.sample(50, 7)
    assert a.X.tobytes() == b.X.tobytes() and (a.y == b.y).all()
    assert not np.array_equal(a.X, w.sample(50, 8).X)
    w2 = RobustNonRobustPatches.from_spec(w.spec())
    assert w2.U.tobytes() == w.U.tobytes() and w2.V.tobytes() == w.V.tobytes()
    assert w2.sample(50, 7).X.tobytes() == a.X.tobytes()
    assert not np.array_equal(small_world(seed=6).V, w.V)
    f32 = w.sample(50, 7, dtype=np.float32)
    assert f32.X.dtype == np.float32
    np.testing.assert_allclose(f32.X, a.X, rtol=1e-6, atol=1e-7)


def test_erasure_radius_and_race():
    w = small_world()
    assert w.erasure_radius("linf") == pytest.approx(0.7 / np.sqrt(40))
    assert w.erasure_radius("l2") == pytest.approx(0.7 * np.sqrt(3))
    assert w.race(3) == pytest.approx(3 * 0.7 ** 3)


@pytest.mark.parametrize("kwargs, name", [
    (dict(K=1), "K"),
    (dict(s=41), "s"),
    (dict(s=14), "s"),  # K s = 42 > d
    (dict(s=0), "s"),
    (dict(n_nonrobust=6), "n_nonrobust"),  # n_nonrobust + 1 > P
    (dict(n_nonrobust=-1), "n_nonrobust"),
    (dict(noise=-0.1), "noise"),
    (dict(noise=float("nan")), "noise"),
    (dict(alpha=-1.0), "alpha"),
    (dict(beta=float("inf")), "beta"),
    (dict(threat="l1"), "threat"),
    (dict(layout="C"), "layout"),
    (dict(P=0), "P"),
    (dict(d=2.5), "d"),
    (dict(seed=-1), "seed"),
])
def test_bad_parameters_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        small_world(**kwargs)


def test_bad_sample_arguments():
    w = small_world()
    with pytest.raises(ValueError, match="^n "):
        w.sample(0, 1)
    with pytest.raises(ValueError, match="rng_or_seed"):
        w.sample(5, "x")
    with pytest.raises(ValueError, match="dtype"):
        w.sample(5, 1, dtype=np.int32)


def test_structured_attack_linf_and_l2():
    w = small_world()
    S = w.sample(20, 3)
    D = structured_attack(w, S, 0.1)  # world threat linf
    assert np.abs(D).max() == pytest.approx(0.1)
    assert (D[~S.nonrobust] == 0).all()
    # On each non-robust patch it removes exactly eps ||v||_1 of the v_y signal.
    proj = np.einsum("npd,nd->np", D, w.V[S.y])[S.nonrobust]
    np.testing.assert_allclose(proj, -0.1 * np.sqrt(w.d))
    Dall = structured_attack(w, S, 0.1, where="all")
    assert (np.abs(Dall) == 0.1).all()
    D2 = structured_attack(w, S, 0.3, "l2")
    np.testing.assert_allclose(np.linalg.norm(D2.reshape(20, -1), axis=1), 0.3)  # global budget
    D2p = structured_attack(w, S, 0.3, "l2", spread="per_patch")
    np.testing.assert_allclose(np.linalg.norm(D2p, axis=2)[S.nonrobust], 0.3)
    with pytest.raises(ValueError, match="eps"):
        structured_attack(w, S, -0.1)
    with pytest.raises(ValueError, match="norm"):
        structured_attack(w, S, 0.1, "l1")
    with pytest.raises(ValueError, match="where"):
        structured_attack(w, S, 0.1, where="robust")


def test_structured_curve_fast_path_matches_the_generic_one():
    from theorylab.attacks import structured_accuracy, structured_curve
    from theorylab.models import SmoothedReLUCNN

    w = small_world(beta=1.0)
    S = w.sample(60, 4)
    # Filters aligned with v_k (so that the attack matters) and a little noise.
    W = np.stack([np.stack([w.V[k] * 2, 0 * w.U[k]]) for k in range(w.K)])
    noise = 0.05 * np.random.default_rng(0).standard_normal(W.shape)
    model = SmoothedReLUCNN(w.K, 2, w.d, W=W + noise)
    grid = np.linspace(0.02, 0.4, 12)
    for norm in ("linf", "l2"):
        fast = structured_curve(model, w, S, grid * (1 if norm == "linf" else 8), norm)
        slow = [structured_accuracy(model, w, S, e, norm) for e in fast.eps]
        np.testing.assert_allclose(fast.accuracy, slow)
        assert fast.accuracy.min() < 0.5 < fast.clean_accuracy  # the attack does bite
