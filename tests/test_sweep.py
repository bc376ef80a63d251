"""Sweeps: spec validation, per-cell seeds, the SQLite store, resume after SIGKILL, backends.

The experiments here are small functions written to a temporary module
(``kind = "callable"``) plus a tiny real ``pipeline``; worker processes are
real (spawned), and one test kills a running sweep with SIGKILL.
"""

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from theorylab.sweep import Store, cell_seed, load_spec, parse_spec, run_sweep
from theorylab.sweep.cli import add_parser, add_plot_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HELPERS = textwrap.dedent('''
    import os
    import time

    import numpy as np

    def toy(seed, params):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(params.get("n", 50))
        time.sleep(params.get("sleep", 0.0))
        if params["d"] == params.get("fail"):
            raise RuntimeError(f"cell d={params['d']} fails on purpose")
        return {"mean": float(x.mean()), "first": x[:3], "extra": {"n": int(x.size)}}

    def die(seed, params):
        # Kill the worker process: cell `victim` on its first run only, `always` every time.
        marker = os.path.join(params["dir"], f"died-{params['d']}")
        if params["d"] == params.get("victim") and not os.path.exists(marker):
            with open(marker, "w") as fh:
                fh.write(str(os.getpid()))
            os._exit(3)
        if params["d"] == params.get("always"):
            os._exit(4)
        import numba
        env = {k: os.environ.get(k) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                               "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        return {"pid": os.getpid(), "numba_threads": numba.config.NUMBA_NUM_THREADS, **env}
''')

MODULE = "theorylab_sweep_test_helpers"

TINY_PIPELINE = dict(k=2, norm="inf", eps_train=0.1, T=30, T_adv=10, batch=64, n_test=100,
                     pgd_steps=3, radii=[0.03, 0.1, 0.3])


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    """A module of experiments importable here, in spawned workers and in subprocesses."""
    d = tmp_path_factory.mktemp("helpers")
    (d / f"{MODULE}.py").write_text(HELPERS)
    sys.path.insert(0, str(d))
    yield str(d)
    sys.path.remove(str(d))
    sys.modules.pop(MODULE, None)


def toy_spec(d_values, **fixed):
    return parse_spec({"sweep": {"name": "toy", "seeds": 1},
                       "experiment": {"kind": "callable", "function": f"{MODULE}:toy"},
                       "axes": {"d": list(d_values)}, "fixed": fixed})


