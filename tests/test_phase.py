"""Phase maps: a cell judges a claim exactly as its check does; regions, neighbours, redraw.

The consistency tests run real tiny cells (d = 16, a tenth of the quick regime's
steps) against ``proofs_check.run`` on the same regime and seed; the region and
neighbour tests use a synthetic store whose measurements are chosen by hand.
"""

import math
import os

import pytest

import proofs_check as pc
from proofs_check.phase import cells, driver, regions, report
from proofs_check.phase.__main__ import main
from proofs_check._runner import write_markdown
from proofs_check.phase.report import (FULL_NEIGHBOURS_FILE, NEIGHBOURS_FILE, claim_section,
                                       closing_note, regime_notes)
from theorylab.sweep import Store, parse_spec

SEED = 7


@pytest.fixture(scope="module")
def registry():
    return pc.load_checks()


def _runner_measurements(check, override):
    res = pc.run(check, regime="quick", seeds=[SEED], params_override=override)[0]
    return res.verdict, res.measurements[0]


def _same(cell_out, cid, measured):
    # Every measurement bit for bit (timings aside): the cell ran the check's regime.
    for key, value in measured.items():
        if "seconds" in key or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        got = cell_out[f"{cid}/{key}"]
        assert got == value or (math.isnan(got) and math.isnan(value)), (cid, key)


_TINY_FP = {"d": 16, "k": 2, "T": 40, "T_adv": 10, "batch": 64, "n_test": 60, "pgd_steps": 2}


def test_fp_cell_judges_like_the_check(registry):
    params = dict(d=16, k=2, t_mult=0.1, norms=["l2", "linf"])
    out = cells.fp_cell(SEED, params)
    for norm in ("l2", "linf"):
        for stem in cells.FP_CLAIMS:
            cid = f"{stem}_{norm}"
            check = registry[cid]
            q = check.regimes["quick"]
            verdict, measured = _runner_measurements(check, dict(
                d=16, k=2, T=round(q["T"] * 0.1), T_adv=round(q["T_adv"] * 0.1)))
            assert out[f"{cid}/verdict"] == verdict, cid
            _same(out, cid, measured)
            for c in check.criteria:  # a margin is positive exactly where the criterion holds
                m = out[cells.margin_key(cid, c)]
                assert math.isnan(m) or (m > 0) == c.holds(measured[c.key]) or m == 0


def test_ll_cell_judges_like_the_check(registry):
    out = cells.ll_cell(SEED, dict(d=16, k=2, t_mult=0.1, claims=["standard", "adversarial"]))
    std, adv = registry["ll.standard_nonrobust"], registry["ll.adversarial_robust_warm_pgd"]
    q = adv.regimes["quick"]
    for check, override in (
            (std, dict(d=16, s=2, T_std=30)),
            (adv, dict(d=16, s=2, T_std=30, T_adv=40, one_step=(),
                       eps_train=q["eps_train"] * math.sqrt(q["d"] / 16)))):
        verdict, measured = _runner_measurements(check, override)
        assert out[f"{check.id}/verdict"] == verdict
        _same(out, check.id, measured)


@pytest.mark.parametrize("params, word", [
    (dict(d=16, k=0, t_mult=1), "k"), (dict(d=16, k=2, t_mult=0), "t_mult"),
    (dict(d=16, k=2, t_mult=1, norms=["l1"]), "norms")])
def test_bad_cell_parameters_are_refused(params, word):
    with pytest.raises(ValueError, match=word):
        cells.fp_cell(0, params)


def test_margin_signs():
    c = pc.Criterion("x", ">=", 0.8, "r")
    assert c.margin(0.9) == pytest.approx(0.1) and c.margin(0.5) < 0
    assert pc.Criterion("x", "<=", 1.0, "r").margin(1.5) == pytest.approx(-0.5)
    assert math.isnan(c.margin(float("nan"))) and math.isnan(c.margin("PASS"))


# -- a synthetic store: V4 l2 around its quick regime (d = 128, k = 5) -------------------

CID = "fp.v4_principle_l2"
GOOD = {"principle_fraction": 0.95, "removed_fraction_median": 0.2,
        "removed_alignment_median": 0.6}


