"""Smoothed-ReLU patch CNN (Li & Li): one standard full-batch GD step, and one FGSM step.

Workload of issue 5: K = 4 classes, P = 8 patches, d = 256, m = 8 filters per
class, n = 512 samples, float64 (the package default), q = 3, rho = 0.5.  A GD
step is the forward GEMM (n P x d) @ (d x K m), the smoothed ReLU, the softmax
cross-entropy, and the weight-gradient GEMM: 4 n P d K m flops in the GEMMs.

Compared within one run (median over rounds after warm-up, the implementations
timed round-robin so that they share the machine's background load):

* theorylab: the Numba kernel ``loss_and_weight_gradient`` plus the update;
* NumPy: the same algorithm written with vectorised NumPy (two GEMMs, elementwise
  smoothed ReLU and its derivative through ``np.where``);
* PyTorch CPU: the idiomatic autograd version (forward, ``loss.backward()``, update),
  in float64 like the others and, for information, in float32.

``python -m benchmarks --only cnn`` runs it; ``run()`` returns the numbers.
"""

from __future__ import annotations

import numba
import numpy as np

from theorylab._kernels import cnn as K

from ._peers_torch import cnn_torch_step_fn
from ._timing import gemm_gflops, interleaved, torch_or_none, uptime_load

SIZE = dict(K=4, P=8, d=256, m=8, n=512)
Q, RHO, LR = 3, 0.5, 0.5


def _problem(K_, P, d, m, n, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = (0.3 / np.sqrt(d)) * rng.standard_normal((n, P, d))
    y = rng.integers(0, K_, n)
    X[np.arange(n), 0, :K_] += np.eye(K_)[y]  # a little signal so the scores vary
    W = 0.01 * rng.standard_normal((K_, m, d))
    W[:, 0, :K_] += 0.4 * np.eye(K_)  # some filters in the linear piece of sigma
    return X.astype(dtype), y, W.astype(dtype)


def theorylab_step(X, y, W):
    W -= LR * K.loss_and_weight_gradient(X, y, W, Q, RHO)[2]


def numpy_step(X, y, W):
    n, P, d = X.shape
    K_, m, _ = W.shape
    Xf = X.reshape(n * P, d)
    Z = Xf @ W.reshape(K_ * m, d).T
    zp = np.maximum(Z, 0.0)
    t = np.minimum(zp, RHO) / RHO
    act = np.where(zp >= RHO, zp - (1 - 1 / Q) * RHO, RHO * t ** Q / Q)
    F = act.reshape(n, P, K_, m).sum(axis=(1, 3))
    E = np.exp(F - F.max(axis=1, keepdims=True))
    g = E / E.sum(axis=1, keepdims=True)
    g[np.arange(n), y] -= 1.0
    dact = np.where(zp >= RHO, 1.0, t ** (Q - 1))
    S = (dact.reshape(n, P, K_, m) * (g / n)[:, None, :, None]).reshape(n * P, K_ * m)
    W -= LR * (S.T @ Xf).reshape(K_, m, d)


def fgsm_step(X, y, W, eps=0.05):
    # One adversarial-training step as the trainer takes it: the fused one-step attack
    # kernel, then the GD step on the perturbed points.
    Xa = X + K.ascent(X, y, W, Q, RHO, np.zeros_like(X), 1, eps, eps, True)
    W -= LR * K.loss_and_weight_gradient(Xa, y, W, Q, RHO)[2]


def _agree(X, y, W):
    # The three implementations take the same step (to rounding) before being timed.
    W1, W2 = W.copy(), W.copy()
    theorylab_step(X, y, W1)
    numpy_step(X, y, W2)
    return float(np.abs(W1 - W2).max())


def run(repeats=30):
    """Median (and min) milliseconds per step and the speed ratios (> 1: theorylab is faster)."""
    n, P, d, m, K_ = SIZE["n"], SIZE["P"], SIZE["d"], SIZE["m"], SIZE["K"]
    X, y, W = _problem(K_, P, d, m, n)
    X32, _, W32 = _problem(K_, P, d, m, n, dtype=np.float32)
    out = {"size": dict(SIZE), "load_average": uptime_load(),
           "numba_threads": numba.get_num_threads(),
           "max_abs_step_difference_vs_numpy": _agree(X, y, W)}
    fns = {"theorylab": lambda: theorylab_step(X, y, W),
           "numpy": lambda: numpy_step(X, y, W),
           "theorylab_fgsm": lambda: fgsm_step(X, y, W),
           "theorylab_float32": lambda: theorylab_step(X32, y, W32)}
    torch = torch_or_none()
    if torch is not None:
        fns["torch_float64"] = cnn_torch_step_fn(torch, X, y, W, LR, Q, RHO)
        fns["torch_float32"] = cnn_torch_step_fn(torch, X32, y, W32, LR, Q, RHO)
        out["torch_threads"] = torch.get_num_threads()
    else:
        out["torch"] = "skipped: torch is not importable"
    t = {k: (float(np.median(v)), float(np.min(v))) for k, v in interleaved(fns, repeats).items()}
    out["threading_layer"] = _threading_layer()
    for k, (med, best) in t.items():
        out[f"{k}_ms"] = 1e3 * med
        out[f"{k}_min_ms"] = 1e3 * best
    tl = t["theorylab"][0]
    flops = 4.0 * n * P * d * K_ * m
    out["speedup_vs_numpy"] = t["numpy"][0] / tl
    out["theorylab_gemm_gflops"] = flops / tl / 1e9
    out["machine_gemm_gflops"] = gemm_gflops(n * P, d, K_ * m)
    out["fgsm_step_over_gd_step"] = t["theorylab_fgsm"][0] / tl
    if torch is not None:
        out["speedup_vs_torch_float64"] = t["torch_float64"][0] / tl
        out["speedup_vs_torch_float32_same_dtype"] = (t["torch_float32"][0]
                                                      / t["theorylab_float32"][0])
        out["meets_2x_vs_torch"] = bool(out["speedup_vs_torch_float64"] >= 2.0)
    return out


def _threading_layer():
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return "not initialised"


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:<40} {value}")
