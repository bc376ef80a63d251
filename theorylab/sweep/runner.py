"""The driver: expand a spec, skip finished cells, run the rest on a backend, store each.

Only this process writes the results file, one transaction per finished cell,
so an interrupted sweep (Ctrl-C, SIGKILL, a lost machine) loses at most the
cells that were running; running it again runs exactly the cells that are not
``done`` (pending ones, and failed ones again).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import time

from .backends import BACKENDS, default_workers, run_dask, run_processes, run_serial
from .spec import Spec, load_spec
from .store import Store
from .warm import families_for, warm_kernels

__all__ = ["run_sweep", "default_results_path"]

_RUNNERS = {"serial": run_serial, "processes": run_processes, "dask": run_dask}


def default_results_path(spec):
    """``<spec name>.sqlite`` in the current directory."""
    return os.path.abspath(f"{spec.name}.sqlite")


@contextlib.contextmanager
def _exclusive(path):
    # Two drivers on one results file would run the same cells twice; the lock is
    # released by the OS when its holder dies, even by SIGKILL.
    try:
        import fcntl
    except ImportError:  # not POSIX: no guard
        yield
        return
    fh = open(path + ".lock", "w")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"results: another sweep is writing {path!r}") from None
        yield
    finally:
        fh.close()


def run_sweep(spec, *, results=None, backend="serial", workers=None, scheduler=None,
              progress=False, max_attempts=3, select=None, on_result=None):
    """Run every cell of ``spec`` that the results file does not hold as ``done``.

    Parameters
    ----------
    spec : Spec or path to a TOML spec
    results : str, optional
        SQLite file (created if missing); default :func:`default_results_path`.
    backend : {"serial", "processes", "dask"}
    workers : int, optional
        Worker processes (``processes``, local ``dask``); default one per core.
    scheduler : str, optional
        ``tcp://host:port`` of a running Dask scheduler (``dask`` only); without
        it a LocalCluster on 127.0.0.1 is started and stopped.
    progress : bool, default False
        A tqdm bar of cells done, failed and left (the CLI turns it on).
    max_attempts : int, default 3
        Runs of a cell whose worker process dies before it is recorded failed.
    select : callable, optional
        ``select(cell) -> bool``: run only the selected cells not yet done (every
        cell of the spec still gets its row, so the others stay ``pending``).
        A driver uses it to run a grid in passes, cheap cells first.
    on_result : callable, optional
        ``on_result(result, summary)``, called after each cell is stored; a true
        return value stops the sweep there (the cells not yet run stay
        ``pending``, a later run resumes them).  ``summary`` gains
        ``stopped = True``.

    Returns
    -------
    dict
        ``results`` (path), ``total`` cells in the spec, ``skipped`` (already
        done), ``unselected`` (not done and left out by ``select``), ``ran`` in
        this call, of which ``done`` and ``failed``, ``stopped`` (by
        ``on_result``), ``seconds``.

    Raises
    ------
    ValueError
        Bad backend, workers or scheduler, a malformed spec, or a results
        file of another experiment; raised before any cell runs.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if scheduler is not None:
        if backend != "dask":
            raise ValueError("scheduler is only used by backend 'dask'")
        if not (isinstance(scheduler, str) and "://" in scheduler):
            raise ValueError(f"scheduler must be an address like tcp://host:8786, got "
                             f"{scheduler!r}")
    if backend == "dask" and importlib.util.find_spec("distributed") is None:
        raise ValueError("backend 'dask' needs dask.distributed: pip install 'theorylab[dask]'")
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    results = os.path.abspath(results) if results else default_results_path(spec)
    t0 = time.perf_counter()
    cells = spec.cells()
    with _exclusive(results), Store(results) as store:
        store.bind(spec)
        store.add_cells(cells, spec.experiment_id)
        status = store.status_of(c.key for c in cells)
        todo = [c for c in cells if status.get(c.key) != "done"
                and (select is None or select(c))]
        n_done = sum(status.get(c.key) == "done" for c in cells)
        summary = {"results": results, "total": len(cells), "skipped": n_done,
                   "unselected": len(cells) - n_done - len(todo), "ran": 0, "done": 0,
                   "failed": 0, "stopped": False}
        if todo:
            families = families_for(spec.experiment)
            # Compile once before workers run cells (numba #10128); serial compiles in place.
            warm = (functools.partial(warm_kernels, families)
                    if families and backend != "serial" else None)
            threads = None if backend == "serial" else 1
            tasks = [dict(c.task(spec.experiment), numba_threads=threads) for c in todo]
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=len(todo) + n_done, initial=n_done, unit="cell",
                           desc=f"{spec.name} [{backend}]")
            results_of = _RUNNERS[backend](tasks, workers=workers or default_workers(),
                                           scheduler=scheduler, warm=warm,
                                           max_attempts=max_attempts)
            try:
                for res in results_of:
                    store.record(res)
                    summary["ran"] += 1
                    summary[res["status"]] += 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(done=summary["skipped"] + summary["done"],
                                        failed=summary["failed"],
                                        left=len(todo) - summary["ran"])
                    if on_result is not None and on_result(res, summary):
                        summary["stopped"] = True
                        break
            finally:
                results_of.close()  # a stop or an error: the backend shuts its workers now
                if bar is not None:
                    bar.close()
    summary["seconds"] = time.perf_counter() - t0
    return summary
