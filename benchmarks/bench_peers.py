"""theorylab against the faster of PyTorch and JAX, workload by workload (issue 19).

Workloads, each in float64 and float32: the clean full-batch GD step of the
two-layer network at the three sizes of ``bench_two_layer``; the whole small
training loop of 20 steps (theorylab: ``train_many``'s kernel on one run; JAX:
``jit`` + ``lax.fori_loop``; PyTorch: 20 eager steps); the FGM (l2) adversarial
training step and PGD-20 (l2, ``attacks.pgd``'s defaults) at the medium size; the
smoothed-ReLU CNN step of ``bench_cnn``.  The peers are in ``_peers_jax`` and
``_peers_torch``; a peer that is not installed is skipped.

Before anything is timed, every implementation takes one call from the same
weights and its update (or PGD's perturbation) must equal theorylab's to
``TOLERANCE`` relative to the largest entry of theorylab's update (a wrong peer
would make every ratio meaningless); ``tests/test_bench_peers.py`` runs the same
check on small problems.  Then the implementations of a workload are timed
round-robin (``_timing.interleaved``), so that they share the machine's load.

Reported per workload and dtype: median and best seconds of each implementation;
``ratio`` = theorylab's median over the faster peer's median (below 1: theorylab
is faster), ``ratio_best`` the same for the best calls, ``ratio_paired`` the
median over rounds of theorylab's time over the faster peer's time of the same
round; the 1-minute load average before and after.  ``gemm`` is a profile, timed
in the same rounds: the workload's GEMMs alone, as theorylab runs them
(``relu_net.gemms_alone``: 256-row chunks in parallel, single-threaded BLAS) and as
XLA runs them, and what is left of each implementation's time (the rest).

    python -m benchmarks.bench_peers [--rounds 15] [--only gd_small loop_small]
                                     [--repeat 3] [--max-load 1.5] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os

import numpy as np

from theorylab import attacks
from theorylab._kernels import relu_net as K
from theorylab._kernels._jit import get_num_threads, kernel_threads
from theorylab.models import TwoLayerReLU

from . import _peers_torch as PT
from . import bench_cnn as CNN
from ._timing import interleaved, jax_peers_or_none, torch_or_none, uptime_load
from .bench_two_layer import LR, SIZES, _problem, _thresholds, fgm_step, theorylab_step

__all__ = ["run", "WORKLOADS", "TOLERANCE", "build", "agreement", "agrees"]

LOOP_STEPS, FGM_EPS, PGD_EPS, PGD_STEPS = 20, 0.3, 0.2, 20
# Decided before the first comparison: float64 agrees to rounding (1e-9 leaves room
# for sums of 10^4 terms and 20 chained steps); float32 to 2e-3 of the update (in norm
# since the first full run, see agreement).
TOLERANCE = {"float64": 1e-9, "float32": 2e-3}
WORKLOADS = ("gd_small", "gd_medium", "gd_large", "loop_small", "fgm_medium", "pgd20_medium",
             "cnn")


PEERS = ("torch", "jax")


def two_kernel_fgm_step(X, y, W, eps=FGM_EPS):
    """The same step unfused: ``fgm``'s kernel, ``X + delta`` in NumPy, the clean gradient."""
    b = _thresholds(W)
    delta = K.fgm(X, y, W, b, X.dtype.type(eps), False)[0]
    W -= LR * K.loss_and_weight_gradient(X + delta, y, W, b)[2]


def _stateful_numpy(step, W, *data):
    W = W.copy()
    return (lambda: step(*data, W)), (lambda: W)


def _loop(X, y, W, threads=None):
    # train_many's kernel on one run; threads=1: as before issue 19 (one run, one thread).
    dt = X.dtype
    args = [X[None], y[None], W[None].copy(), np.full(LOOP_STEPS, 0.5, dt), np.array([LR], dt),
            0, np.zeros((0, 0), dt)]

    def run():
        with kernel_threads(threads or get_num_threads()):
            args[2] = K.train_full_batch_many(*args)[0]

    return run, lambda: args[2][0]


