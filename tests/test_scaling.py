"""Scaling paths: the path rule, a tiny run through the driver and redraw, fits and report, CLI.

The end-to-end test runs real cells (linf, d = 16 and 32, 2 seeds, 2% of the quick
regime's steps: ~10 s); the fit and report tests use a synthetic CSV whose power laws
are chosen by hand, so a wrong fit or a wrong comparison fails them.
"""

import csv
import math
import os

import numpy as np
import pytest

import proofs_check as pc
from proofs_check._harness import evaluate
from proofs_check.__main__ import main as check_main
from proofs_check.phase import regions
from proofs_check.scaling import driver, fits, paths
from proofs_check.scaling.__main__ import main
from proofs_check.scaling.report import exponent_table, write_report
from theorylab.cli import main as cli_main
from theorylab.sweep import parse_spec


# -- the path rule ------------------------------------------------------------------------

def test_path_passes_through_the_quick_regimes():
    assert [paths.path_k(d) for d in (64, 128, 256, 512, 1024)] == [4, 5, 7, 9, 11]
    assert [paths.path_k(d, anchor_k=4) for d in (64, 128, 256, 512, 1024)] == [3, 4, 5, 7, 9]
    for norm, (d0, k0) in paths.ANCHORS.items():
        assert paths.path_k(d0, paths.GAMMA, d0, k0) == k0, norm
    # k = c d^gamma with c = k0 / d0^gamma; halves round up (round() would give 2 here).
    assert paths.path_c(0.5, 4, 1) == pytest.approx(0.5)
    assert paths.path_k(25, 0.5, 4, 1) == 3  # 0.5 * 5 = 2.5 -> 3


@pytest.mark.parametrize("kwargs, name", [
    (dict(d=1), "d"), (dict(d=64.0), "d"), (dict(d=True), "d"),
    (dict(d=64, gamma=0.0), "gamma"), (dict(d=64, gamma=1.0), "gamma"),
    (dict(d=64, gamma="0.4"), "gamma"), (dict(d=64, anchor_k=0), "anchor_k"),
    (dict(d=64, anchor_d=1), "anchor_d"), (dict(d=4, anchor_k=50), "k = "),
])
def test_path_k_rejects_bad_input_naming_it(kwargs, name):
    with pytest.raises(ValueError, match=name):
        paths.path_k(**kwargs)


@pytest.mark.parametrize("params, name", [
    (dict(d=64, k=4, norms=["l2"], gamma=0.4, anchor_d=128, anchor_k=5), "k:"),
    (dict(d=64, norms=["l1"], gamma=0.4, anchor_d=128, anchor_k=5), "norms"),
    (dict(d=64, norms=[], gamma=0.4, anchor_d=128, anchor_k=5), "norms"),
    (dict(d=64, norms=["l2"], anchor_d=128, anchor_k=5), "gamma"),
])
def test_path_params_rejects_bad_cells(params, name):
    with pytest.raises(ValueError, match=name):
        paths.path_params(params)


def test_specs_in_the_repository_are_the_paths():
    specs = driver.load_specs("examples/sweeps")
    by = {s.fixed["norms"][0]: s for s in specs}
    assert set(by) == {"l2", "linf"}
    for norm, spec in by.items():
        assert (spec.fixed["anchor_d"], spec.fixed["anchor_k"]) == paths.ANCHORS[norm]
        assert spec.axes["d"] == [64, 128, 256, 512, 1024] and len(spec.seeds) == 3
    # The two paths share no k at any d: each cell runs one norm.
    assert all(paths.path_k(d) != paths.path_k(d, anchor_k=4) for d in by["l2"].axes["d"])


# -- a tiny run through the driver, its CSV, the resume and the redraw ----------------------

def _tiny_spec(tmp_path):
    text = """
[sweep]
name = "scaling_linf"
seeds = 2
[experiment]
kind = "callable"
function = "proofs_check.scaling.cells:scaling_cell"
[axes]
d = [16, 32]
[fixed]
norms = ["linf"]
gamma = 0.4
anchor_d = 128
anchor_k = 4
t_mult = 0.02
"""
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "scaling_linf.toml").write_text(text)
    return spec_dir


