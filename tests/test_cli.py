"""The theorylab command line, end to end in-process: every subcommand runs here.

Tiny regimes throughout (d = 16, tens of steps).  ``plot li-li`` and ``plot
images`` run their real drivers on shrunken regimes: the tests patch the
regime dicts the drivers read (the ll checks' ``regimes["quick"]`` and
``theorylab.images.REGIMES``; see :func:`tiny_li_li` and :func:`tiny_images`),
the drivers' files are untouched.  The same goes for ``plot lower-bounds
--quick`` through the two collectors it calls (:func:`tiny_lower_bounds`).
"""

import csv
import json
import os

import numpy as np
import pytest

from theorylab import attacks
from theorylab.cli import main
from theorylab.worlds import SparseCoding

TRAIN = ["--d", "16", "--k", "2", "--batch-size", "64", "--quiet"]


def _run(capsys, argv, code=0):
    got = main(argv)
    out, err = capsys.readouterr()
    assert got == code, (got, out, err)
    return out, err


def _json(capsys, argv):
    return json.loads(_run(capsys, argv)[0])


@pytest.fixture(scope="module")
def clean_model(tmp_path_factory):
    """A clean d = 16 network trained by the CLI (the world spec is in the file)."""
    path = tmp_path_factory.mktemp("cli") / "clean.npz"
    assert main(["train", *TRAIN, "--steps", "40", "--save", str(path)]) == 0
    return path


# -- train ------------------------------------------------------------------------------

def test_train_then_continue_adversarially(tmp_path, capsys):
    clean, adv = tmp_path / "clean.npz", tmp_path / "adv.npz"
    out, _ = _run(capsys, ["train", *TRAIN, "--steps", "20", "--save", str(clean)])
    lines = out.splitlines()
    assert lines[0].startswith("steps 20  loss ") and "clean accuracy" in lines[0]
    assert lines[1] == f"saved {clean}" and clean.exists()
    hist = _json(capsys, ["train", *TRAIN, "--init", str(clean), "--adversarial", "fgm",
                          "--eps", "0.1", "--norm", "inf", "--steps", "20", "--save", str(adv),
                          "--json"])
    assert set(hist) == {"config", "records", "convergence"}
    assert hist["config"]["adversarial"] == "fgm" and hist["records"][-1]["step"] == 20
    for key in ("loss", "clean_accuracy", "dense_ratio", "coverage"):
        assert key in hist["records"][-1]
    from theorylab.models import load

    a, c = load(adv), load(clean)
    assert a.metadata["world"] == c.metadata["world"] == SparseCoding(16, 2).spec()
    assert not np.array_equal(a.W, c.W)
    np.testing.assert_array_equal(a.W_init, c.W_init)  # the continuation keeps the init


def test_train_json_is_strict_json(capsys):
    out, _ = _run(capsys, ["train", *TRAIN, "--steps", "10", "--ramp", "5", "--json"])
    hist = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert hist["records"][-1]["step"] == 10


def test_train_warns_on_stderr_when_not_converged(capsys):
    # 600 clean steps at d = 128 stopped while the threshold still ramps: one warning line on
    # stderr (under --quiet too), the result line on stdout unchanged.
    out, err = _run(capsys, ["train", "--d", "128", "--k", "5", "--batch-size", "512",
                             "--steps", "600", "--ramp", "600", "--quiet"])
    assert out.startswith("steps 600  loss ") and len(out.splitlines()) == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("theorylab train: warning: training has not converged: ")
    assert "c moved 16.5" in lines[0] and "loss still falling" in lines[0]


def test_train_says_nothing_when_converged(capsys):
    out, err = _run(capsys, ["train", "--d", "64", "--k", "3", "--batch-size", "256",
                             "--steps", "1000", "--quiet", "--json"])
    assert err == ""
    assert json.loads(out)["convergence"]["converged"] is True


# -- attack -------------------------------------------------------------------------------

def test_attack_table_and_json(clean_model, capsys):
    out, _ = _run(capsys, ["attack", str(clean_model), "--norm", "inf", "--eps", "0.05", "0.1",
                           "--n", "100", "--steps", "5"])
    lines = out.splitlines()
    assert lines[0].startswith("pgd (linf) on 100 points of SparseCoding(d=16")
    assert lines[1].startswith("  eps 0 (clean): ")
    assert lines[2].startswith("  eps 0.05: ") and lines[3].startswith("  eps 0.1: ")
    assert lines[4].startswith("  tau50: ")
    out = _json(capsys, ["attack", str(clean_model), "--norm", "inf", "--eps", "0.05", "0.1",
                         "--n", "100", "--steps", "5", "--json"])
    assert out["eps"] == [0.05, 0.1] and out["norm"] == "linf" and len(out["accuracy"]) == 2
    assert set(out) >= {"attack", "clean_accuracy", "tau50"}


