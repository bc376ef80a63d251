"""Users' checks: --module files, entry points, the public runner API, assert_claim, the plugin."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import proofs_check as pc
from theorylab.cli import main

ROOT = Path(__file__).resolve().parents[1]
MY_CLAIM = ROOT / "examples" / "my_claim.py"


@pytest.fixture(autouse=True)
def isolated_registry():
    """Each test registers into a copy of the registry; user modules are forgotten after."""
    pc.load_checks()
    saved, sources = dict(pc.REGISTRY), dict(pc.SOURCES)
    yield
    pc.REGISTRY.clear()
    pc.REGISTRY.update(saved)
    pc.SOURCES.clear()
    pc.SOURCES.update(sources)
    for name in [m for m in sys.modules if m.startswith(("theorylab_user_checks", "tlpkg"))]:
        del sys.modules[name]


def _tiny_check(cid="user.tiny", key="value", raises=False, paper="my paper"):
    def run(seed, params):
        if raises:
            raise RuntimeError("boom in the check")
        return {"value": 1.0 + seed}

    return pc.Check(id=cid, paper=paper, claim="value is at least 1", provenance="[D]",
                    regimes={"quick": {}, "full": {}},
                    criteria=[pc.Criterion(key, ">=", 1.0, "the claim")], run=run)


def test_my_claim_example_runs_from_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["check", "--module", str(MY_CLAIM), "--only", "user.", "--seeds", "3",
                 "--report", "r.md", "--json", "r.json", "--figures", "figs", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "user.linear_fgm_is_exact" in out and "PASS" in out
    report = (tmp_path / "r.md").read_text()
    header = report.split("Environment:")[0]
    # the header names the papers of the checks that ran, not theorylab's two
    assert "my notes" in header and "Feature Purification" not in header
    assert json.loads((tmp_path / "r.json").read_text())["papers"][0]["paper"].startswith("my")
    assert (tmp_path / "figs" / "user.linear_fgm_is_exact.png").exists()


def test_list_shows_where_each_check_comes_from(capsys):
    assert main(["check", "--module", str(MY_CLAIM), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    mine = [ln for ln in lines if ln.startswith("user.linear_fgm_is_exact")]
    assert mine and f"module {MY_CLAIM}" in mine[0]
    assert any(ln.startswith("fp.v1_clean_features_l2") and " theorylab " in ln for ln in lines)


def test_module_errors_are_one_line_exit_2(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("raise ImportError('a missing dependency')\n")
    for spec, words in ((str(tmp_path / "nope.py"), "no such file"),
                        ("no_such_module_xyz", "no importable module"),
                        (str(broken), "ImportError: a missing dependency")):
        assert main(["check", "--module", spec, "--list"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("theorylab check: error: --module ") and words in err
        assert len(err.splitlines()) == 1


def test_loading_a_module_twice_registers_once_and_duplicates_name_their_source():
    assert pc.load_module(str(MY_CLAIM)) == ["user.linear_fgm_is_exact"]
    assert pc.load_module(str(MY_CLAIM)) == []
    with pytest.raises(ValueError, match="duplicate check id 'user.linear_fgm_is_exact' "
                                         r"\(already registered from module .*replace=True"):
        pc.register(pc.REGISTRY["user.linear_fgm_is_exact"])
    new = _tiny_check("user.linear_fgm_is_exact")
    assert pc.register(new, replace=True) is new and pc.REGISTRY[new.id] is new


def test_an_installed_package_entry_point_is_picked_up(tmp_path, monkeypatch, capsys):
    # A tiny installed distribution: a package and its .dist-info with entry_points.txt.
    pkg = tmp_path / "tlpkg_checks"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import proofs_check as pc

        def run(seed, params):
            return {"answer": 42.0}

        pc.register(pc.Check(id="tlpkg.answer", paper="Deep Thought (1979)",
                             claim="the answer is 42", provenance="[D]",
                             regimes={"quick": {}, "full": {}},
                             criteria=[pc.Criterion("answer", ">=", 42, "the book")], run=run))
    """))
    info = tmp_path / "tlpkg_checks-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tlpkg-checks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[theorylab.checks]\ntlpkg = tlpkg_checks\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["check", "--list"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("tlpkg.answer")]
    assert line and "entry point tlpkg = tlpkg_checks" in line[0]
    (result,) = pc.run("tlpkg.answer", seeds=2)
    assert result.verdict == pc.PASS


