"""The one robustness evaluation: the sandwich certified <= exact <= attack, point by point."""

import numpy as np
import pytest

from theorylab import attacks, verify
from theorylab.evaluate import BROKEN, CERTIFIED, UNRESOLVED, Budget, SoundnessError, robustness
from theorylab.models import LinearClassifier, NTKClassifier, SmoothedReLUCNN, TwoLayerReLU
from theorylab.training import ThresholdSchedule, train
from theorylab.worlds import RobustNonRobustPatches, SparseCoding

SMALL = Budget(pgd_steps=10, apgd_iters=30, square_queries=200, fmn_steps=40, crown_iters=10,
               time_limit=5.0, node_limit=400)


@pytest.fixture(scope="module")
def trained():
    # A clean and an FGM-trained threshold network on a small sparse-coding world.
    world = SparseCoding(24, 3, seed=3)
    net = TwoLayerReLU.for_world(world, seed=1)
    train(net, world, steps=300, lr=0.5, batch_size=256, schedule=ThresholdSchedule(1.0, 0.5, 150),
          seed=2)
    adv = net.copy()
    train(adv, world, steps=150, lr=0.5, batch_size=256, adversarial="fgm", eps=0.08,
          norm="inf", seed=4)
    test = world.sample(120, 9)
    return world, net, adv, test


def _random_net(seed, d=6, m=10):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, d))
    net = TwoLayerReLU(d, m, threshold="fixed", c=0.3, W=W)
    X = rng.standard_normal((40, d)) * 0.6
    y = np.where(rng.random(40) < 0.5, -1.0, 1.0)
    return net, X, y


@pytest.mark.parametrize("which, norm, eps", [
    ("random", "inf", 0.05), ("random", "inf", 0.15), ("random", 2, 0.2), ("random", 2, 0.5),
    ("clean", "inf", 0.03), ("clean", "inf", 0.08), ("clean", 2, 0.2),
    ("adv", "inf", 0.04), ("adv", "inf", 0.08), ("adv", 2, 0.3)])
def test_certified_below_exact_below_every_witness(trained, which, norm, eps):
    world, net, adv, test = trained
    if which == "random":
        model, X, y = _random_net(7)
        if norm == 2:
            # l2 branch and bound visits up to 2^m regions per point (~1.5 s each at
            # eps 0.5): half the points keep the test to seconds.
            X, y = X[:20], y[:20]
    else:
        model, X, y = (net if which == "clean" else adv), test.X[:25], test.y[:25]
    bound = verify.certified_margin(model, X, y, eps, norm)
    ex = verify.exact_margin(model, X, y, eps, norm, time_limit=5.0, node_limit=300)
    solved = ex.status == "optimal"  # the gap closed: lower is the minimum
    tol = 1e-7
    # Both are lower bounds; where the solver closed the gap its lower bound is the minimum.
    assert np.all(bound[solved] <= ex.lower[solved] + tol), (bound - ex.lower)[solved].max()
    assert np.all(bound[ex.has_witness] <= ex.upper[ex.has_witness] + tol)
    assert np.all(ex.lower <= ex.upper + tol)
    assert (ex.status != "unresolved").mean() >= 0.9  # small problems: the sign is settled
    for name in ("pgd", "apgd", "fgm", "square", "fmn"):
        delta = attacks.get(name).run(model, *model.check_Xy(X, y), eps, 2.0 if norm == 2
                                      else np.inf, seed=0, **SMALL.options(name))
        m, inside = verify.recheck(model, X, y, delta, eps, 2.0 if norm == 2 else np.inf)
        assert inside.all()
        # No attack goes below the exact minimum, nor below the certificate.
        assert np.all(m[solved] >= ex.lower[solved] - tol), (name, (ex.lower - m).max())
        assert np.all(m >= bound - tol), name