def test_attack_default_grid(clean_model, capsys):
    out = _json(capsys, ["attack", str(clean_model), "--n", "50", "--steps", "3", "--json"])
    assert out["norm"] == "l2" and out["eps"] == [0.05, 0.1, 0.2, 0.4, 0.8]


@pytest.mark.parametrize("name", attacks.names())
def test_attack_every_registered_attack(name, clean_model, capsys):
    out = _json(capsys, ["attack", str(clean_model), "--attack", name, "--norm", "inf",
                         "--eps", "0.1", "--n", "20", "--steps", "3", "--json"])
    assert out["attack"] == name and 0.0 <= out["accuracy"][0] <= out["clean_accuracy"]


def test_attack_certify_and_exact(clean_model, capsys):
    base = ["attack", str(clean_model), "--norm", "inf", "--eps", "0.05", "0.1", "--n", "60",
            "--steps", "5"]
    out, _ = _run(capsys, base + ["--certify"])
    lines = out.splitlines()
    assert lines[0].endswith("with the certificate") and lines[1].startswith("  eps 0 (clean)")
    for line, e in zip(lines[2:4], ("0.05", "0.1")):
        assert line.startswith(f"  eps {e}: attack ")
        assert "certified" in line and "exact" in line and "unresolved" in line
    assert lines[4].startswith("  tau50: attack ")
    cert = _json(capsys, base + ["--certify", "--json"])
    assert cert["attack"] == "pgd" and cert["methods"]["attacks"] == ["pgd"]
    assert cert["accuracy"] == cert["attack_accuracy"] and len(cert["unresolved"]) == 2
    assert all(c <= a for c, a in zip(cert["certified_accuracy"], cert["attack_accuracy"]))
    assert cert["methods"]["certificate"] is True and cert["methods"]["exact"] == []
    exact = _json(capsys, base + ["--exact", "--json"])
    assert exact["methods"]["exact"] == [0.05, 0.1]
    assert exact["unresolved"] == [0, 0]  # d = 16: every point decided
    assert exact["exact_accuracy"] == exact["certified_accuracy"]
    assert all(c >= c0 for c, c0 in zip(exact["certified_accuracy"], cert["certified_accuracy"]))
    out, _ = _run(capsys, base + ["--exact"])
    assert "exact solves" in out.splitlines()[0] and "exact -" not in out


# -- verify -------------------------------------------------------------------------------

@pytest.mark.parametrize("norm, eps", [("inf", ["0.02", "0.1"]), ("2", ["0.1", "0.5"])])
def test_verify_table(norm, eps, clean_model, capsys):
    out, err = _run(capsys, ["verify", str(clean_model), "--norm", norm, "--eps", *eps,
                             "--n", "40"])
    assert "robustness" in err  # the progress bar (stderr)
    lines = out.splitlines()
    label = {"inf": "linf", "2": "l2"}[norm]
    assert lines[0].startswith(f"robustness ({label}) of TwoLayerReLU(d=16")
    assert "on 40 points of SparseCoding(d=16" in lines[0]
    assert lines[1] == ("  attacks fmn, fgm, pgd, apgd, square, dense; certificate yes; "
                        "no exact solves")
    assert lines[2].startswith("  clean accuracy ")
    assert lines[3].split() == ["eps", "attack", "certified", "exact", "unresolved", "masking"]
    for line, e in zip(lines[4:6], eps):
        cols = line.split()
        assert cols[0] == e and len(cols) == 6
        assert float(cols[2]) <= float(cols[1])  # certified <= attack
    assert lines[6].startswith("  tau50: attack ")


def test_verify_json_exact_and_attribution(clean_model, capsys):
    res = _json(capsys, ["verify", str(clean_model), "--norm", "inf", "--eps", "0.05", "0.1",
                         "--n", "40", "--exact", "--attribution", "--quiet", "--json"])
    for key in ("eps", "norm", "clean_accuracy", "attack_accuracy", "certified_accuracy",
                "exact_accuracy", "unresolved", "masking", "broken_by", "tau50_attack",
                "tau50_certified", "methods"):
        assert key in res
    assert res["eps"] == [0.05, 0.1] and res["norm"] == "linf"
    assert res["unresolved"] == [0, 0] and res["exact_accuracy"] == res["certified_accuracy"]
    assert res["methods"]["exact"] == [0.05, 0.1] and res["methods"]["attribution"] is True
    assert "dense" in res["methods"]["attacks"]
    assert set(res["broken_by"]) == set(res["methods"]["attacks"])
    out, _ = _run(capsys, ["verify", str(clean_model), "--norm", "2", "--eps", "0.25", "--n",
                           "20", "--exact", "--attribution", "--quiet"])
    assert "exact solves at 0.25" in out and "broken by each attack" in out
    row = out.splitlines()[4].split()
    assert row[0] == "0.25" and row[3] != "-" and row[4] == "0"  # l2 exact: all decided


