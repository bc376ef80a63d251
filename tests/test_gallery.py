"""The documentation's gallery: every script runs and draws, public names only; doc examples.

The docs themselves are built by ``make docs`` (Sphinx is the ``docs`` extra, not needed
here); this test runs the gallery scripts the docs build executes, each in a fresh
process, and the docstring examples of the public modules.
"""

import ast
import doctest
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "examples" / "gallery"
SCRIPTS = sorted(GALLERY.glob("plot_*.py"))
REQUIRED = ("tau50 against d", "Does FGM training purify", "Write your own claim",
            "Certified versus attacked", "A sweep on a Dask cluster")


def test_the_gallery_has_the_required_examples():
    titles = [ast.get_docstring(ast.parse(p.read_text())).strip().splitlines()[0]
              for p in SCRIPTS]
    for wanted in REQUIRED:
        assert any(t.startswith(wanted) for t in titles), (wanted, titles)


def _private_uses(source):
    """Private names a script reaches: `_x` modules or names in imports, `obj._x` attributes."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            for part in [p for m in modules for p in m.split(".")] + names:
                if part.startswith("_") and not part.startswith("__"):
                    found.append(part)
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(node.attr)
    # and the plain-text grep (also inside the modules the scripts write out as strings)
    found += re.findall(r"\w\._(?!_)\w*", source)
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_gallery_uses_public_names_only(script):
    assert _private_uses(script.read_text()) == []


def test_the_private_name_check_can_fail():
    assert _private_uses("from theorylab._kernels import relu_net\n") == ["_kernels",
                                                                          "b._kernels"]
    assert "_runner" in _private_uses("import proofs_check._runner as r\n")
    assert "g._core" in _private_uses("x = 'from theorylab.training._core import History'\n")
    assert "_scores" in _private_uses("model._scores(X)\n")
    assert _private_uses("from theorylab.evaluate import robustness\nres.eps\n") == []


RUN = ("import runpy, sys, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; "
       "runpy.run_path(sys.argv[1], run_name='__main__'); n = len(plt.get_fignums()); "
       "print('figures', n); sys.exit(0 if n else 3)")


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_gallery_script_runs_and_draws(script):
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", RUN, str(script)], cwd=GALLERY, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "figures" in proc.stdout


def _doc_modules():
    # The modules of the API reference (docs/conf.py PUBLIC_MODULES), read without Sphinx.
    text = (ROOT / "docs" / "conf.py").read_text()
    block = text[text.index("PUBLIC_MODULES = ["):]
    return re.findall(r'"((?:theorylab|proofs_check)[\w.]*)"', block[:block.index("]")])


def test_docstring_examples_of_the_public_modules():
    modules = _doc_modules()
    assert "proofs_check" in modules and "theorylab.evaluate" in modules
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    examples = 0
    for name in modules:
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            examples += len(test.examples)
            runner.run(test, out=lambda s: None)
    result = runner.summarize(verbose=False)
    assert examples > 0 and result.failed == 0, result