@pytest.mark.parametrize("norm", ["inf", 2])
def test_planted_counterexamples_are_never_certified(norm):
    rng = np.random.default_rng(0)
    d, m = 8, 12
    for trial in range(20):
        W = rng.standard_normal((m, d))
        net = TwoLayerReLU(d, m, threshold="fixed", c=0.2, W=W)
        x = rng.standard_normal(d)
        f = net.decision_function(x[None])[0]
        if f == 0:
            continue
        y = np.sign(f)
        # A known breaking delta: move towards -y along the score gradient until the sign flips.
        g = net.margin_and_input_gradient(x[None], np.array([y]))[1][0]
        direction = -np.sign(g) if norm == "inf" else -g / max(np.linalg.norm(g), 1e-12)
        for t in np.geomspace(1e-3, 20, 200):
            if y * net.decision_function((x + t * direction)[None])[0] <= 0:
                break
        else:
            continue
        eps = t * (1.0 if norm == "inf" else 1.0) * 1.01
        X, yy = x[None], np.array([y])
        assert verify.certified_margin(net, X, yy, eps, norm)[0] <= 0
        res = robustness(net, X, yy, [eps], norm, budget=SMALL, exact=True)
        assert res.verdict[0, 0] == BROKEN


def test_linear_model_radii_agree_with_the_closed_form():
    rng = np.random.default_rng(1)
    d = 20
    lin = LinearClassifier(d, w=rng.standard_normal(d), b=0.3)
    X = rng.standard_normal((60, d))
    y = np.sign(lin.decision_function(X))
    for norm, q in (("inf", 1), (2, 2)):
        closed = np.abs(X @ lin.w + lin.b) / np.linalg.norm(lin.w, ord=q)
        grid = np.linspace(0.02, 1.0, 50) * closed.max() * 0.9973  # no radius on the grid
        res = robustness(lin, X, y, grid, norm, budget=SMALL)
        # The certificate is the exact worst case: nothing unresolved, sides equal.
        assert res.unresolved.sum() == 0
        np.testing.assert_array_equal(res.attack_accuracy, res.certified_accuracy)
        # Certified radius: the largest grid radius below the closed-form radius.
        want = np.array([grid[grid < r].max() if (grid < r).any() else 0.0 for r in closed])
        np.testing.assert_allclose(res.certified_radius, want)
        # The attack side's witnesses never beat the closed form, and FMN comes within 2%.
        _, radius = attacks.fmn_radii(lin, X, y, norm, steps=60)
        assert np.all(radius >= closed * (1 - 1e-9))
        assert np.all(radius <= closed * 1.02)


def test_evaluation_sides_on_trained_networks(trained):
    world, net, adv, test = trained
    grid = [0.02, 0.04, 0.08, 0.16]
    for model in (net, adv):
        res = robustness(model, test.X, test.y, grid, "inf", world=world, budget=SMALL,
                         exact=True, seed=0)
        assert np.all(res.certified_accuracy <= res.attack_accuracy)
        assert res.unresolved.sum() == 0  # linf exact closes every point here
        np.testing.assert_array_equal(res.exact_accuracy, res.certified_accuracy)
        # Monotone in eps: broken stays broken, certified radii are grid radii.
        assert np.all(np.diff(res.attack_accuracy) <= 0)
        assert set(np.unique(res.certified_radius)) <= set([0.0] + grid)
        # Attribution mode runs every attack on every standing point and finds no
        # certified point broken (SoundnessError otherwise); with exact answers both modes
        # reach the same verdicts, the cascade only does less work.
        full = robustness(model, test.X, test.y, grid, "inf", world=world, budget=SMALL,
                          attribution=True, exact=True, seed=0)
        np.testing.assert_array_equal(full.verdict, res.verdict)
        for name in full.broken_by:  # every attack alone is weaker than all together
            assert np.all(full.attack_only_accuracy(name) >= full.attack_accuracy)


def test_a_certificate_that_lies_is_caught(trained, monkeypatch):
    # A certifier that certifies everything must be contradicted by the attacks' witnesses.
    world, net, _, test = trained
    monkeypatch.setitem(verify.CERTIFIERS, "TwoLayerReLU",
                        lambda model, X, y, eps, p, **kw: np.ones(X.shape[0]))
    with pytest.raises(SoundnessError):
        robustness(net, test.X, test.y, [0.02, 0.08], "inf", budget=SMALL, attribution=True)


