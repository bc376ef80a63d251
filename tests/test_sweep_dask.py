"""Sweeps on a real Dask cluster: scheduler and worker processes on 127.0.0.1 only.

Needs ``dask[distributed]`` (the ``dask`` extra); skipped without it.
"""

import os
import sys

import pytest

distributed = pytest.importorskip("distributed")

from theorylab.sweep import Store, parse_spec, run_sweep  # noqa: E402
from theorylab.sweep.backends import WORKER_ENV  # noqa: E402

from test_sweep import HELPERS, MODULE, TINY_PIPELINE  # noqa: E402


NANNY_KEYS = (*WORKER_ENV, "MALLOC_TRIM_THRESHOLD_", "PYTHONHASHSEED")


def _reset_environ(saved):
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _restore_environ_after_each_test():
    # A nanny that restarts a killed worker writes its pre-spawn variables into this
    # process's environment again (distributed's behaviour, not theorylab's).
    saved = dict(os.environ)
    yield
    _reset_environ(saved)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A user's cluster: a LocalCluster of 2 single-threaded worker processes on loopback.

    The helper module is importable by the workers because they are spawned
    with this process's sys.path.
    """
    import dask

    d = tmp_path_factory.mktemp("dask_helpers")
    (d / f"{MODULE}.py").write_text(HELPERS)
    sys.path.insert(0, str(d))
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENV)
    saved = dict(os.environ)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
        lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None,
                                      silence_logs=50)
    _reset_environ(saved)  # the nannies wrote their variables into this process's
    try:
        yield lc
    finally:
        lc.close()
        _reset_environ(saved)
        sys.path.remove(str(d))
        sys.modules.pop(MODULE, None)


def test_cluster_is_on_loopback(cluster):
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    assert all(w.startswith("tcp://127.0.0.1:") for w in cluster.scheduler_info["workers"])


def test_killed_worker_does_not_lose_its_cell(cluster, tmp_path):
    # Cell d=2 kills its worker process (os._exit) on its first run; the scheduler
    # re-runs the task on a live worker and every cell completes.  (warm: the driver has
    # one worker per host fill the Numba cache first.)
    spec = parse_spec({"experiment": {"kind": "callable", "function": f"{MODULE}:die",
                                      "warm": ["linear"]},
                       "axes": {"d": [0, 1, 2, 3, 4, 5]},
                       "fixed": {"dir": str(tmp_path), "victim": 2}})
    res = str(tmp_path / "r.sqlite")
    s = run_sweep(spec, results=res, backend="dask", scheduler=cluster.scheduler_address)
    assert (s["done"], s["failed"]) == (6, 0), s
    with open(tmp_path / "died-2") as fh:
        killed = int(fh.read())
    with Store(res, create=False) as st:
        rows = {r["params"]["d"]: r for r in st.rows()}
    assert rows[2]["metrics"]["pid"] != killed
    assert rows[2]["worker"].endswith(f":{rows[2]['metrics']['pid']}")
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in rows.values())


def test_failed_cell_on_dask_is_recorded(cluster, tmp_path):
    spec = parse_spec({"experiment": {"kind": "callable", "function": f"{MODULE}:toy"},
                       "axes": {"d": [1, 2, 3]}, "fixed": {"fail": 2}})
    res = str(tmp_path / "r.sqlite")
    s = run_sweep(spec, results=res, backend="dask", scheduler=cluster.scheduler_address)
    assert (s["done"], s["failed"]) == (2, 1)
    with Store(res, create=False) as st:
        bad = st.rows(status="failed")[0]
    assert bad["params"]["d"] == 2 and "fails on purpose" in bad["traceback"]


def test_same_bits_on_serial_processes_and_local_dask(tmp_path):
    # Without --scheduler the backend starts (and stops) its own loopback LocalCluster.
    spec = parse_spec({"sweep": {"name": "tiny"}, "experiment": {"kind": "pipeline"},
                       "axes": {"d": [8, 12]}, "fixed": TINY_PIPELINE})
    out = {}
    for backend in ("serial", "processes", "dask"):
        res = str(tmp_path / f"{backend}.sqlite")
        s = run_sweep(spec, results=res, backend=backend, workers=2)
        assert s["done"] == 2, (backend, s)
        with Store(res, create=False) as st:
            rows = st.rows()
        out[backend] = {r["key"]: (r["seed"], r["metrics"], r["extra"]) for r in rows}
        if backend == "dask":
            pids = {r["worker"] for r in rows}
            assert all(w.split(":")[1] != str(os.getpid()) for w in pids)
    assert out["serial"] == out["processes"] == out["dask"]


def test_unreachable_scheduler_is_a_value_error_naming_it(tmp_path):
    # Port 1 on loopback refuses connections: the user gets a ValueError naming
    # --scheduler, not distributed's OSError traceback, and no cell is run.
    spec = parse_spec({"sweep": {"name": "tiny"}, "experiment": {"kind": "pipeline"},
                       "axes": {"d": [8]}, "fixed": TINY_PIPELINE})
    res = tmp_path / "r.sqlite"
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}), \
            pytest.raises(ValueError, match="scheduler: cannot connect to 'tcp://127.0.0.1:1'"):
        run_sweep(spec, results=str(res), backend="dask", scheduler="tcp://127.0.0.1:1")
    if res.exists():
        with Store(str(res), create=False) as st:
            assert st.rows(status="done") == []


def test_local_cluster_leaves_this_process_environment_alone(tmp_path):
    # distributed's nannies leave NUMBA_NUM_THREADS=1 etc. in the parent's environment;
    # the next Numba compilation in the parent then raised RuntimeError (seen in CI).
    spec = parse_spec({"sweep": {"name": "tiny"}, "experiment": {"kind": "pipeline"},
                       "axes": {"d": [8]}, "fixed": TINY_PIPELINE})
    before = {k: os.environ.get(k) for k in NANNY_KEYS}
    s = run_sweep(spec, results=str(tmp_path / "r.sqlite"), backend="dask", workers=1)
    assert s["done"] == 1, s
    assert {k: os.environ.get(k) for k in NANNY_KEYS} == before


def test_a_failing_client_does_not_leave_the_local_cluster_running(tmp_path, monkeypatch):
    import time

    import psutil

    def broken_client(*args, **kwargs):
        raise RuntimeError("client failed on purpose")

    monkeypatch.setattr(distributed, "Client", broken_client)
    spec = parse_spec({"sweep": {"name": "tiny"}, "experiment": {"kind": "pipeline"},
                       "axes": {"d": [8]}, "fixed": TINY_PIPELINE})
    before = {k: os.environ.get(k) for k in NANNY_KEYS}
    earlier = {p.pid for p in psutil.Process().children(recursive=True)}  # e.g. `cluster`'s
    with pytest.raises(RuntimeError, match="on purpose"):
        run_sweep(spec, results=str(tmp_path / "r.sqlite"), backend="dask", workers=1)
    assert {k: os.environ.get(k) for k in NANNY_KEYS} == before
    deadline = time.monotonic() + 20
    while True:
        alive = [p for p in psutil.Process().children(recursive=True)
                 if p.pid not in earlier and p.is_running()
                 and p.status() != psutil.STATUS_ZOMBIE
                 and "resource_tracker" not in " ".join(p.cmdline())]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not alive, [p.cmdline() for p in alive]
