"""Exponents along the scaling paths: each quantity's power law in d, against the derived one.

Per norm and quantity (:data:`QUANTITIES`), the measured values of the done cells
(one per seed and d) are fitted by :func:`theorylab.theory.fit_exponent` (log-log
least squares over every seed, a bootstrap interval resampling seeds within each
d).  Where ``feature_purification.md`` derives a scaling ([D], 3.3 / 3.4), its
formula from :mod:`theorylab.theory` is evaluated at the path's own (d, k) points
and its log-log slope over the same d values is the *derived exponent along the
path* (k is rounded to an integer, so this differs slightly from the continuous
exponent, which is reported beside it).  The comparison says whether that exponent
lies inside the fitted interval: a finding either way; no formula or threshold is
adjusted to the data.  Quantities with no derived scaling say so.

Values that a log-log fit cannot take are left out and counted: tau50 = inf (the
curve never fell below 1/2 on the grid) or 0 (below 1/2 at eps = 0), and
non-positive differences (an oracle gap <= 0).  A tau50 below the grid's first
radius is kept but counted (it is interpolated between eps = 0 and that radius).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from theorylab import theory

from ..phase.regions import read_rows
from .paths import GAMMA, path_k

__all__ = ["Quantity", "Derived", "QUANTITIES", "SCALING_PARAMS", "read_scaling_rows",
           "values_of", "fit_quantity", "fit_all", "derived_exponent", "QuantityFit"]

#: The cell parameters of the scaling specs (every other CSV column is a measurement).
SCALING_PARAMS = ("d", "norms", "gamma", "anchor_d", "anchor_k", "t_mult")
_P = {"l2": 2, "linf": "inf"}


@dataclass(frozen=True)
class Derived:
    """A derived scaling: ``formula(d, k, norm)``, its source, and its continuous exponent."""

    name: str
    formula: object
    source: str
    continuous: object  # gamma -> exponent of formula(d, c d^gamma)


@dataclass(frozen=True)
class Quantity:
    """A key quantity: the CSV column (``{norm}`` filled in), its meaning, derived scalings."""

    name: str
    column: str
    label: str
    derived: dict = field(default_factory=dict)  # norm -> tuple of Derived
    grid_limited: bool = False  # a tau50: can fall outside the radius grid


_LINEAR = {n: Derived("linear rule", lambda d, k, n=n: theory.linear_failure_radius(k, d, _P[n]),
                      "3.3(ii) / 3.4: sqrt(k/d)" if n == "l2" else "3.3(ii) / 3.4: sqrt(k)/d",
                      (lambda g: (g - 1) / 2) if n == "l2" else (lambda g: g / 2 - 1))
           for n in _P}
_CLEAN_HEURISTIC = {
    "l2": Derived("clean-network heuristic",
                  lambda d, k: theory.clean_network_radius(k, d, 2),
                  "3.3(iv): sqrt(d)/k^1.5", lambda g: 0.5 - 1.5 * g),
    "linf": Derived("clean-network heuristic (upper bound)",
                    lambda d, k: theory.clean_network_radius(k, d, "inf"),
                    "3.3(iv): <~ c/k (\"in practice ~ linear\")", lambda g: -g),
}
_PURIFIED = {n: Derived("purified radius", lambda d, k, n=n: theory.purified_radius(k, _P[n]),
                        "3.3(iii) / 3.4: Theta(1)" if n == "l2" else
                        "3.3(iii) / 3.4: ~1/(2 sqrt(k))",
                        (lambda g: 0.0) if n == "l2" else (lambda g: -g / 2))
             for n in _P}
_DENSE = Derived("dense mixture", lambda d, k: theory.dense_mixture_ratio(k, d),
                 "3.3(i): ||v||/a ~ k/sqrt(d)", lambda g: g - 0.5)

QUANTITIES = (
    Quantity("tau50_clean", "fp.v2_clean_nonrobust_{norm}/tau50_clean",
             "tau50 of the clean network (attack side)",
             {n: (_LINEAR[n], _CLEAN_HEURISTIC[n]) for n in _P}, grid_limited=True),
    Quantity("tau50_adv", "scaling/tau50_adv_certified",
             "tau50 of the FGM-trained network (certified side)",
             {n: (_PURIFIED[n],) for n in _P}, grid_limited=True),
    Quantity("tau50_adv_attack", "scaling/tau50_adv_attack",
             "tau50 of the FGM-trained network (attack side)",
             {n: (_PURIFIED[n],) for n in _P}, grid_limited=True),
    Quantity("tau50_oracle", "fp.v2_clean_nonrobust_{norm}/tau50_oracle",
             "tau50 of the purified oracle (certified side)",
             {n: (_PURIFIED[n],) for n in _P}, grid_limited=True),
    Quantity("tau50_linear", "fp.v2_clean_nonrobust_{norm}/tau50_linear",
             "tau50 of the linear rule u = M w* (exact)",
             {n: (_LINEAR[n],) for n in _P}, grid_limited=True),
    Quantity("oracle_gap", "fp.v3_adversarial_purifies_{norm}/oracle_minus_adv",
             "oracle gap at eps_eval (oracle attack side - FGM certified side)"),
    Quantity("dense_ratio", "fp.v1_clean_features_{norm}/dense_ratio_median",
             "median dense ratio of the clean network", {n: (_DENSE,) for n in _P}),
    Quantity("dense_ratio_adv", "fp.v3_adversarial_purifies_{norm}/dense_ratio_adv",
             "median dense ratio after FGM training"),
    Quantity("principle_fraction", "fp.v4_principle_{norm}/principle_fraction",
             "purification-principle fraction"),
)


def read_scaling_rows(source):
    """Rows of a scaling store or CSV export, each with ``params["k"]`` set from its path."""
    rows = read_rows(source, params=SCALING_PARAMS)
    for r in rows:
        p = r["params"]
        p["k"] = path_k(p["d"], p["gamma"], p["anchor_d"], p["anchor_k"])
        p.setdefault("t_mult", 1)
    return rows


def values_of(rows, quantity, norm):
    """``(d, values, excluded, below_grid)`` of the done cells of ``norm``.

    ``excluded``: ``[(d, value), ...]`` the fit cannot take (module docstring);
    ``below_grid``: how many kept tau50 values lie below the grid's first radius.
    """
    col = quantity.column.format(norm=norm)
    d, v, excluded, below = [], [], [], 0
    for r in rows:
        m = r["metrics"]
        if r["status"] != "done" or not m or list(r["params"]["norms"]) != [norm]:
            continue
        x = m.get(col)
        if not isinstance(x, (int, float)):
            continue
        x = float(x)
        if not (math.isfinite(x) and x > 0):
            excluded.append((r["params"]["d"], x))
            continue
        if quantity.grid_limited and x < m.get("scaling/grid_min", 0.0):
            below += 1
        d.append(r["params"]["d"])
        v.append(x)
    return np.array(d), np.array(v), excluded, below


def derived_exponent(derived, ds, gamma, anchor_d, anchor_k):
    """Log-log slope of ``derived.formula`` at the path's (d, k) points over ``ds``."""
    ds = sorted(set(int(x) for x in ds))
    vals = [derived.formula(d, path_k(d, gamma, anchor_d, anchor_k)) for d in ds]
    x, y = np.log(ds), np.log(vals)
    xc = x - x.mean()
    return float(xc @ y / (xc @ xc))