def _pgd(X, y, W):
    model = TwoLayerReLU(X.shape[1], W.shape[0], W=W, dtype=X.dtype)
    out = {}

    def run():
        out["best"] = attacks.pgd(model, X, y, PGD_EPS, 2, steps=PGD_STEPS)

    return run, lambda: out["best"]


def build(name, dtype, torch=None, jx=None, sizes=None):
    """``{implementation: (run, result)}`` of workload ``name`` on one problem, and the problem.

    The problem is a dict with the initial weights ``W`` (and ``X``, ``y``) and
    ``kind``: ``"update"`` (results are the weights after each call) or ``"delta"``
    (PGD's perturbation).  ``sizes`` overrides the problem sizes (the test's small
    problems).
    """
    sizes = dict(SIZES, **(sizes or {}))
    if name == "cnn":
        s = dict(CNN.SIZE, **(sizes.get("cnn") or {}))
        X, y, W = CNN._problem(s["K"], s["P"], s["d"], s["m"], s["n"], dtype=dtype)
        impls = {"theorylab": _stateful_numpy(CNN.theorylab_step, W, X, y)}
        if torch is not None:
            impls["torch"] = PT.peer(PT.cnn_torch_step_fn(torch, X, y, W, CNN.LR, CNN.Q, CNN.RHO))
        if jx is not None:
            impls["jax"] = jx.cnn_step_fn(X, y, W, CNN.LR, CNN.Q, CNN.RHO)
        return impls, {"X": X, "y": y, "W": W, "kind": "update", "dtype": np.dtype(dtype).name}
    kind, size = name.rsplit("_", 1)
    X, y, W = _problem(*sizes[size], dtype=dtype)
    extra = {}  # theorylab's own variants, timed in the same rounds (not peers)
    if kind == "gd":
        tl = _stateful_numpy(theorylab_step, W, X, y)
        pt = lambda: PT.peer(PT.torch_step_fn(torch, X, y, W, LR))  # noqa: E731
        jf = lambda: jx.gd_step_fn(X, y, W, LR)  # noqa: E731
    elif kind == "loop":
        tl = _loop(X, y, W)
        extra["theorylab_1thread"] = _loop(X, y, W, threads=1)
        pt = lambda: PT.peer(PT.loop_fn(torch, X, y, W, LR, LOOP_STEPS))  # noqa: E731
        jf = lambda: jx.loop_fn(X, y, W, LR, LOOP_STEPS)  # noqa: E731
    elif kind == "fgm":
        tl = _stateful_numpy(fgm_step, W, X, y)
        extra["theorylab_clean_step"] = _stateful_numpy(theorylab_step, W, X, y)
        extra["theorylab_two_kernels"] = _stateful_numpy(two_kernel_fgm_step, W, X, y)
        pt = lambda: PT.peer(PT.fgm_step_fn(torch, X, y, W, LR, FGM_EPS))  # noqa: E731
        jf = lambda: jx.fgm_step_fn(X, y, W, LR, FGM_EPS)  # noqa: E731
    elif kind == "pgd20":
        tl = _pgd(X, y, W)
        pt = lambda: PT.peer(PT.pgd_fn(torch, X, y, W, PGD_EPS, PGD_STEPS))  # noqa: E731
        jf = lambda: jx.pgd_fn(X, y, W, PGD_EPS, PGD_STEPS)  # noqa: E731
    else:
        raise ValueError(f"unknown workload {name!r}; known: {WORKLOADS}")
    impls = {"theorylab": tl}
    if torch is not None:
        impls["torch"] = pt()
    if jx is not None:
        impls["jax"] = jf()
    impls.update(extra)
    return impls, {"X": X, "y": y, "W": W, "kind": "delta" if kind == "pgd20" else "update",
                   "dtype": np.dtype(dtype).name}


