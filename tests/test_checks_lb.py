"""Mutation tests of the lower-bound checks: each must FAIL on a deliberately broken learner.

The broken learner is the purified network presented as a baseline (learner
name ``"purified"`` in the checks' params): a "linear" / "polynomial" / "NTK"
family that is secretly robust.  Every check is run on tiny params so the
suite stays fast; a control with the honest learner on the same tiny params
shows that the mutation, not the small size, is what fails.
"""

import numba
import numpy as np
import pytest

from proofs_check import FAIL, PASS, evaluate, load_checks
from proofs_check import lb_common as lb
from theorylab import attacks, theory
from theorylab.models import TwoLayerReLU
from theorylab.worlds import SparseCoding

CHECKS = load_checks()
LB = sorted(c for c in CHECKS if c.startswith("lb."))

@pytest.fixture(autouse=True, scope="module")
def _one_numba_thread():
    # Small test problems: on this 2-core machine numba's OpenMP pool and OpenBLAS's pool
    # spin against each other (5x slower here); the thread-count test sets its own counts.
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)


SAME = dict(reference="purified", d=64, k=4, noise=0.05, c1=0.5, n_test=400,
            grid=[0.01, 0.02, 0.04, 0.06, 0.08], bisect=2, n_eval=400, n_pgd=100, pgd_steps=5,
            pgd_steps_learners=5, n_train=500, n_kernel=300, m_ntk=32, degree=3,
            learners=("linear",), scale_up=4, poly_learners=("poly_oracle",), poly_ds=(65536,),
            n_poly=100, n_adv=60, adv_epochs=1, adv_steps=3, adv_inner=5,
            adv_large_d=("linear", "separable"))
TINY = {
    "lb.same_radius_linf": (SAME, {"learners": ("purified",)}),
    "lb.same_radius_poly_linf": (SAME, {"poly_learners": ("purified",)}),
    "lb.linear_bound": (dict(ds=(64, 128), k=3, noise=0.05, n_train=600, n_test=400,
                             multiples=(0.5, 1.0, 2.0, 4.0), learner="linear", pgd_steps=5,
                             l2=1e-4), {"learner": "purified"}),
    "lb.poly_tau50_scaling": (dict(ds=(64, 256, 1024), k=4, noise=0.05, degree=3, n_test=300,
                                   grid=tuple(np.geomspace(0.01, 1.0, 9)), bisect=4,
                                   learner_soft="poly_soft", learner_mono="poly_oracle",
                                   pgd_steps=5), {"learner_soft": "purified"}),
    "lb.ntk_width": (dict(d=48, k=3, noise=0.05, widths=(16, 64), n_train=400, n_pgd=150,
                          multiples=(0.5, 1.0, 2.0, 4.0), pgd_steps=5, learner="ntk",
                          learner_wide=None, reg=1e-3), {"learner": "purified"}),
}


def test_every_lb_check_is_declared_completely():
    assert set(LB) == set(TINY), "every lb check needs a mutation test"
    for cid in LB:
        check = CHECKS[cid]
        assert check.provenance in ("[C]", "[D]")
        assert check.paper.startswith("Feature Purification")
        assert {"quick", "full"} <= set(check.regimes)
        assert all(c.reason.strip() for c in check.criteria)
        assert any(c.kind == "claim" for c in check.criteria)


@pytest.mark.parametrize("cid", sorted(TINY))
def test_check_fails_on_a_secretly_robust_learner(cid):
    base, mutation = TINY[cid]
    check = CHECKS[cid]
    broken = check.run(0, dict(base, **mutation))
    verdict, reason, _ = evaluate(check, [broken])
    assert verdict == FAIL, (cid, verdict, reason)


# No control for lb.ntk_width: at d <= 128 with m <= 64 the narrow NTK is an inaccurate
# classifier (clean 0.75-0.85) whose tau50 grows with width, so the tiny params would fail
# the honest learner too; its regimes start at d = 256, m = 64 where the growth is ~5%.
@pytest.mark.parametrize("cid", ["lb.same_radius_linf", "lb.poly_tau50_scaling"])
def test_control_passes_with_the_honest_learner_on_the_same_tiny_params(cid):
    base, _ = TINY[cid]
    check = CHECKS[cid]
    verdict, reason, _ = evaluate(check, [check.run(0, dict(base))])
    assert verdict == PASS, (cid, verdict, reason)


