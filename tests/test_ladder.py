"""The FGM length ladder (proofs_check.ladder): its regime, driver, report and the check report's quote."""

import csv
import json
import os

import pytest

import proofs_check as pc
from proofs_check._harness import CONVERGED, NOT_CONVERGED_REASON, evaluate
from proofs_check._runner import write_markdown
from proofs_check.ladder import cells, driver
from proofs_check.ladder.__main__ import main
from proofs_check.ladder.report import (ladder_notes, read_ladder_rows, rungs, summary,
                                        write_report)
from proofs_check.phase.regions import claim_measurements


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_regime_changes_the_fgm_length_only(norm):
    registry = pc.load_checks()
    for cid in cells.ladder_ids(norm):
        quick = registry[cid].regimes["quick"]
        assert cells.ladder_regime(registry[cid], {"adv_mult": 1}) == quick
        four = cells.ladder_regime(registry[cid], {"adv_mult": 4})
        assert four["T_adv"] == 4 * quick["T_adv"]
        assert {k: v for k, v in four.items() if k != "T_adv"} == {
            k: v for k, v in quick.items() if k != "T_adv"}


@pytest.mark.parametrize("params, name", [
    ({"norm": "l1", "adv_mult": 1, "run_seed": 0}, "norm"),
    ({"norm": "l2", "adv_mult": 0, "run_seed": 0}, "adv_mult"),
    ({"norm": "l2", "adv_mult": True, "run_seed": 0}, "adv_mult"),
    ({"norm": "l2", "adv_mult": float("inf"), "run_seed": 0}, "adv_mult"),
    ({"norm": "l2", "adv_mult": 2, "run_seed": -1}, "run_seed"),
    ({"norm": "l2", "adv_mult": 2, "run_seed": 1.5}, "run_seed"),
])
def test_bad_cells_fail_naming_the_parameter(params, name):
    with pytest.raises(ValueError, match=name):
        cells.ladder_cell(0, params)


def test_the_pipeline_seed_is_run_seed_not_the_sweep_seed(monkeypatch):
    seen = []

    def fake(seed, params, ids, regime):
        seen.append((seed, ids))
        return {f"{ids[0]}/verdict": "ERROR"}

    monkeypatch.setattr(cells, "run_claims", fake)
    cells.ladder_cell(123456789, {"norm": "linf", "adv_mult": 2, "run_seed": 2})
    assert seen == [(2, ["fp.v4_principle_linf", "fp.v3_adversarial_purifies_linf"])]


def test_repository_specs_are_the_ladder():
    specs = driver.load_specs("examples/sweeps")
    assert sorted(s.fixed["norm"] for s in specs) == ["l2", "linf"]
    for s in specs:
        assert s.axes["adv_mult"] == [1, 2, 4, 8, 16] and s.axes["run_seed"] == [0, 1, 2]
        assert len(s.seeds) == 1


# -- a tiny ladder through the driver, its CSV, the resume and the report --------------------

def _tiny_regime(check, params):
    base = dict(check.regimes["quick"])
    base.update(d=16, k=2, T=40, batch=64, n_test=60,
                T_adv=max(1, int(round(20 * params["adv_mult"]))))
    return base


def _spec_dir(tmp_path):
    text = """
[sweep]
name = "ladder_linf"
seeds = 1
[experiment]
kind = "callable"
function = "proofs_check.ladder.cells:ladder_cell"
[axes]
adv_mult = [1, 2]
run_seed = [0, 1]
[fixed]
norm = "linf"
"""
    d = tmp_path / "specs"
    d.mkdir()
    (d / "ladder_linf.toml").write_text(text)
    return d


@pytest.fixture
def tiny_run(tmp_path, monkeypatch):
    monkeypatch.setattr(cells, "ladder_regime", _tiny_regime)
    spec_dir = _spec_dir(tmp_path)
    out = tmp_path / "out"
    specs = driver.load_specs(str(spec_dir))
    s = driver.run(specs, str(out), progress=False, log=lambda *_: None)
    return spec_dir, out, specs, s