def agreement(impls, problem):
    """Each implementation's differences from theorylab, relative (one call each).

    ``delta``: the largest entry of the difference of the updates (weights after
    the call minus before; PGD: the perturbations), relative to theorylab's largest
    update entry.  ``norm``: the same in the Frobenius norm.  PGD also gets
    ``loss``, the largest difference of the per-sample loss reached (float64,
    theorylab's model), relative to the largest loss, and ``rows_off``, the rows
    whose perturbation differs beyond the dtype's tolerance.

    float64 is judged entry by entry (:func:`agrees`); float32 in norm, because one
    gate |u| ~ b flipped by rounding moves single entries far: seen on the large
    step, where the random-label gradient is small (its terms cancel) and one of
    8.4 million gates, flipped in JAX's float32 scores against the float64 ones,
    moved one entry by 1.6% of the largest; and on PGD-20, where 2 of 4096 rows
    took another path (also between the two peers) and reached the same loss.
    """
    for run, _ in impls.values():
        run()
    ref = np.asarray(impls["theorylab"][1](), dtype=np.float64)
    base = 0.0 if problem["kind"] == "delta" else np.asarray(problem["W"], dtype=np.float64)
    step = ref - base
    scale, fro = float(np.abs(step).max()), float(np.linalg.norm(step))
    if problem["kind"] == "delta":
        X, y, W = (np.asarray(problem[k], dtype=np.float64) for k in "XyW")
        model = TwoLayerReLU(X.shape[1], W.shape[0], W=W)
        loss_ref = model.loss_and_input_gradient(X + ref, y)[0]
    out = {}
    for k, (_, result) in impls.items():
        if k != "theorylab" and k not in PEERS:
            continue  # theorylab's own variants of other workloads
        got = np.asarray(result(), dtype=np.float64)
        diff = got - ref
        out[k] = {"delta": float(np.abs(diff).max()) / scale,
                  "norm": float(np.linalg.norm(diff)) / fro}
        if problem["kind"] == "delta":
            loss = model.loss_and_input_gradient(X + got, y)[0]
            out[k]["loss"] = float(np.abs(loss - loss_ref).max() / np.abs(loss_ref).max())
            tol = TOLERANCE[problem["dtype"]] * scale
            out[k]["rows_off"] = int((np.abs(diff).max(axis=1) > tol).sum())
    return out


def agrees(a, dname):
    """Whether one implementation's :func:`agreement` is within ``TOLERANCE[dname]``."""
    keys = ("delta", "loss") if dname == "float64" else ("norm", "loss")
    return all(a[k] <= TOLERANCE[dname] for k in keys if k in a)


# GEMMs of N m d each: (scores X W^T, weight gradients A^T X, input gradients A W).
GEMMS = {"gd": (1, 1, 0), "loop": (LOOP_STEPS, LOOP_STEPS, 0), "fgm": (2, 1, 1),
         "pgd20": (PGD_STEPS + 1, 0, PGD_STEPS), "cnn": (1, 1, 0)}


def _gemms_alone(name, problem, jx):
    # The workload's GEMMs alone (theorylab's chunked schedule; XLA's), timed in its rounds.
    # The CNN's GEMMs are the same shapes on (samples x patches, d) and (K m, d), and its
    # chunks of 256 // P samples are 256 rows: the same chunking.
    X, W = (a.reshape(-1, a.shape[-1]) for a in (problem["X"], problem["W"]))
    A = np.random.default_rng(0).standard_normal((X.shape[0], W.shape[0])).astype(X.dtype)
    gemms = GEMMS[name.rsplit("_", 1)[0]]
    fns = {"gemms_theorylab": lambda: K.gemms_alone(X, W, A, *gemms)}
    if jx is not None:
        fns["gemms_jax"] = jx.gemms_fn(X, W, A, gemms)
    return fns


def _profile(row, gemms, times):
    # Time in GEMMs against the rest, per implementation (medians of the same rounds).
    out = {"gemms": gemms}
    for k in ("theorylab", "jax"):
        if f"gemms_{k}" in times:
            g = float(np.median(times[f"gemms_{k}"]))
            out[f"{k}_gemm_s"] = g
            out[f"{k}_rest_s"] = row[f"{k}_s"] - g
            out[f"{k}_fraction_in_gemm"] = g / row[f"{k}_s"]
    return out


