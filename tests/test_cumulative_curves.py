"""Cumulative robustness curves: a point broken at a radius stays broken at larger ones."""

import numpy as np
import pytest

from theorylab import attacks
from theorylab.models import LinearClassifier

GRID = [0.02, 0.05, 0.1, 0.2, 0.4]


def test_survival_is_the_running_intersection_and_attacks_only_survivors():
    rng = np.random.default_rng(0)
    per_radius = rng.random((5, 40)) < 0.8  # what an attack at each radius leaves correct
    seen = []

    def correct_at(eps, idx):
        seen.append((eps, idx.copy()))
        return per_radius[GRID.index(eps), idx]

    out = attacks.cumulative_survival(correct_at, GRID, 40)
    assert np.array_equal(out, np.logical_and.accumulate(per_radius, axis=0))
    for i, (eps, idx) in enumerate(seen):
        assert eps == GRID[i]
        expected = np.arange(40) if i == 0 else np.flatnonzero(out[i - 1])
        assert np.array_equal(idx, expected)  # broken points are never attacked again


def test_survival_validates_its_inputs():
    with pytest.raises(ValueError, match="eps_grid"):
        attacks.cumulative_survival(lambda e, i: np.ones(i.size, bool), [0.1, 0.1], 3)
    with pytest.raises(ValueError, match="shape"):
        attacks.cumulative_survival(lambda e, i: np.ones(1, bool), [0.1, 0.2], 3)


def test_cumulative_pgd_curve_is_monotone_and_never_weaker(trained):
    world, model, s = trained
    for norm, grid in ((2, GRID), (np.inf, [g / 10 for g in GRID])):
        each = attacks.robustness_curve(model, s.X, s.y, grid, norm, steps=10)
        cum = attacks.robustness_curve(model, s.X, s.y, grid, norm, steps=10, cumulative=True)
        assert np.all(np.diff(cum.accuracy) <= 0)
        assert np.all(cum.accuracy <= each.accuracy + 1e-12)
        # At the first radius nothing has been removed yet: the same attack on the same points.
        assert cum.accuracy[0] == each.accuracy[0]


def test_exact_attack_is_already_monotone(trained):
    world, _, s = trained
    lin = LinearClassifier(world.d, w=world.label_direction)
    each = attacks.robustness_curve(lin, s.X, s.y, GRID, 2, attack="exact")
    cum = attacks.robustness_curve(lin, s.X, s.y, GRID, 2, attack="exact", cumulative=True)
    assert np.array_equal(each.accuracy, cum.accuracy)


def test_cumulative_curve_rejects_bad_attacks_before_work(trained):
    world, model, s = trained
    with pytest.raises(ValueError, match="attack"):
        attacks.robustness_curve(model, s.X, s.y, GRID, 2, attack="nope", cumulative=True)
    with pytest.raises(ValueError, match="exact"):
        attacks.robustness_curve(model, s.X, s.y, GRID, 2, attack="exact", cumulative=True)
    with pytest.raises(ValueError, match="world"):
        attacks.robustness_curve(model, s.X, s.y, GRID, 2, attack="dense", cumulative=True)
