"""Run the phase-map specs resumably, cheap cells first, with a progress bar and a time estimate.

The specs are ``examples/sweeps/phase_*.toml`` (one per d and pipeline, plus the
T-doubled neighbours of the quick regimes).  Each has its own results store,
``<out>/<spec name>.sqlite`` (not committed), and its CSV export
``<out>/<spec name>.csv`` (committed): a store that is missing is rebuilt from
its CSV before running, so a fresh checkout resumes where the committed
results stop.

Order: every cell not yet done, over all specs, sorted by tier (T = the
check's T and the first two seeds; then the T-doubled neighbours, which the
regime verdicts need; then the third seed; then 3T), then by d and by estimated cost inside a tier.  The estimate of a
cell is the median measured CPU seconds of the done cells of its class
(pipeline, d, t_mult) in the stores, else :data:`PRIOR` (measured once,
before the maps were run) scaled by the training length; the bar counts
estimated seconds, so its remaining time follows the measured rate.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import statistics
import time

from theorylab._json import to_jsonable
from theorylab._kernels.threads import limit_threads
from theorylab.sweep import Store, load_spec, run_sweep

from .regions import PARAMS, _parse

__all__ = ["PRIOR", "load_specs", "measured", "estimate", "plan", "pending_groups", "group_runs", "restore", "run",
           "export"]

# CPU seconds of one cell at T = the check's T, measured on one seed before the maps were
# run (one process, one Numba thread, 2 shared cores; FP: the l2 and linf claims, which
# share the clean training, on k = 4-5 at d <= 128, 8 at 256, 11 at 512; Li & Li: the
# standard and the adversarial claim together, s = 4).
PRIOR = {"fp": {64: 9, 128: 24, 256: 58, 512: 140},
         "ll": {64: 6, 128: 8, 256: 14, 512: 25}}
# Longer training costs less than proportionally (the evaluations do not grow with T):
# measured at d = 128, 3T cost 1.0x (l2) and 1.8x (linf) the cell at T.
T_FACTOR = 0.4


def load_specs(spec_dir, pattern="phase_*.toml"):
    """The specs of ``spec_dir`` matching ``pattern`` (the phase specs), sorted by name."""
    paths = sorted(glob.glob(os.path.join(spec_dir, pattern)))
    if not paths:
        raise ValueError(f"--specs: no {pattern} in {spec_dir!r}")
    return [load_spec(p) for p in paths]


def _class(params):
    return ("ll" if "claims" in params else "fp", params["d"], params["t_mult"])


def measured(rows, key=None):
    """``{cell class: [(cpu s, wall s), ...]}`` of the done rows (store or CSV rows).

    ``key(params)`` is the class of a cell (default: pipeline, d, t_mult).
    """
    key = key or _class
    by = {}
    for r in rows:
        m = r.get("metrics") or {}
        cpu = m.get("cpu_seconds")
        if isinstance(cpu, (int, float)):
            by.setdefault(key(r["params"]), []).append((cpu, m.get("wall_seconds") or cpu))
    return by


def _measured(stores):
    return measured([r for st in stores for r in st.rows(status="done")])


def estimate(params, measured):
    """Estimated CPU seconds of the cell with ``params`` (module docstring)."""
    cls = _class(params)
    if cls in measured:
        return statistics.median(c for c, _ in measured[cls])
    prior = PRIOR[cls[0]]
    d = cls[1]
    # Off the table: the nearest d measured, scaled like the training (~ d^2).
    near = min(prior, key=lambda x: abs(math.log(x / d)))
    return prior[near] * (d / near) ** 2 * (1 + T_FACTOR * (cls[2] - 1))


def _tier(cell):
    t = cell.params["t_mult"]
    if t == 1:
        return 0 if cell.replicate < 2 else 2
    return 1 if t == 2 else 3


def plan(specs, stores):
    """``[(spec, [cells]), ...]``: the cells not done, cheap first (module docstring).

    Consecutive cells of one spec form one group (one :func:`run_sweep` call).
    """
    measured = _measured(stores.values())
    # Tier, then d (the small maps complete first, every pipeline), then estimated cost.
    order = (lambda c, i: (_tier(c), c.params["d"], estimate(c.params, measured), i, c.index))
    return pending_groups(specs, stores, order), measured


def pending_groups(specs, stores, order, validate=None):
    """The cells of ``specs`` not done in ``stores``, sorted by ``order(cell, spec index)``.

    ``validate(params)`` is called on every cell first, so a bad spec fails before any
    cell runs.  Returns :func:`group_runs` of the sorted cells.
    """
    todo = []
    for i, spec in enumerate(specs):
        status = stores[spec.name].status_of(c.key for c in spec.cells())
        for c in spec.cells():
            if validate is not None:
                validate(c.params)
            if status.get(c.key) != "done":
                todo.append((order(c, i), spec, c))
    todo.sort(key=lambda t: t[0])
    return group_runs((spec, cell) for _, spec, cell in todo)


def group_runs(ordered):
    """``[(spec, [cells]), ...]`` from ``(spec, cell)`` pairs in run order.

    Consecutive cells of one spec form one group (one :func:`run_sweep` call), so the
    order is kept across specs.
    """
    groups = []
    for spec, cell in ordered:
        if groups and groups[-1][0] is spec:
            groups[-1][1].append(cell)
        else:
            groups.append((spec, [cell]))
    return groups


def restore(spec, store_path, csv_path):
    """Rebuild a missing store from its CSV export (done cells only); return rows restored."""
    if os.path.exists(store_path) or not os.path.exists(csv_path):
        return 0
    import csv

    by_key = {c.key: c for c in spec.cells()}
    results = []
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["status"] != "done" or row["key"] not in by_key:
                continue
            metrics = {c: _parse(v) for c, v in row.items() if c not in PARAMS and v != "" and (
                "/" in c or c in ("cpu_seconds", "wall_seconds"))}
            versions = row.get("versions") or None
            results.append({
                "key": row["key"], "status": "done", "extra": None, "error": None,
                "traceback": None, "metrics": json.dumps(to_jsonable(metrics), sort_keys=True),
                "started": _parse(row.get("started", "")),
                "finished": _parse(row.get("finished", "")),
                "seconds": _parse(row.get("seconds", "")), "worker": row.get("worker") or None,
                "versions": json.loads(versions) if versions else None})
    with Store(store_path) as store:
        store.bind(spec)
        store.add_cells(spec.cells(), spec.experiment_id)
        for res in results:
            store.record(res)
    return len(results)


def export(specs, out_dir):
    """Write ``<out>/<spec>.csv`` from every store that exists; return the paths."""
    paths = []
    for spec in specs:
        store_path = os.path.join(out_dir, f"{spec.name}.sqlite")
        if os.path.exists(store_path):
            with Store(store_path, create=False) as store:
                paths.append(store.export_csv(os.path.join(out_dir, f"{spec.name}.csv")))
    return paths


def _fmt_minutes(seconds):
    return f"{seconds / 60:.1f} min"


def run(specs, out_dir, *, backend="processes", workers=1, max_minutes=None, progress=True,
        log=print, plan_fn=None, estimate_fn=None, desc="phase maps"):
    """Run every phase cell not yet done, cheap first, until done or ``max_minutes``.

    ``plan_fn(specs, stores)`` and ``estimate_fn(params, measured)`` replace
    :func:`plan` and :func:`estimate` (the scaling paths order and price their cells
    their own way); ``desc`` labels the progress bar.

    Returns
    -------
    dict
        ``ran``, ``failed``, ``left`` (cells not done), ``seconds``, ``estimate``
        (CPU seconds of the cells not done before the run), ``stopped``.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {s.name: os.path.join(out_dir, f"{s.name}.sqlite") for s in specs}
    for spec in specs:
        n = restore(spec, paths[spec.name], os.path.join(out_dir, f"{spec.name}.csv"))
        if n:
            log(f"{spec.name}: restored {n} done cells from its CSV")
    stores = {}
    try:
        for spec in specs:  # every cell gets its row, so status and exports show the grid
            stores[spec.name] = Store(paths[spec.name])
            stores[spec.name].bind(spec)
            stores[spec.name].add_cells(spec.cells(), spec.experiment_id)
        groups, measured = (plan_fn or plan)(specs, stores)
    finally:
        for st in stores.values():
            st.close()
    estimate_fn = estimate_fn or estimate
    est = {c.key: estimate_fn(c.params, measured) for _, cells in groups for c in cells}
    total = sum(est.values())
    n_cells = sum(len(cells) for _, cells in groups)
    ratio = [w / c for v in measured.values() for c, w in v if c > 0]
    ratio = statistics.median(ratio) if ratio else 1.3
    log(f"{n_cells} cells to run; estimated {_fmt_minutes(total)} of CPU, about "
        f"{_fmt_minutes(total * ratio / max(1, workers))} wall with {workers} worker(s) "
        f"(wall/CPU {ratio:.2f} measured)"
        + (f"; stopping after {max_minutes:g} min" if max_minutes else ""))
    summary = {"ran": 0, "failed": 0, "estimate": total, "stopped": False}
    t0 = time.perf_counter()
    bar = None
    if progress and n_cells:
        from tqdm.auto import tqdm

        bar = tqdm(total=round(total), unit="est-s", desc=desc,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} "
                              "estimated CPU s [{elapsed}<{remaining}{postfix}]")

    def over_budget():
        return max_minutes is not None and time.perf_counter() - t0 > 60 * max_minutes

    def on_result(res, _):
        summary["ran"] += 1
        summary["failed"] += res["status"] == "failed"
        if bar is not None:
            bar.update(est.get(res["key"], 0.0))
            bar.set_postfix_str(f"{summary['ran']}/{n_cells} cells, {summary['failed']} failed")
        return over_budget()

    # One worker: this process, with one Numba and one BLAS thread (what a pool worker gets;
    # the same bits), and no pool to spawn per group.
    serial = workers == 1
    with (limit_threads(1, 1) if serial else contextlib.nullcontext()):
        _run_groups(groups, paths, "serial" if serial else backend, workers, on_result,
                    over_budget, summary, bar)
    summary["seconds"] = time.perf_counter() - t0
    summary["left"] = n_cells - summary["ran"] + summary["failed"]
    return summary


def _run_groups(groups, paths, backend, workers, on_result, over_budget, summary, bar):
    try:
        for spec, cells in groups:
            if over_budget():
                summary["stopped"] = True
                break
            keys = {c.key for c in cells}
            out = run_sweep(spec, results=paths[spec.name], backend=backend, workers=workers,
                            select=lambda c, keys=keys: c.key in keys, on_result=on_result)
            if out["stopped"]:
                summary["stopped"] = True
                break
    finally:
        if bar is not None:
            bar.close()