def measure(name, dtype, torch, jx, rounds):
    """One workload in one dtype: agreement, interleaved times, ratios and the GEMM profile."""
    impls, problem = build(name, dtype, torch, jx)
    dname = np.dtype(dtype).name
    row = {"load_before": uptime_load(), "agreement": agreement(impls, problem),
           "tolerance": TOLERANCE[dname]}
    bad = {k: v for k, v in row["agreement"].items() if not agrees(v, dname)}
    if bad:  # never time an implementation that computes something else
        raise AssertionError(f"{name} {dname}: peers disagree with theorylab: {bad}")
    fns = {k: run for k, (run, _) in impls.items()}
    fns.update(_gemms_alone(name, problem, jx))
    times = interleaved(fns, rounds, warmup=2)
    row["load_after"] = uptime_load()
    for k, v in times.items():
        if not k.startswith("gemms_"):
            row[f"{k}_s"], row[f"{k}_best_s"] = float(np.median(v)), float(np.min(v))
    peers = [k for k in times if k in PEERS]
    if peers:
        fast = min(peers, key=lambda k: row[f"{k}_s"])
        row["faster_peer"] = fast
        row["ratio"] = row["theorylab_s"] / row[f"{fast}_s"]
        row["ratio_best"] = row["theorylab_best_s"] / min(row[f"{k}_best_s"] for k in peers)
        per_round = np.min([times[k] for k in peers], axis=0)
        row["ratio_paired"] = float(np.median(np.array(times["theorylab"]) / per_round))
    if "theorylab_1thread_s" in row:  # what using both cores for one run gained
        row["speedup_over_1thread"] = row["theorylab_1thread_s"] / row["theorylab_s"]
    if "theorylab_clean_step_s" in row:
        row["over_clean_step"] = row["theorylab_s"] / row["theorylab_clean_step_s"]
        row["over_clean_step_paired"] = float(np.median(
            np.array(times["theorylab"]) / np.array(times["theorylab_clean_step"])))
    row["gemm"] = _profile(row, GEMMS[name.rsplit("_", 1)[0]], times)
    return row


def run(rounds=15, only=None, repeat=1, dtypes=("float64", "float32"), max_load=None):
    """Every workload (or ``only``) in every dtype; ``repeat`` passes over the small ones.

    ``max_load``: before each workload, wait (up to 10 minutes) for the 1-minute load
    average to fall below it.
    """
    from .bench_sweep import wait_for_load

    torch, jx = torch_or_none(), jax_peers_or_none()
    out = {"date": datetime.date.today().isoformat(), "cpus": os.cpu_count(),
           "load_1min_start": uptime_load(),
           "torch": None if torch is None else torch.__version__,
           "torch_threads": None if torch is None else torch.get_num_threads(),
           "jax": None if jx is None else jx.version, "workloads": {}}
    for name in only or WORKLOADS:
        big = name in ("gd_large", "pgd20_medium")
        passes = repeat if name.endswith("_small") else 1
        for p in range(passes):
            key = name if passes == 1 else f"{name}#{p + 1}"
            out["workloads"][key] = {}
            for dt in dtypes:
                if max_load is not None:
                    wait_for_load(max_load, 600)
                out["workloads"][key][dt] = measure(name, np.dtype(dt).type, torch, jx,
                                                    max(5, rounds // 2) if big else rounds)
    out["load_1min_end"] = uptime_load()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--repeat", type=int, default=1, help="passes over the small workloads")
    p.add_argument("--only", nargs="+", choices=WORKLOADS)
    p.add_argument("--dtype", nargs="+", default=["float64", "float32"],
                   choices=["float64", "float32"])
    p.add_argument("--max-load", type=float, help="wait for a 1-minute load below this")
    p.add_argument("--json", metavar="PATH")
    a = p.parse_args(argv)
    res = run(a.rounds, a.only, a.repeat, tuple(a.dtype), a.max_load)
    for name, rows in res["workloads"].items():
        for dt, r in rows.items():
            print(f"{name:<16} {dt:<8} tl {1e3 * r['theorylab_s']:9.3f} ms  "
                  + "  ".join(f"{k} {1e3 * r[k + '_s']:9.3f}" for k in ("torch", "jax")
                              if k + "_s" in r)
                  + (f"  ratio {r['ratio']:.2f} best {r['ratio_best']:.2f} "
                     f"paired {r['ratio_paired']:.2f}" if "ratio" in r else "")
                  + f"  load {r['load_before']:.1f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
