"""Robust accuracy and robustness curves of one named attack, and tau50.

These are the *attack side* of robustness: a point counted robust here only
survived the attack.  :func:`theorylab.evaluate.robustness` gives the whole
sandwich (certified <= exact <= attack).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validation import check_bool, check_float, check_norm, norm_name
from ._core import prepare
from ._registry import ATTACKS, get

__all__ = ["robust_accuracy", "robustness_curve", "cumulative_survival", "RobustnessCurve",
           "tau50", "check_grid", "PSEUDO_ATTACKS"]

# Not attacks but answers: the model's closed-form worst case, and no perturbation.
PSEUDO_ATTACKS = ("exact", "none")


def _resolve(model, attack, p, world, options):
    # The attack's correctness function on validated arrays, after every check.
    if attack == "exact":
        if p not in model.capabilities.exact:
            raise ValueError(f"attack='exact' is not available for {type(model).__name__} in "
                             f"norm {norm_name(p)} (capabilities.exact: "
                             f"{sorted(map(norm_name, model.capabilities.exact))})")
        return lambda X, y, eps: model.worst_case_margin(X, y, eps, p, check_input=False) > 0
    if attack == "none":
        return lambda X, y, eps: model.correct(X, y, check_input=False)
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {sorted(ATTACKS) + list(PSEUDO_ATTACKS)}, "
                         f"got {attack!r}")
    spec = get(attack)
    spec.check_norm(p)
    options = spec.check_options(options)
    if spec.needs_world and world is None:
        raise ValueError(f"attack={attack!r} needs world=")

    def correct(X, y, eps):
        delta = spec.run(model, X, y, eps, p, world=world, **options)
        return model.correct(X + delta, y, check_input=False)
    return correct


def robust_accuracy(model, X, y, eps, norm, attack="pgd", *, world=None, **attack_kwargs):
    """Fraction of samples still classified correctly after the attack.

    Parameters
    ----------
    attack : str
        A registered attack (:func:`theorylab.attacks.names`), ``"exact"`` (the
        model's closed-form worst case, where ``model.capabilities.exact`` has
        the norm) or ``"none"``.  ``"dense"`` needs ``world``.
    **attack_kwargs
        The attack's options (e.g. ``steps`` for PGD).
    """
    p = check_norm(norm)
    eps = check_float("eps", eps, 0.0)
    correct = _resolve(model, attack, p, world, attack_kwargs)
    X, yv = prepare(model, X, y)
    return float(np.mean(correct(X, yv, eps)))


def tau50(eps, accuracy, clean_accuracy=None):
    """Radius where robust accuracy first falls below 0.5, by linear interpolation.

    Parameters
    ----------
    eps, accuracy : sequences of equal length
        A robustness curve, eps increasing.
    clean_accuracy : float, optional
        Accuracy at eps = 0, used as the curve's first point.

    Returns
    -------
    float
        ``inf`` when the curve never falls below 0.5 on the grid (tau50 lies
        beyond it), 0.0 when it starts below 0.5.
    """
    e = np.asarray(eps, dtype=float)
    a = np.asarray(accuracy, dtype=float)
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ValueError("eps and accuracy must be 1-d sequences of the same length")
    if np.any(np.diff(e) <= 0):
        raise ValueError("eps must be strictly increasing")
    if clean_accuracy is not None and e[0] > 0:
        e = np.concatenate([[0.0], e])
        a = np.concatenate([[clean_accuracy], a])
    below = np.flatnonzero(a < 0.5)
    if below.size == 0:
        return float("inf")
    i = below[0]
    if i == 0:
        return float(e[0]) if clean_accuracy is None else 0.0
    e0, e1, a0, a1 = e[i - 1], e[i], a[i - 1], a[i]
    return float(e0 + (a0 - 0.5) * (e1 - e0) / (a0 - a1))


@dataclass
class RobustnessCurve:
    """Robust accuracy over a grid of radii for one model, norm and attack."""

    eps: np.ndarray
    accuracy: np.ndarray
    norm: str
    attack: str
    clean_accuracy: float
    details: dict = field(default_factory=dict)

    @property
    def tau50(self):
        """Interpolated radius of 50% robust accuracy (see :func:`tau50`)."""
        return tau50(self.eps, self.accuracy, self.clean_accuracy)

    def at(self, eps):
        """Robust accuracy at a grid radius."""
        idx = np.flatnonzero(np.isclose(self.eps, eps))
        if idx.size == 0:
            raise ValueError(f"eps={eps} is not on the curve's grid {self.eps.tolist()}")
        return float(self.accuracy[idx[0]])

    def to_dict(self):
        return {"eps": self.eps.tolist(), "accuracy": self.accuracy.tolist(), "norm": self.norm,
                "attack": self.attack, "clean_accuracy": self.clean_accuracy,
                "tau50": self.tau50, **self.details}


def check_grid(eps_grid, name="eps_grid"):
    """A non-empty, strictly increasing 1-d float array of finite radii >= 0."""
    try:
        grid = np.asarray(eps_grid, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-d sequence of radii, got {eps_grid!r}") from None
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all() or np.any(grid < 0):
        raise ValueError(f"{name} must be a non-empty 1-d sequence of finite radii >= 0")
    if np.any(np.diff(grid) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return grid


def cumulative_survival(correct_at, eps_grid, n):
    """Which points survive an attack at every radius up to each one of a grid.

    A perturbation found at radius r is admissible at every radius r' >= r, so a
    point broken at r is counted as broken at all larger radii of the grid.  The
    curve is the union of the per-radius attacks (never weaker than attacking
    each radius on its own, and monotone), and each radius attacks only the points
    still standing, which is what makes it cheap: a non-robust model's curve costs
    little beyond its first radii.

    Parameters
    ----------
    correct_at : callable
        ``correct_at(eps, idx) -> bool array of len(idx)``: correct after the
        attack at radius ``eps``, for the points with indices ``idx``.
    eps_grid : sequence of float
        Strictly increasing radii.
    n : int
        Number of points.

    Returns
    -------
    ndarray of bool, shape (len(eps_grid), n)
    """
    grid = np.asarray(eps_grid, dtype=float)
    if grid.ndim != 1 or np.any(np.diff(grid) <= 0):
        raise ValueError("eps_grid must be a strictly increasing 1-d sequence")
    out = np.zeros((grid.size, n), dtype=bool)
    alive = np.arange(n)
    for i, eps in enumerate(grid):
        if alive.size:
            ok = np.asarray(correct_at(float(eps), alive), dtype=bool)
            if ok.shape != alive.shape:
                raise ValueError(f"correct_at returned shape {ok.shape}, expected {alive.shape}")
            alive = alive[ok]
            out[i, alive] = True
    return out


def robustness_curve(model, X, y, eps_grid, norm, attack="pgd", *, world=None,
                     cumulative=False, **attack_kwargs):
    """Robust accuracy at each radius of ``eps_grid`` (strictly increasing, >= 0).

    Parameters
    ----------
    attack : str
        As in :func:`robust_accuracy`.
    cumulative : bool, default False
        Count a point as robust at eps only if the attack failed at every grid
        radius <= eps (:func:`cumulative_survival`): a monotone, never weaker and
        usually much cheaper curve.  Default: each radius attacked on its own.

    Returns
    -------
    RobustnessCurve
    """
    p = check_norm(norm)
    grid = check_grid(eps_grid)
    cumulative = check_bool("cumulative", cumulative)
    correct = _resolve(model, attack, p, world, attack_kwargs)
    X, yv = prepare(model, X, y)
    clean = float(np.mean(model.correct(X, yv, check_input=False)))
    if cumulative:
        acc = cumulative_survival(lambda e, idx: correct(X[idx], yv[idx], e), grid,
                                  X.shape[0]).mean(axis=1)
    else:
        acc = np.array([float(np.mean(correct(X, yv, float(e)))) for e in grid])
    return RobustnessCurve(grid, acc, norm_name(p), attack, clean)
