"""The one-step map's sweep experiment (theorylab.sweep.ll_one_step) on tiny cells."""

import math
import os

import numpy as np
import pytest

from theorylab.pipelines import clear
from theorylab.pipelines.li_li import escape_time, overfitting_summary
from theorylab.sweep import load_spec
from theorylab.sweep.ll_one_step import CURVES, DEFAULTS, resolve_cell, run
from theorylab.training import History

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# d = 32, 64 training points, 40 steps at most: seconds, not minutes.
TINY = dict(d=32, n_train=64, n_test=40, T_std=30, horizon=1.0, T_cap=40, monitor_steps=3)


@pytest.fixture(autouse=True)
def _fresh():
    clear()
    yield
    clear()


def test_cell_resolution_scales_T_as_one_over_eta_and_caps_it():
    k, p = resolve_cell({"cell": {"lr_adv": 0.5}})
    assert k["escape_time_predicted"] == pytest.approx(1 / (0.5 * 0.01))
    assert p["T_adv"] == 4000 and not k["T_capped"]
    k2, p2 = resolve_cell({"cell": {"lr_adv": 0.02}})
    assert k2["T_wanted"] == 100_000 and p2["T_adv"] == DEFAULTS["T_cap"] and k2["T_capped"]
    assert p["eps_train"] == pytest.approx(0.8 / math.sqrt(128))   # eps_rel x beta / ||v||_1
    assert p["adversarial"] == "fgm" and p["warm_start"] is False  # the paper's algorithm
    k3, p3 = resolve_cell({"ramp_frac": 0.25, "T_cap": 100})
    assert p3["eps_ramp"] == 25


@pytest.mark.parametrize("params, match", [
    ({"cell": {"lr": 1.0}}, r"unknown parameter\(s\) \['lr'\]"),
    ({"bogus": 1}, "unknown parameter"),
    ({"cell": {"eps_rel": 0.0}}, "eps_rel must be > 0"),
    ({"cell": {"ramp_frac": 1.0}}, "ramp_frac"),
    ({"T_cap": 0}, "T_cap"),
    ({"cell": [1]}, "cell must be a table"),
])
def test_bad_cells_are_refused_naming_the_knob(params, match):
    with pytest.raises(ValueError, match=match):
        resolve_cell(params)


def test_tiny_cell_measures_every_quantity_the_map_draws():
    out = run(123, dict(TINY, cell={"lr_adv": 2.0}))
    for key in ("robust_attack", "robust_certified", "pgd20_accuracy", "one_step_accuracy",
                "clean_accuracy", "gamma_u", "gamma_v", "co_gap_final", "pgd20_standard"):
        assert 0.0 <= out[key] <= 1.0 or key.startswith("gamma"), key
        assert math.isfinite(out[key]), key
    # The sandwich: certified <= attack side <= clean accuracy.
    assert out["robust_certified"] <= out["robust_attack"] <= out["clean_accuracy"]
    assert out["T_adv"] == 40 and out["T_capped"]
    for name in CURVES:
        assert len(out[f"curves_{name}"]) == len(out["curves_step"]) >= 2
    assert out["curves_step"][-1] == 40
    assert isinstance(out["works"], bool)
    # The engine's seed is ignored: run_seed makes the run (common random numbers).
    clear()
    again = run(999, dict(TINY, cell={"lr_adv": 2.0}))
    assert again["gamma_u"] == out["gamma_u"] and again["robust_attack"] == out["robust_attack"]


