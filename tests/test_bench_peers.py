"""The benchmark's peers compute theorylab's update: the check the harness runs before timing.

Small problems, no timing (``benchmarks`` stays out of the test suite's time).
Skipped where JAX is not installed (``pip install -e '.[bench]'``); PyTorch is
checked too when it is installed.
"""

import numpy as np
import pytest

pytest.importorskip("jax")

from benchmarks import _peers_jax as PJ  # noqa: E402
from benchmarks import bench_peers as B  # noqa: E402
from benchmarks._timing import torch_or_none  # noqa: E402

# Several chunks (and a ragged last one) in every workload; the CNN at a sixteenth.
SMALL = {"small": (600, 16, 24), "medium": (600, 16, 24), "large": (600, 16, 24),
         "cnn": dict(n=40, d=32, m=4)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["gd_small", "loop_small", "fgm_medium", "pgd20_medium", "cnn"])
def test_every_peer_takes_theorylabs_step(name, dtype):
    impls, problem = B.build(name, np.dtype(dtype).type, torch_or_none(), PJ, sizes=SMALL)
    assert {"theorylab", "jax"} <= set(impls)
    agree = B.agreement(impls, problem)
    for peer, a in agree.items():
        assert B.agrees(a, dtype), (peer, a)
    assert agree["theorylab"]["delta"] == agree["theorylab"]["norm"] == 0.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_wrong_peer_is_caught(dtype):
    # The check can fail: a JAX step with the learning rate off by 1% disagrees.
    impls, problem = B.build("gd_small", np.dtype(dtype).type, None, PJ, sizes=SMALL)
    X, y = problem["X"], problem["y"]
    impls["jax"] = PJ.gd_step_fn(X, y, problem["W"], 1.01 * B.LR)
    a = B.agreement(impls, problem)["jax"]
    assert not B.agrees(a, dtype) and a["norm"] > 5e-3
