"""Deterministic exact-solver budgets: node counts decide, clocks are marked safety nets."""

import numpy as np
import pytest

from theorylab import verify
from theorylab.evaluate import Budget, robustness
from theorylab.models import TwoLayerReLU


def _net_and_points(d=10, m=12, n=12, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((m, d)) / np.sqrt(d)
    net = TwoLayerReLU(d, m, W=W)
    X = rng.standard_normal((n, d))
    return net, X, np.sign(net.decision_function(X))


@pytest.mark.parametrize("norm", [2.0, np.inf])
def test_node_budget_gives_the_same_answer_twice(norm):
    net, X, y = _net_and_points()
    eps = 0.6 if norm == 2.0 else 0.2
    a = verify.exact_margin(net, X, y, eps, norm, node_limit=20, total_nodes=40, decide=True)
    b = verify.exact_margin(net, X, y, eps, norm, node_limit=20, total_nodes=40, decide=True)
    assert list(a.status) == list(b.status)
    assert np.array_equal(a.lower, b.lower) and np.array_equal(a.upper, b.upper)
    assert np.array_equal(a.nodes, b.nodes)
    assert not a.clock.any()  # no clock was set: nothing is marked


def test_total_nodes_stops_later_points_unresolved():
    net, X, y = _net_and_points()
    full = verify.exact_margin(net, X, y, 0.6, 2, node_limit=50, decide=True)
    cost = np.maximum(full.nodes, 1)
    # The budget runs out once the first two points have spent theirs.
    cut = verify.exact_margin(net, X, y, 0.6, 2, node_limit=50, decide=True,
                              total_nodes=int(cost[:2].sum()))
    assert list(cut.status[:2]) == list(full.status[:2])
    assert all(s == "unresolved" for s in cut.status[2:])
    assert np.all(np.isneginf(cut.lower[2:])) and not cut.clock.any()


def test_a_clock_that_fires_is_marked():
    net, X, y = _net_and_points(m=24)
    ex = verify.exact_margin(net, X, y, 0.5, 2, node_limit=10_000, time_limit=1e-9,
                             decide=True)
    open_ = ex.status == "unresolved"
    assert open_.any()  # at this radius some points need more than the root bound
    assert ex.clock[open_].all()
    # With a node budget instead, the same points are searched to the end.
    ex = verify.exact_margin(net, X, y, 0.5, 2, node_limit=10_000, time_limit=600.0,
                             decide=True)
    assert not ex.clock.any() and not (ex.status == "unresolved").any()


def test_robustness_counts_clock_cut_points_and_none_under_node_budgets():
    net, X, y = _net_and_points(m=24)
    nodes = Budget(pgd_steps=2, apgd_iters=2, square_queries=2, fmn_steps=2, crown_iters=2,
                   node_limit=5, exact_nodes=30)
    res = robustness(net, X, y, [0.5], 2, attacks=("fgm",), exact=True, budget=nodes)
    assert res.clock.tolist() == [0]
    again = robustness(net, X, y, [0.5], 2, attacks=("fgm",), exact=True, budget=nodes)
    assert np.array_equal(res.verdict, again.verdict)
    clock = Budget(pgd_steps=2, apgd_iters=2, square_queries=2, fmn_steps=2, crown_iters=2,
                   node_limit=10_000, time_limit=1e-9)
    cut = robustness(net, X, y, [0.5], 2, attacks=("fgm",), exact=True, budget=clock)
    assert cut.clock[0] == cut.unresolved[0] > 0
    assert cut.at(0.5)["clock"] == cut.clock[0]


def test_exact_margin_validates_total_nodes():
    net, X, y = _net_and_points()
    with pytest.raises(ValueError, match="total_nodes"):
        verify.exact_margin(net, X, y, 0.1, 2, total_nodes=0)
    with pytest.raises(ValueError, match="total_time"):
        verify.exact_margin(net, X, y, 0.1, 2, total_time=-1.0)