def test_same_radius_fails_when_only_adversarial_training_makes_a_learner_robust(monkeypatch):
    # The check judges on the better of clean and adversarial training: a family whose
    # adversarial training (only) returns a secretly robust rule must fail it.
    from proofs_check import lb_same_radius

    def robust_after_training(name, model, world, train, eps, **kw):
        return lb.PurifiedSeparable(world.w_star), None

    monkeypatch.setattr(lb_same_radius.lb, "adversarially_trained", robust_after_training)
    base, _ = TINY["lb.same_radius_linf"]
    check = CHECKS["lb.same_radius_linf"]
    out = check.run(0, dict(base))
    assert out["linear_robust"] < 0.1 < out["linear_adv_robust"]
    assert out["linear_best_robust"] == out["linear_adv_robust"]
    assert evaluate(check, [out])[0] == FAIL


def test_same_radius_reports_both_trainings_and_the_constant_rule():
    base, _ = TINY["lb.same_radius_linf"]
    out = CHECKS["lb.same_radius_linf"].run(0, dict(base))
    for key in ("linear_robust", "linear_adv_robust", "linear_adv_clean", "linear_best_robust",
                "linear_robust_large_d", "linear_adv_robust_large_d", "max_any_robust"):
        assert key in out, key
    # At tau* the exact adversarial optimum of a linear rule is the constant rule: it keeps
    # the class sign(b) (robust = clean), does not classify, and is not judged.
    assert out["linear_adv_robust"] == out["linear_adv_clean"]
    assert out["linear_best_robust"] == out["linear_robust"]
    assert "FGSM at eps_train=0.04" in CHECKS["lb.same_radius_linf"].notes


def test_ntk_width_fails_when_only_the_widest_ntk_is_broken():
    base, _ = TINY["lb.ntk_width"]
    check = CHECKS["lb.ntk_width"]
    out = check.run(0, dict(base, learner_wide="purified"))
    assert out["wide_over_narrow"] > 1.25
    assert evaluate(check, [out])[0] == FAIL


def test_dense_attack_is_exact_for_the_purified_network_and_the_fast_evaluator_agrees():
    w = SparseCoding(32, 3, seed=0)
    s = w.sample(300, 1)
    net = TwoLayerReLU.purified(w)
    for eps in (0.05, 0.15, 0.3):
        dense = attacks.robust_accuracy(net, s.X, s.y, eps, "inf", "dense", world=w)
        pgd = attacks.robust_accuracy(net, s.X, s.y, eps, "inf", "pgd", steps=20)
        assert dense <= pgd  # no attack beats the exact worst case
        fast = np.mean(lb.purified_worst_margins(s.X, s.y, w.w_star, eps, 0.5) > 0)
        assert fast == dense
        delta = attacks.dense_direction(w, s.y, eps, "inf")
        np.testing.assert_allclose(lb.purified_worst_margins(s.X, s.y, w.w_star, eps, 0.5),
                                   s.y * net.decision_function(s.X + delta), atol=1e-12)
    fast = lb.PurifiedSeparable(w.w_star)
    np.testing.assert_allclose(fast.decision_function(s.X), net.decision_function(s.X),
                               atol=1e-12)
    np.testing.assert_allclose(fast.input_gradient(s.X, s.y), net.input_gradient(s.X, s.y),
                               atol=1e-12)
    assert np.mean(fast.worst_case_margin(s.X, s.y, 0.15, np.inf) > 0) == \
        attacks.robust_accuracy(net, s.X, s.y, 0.15, "inf", "dense", world=w)


def test_identity_world_has_the_sparse_coding_law():
    d, k, n = 64, 4, 20_000
    fast = lb.IdentityWorld(d, k, seed=0).sample(n, 1)
    ref = SparseCoding(d, k, seed=0).sample(n, 1)
    a, b = (fast.Z != 0).sum(1), (ref.Z != 0).sum(1)
    assert abs(a.mean() - b.mean()) < 0.1  # mean nnz ~ 4.2; sd of the means ~0.015
    noise = fast.X - fast.Z
    assert abs(noise.std() - 0.05 / np.sqrt(d)) < 1e-4
    assert np.all(fast.y == np.sign(fast.Z @ lb.IdentityWorld(d, k, seed=0).w_star))
    small = np.mean(np.abs(fast.Z @ lb.IdentityWorld(d, k, seed=0).w_star) <= 1)
    exact = theory.small_margin_probability(k, d)
    assert abs(small - exact) < 5 * np.sqrt(exact * (1 - exact) / n)


def test_tau50_bisect_matches_the_fine_grid_definition():
    def acc(t):
        return float(np.clip(1.2 - 2.0 * t, 0, 1))  # crosses 0.5 at 0.35
    assert abs(lb.tau50_bisect(acc, [0.1, 0.2, 0.4, 0.8], 1.0, steps=10) - 0.35) < 1e-3
    assert lb.tau50_bisect(acc, [0.01, 0.02], 1.0) == float("inf")
    assert lb.tau50_bisect(acc, [0.1], 0.4) == 0.0
