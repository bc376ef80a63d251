"""The layers of ARCHITECTURE.md hold (import-linter contracts in setup.cfg), and can fail."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter not installed")


def _lint(root):
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([str(LINT), "--config", str(root / "setup.cfg"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    # A copy of the packages to break on purpose (the real tree is never touched).
    dst = tmp_path_factory.mktemp("scratch")
    for name in ("theorylab", "proofs_check", "benchmarks"):
        shutil.copytree(ROOT / name, dst / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    shutil.copy(ROOT / "setup.cfg", dst / "setup.cfg")
    return dst


def test_every_contract_is_kept():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


@pytest.mark.parametrize("module, line, contract", [
    # a model reaching up into training: a layers violation
    ("theorylab/models/linear.py", "from ..training import train  # noqa", "layers"),
    # a figure that trains: the plots-leaf contract
    ("theorylab/plots/fp.py", "from theorylab.pipelines import fp_run  # noqa", "plots only draw"),
    # Numba outside the kernels
    ("theorylab/metrics.py", "import numba  # noqa", "Numba only"),
    # one attack importing another
    ("theorylab/attacks/square.py", "from .pgd import pgd  # noqa", "each attack is one module"),
])
def test_an_upward_or_forbidden_import_breaks_a_contract(scratch, module, line, contract):
    path = scratch / module
    original = path.read_text()
    try:
        path.write_text(original + "\n" + line + "\n")
        res = _lint(scratch)
    finally:
        path.write_text(original)
    assert res.returncode != 0
    broken = res.stdout.split("Broken contracts")[-1]
    assert contract in broken, res.stdout[-3000:]


def _contract_modules(name):
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return set(cfg[f"importlinter:contract:{name}"]["modules"].split())


def test_every_attack_and_trainer_module_is_in_its_independence_contract():
    # The name tables are discovered, the contracts are lists: a new attack or trainer
    # module left out of setup.cfg would be silently outside its contract.
    from theorylab import attacks
    from theorylab.training import _core

    registering = {spec.run.__module__ for spec in attacks.ATTACKS.values()}
    assert registering <= _contract_modules("attacks"), sorted(registering - _contract_modules(
        "attacks"))
    trainers = {fn.__module__ for fn in _core._TRAINERS.values()} | {"theorylab.training.many"}
    assert trainers <= _contract_modules("trainers"), sorted(trainers - _contract_modules(
        "trainers"))
