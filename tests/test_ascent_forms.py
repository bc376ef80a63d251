"""The forms and objectives of the training-time ascent, and the trainer's options for them.

Known cases use a CNN whose every pre-activation stays above rho inside the ball, so
sigma' = 1 and F_k(x) = <w_k, x> - (1 - 1/q) rho: the loss gradient of a point of class
0 is (1 - p_0) (w_1 - w_0) (two classes) and the margin-ascent direction is w_1 - w_0.
"""

import math

import numpy as np
import pytest

from theorylab import attacks
from theorylab.attacks import ASCENT_FORMS, ASCENT_OBJECTIVES, default_ascent_step
from theorylab.models import SmoothedReLUCNN
from theorylab.training import train
from theorylab.worlds import RobustNonRobustPatches

NORMS = (np.inf, 2.0)


def _norms(D, p):
    return np.linalg.norm(D.reshape(D.shape[0], -1), ord=p, axis=1)


@pytest.fixture(scope="module")
def random_case():
    world = RobustNonRobustPatches(3, 4, 16, s=2, alpha=1.0, beta=1.0, n_nonrobust=2,
                                   noise=0.3, seed=0)
    model = SmoothedReLUCNN(3, 4, 16, init_scale=0.3, seed=1)
    s = world.sample(12, 2)
    return model, s.X, s.y


@pytest.fixture(scope="module")
def linear_case():
    # Two classes, one filter each, one patch of d = 2; pre-activations >= 1.4 > rho = 0.5
    # for every perturbation of size <= 0.1.
    W = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    model = SmoothedReLUCNN(2, 1, 2, q=2, rho=0.5, W=W)
    X = np.array([[[2.0, 1.5]], [[1.6, 1.7]]])
    y = np.array([0, 1])
    F = X[:, 0, :] - 0.25                               # (N, K) scores in the linear piece
    p = np.exp(F) / np.exp(F).sum(axis=1, keepdims=True)
    away = np.array([[-1.0, 1.0], [1.0, -1.0]])         # w_other - w_y per sample
    return model, X, y, p[np.arange(2), y], away


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("objective", ASCENT_OBJECTIVES)
@pytest.mark.parametrize("form", ASCENT_FORMS)
def test_every_form_stays_in_the_ball_and_raises_the_loss(random_case, form, objective, p):
    model, X, y = random_case
    eps = 0.1
    for steps in (1, 3):
        D = attacks.ascent(model, X, y, eps, p, steps=steps, form=form, objective=objective,
                           step_size=20.0 if form == "gradient" else None)
        assert D.shape == X.shape and D.dtype == X.dtype
        assert np.all(_norms(D, p) <= eps * (1 + 1e-12))
        assert np.isfinite(D).all() and np.any(D != 0)
    assert model.loss(X + D, y) > model.loss(X, y)


