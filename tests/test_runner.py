"""The check runner: same results for any --jobs, reports written, errors recorded."""

import json

import numpy as np
import pytest

from proofs_check import (FAIL, INCONCLUSIVE, PASS, Check, Criterion, convergence_measurements,
                          evaluate, load_checks)
from proofs_check._runner import ERROR, format_table, run_checks, write_json, write_markdown

TINY = {"d": 16, "k": 2, "T": 60, "T_adv": 20, "batch": 64, "n_test": 100, "pgd_steps": 3}


def _strip(measurements):
    return [{k: v for k, v in m.items() if k != "extra"} for m in measurements]


@pytest.mark.slow
def test_jobs_do_not_change_results(tmp_path):
    registry = load_checks()
    checks = [registry["fp.v1_clean_features_l2"], registry["fp.v3_adversarial_purifies_l2"]]
    seen = {1: [], 2: []}
    serial = run_checks(checks, "quick", [0, 1], params_override=TINY, jobs=1,
                        figures_dir=str(tmp_path / "serial"), on_result=seen[1].append)
    parallel = run_checks(checks, "quick", [0, 1], params_override=TINY, jobs=2,
                          figures_dir=str(tmp_path / "parallel"), on_result=seen[2].append)
    # Each check is announced once, as it finishes, with the result that is returned.
    for jobs, returned in ((1, serial), (2, parallel)):
        assert sorted(r.check.id for r in seen[jobs]) == sorted(c.id for c in checks)
        assert all(any(a is b for b in returned) for a in seen[jobs])
        assert all(r.figure_path for r in seen[jobs])  # announced after the figure is drawn
    for a, b in zip(serial, parallel):
        # With jobs > 1 the figures are drawn in the workers; both modes save every figure.
        for r, sub in ((a, "serial"), (b, "parallel")):
            assert r.figure_path == str(tmp_path / sub / f"{r.check.id}.png")
            assert (tmp_path / sub / f"{r.check.id}.png").stat().st_size > 10_000
        ma, mb = _strip(a.measurements), _strip(b.measurements)
        for x, y in zip(ma, mb):
            assert x.keys() == y.keys()
            for key in x:
                if key.startswith("seconds"):
                    continue
                if isinstance(x[key], str):  # not_converged_reason
                    assert x[key] == y[key], (a.check.id, key)
                    continue
                assert np.array_equal(x[key], y[key], equal_nan=True), (a.check.id, key)
        assert a.verdict == b.verdict
    write_markdown(serial, tmp_path / "r.md")
    write_json(serial, tmp_path / "r.json")
    text = (tmp_path / "r.md").read_text()
    assert "fp.v1_clean_features_l2" in text and "why this threshold" in text
    data = json.loads((tmp_path / "r.json").read_text())
    assert {r["id"] for r in data["results"]} == {c.id for c in checks}


def test_a_raising_check_is_recorded_and_others_run():
    registry = load_checks()
    bad = {"d": 16, "k": 40}  # k > d: the world raises ValueError
    res = run_checks([registry["fp.v1_clean_features_l2"]], "quick", [0], params_override=bad)
    assert res[0].verdict == ERROR and "k must be" in res[0].error


def test_check_runs_use_one_blas_thread(monkeypatch):
    # Bits must not depend on NumPy's BLAS thread count (nor --jobs): runs pin it to 1.
    from threadpoolctl import threadpool_info

    import proofs_check._runner as runner

    seen = []

    def spy(ids, regime, seed, override, checks=None):
        seen.append({lib["num_threads"] for lib in threadpool_info()
                     if lib["user_api"] == "blas"})
        return seed, {cid: ("ok", {}, 0.0) for cid in ids}

    monkeypatch.setattr(runner, "_run_seed", spy)
    check = load_checks()["fp.v1_clean_features_l2"]
    runner._collect([check], "quick", [0, 1], 1, None, None)
    assert seen == [{1}, {1}]
    code = ("from threadpoolctl import threadpool_info; import proofs_check._runner as r; "
            "r._worker_init(); print(sorted({l['num_threads'] for l in threadpool_info() "
            "if l['user_api'] == 'blas'}))")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1]"


