"""Run the ladder specs resumably, short rungs first, with a progress bar and a time estimate.

The specs are ``examples/sweeps/ladder_*.toml`` (one per norm).  Stores, CSV exports
and their restoring, the progress bar and ``max_minutes`` are the phase driver's
(:func:`proofs_check.phase.driver.run`); the order is by rung (every seed and norm of
a multiplier before the next; within a rung, norm by norm), so an interrupted run leaves whole short rungs and the
long ones missing; a cell's price is the median measured CPU seconds of its (norm,
multiplier), else :data:`PRIOR`.
"""

from __future__ import annotations

import statistics

from ..phase.driver import export, measured, pending_groups, restore
from ..phase.driver import load_specs as _load_specs
from ..phase.driver import run as _run
from .cells import _check

__all__ = ["PRIOR", "load_specs", "cell_class", "estimate", "plan", "run", "export",
           "restore"]

# CPU seconds of one rung (V3 + V4 of one norm, the clean run included) at d = 128, as
# base + slope x multiplier: a guess made before the first ladder run from four rungs on
# seeds 0-2 measured with two processes sharing the two cores (l2 ~13-19 s at x1 with the
# compiles, 21 s at x8); measured cells replace it (the run measured 9-16 s at x1, 42-45 s at x16).
PRIOR = {"l2": (8.0, 1.6), "linf": (8.0, 1.6)}


def load_specs(spec_dir):
    """The ladder specs of ``spec_dir`` (``ladder_*.toml``), sorted by name."""
    return _load_specs(spec_dir, "ladder_*.toml")


def cell_class(params):
    """(norm, adv_mult): the cells whose cost :func:`estimate` pools."""
    return (params["norm"], float(params["adv_mult"]))


def estimate(params, measured_cost):
    """Estimated CPU seconds of the cell with ``params`` (module docstring)."""
    cls = cell_class(params)
    if cls in measured_cost:
        return statistics.median(c for c, _ in measured_cost[cls])
    base, per = PRIOR[params["norm"]]
    return base + per * float(params["adv_mult"])


def plan(specs, stores):
    """``([(spec, [cells]), ...], measured)``: the cells not done, in the module's order."""
    cost = measured([r for st in stores.values() for r in st.rows(status="done")],
                    key=cell_class)
    # By rung, then spec: one run_sweep call per (rung, norm), not per cell.
    order = (lambda c, i: (float(c.params["adv_mult"]), i, c.params["run_seed"], c.index))
    return pending_groups(specs, stores, order, validate=_check), cost


def run(specs, out_dir, **kwargs):
    """Run every ladder cell not yet done (:func:`proofs_check.phase.driver.run`'s options).

    Returns
    -------
    dict
        ``ran``, ``failed``, ``left``, ``seconds``, ``estimate``, ``stopped``.
    """
    return _run(specs, out_dir, plan_fn=plan, estimate_fn=estimate, desc="FGM length ladder",
                **kwargs)