def test_tiny_run_exports_resumes_and_redraws(tmp_path):
    spec_dir = _tiny_spec(tmp_path)
    out, figs, report = tmp_path / "out", tmp_path / "figs", tmp_path / "report.md"
    specs = driver.load_specs(str(spec_dir))
    s = driver.run(specs, str(out), progress=False, log=lambda *_: None)
    assert (s["ran"], s["failed"], s["left"]) == (4, 0, 0)
    (csv_path,) = driver.export(specs, str(out))
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["done"] * 4
    assert {r["fp.v3_adversarial_purifies_linf/verdict"] for r in rows} <= {
        "PASS", "FAIL", "INCONCLUSIVE"}
    assert all(float(r["scaling/k"]) == 2 and float(r["scaling/grid_min"]) == 0.00125
               and r["scaling/tau50_adv_certified"] for r in rows)
    # Re-judged from its CSV row, every claim of a cell gets the verdict the cell gave it
    # (the tiny runs do not converge: the flag must survive the store).
    registry = pc.load_checks()
    for r in regions.read_rows(csv_path, params=fits.SCALING_PARAMS):
        for stem in ("fp.v1_clean_features", "fp.v2_clean_nonrobust",
                     "fp.v3_adversarial_purifies", "fp.v4_principle"):
            cid = f"{stem}_linf"
            m = regions.claim_measurements(r["metrics"], cid)
            assert evaluate(registry[cid], [m])[0] == m["verdict"], cid
    assert any("not_converged_reason" in k for r in rows for k, v in r.items() if v)
    # A fresh checkout has the CSV, not the store: the store is rebuilt and nothing reruns.
    os.remove(out / "scaling_linf.sqlite")
    assert driver.run(specs, str(out), progress=False, log=lambda *_: None)["ran"] == 0
    assert main(["--redraw", "--specs", str(spec_dir), "--out", str(out), "--figures",
                 str(figs), "--report", str(report), "--n-boot", "200"]) == 0
    assert (figs / "scaling_tau50_clean.png").stat().st_size > 0
    text = report.read_text()
    assert "| `fp.v3_adversarial_purifies_linf` |" in text and "d = 32" in text
    assert "Every cell is done." in text


# -- fits and report on a synthetic CSV with known power laws --------------------------------

DS = (64, 128, 256, 512, 1024)


