"""The structured attack of Li & Li: remove the non-robust feature along -v_y.

Spec ``robust_features.md`` Theorem A (3): standard training's adversarial
examples are perturbations along the *negative non-robust feature direction*.
This is that attack in closed form; it needs the world (to know v_y) and,
unless ``where="all"``, the sample's patch layout (to know which patches hold
v_y), so it is not in the attack table (whose attacks see only X and y); its
functions are exported by :mod:`theorylab.attacks`.  Generic attacks (FGM,
PGD, robustness curves) work on the CNN unchanged.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_choice, check_float, check_instance, check_norm
from ..worlds import RobustNonRobustPatches
from .curves import RobustnessCurve, tau50

__all__ = ["structured_attack", "structured_accuracy", "structured_curve", "erasure_threshold"]

WHERE = ("nonrobust", "all")
SPREAD = ("global", "per_patch")


def _norm_of(world, norm):
    check_instance("world", world, RobustNonRobustPatches)
    p = check_norm(world.threat if norm is None else norm, allowed=(2.0, np.inf))
    return p


def structured_attack(world, sample, eps, norm=None, *, where="nonrobust", spread="global",
                      dtype=None):
    """Perturbation along -v_y on the non-robust patches (or on every patch).

    Parameters
    ----------
    world : RobustNonRobustPatches
    sample : PatchSample
        Supplies ``y``, the shape and (for ``where="nonrobust"``) the mask of
        non-robust patches.
    eps : float
        Radius (>= 0).
    norm : {"linf", "l2", inf, 2}, optional
        Defaults to ``world.threat``.  l_inf: delta_p = -eps sign(v_y) on each
        attacked patch (an l_inf perturbation of size exactly eps).  l2: delta_p
        = -c v_y / ||v_y||.
    where : {"nonrobust", "all"}, default "nonrobust"
        Attack the patches that carry v_y (the spec's Theorem A attack), or all
        P patches (an attacker who does not know the layout; for l_inf still
        within the same ball).
    spread : {"global", "per_patch"}, default "global"
        l2 only.  ``"global"``: the budget is the whole input's l2 norm, split
        evenly, c = eps / sqrt(#attacked patches), so ||delta||_2 = eps.
        ``"per_patch"``: c = eps on every attacked patch (a per-patch l2 ball).
    dtype : dtype, optional
        dtype of the result (default that of ``sample.X``).

    Returns
    -------
    delta : ndarray of shape (n, P, d)
    """
    p = _norm_of(world, norm)
    eps = check_float("eps", eps, 0.0)
    check_choice("where", where, WHERE)
    check_choice("spread", spread, SPREAD)
    X = np.asarray(sample.X)
    if X.ndim != 3 or X.shape[2] != world.d:
        raise ValueError(f"sample.X must have shape (n, P, {world.d}), got {X.shape}")
    n, P, _ = X.shape
    y = np.asarray(sample.y)
    if y.shape != (n,) or y.dtype.kind not in "iu" or (n and (y.min() < 0 or y.max() >= world.K)):
        raise ValueError(f"sample.y must hold {n} integer labels in [0, {world.K - 1}]")
    if where == "all":
        mask = np.ones((n, P), dtype=bool)
    else:
        mask = np.asarray(sample.nonrobust, dtype=bool)
        if mask.shape != (n, P):
            raise ValueError(f"sample.nonrobust must have shape ({n}, {P}), got {mask.shape}")
    V = world.V[y]
    if p == np.inf:
        direction = np.sign(V)
    else:
        direction = V / np.linalg.norm(V, axis=1, keepdims=True)
    coef = np.full(n, eps)
    if p == 2.0 and spread == "global":
        count = mask.sum(axis=1)
        coef = np.where(count > 0, eps / np.sqrt(np.maximum(count, 1)), 0.0)
    delta = -(coef[:, None, None] * mask[:, :, None]) * direction[:, None, :]
    return delta.astype(X.dtype if dtype is None else dtype)


def structured_accuracy(model, world, sample, eps, norm=None, **kwargs):
    """Fraction of ``sample`` still classified correctly under :func:`structured_attack`."""
    X = model.check_X(sample.X)
    y = model.check_y(sample.y, X.shape[0])
    delta = structured_attack(world, sample, eps, norm, dtype=X.dtype, **kwargs)
    return float(np.mean(model.correct(X + delta, y, check_input=False)))


def structured_curve(model, world, sample, eps_grid, norm=None, **kwargs):
    """Structured-attack accuracy over a strictly increasing grid of radii.

    Returns
    -------
    RobustnessCurve
        With ``attack="structured"``; its ``tau50`` is the erasure threshold.
    """
    p = _norm_of(world, norm)
    grid = np.asarray(eps_grid, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or np.any(grid < 0) or not np.isfinite(grid).all():
        raise ValueError("eps_grid must be a non-empty 1-d sequence of finite radii >= 0")
    if np.any(np.diff(grid) <= 0):
        raise ValueError("eps_grid must be strictly increasing")
    X = model.check_X(sample.X)
    y = model.check_y(sample.y, X.shape[0])
    clean = float(np.mean(model.correct(X, y, check_input=False)))
    if hasattr(model, "correct_along"):
        # The attack is eps times a fixed direction: models that can evaluate a whole
        # line X + t D at once (the CNN: two GEMMs for all radii) take the fast path.
        D = structured_attack(world, sample, 1.0, p, dtype=X.dtype, **kwargs)
        acc = model.correct_along(X, D, y, grid).mean(axis=1)
    else:
        acc = np.array([structured_accuracy(model, world, sample, e, p, **kwargs) for e in grid])
    return RobustnessCurve(grid, acc, "linf" if p == np.inf else "l2", "structured", clean)


def erasure_threshold(model, world, sample, norm=None, *, factors=None, **kwargs):
    """Radius where structured-attack accuracy falls below 1/2 (``tau50``).

    The grid is ``factors`` times the world's predicted erasure radius
    (:meth:`RobustNonRobustPatches.erasure_radius`); default 0.05 to 3 in
    steps of 0.05.  Returns ``inf`` if accuracy never falls below 1/2 on it.
    """
    p = _norm_of(world, norm)
    base = world.erasure_radius("linf" if p == np.inf else "l2")
    if base <= 0:
        raise ValueError("world has beta = 0 or no non-robust patch: nothing to erase")
    f = np.arange(1, 61) * 0.05 if factors is None else np.asarray(factors, dtype=float)
    curve = structured_curve(model, world, sample, base * f, p, **kwargs)
    return tau50(curve.eps, curve.accuracy, curve.clean_accuracy)