def write_toml(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- specs ------------------------------------------------------------------------

PIPE = {"experiment": {"kind": "pipeline"}}


@pytest.mark.parametrize("data, message", [
    (dict(PIPE, axes={"d": []}), "axes.d"),
    (dict(PIPE, axes={"d": [8, 8]}), "duplicated"),
    (dict(PIPE, axes={}), "[axes]"),
    ({"experiment": {"kind": "nope"}, "axes": {"d": [8]}}, "experiment.kind"),
    ({"experiment": {"kind": "pipeline", "warm": ["gpu"]}, "axes": {"d": [8]}},
     "experiment.warm"),
    (dict(PIPE, axes={"d": [8]}, axis={"k": [1]}), "unknown table"),
    (dict(PIPE, axes={"d": [8]}, fixed={"d": 8}), "both in [axes] and in [fixed]"),
    (dict(PIPE, axes={"d": [8]}, sweep={"seeds": 0}), "sweep.seeds"),
    (dict(PIPE, axes={"d": [8]}, fixed=dict(TINY_PIPELINE, dd=3)), "unknown parameter"),
    (dict(PIPE, axes={"d": [8]}, fixed={"k": 2, "eps_train": 0.1}), "radii"),
    (dict(PIPE, axes={"d": [8]}, fixed=dict(TINY_PIPELINE, radii=[0.3, 0.1])), "radii"),
    (dict(PIPE, axes={"d": [8, 1]}, fixed=TINY_PIPELINE), "k must be in [1, d=1]"),
    (dict(PIPE, axes={"d": [8]}, fixed=dict(TINY_PIPELINE, T=0)), "T must be"),
    ({"experiment": {"kind": "callable", "function": "no_such_module:f"}, "axes": {"d": [1]}},
     "experiment.function"),
    ({"experiment": {"kind": "check", "check": "fp.no_such_check"}, "axes": {"d": [64]}},
     "experiment.check"),
    ({"experiment": {"kind": "check", "check": "lb.linear_bound"}, "axes": {"dd": [64]}},
     "not in its regime"),
])
def test_malformed_spec_raises_naming_the_parameter(data, message):
    with pytest.raises(ValueError, match=None) as err:
        parse_spec(data)
    assert message in str(err.value)


def test_toml_errors(tmp_path):
    with pytest.raises(ValueError, match="not valid TOML"):
        load_spec(write_toml(tmp_path / "bad.toml", "[axes\nd = [1]"))
    with pytest.raises(ValueError, match="no such file"):
        load_spec(tmp_path / "missing.toml")


def test_bad_backend_and_workers_rejected_before_any_work(tmp_path, helpers):
    spec, res = toy_spec([1, 2]), tmp_path / "r.sqlite"
    for kw, word in [(dict(backend="threads"), "backend"), (dict(workers=0), "workers"),
                     (dict(scheduler="tcp://127.0.0.1:1"), "scheduler")]:
        with pytest.raises(ValueError, match=word):
            run_sweep(spec, results=str(res), **kw)
    assert not res.exists()


def test_cell_seeds_depend_on_the_cell_only(helpers):
    small, big = toy_spec([1, 2]), toy_spec([0, 1, 2, 3])
    seeds = {c.params["d"]: (c.seed, c.key) for c in big.cells()}
    for c in small.cells():
        assert seeds[c.params["d"]] == (c.seed, c.key)  # adding axis values changes nothing
    # A parameter moved from [fixed] to a one-value axis keeps the cell's seed.
    moved = parse_spec({"experiment": {"kind": "callable", "function": f"{MODULE}:toy"},
                        "axes": {"n": [50]}, "fixed": {"d": 1}})
    assert moved.cells()[0].seed == toy_spec([1], n=50).cells()[0].seed
    reps = parse_spec({"sweep": {"seeds": 3}, "experiment": {"kind": "callable",
                                                             "function": f"{MODULE}:toy"},
                       "axes": {"d": [1]}}).cells()
    assert len({c.seed for c in reps}) == 3 and [c.replicate for c in reps] == [0, 1, 2]
    # The derivation is part of the contract: stored results must stay reproducible.
    assert cell_seed(0, {"d": 1}, 0) == 5788541333614527552
    assert cell_seed(7, {"d": 1, "norm": "inf"}, 2) == 4279415785326525219


# -- store, resume, failures --------------------------------------------------------------

def test_failed_cell_is_recorded_and_rerun_skips_done_cells(tmp_path, helpers):
    spec, res = toy_spec([1, 2, 3, 4], fail=3), str(tmp_path / "r.sqlite")
    s1 = run_sweep(spec, results=res)
    assert (s1["done"], s1["failed"], s1["skipped"]) == (3, 1, 0)
    with Store(res, create=False) as st:
        rows = {r["params"]["d"]: r for r in st.rows()}
    assert rows[3]["status"] == "failed" and "fails on purpose" in rows[3]["traceback"]
    assert rows[3]["error"].startswith("RuntimeError")
    done = rows[1]
    assert done["status"] == "done" and done["versions"]["numpy"] == np.__version__
    assert done["extra"] == {"n": 50} and done["seconds"] >= 0 and done["worker"]
    # Re-running runs only the failed cell; finished cells keep their row and bits.
    s2 = run_sweep(spec, results=res)
    assert (s2["ran"], s2["skipped"]) == (1, 3)
    with Store(res, create=False) as st:
        again = {r["params"]["d"]: r for r in st.rows()}
    assert again[1]["attempts"] == 1 and again[1]["finished"] == done["finished"]
    assert again[3]["attempts"] == 2
    # Adding axis values runs only the new cells.
    s3 = run_sweep(toy_spec([1, 2, 3, 4, 5], fail=3), results=res)
    assert s3["ran"] == 2 and s3["skipped"] == 3
    # CSV: one line per cell, parameters and metrics as columns.
    out = str(tmp_path / "r.csv")
    assert main(["export", res, "--csv", out]) == 0
    with open(out) as fh:
        lines = list(csv.DictReader(fh))
    assert len(lines) == 5 and {"d", "mean", "first", "error", "seed"} <= set(lines[0])
    by_d = {int(r["d"]): r for r in lines}
    assert by_d[3]["status"] == "failed" and "fails on purpose" in by_d[3]["error"]
    assert json.loads(by_d[1]["first"]) == rows[1]["metrics"]["first"]


def test_select_and_a_stop_leave_the_other_cells_pending(tmp_path, helpers):
    spec, res = toy_spec([1, 2, 3, 4]), str(tmp_path / "r.sqlite")
    s1 = run_sweep(spec, results=res, select=lambda c: c.params["d"] % 2 == 0)
    assert (s1["ran"], s1["unselected"], s1["stopped"]) == (2, 2, False)
    with Store(res, create=False) as st:
        status = {r["params"]["d"]: r["status"] for r in st.rows()}
    assert status == {1: "pending", 2: "done", 3: "pending", 4: "done"}
    # on_result returning True stops after that cell; the rest stays pending for a resume.
    seen = []
    s2 = run_sweep(spec, results=res, on_result=lambda r, summ: seen.append(r["key"]) or True)
    assert (s2["ran"], s2["skipped"], s2["stopped"], len(seen)) == (1, 2, True, 1)
    with Store(res, create=False) as st:
        assert st.counts()["pending"] == 1
    s3 = run_sweep(spec, results=res, on_result=lambda r, summ: False)
    assert (s3["ran"], s3["skipped"], s3["stopped"]) == (1, 3, False)


def test_results_of_another_experiment_are_refused(tmp_path, helpers):
    res = str(tmp_path / "r.sqlite")
    run_sweep(toy_spec([1]), results=res)
    other = parse_spec({"experiment": {"kind": "callable", "function": f"{MODULE}:die"},
                        "axes": {"d": [1]}})
    with pytest.raises(ValueError, match="holds experiment"):
        run_sweep(other, results=res)
    # Two drivers on one results file would run the same cells twice.
    import fcntl

    with open(res + ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="another sweep"):
            run_sweep(toy_spec([1, 2]), results=res)
    assert run_sweep(toy_spec([1, 2]), results=res)["ran"] == 1


def _children(pid):
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.split("/")[2]))
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux /proc")
def test_sigkill_mid_sweep_then_rerun_gives_every_cell_once(tmp_path, helpers):
    spec = write_toml(tmp_path / "kill.toml", f"""
        [sweep]
        name = "kill"
        seeds = 2
        [experiment]
        kind = "callable"
        function = "{MODULE}:toy"
        [axes]
        d = [0, 1, 2, 3, 4, 5, 6, 7]
        [fixed]
        sleep = 0.3
        """)
    res = str(tmp_path / "kill.sqlite")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([helpers, ROOT]))
    cmd = [sys.executable, "-m", "theorylab.sweep", "run", spec, "--backend", "processes",
           "--workers", "2", "--results", res, "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done, deadline = 0, time.monotonic() + 120
    while done < 3:
        assert proc.poll() is None, f"the sweep ended before the kill: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no cell finished in time"
        time.sleep(0.1)
        if os.path.exists(res):
            try:
                with Store(res, create=False) as st:
                    done = st.counts()["done"]
            except ValueError:  # created but the tables are not there yet
                pass
    workers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    with Store(res, create=False) as st:
        before = {r["key"]: r for r in st.rows(status="done")}
    assert 3 <= len(before) < 16
    # The pool's workers notice that their driver is gone and exit.
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers and not any(_alive(p) for p in workers)

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    with Store(res, create=False) as st:
        assert st.integrity() == "ok"
        rows = st.rows()
        keys = [r[0] for r in st.conn.execute("SELECT key FROM cells")]
    assert len(rows) == 16 and len(set(keys)) == 16
    assert all(r["status"] == "done" and set(r["metrics"]) == {"mean", "first"} for r in rows)
    for r in rows:  # cells finished before the kill were not run again
        if r["key"] in before:
            assert r["attempts"] == 1 and r["finished"] == before[r["key"]]["finished"]
    # Same bits as an uninterrupted serial run.
    ref = str(tmp_path / "serial.sqlite")
    run_sweep(spec, results=ref)
    with Store(ref, create=False) as st:
        expect = {r["key"]: r["metrics"] for r in st.rows()}
    assert {r["key"]: r["metrics"] for r in rows} == expect


def test_processes_backend_survives_a_dying_worker(tmp_path, helpers):
    spec = parse_spec({"experiment": {"kind": "callable", "function": f"{MODULE}:die"},
                       "axes": {"d": [0, 1, 2, 3, 4, 5]},
                       "fixed": {"dir": str(tmp_path), "victim": 2, "always": 4}})
    res = str(tmp_path / "r.sqlite")
    s = run_sweep(spec, results=res, backend="processes", workers=2, max_attempts=2)
    assert (s["done"], s["failed"]) == (5, 1)
    with Store(res, create=False) as st:
        rows = {r["params"]["d"]: r for r in st.rows()}
    assert rows[4]["status"] == "failed" and "WorkerDied" in rows[4]["error"]
    with open(tmp_path / "died-2") as fh:
        killed = int(fh.read())
    assert rows[2]["status"] == "done" and rows[2]["metrics"]["pid"] != killed
    for d in (0, 1, 2, 3, 5):  # one Numba and one BLAS thread per worker
        m = rows[d]["metrics"]
        assert m["numba_threads"] == 1 and m["OPENBLAS_NUM_THREADS"] == "1"
        assert m["OMP_NUM_THREADS"] == "1" and m["MKL_NUM_THREADS"] == "1"


def test_pipeline_same_bits_serial_and_processes(tmp_path):
    spec = parse_spec({"sweep": {"name": "tiny"}, "experiment": {"kind": "pipeline"},
                       "axes": {"d": [8, 12]}, "fixed": TINY_PIPELINE})
    out = {}
    for backend in ("serial", "processes"):
        res = str(tmp_path / f"{backend}.sqlite")
        s = run_sweep(spec, results=res, backend=backend, workers=2)
        assert s["done"] == 2, s
        with Store(res, create=False) as st:
            out[backend] = {r["key"]: (r["metrics"], r["seed"]) for r in st.rows()}
    assert out["serial"] == out["processes"]
    m = next(iter(out["serial"].values()))[0]
    for f in ("clean", "adversarial", "oracle", "linear"):
        assert len(m[f"robust_acc_{f}"]) == 3 and 0 <= m[f"clean_acc_{f}"] <= 1
    # The phase figures read the same store.
    from matplotlib.figure import Figure

    from theorylab.plots.phase import phase_figures, robust_accuracy_heatmaps
    from theorylab.sweep.store import phase_records

    assert isinstance(robust_accuracy_heatmaps(phase_records(res)), Figure)
    paths = phase_figures(phase_records(res), out_dir=str(tmp_path / "fig"))
    assert [os.path.basename(p) for p in paths] == ["phase_tiny_heatmap.png",
                                                   "phase_tiny_tau50.png"]
    assert all(os.path.getsize(p) > 10_000 for p in paths)


# -- plots ----------------------------------------------------------------------------

def test_tau50_fits_recover_known_exponents():
    from theorylab.plots.phase import group_records, tau50_fits, tau50_figure

    recs = []
    for norm, slope in (("2", -0.5), ("inf", -1.0)):
        for d in (64, 128, 256, 512):
            for rep in range(2):
                recs.append({"params": {"d": d, "norm": norm, "k": 4}, "replicate": rep,
                             "metrics": {"tau50_linear": 3.0 * d ** slope * (1 + 0.01 * rep),
                                         "tau50_oracle": 0.25, "tau50_clean": float("inf"),
                                         "radii": [0.1], "robust_acc_linear": [0.5]}})
    assert list(group_records(recs)) == ["norm=2", "norm=inf"]
    fits = tau50_fits(recs)
    assert fits["norm=2"]["linear"]["slope"] == pytest.approx(-0.5, abs=1e-9)
    assert fits["norm=inf"]["linear"]["slope"] == pytest.approx(-1.0, abs=1e-9)
    assert fits["norm=inf"]["oracle"]["slope"] == pytest.approx(0.0, abs=1e-12)
    assert fits["norm=inf"]["clean"]["n"] == 0  # tau50 beyond the grid: not fitted
    assert tau50_figure(recs).axes[0].get_xscale() == "log"
    with pytest.raises(ValueError, match="families"):
        tau50_fits(recs, families=["adversarial"])


# -- command line -----------------------------------------------------------------------

def test_cli_wiring_and_status(tmp_path, helpers, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="theorylab")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    add_plot_parser(sub)
    a = parser.parse_args(["sweep", "run", "s.toml", "--backend", "dask", "--scheduler",
                           "tcp://127.0.0.1:8786", "--workers", "3", "--results", "r.sqlite"])
    assert (a.backend, a.scheduler, a.workers, a.results) == ("dask", "tcp://127.0.0.1:8786",
                                                              3, "r.sqlite")
    assert callable(a.func)
    assert callable(parser.parse_args(["plot", "phase", "r.sqlite"]).func)
    with pytest.raises(SystemExit):
        parser.parse_args(["sweep", "run", "s.toml", "--backend", "threads"])

    res = str(tmp_path / "r.sqlite")
    run_sweep(toy_spec([1, 2], fail=2), results=res)
    assert main(["status", res, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["total"], st["done"], st["failed"], st["pending"]) == (2, 1, 1, 0)
    assert main(["status", str(tmp_path / "nope.sqlite")]) == 2  # ValueError -> exit 2
    spec = write_toml(tmp_path / "bad.toml", """
        [experiment]
        kind = "pipeline"
        [axes]
        d = []
        """)
    assert main(["run", spec, "--results", str(tmp_path / "x.sqlite")]) == 2
    assert "axes.d" in capsys.readouterr().err


def test_example_specs_are_valid():
    paths = sorted(glob.glob(os.path.join(ROOT, "examples", "sweeps", "*.toml")))
    assert paths, "no example sweep specs"
    for p in paths:
        spec = load_spec(p)
        assert len(spec.cells()) == len(spec) > 0