def _synthetic_csv(path, slope_clean, seeds=3):
    cols = ["key", "status", "replicate", "d", "norms", "gamma", "anchor_d", "anchor_k",
            "t_mult", "cpu_seconds", "wall_seconds",
            "fp.v2_clean_nonrobust_l2/tau50_linear", "fp.v2_clean_nonrobust_l2/tau50_clean",
            "fp.v1_clean_features_l2/dense_ratio_median",
            "fp.v3_adversarial_purifies_l2/oracle_minus_adv", "scaling/grid_min"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for d in DS:
            k = paths.path_k(d)
            for r in range(seeds):
                # The same spread of seeds at every d: each d's mean in log is the law.
                noise = math.exp(0.01 * (r - (seeds - 1) / 2))
                w.writerow([f"{d}-{r}", "done", r, d, '["l2"]', 0.4, 128, 5, 1, 10.0, 11.0,
                            0.8 * math.sqrt(k / d) * noise,  # the derived law, exactly
                            0.3 * d ** slope_clean * noise,  # another slope
                            2.0 * d ** -0.25 * noise,        # a pure power law in d
                            0.05 - 0.1 * (d == 1024),        # a gap <= 0 at d = 1024
                            0.0125])


def test_fits_recover_known_exponents_and_flag_mismatch(tmp_path):
    path = tmp_path / "scaling_l2.csv"
    _synthetic_csv(path, slope_clean=0.5)
    rows = fits.read_scaling_rows(str(path))
    f = fits.fit_all(rows, n_boot=500)
    dense = f[("dense_ratio", "l2")]
    assert dense.fit.exponent == pytest.approx(-0.25, abs=0.01)
    assert dense.fit.ci[0] < -0.25 < dense.fit.ci[1]
    assert dense.fit.ci[1] - dense.fit.ci[0] < 0.05  # 1% spread: a tight interval
    # The derived exponent along the path (integer k) is the linear rule's own slope.
    lin = f[("tau50_linear", "l2")]
    (der, along, cont, inside) = lin.comparisons[0]
    assert der.name == "linear rule" and cont == pytest.approx(-0.3) and inside is True
    assert lin.fit.exponent == pytest.approx(along, abs=0.01)
    # tau50_clean was made with slope +0.5: neither derived slope lies in its interval.
    clean = f[("tau50_clean", "l2")]
    assert clean.fit.exponent == pytest.approx(0.5, abs=0.01)
    assert [c[3] for c in clean.comparisons] == [False, False]
    # The dense ratio's derived k / sqrt(d) has another slope than -0.25: flagged.
    assert dense.comparisons[0][3] is False
    # Non-positive gaps are left out and counted, never logged.
    gap = f[("oracle_gap", "l2")]
    assert len(gap.excluded) == 3 and set(gap.d.tolist()) == set(DS[:-1])
    table = exponent_table(f, "l2")
    assert "no derived exponent" in table and "**no**" in table and "**yes**" in table
    assert "3 left out" in table


def test_report_and_comparison_on_matching_data(tmp_path):
    path = tmp_path / "scaling_l2.csv"
    _synthetic_csv(path, slope_clean=-0.3)
    rows = fits.read_scaling_rows(str(path))
    f = fits.fit_all(rows, n_boot=500)
    clean = f[("tau50_clean", "l2")]
    assert clean.comparisons[0][0].name == "linear rule"
    # -0.3 exactly against the integer-k path's slope (-0.29): a 0.01-noise CI excludes it
    # or not, but the comparison must use the along-path exponent, not the continuous one.
    assert clean.comparisons[0][1] != pytest.approx(-0.3, abs=1e-6)
    spec = parse_spec({"sweep": {"name": "scaling_l2", "seeds": 3},
                       "experiment": {"kind": "callable",
                                      "function": "proofs_check.scaling.cells:scaling_cell"},
                       "axes": {"d": list(DS)},
                       "fixed": {"norms": ["l2"], "gamma": 0.4, "anchor_d": 128,
                                 "anchor_k": 5, "t_mult": 1}})
    out = write_report([spec], rows, f, str(tmp_path / "r.md"))
    with open(out) as fh:
        text = fh.read()
    assert "## Fitted exponents against the derived ones" in text
    assert "| l2 | 0.4 | (128, 5) | 0.718 | 4 | 5 | 7 | 9 | 11 |" in text


# -- the command lines -----------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["check", "--scaling", "--max-minutes", "0"], "--max-minutes must be > 0"),
    (["check", "--scaling", "--only", "fp."], "--only does not apply to --scaling"),
    (["check", "--max-minutes", "5"], "--max-minutes applies to --scaling only"),
    (["check", "--scaling", "--jobs", "0"], "--jobs must be >= 1"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("theorylab check: error:")


def test_module_clis_exit_2(tmp_path, capsys):
    assert check_main(["--scaling", "--json", "x.json"]) == 2
    assert main(["--workers", "0"]) == 2
    assert main(["--redraw", "--specs", str(tmp_path)]) == 2  # no scaling_*.toml there
    err = capsys.readouterr().err
    assert "--json does not apply" in err and "--workers must be >= 1" in err
    assert "--specs: no scaling_*.toml" in err


def test_dense_mixture_ratio_is_the_spec_scaling():
    from theorylab.theory import dense_mixture_ratio

    assert dense_mixture_ratio(9, 81) == pytest.approx(1.0)
    assert dense_mixture_ratio(5, 128) == pytest.approx(5 / math.sqrt(128))
    with pytest.raises(ValueError, match="k"):
        dense_mixture_ratio(200, 128)


def test_linear_rule_tau50_is_the_margin_laws_median():
    from theorylab.theory import linear_rule_tau50

    rng = np.random.default_rng(1)
    for k, d in ((4, 64), (11, 1024), (40, 400)):
        n = rng.binomial(d, k / d, size=200_000)
        s = 2 * rng.binomial(n, 0.5) - n
        s = np.abs(s[s != 0])  # ties resampled = conditioned away
        vals = np.unique(s)
        s50 = next(v for v in vals if np.mean(s > v) < 0.5)
        assert linear_rule_tau50(k, d) == pytest.approx(s50 / math.sqrt(d))
        assert linear_rule_tau50(k, d, "inf") == pytest.approx(s50 / d)
    # Large k: the spec's sqrt(k/d) scale with the constant of a normal median, ~0.674.
    assert linear_rule_tau50(400, 40000) / math.sqrt(400 / 40000) == pytest.approx(0.674,
                                                                                   abs=0.06)


def test_estimate_uses_the_nearest_measured_d():
    p = dict(d=1024, norms=["l2"], gamma=0.4, anchor_d=128, anchor_k=5)
    assert driver.estimate(p, {("l2", 1024): [(700.0, 710.0), (900.0, 910.0)]}) == 800.0
    assert driver.estimate(p, {("l2", 512): [(200.0, 210.0)], ("linf", 1024): [(5.0, 5.0)]}) \
        == pytest.approx(800.0)  # 200 s at d = 512, times (1024 / 512)^2
    assert driver.estimate(p, {}) == pytest.approx(driver.PRIOR["l2"][512] * 4)
