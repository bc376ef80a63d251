"""Every member of the lower-bound families: adversarial training and bounds that hold for all.

* the exact adversarial logistic loss of a linear rule is solved to optimality: the
  same optimum as an independent convex solve (epigraph form, SLSQP) on a small problem;
* the separable polynomial trainer's inner maximisation is exact (its worst points give
  the closed-form worst margin) and adversarial training raises robust accuracy;
* theory.separable_robust_bound holds for random, clean-trained, oracle and
  adversarially trained separable polynomials (Hypothesis, binomial slack 1e-9);
* theory.linear_robust_bound(intercept=True) holds for adversarially trained linear rules;
* theory.ntk_robust_bound (dead-zone argument) holds exactly per sample for random and
  adversarially trained frozen-gate NTK heads, and its witnesses break the points.
"""

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab import theory
from theorylab import testing as tt
from theorylab.models import LinearClassifier, NTKClassifier, PolynomialClassifier
from theorylab.training import adversarial_kernel, adversarial_logistic, adversarial_separable
from theorylab.training.baselines import adversarial_logistic_objective
from theorylab.worlds import SparseCoding

pytestmark = pytest.mark.usefixtures("one_numba_thread")

ALPHA = 1e-9


def _independent_solve(X, y, eps, l2):
    # Epigraph form, no shared code: variables (w, t, b), t >= |w|, SLSQP.
    n, d = X.shape

    def obj(z):
        w, t, b = z[:d], z[d:2 * d], z[-1]
        m = y * (X @ w + b) - eps * t.sum()
        return np.mean(np.logaddexp(0.0, -m)) + 0.5 * l2 * w @ w

    cons = [{"type": "ineq", "fun": lambda z: z[d:2 * d] - z[:d]},
            {"type": "ineq", "fun": lambda z: z[d:2 * d] + z[:d]}]
    res = scipy.optimize.minimize(obj, np.zeros(2 * d + 1), constraints=cons, method="SLSQP",
                                  options={"ftol": 1e-14, "maxiter": 2000})
    return res.x[:d], res.x[-1], res.fun


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.2, 3.0])
def test_adversarial_logistic_reaches_the_independent_convex_optimum(eps):
    world = SparseCoding(6, 2, noise=0.3, seed=1)
    s = world.sample(80, 2)
    l2 = 1e-2
    model = LinearClassifier(6)
    h = adversarial_logistic(model, s.X, s.y, eps, l2=l2)
    w_ref, b_ref, f_ref = _independent_solve(s.X, s.y, eps, l2)
    f = adversarial_logistic_objective(model.w, model.b, s.X, s.y, eps, l2)
    assert f == pytest.approx(h.final["loss"], rel=1e-9, abs=1e-12)
    assert f <= f_ref + 1e-9  # never worse than the independent solve ...
    assert f >= f_ref - 1e-6  # ... and the same optimum (SLSQP stops at ~1e-8)
    np.testing.assert_allclose(model.w, w_ref, atol=2e-3)
    assert model.b == pytest.approx(b_ref, abs=2e-3)
    if eps == 3.0:  # far beyond every coordinate's correlation: the constant rule
        assert h.final["nnz"] == 0


def test_adversarial_logistic_is_the_exact_robust_loss_and_validates():
    world = SparseCoding(32, 3, noise=0.05, seed=0)
    s = world.sample(300, 1)
    model = LinearClassifier(32)
    adversarial_logistic(model, s.X, s.y, 0.02)
    # The objective is the mean logistic loss at each point's exact worst case.
    worst = s.X + model.worst_perturbation(s.y, 0.02, "inf")
    direct = np.mean(np.logaddexp(0.0, -s.y * model.decision_function(worst))) + \
        0.5e-4 * model.w @ model.w
    assert direct == pytest.approx(adversarial_logistic_objective(model.w, model.b, s.X, s.y,
                                                                   0.02, 1e-4), rel=1e-12)
    with pytest.raises(ValueError, match="norm"):
        adversarial_logistic(model, s.X, s.y, 0.02, norm=2)
    with pytest.raises(ValueError, match="eps"):
        adversarial_logistic(model, s.X, s.y, -1.0)
    with pytest.raises(ValueError, match="model"):
        adversarial_logistic(PolynomialClassifier.separable(32), s.X, s.y, 0.02)