def test_steepest_is_fgm_and_sign_or_l2_is_steepest_in_its_own_norm(random_case):
    model, X, y = random_case
    for p, own in ((np.inf, "sign"), (2.0, "l2")):
        fgm = attacks.fgm(model, X, y, 0.1, p)
        steep = attacks.ascent(model, X, y, 0.1, p)
        np.testing.assert_allclose(steep, fgm, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(attacks.ascent(model, X, y, 0.1, p, form=own), steep,
                                   rtol=1e-12, atol=1e-15)


def test_default_steps_reach_the_sphere_along_a_dense_gradient():
    n = 64
    assert default_ascent_step(0.1, np.inf, "steepest", 1, n) == 0.1
    assert default_ascent_step(0.1, np.inf, "sign", 1, n) == 0.1
    assert default_ascent_step(0.1, np.inf, "l2", 1, n) == pytest.approx(0.8)   # 0.1 sqrt(64)
    assert default_ascent_step(0.1, 2.0, "sign", 1, n) == pytest.approx(0.0125)  # 0.1 / 8
    assert default_ascent_step(0.1, 2.0, "l2", 3, n) == pytest.approx(2.5 * 0.1 / 3)
    assert default_ascent_step(0.1, 2.0, "gradient", 1, n) is None


def test_known_case_sign_and_l2_steps(linear_case):
    model, X, y, _, away = linear_case
    eps = 0.1
    sign = attacks.ascent(model, X, y, eps, np.inf, form="sign")
    np.testing.assert_array_equal(sign[:, 0, :], eps * away)
    # The l2 step of default size eps sqrt(2) along (-1, 1) / sqrt(2) lands on a vertex.
    l2_in_linf = attacks.ascent(model, X, y, eps, np.inf, form="l2")
    np.testing.assert_allclose(l2_in_linf[:, 0, :], eps * away, rtol=1e-12)
    l2 = attacks.ascent(model, X, y, eps, 2.0, form="l2")
    np.testing.assert_allclose(l2[:, 0, :], eps * away / math.sqrt(2), rtol=1e-12)
    # A sign step in l2 has the default size eps / sqrt(2): the same point.
    np.testing.assert_allclose(attacks.ascent(model, X, y, eps, 2.0, form="sign"), l2,
                               rtol=1e-12)


def test_known_case_unnormalised_step_on_loss_and_margin(linear_case):
    model, X, y, p_y, away = linear_case
    eps, gamma = 0.1, 0.05
    # Small gamma: gamma * gradient, inside the ball, so not projected.  The loss
    # gradient carries the softmax residual 1 - p_y; the margin's does not.
    loss = attacks.ascent(model, X, y, eps, 2.0, form="gradient", step_size=gamma)
    np.testing.assert_allclose(loss[:, 0, :], gamma * (1 - p_y)[:, None] * away, rtol=1e-12)
    marg = attacks.ascent(model, X, y, eps, 2.0, form="gradient", step_size=gamma,
                          objective="margin")
    np.testing.assert_allclose(marg[:, 0, :], gamma * away, rtol=1e-12)
    # Large gamma in linf: the projection clips every coordinate to the sign step.
    big = attacks.ascent(model, X, y, eps, np.inf, form="gradient", step_size=1e3)
    np.testing.assert_array_equal(big[:, 0, :], eps * away)
    # In l2 the projection rescales onto the sphere: the normalised step.
    big2 = attacks.ascent(model, X, y, eps, 2.0, form="gradient", step_size=1e3)
    np.testing.assert_allclose(big2, attacks.ascent(model, X, y, eps, 2.0), rtol=1e-12)


def test_margin_objective_ascends_the_negative_margin(random_case):
    model, X, y = random_case
    _, G = model.margin_and_input_gradient(X, y)
    D = attacks.ascent(model, X, y, 0.1, np.inf, objective="margin")
    np.testing.assert_array_equal(D, 0.1 * np.sign(-G))
    assert np.all(model.margins(X + D, y) <= model.margins(X, y))


def test_zero_gradient_gives_no_move_in_every_form():
    # Pre-activations all negative: sigma' = 0, the input gradient is exactly zero.
    W = -np.ones((2, 1, 3))
    model = SmoothedReLUCNN(2, 1, 3, W=W)
    X = np.ones((2, 2, 3))
    y = np.array([0, 1])
    for form in ASCENT_FORMS:
        for objective in ASCENT_OBJECTIVES:
            D = attacks.ascent(model, X, y, 0.1, np.inf, form=form, objective=objective,
                               step_size=1.0 if form == "gradient" else None)
            np.testing.assert_array_equal(D, 0.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(form="newton"), "form must be one of"),
    (dict(objective="hinge"), "objective must be one of"),
    (dict(form="gradient"), "step_size .gamma. must be given"),
    (dict(form="gradient", step_size=0.0), "step_size"),
    (dict(form="sign", step_size=-1.0), "step_size"),
    (dict(steps=0), "steps"),
])
def test_bad_ascent_options_are_refused_before_work(random_case, kwargs, match):
    model, X, y = random_case
    with pytest.raises(ValueError, match=match):
        attacks.ascent(model, X, y, 0.1, np.inf, **kwargs)
    with pytest.raises(ValueError, match=match):
        attacks.get("ascent").check_options(kwargs)


@pytest.fixture(scope="module")
def small_world():
    return RobustNonRobustPatches(3, 4, 16, s=2, alpha=1.0, beta=1.0, n_nonrobust=2,
                                  noise=0.3, seed=0)


def _train(world, **kw):
    model = SmoothedReLUCNN(3, 4, 16, init_scale=0.05, seed=3)
    hist = train(model, world, steps=12, lr=0.5, n_train=32, eval_size=16, log_every=4,
                 adversarial="fgm", eps=0.05, seed=5, **kw)
    return model, hist


def test_trainer_passes_the_form_and_the_monitor_leaves_training_unchanged(small_world):
    base, h0 = _train(small_world)
    sign, _ = _train(small_world, attack_options={"form": "sign"})
    np.testing.assert_array_equal(sign.W, base.W)          # sign is linf's steepest step
    watched, h1 = _train(small_world, monitor_steps=5)
    np.testing.assert_array_equal(watched.W, base.W)       # the monitor has its own stream
    assert all(math.isnan(r["train_pgd_loss"]) for r in h0.records)
    for r in h1.records:
        assert 0.0 <= r["train_pgd_accuracy"] <= 1.0 and r["train_pgd_loss"] >= 0
    margin, h2 = _train(small_world, attack_options={"objective": "margin"})
    assert not np.array_equal(margin.W, base.W)
    assert h2.config["attack_options"]["objective"] == "margin"


@pytest.mark.parametrize("kw, match", [
    (dict(attack_options={"steps": 2}), "set by adversarial"),
    (dict(attack_options={"form": "gradient"}), "step_size"),
    (dict(attack_options=["sign"]), "attack_options must be a dict"),
    (dict(attack_options={"form": "x"}), "form must be one of"),
    (dict(monitor_steps=0), "monitor_steps"),
])
def test_trainer_refuses_bad_attack_options(small_world, kw, match):
    with pytest.raises(ValueError, match=match):
        _train(small_world, **kw)


def test_attack_options_need_an_attack(small_world):
    model = SmoothedReLUCNN(3, 4, 16, seed=3)
    with pytest.raises(ValueError, match="needs an adversarial attack"):
        train(model, small_world, steps=2, n_train=8, attack_options={"form": "sign"})