def _spec(name, d, ks, t_mult=(1,), seeds=3):
    return parse_spec({"sweep": {"name": name, "seeds": seeds},
                       "experiment": {"kind": "callable",
                                      "function": "proofs_check.phase.cells:fp_cell"},
                       "axes": {"k": list(ks), "t_mult": list(t_mult)},
                       "fixed": {"d": d, "norms": ["l2"]}})


def _fraction(d, k, replicate):
    # Holds at k <= 5 on every d; k = 6 fails on every seed; d = 256, k = 5 fails on one of
    # three seeds (inconclusive); k = 4 at d = 64 is left pending (not computed).
    if k >= 6 or (d == 256 and k == 5 and replicate == 1):
        return 0.5
    return 0.95


def _synthetic(tmp_path):
    import json

    out = tmp_path / "phase"
    out.mkdir()
    specs = [_spec("phase_fp_d64", 64, [4, 5]), _spec("phase_fp_d128", 128, [4, 5, 6]),
             _spec("phase_fp_d256", 256, [5])]
    for spec in specs:
        with Store(str(out / f"{spec.name}.sqlite")) as st:
            st.bind(spec)
            st.add_cells(spec.cells(), spec.experiment_id)
            for c in spec.cells():
                if c.params["d"] == 64 and c.params["k"] == 4:
                    continue
                m = {f"{CID}/{k}": v for k, v in GOOD.items()}
                m[f"{CID}/principle_fraction"] = _fraction(c.params["d"], c.params["k"],
                                                           c.replicate)
                m.update(cpu_seconds=1.0, wall_seconds=1.5)
                st.record({"key": c.key, "status": "done", "metrics": json.dumps(m),
                           "extra": None, "error": None, "traceback": None, "started": 0.0,
                           "finished": 1.0, "seconds": 1.5, "worker": "test", "versions": None})
            st.export_csv(str(out / f"{spec.name}.csv"))
    return out, specs


def test_regions_and_neighbours_on_a_synthetic_store(tmp_path, registry):
    out, specs = _synthetic(tmp_path)
    rows = [r for s in specs for r in regions.read_rows(str(out / f"{s.name}.sqlite"))]
    pts = regions.points(rows, registry)[CID]
    reg = regions.regions(pts)[1]
    assert reg[128] == {"PASS": [4, 5], "FAIL": [6]}
    assert reg[64] == {"PASS": [5], "MISSING": [4]}
    assert reg[256] == {"INCONCLUSIVE": [5]}
    here, near = regions.neighbours(pts, 128, 5)
    assert here.verdict == "PASS" and len(here.seeds) == 3
    by = {label: p for label, p in near}
    assert by["k = 6"].verdict == "FAIL" and by["k = 4"].verdict == "PASS"
    assert by["d = 64"].verdict == "PASS" and by["d = 256"].verdict == "INCONCLUSIVE"
    assert by["2T"] is None
    text, verdict, _ = claim_section(registry[CID], pts)
    assert verdict.startswith("at an edge, failing neighbour: k = 6, d = 256")
    assert "principle_fraction >= 0.8 (claim): 2 points" in text
    assert "| 128 | 3/3 |" in text and "k = 5 -> 6 |" in text  # the margin's sign change
    assert regions.crossing([(2, 0.1), (3, -0.2), (4, 0.3), (5, float("nan"))]) == [(2, 3), (3, 4)]
    note = closing_note(registry, {CID: pts}, {CID: verdict})
    assert "k = 5 at d = 64; k = 4-5 at d = 128; no k at d = 256" in note
    # The CSV export gives the same points as the store.
    rows_csv = [r for s in specs for r in regions.read_rows(str(out / f"{s.name}.csv"))]
    pts_csv = regions.points(rows_csv, registry)[CID]
    assert {k: p.verdict for k, p in pts_csv.items()} == {k: p.verdict for k, p in pts.items()}


def test_every_neighbour_holding_is_said(tmp_path, registry):
    pts = {}
    for key in [(128, 5, 1), (128, 4, 1), (128, 6, 1), (64, 5, 1), (256, 5, 1), (128, 5, 2)]:
        p = regions.Point(CID, *key, seeds=[dict(GOOD)] * 3, expected=3)
        p.verdict, p.reason, p.criteria = pc.evaluate(registry[CID], p.seeds)
        pts[key] = p
    _, verdict, _ = claim_section(registry[CID], pts)
    assert verdict == "every neighbour holds"


