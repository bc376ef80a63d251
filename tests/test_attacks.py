"""Closed-form attack properties, PGD feasibility and curve bookkeeping."""

import numpy as np
import pytest
from scipy import stats

from theorylab import attacks
from theorylab.worlds import SparseCoding

DUAL = {2: 2, np.inf: 1, 1: np.inf}


@pytest.mark.parametrize("norm", [2, np.inf, 1])
def test_steepest_ascent_norm_and_inner_product(norm):
    rng = np.random.default_rng(0)
    G = rng.standard_normal((50, 17))
    D = attacks.steepest_ascent(G, 0.3, norm)
    np.testing.assert_allclose(np.linalg.norm(D, ord=norm, axis=1), 0.3, rtol=1e-12)
    np.testing.assert_allclose((D * G).sum(1), 0.3 * np.linalg.norm(G, ord=DUAL[norm], axis=1),
                               rtol=1e-12)


@pytest.mark.parametrize("norm", [2, np.inf, 1])
def test_zero_and_tiny_gradients(norm):
    G = np.zeros((3, 4))
    G[1] = 1e-300
    G[2, 2] = -1e-30
    D = attacks.steepest_ascent(G, 0.5, norm)
    assert np.isfinite(D).all()
    assert np.all(D[0] == 0)  # zero gradient -> zero perturbation
    np.testing.assert_allclose(np.linalg.norm(D[1:], ord=norm, axis=1), 0.5)
    with pytest.raises(ValueError, match="zero gradient"):
        attacks.steepest_ascent(G, 0.5, norm, zero_grad="raise")


def test_l1_step_puts_budget_on_largest_coordinate():
    G = np.array([[0.1, -3.0, 2.0]])
    np.testing.assert_array_equal(attacks.steepest_ascent(G, 2.0, 1), [[0.0, -2.0, 0.0]])


@pytest.mark.parametrize("norm", [2, np.inf, 1])
def test_projection_is_the_nearest_point_of_the_ball(norm):
    rng = np.random.default_rng(3)
    D = rng.standard_normal((40, 6)) * 2
    P = attacks.project(D, 1.0, norm)
    assert np.all(np.linalg.norm(P, ord=norm, axis=1) <= 1.0 + 1e-12)
    # Nearest point: no sampled feasible point of the ball is closer.
    cand = attacks.sample_ball((4000, 6), 1.0, norm, rng)
    for d, p in zip(D[:5], P[:5]):
        assert np.linalg.norm(d - p) <= np.linalg.norm(cand - d, axis=1).min() + 1e-12


@pytest.mark.parametrize("norm", [2, np.inf, 1])
def test_ball_sampling_is_uniform(norm):
    # Uniform in an n-dim ball of radius 1 <=> ||x||^n ~ U(0, 1) (homogeneity).
    rng = np.random.default_rng(4)
    n = 5
    pts = attacks.sample_ball((4000, n), 1.0, norm, rng)
    r = np.linalg.norm(pts, ord=norm, axis=1)
    assert r.max() <= 1.0 + 1e-12
    assert stats.kstest(r ** n, "uniform").pvalue > 1e-3  # fails at 1e-3 only by chance


@pytest.mark.parametrize("norm", [2, np.inf, 1])
def test_pgd_stays_in_ball_and_beats_fgm(trained, norm):
    world, model, s = trained
    eps = {2: 0.3, np.inf: 0.05, 1: 0.5}[norm]
    d = attacks.pgd(model, s.X, s.y, eps, norm, steps=10, random_start=True, seed=1)
    assert np.all(np.linalg.norm(d, ord=norm, axis=1) <= eps * (1 + 1e-9))
    lf = model.loss(s.X + attacks.fgm(model, s.X, s.y, eps, norm), s.y, reduction="none")
    lp = model.loss(s.X + d, s.y, reduction="none")
    assert lp.mean() >= lf.mean() - 1e-12
    # Same seed, same bits.
    d2 = attacks.pgd(model, s.X, s.y, eps, norm, steps=10, random_start=True, seed=1)
    assert np.array_equal(d, d2)


def test_attacks_lower_accuracy_and_curve_is_consistent(trained):
    world, model, s = trained
    curve = attacks.robustness_curve(model, s.X, s.y, [0.05, 0.2, 0.6], 2)
    assert curve.clean_accuracy >= curve.accuracy[0] >= curve.accuracy[-1]
    dense = attacks.robust_accuracy(model, s.X, s.y, 0.6, 2, attack="dense", world=world)
    none = attacks.robust_accuracy(model, s.X, s.y, 0.6, 2, attack="none")
    assert none == curve.clean_accuracy
    assert curve.accuracy[-1] <= dense + 0.02  # PGD is at least as strong as the fixed direction


def test_dense_direction_has_exact_radius():
    world = SparseCoding(16, 2, dictionary="hadamard", seed=0)
    y = np.array([1.0, -1.0])
    d2 = attacks.dense_direction(world, y, 0.4, 2)
    dinf = attacks.dense_direction(world, y, 0.4, np.inf)
    np.testing.assert_allclose(np.linalg.norm(d2, axis=1), 0.4)
    np.testing.assert_allclose(np.abs(dinf).max(1), 0.4)
    assert np.all(d2[0] @ world.label_direction < 0) and np.all(d2[1] @ world.label_direction > 0)


def test_tau50_interpolation():
    assert attacks.tau50([0.1, 0.2, 0.4], [0.9, 0.7, 0.3]) == pytest.approx(0.3)
    assert attacks.tau50([0.1, 0.2], [0.9, 0.8]) == np.inf
    assert attacks.tau50([0.1, 0.2], [0.4, 0.1], clean_accuracy=0.6) == pytest.approx(0.05)
    assert attacks.tau50([0.1, 0.2], [0.4, 0.1], clean_accuracy=0.3) == 0.0
    with pytest.raises(ValueError, match="increasing"):
        attacks.tau50([0.2, 0.1], [0.9, 0.1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-0.1, norm=2), "eps"),
    (dict(eps=0.1, norm=3), "norm"),
    (dict(eps=0.1, norm="l7"), "norm"),
    (dict(eps=float("nan"), norm=2), "eps"),
])
def test_bad_attack_arguments(trained, kwargs, match):
    _, model, s = trained
    with pytest.raises(ValueError, match=match):
        attacks.fgm(model, s.X, s.y, **kwargs)
    with pytest.raises(ValueError, match=match):
        attacks.pgd(model, s.X, s.y, **kwargs)


def test_bad_inputs_to_attacks(trained):
    _, model, s = trained
    X = s.X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        attacks.fgm(model, X, s.y, 0.1, 2)
    with pytest.raises(ValueError, match="X must have shape"):
        attacks.fgm(model, s.X[:, :5], s.y, 0.1, 2)
    with pytest.raises(ValueError, match="y must"):
        attacks.fgm(model, s.X, np.zeros(len(s.y)), 0.1, 2)
    with pytest.raises(ValueError, match="world"):
        attacks.robust_accuracy(model, s.X, s.y, 0.1, 2, attack="dense")
    with pytest.raises(ValueError, match="attack"):
        attacks.robust_accuracy(model, s.X, s.y, 0.1, 2, attack="cw")