def test_tiny_ladder_runs_resumes_and_reports(tiny_run, tmp_path):
    spec_dir, out, specs, s = tiny_run
    assert (s["ran"], s["failed"], s["left"]) == (4, 0, 0)
    (csv_path,) = driver.export(specs, str(out))
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["ladder/T_adv"]) for r in rows) == [20, 20, 40, 40]
    assert all(float(r["ladder/dense_ratio_adv"]) > 0 for r in rows)
    os.remove(out / "ladder_linf.sqlite")  # a fresh checkout: rebuilt from the CSV
    assert driver.run(specs, str(out), progress=False, log=lambda *_: None)["ran"] == 0
    report, figs = tmp_path / "report.md", tmp_path / "figs"
    assert main(["--redraw", "--specs", str(spec_dir), "--out", str(out), "--figures",
                 str(figs), "--report", str(report)]) == 0
    assert (figs / "ladder_fp.png").stat().st_size > 0
    text = report.read_text()
    assert "| 20 (x1) |" in text and "| 40 (x2) |" in text and "Computed: 4 of 4" in text
    data = json.loads((out / "ladder_summary.json").read_text())
    assert [r["T_adv"] for r in data["fp.v3_adversarial_purifies_linf"]["rungs"]] == [20, 40]


@pytest.fixture
def tiny_rows(tiny_run):
    """The tiny run's specs, output directory, CSV rows and the check registry."""
    _, out, specs, _ = tiny_run
    (csv_path,) = driver.export(specs, str(out))
    return specs, out, read_ladder_rows(csv_path), pc.load_checks()


def test_verdicts_are_the_checks_and_criteria_alone_sets_only_the_gate_aside(tiny_rows):
    specs, out, rows, registry = tiny_rows
    # Every V4 criterion made to hold; then seed 1 of the x1 rung unconverged and seed 0
    # of the x2 rung failing V4's fraction.
    cid = "fp.v4_principle_linf"
    crits = registry[cid].criteria
    for r in rows:
        p, m = r["params"], r["metrics"]
        for c in crits:
            m[f"{cid}/{c.key}"] = c.threshold + (1.0 if c.op.startswith(">") else -1.0)
        if (p["adv_mult"], p["run_seed"]) == (1, 1):
            m[f"{cid}/{NOT_CONVERGED_REASON}"] = "adv training: loss still falling"
            m[f"{cid}/convergence_adv_loss_plateau"] = 0.5
        else:
            m[f"{cid}/{NOT_CONVERGED_REASON}"] = ""
        m[f"{cid}/principle_fraction"] = 0.1 if (p["adv_mult"], p["run_seed"]) == (2, 0) \
            else 0.99
    table = rungs(rows, registry)["linf"]
    for mult, rung in table.items():
        ms = [claim_measurements(r["metrics"], cid) for r in sorted(
            (r for r in rows if r["params"]["adv_mult"] == mult),
            key=lambda r: r["params"]["run_seed"])]
        assert rung[cid]["verdict"] == evaluate(registry[cid], ms)[0]
        gate_off = [{**m, CONVERGED: True} for m in ms]
        assert rung[cid]["criteria_alone"] == evaluate(registry[cid], gate_off)[0]
    assert table[1.0][cid]["verdict"] == "INCONCLUSIVE"
    assert "did not converge" in table[1.0][cid]["reason"]
    assert "principle_fraction" in table[2.0][cid]["criteria_reason"]
    assert table[1.0][cid]["criteria_alone"] == "PASS"
    assert table[2.0][cid]["criteria_alone"] == "FAIL"
    # The report says the criteria's verdict moved along the ladder.
    path = out / "r.md"
    write_report(specs, rows, str(path), registry=registry, figures_dir=str(out / "f"))
    assert "depends on where FGM training stopped" in path.read_text()
    s = summary({"linf": table})[cid]
    assert [r["converged"] for r in s["rungs"]] == [sum(table[1.0]["converged"]),
                                                  sum(table[2.0]["converged"])]


