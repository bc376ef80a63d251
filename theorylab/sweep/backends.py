"""Where cells run: ``serial`` (this process), ``processes`` (a local pool), ``dask``.

Every backend is a generator ``run_<backend>(tasks, ...)`` yielding one result
dict per task (from :func:`~.experiments.run_cell`) as soon as it is known, in
completion order; the driver writes each to the store before asking for the
next.  Results are the same bits on every backend: a cell's randomness comes
from its own seed only, and the kernels give the same bits for any thread count.

Worker processes get one Numba thread and one BLAS thread each
(``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS`` = 1 in their environment from birth, so n workers use n
cores and no more).  A worker process that dies mid-cell (segfault, OOM kill)
does not lose the cell: it is run again, up to ``max_attempts`` times in all,
then recorded as failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

from .experiments import failed_result, run_cell

__all__ = ["BACKENDS", "WORKER_ENV", "run_serial", "run_processes", "run_dask", "worker_env",
           "default_workers"]

BACKENDS = ("serial", "processes", "dask")
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}


def default_workers():
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def worker_env():
    """Set :data:`WORKER_ENV` in ``os.environ`` while worker processes are being spawned.

    Spawned children copy the parent's environment when they start, before
    they import NumPy or Numba.  The parent has already loaded both, so the
    variables do not change its own thread pools; they are restored on exit.
    """
    old = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        _restore_environ(old)


def run_serial(tasks, **_):
    """Run the cells one after the other in this process."""
    for t in tasks:
        yield run_cell(t)


def _died(task, attempts, why):
    return failed_result(task, f"WorkerDied: the worker process died {attempts} time(s) "
                               f"while running this cell ({why})")


def _watch_parent(parent):
    # A pool worker outlives a driver killed with SIGKILL (nothing closes its queue);
    # it exits as soon as it is re-parented.
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run_processes(tasks, *, workers=None, warm=None, max_attempts=3, **_):
    """Run the cells on a pool of ``workers`` spawned processes (default: one per core).

    At most ``workers`` cells are in flight.  When a worker dies (which breaks
    the pool) the cells in flight are suspects: the pool is rebuilt and they
    run again one at a time.  Only a cell that breaks the pool while running
    alone is charged an attempt, so the cells that only shared the pool with it
    are never charged.  ``warm``
    (a callable) fills the Numba cache in this process before any cell starts.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    workers = workers or default_workers()
    todo = list(tasks)[::-1]  # pop() from the end keeps the spec's order
    suspects, attempts, idle_breaks = [], {}, 0
    ctx = multiprocessing.get_context("spawn")  # fork would copy the parent's thread pools
    while todo or suspects:
        broken, running = None, {}
        with worker_env():
            pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_watch_parent,
                                       initargs=(os.getpid(),))
            # Start every worker now: they import the package while the parent warms the
            # Numba cache (importing compiles nothing, so they cannot race the parent).
            ready = [pool.submit(os.getpid) for _ in range(workers)]
        if warm is not None:
            warm()
            warm = None
        wait(ready)
        try:
            while (todo or suspects or running) and broken is None:
                while (suspects and not running) or (todo and not suspects
                                                     and len(running) < workers):
                    queue = suspects or todo
                    t = queue.pop()
                    try:
                        with worker_env():  # a replacement worker may be spawned here
                            running[pool.submit(run_cell, t)] = t
                    except BrokenProcessPool as exc:  # broke before this cell started
                        broken = exc
                        queue.append(t)
                        break
                if broken is not None:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    t = running.pop(fut)
                    try:
                        res = fut.result()
                    except BrokenProcessPool as exc:
                        broken = exc
                        running[fut] = t
                        continue
                    except Exception as exc:  # e.g. a result that cannot be unpickled
                        res = failed_result(t, f"{type(exc).__name__}: {exc}")
                    yield res
        finally:
            # Instant after a clean finish; after a crash or an interrupt, do not wait.
            pool.shutdown(wait=broken is None and not running, cancel_futures=True)
        if broken is not None and not running:
            idle_breaks += 1  # the pool broke with no cell running: workers die at start
            if idle_breaks >= max_attempts:
                raise RuntimeError(
                    f"worker processes die before running any cell ({broken}); a script that "
                    "runs a sweep on processes needs the `if __name__ == '__main__':` guard")
        # In flight when the pool broke.  A breaking pool fails every pending future, even
        # one whose cell had finished, so only a cell that broke the pool while running
        # alone is charged an attempt; the others are retried alone, uncharged.
        alone = len(running) == 1
        for t in running.values():
            if not alone:
                suspects.append(t)
                continue
            n = attempts[t["key"]] = attempts.get(t["key"], 0) + 1
            if n >= max_attempts:
                yield _died(t, n, str(broken))
            else:
                suspects.append(t)


def _warm_hosts(client, warm):
    # One worker per host compiles into that host's Numba cache, one host at a time, so
    # that no two processes write the same cache concurrently (numba #10128).
    by_host = {}
    for addr, info in client.scheduler_info()["workers"].items():
        by_host.setdefault(info.get("host", addr), addr)
    for addr in by_host.values():
        client.run(warm, workers=[addr])


