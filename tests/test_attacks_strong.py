"""APGD (margin loss), the Square-style random search and FMN: validity, strength, masking."""

import importlib

import numpy as np
import pytest

from theorylab import attacks
from theorylab.models import LinearClassifier, SmoothedReLUCNN, TwoLayerReLU
from theorylab.models._base import BinaryModel
from theorylab.worlds import RobustNonRobustPatches

NORMS = [2.0, np.inf]
DUAL = {2.0: 2, np.inf: 1}
# The modules (theorylab.attacks.apgd is the function: the package exports its __all__).
apgd_module = importlib.import_module("theorylab.attacks.apgd")
square_module = importlib.import_module("theorylab.attacks.square")
STRONG = {  # small budgets: these tests check validity, not strength
    "apgd": lambda m, X, y, e, p, seed=0: attacks.apgd(m, X, y, e, p, iters=20, seed=seed),
    "square": lambda m, X, y, e, p, seed=0: attacks.square(m, X, y, e, p, queries=200, seed=seed),
    "fmn": lambda m, X, y, e, p, seed=0: attacks.fmn(m, X, y, e, p, steps=30, seed=seed),
}


def norms(D, p):
    return np.linalg.norm(D.reshape(D.shape[0], -1), ord=p, axis=1)


def float32_copy(model):
    return TwoLayerReLU(model.d, model.m, threshold=model.threshold, c=model.c, W=model.W,
                        dtype=np.float32)


# -- validity: the ball, shape, dtype, determinism -------------------------------------
@pytest.mark.parametrize("name", sorted(STRONG))
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_witnesses_lie_in_the_ball_and_are_reproducible(trained, name, norm, dtype):
    _, model, s = trained
    if dtype == np.float32:
        model = float32_copy(model)
    X, y = s.X[:120].astype(dtype), s.y[:120]
    eps = {2.0: 0.4, np.inf: 0.07}[norm]
    d = STRONG[name](model, X, y, eps, norm, seed=3)
    assert d.shape == X.shape and d.dtype == X.dtype
    assert np.all(norms(d, norm) <= eps * (1 + 1e-12)), norms(d, norm).max() / eps
    assert 0 < np.mean(model.margins(X + d, y) <= 0) < 1  # it does something, not everything
    assert np.array_equal(d, STRONG[name](model, X, y, eps, norm, seed=3))  # same seed, same bits
    if name != "fmn":  # fmn is deterministic; the others must actually use the seed
        assert not np.array_equal(d, STRONG[name](model, X, y, eps, norm, seed=4))


@pytest.mark.parametrize("name", sorted(STRONG))
def test_zero_radius_and_misclassified_points_get_zero(trained, name):
    _, model, s = trained
    X, y = s.X[:30], s.y[:30].copy()
    assert np.all(STRONG[name](model, X, y, 0.0, 2.0) == 0)
    y[:5] *= -1  # misclassified already: nothing to do
    d = STRONG[name](model, X, y, 0.3, 2.0)
    assert np.all(d[:5] == 0)
    assert np.all(STRONG[name](model, X[:5], y[:5], 0.3, np.inf) == 0)  # nothing to attack


def test_fmn_radius_zero_where_misclassified(trained):
    _, model, s = trained
    y = -s.y[:6]
    delta, radius = attacks.fmn_radii(model, s.X[:6], y, 2)
    assert np.all(radius == 0) and np.all(delta == 0)


def test_registry_entries_and_robust_accuracy(trained):
    _, model, s = trained
    assert attacks.get("apgd").kind == "gradient"
    assert attacks.get("square").kind == "gradient-free"
    assert attacks.get("fmn").kind == "min-norm" and attacks.get("fmn").radii is not None
    for name in ("apgd", "square", "fmn"):
        assert attacks.get(name).norms == {2.0, np.inf}
        with pytest.raises(ValueError, match="supports norms"):
            attacks.robust_accuracy(model, s.X[:10], s.y[:10], 0.3, 1, attack=name)
    # The registered runs are the public functions on validated arrays.
    got = attacks.robust_accuracy(model, s.X[:60], s.y[:60], 0.3, 2, attack="square",
                                  queries=50, seed=2)
    d = attacks.square(model, s.X[:60], s.y[:60], 0.3, 2, queries=50, seed=2)
    assert got == model.accuracy(s.X[:60] + d, s.y[:60])
    radii = attacks.get("fmn").radii(model, s.X[:20], s.y[:20], 2.0, steps=10)
    np.testing.assert_array_equal(radii[1], attacks.fmn_radii(model, s.X[:20], s.y[:20], 2,
                                                              steps=10)[1])