@pytest.mark.slow
def test_report_json_reproduces_bit_for_bit(tmp_path):
    # The committed report must not change when make check runs again: same bits for the
    # same seeds, with one or two workers, and no timings inside (they go to --timings).
    from proofs_check._runner import write_timings

    registry = load_checks()
    runs = [([registry["fp.v3_adversarial_purifies_l2"]], TINY),
            ([registry["img.low_rank_l2"]], {"n_train": 200, "steps": 30, "adv_steps": 20,
                                             "m": 8, "eval_steps": 5})]
    texts = []
    # jobs=1 runs here, jobs=2 in fresh worker processes: two runs in two processes.
    for jobs in (1, 2):
        results = []
        for checks, override in runs:
            results += run_checks(checks, "quick", [0, 1], params_override=override, jobs=jobs,
                                  figures_dir=str(tmp_path / "fig"))
        write_json(results, tmp_path / "r.json")
        write_markdown(results, tmp_path / "r.md")
        texts.append(((tmp_path / "r.json").read_bytes(), (tmp_path / "r.md").read_bytes()))
    assert texts[0] == texts[1]
    data = json.loads(texts[0][0])
    assert not any(k == "seconds" or k.startswith("seconds_")
                   for r in data["results"] for m in [r] + r["measurements"] for k in m)
    assert any(k.startswith("full_update_energy_r") for k in data["results"][1]["measurements"][0])
    write_timings(results, tmp_path / "t.json")
    t = json.loads((tmp_path / "t.json").read_text())
    assert [r["id"] for r in t["results"]] == [r.check.id for r in results]
    assert all(r["seconds"] > 0 for r in t["results"])


# -- training that did not converge ------------------------------------------------------

def _toy_check():
    return Check(id="t.toy", paper="p", claim="c", provenance="[D]",
                 regimes={"quick": {}, "full": {}},
                 criteria=[Criterion("a", ">=", 1.0, "r")], run=lambda seed, params: {})


def test_a_seed_whose_training_did_not_converge_makes_the_check_inconclusive():
    check = _toy_check()
    ok = {"a": 2.0, "converged": True, "not_converged_reason": ""}
    bad = {"a": 0.0, "converged": True, "not_converged_reason": ""}
    transient = {"a": 0.0, "converged": False,
                 "not_converged_reason": "adv training: dense_ratio moved 9%"}
    assert evaluate(check, [ok, ok])[0] == PASS
    assert evaluate(check, [bad, bad])[0] == FAIL
    # Never a verdict on a transient, neither FAIL nor PASS; the reason names seed and cause.
    verdict, reason, results = evaluate(check, [bad, transient], seeds=[3, 4])
    assert verdict == INCONCLUSIVE
    assert reason == ("training did not converge (claim not judged): seed 4: adv training: "
                      "dense_ratio moved 9%")
    assert [r.status for r in results] == [FAIL]  # still reported
    assert evaluate(check, [ok, dict(ok, converged=np.False_)])[0] == INCONCLUSIVE
    # A mistake in the check stays an ERROR.
    assert evaluate(check, [{"converged": False}])[0] == ERROR


def test_convergence_measurements_from_histories():
    class H:
        def __init__(self, converged, value):
            self.convergence = {"converged": converged, "reason": "" if converged else "why",
                                "criteria": {"loss_plateau": {"value": value}}}

    class Undiagnosed:
        convergence = None

    m = convergence_measurements({"clean": H(True, 0.07), "adv": H(False, None),
                                  "oracle": Undiagnosed()})
    assert m == {"convergence_clean_loss_plateau": 0.07, "converged": False,
                 "not_converged_reason": "adv training: why"}
    assert convergence_measurements({})["converged"] is True


@pytest.mark.slow
def test_truncated_training_makes_a_real_check_inconclusive(tmp_path):
    # fp.v1 with its clean training stopped halfway through the threshold ramp
    # (ramp_frac 2: the ramp would need twice the steps): INCONCLUSIVE on every seed, with
    # the reason in the table and the report; the same regime run to its end is judged.
    check = load_checks()["fp.v1_clean_features_l2"]
    small = {"d": 32, "k": 2, "T": 300, "batch": 128, "n_test": 200}
    cut, = run_checks([check], "quick", [0, 1], params_override=dict(small, ramp_frac=2.0))
    assert cut.verdict == INCONCLUSIVE
    assert cut.reason.startswith("training did not converge (claim not judged): seed 0: "
                                 "clean training: c moved")
    assert "seed 1: clean training" in cut.reason
    assert "training did not converge" in format_table([cut])
    write_markdown([cut], tmp_path / "r.md")
    write_json([cut], tmp_path / "r.json")
    assert "*Why:* training did not converge" in (tmp_path / "r.md").read_text()
    saved = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert [m["converged"] for m in saved["measurements"]] == [False, False]
    whole, = run_checks([check], "quick", [0, 1], params_override=dict(small, ramp_frac=0.5))
    assert all(m["converged"] for m in whole.measurements), whole.reason
    assert not whole.reason.startswith("training did not converge")