def _restore_environ(saved):
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _pre_spawn_environ(default):
    """Environment for a local Dask worker: :data:`WORKER_ENV`, without malloc trimming.

    distributed's default sets ``MALLOC_TRIM_THRESHOLD_=65536`` (it returns freed
    memory to the OS sooner).  Cells allocate and free arrays of a few hundred
    KiB every step, so glibc then unmaps and re-faults them each time: measured,
    the same 128-cell grid took 52 s of cell time on Dask workers against 42 s
    in the ``processes`` pool.  Only that default value is dropped.
    """
    env = dict(default, **WORKER_ENV)
    if env.get("MALLOC_TRIM_THRESHOLD_") in (65536, "65536"):
        del env["MALLOC_TRIM_THRESHOLD_"]
    return env


def run_dask(tasks, *, workers=None, scheduler=None, warm=None, max_attempts=3, **_):
    """Run the cells on a Dask cluster: ``scheduler`` ("tcp://host:port"), or a local one.

    Without ``scheduler``, a LocalCluster of ``workers`` single-threaded worker
    processes is started on 127.0.0.1 (no other interface) and closed at the
    end.  A worker that dies mid-task has its task re-run elsewhere by the
    scheduler; after ``max_attempts`` deaths the cell is recorded as failed
    (``KilledWorker``).  ``warm`` (a picklable callable) fills the Numba cache
    before the cells: here for a local cluster, else on one worker per host.
    """
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ValueError("backend 'dask' needs dask.distributed: "
                         "pip install 'theorylab[dask]'") from None

    tasks = list(tasks)
    cfg = {"distributed.scheduler.allowed-failures": max(0, max_attempts - 1),
           # Set before each worker process is spawned (distributed.nanny docs).
           "distributed.nanny.pre-spawn-environ": _pre_spawn_environ(
               dask.config.get("distributed.nanny.pre-spawn-environ", {})),
           # The worker's statistical profiler samples the running thread's stack every
           # 10 ms under the GIL: measured, a 0.44 s cell took 0.50-0.62 s with it on.
           # Reaches a LocalCluster's workers (the nanny passes its config on); a user's
           # cluster sets it when starting them (see the sweep docs).
           "distributed.worker.profile.enabled": False,
           }
    cluster = None
    # A Nanny writes its pre-spawn variables into *this* process's os.environ and
    # leaves them there (distributed.nanny, WorkerProcess.start).  A leaked
    # NUMBA_NUM_THREADS=1 makes this process's next Numba compilation raise
    # RuntimeError, so the variables are put back once the workers have started and
    # again at the end (a worker restarted mid-sweep writes them again in between).
    saved_env = {k: os.environ.get(k) for k in
                 set(cfg["distributed.nanny.pre-spawn-environ"]) | {"PYTHONHASHSEED"}}
    client = None
    try:  # whatever fails from here on, the client and the cluster are closed
        with dask.config.set(cfg):
            if scheduler is None:
                # Same machine, same cache: fill it before any worker starts.  (Not in a
                # thread alongside the start-up: the nanny's variables would then be in
                # this process's environment while it compiles.)
                if warm is not None:
                    warm()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # chatter from distributed
                        cluster = LocalCluster(n_workers=workers or default_workers(),
                                               threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address=None,
                                               silence_logs=logging.ERROR,
                                               preload=["theorylab.sweep.experiments"])
                finally:
                    _restore_environ(saved_env)
                client = Client(cluster)
            else:
                try:
                    # distributed.comm.timeouts.connect (30 s by default) bounds the wait.
                    client = Client(scheduler, timeout=dask.config.get(
                        "distributed.comm.timeouts.connect"))
                except OSError as exc:
                    raise ValueError(f"scheduler: cannot connect to {scheduler!r}: "
                                     f"{exc}") from None
                threads = {w["nthreads"] for w in client.scheduler_info()["workers"].values()}
                if threads - {1}:
                    warnings.warn("Dask workers with more than one thread run one cell at a "
                                  "time per process; start them with --nthreads 1 and more "
                                  "processes", RuntimeWarning, stacklevel=2)
                if warm is not None:
                    _warm_hosts(client, warm)
        by_key = {}
        futures = []
        for t in tasks:
            f = client.submit(run_cell, t, key=f"theorylab-cell-{t['key']}", pure=False)
            by_key[f.key] = t
            futures.append(f)
        for fut in as_completed(futures):
            t = by_key[fut.key]
            try:
                res = fut.result()
            except Exception as exc:  # KilledWorker after max_attempts, or a transport error
                res = failed_result(t, f"{type(exc).__name__}: {exc}")
            fut.release()
            yield res
    finally:
        try:
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                try:
                    cluster.close()
                finally:
                    # Also after a worker restarted mid-sweep, which set them again.
                    _restore_environ(saved_env)