@pytest.mark.parametrize("name, options, bad", [
    ("apgd", {"iters": 0}, "iters"), ("apgd", {"restarts": 1.5}, "restarts"),
    ("apgd", {"random_start": "no"}, "random_start"), ("apgd", {"rho": 0.0}, "rho"),
    ("apgd", {"momentum": 1.5}, "momentum"), ("apgd", {"seed": -1}, "seed"),
    ("square", {"queries": -1}, "queries"), ("square", {"p_init": 0.0}, "p_init"),
    ("square", {"queries": 10.0}, "queries"), ("fmn", {"steps": 0}, "steps"),
    ("fmn", {"gamma_init": 1.0}, "gamma_init"), ("fmn", {"alpha_final": 2.0}, "alpha_final"),
])
def test_bad_options_name_the_option(trained, name, options, bad):
    _, model, s = trained
    with pytest.raises(ValueError, match=bad):
        attacks.get(name).check_options(options)
    with pytest.raises(ValueError, match=bad):
        getattr(attacks, name)(model, s.X[:5], s.y[:5], 0.1, 2, **options)
    with pytest.raises(ValueError, match="norm"):
        getattr(attacks, name)(model, s.X[:5], s.y[:5], 0.1, 1)


class _Linear(LinearClassifier):
    """A linear model whose margin gradient is replaced (zero or NaN)."""

    def __init__(self, w, b, fill):
        super().__init__(len(w), w=w, b=b)
        self.fill = fill

    def _margin_grad(self, X, y):
        return self._margin(X, y), np.full_like(X, self.fill)


@pytest.mark.parametrize("name", ["apgd", "fmn"])
def test_non_finite_gradients_raise(name):
    model = _Linear(np.ones(3), 0.0, np.nan)
    X, y = np.ones((4, 3)), np.ones(4)
    with pytest.raises(ValueError, match="gradient contains NaN or infinite values"):
        STRONG[name](model, X, y, 0.1, 2.0)


# -- APGD ------------------------------------------------------------------------------
@pytest.mark.parametrize("norm, radii", [(2.0, (0.3, 0.5)), (np.inf, (0.05, 0.08))])
def test_apgd_beats_or_equals_pgd20(trained, norm, radii):
    _, model, s = trained
    for eps in radii:
        pgd_acc = model.accuracy(s.X + attacks.pgd(model, s.X, s.y, eps, norm, steps=20), s.y)
        apgd_acc = model.accuracy(s.X + attacks.apgd(model, s.X, s.y, eps, norm), s.y)
        assert 0.2 <= 1 - pgd_acc <= 0.8, f"eps={eps}: PGD breaks {1 - pgd_acc:.3f} of the points"
        assert apgd_acc <= pgd_acc, f"eps={eps}: robust accuracy APGD {apgd_acc} > PGD {pgd_acc}"


def test_apgd_checkpoints_follow_the_paper():
    # AutoAttack's schedule at 100 iterations: 22, then gaps 19, 16, ..., down to 6.
    assert apgd_module.checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_module.checkpoints(1) == [1]


class _Bowl(BinaryModel):
    """margin(x) = 1 + ||x - t||^2 / 2 (never broken; minimum inside the ball), spied on."""

    def __init__(self, t):
        self.t, self.d, self.dtype, self.queries = np.asarray(t, float), len(t), np.float64, []

    def _scores(self, X):
        return 1 + 0.5 * ((X - self.t) ** 2).sum(axis=1)

    def _score_grad(self, X):
        self.queries.append(X.copy())
        return self._scores(X), X - self.t


def test_apgd_update_rule_and_step_halving():
    t = np.array([0.3, -0.2, 0.05, 0.7])
    bowl = _Bowl(t)
    x0 = np.zeros((1, 4))
    d = attacks.apgd(bowl, x0, np.ones(1), 1.0, np.inf, iters=100, random_start=False)
    assert len(bowl.queries) == 101
    # Step 2 eps without momentum, then x2 = P(x1 + 0.75 (z - x1) + 0.25 (x1 - x0)).
    x1 = np.sign(t)[None]
    z = np.clip(x1 + 2 * np.sign(t - x1), -1, 1)
    x2 = np.clip(x1 + 0.75 * (z - x1) + 0.25 * (x1 - x0), -1, 1)
    np.testing.assert_array_equal(bowl.queries[1], x1)
    np.testing.assert_array_equal(bowl.queries[2], x2)
    # Sign steps of a fixed size oscillate around t; the halvings bring them to it.
    assert np.abs(d - t).max() < 0.01
    bowl2 = _Bowl(t)
    d2 = attacks.apgd(bowl2, x0, np.ones(1), 1.0, 2, iters=100, random_start=False)
    assert np.abs(d2 - t).max() < 0.01