def test_full_regime_is_read_at_the_maps_nearest_cell(registry):
    # The full regime (d = 256, k = 6, T = 3000: 3T) on a map with 1T and 3T cells.
    pts = {}
    bad = dict(GOOD, principle_fraction=0.5)
    for key, m in [((256, 6, 3), GOOD), ((256, 5, 3), GOOD), ((256, 7, 3), bad),
                   ((128, 6, 3), GOOD), ((256, 6, 1), bad)]:
        p = regions.Point(CID, *key, seeds=[dict(m)] * 3, expected=3)
        p.verdict, p.reason, p.criteria = pc.evaluate(registry[CID], p.seeds)
        pts[key] = p
    assert report.full_point(registry[CID]) == (256, 6, 3.0)
    text, _, full = claim_section(registry[CID], pts)
    assert full.startswith("read at the map's cell (d = 256, k = 6, 3T); it differs from the "
                           "full regime in batch 512 (full: 1024), dictionary identity (full: "
                           "orthogonal)")
    assert full.endswith("at an edge, failing neighbour: k = 7; not computed: d = 512, 6T")
    assert "Full regime (d = 256, k = 6, 3T)" in text
    # Without the full regime's cell, the verdict says so before its neighbours'.
    del pts[(256, 6, 3)]
    assert "the regime's cell is not computed" in claim_section(registry[CID], pts)[2]
    # Li & Li's full regime lies between the mapped lengths: the nearest is named.
    ll = registry["ll.standard_nonrobust"]
    d, s, t = report.full_point(ll)
    assert t == pytest.approx(4 / 3)


def test_redraw_from_the_csv_computes_nothing(tmp_path, registry, monkeypatch):
    out, specs = _synthetic(tmp_path)
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    for s in specs:  # the CLI reads specs from TOML files
        ks = sorted({c.params["k"] for c in s.cells()})
        (spec_dir / f"{s.name}.toml").write_text(
            f'[sweep]\nname = "{s.name}"\nseeds = 3\n[experiment]\nkind = "callable"\n'
            'function = "proofs_check.phase.cells:fp_cell"\n'
            f'[axes]\nk = {ks}\nt_mult = [1]\n'
            f'[fixed]\nd = {s.cells()[0].params["d"]}\nnorms = ["l2"]\n')
    for s in specs:  # redraw reads the CSVs only
        os.remove(out / f"{s.name}.sqlite")
    monkeypatch.setattr(driver, "run", lambda *a, **k: pytest.fail("--redraw computed"))
    figs, report = tmp_path / "figs", tmp_path / "report.md"
    assert main(["--redraw", "--specs", str(spec_dir), "--out", str(out), "--figures",
                 str(figs), "--report", str(report)]) == 0
    assert (figs / f"phase_{CID}_verdict.png").stat().st_size > 0
    assert (figs / f"phase_{CID}_margin.png").stat().st_size > 0
    text = report.read_text()
    assert "at an edge, failing neighbour: k = 6, d = 256" in text
    assert "partial" in text  # d = 64, k = 4 was never computed
    # The neighbour verdicts go beside the CSVs, and the check report quotes them.
    notes = regime_notes(str(out / NEIGHBOURS_FILE))
    assert notes[CID] == "at an edge, failing neighbour: k = 6, d = 256; not computed: 2T"
    full = regime_notes(str(out / FULL_NEIGHBOURS_FILE))
    assert full[CID].startswith("read at the map's cell (d = 256, k = 6, 1T), the mapped "
                                "length nearest the full regime's 3T")
    res = pc.run_checks([registry[CID]], "quick", [0], params_override=_TINY_FP)
    write_markdown(res, tmp_path / "check.md", regime_notes=notes)
    assert ("*This regime on the phase map (reports/phase_report.md):* at an edge, failing "
            "neighbour: k = 6, d = 256; not computed: 2T.") in (tmp_path / "check.md").read_text()
    # The full regime's note goes to a full-regime run's section only.
    write_markdown(res, tmp_path / "quick.md", full_regime_notes=full)
    assert "phase map" not in (tmp_path / "quick.md").read_text()
    res_full = pc.run_checks([registry[CID]], "full", [0], params_override=_TINY_FP)
    write_markdown(res_full, tmp_path / "full.md", regime_notes=notes, full_regime_notes=full)
    assert (f"*This regime on the phase map (reports/phase_report.md):* {full[CID]}."
            in (tmp_path / "full.md").read_text())
    write_markdown(res, tmp_path / "plain.md")
    assert "phase map" not in (tmp_path / "plain.md").read_text()
    # A missing store is rebuilt from its CSV (resume in a fresh checkout).
    spec = specs[1]
    n = driver.restore(spec, str(out / f"{spec.name}.sqlite"), str(out / f"{spec.name}.csv"))
    assert n == 9
    with Store(str(out / f"{spec.name}.sqlite"), create=False) as st:
        assert st.counts()["done"] == 9