def test_criteria_alone_keeps_preconditions_and_a_flagged_clean_stage(tiny_rows):
    _, _, rows, registry = tiny_rows
    cid = "fp.v3_adversarial_purifies_linf"
    check = registry[cid]
    pre = [c for c in check.criteria if c.kind == "precondition"]
    assert pre  # V3 compares with the clean network: the regime must separate them
    for r in rows:
        p, m = r["params"], r["metrics"]
        for c in check.criteria:
            m[f"{cid}/{c.key}"] = c.threshold + (1.0 if c.op.startswith(">") else -1.0)
        m[f"{cid}/convergence_adv_loss_plateau"] = 0.5
        m[f"{cid}/{NOT_CONVERGED_REASON}"] = "adv training: loss still falling"
        if p["adv_mult"] == 2:  # the precondition fails on every seed of the x2 rung
            c = pre[0]
            m[f"{cid}/{c.key}"] = c.threshold + (-1.0 if c.op.startswith(">") else 1.0)
        if (p["adv_mult"], p["run_seed"]) == (1, 0):  # a flagged clean stage stays flagged
            m[f"{cid}/{NOT_CONVERGED_REASON}"] = ("clean training: loss still falling; "
                                                 "adv training: loss still falling")
    table = rungs(rows, registry)["linf"]
    assert table[1.0][cid]["verdict"] == "INCONCLUSIVE"
    assert table[1.0][cid]["criteria_alone"] == "INCONCLUSIVE"
    assert "seed 0: clean training" in table[1.0][cid]["criteria_reason"]
    assert table[2.0][cid]["criteria_alone"] == "INCONCLUSIVE"
    assert "precondition" in table[2.0][cid]["criteria_reason"]


def test_a_cell_whose_claims_raised_breaks_no_table(tiny_rows, tmp_path):
    specs, _, rows, registry = tiny_rows
    last = [r for r in rows if r["params"]["adv_mult"] == 2][-1]
    last["metrics"] = {k: v for k, v in last["metrics"].items() if not k.startswith("ladder/")}
    last["metrics"]["fp.v4_principle_linf/verdict"] = "ERROR"
    table = rungs(rows, registry)["linf"]
    assert table[2.0]["T_adv"] == 40 and None in table[2.0]["converged"]
    paths = write_report(specs, rows, str(tmp_path / "r.md"), registry=registry,
                         figures_dir=str(tmp_path / "f"))
    assert "| 40 (x2) |" in (tmp_path / "r.md").read_text() and len(paths) == 2


def test_check_report_quotes_the_ladder(tmp_path):
    path = tmp_path / "ladder_summary.json"
    path.write_text(json.dumps({"fp.v4_principle_l2": {
        "rungs": [{"adv_mult": 1, "T_adv": 500, "seeds": [0, 1, 2], "verdict": "INCONCLUSIVE",
                   "criteria_alone": "PASS", "converged": 0},
                  {"adv_mult": 4, "T_adv": 2000, "seeds": [0, 1, 2], "verdict": "FAIL",
                   "criteria_alone": "FAIL", "converged": 3}],
        "dense_ratio_exponent": -0.4, "dense_ratio_ci": [-0.45, -0.35]}}))
    notes = ladder_notes(str(path))
    text = notes["fp.v4_principle_l2"]
    assert "T_adv 500: INCONCLUSIVE (criteria alone PASS)" in text
    assert "T_adv 2000: FAIL, FGM converged on 3/3" in text and "T_adv^-0.40" in text
    assert ladder_notes(str(tmp_path / "missing.json")) == {}


def test_markdown_report_prints_the_ladder_note(tmp_path):
    from proofs_check._runner import run_checks

    check = pc.load_checks()["lb.linear_bound"]
    results = run_checks([check], "quick", [0], figures_dir=None, progress=False)
    out = tmp_path / "r.md"
    write_markdown(results, str(out), ladder_notes={check.id: "T_adv 1: PASS"})
    assert "*Longer FGM stages (reports/ladder_report.md):* T_adv 1: PASS." in out.read_text()


def test_module_cli_exits_2_on_bad_input(tmp_path, capsys):
    assert main(["--workers", "0"]) == 2
    assert main(["--redraw", "--specs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--workers must be >= 1" in err and "--specs: no ladder_*.toml" in err


def test_estimate_is_the_measured_median_else_the_prior():
    measured = driver.measured([{"params": {"norm": "l2", "adv_mult": 4, "run_seed": s},
                                 "metrics": {"cpu_seconds": c, "wall_seconds": c}}
                                for s, c in enumerate((10.0, 30.0, 20.0))],
                               key=driver.cell_class)
    assert driver.estimate({"norm": "l2", "adv_mult": 4}, measured) == 20.0
    base, per = driver.PRIOR["linf"]
    assert driver.estimate({"norm": "linf", "adv_mult": 4}, measured) == base + 4 * per
