"""Kernels loaded from a warm Numba cache in a new process must run (numba #8578, #4807).

The crash needs a particular history: the inner parallel kernel is compiled and
cached by one process, the outer (non-parallel) kernel calling it is compiled by
a second process that loaded the inner one from the cache, and a third process
then loads both from the cache and calls the outer one first.
"""

import os
import subprocess
import sys

COMPILE_INNER = """
import numpy as np
from theorylab._kernels import relu_net
relu_net._soft_threshold_sum(np.ones((4, 2)), np.zeros(2))
"""

CALL_OUTER = """
import numpy as np
from theorylab._kernels import relu_net
X = np.ones((4, 3)); W = np.ones((2, 3)); b = np.zeros(2)
print(relu_net.scores(X, W, b).sum())
"""


def _run(code, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), THEORYLAB_NUMBA_CACHE="1")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)


def test_first_call_from_a_warm_cache_in_a_new_process(tmp_path):
    for step, code in enumerate((COMPILE_INNER, CALL_OUTER, CALL_OUTER)):
        proc = _run(code, tmp_path)
        assert proc.returncode == 0, f"process {step}: exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "24.0"