def test_apgd_keeps_the_best_restart_per_point(monkeypatch):
    # With a zero gradient the iterates stay at their starts, so the result is, per point,
    # the start with the lowest margin: restart A wins on even points, B on odd ones.  A
    # per-batch choice (or an ignored random start) returns something else.
    rng = np.random.default_rng(0)
    w = rng.standard_normal(6)
    model = _Linear(w, 0.0, 0.0)
    X = rng.standard_normal((10, 6))
    y = np.sign(X @ w)
    eps = 1e-3
    assert np.all(y * (X @ w) > eps * np.abs(w).sum())  # no point breaks: all restarts run
    down = -eps * y[:, None] * np.sign(w)[None, :]  # lowers the margin by eps ||w||_1
    even = (np.arange(10) % 2 == 0)[:, None]
    A = np.where(even, down, 0.2 * down)
    B = np.where(even, 0.5 * down, down)
    starts = []
    monkeypatch.setattr(apgd_module, "sample_ball",
                        lambda shape, eps, p, rng, dtype: starts.pop(0).copy())
    result = {}
    for key, queue in (("A", [A]), ("B", [B]), ("AB", [A, B])):
        starts[:] = queue
        d = attacks.apgd(model, X, y, eps, np.inf, iters=5, restarts=len(queue))
        result[key] = model.margins(X + d, y)
        assert not starts  # every start was used
    clean = model.margins(X, y)
    assert np.all(result["AB"] <= np.minimum(result["A"], result["B"]))
    np.testing.assert_array_equal(result["AB"], np.where(even[:, 0], result["A"], result["B"]))
    assert np.all(result["AB"] < clean)  # the starts were applied
    # The premise: each restart wins somewhere.
    assert (result["A"] < result["B"]).any() and (result["B"] < result["A"]).any()


# -- gradient masking: a planted zero-gradient point -------------------------------------
C, EPS = 0.5, 0.3


def planted(norm, d=8):
    """A correct point with an exactly zero input gradient, broken at a vertex / on the sphere.

    f(x) = sum_i h(<w_i, x>), h(u) = relu(u - c) - relu(-u - c).  A point whose neurons
    are all inactive has f = 0, a tie, hence an error; so the correct point here has
    three active neurons whose gradients cancel: w = A e0, A e0, -2A e0 at x = e0 give
    f = -c and grad f = 0 throughout the ball.  With y = -1 the margin is c.  A fourth
    neuron w4 (inactive at x) adds h(<w4, delta>) and breaks the point where
    <w4, delta> >= 2c: only at the all-plus vertex of coordinates 1..4 (linf), or with
    delta_1 >= 0.8 eps on the sphere (l2); nowhere near x is the gradient non-zero.
    """
    W = np.zeros((4, d))
    W[:3, 0] = 10.0, 10.0, -20.0
    a = 2.5 * C / EPS
    if norm == np.inf:
        W[3, 1:5] = a / 4
    else:
        W[3, 1] = a
    X = np.zeros((16, d))
    X[:, 0] = 1.0
    return TwoLayerReLU(d, 4, threshold="fixed", c=C, W=W), X, -np.ones(16)


@pytest.mark.parametrize("norm", NORMS)
def test_random_search_breaks_a_point_gradient_attacks_miss(norm):
    net, X, y = planted(norm)
    m, G = net.margin_and_input_gradient(X, y)
    assert np.all(m == C) and np.all(G == 0)
    # The point is breakable inside the ball: the witness that the theory gives.
    witness = np.zeros_like(X)
    if norm == np.inf:
        witness[:, 1:5] = EPS
    else:
        witness[:, 1] = EPS
    assert np.all(net.margins(X + witness, y) <= 0)
    # Gradient attacks started at x stall: the gradient is exactly zero there.
    for d in (attacks.pgd(net, X, y, EPS, norm, steps=20),
              attacks.apgd(net, X, y, EPS, norm, random_start=False)):
        assert np.all(d == 0) and np.all(net.margins(X + d, y) > 0)
    # Random starts sometimes land where the gradient is alive, not always.
    d_apgd = attacks.apgd(net, X, y, EPS, norm, seed=0)
    assert np.any(net.margins(X + d_apgd, y) > 0)
    d = attacks.square(net, X, y, EPS, norm, queries=1000, seed=0)
    assert np.all(norms(d, norm) <= EPS * (1 + 1e-12))
    assert np.all(net.margins(X + d, y) <= 0)  # every copy broken, re-checked