def test_public_run_validates_and_reports(tmp_path):
    check = _tiny_check()
    with pytest.raises(ValueError, match="regime"):
        pc.run(check, regime="medium")
    with pytest.raises(ValueError, match="seeds"):
        pc.run(check, seeds=0)
    with pytest.raises(ValueError, match="jobs"):
        pc.run(check, jobs=0)
    with pytest.raises(ValueError, match="did you mean 'fp.v1_clean_features_l2'"):
        pc.run("fp.v1_clean_feature_l2")
    # An unregistered check runs in this process; workers could not import it.
    (result,) = pc.run(check, seeds=2)
    assert result.verdict == pc.PASS and result.seeds == [0, 1]
    with pytest.raises(ValueError, match="jobs=1"):
        pc.run(check, seeds=2, jobs=2)
    pc.write_report([result], tmp_path / "r.md")
    pc.write_json([result], tmp_path / "r.json")
    assert "my paper" in (tmp_path / "r.md").read_text()
    assert "user.tiny" in pc.format_table([result])


def test_a_typo_in_a_criterion_key_is_an_error_with_a_suggestion():
    (result,) = pc.run(_tiny_check(key="valeu"), seeds=3)
    assert result.verdict == pc.ERROR
    assert "'valeu' was measured on no seed; did you mean 'value'?" in result.reason
    assert result.criteria[0].status == pc.ERROR