def test_separable_worst_points_are_the_exact_worst_case_and_training_helps():
    world = SparseCoding(48, 3, noise=0.05, seed=3)
    s, test = world.sample(400, 4), world.sample(400, 5)
    model = PolynomialClassifier.separable(48, 3).fit(s.X, s.y)
    eps = 0.1
    T = model.worst_case_points(test.X, test.y, eps)
    assert np.all(np.abs(T - test.X) <= eps * (1 + 1e-12))
    np.testing.assert_allclose(test.y * model.decision_function(T),
                               model.worst_case_margin(test.X, test.y, eps, np.inf), atol=1e-10)
    before = np.mean(model.worst_case_margin(test.X, test.y, eps, np.inf) > 0)
    h = adversarial_separable(model, s.X, s.y, eps, max_iter=100)
    after = np.mean(model.worst_case_margin(test.X, test.y, eps, np.inf) > 0)
    assert after > before + 0.2 and h.final["robust_accuracy"] > 0.8
    # Same data, same bits.
    again = adversarial_separable(PolynomialClassifier.separable(48, 3).fit(s.X, s.y), s.X, s.y,
                                  eps, max_iter=100)
    assert again.final["loss"] == h.final["loss"]


@st.composite
def separable_members(draw, world, train):
    kind = draw(st.sampled_from(("random", "oracle", "clean", "adversarial", "soft")))
    d = world.d
    if kind == "oracle":
        return PolynomialClassifier.oracle(world, 3)
    if kind == "soft":
        return PolynomialClassifier.oracle(world, q={1: -0.5, 3: 1.5})
    if kind == "random":
        rng = np.random.default_rng(draw(tt.seeds(), label="C seed"))
        C = rng.standard_normal((2, d)) * draw(st.floats(1e-2, 1e2), label="scale")
        return PolynomialClassifier(d, degrees=(1, 3), C=C, b=draw(st.floats(-2, 2)))
    model = PolynomialClassifier.separable(d, 3).fit(train.X, train.y)
    if kind == "adversarial":
        adversarial_separable(model, train.X, train.y, draw(st.floats(0.01, 0.3)), max_iter=40)
    return model


@settings(max_examples=10, deadline=None)
@given(world=tt.worlds(min_d=16, max_d=128, codes=("pm1",), dictionaries=("identity",),
                       noise=st.sampled_from((0.0, 0.02))),
       data=st.data(), seed=tt.seeds())
def test_every_separable_polynomial_obeys_the_robustness_bound(world, data, seed):
    train = world.sample(200, seed)
    model = data.draw(separable_members(world, train), label="member")
    tie = theory.tie_probability(world.k, world.d)
    # Pick a radius where the bound says something (< 1), if the member has one in [0.01, 1].
    taus = np.geomspace(0.01, 1.0, 12)
    bounds = [theory.separable_robust_bound(model.C, model.degrees, world.k, t,
                                            sigma=world.noise, tie=tie) for t in taus]
    informative = [i for i, b in enumerate(bounds) if b < 0.95]
    i = data.draw(st.sampled_from(informative), label="tau index") if informative else -1
    n = 600
    s = world.sample(n, seed + 1)
    robust = model.worst_case_margin(s.X, s.y, taus[i], np.inf) > 0
    assert robust.sum() <= scipy.stats.binom.isf(ALPHA, n, bounds[i])


