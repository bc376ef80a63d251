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


def _collect(checks, regime, seeds, jobs, params_override, bar, figures_dir=None,
             announce=None):
    """Per-check runs (in seed order) and figure paths, from serial or process-parallel runs.

    Returns ``({check id: [per-seed results]}, {check id: figure path})``.  With
    ``announce``, ``announce(check_id, runs, figure_path)`` is called as soon as a
    check's seeds are in and its figure is drawn.  The order of the jobs is
    :class:`proofs_check._schedule.Plan`'s (cheapest group first, then the rest
    longest first); the results do not depend on it.
    """
    from ._schedule import Plan, task_groups

    ids = [c.id for c in checks]
    by_id = {c.id: c for c in checks}
    if figures_dir is not None:
        os.makedirs(figures_dir, exist_ok=True)
    per_seed = {}
    figures = {}

    def finish(cid, path=None):
        if path is not None:
            figures[cid] = path
        if announce is not None:
            announce(cid, [per_seed[s][cid] for s in seeds], figures.get(cid))

    if jobs <= 1:
        # Group-major, cheapest group first, so that results come in all along the run.
        order = sorted(task_groups(ids), key=lambda gi: (gi[0].seconds, gi[0].name))
        with _one_blas_thread():
            for _, group in order:
                for seed in seeds:
                    _, res = _run_seed(group, regime, seed, params_override, by_id)
                    per_seed.setdefault(seed, {}).update(res)
                    if bar is not None:
                        bar.update(len(group))
                for cid in group:
                    job = _figure_job(cid, [per_seed[s][cid] for s in seeds], figures_dir,
                                      by_id)
                    finish(cid, None if job is None else
                           _render_figure(*job, figure=by_id[cid].figure))
        return {cid: [per_seed[s][cid] for s in seeds] for cid in ids}, figures
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    sources = sorted({SOURCES[c] for c in ids if c in SOURCES and SOURCES[c].kind != "theorylab"},
                     key=lambda s: (s.kind, s.target))
    with _serial_kernels_in_workers(), \
            ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init,
                                initargs=(sources,)) as pool:
        plan = Plan(ids, seeds, caching=pool.submit(_caching).result())
        running = {}
        while plan.pending() or running:
            # Submit only to free workers: the plan's order then decides what runs next.
            while len(running) < jobs:
                job = plan.next_job()
                if job is None:
                    break
                running[_submit(pool, job, regime, params_override, per_seed, seeds,
                                figures_dir, by_id)] = job
            if bar is not None:
                fams = plan.compiling
                bar.set_description("compiling " + ", ".join(fams) if fams else "check runs")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = running.pop(fut)
                result = fut.result()
                plan.done(job)
                if job.kind == "figure":
                    finish(job.check_id, result)
                elif job.kind == "task":
                    per_seed.setdefault(job.seed, {}).update(result[1])
                    if bar is not None:
                        bar.update(len(job.ids))
                    for cid in job.ids:
                        if not all(cid in per_seed.get(s, {}) for s in seeds):
                            continue
                        if _figure_job(cid, [per_seed[s][cid] for s in seeds], figures_dir,
                                       by_id) is None:
                            finish(cid)
                        else:
                            plan.add_figure(cid)
    return {cid: [per_seed[s][cid] for s in seeds] for cid in ids}, figures


def _submit(pool, job, regime, params_override, per_seed, seeds, figures_dir, by_id):
    from theorylab.sweep.warm import warm_shared

    if job.kind == "shared":
        return pool.submit(warm_shared)
    if job.kind == "warm":
        return pool.submit(_warm_families, list(job.families))
    if job.kind == "task":
        return pool.submit(_run_seed, list(job.ids), regime, job.seed, params_override)
    cid = job.check_id
    return pool.submit(_render_figure, *_figure_job(cid, [per_seed[s][cid] for s in seeds],
                                                    figures_dir, by_id))


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


def _warm_families(families):
    from theorylab.sweep.warm import warm_kernels

    return warm_kernels(families)


def _result(check, regime, seeds, runs, figure_path=None):
    """The :class:`CheckResult` of one check from its per-seed runs."""
    seconds = sum(r[2] for r in runs)
    errors = [r[1] for r in runs if r[0] == "error"]
    measurements = [r[1] for r in runs if r[0] == "ok"]
    if errors:
        last = errors[0].strip().splitlines()[-1] if errors[0].strip() else "an exception"
        return CheckResult(check, regime, list(seeds), measurements, [], ERROR,
                           f"the check raised {last}", seconds, error=errors[0])
    verdict, reason, crit = evaluate(check, measurements, list(seeds))
    return CheckResult(check, regime, list(seeds), measurements, crit, verdict, reason,
                       seconds, figure_path=figure_path)


def run_checks(checks, regime="quick", seeds=(0, 1, 2), figures_dir=None, progress=False,
               params_override=None, jobs=1, on_result=None):
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
        Worker processes; the tasks are (seed, task group) pairs
        (:mod:`proofs_check._schedule`: a group's checks run in one process, so
        they still share their trained networks).  Results do not depend on
        ``jobs``: kernels give the same bits for any thread count.
    on_result : callable, optional
        ``on_result(result)`` with each :class:`CheckResult` as soon as all its
        seeds are in (and its figure drawn), in the order they finish; the
        returned list is in the order of ``checks`` either way.

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
    by_id = {c.id: c for c in checks}
    done = {}

    def announce(cid, runs, figure_path):
        done[cid] = _result(by_id[cid], regime, seeds, runs, figure_path)
        if on_result is not None:
            on_result(done[cid])

    try:
        collected, figures = _collect(checks, regime, list(seeds), jobs, params_override, bar,
                                      figures_dir, announce)
    finally:
        if bar is not None:
            bar.close()
    return [done.get(c.id) or _result(c, regime, seeds, collected[c.id], figures.get(c.id))
            for c in checks]


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


def write_markdown(results, path, regime_notes=None, ladder_notes=None, full_regime_notes=None):
    """A Markdown report: per check, the claim, regime, criteria vs measurements, verdict, figure.

    ``regime_notes`` (``{check id: text}``, from the phase maps:
    :func:`proofs_check.phase.report.regime_notes`) says for each quick-regime check
    whether its regime's neighbours on the map hold or which one fails;
    ``full_regime_notes`` the same for the full regime, read at the map's nearest cell;
    ``ladder_notes`` (from the FGM length ladder:
    :func:`proofs_check.ladder.report.ladder_notes`) its verdict at longer FGM stages.
    """
    regime_notes = regime_notes or {}
    ladder_notes = ladder_notes or {}
    full_regime_notes = full_regime_notes or {}
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
        if r.regime == "quick" and r.check.id in regime_notes:
            out += [f"*This regime on the phase map (reports/phase_report.md):* "
                    f"{regime_notes[r.check.id]}.", ""]
        if r.regime == "full" and r.check.id in full_regime_notes:
            out += [f"*This regime on the phase map (reports/phase_report.md):* "
                    f"{full_regime_notes[r.check.id]}.", ""]
        if r.regime == "quick" and r.check.id in ladder_notes:
            out += [f"*Longer FGM stages (reports/ladder_report.md):* "
                    f"{ladder_notes[r.check.id]}.", ""]
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