def test_verify_data_file(clean_model, tmp_path, capsys):
    world = SparseCoding(16, 2, seed=0)
    test = world.sample(30, 7)
    data = tmp_path / "points.npz"
    np.savez(data, X=test.X, y=test.y)
    argv = ["verify", str(clean_model), "--norm", "inf", "--eps", "0.05", "0.1", "--quiet",
            "--json"]
    from_file = _json(capsys, argv + ["--data", str(data), "--seed", "7"])
    fresh = _json(capsys, argv + ["--n", "30", "--seed", "7"])
    assert from_file == fresh  # the same points and attack seeds: the same answer
    first = _json(capsys, argv + ["--data", str(data), "--n", "10"])
    assert len(first["attack_accuracy"]) == 2
    out, _ = _run(capsys, argv[:-1] + ["--data", str(data)])
    assert f"on 30 points of {data}" in out.splitlines()[0]


def test_verify_model_without_a_world(tmp_path, capsys):
    # No stored world and no world flags: no dense attack; points from --data.
    from theorylab.models import LinearClassifier

    world = SparseCoding(16, 2, seed=0)
    tr, te = world.sample(200, 1), world.sample(25, 2)
    path, data = tmp_path / "lin.npz", tmp_path / "te.npz"
    LinearClassifier(16).fit(tr.X, tr.y).save(path)
    np.savez(data, X=te.X, y=te.y)
    res = _json(capsys, ["verify", str(path), "--norm", "2", "--eps", "0.1", "0.4", "--data",
                         str(data), "--quiet", "--json"])
    assert "dense" not in res["methods"]["attacks"] and res["unresolved"] == [0, 0]


# -- check --------------------------------------------------------------------------------

def test_check_list(capsys):
    out, _ = _run(capsys, ["check", "--list"])
    assert "fp.v3_adversarial_purifies_l2" in out


def test_check_one_cheap_check(tmp_path, capsys):
    # lb.poly_tau50_scaling: closed-form worst cases of oracle polynomials, no training.
    report, js, figs = tmp_path / "rep" / "r.md", tmp_path / "rep" / "r.json", tmp_path / "f"
    out, _ = _run(capsys, ["check", "--only", "lb.poly_tau50_scaling", "--seeds", "1",
                           "--report", str(report), "--json", str(js), "--figures", str(figs),
                           "--quiet", "--no-fail-exit"])
    assert "lb.poly_tau50_scaling" in out
    assert f"wrote {report}" in out and f"wrote {js}" in out
    assert "lb.poly_tau50_scaling" in report.read_text()
    results = json.loads(js.read_text())["results"]
    assert [r["id"] for r in results] == ["lb.poly_tau50_scaling"]
    assert results[0]["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")


# -- sweep and plot phase -----------------------------------------------------------------