def test_verbose_prints_the_traceback(tmp_path, capsys):
    mod = tmp_path / "raising.py"
    mod.write_text(textwrap.dedent("""
        import proofs_check as pc

        def run(seed, params):
            raise RuntimeError("boom in the check")

        pc.register(pc.Check(id="user.raises", paper="p", claim="c", provenance="[D]",
                             regimes={"quick": {}, "full": {}},
                             criteria=[pc.Criterion("x", ">=", 0, "r")], run=run))
    """))
    base = ["check", "--module", str(mod), "--only", "user.raises", "--seeds", "1", "--quiet",
            "--report", str(tmp_path / "r.md"), "--figures", str(tmp_path)]
    assert main(base) == 1
    out, err = capsys.readouterr()
    assert "RuntimeError: boom in the check" in out + err and "Traceback" not in err
    assert main(base + ["--verbose"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise RuntimeError' in err


@pytest.mark.slow
def test_module_checks_run_in_worker_processes(tmp_path):
    # --jobs 2: spawned workers register the --module file's checks again.
    pc.load_module(str(MY_CLAIM))
    (serial,) = pc.run("user.linear_fgm_is_exact", seeds=2, jobs=1)
    (parallel,) = pc.run("user.linear_fgm_is_exact", seeds=2, jobs=2)
    assert serial.verdict == parallel.verdict == pc.PASS
    strip = [{k: v for k, v in m.items() if k != "extra"} for m in serial.measurements]
    assert strip == [{k: v for k, v in m.items() if k != "extra"}
                     for m in parallel.measurements]


def test_assert_claim_passes_and_fails_with_the_table():
    from theorylab.testing import assert_claim

    assert assert_claim(_tiny_check(), seeds=2).verdict == pc.PASS
    with pytest.raises(AssertionError) as info:
        assert_claim(_tiny_check(key="valeu"), seeds=2)
    text = str(info.value)
    assert "claim user.tiny is ERROR" in text and "valeu >= 1" in text and "summary:" in text
    with pytest.raises(AssertionError, match="boom in the check"):
        assert_claim(_tiny_check(raises=True), seeds=1)
    assert assert_claim("user.linear_fgm_is_exact", seeds=1,
                        modules=[str(MY_CLAIM)]).verdict == pc.PASS


def test_pytest_plugin_collects_checks_as_items(tmp_path):
    typo = tmp_path / "typo.py"
    typo.write_text(MY_CLAIM.read_text().replace('"fgm_minus_exact", "<="', '"fgm_minus_exakt", "<="')
                    .replace("user.linear_fgm_is_exact", "user.typo"))
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
            "-p", "theorylab.pytest_plugin", "-W", "ignore::DeprecationWarning",
            "test_plain.py"]
    plain = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert plain.returncode == 0 and "1 passed" in plain.stdout, plain.stdout + plain.stderr
    proc = subprocess.run(args + ["--theorylab-checks", "--theorylab-module", str(MY_CLAIM),
                                  "--theorylab-module", str(typo), "--theorylab-only", "user.",
                                  "--theorylab-seeds", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "1 failed, 2 passed" in out
    assert "did you mean 'fgm_minus_exact'" in out and "theorylab-checks::user.typo" in out


# -- the first-run notice -------------------------------------------------------------------

def test_cold_cache_is_detected_without_compiling(tmp_path):
    code = ("from theorylab._kernels.cache import cold_cache_notice, missing_from_cache; "
            "m, t = missing_from_cache(); print(m == t > 40); print(cold_cache_notice(10))")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty"), THEORYLAB_NUMBA_CACHE="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["True", "compiling kernels, about 30 s, cached for "
                                                   "next time"]
    assert not list((tmp_path / "empty").rglob("*.nbi"))  # nothing was compiled


def test_the_workers_serial_twins_are_asked_about(tmp_path):
    # After a process with THEORYLAB_SERIAL_KERNELS=1 warmed the ntk family, a normal process
    # sees those twins cached (serial=True) while its own parallel builds are still missing.
    from theorylab._kernels.cache import compile_estimate

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "c"), THEORYLAB_NUMBA_CACHE="1")
    ask = ("from theorylab._kernels.cache import missing_from_cache as m; "
           "print(m(False)[0], m(True)[0])")

    def run(code, serial):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=dict(env, THEORYLAB_SERIAL_KERNELS="1" if serial else "0"),
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    before = [int(v) for v in run(ask, False)]
    run("from theorylab.sweep.warm import warm_kernels; warm_kernels(['ntk'])", True)
    after = [int(v) for v in run(ask, False)]
    assert before[0] == before[1] > 40
    assert after[1] < before[1]  # the twins the worker wrote are found ...
    n_serial_only = before[1] - after[1]
    assert before[0] - after[0] < n_serial_only  # ... and the parallel builds still missing
    assert compile_estimate(40, serial=True, workers=2) < compile_estimate(40)


def test_warm_cache_says_nothing():
    from theorylab._kernels.cache import cold_cache_notice, missing_from_cache

    missing, total = missing_from_cache()  # the session's warm-up compiled most kernels
    assert missing <= total // 2 and cold_cache_notice() is None


def test_the_cli_says_it_once_and_not_under_quiet(monkeypatch, capsys):
    import theorylab._kernels.cache as cache
    import theorylab.cli as cli

    calls = []
    monkeypatch.setattr(cache, "cold_cache_notice",
                        lambda uses=None, **kw: calls.append(uses) or "compiling kernels, about "
                                                                      "30 s, cached for next time")
    train = ["train", "--d", "8", "--k", "2", "--steps", "2"]
    monkeypatch.setattr(cli, "_NOTICE_SHOWN", [])
    assert main(train + ["--quiet"]) == 0
    assert "compiling" not in capsys.readouterr().err and calls == []
    for _ in range(2):
        assert main(train) == 0
    err = capsys.readouterr().err
    assert err.count("theorylab: compiling kernels, about 30 s, cached for next time") == 1
    assert calls == [10]
