"""Every user error of the theorylab command line is one line on stderr and exit status 2.

Each case runs ``theorylab.cli.main`` in-process and checks the return value
and that stderr is exactly one line ``theorylab <cmd>: error: ...`` naming what
is wrong (no traceback); Ctrl-C is one line and 130; ``--debug`` shows the
traceback instead.  Output paths are checked before any work (the work is
replaced by a function that fails the test if it is called).
"""

import json

import numpy as np
import pytest

from theorylab.cli import main
from theorylab.models import LinearClassifier, TwoLayerReLU
from theorylab.worlds import SparseCoding


def _one_line_error(capsys, code, cmd, *words):
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"theorylab {cmd}: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def _never(*args, **kwargs):
    raise AssertionError("work started before the inputs and outputs were checked")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    world = SparseCoding(16, 2, seed=0)
    net = TwoLayerReLU.for_world(world, seed=0)
    net.metadata["world"] = world.spec()
    path = tmp_path_factory.mktemp("models") / "net.npz"
    net.save(path)
    return path


def _arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _write_npz(path, arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


# -- malformed model files: attack, verify, train --init --------------------------------

def _bad_model(case, good, tmp_path):
    path = tmp_path / f"{case}.npz"
    arrays = _arrays(good)
    if case == "missing":
        return path, "no such file"
    if case == "truncated":
        raw = good.read_bytes()
        path.write_bytes(raw[:len(raw) // 2])
        return path, "not an .npz"
    if case == "not-zip":
        path.write_text("this is not a model\n")
        return path, "not an .npz"
    if case == "empty":
        path.write_bytes(b"")
        return path, "not an .npz"
    if case == "corrupt-member":
        raw = bytearray(good.read_bytes())
        for i in range(len(raw) // 3, len(raw) // 2):
            raw[i] ^= 0x5A
        path.write_bytes(bytes(raw))
        return path, "cannot be read"
    if case == "no-kind":
        del arrays["kind"]
        return _write_npz(path, arrays), "'kind'"
    if case == "unknown-kind":
        return _write_npz(path, dict(arrays, kind=np.array("Perceptron"))), "'Perceptron'"
    if case == "missing-array":
        del arrays["W"]
        return _write_npz(path, arrays), "missing entry 'W'"
    if case == "wrong-shape":
        return _write_npz(path, dict(arrays, b=arrays["b"][:5])), "entry 'b'"
    if case == "W-wrong-ndim":
        return _write_npz(path, dict(arrays, W=arrays["W"].ravel())), "entry 'W'"
    if case == "nan":
        W = arrays["W"].copy()
        W[0, 0] = np.nan
        return _write_npz(path, dict(arrays, W=W)), "entry 'W'"
    if case == "inf":
        b = arrays["b"].copy()
        b[1] = np.inf
        return _write_npz(path, dict(arrays, b=b)), "entry 'b'"
    if case == "W_init-shape":
        return _write_npz(path, dict(arrays, W_init=arrays["W_init"][:3])), "'W_init'"
    if case == "bad-metadata":
        return _write_npz(path, dict(arrays, metadata=np.array("{no json"))), "'metadata'"
    if case == "bad-world":
        meta = json.loads(str(arrays["metadata"]))
        meta["user"]["world"] = {"kind": "SparseCoding", "d": 16, "colour": "red"}
        return _write_npz(path, dict(arrays, metadata=np.array(json.dumps(meta)))), "'world'"
    raise AssertionError(case)


MODEL_CASES = ["missing", "truncated", "not-zip", "empty", "corrupt-member", "no-kind",
               "unknown-kind", "missing-array", "wrong-shape", "W-wrong-ndim", "nan", "inf",
               "W_init-shape", "bad-metadata", "bad-world"]


# train --init takes the world from its flags: the stored world spec is not read.
@pytest.mark.parametrize("cmd, case", [(cmd, case) for cmd in ("attack", "verify", "train")
                                       for case in MODEL_CASES
                                       if (cmd, case) != ("train", "bad-world")])
def test_malformed_model_file(cmd, case, model_file, tmp_path, capsys, monkeypatch):
    path, word = _bad_model(case, model_file, tmp_path)
    import theorylab.training

    monkeypatch.setattr(theorylab.training, "train", _never)
    argv = {"attack": ["attack", str(path), "--n", "10"],
            "verify": ["verify", str(path), "--eps", "0.1", "--n", "10", "--quiet"],
            "train": ["train", "--d", "16", "--k", "2", "--init", str(path), "--steps", "2",
                      "--quiet"]}[cmd]
    _one_line_error(capsys, main(argv), cmd, str(path), word)


def test_train_init_needs_a_two_layer_network(tmp_path, capsys):
    path = tmp_path / "lin.npz"
    LinearClassifier(16).save(path)
    _one_line_error(capsys, main(["train", "--d", "16", "--k", "2", "--init", str(path),
                                  "--steps", "2", "--quiet"]), "train", "LinearClassifier")
    _one_line_error(capsys, main(["train", "--d", "8", "--k", "2", "--init", str(path),
                                  "--steps", "2", "--quiet"]), "train", "LinearClassifier")


# -- verify --data ----------------------------------------------------------------------

def _data_case(case, tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 16)), np.where(rng.random(20) < 0.5, -1.0, 1.0)
    path = tmp_path / f"{case}.npz"
    if case == "missing-file":
        return path, "no such file"
    if case == "not-npz":
        path.write_text("X, y\n")
        return path, "not an .npz"
    arrays = {"X": X, "y": y}
    if case == "no-X":
        del arrays["X"]
        word = "missing entry 'X'"
    elif case == "no-y":
        del arrays["y"]
        word = "missing entry 'y'"
    elif case == "X-columns":
        arrays["X"] = X[:, :8]
        word = "entry 'X'"
    elif case == "X-1d":
        arrays["X"] = X.ravel()
        word = "entry 'X'"
    elif case == "X-nan":
        X[3, 4] = np.nan
        word = "entry 'X'"
    elif case == "y-inf":
        y[2] = np.inf
        word = "entry 'y'"
    elif case == "y-labels":
        arrays["y"] = np.arange(20.0)
        word = "entry 'y'"
    elif case == "y-length":
        arrays["y"] = y[:5]
        word = "entry 'y'"
    elif case == "y-text":
        arrays["y"] = np.array(["a"] * 20)
        word = "entry 'y'"
    else:
        raise AssertionError(case)
    return _write_npz(path, arrays), word


@pytest.mark.parametrize("case", ["missing-file", "not-npz", "no-X", "no-y", "X-columns", "X-1d",
                                  "X-nan", "y-inf", "y-labels", "y-length", "y-text"])
def test_verify_data_file(case, model_file, tmp_path, capsys, monkeypatch):
    import theorylab.evaluate

    monkeypatch.setattr(theorylab.evaluate, "robustness", _never)
    path, word = _data_case(case, tmp_path)
    _one_line_error(capsys, main(["verify", str(model_file), "--eps", "0.1", "--data", str(path),
                                  "--quiet"]), "verify", str(path), word)


def test_verify_exact_without_a_solver(tmp_path, capsys):
    from theorylab.models import NTKClassifier

    world = SparseCoding(16, 2, seed=0)
    tr = world.sample(40, 1)
    ntk = NTKClassifier.analytic(16).fit(tr.X, tr.y)
    ntk.metadata["world"] = world.spec()
    ntk.save(tmp_path / "ntk.npz")
    _one_line_error(capsys, main(["verify", str(tmp_path / "ntk.npz"), "--eps", "0.1", "--n", "5",
                                  "--exact", "--quiet"]), "verify", "exact")


# -- flag values --------------------------------------------------------------------------

@pytest.mark.parametrize("argv, cmd, word", [
    (["train", "--ramp", "0"], "train", "--ramp"),
    (["train", "--ramp", "-3"], "train", "--ramp"),
    (["train", "--steps", "-1"], "train", "--steps"),
    (["train", "--steps", "0"], "train", "--steps"),
    (["train", "--lr", "0"], "train", "--lr"),
    (["train", "--lr", "-0.5"], "train", "--lr"),
    (["train", "--lr", "nan"], "train", "--lr"),
    (["train", "--norm", "3"], "train", "--norm"),
    (["train", "--eps", "-0.1"], "train", "--eps"),
    (["train", "--batch-size", "0"], "train", "--batch-size"),
    (["train", "--width", "-2"], "train", "--width"),
    (["train", "--bogus"], "train", "--bogus"),
    (["attack", "m.npz", "--n", "-5"], "attack", "--n"),
    (["attack", "m.npz", "--n", "0"], "attack", "--n"),
    (["attack", "m.npz", "--steps", "-1"], "attack", "--steps"),
    (["attack", "m.npz", "--norm", "l3"], "attack", "--norm"),
    (["attack", "m.npz", "--attack", "hammer"], "attack", "hammer"),
    (["attack", "m.npz", "--eps", "0.1", "-0.2"], "attack", "--eps"),
    (["verify", "m.npz"], "verify", "--eps"),
    (["verify", "m.npz", "--eps", "0.1", "--norm", "1"], "verify", "--norm"),
    (["verify", "m.npz", "--eps", "0.1", "--n", "-1"], "verify", "--n"),
    (["verify", "m.npz", "--eps", "x"], "verify", "--eps"),
    (["sweep", "run"], "sweep run", "SPEC"),
    (["sweep", "run", "s.toml", "--backend", "threads"], "sweep run", "--backend"),
    (["plot", "nonsense"], "plot", "nonsense"),
])
def test_bad_flag_values(argv, cmd, word, capsys, monkeypatch):
    import theorylab.training

    monkeypatch.setattr(theorylab.training, "train", _never)
    _one_line_error(capsys, main(argv), cmd, word)


def test_bad_values_caught_by_the_library(model_file, capsys):
    # Validated by the library (k > d, a decreasing grid, a norm without certificates).
    _one_line_error(capsys, main(["train", "--d", "8", "--k", "9", "--steps", "1", "--quiet"]),
                    "train", "k must be")
    _one_line_error(capsys, main(["verify", str(model_file), "--eps", "0.2", "0.1", "--n", "5",
                                  "--quiet"]), "verify", "increasing")
    _one_line_error(capsys, main(["attack", str(model_file), "--n", "5", "--norm", "1",
                                  "--certify"]), "attack", "norm")
    _one_line_error(capsys, main(["attack", str(model_file), "--d", "8", "--n", "5"]),
                    "attack", "d=16")


# -- output paths, checked before any work ---------------------------------------------------

def test_train_save_into_a_missing_directory(tmp_path, capsys, monkeypatch):
    import theorylab.training

    monkeypatch.setattr(theorylab.training, "train", _never)
    out = tmp_path / "no" / "such" / "dir" / "m.npz"
    _one_line_error(capsys, main(["train", "--d", "16", "--k", "2", "--steps", "5", "--quiet",
                                  "--save", str(out)]), "train", "--save", "does not exist")
    _one_line_error(capsys, main(["train", "--d", "16", "--k", "2", "--steps", "5", "--quiet",
                                  "--save", str(tmp_path)]), "train", "is a directory")
    assert not out.parent.exists()


def test_check_outputs(tmp_path, capsys, monkeypatch):
    import proofs_check._runner

    monkeypatch.setattr(proofs_check._runner, "run_checks", _never)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    base = ["check", "--only", "lb.poly_tau50_scaling", "--seeds", "1", "--quiet"]
    _one_line_error(capsys, main(base + ["--report", str(blocker / "r.md"), "--figures",
                                         str(tmp_path)]), "check", "--report")
    _one_line_error(capsys, main(base + ["--report", str(tmp_path / "r.md"), "--json",
                                         str(blocker / "sub" / "r.json"), "--figures",
                                         str(tmp_path)]), "check", "--json")
    _one_line_error(capsys, main(base + ["--report", str(tmp_path / "r.md"), "--figures",
                                         str(blocker)]), "check", "--figures")
    _one_line_error(capsys, main(["check", "--only", "no.such_check", "--report",
                                  str(tmp_path / "r.md"), "--figures", str(tmp_path)]),
                    "check", "no.such_check")
    _one_line_error(capsys, main(["check", "--seeds", "0", "--report", str(tmp_path / "r.md")]),
                    "check", "--seeds")


def test_bench_outputs(tmp_path, capsys, monkeypatch):
    import benchmarks.__main__

    monkeypatch.setattr(benchmarks.__main__, "main", _never)
    _one_line_error(capsys, main(["bench", "--quick", "--json", str(tmp_path / "no" / "b.json")]),
                    "bench", "--json", "does not exist")
    _one_line_error(capsys, main(["bench", "--only", "warp_drive"]), "bench", "warp_drive")
    _one_line_error(capsys, main(["bench", "--quick", "--only", "check"]), "bench", "check")


def test_plot_outputs(tmp_path, capsys, monkeypatch):
    import proofs_check.figures

    monkeypatch.setattr(proofs_check.figures, "regenerate", _never)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for family in ("lower-bounds", "li-li", "images"):
        _one_line_error(capsys, main(["plot", family, str(blocker)]), f"plot {family}",
                        "not a directory")
        _one_line_error(capsys, main(["plot", family, str(blocker / "sub")]), f"plot {family}",
                        "not a directory")


# -- diverging training ----------------------------------------------------------------------

def test_diverging_train_is_one_line_and_saves_nothing(tmp_path, capsys):
    # The logistic gradient is bounded: in float32 an lr of 1e308 overflows the weights.
    out = tmp_path / "m.npz"
    line = _one_line_error(capsys, main(["train", "--d", "16", "--k", "2", "--steps", "20",
                                         "--lr", "1e308", "--dtype", "float32", "--quiet",
                                         "--save", str(out)]), "train", "diverged", "step 0",
                           "lr=", "0 of 20 steps ran", "not written")
    assert not out.exists(), line


def test_diverging_train_mid_run(tmp_path, capsys, monkeypatch):
    # The weights are corrupted after step 3 (as the library's own divergence test does).
    import theorylab.training

    real = theorylab.training.train

    def corrupted(model, world, **kw):
        def corrupt(step, model, record):
            if step == 3:
                model.W[0, 0] = np.inf
        return real(model, world, log_every=1, callback=corrupt, **kw)

    monkeypatch.setattr(theorylab.training, "train", corrupted)
    out = tmp_path / "m.npz"
    _one_line_error(capsys, main(["train", "--d", "16", "--k", "2", "--steps", "20", "--quiet",
                                  "--batch-size", "32", "--save", str(out)]), "train",
                    "diverged", "step 3", "lr=0.5", "3 of 20 steps ran", "not written")
    assert not out.exists()


# -- sweep and plot phase on files that are not SQLite stores ----------------------------

def _not_a_store(case, tmp_path):
    path = tmp_path / f"{case}.sqlite"
    if case == "text":
        path.write_text("idx,status\n0,done\n")
        return path, "not an SQLite file"
    if case == "empty":
        path.write_bytes(b"")
        return path, "not a theorylab sweep store"
    if case == "missing":
        return path, "no such file"
    if case == "directory":
        path.mkdir()
        return path, "directory"
    if case == "damaged":
        path.write_bytes(b"SQLite format 3\x00" + b"\x07" * 2000)
        return path, "SQLite"
    if case == "other-sqlite":
        import sqlite3

        con = sqlite3.connect(path)
        con.execute("CREATE TABLE t (x)")
        con.commit()
        con.close()
        return path, "not a theorylab sweep store"
    raise AssertionError(case)


STORE_CASES = ["text", "empty", "missing", "directory", "damaged", "other-sqlite"]


@pytest.mark.parametrize("case", STORE_CASES)
@pytest.mark.parametrize("cmd", [["sweep", "status"], ["sweep", "export"], ["plot", "phase"]])
def test_results_file_that_is_not_a_store(cmd, case, tmp_path, capsys, monkeypatch):
    path, word = _not_a_store(case, tmp_path)
    extra = {"export": ["--csv", str(tmp_path / "out.csv")],
             "phase": ["--out", str(tmp_path / "fig")]}.get(cmd[1], [])
    _one_line_error(capsys, main(cmd + [str(path)] + extra), " ".join(cmd), word)
    assert not (tmp_path / "out.csv").exists()


SPEC = """
[sweep]
name = "t"
[experiment]
kind = "pipeline"
[axes]
d = [8]
[fixed]
k = 2
norm = "inf"
eps_train = 0.1
T = 30
T_adv = 10
batch = 64
n_test = 100
pgd_steps = 3
radii = [0.03, 0.1, 0.3]
"""


@pytest.mark.parametrize("case", ["text", "directory", "damaged"])
def test_sweep_run_into_a_file_that_is_not_a_store(case, tmp_path, capsys, monkeypatch):
    import theorylab.sweep.runner

    monkeypatch.setattr(theorylab.sweep.runner, "run_sweep", _never)
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    path, word = _not_a_store(case, tmp_path)
    if case == "damaged":  # a header but no database: refused by SQLite itself
        monkeypatch.undo()
        word = "not a usable SQLite file"
    _one_line_error(capsys, main(["sweep", "run", str(spec), "--results", str(path), "--quiet"]),
                    "sweep run", str(path) if case != "directory" else "directory", word)
    assert not (tmp_path / f"{case}.sqlite.lock").exists() or case == "damaged"


@pytest.mark.parametrize("case", ["missing", "text", "empty", "binary", "directory", "bad-axes"])
def test_sweep_run_bad_spec(case, tmp_path, capsys, monkeypatch):
    import theorylab.sweep.runner

    monkeypatch.setattr(theorylab.sweep.runner, "run_sweep", _never)
    spec = tmp_path / "s.toml"
    word = "spec"
    if case == "text":
        spec.write_text("this is not toml at all\n")
        word = "TOML"
    elif case == "empty":
        spec.write_text("")
        word = "experiment"
    elif case == "binary":
        spec.write_bytes(bytes(range(256)))
    elif case == "directory":
        spec.mkdir()
        word = "directory"
    elif case == "bad-axes":
        spec.write_text(SPEC.replace("d = [8]", "d = []"))
        word = "axes.d"
    _one_line_error(capsys, main(["sweep", "run", str(spec), "--results",
                                  str(tmp_path / "r.sqlite"), "--quiet"]), "sweep run", word)


def test_sweep_outputs(tmp_path, capsys, monkeypatch):
    import theorylab.sweep.runner

    monkeypatch.setattr(theorylab.sweep.runner, "run_sweep", _never)
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _one_line_error(capsys, main(["sweep", "run", str(spec), "--results",
                                  str(blocker / "r.sqlite")]), "sweep run", "--results")


def test_sweep_module_entry_point_is_one_line(tmp_path, capsys):
    from theorylab.sweep.cli import main as sweep_main

    path, _ = _not_a_store("text", tmp_path)
    _one_line_error(capsys, sweep_main(["status", str(path)]), "sweep status", "SQLite")
    _one_line_error(capsys, sweep_main(["plot", "phase", str(path)]), "plot phase", "SQLite")


# -- Ctrl-C and --debug ------------------------------------------------------------------------

def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_is_one_line_and_130(model_file, tmp_path, capsys, monkeypatch):
    import theorylab.evaluate
    import theorylab.sweep.runner
    import theorylab.training

    monkeypatch.setattr(theorylab.training, "train", _interrupt)
    monkeypatch.setattr(theorylab.evaluate, "robustness", _interrupt)
    monkeypatch.setattr(theorylab.sweep.runner, "run_sweep", _interrupt)
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    for argv, cmd in ((["train", "--d", "16", "--k", "2", "--quiet"], "train"),
                      (["verify", str(model_file), "--eps", "0.1", "--quiet"], "verify"),
                      (["sweep", "run", str(spec), "--results", str(tmp_path / "r.sqlite")],
                       "sweep run")):
        assert main(argv) == 130
        out, err = capsys.readouterr()
        assert err.strip() == f"theorylab {cmd}: interrupted", err


def test_ctrl_c_in_a_subcommand_function(capsys, monkeypatch):
    import theorylab.cli

    monkeypatch.setattr(theorylab.cli, "_cmd_attack", _interrupt)
    assert main(["attack", "whatever.npz"]) == 130
    assert capsys.readouterr().err.strip() == "theorylab attack: interrupted"


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="no such file"):
        main(["--debug", "attack", str(tmp_path / "missing.npz")])
    import theorylab.training

    monkeypatch.setattr(theorylab.training, "train", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        main(["--debug", "train", "--quiet"])
