"""Run the scaling-path specs resumably, cheap d first, with a progress bar and a time estimate.

The specs are ``examples/sweeps/scaling_*.toml`` (one per norm).  Stores, CSV
exports and their restoring, the progress bar and ``max_minutes`` are the phase
driver's (:func:`proofs_check.phase.driver.run`); what differs is the order and
the price of a cell:

* order: by d (every seed of a d before the next d, both norms), then by
  replicate, then by estimated cost, so an interrupted run leaves whole small-d
  points and the large d missing, never holes at small d;
* estimate: the median measured CPU seconds of the done cells of the same (norm,
  d), else the nearest measured d of the norm (else :data:`PRIOR`, measured before
  the run, below) scaled as d^2.
"""

from __future__ import annotations

import math
import statistics

from ..phase.driver import export, measured, pending_groups, restore
from ..phase.driver import load_specs as _load_specs
from ..phase.driver import run as _run
from .paths import path_params

__all__ = ["PRIOR", "load_specs", "cell_class", "estimate", "plan", "run", "export",
           "restore"]

# CPU seconds of one cell (one norm's V1-V4) at the path's k, from the phase maps'
# per-claim seconds (reports/phase/phase_fp_d*.csv, one Numba thread): the clean training
# and half the shared cost, plus that norm's evaluations.  The verification's share varies
# several-fold between seeds at d = 512 (the l2 exact solve at k = 11: 280-320 s), so this
# is a starting point; measured cells replace it.
PRIOR = {"l2": {64: 5, 128: 12, 256: 40, 512: 150},
         "linf": {64: 4, 128: 10, 256: 30, 512: 100}}


def load_specs(spec_dir):
    """The scaling specs of ``spec_dir`` (``scaling_*.toml``), sorted by name."""
    return _load_specs(spec_dir, "scaling_*.toml")


def cell_class(params):
    """(norms, d): the cells whose cost :func:`estimate` pools."""
    return ("+".join(params["norms"]), params["d"])


def estimate(params, measured_cost):
    """Estimated CPU seconds of the cell with ``params`` (module docstring).

    The median of the measured cells of its (norms, d); else, per norm, the median at
    the nearest measured d of that norm (else :data:`PRIOR`'s nearest d), scaled like
    the training, d^2.
    """
    cls = cell_class(params)
    if cls in measured_cost:
        return statistics.median(c for c, _ in measured_cost[cls])
    d, total = params["d"], 0.0
    for norm in params["norms"]:
        table = {dd: statistics.median(c for c, _ in v)
                 for (n, dd), v in measured_cost.items() if n == norm} or PRIOR[norm]
        near = min(table, key=lambda x: abs(math.log(x / d)))
        total += table[near] * (d / near) ** 2
    return total


def plan(specs, stores):
    """``([(spec, [cells]), ...], measured)``: the cells not done, in the module's order."""
    cost = measured([r for st in stores.values() for r in st.rows(status="done")],
                    key=cell_class)
    order = (lambda c, i: (c.params["d"], c.replicate, estimate(c.params, cost), i, c.index))
    return pending_groups(specs, stores, order, validate=path_params), cost


def run(specs, out_dir, **kwargs):
    """Run every scaling cell not yet done (:func:`proofs_check.phase.driver.run`'s options).

    Returns
    -------
    dict
        ``ran``, ``failed``, ``left``, ``seconds``, ``estimate``, ``stopped``.
    """
    return _run(specs, out_dir, plan_fn=plan, estimate_fn=estimate, desc="scaling paths",
                **kwargs)