def test_square_schedule_halves_at_the_milestones():
    f = square_module.fraction_schedule
    got = [f(0.1, q, 1000) for q in (0, 1, 2, 5, 6, 20, 21, 999)]
    assert got == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.1 / 2 ** 9]


def test_square_linf_stays_on_vertices(trained):
    _, model, s = trained
    d = attacks.square(model, s.X[:50], s.y[:50], 0.05, np.inf, queries=100)
    moved = np.any(d != 0, axis=1)
    assert moved.any() and np.all(np.abs(d[moved]) == 0.05)
    d2 = attacks.square(model, s.X[:50], s.y[:50], 0.3, 2, queries=100)
    moved = np.any(d2 != 0, axis=1)
    np.testing.assert_allclose(norms(d2[moved], 2), 0.3, rtol=1e-12)  # on the sphere


# -- FMN -------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", NORMS)
def test_fmn_finds_the_exact_radius_of_a_linear_model(norm):
    rng = np.random.default_rng(1)
    w, b = rng.standard_normal(16), float(rng.standard_normal())
    model = LinearClassifier(16, w=w, b=b)
    X = rng.standard_normal((200, 16))
    y = np.where(rng.random(200) < 0.5, -1.0, 1.0)
    margin = y * (X @ w + b)
    exact = np.maximum(margin, 0) / np.linalg.norm(w, ord=DUAL[norm])
    delta, radius = attacks.fmn_radii(model, X, y, norm)
    wrong = margin <= 0
    assert wrong.any() and np.all(radius[wrong] == 0) and np.all(delta[wrong] == 0)
    ok = ~wrong
    assert np.all(radius[ok] >= exact[ok] * (1 - 1e-9))  # never below the exact minimum
    within = radius[ok] <= 1.02 * exact[ok]
    assert within.all() if norm == 2.0 else within.mean() >= 0.9, within.mean()
    assert np.all(model.margins(X + delta, y) <= 0)
    np.testing.assert_allclose(norms(delta, norm), radius, rtol=1e-12)


@pytest.mark.parametrize("norm", NORMS)
def test_fmn_radii_on_the_network_are_witnessed_and_bounded(trained, norm):
    _, model, s = trained
    delta, radius = attacks.fmn_radii(model, s.X, s.y, norm, steps=100)
    found = np.isfinite(radius)
    assert found.mean() > 0.95
    assert np.all(delta[~found] == 0)
    # Every finite radius has its witness: margin <= 0 at exactly that norm.
    assert np.all(model.margins(s.X + delta, s.y)[found] <= 0)
    np.testing.assert_array_equal(norms(delta, norm)[found], radius[found])
    # Certified lower bound: h is 1-Lipschitz, so |f(x + d) - f(x)| <= ||d||_p sum ||w_i||_q.
    lip = np.linalg.norm(model.W, ord=DUAL[norm], axis=1).sum()
    margin = model.margins(s.X, s.y)
    assert np.all(radius >= np.maximum(margin, 0) / lip)
    # The fixed-eps attack breaks exactly the points FMN's radius puts inside eps (or more).
    eps = float(np.median(radius))
    d = attacks.fmn(model, s.X, s.y, eps, norm, steps=100)
    broken = model.margins(s.X + d, s.y) <= 0
    assert np.all(broken[radius <= eps])
    assert np.all(norms(d, norm) <= eps)


# -- K classes -------------------------------------------------------------------------
@pytest.mark.parametrize("norm, eps", [(2.0, 1.2), (np.inf, 0.2)])
def test_cnn_runs_through_all_three(norm, eps):
    world = RobustNonRobustPatches(3, 4, 16, s=2, alpha=1, beta=1, n_nonrobust=2, noise=0.1,
                                   seed=0)
    W = np.zeros((3, 2, 16))
    W[:, 0], W[:, 1] = 2 * world.U, world.V
    model = SmoothedReLUCNN(3, 2, 16, W=W)
    S = world.sample(40, 1)
    assert model.accuracy(S.X, S.y) == 1.0
    for name, attack in STRONG.items():
        d = attack(model, S.X, S.y, eps, norm)
        assert d.shape == S.X.shape and d.dtype == S.X.dtype
        assert np.all(norms(d, norm) <= eps * (1 + 1e-12)), name
        assert model.accuracy(S.X + d, S.y) < 1.0, name
    delta, radius = attacks.fmn_radii(model, S.X, S.y, norm, steps=30)
    found = np.isfinite(radius)
    assert found.any() and np.all(model.margins(S.X + delta, S.y)[found] <= 0)