def test_separable_bound_matches_the_derived_oracle_formula_and_validates():
    d, k, tau = 4096, 4, 0.1
    w = np.ones(d)
    b = theory.separable_robust_bound(np.array([0 * w, w]), (1, 3), k, tau)
    assert b == pytest.approx(0.5 + math.sqrt(k) / (d * tau ** 3) + k / d, rel=1e-12)
    with pytest.raises(ValueError, match="degrees"):
        theory.separable_robust_bound(np.ones((2, 4)), (1, 2), 2, 0.1)
    with pytest.raises(ValueError, match="tau"):
        theory.separable_robust_bound(np.ones((2, 4)), (1, 3), 2, 0.0)


@settings(max_examples=10, deadline=None)
@given(world=tt.worlds(min_d=16, max_d=128, codes=("pm1",), dictionaries=("identity",),
                       noise=st.sampled_from((0.0, 0.05))),
       seed=tt.seeds(), target=st.floats(0.05, 0.4))
def test_adversarially_trained_linear_rules_obey_the_bound_with_intercept(world, seed, target):
    p0 = theory.tie_probability(world.k, world.d)
    # tau where the Markov part (tie-corrected) equals target: never vacuous.
    tau = math.sqrt((world.k + world.noise ** 2) / (world.d ** 2 * target * (1 - p0)))
    train = world.sample(300, seed)
    model = LinearClassifier(world.d)
    adversarial_logistic(model, train.X, train.y, tau)
    rho = np.abs(model.w).sum() ** 2 / max(model.w @ model.w, 1e-300)
    n = 600
    s = world.sample(n, seed + 1)
    robust = model.worst_case_margin(s.X, s.y, tau, np.inf) > 0
    if rho > 0 and np.any(model.w):
        bound = theory.linear_robust_bound(world.k, world.d, tau, sigma=world.noise, norm="inf",
                                           density=min(max(rho, 1.0), world.d), intercept=True)
        bound = min(1.0, 0.5 + (bound - 0.5) / (1 - p0))
    else:
        bound = 0.5  # the constant rule keeps exactly the class sign(b)
    assert robust.sum() <= scipy.stats.binom.isf(ALPHA, n, bound)


@settings(max_examples=6, deadline=None)
@given(d=st.integers(8, 24), m=st.integers(4, 16), seed=tt.seeds(),
       tau=st.floats(0.05, 0.6), kind=st.sampled_from(("random", "clean", "adversarial")))
def test_frozen_gate_ntk_dead_zone_bound_holds_for_every_head(d, m, seed, tau, kind):
    world = SparseCoding(d, 2, noise=0.05, seed=seed)
    train, s = world.sample(60, seed + 1), world.sample(20, seed + 2)
    ntk = NTKClassifier.empirical(d, m, seed=seed)
    if kind == "random":
        rng = np.random.default_rng(seed)
        ntk.V, ntk.b = rng.standard_normal((m, d)), float(rng.standard_normal())
    else:
        ntk.fit(train.X, train.y)
        if kind == "adversarial":
            adversarial_kernel(ntk, train.X, train.y, tau, epochs=1, steps=3, inner_iter=5,
                               seed=seed)
    reach, delta = theory.ntk_dead_zone_reach(s.X, ntk.W0, ntk.b0, tau)
    assert np.all(np.abs(delta) <= tau * (1 + 1e-12))
    # Inside the dead zone every gate is closed, so f = b whatever the head.
    at = ntk.decision_function(s.X[reach] + delta[reach])
    np.testing.assert_allclose(at, ntk.b, atol=1e-12)
    assert not ntk.features_gates(s.X[reach] + delta[reach]).any()
    # Exactly, per sample: robust-correct points are in the class sign(b) or miss Z; the
    # certified side of the evaluation (sound) can therefore never exceed that count.
    from theorylab.verify import certified_margin
    cert = certified_margin(ntk, s.X, s.y, tau, np.inf) > 0
    allowed = (s.y * ntk.b > 0) | ~reach
    assert np.all(allowed[cert])
    assert cert.mean() <= (s.y * ntk.b > 0).mean() + (1 - reach.mean()) + 1e-12
    assert theory.ntk_robust_bound(reach.mean()) == min(1.0, 1.5 - reach.mean())
