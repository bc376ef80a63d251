"""One cell of the adversarial-training length ladder: V3 and V4 of one norm at T_adv x m.

A cell is (norm, ``adv_mult`` m, ``run_seed``).  It runs the checks' quick regime of
that norm with one change, the FGM stage's length ``T_adv`` multiplied by m (the
clean stage, its length T and every radius, batch and criterion unchanged), through
:func:`proofs_check.phase.cells.run_claims`: each claim judged by the check's own
criteria, per claim ``<id>/<measurement>``, ``<id>/margin/<criterion>``,
``<id>/verdict``, ``<id>/reason``.  Added, from the FGM run's History (the stage
cache; nothing recomputed):

* ``ladder/T_adv``: the FGM steps run;
* ``ladder/dense_ratio_adv``: the median dense ratio at the last step;
* ``ladder/loss_adv_tail``: the mean FGM loss over the window the convergence
  diagnosis judges (the run's last fifth);
* ``ladder/adv_converged``: 1 if the FGM stage was diagnosed converged, else 0.

The pipeline's seed is ``run_seed`` (0, 1, 2: the check report's seeds), not the
sweep's per-cell seed: the rungs of one seed then share their clean network and
world, so a trend along the ladder is a trend of one run, and the x1 rung repeats
the check report's numbers bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from ..phase.cells import _scaled, run_claims

__all__ = ["ladder_cell", "ladder_regime", "ladder_ids", "NORMS"]

NORMS = ("l2", "linf")
_CLAIMS = ("fp.v4_principle", "fp.v3_adversarial_purifies")


def ladder_ids(norm):
    """The check ids a ladder cell of ``norm`` judges (V4 first: it needs no evaluation)."""
    return [f"{stem}_{norm}" for stem in _CLAIMS]


def ladder_regime(check, params):
    """``check``'s quick regime with ``T_adv`` multiplied by ``params["adv_mult"]``."""
    base = dict(check.regimes["quick"])
    base["T_adv"] = _scaled(base["T_adv"], params["adv_mult"])
    return base


def _check(params):
    norm = params.get("norm")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    m = params.get("adv_mult")
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not (m > 0 and math.isfinite(m)):
        raise ValueError(f"adv_mult must be a finite number > 0, got {m!r}")
    s = params.get("run_seed")
    if isinstance(s, bool) or not isinstance(s, int) or s < 0:
        raise ValueError(f"run_seed must be an integer >= 0, got {s!r}")


def _history_measurements(seed, params, check):
    from theorylab.pipelines.feature_purification import fp_run
    h = fp_run(seed, ladder_regime(check, params)).adv_history
    losses = np.asarray(h.losses, dtype=np.float64)
    n = int(h.convergence["window_steps"])
    return {"ladder/T_adv": int(losses.size),
            "ladder/dense_ratio_adv": float(h.records[-1]["dense_ratio"]),
            "ladder/loss_adv_tail": float(losses[-n:].mean()),
            "ladder/adv_converged": int(bool(h.converged))}


def ladder_cell(seed, params):
    """Run one rung of the ladder.

    Parameters
    ----------
    seed : int
        The sweep's cell seed; unused (the module docstring says why).
    params : dict
        ``norm`` ("l2" or "linf"), ``adv_mult`` (> 0), ``run_seed`` (int >= 0).

    Returns
    -------
    dict
        V4's and V3's measurements, margins, verdicts and reasons, the ``ladder/*``
        measurements, ``cpu_seconds`` and ``wall_seconds``.
    """
    from theorylab.pipelines import clear

    from .. import load_checks

    del seed
    _check(params)
    ids = ladder_ids(params["norm"])
    try:
        out = run_claims(params["run_seed"], params, ids, regime=ladder_regime)
        if out.get(f"{ids[0]}/verdict") != "ERROR":
            out.update(_history_measurements(params["run_seed"], params,
                                             load_checks()[ids[0]]))
    finally:
        clear()  # no rung reuses another's FGM network
    return out