def test_overfitting_summary_finds_escape_separation_and_sign_change():
    h = History(records=[
        dict(step=s, gamma_u_slowest=gu, gamma_v=gv, loss=l1, train_pgd_loss=l2,
             train_accuracy=a1, train_pgd_accuracy=a2)
        for s, gu, gv, l1, l2, a1, a2 in [
            (0, 0.01, 0.02, 1.4, 1.4, 0.25, 0.25),
            (10, 0.2, 0.05, 1.0, 1.7, 0.6, 0.3),     # apart (transient)
            (20, 0.6, -0.01, 0.5, 0.6, 0.9, 0.9),    # together again; v negative; escaped
            (30, 0.9, 0.3, 0.1, 1.2, 1.0, 0.4),      # apart to the end
            (40, 1.0, 0.3, 0.05, 2.0, 1.0, 0.2)]])
    s = overfitting_summary(h, rho=0.5)
    assert s["escape_step"] == 20 and s["gamma_v_negative_step"] == 20
    assert s["separation_step"] == 10 and s["separation_step_persistent"] == 30
    assert s["co_gap_final"] == pytest.approx(0.8) and s["co_gap_max"] == pytest.approx(0.8)
    closed = History(records=h.records[:3])
    assert math.isnan(overfitting_summary(closed, rho=0.5)["separation_step_persistent"])


def test_escape_time_is_the_spec_formula_and_validates():
    assert escape_time(0.5, 0.01, 1.0, 3) == pytest.approx(200.0)
    assert escape_time(1.0, 0.1, 2.0, 4) == pytest.approx(1 / (16 * 0.01))
    with pytest.raises(ValueError, match="escape_time"):
        escape_time(0.0, 0.01, 1.0, 3)


def test_the_committed_map_spec_is_valid_and_every_cell_resolves():
    spec = load_spec(os.path.join(ROOT, "examples", "sweeps", "ll_one_step.toml"))
    cells = spec.cells()
    assert len(cells) % 3 == 0
    seen = set()
    for c in cells:
        k, p = resolve_cell(c.params)
        assert p["T_adv"] <= k["T_cap"]
        seen.add(tuple(sorted(c.params["cell"])))
    assert () in seen                                   # the base cell is in the map
    assert np.all([c.params["run_seed"] in (0, 1, 2) for c in cells])


def test_tiny_map_through_the_engine_exports_and_draws(tmp_path):
    # Two cells x two seeds through run_sweep, the CSV export and the figures: the make
    # target's path, shrunk.  A second run resumes: nothing left to do.
    from matplotlib.figure import Figure

    from theorylab.plots import li_li_map
    from theorylab.sweep import Store, run_sweep
    from theorylab.sweep.ll_one_step import FIGURES, draw_figures, load_records

    fixed = "\n".join(f"{k} = {v!r}" if not isinstance(v, float) else f"{k} = {v}"
                      for k, v in TINY.items())
    spec = tmp_path / "tiny.toml"
    spec.write_text(f"""
[experiment]
kind = "callable"
function = "theorylab.sweep.ll_one_step:run"
[axes]
cell = [{{}}, {{lr_adv = 2.0}}, {{lr_adv = 1.0, init_scale = 0.02, eps_rel = 0.5}}]
run_seed = [0, 1]
[fixed]
{fixed}
""")
    results = str(tmp_path / "tiny.sqlite")
    first = run_sweep(str(spec), results=results)
    assert first["done"] == 6 and first["failed"] == 0
    assert run_sweep(str(spec), results=results)["ran"] == 0
    csv_path = str(tmp_path / "tiny.csv")
    with Store(results, create=False) as store:
        store.export_csv(csv_path)
    records = load_records(csv_path)
    assert len(records) == 6 and {r["run_seed"] for r in records} == {0, 1}
    assert isinstance(records[0]["metrics"]["curves_gamma_u"], list)
    assert {li_li_map.knob_of(r["cell"]) for r in records} == {"base", "lr_adv", "box"}
    paths = draw_figures(csv_path, str(tmp_path / "fig"))
    assert sorted(os.path.basename(p) for p in paths) == sorted(f"{s}.png" for s in FIGURES)
    assert all(os.path.getsize(p) > 0 for p in paths)
    assert isinstance(li_li_map.one_step_map(records), Figure)


def test_figures_command_refuses_a_foreign_csv_in_one_line(tmp_path, capsys):
    from theorylab.sweep.ll_one_step import main

    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["figures", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not an export of the ll_one_step map" in err
