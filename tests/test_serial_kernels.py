"""THEORYLAB_SERIAL_KERNELS=1 (the check runner's workers) compiles serial twins: same bits.

The twins are the same Python functions compiled without ``parallel=True``; prange then
runs the fixed chunks in order, the order the parallel kernels reduce in.  A process in
serial mode computes kernels of every family on fixed inputs, and the parallel build in
this process (two threads) must give the same bits.
"""

import os
import subprocess
import sys

import numpy as np

from theorylab._kernels._jit import SERIAL_ENV, kernel_threads

_CODE = r"""
import sys
import numpy as np
from theorylab._kernels import cnn, linear, relu_net
from theorylab._kernels._jit import SERIAL_KERNELS

out = {}
exec(sys.argv[1], globals())
assert SERIAL_KERNELS
from theorylab._kernels.cache import kernel_dispatchers
kinds = {k.py_func.__qualname__: bool(k.targetoptions.get("parallel"))
         for k in kernel_dispatchers()}
assert not any(kinds.values()), [q for q, par in kinds.items() if par]
assert sum(q.endswith("__serial") for q in kinds) >= 10, kinds
np.savez(sys.argv[2], **out)
"""

# Inputs large enough for several 256-row chunks, so a reduction order would show.
_COMPUTE = r"""
rng = np.random.default_rng(0)
X = rng.standard_normal((1100, 24)); y = np.sign(rng.standard_normal(1100))
W = rng.standard_normal((16, 24)) / 5; b = np.full(16, 0.3)
loss, f, G = relu_net.loss_and_weight_gradient(X, y, W, b)
out["relu_loss"], out["relu_grad"] = loss, G
def put(name, res):
    for i, part in enumerate(res if isinstance(res, tuple) else (res,)):
        out[f"{name}{i}"] = np.asarray(part)
put("fgm", relu_net.fgm(X, y, W, b, 0.1, True))
put("fgm_step", relu_net.fgm_loss_and_weight_gradient(X, y, W, b, 0.1, False))
put("lone_run", relu_net.train_full_batch_many(X[None], y[None], W[None], np.full(4, 0.5),
                                               np.array([0.5]), 0, np.zeros((0, 0))))
Xp = rng.standard_normal((600, 4, 12)); yc = rng.integers(0, 2, 600)
Wc = rng.standard_normal((2, 3, 12)) / 4
put("cnn", cnn.loss_and_weight_gradient(Xp, yc, Wc, 3, 0.5))
put("lin", linear.objective(X, y, rng.standard_normal(24), 0.1, 1e-3))
"""


def test_serial_twins_give_the_parallel_kernels_bits(tmp_path):
    env = dict(os.environ, **{SERIAL_ENV: "1"})
    path = tmp_path / "serial.npz"
    proc = subprocess.run([sys.executable, "-c", _CODE, _COMPUTE, str(path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    serial = np.load(path)
    from theorylab._kernels import cnn, linear, relu_net  # noqa: F401 - used by _COMPUTE

    scope = {"np": np, "relu_net": relu_net, "cnn": cnn, "linear": linear, "out": {}}
    with kernel_threads(2):
        exec(_COMPUTE, scope)
    assert cnn.loss_and_weight_gradient.targetoptions.get("parallel")  # this process: parallel
    assert set(serial.files) == set(scope["out"])
    for name in serial.files:
        assert np.array_equal(serial[name], np.asarray(scope["out"][name])), name
