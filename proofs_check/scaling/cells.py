"""One cell of a scaling path: the FP claims V1-V4 of one norm at (d, k on the path), judged.

A cell is (norm, d, seed) with k = :func:`~proofs_check.scaling.paths.path_k` (d).  It
runs exactly what a phase-map cell runs (:func:`proofs_check.phase.cells.run_claims`:
each check's quick regime with d, k and T changed, judged by the check's own criteria,
per claim ``<id>/<measurement>``, ``<id>/margin/<criterion>``, ``<id>/verdict``,
``<id>/reason``), with one change of the regime and a few measurements added:

* The radius grid gets two radii below its first point (g0 / 4 and g0 / 2; l2
  0.0125 and 0.025, linf 0.00125 and 0.0025).  Along the path the linear rule's
  tau50 falls like sqrt(k / d) (l2) and sqrt(k) / d (linf): at d = 1024 in linf
  it is ~0.002, below the checks' first radius 0.005, where :func:`tau50` can
  only interpolate from eps = 0.  The radius each claim is judged at (eps_eval)
  and every criterion are unchanged; the tau50 ratios of V2 are judged on the
  finer curve.
* ``scaling/tau50_adv_certified`` and ``scaling/tau50_adv_attack``: tau50 of the
  FGM-trained network (V3's evaluation of it, from the pipeline's stage cache;
  no recomputation), ``scaling/k``, ``scaling/grid_min``, ``scaling/grid_max``.

T stays the quick regime's (``t_mult`` = 1): the reason is in
``reports/scaling_report.md`` (measured convergence along the path).
"""

from __future__ import annotations

from ..phase.cells import _check_params, cell_regime, claim_ids, run_claims
from .paths import path_params

__all__ = ["scaling_cell", "scaling_regime", "extended_grid"]


def extended_grid(grid):
    """``grid`` with g0 / 4 and g0 / 2 prepended (g0 its first radius)."""
    g0 = grid[0]
    return [g0 / 4, g0 / 2, *grid]


def scaling_regime(check, params):
    """The phase cell's regime of ``check`` with the radius grid extended downwards."""
    base = cell_regime(check, params)
    base["grid"] = extended_grid(base["grid"])
    return base


def _adv_tau50(seed, params, registry):
    from theorylab.pipelines.feature_purification import fp_run

    from .._fp_common import evaluated

    out = {}
    for norm in params["norms"]:
        p = scaling_regime(registry[f"fp.v3_adversarial_purifies_{norm}"], params)
        ev = evaluated(fp_run(seed, p), p, models=("adv",), seed=seed)["adv"]
        tag = "" if len(params["norms"]) == 1 else f"_{norm}"
        out[f"scaling/tau50_adv_certified{tag}"] = ev.tau50_certified
        out[f"scaling/tau50_adv_attack{tag}"] = ev.tau50_attack
        out["scaling/grid_min"], out["scaling/grid_max"] = p["grid"][0], p["grid"][-1]
    return out


def scaling_cell(seed, params):
    """Run one scaling-path cell.

    Parameters
    ----------
    seed : int
    params : dict
        ``d``, ``norms``, ``gamma``, ``anchor_d``, ``anchor_k`` (see
        :func:`~proofs_check.scaling.paths.path_params`); optional ``t_mult``.

    Returns
    -------
    dict
        The claims' measurements, margins, verdicts and reasons, the FGM-trained
        network's tau50, ``scaling/k``, ``cpu_seconds`` and ``wall_seconds``.
    """
    from theorylab.pipelines import clear

    from .. import load_checks

    p = path_params(params)
    _check_params(p, "fp")
    out = run_claims(seed, p, claim_ids("fp", p), regime=scaling_regime)
    v3 = [f"fp.v3_adversarial_purifies_{n}/verdict" for n in p["norms"]]
    if all(out.get(k) not in (None, "ERROR") for k in v3):
        out.update(_adv_tau50(seed, p, load_checks()))
    out["scaling/k"] = p["k"]
    # A cell's networks are never reused by another cell: free them (d = 1024 holds
    # ~20 MB per network and its evaluations).
    clear()
    return out
