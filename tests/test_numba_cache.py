"""Kernels loaded from a warm Numba cache in a new process must run (numba #8578, #4807).

The crash needs a non-parallel cached kernel that calls a parallel one, and a
particular history: the inner kernel compiled and cached by one process, the
outer one compiled by a second process that loaded the inner one from the
cache, and a third process that loads both and calls the outer one first.
theorylab's ``jit`` wrapper launches Numba's thread pool at import to prevent
it; this test builds such a pair with the wrapper in a scratch module.
"""

import os
import subprocess
import sys

MODULE = """
import numpy as np
from theorylab._kernels._jit import jit, prange

@jit(parallel=True)
def inner(a):
    out = np.empty_like(a)
    for i in prange(a.shape[0]):
        out[i] = 2.0 * a[i]
    return out

@jit
def outer(a):
    return inner(a).sum()
"""

COMPILE_INNER = "import numpy as np, pairmod; pairmod.inner(np.ones(4))"
CALL_OUTER = "import numpy as np, pairmod; print(pairmod.outer(np.ones(4)))"


def _run(code, tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), THEORYLAB_NUMBA_CACHE="1",
               PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)


def test_first_call_from_a_warm_cache_in_a_new_process(tmp_path):
    (tmp_path / "pairmod.py").write_text(MODULE)
    for step, code in enumerate((COMPILE_INNER, CALL_OUTER, CALL_OUTER)):
        proc = _run(code, tmp_path)
        assert proc.returncode == 0, f"process {step}: exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "8.0"