def test_regime_notes_file(tmp_path):
    assert regime_notes(str(tmp_path / "absent.json")) == {}  # a checkout without maps
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="regime-neighbour"):
        regime_notes(str(bad))


def test_cost_estimate_uses_measurements_then_the_prior():
    measured = driver.measured([{"params": {"d": 64, "k": 2, "t_mult": 1, "norms": ["l2"]},
                                 "metrics": {"cpu_seconds": 3.0, "wall_seconds": 4.0}}])
    assert driver.estimate({"d": 64, "k": 5, "t_mult": 1}, measured) == 3.0
    assert driver.estimate({"d": 128, "k": 5, "t_mult": 1}, measured) == driver.PRIOR["fp"][128]
    assert driver.estimate({"d": 1024, "k": 5, "t_mult": 1}, {}) == 4 * driver.PRIOR["fp"][512]


def test_unconverged_runs_reads_the_reason_it_was_written_as():
    from proofs_check import convergence_measurements
    from proofs_check._harness import unconverged_runs

    class H:
        def __init__(self, ok, why=""):
            self.convergence = {"converged": ok, "reason": why,
                                "criteria": {"loss_plateau": {"value": 0.1}}}

    m = convergence_measurements({"clean": H(True), "adv": H(False, "dense_ratio moved 9%; "
                                                               "loss still falling: 30%")})
    assert unconverged_runs(m["not_converged_reason"]) == {"adv"}
    assert unconverged_runs("") == set() and unconverged_runs(None) == set()


def test_convergence_table_counts_undiagnosed_cells_apart():
    from proofs_check.phase.__main__ import convergence_lines

    cid = "fp.v1_clean_features_l2"
    rows = [{"status": "done", "params": {"d": 64, "t_mult": 1}, "metrics": m} for m in (
        {f"{cid}/verdict": "PASS", f"{cid}/convergence_clean_loss_plateau": 0.01,
         f"{cid}/not_converged_reason": ""},
        {f"{cid}/verdict": "INCONCLUSIVE", f"{cid}/convergence_clean_loss_plateau": 0.5,
         f"{cid}/not_converged_reason": "clean training: loss still falling"},
        {f"{cid}/verdict": "PASS"},  # computed before the diagnosis existed
        # too short to judge: no criterion value, but the reason names the run
        {f"{cid}/verdict": "INCONCLUSIVE",
         f"{cid}/not_converged_reason": "clean training: only 5 steps: too short to judge"})]
    lines = convergence_lines(rows)
    assert lines[2] == "| FP clean SGD (T) | 1/3 (1 not diagnosed) |"


def test_interior_points_need_every_neighbour_and_a_longer_run(registry):
    bad = dict(GOOD, principle_fraction=0.5)
    pts = {}

    def put(key, m):
        p = regions.Point(CID, *key, seeds=[dict(m)] * 3, expected=3)
        p.verdict, p.reason, p.criteria = pc.evaluate(registry[CID], p.seeds)
        pts[key] = p

    for d, k in [(128, 4), (128, 5), (128, 6), (128, 7), (64, 5), (256, 5), (64, 6), (256, 6)]:
        put((d, k, 1), GOOD)
    put((128, 5, 3), GOOD)
    put((128, 6, 3), bad)
    # (128, 5): every neighbour and its 3T hold.  (128, 6): its 3T fails.  The others lack
    # a neighbour or a longer run.
    assert report.interior_points(pts) == [(128, 5)]
    put((128, 6, 3), GOOD)
    assert report.interior_points(pts) == [(128, 5), (128, 6)]
    put((64, 6, 1), bad)
    assert report.interior_points(pts) == [(128, 5)]