@pytest.mark.parametrize("norm", [np.inf, 2.0])
def test_masking_flag_counts_points_only_the_gradient_free_attack_breaks(norm):
    # Zero input gradient on the whole ball, broken only near one vertex / one side of the
    # sphere (the construction of tests/test_attacks_strong.py): PGD from x cannot move.
    from test_attacks_strong import EPS, planted

    net, X, y = planted(norm)
    res = robustness(net, X, y, [EPS], norm, attacks=("pgd", "square"), certify=False,
                     budget=Budget(square_queries=1000), seed=0)
    assert not res.broken_by["pgd"].any()
    assert res.broken_by["square"].all() and (res.verdict == BROKEN).all()
    assert res.masking[0] == len(y)
    # With the certificate on, nothing here is certified (the points are breakable).
    res = robustness(net, X, y, [EPS], norm, attacks=("pgd", "square"), seed=0)
    assert (res.verdict == BROKEN).all()


@pytest.mark.parametrize("norm", ["inf", 2])
def test_cnn_and_ntk_certificates_are_sound(norm):
    world = RobustNonRobustPatches(3, 4, 16, s=2, alpha=1.0, beta=1.0, n_nonrobust=2,
                                   noise=0.05, seed=0)
    cnn = SmoothedReLUCNN(3, 4, 16, init_scale=0.3, seed=1)
    s = world.sample(30, 2)
    eps = 0.05 if norm == "inf" else 0.2
    bound = verify.certified_margin(cnn, s.X, s.y, eps, norm)
    for name in ("pgd", "apgd", "square"):
        X, y = cnn.check_Xy(s.X, s.y)
        delta = attacks.get(name).run(cnn, X, y, eps, 2.0 if norm == 2 else np.inf, seed=0,
                                      **SMALL.options(name))
        m, inside = verify.recheck(cnn, X, y, delta, eps, 2.0 if norm == 2 else np.inf)
        assert inside.all() and np.all(m >= bound - 1e-9), name
    sw = SparseCoding(16, 2, seed=0)
    tr = sw.sample(200, 1)
    ntk = NTKClassifier.empirical(16, 32, seed=0).fit(tr.X, tr.y)
    te = sw.sample(40, 2)
    eps = 0.01 if norm == "inf" else 0.05
    bound = verify.certified_margin(ntk, te.X, te.y, eps, norm)
    rng = np.random.default_rng(0)
    p = 2.0 if norm == 2 else np.inf
    for _ in range(30):  # random points of the ball (the gates jump: no gradient attack)
        D = attacks.sample_ball(te.X.shape, eps, p, rng)
        assert np.all(ntk.margins(te.X + D, te.y) >= bound - 1e-9)


def test_bad_arguments_are_refused_before_work():
    net, X, y = _random_net(0)
    with pytest.raises(ValueError, match="eps_grid"):
        robustness(net, X, y, [0.2, 0.1], "inf")
    with pytest.raises(ValueError, match="attack must be one of"):
        robustness(net, X, y, [0.1], "inf", attacks=("cw",))
    with pytest.raises(ValueError, match="needs world"):
        robustness(net, X, y, [0.1], "inf", attacks=("dense",))
    with pytest.raises(ValueError, match="exact: radius"):
        robustness(net, X, y, [0.1], "inf", exact=[0.2])
    with pytest.raises(ValueError, match="budget"):
        robustness(net, X, y, [0.1], "inf", budget={"pgd_steps": 3})
    ana = NTKClassifier.analytic(6)
    with pytest.raises(ValueError, match="no exact solver"):
        robustness(ana.fit(X, y), X, y, [0.1], "inf", exact=True)


def test_unresolved_points_are_reported_not_dropped(trained):
    world, net, _, test = trained
    # No certificate and no exact solve: what the attacks do not break stays unresolved.
    res = robustness(net, test.X, test.y, [0.01, 0.04], "inf", attacks=("fgm",),
                     certify=False, budget=SMALL)
    standing = res.verdict != BROKEN
    assert np.array_equal(res.verdict == UNRESOLVED, standing)
    assert np.isnan(res.exact_accuracy).all() == bool(standing.any())
    assert res.certified_accuracy.sum() == 0
    assert not (res.verdict == CERTIFIED).any()
