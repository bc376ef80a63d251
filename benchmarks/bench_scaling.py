"""The scaling paths' training step at d = 512 and 1024: float64 against float32.

The Feature Purification pipeline trains in float64 (it has no dtype option).  This
measures what float32 would give the scaling cells (issue 20 part 5): the clean step
and the fused l2 / linf FGM step of the path's sizes (batch N = 512 of the quick
regimes, m = 2d), on the existing kernels (:mod:`theorylab._kernels.relu_net`, the
calls :mod:`benchmarks.bench_two_layer` times), one Numba and one BLAS thread (what
a scaling worker gets).  What a whole cell would save follows from these ratios and
the cells' measured training share (``reports/scaling_report.md``).  Ratios are of the best of the
repeats (the least disturbed call on a shared machine), medians are reported too.
"""

from __future__ import annotations

import json

import numpy as np

from theorylab._kernels import relu_net as K
from theorylab._kernels.threads import limit_threads

from ._timing import time_stats, uptime_load
from .bench_two_layer import _problem, _thresholds, fgm_step, theorylab_step

SIZES = (512, 1024)
BATCH = 512


def fgm_linf_step(X, y, W, eps=0.04, lr=0.5):
    """The linf (FGSM) training step: the fused kernel with the sign direction."""
    b = _thresholds(W)
    W -= lr * K.fgm_loss_and_weight_gradient(X, y, W, b, X.dtype.type(eps), True)[2]


def _steps(d, repeats):
    out = {}
    for dt in (np.float64, np.float32):
        X, y, W = _problem(BATCH, d, 2 * d, dtype=dt)
        name = np.dtype(dt).name
        for step, fn in (("clean", theorylab_step), ("fgm_l2", fgm_step),
                         ("fgm_linf", fgm_linf_step)):
            med, best = time_stats(lambda fn=fn: fn(X, y, W), repeats)
            out[f"{step}_{name}_s"], out[f"{step}_{name}_best_s"] = med, best
    for step in ("clean", "fgm_l2", "fgm_linf"):
        out[f"{step}_float64_over_float32"] = (out[f"{step}_float64_best_s"]
                                               / out[f"{step}_float32_best_s"])
    return out


def run(repeats=7):
    """Step times at d = 512, 1024 in float64 and float32; a JSON-serialisable dict."""
    out = {"load_1min": uptime_load(), "batch": BATCH}
    with limit_threads(1, 1):
        for d in SIZES:
            out[f"d{d}"] = _steps(d, repeats)
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