SPEC = """
[sweep]
name = "tiny"
seeds = 1

[experiment]
kind = "pipeline"

[axes]
d = [8, 12]

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


def test_sweep_run_status_export_and_plot_phase(tmp_path, capsys):
    spec, res = tmp_path / "tiny.toml", tmp_path / "out" / "tiny.sqlite"
    spec.write_text(SPEC)
    out, _ = _run(capsys, ["sweep", "run", str(spec), "--results", str(res), "--quiet"])
    assert out.startswith(f"{res}: 2 cells; ran 2 (2 done, 0 failed), 0 already done")
    again = _json(capsys, ["sweep", "run", str(spec), "--results", str(res), "--quiet",
                           "--json"])
    assert (again["total"], again["ran"], again["skipped"]) == (2, 0, 2)
    out, _ = _run(capsys, ["sweep", "status", str(res)])
    assert "sweep 'tiny'" in out and "2 cells: 2 done, 0 failed, 0 pending" in out
    st = _json(capsys, ["sweep", "status", str(res), "--json"])
    assert (st["name"], st["total"], st["done"], st["failed_cells"]) == ("tiny", 2, 2, [])
    csv_path = tmp_path / "cells.csv"
    out, _ = _run(capsys, ["sweep", "export", str(res), "--csv", str(csv_path)])
    assert out.strip() == str(csv_path)
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["d"] for r in rows] == ["8", "12"] and {r["status"] for r in rows} == {"done"}
    assert "robust_acc_adversarial" in rows[0]
    out, _ = _run(capsys, ["sweep", "export", str(res), "--csv"])  # default: RESULTS.csv
    assert out.strip() == os.path.splitext(str(res))[0] + ".csv"
    figs = tmp_path / "phase"
    out, _ = _run(capsys, ["plot", "phase", str(res), "--out", str(figs)])
    paths = out.split()
    assert [os.path.basename(p) for p in paths] == ["phase_tiny_heatmap.png",
                                                   "phase_tiny_tau50.png"]
    assert all(os.path.getsize(p) > 10_000 for p in paths)


# -- plot: every target -------------------------------------------------------------------

def tiny_lower_bounds(monkeypatch):
    """Shrink ``plot lower-bounds --quick`` further: its two collectors at d <= 64."""
    from proofs_check import figures

    curves, scaling = figures.collect_curves, figures.collect_scaling
    monkeypatch.setattr(figures, "collect_curves", lambda norm, **kw: curves(norm, **dict(
        kw, d=32, T=60, T_adv=30, batch=64, n_train=200, n_test=100, n_pgd=50, m_ntk=16)))
    monkeypatch.setattr(figures, "collect_scaling", lambda **kw: scaling(**dict(
        kw, ds_linear=(32, 64), ds_ntk=(16, 32), ds_poly=(32, 64), n_test=100, n_pgd=50,
        m_ntk=16)))


def tiny_li_li(monkeypatch):
    """Shrink ``plot li-li``: the quick regimes of the three ll checks it runs (3 seeds each)."""
    from proofs_check import load_checks

    checks = load_checks()
    small = dict(d=32, n_train=64, n_test=40, T_std=150, pgd_steps=2)
    for cid, extra in (("ll.adversarial_robust_warm_pgd", dict(T_adv=20)),
                       ("ll.threshold_scaling", dict(ds=(32, 64))),
                       ("ll.race", dict(race_betas=(0.5, 1.0, 1.5)))):
        regimes = checks[cid].regimes
        monkeypatch.setitem(regimes, "quick", dict(regimes["quick"], **small, **extra))


def tiny_images(monkeypatch):
    """Shrink ``plot images``: theorylab.images.REGIMES["l2" | "linf" | "cnn"]["quick"]."""
    from theorylab.images import REGIMES

    small = dict(n_train=200, m=8, cnn_m=2, steps=20, adv_steps=20, eval_steps=3, pgd_steps=2,
                 nr_steps=5, dr_steps=10, eps_ramp=5)
    for name in ("l2", "linf", "cnn"):
        monkeypatch.setitem(REGIMES[name], "quick", dict(REGIMES[name]["quick"], **small))


PLOTS = {"lower-bounds": (["--quick"], tiny_lower_bounds,
                          ["lb_robust_curves.png", "lb_tau50_scaling.png"]),
         "li-li": ([], tiny_li_li, ["ll_feature_learning.png", "ll_robustness.png",
                                    "ll_threshold_scaling.png", "ll_race.png"]),
         "images": ([], tiny_images, ["img_features_l2.png", "img_features_linf.png",
                                      "img_low_rank.png", "img_datasets.png",
                                      "img_dataset_examples.png", "img_features_cnn.png"])}


@pytest.mark.parametrize("family", sorted(PLOTS))
def test_plot_family(family, tmp_path, capsys, monkeypatch):
    flags, shrink, names = PLOTS[family]
    shrink(monkeypatch)
    outdir = tmp_path / "figs" / family  # created by the command
    out, _ = _run(capsys, ["plot", family, str(outdir), *flags])
    paths = out.split()
    assert [os.path.basename(p) for p in paths] == names
    assert all(os.path.dirname(p) == str(outdir) for p in paths)
    assert all(os.path.getsize(p) > 5_000 for p in paths)


# -- bench --------------------------------------------------------------------------------

def test_bench_quick(tmp_path, capsys):
    js = tmp_path / "bench.json"
    out, _ = _run(capsys, ["bench", "--quick", "--json", str(js)])
    for name in ("cnn", "ntk", "sweep"):
        assert f"== {name} (" in out
    assert "== check" not in out and "== two_layer" not in out
    assert f"wrote {js}" in out
    res = json.loads(js.read_text())
    assert sorted(res) == ["cnn", "ntk", "sweep"]
    assert res["ntk"]["N"] == 256 and res["sweep"]["cells"] == 4
    assert all("error" not in r and r["harness_seconds"] > 0 for r in res.values())


# -- help ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", [["train"], ["attack"], ["verify"], ["check"], ["sweep"],
                                 ["sweep", "run"], ["plot"], ["plot", "phase"], ["bench"]])
def test_every_subcommand_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main(cmd + ["--help"])
    assert exc.value.code == 0
    assert "usage: theorylab" in capsys.readouterr().out


def test_attack_choices_are_the_name_table(capsys):
    with pytest.raises(SystemExit):
        main(["attack", "--help"])
    assert "{" + ",".join(attacks.names()) + "}" in capsys.readouterr().out