@dataclass
class QuantityFit:
    """The fit of one quantity along one norm's path, with its derived comparisons."""

    quantity: Quantity
    norm: str
    d: np.ndarray
    values: np.ndarray
    excluded: list
    below_grid: int
    path: tuple = (GAMMA, 128, 5)  # (gamma, anchor_d, anchor_k)
    fit: object = None  # theorylab.theory.ExponentFit, None when not fittable
    why_not: str = ""
    comparisons: list = field(default_factory=list)  # (Derived, along-path, continuous, inside)

    def k_of(self, d):
        """k on this fit's path at ``d``."""
        return path_k(int(d), *self.path)


def fit_quantity(rows, quantity, norm, *, n_boot=2000, seed=0):
    """Fit one quantity along one norm's path; compare with its derived exponents."""
    d, v, excluded, below = values_of(rows, quantity, norm)
    p = next(r["params"] for r in rows if list(r["params"]["norms"]) == [norm])
    gamma, ad, ak = p["gamma"], p["anchor_d"], p["anchor_k"]
    out = QuantityFit(quantity, norm, d, v, excluded, below, path=(gamma, ad, ak))
    if np.unique(d).size < 2:
        out.why_not = f"{np.unique(d).size} d value(s) with a usable value (a fit needs 2)"
        return out
    out.fit = theory.fit_exponent(d, v, n_boot=n_boot, seed=seed)
    for der in quantity.derived.get(norm, ()):
        along = derived_exponent(der, d, gamma, ad, ak)
        ci = out.fit.ci
        inside = None if ci is None else bool(ci[0] <= along <= ci[1])
        out.comparisons.append((der, along, der.continuous(gamma), inside))
    return out


def fit_all(rows, *, n_boot=2000, seed=0):
    """``{(quantity name, norm): QuantityFit}`` for every quantity and norm in ``rows``."""
    norms = sorted({r["params"]["norms"][0] for r in rows if len(r["params"]["norms"]) == 1},
                   key=list(_P).index)
    return {(q.name, n): fit_quantity(rows, q, n, n_boot=n_boot, seed=seed)
            for q in QUANTITIES for n in norms}
