"""Run registered checks over seeds; print a table; write Markdown and JSON reports."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
import traceback

import numpy as np

from theorylab._json import to_jsonable

from ._harness import (ERROR, FAIL, INCONCLUSIVE, PASS, SOURCES, CheckResult, CriterionResult,
                       evaluate)
from ._papers import PAPERS

__all__ = ["run_checks", "format_table", "write_json", "write_markdown", "ERROR"]


def _one_blas_thread():
    """Limit every BLAS (NumPy's too, used by ``@`` in Python code) to one thread.

    Check runs, serial or in workers, compute with one BLAS thread: OpenBLAS splits
    some products' reduction across threads, so bits would depend on the thread
    count and differ between ``--jobs 1`` and ``--jobs 2``; and with two workers,
    NumPy's threads oversubscribed the cores (quick, 3 seeds, 2 jobs: 212 s of CPU
    and 108 s wall, against 174 s and 88 s with one BLAS thread).
    """
    from theorylab._kernels.threads import limit_threads

    return limit_threads(blas_threads=1)


def _worker_init(sources=()):
    # One Numba thread and one BLAS thread per worker: the workers themselves fill the cores.
    # Users' checks (entry points, --module files) are registered again from their sources.
    from theorylab._kernels.threads import limit_process_threads

    from ._loading import reload_sources

    limit_process_threads(1, 1)
    reload_sources(sources)


def _run_seed(check_ids, regime, seed, params_override, checks=None):
    """Run the given checks for one seed in this process; measurements or tracebacks.

    ``checks`` (id -> Check) defaults to the registry (workers know checks by id only).
    """
    from . import load_checks

    registry = checks if checks is not None else load_checks()
    out = {}
    for cid in check_ids:
        check = registry[cid]
        params = dict(check.regimes[regime])
        params.update(params_override or {})
        t0 = time.perf_counter()
        try:
            out[cid] = ("ok", check.run(seed, params), time.perf_counter() - t0)
        except Exception:  # recorded; the other checks still run
            out[cid] = ("error", traceback.format_exc(), time.perf_counter() - t0)
    return seed, out


def _render_figure(check_id, measurements, path, figure=None):
    """Draw one check's figure from its per-seed measurements and save it (any process).

    ``figure`` defaults to the registered check's (workers know checks by id only).
    """
    import matplotlib.pyplot as plt

    if figure is None:
        from . import load_checks

        figure = load_checks()[check_id].figure
    fig = figure(measurements)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _figure_job(check_id, runs, figures_dir, checks_by_id):
    # (id, measurements, path) when the check ran cleanly on every seed and draws a figure.
    if figures_dir is None or checks_by_id[check_id].figure is None:
        return None
    if any(r[0] != "ok" for r in runs):
        return None
    return check_id, [r[1] for r in runs], os.path.join(figures_dir, f"{check_id}.png")


def _collect(checks, regime, seeds, jobs, params_override, bar, figures_dir=None):
    """Per-check runs (in seed order) and figure paths, from serial or process-parallel runs.

    Returns ``({check id: [per-seed results]}, {check id: figure path})``.  With
    ``jobs > 1`` a check's figure is drawn in the worker pool as soon as all its seeds
    are in, so drawing overlaps the remaining runs instead of following them (28
    figures took 11 s in the parent, serially, after a 117 s run).
    """
    ids = [c.id for c in checks]
    by_id = {c.id: c for c in checks}
    if figures_dir is not None:
        os.makedirs(figures_dir, exist_ok=True)
    per_seed = {}
    figures = {}
    if jobs <= 1:
        with _one_blas_thread():
            for seed in seeds:
                _, per_seed[seed] = _run_seed(ids, regime, seed, params_override, by_id)
                if bar is not None:
                    bar.update(len(ids))
        runs = {cid: [per_seed[s][cid] for s in seeds] for cid in ids}
        for cid in ids:
            job = _figure_job(cid, runs[cid], figures_dir, by_id)
            if job is not None:
                figures[cid] = _render_figure(*job, figure=by_id[cid].figure)
        return runs, figures
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # Tasks are (seed, family) pairs, biggest family first (longest-processing-time
    # order), so that 3 seeds keep 2 workers busy: one task per seed left a worker
    # idle for a third of the run (quick, 3 seeds, 2 jobs: 149 s wall for 230 s CPU).
    tasks = [(s, group) for group in _task_groups(ids) for s in seeds]
    ctx = multiprocessing.get_context("spawn")
    sources = sorted({SOURCES[c] for c in ids if c in SOURCES and SOURCES[c].kind != "theorylab"},
                     key=lambda s: (s.kind, s.target))
    with _serial_kernels_in_workers(), \
            ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init,
                                initargs=(sources,)) as pool:
        _compile_once(pool, ids, jobs, bar)
        futures = [pool.submit(_run_seed, group, regime, s, params_override)
                   for s, group in tasks]
        drawing = {}
        for fut in as_completed(futures):
            seed, res = fut.result()
            per_seed.setdefault(seed, {}).update(res)
            if bar is not None:
                bar.update(len(res))
            for cid in res:
                if all(cid in per_seed.get(s, {}) for s in seeds):
                    job = _figure_job(cid, [per_seed[s][cid] for s in seeds], figures_dir,
                                      by_id)
                    if job is not None:
                        drawing[cid] = pool.submit(_render_figure, *job)
        figures = {cid: f.result() for cid, f in drawing.items()}
    return {cid: [per_seed[s][cid] for s in seeds] for cid in ids}, figures


# Seconds to compile each kernel family from a cold cache (theorylab.sweep.warm), measured
# on the 2-core machine under load: two_layer 48-59, cnn 25-44, polynomial 9-17, ntk 3-8,
# linear 5-6.  Only their order matters: it balances the families over the workers.
_COMPILE_COST = {"two_layer": 50.0, "cnn": 30.0, "polynomial": 10.0, "ntk": 5.0, "linear": 5.0}


def _compile_once(pool, ids, jobs, bar=None):
    """Fill a cold Numba cache before any check runs, each kernel family in one worker.

    Without it every worker compiled the kernels its first task called, the same ones
    at the same time (the fp tasks of two seeds), doubling the compile work and writing
    the same cache files concurrently (numba #10128).  The families are split over the
    workers, costliest first; the kernels every family shares (the worlds' samplers, the
    logistic loss) are compiled first, by one worker.  From a warm cache this only loads
    kernels the workers load anyway (a few seconds per family).
    """
    from theorylab.sweep.warm import families_for, warm_shared

    if not pool.submit(_caching).result():
        return  # nothing is shared between the workers: each compiles what it calls
    families = {f for cid in ids for f in families_for({"kind": "check", "check": cid})}
    bins = _compile_bins(families, jobs)
    if bar is not None:
        bar.set_description("compiling or loading kernels")
    pool.submit(warm_shared).result()
    for fut in [pool.submit(_warm_families, b) for b in bins]:
        fut.result()
    if bar is not None:
        bar.set_description("check runs")


def _caching():
    # Asked in a worker (the parent's setting could differ only through its environment).
    from theorylab._kernels.cache import CACHE_ENABLED

    return CACHE_ENABLED


@contextlib.contextmanager
def _serial_kernels_in_workers():
    """Spawned workers compile their kernels without ``parallel=True`` (``_jit``).

    They run one kernel thread each, so the parallel build would only cost compile time
    (most of a cold start) and bring nothing; the bits are the same either way.  The
    parent's own kernels are untouched (the variable is read at import).
    """
    from theorylab._kernels._jit import SERIAL_ENV

    before = os.environ.get(SERIAL_ENV)
    os.environ[SERIAL_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[SERIAL_ENV]
        else:
            os.environ[SERIAL_ENV] = before


def _compile_bins(families, jobs):
    """Kernel families split into at most ``jobs`` lists, longest-processing-time first."""
    order = sorted(families, key=lambda f: (-_COMPILE_COST.get(f, 1.0), f))
    bins = [[] for _ in range(max(1, min(jobs, len(order))))]
    load = [0.0] * len(bins)
    for f in order:
        k = load.index(min(load))
        bins[k].append(f)
        load[k] += _COMPILE_COST.get(f, 1.0)
    return [b for b in bins if b]


def _warm_families(families):
    from theorylab.sweep.warm import warm_kernels

    return warm_kernels(families)


# Check families in decreasing cost (CPU seconds per seed, quick regime, measured on the
# 2-core machine: fp with the same-radius checks 43, img 10.5, lb 9, ll 8.5).  The
# same-radius checks reuse the fp pipeline's linf network (memoised per process), so they
# travel with the fp checks.  Results do not depend on the grouping: every stage is a
# function of the seed and the parameters only.
_FAMILY_ORDER = ("fp", "img", "lb", "ll")


def _family(check_id):
    if check_id.startswith("lb.same_radius"):
        return "fp"
    return check_id.split(".", 1)[0]


def _task_groups(ids):
    """The check ids split into families, costliest family first, order kept inside."""
    groups = {}
    for cid in ids:
        groups.setdefault(_family(cid), []).append(cid)
    rank = {f: i for i, f in enumerate(_FAMILY_ORDER)}
    return [groups[f] for f in sorted(groups, key=lambda f: rank.get(f, len(rank)))]


def run_checks(checks, regime="quick", seeds=(0, 1, 2), figures_dir=None, progress=False,
               params_override=None, jobs=1):
    """Run each check on each seed and evaluate it.

    Parameters
    ----------
    checks : list of Check
    regime : {"quick", "full"}
    seeds : sequence of int
    figures_dir : str, optional
        Where each check's figure is saved as ``<id>.png``.
    progress : bool
        tqdm bar over (check, seed) runs.
    params_override : dict, optional
        Merged into every check's parameters (for experiments and mutation tests).
    jobs : int, default 1
        Worker processes; the tasks are (seed, check family) pairs, costliest
        family first (a family's checks run in one process, so they still share
        their trained networks).  Results do not depend on ``jobs``: kernels give
        the same bits for any thread count.

    Returns
    -------
    list of CheckResult
        A check that raised gets verdict ``ERROR`` with its traceback; the other
        checks still run.
    """
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(checks) * len(seeds), desc="check runs", unit="run")
    collected, figures = _collect(checks, regime, list(seeds), jobs, params_override, bar,
                                  figures_dir)
    results = []
    for check in checks:
        runs = collected[check.id]
        seconds = sum(r[2] for r in runs)
        errors = [r[1] for r in runs if r[0] == "error"]
        measurements = [r[1] for r in runs if r[0] == "ok"]
        error = errors[0] if errors else None
        if error is not None:
            last = error.strip().splitlines()[-1] if error.strip() else "an exception"
            res = CheckResult(check, regime, list(seeds), measurements, [], ERROR,
                              f"the check raised {last}", seconds, error=error)
        else:
            verdict, reason, crit = evaluate(check, measurements, list(seeds))
            res = CheckResult(check, regime, list(seeds), measurements, crit, verdict, reason,
                              seconds, figure_path=figures.get(check.id))
        results.append(res)
    if bar is not None:
        bar.close()
    return results


def format_table(results):
    """A plain-text table: one block per check, one line per criterion."""
    lines = []
    width = max((len(r.check.id) for r in results), default=10)
    for r in results:
        lines.append(f"{r.check.id:<{width}}  {r.verdict:<12} {r.check.provenance}  "
                     f"({r.seconds:.1f} s)  {r.reason}")
        for c in r.criteria:
            tag = "pre " if c.criterion.kind == "precondition" else ""
            lines.append(f"{'':<{width}}    {tag}{c.criterion.describe():<40} "
                         f"measured {c.summary():<28} {c.status}")
    counts = {v: sum(r.verdict == v for r in results) for v in (PASS, FAIL, INCONCLUSIVE, ERROR)}
    lines.append("summary: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n))
    return "\n".join(lines)


def _is_timing(key):
    # Wall-clock seconds change on every run: kept out of the reproducible report.
    return key == "seconds" or key.startswith("seconds_")


def _result_dict(r):
    return {
        "id": r.check.id, "paper": r.check.paper, "claim": r.check.claim,
        "provenance": r.check.provenance, "regime": r.regime,
        "params": to_jsonable(r.check.regimes[r.regime]), "seeds": r.seeds,
        "verdict": r.verdict, "reason": r.reason,
        "criteria": [{"criterion": c.criterion.describe(), "kind": c.criterion.kind,
                      "reason": c.criterion.reason, "values": to_jsonable(c.values),
                      "status": c.status} for c in r.criteria],
        "measurements": to_jsonable([{k: v for k, v in m.items()
                                      if k != "extra" and not _is_timing(k)}
                                     for m in r.measurements]),
        "figure": r.figure_path, "notes": r.check.notes, "error": r.error,
    }


def _environment():
    import scipy

    from theorylab import __version__
    from theorylab._kernels.threads import blas_kernels, numba_version

    return {"theorylab": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": numba_version(), "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "blas_kernels": blas_kernels()}


def _papers(results):
    # The papers of the checks that ran, in order of first appearance, with the full
    # reference where theorylab knows it (a user's check names its own paper).
    return [{"paper": p, "reference": PAPERS.get(p, "")}
            for p in dict.fromkeys(r.check.paper for r in results)]


def write_json(results, path):
    """Write every result (measurements per seed, criteria, verdicts) as JSON.

    Timings are left out (see :func:`write_timings`): the same seeds give the same
    file, bit for bit, whatever the run's speed or ``jobs``.
    """
    with open(path, "w") as fh:
        json.dump({"environment": _environment(), "papers": _papers(results),
                   "results": [_result_dict(r) for r in results]}, fh, indent=2)


def write_timings(results, path):
    """Write the run's timings: seconds per check and every ``seconds*`` measurement.

    Kept apart from the report and the JSON, which must reproduce bit for bit.
    """
    rows = [{"id": r.check.id, "seconds": r.seconds,
             "per_seed": [{k: v for k, v in m.items() if _is_timing(k)}
                          for m in r.measurements]} for r in results]
    with open(path, "w") as fh:
        json.dump({"environment": _environment(), "results": to_jsonable(rows)}, fh, indent=2)


def _cell(text):
    # A literal '|' (as in |cos|) would end a Markdown table cell.
    return str(text).replace("|", "\\|")


_SIDES = ("attack", "certified", "exact", "unresolved", "masking")


def _sandwiches(result):
    # Robustness numbers reported as <name>_attack / _certified / _exact / _unresolved:
    # one table row per name, the sides side by side (median [min, max] over seeds).
    first = result.measurements[0] if result.measurements else {}
    names = sorted({k[:-len("_attack")] for k in first if k.endswith("_attack")})
    rows = []
    for name in names:
        cells = []
        for side in _SIDES:
            key = f"{name}_{side}"
            if not any(key in m for m in result.measurements):
                cells.append("" if side == "masking" else "n/a")
                continue
            vals = [float(m.get(key, 0.0 if side == "masking" else np.nan))
                    for m in result.measurements]
            cells.append(CriterionResult(None, vals, "").summary())
        rows.append(f"| `{name}` | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return ["", "*Robust accuracy, both sides (certified <= exact <= attack; unresolved "
            "points and gradient-masking flags counted):*", "",
            "| quantity | attack (upper) | certified (lower) | exact | unresolved | masking |",
            "|---|---|---|---|---|---|"] + rows


def _other_measurements(result):
    # Numbers a check measured that no criterion judges (context for the reader); timings
    # are in the summary table already, sandwich sides in their own table.
    judged = {c.criterion.key for c in result.criteria}
    first = result.measurements[0] if result.measurements else {}
    sandwich = {f"{k[:-len('_attack')]}_{side}" for k in first if k.endswith("_attack")
                for side in _SIDES}
    keys = [k for k, v in first.items()
            if k != "extra" and k not in judged and k not in sandwich
            and not _is_timing(k)
            and isinstance(v, (int, float, np.number))
            and not isinstance(v, bool)]
    parts = []
    for k in keys:
        vals = [float(m.get(k, np.nan)) for m in result.measurements]
        summary = CriterionResult(None, vals, "").summary()
        parts.append(f"`{k}` {summary}")
    return ", ".join(parts)


def write_markdown(results, path):
    """A Markdown report: per check, the claim, regime, criteria vs measurements, verdict, figure."""
    out = ["# theorylab theorem-check report", "", "Papers whose claims were checked:", ""]
    out += [f"- {p['paper']}" + (f": {p['reference']}" if p["reference"] else "")
            for p in _papers(results)]
    out.append("")
    env = _environment()
    out.append("Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    out.append("")
    out.append("Provenance tags: [C] the paper's claim (confirmed from its abstract/talks); "
               "[D] derived or reconstructed in theorylab's spec, not the paper's statement.")
    out += ["", "Timings change from run to run and are not in this report "
            "(`theorylab check --timings PATH` writes them).", "",
            "| check | verdict | tag |", "|---|---|---|"]
    out += [f"| {r.check.id} | **{r.verdict}** | {r.check.provenance} |" for r in results]
    base = os.path.dirname(os.path.abspath(path))
    for r in results:
        out += ["", f"## {r.check.id}: {r.verdict}", "",
                f"*Paper:* {r.check.paper}  ", f"*Claim {r.check.provenance}:* {r.check.claim}",
                "", f"*Regime ({r.regime}), seeds {r.seeds}:* `"
                + json.dumps(to_jsonable(r.check.regimes[r.regime])) + "`", ""]
        if r.reason:
            out += [f"*Why:* {r.reason}", ""]
        if r.criteria:
            out += ["| criterion | measured: median [min, max] | status | why this threshold |",
                    "|---|---|---|---|"]
            for c in r.criteria:
                kind = " (precondition)" if c.criterion.kind == "precondition" else ""
                out.append(f"| `{c.criterion.describe()}`{kind} | {c.summary()} | {c.status} | "
                           f"{_cell(c.criterion.reason)} |")
        out += _sandwiches(r)
        other = _other_measurements(r)
        if other:
            out += ["", "*Other measurements (no criterion), median [min, max]:* " + other]
        if r.error:
            out += ["", "```", r.error.strip(), "```"]
        if r.check.notes:
            out += ["", f"*Notes:* {r.check.notes}"]
        if r.figure_path:
            out += ["", f"![{r.check.id}]({os.path.relpath(r.figure_path, base)})"]
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
