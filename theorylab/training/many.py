"""Many independent two-layer trainings at once: a batch of seeds on every core.

A small run (N = 1024, d = 64, m = 128) takes a few hundred microseconds per
step, too little for two threads to share; a batch of independent runs is not.
:func:`train_many` runs the whole full-batch gradient-descent loop of every run
inside one compiled kernel, one run per thread (``prange`` over runs).  Each run
does exactly the arithmetic of :func:`~theorylab.training.train_two_layer` with
``data=(X, y)`` (same gradient sums in the same order, same threshold rule), so
its final weights are bit-for-bit those of training it alone, whatever the
thread count and whichever batch it belongs to (tests check both).

What it does not do: online batches, adversarial steps, held-out evaluation or
structural metrics during training (evaluate the models afterwards); those stay
with :func:`~theorylab.training.train_two_layer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._kernels import relu_net as _k
from .._validation import check_array, check_float, check_int
from ..models import TwoLayerReLU
from ..models._base import in_segments
from ._core import check_schedule

__all__ = ["train_many", "ManyRuns"]


@dataclass
class ManyRuns:
    """What :func:`train_many` measured.

    Attributes
    ----------
    loss : ndarray of shape (S, steps)
        Mean training loss of run r before step t (summed in sample order, so the
        last bits may differ from ``np.mean``); NaN for steps a diverged run did
        not take.
    diverged_at : ndarray of shape (S,)
        The step at which run r's loss or update stopped being finite, else -1.
        A diverged run's model keeps its last finite weights.
    """

    loss: np.ndarray
    diverged_at: np.ndarray

    @property
    def status(self):
        """``"done"`` or ``"diverged"`` per run."""
        return ["done" if s < 0 else "diverged" for s in self.diverged_at]


def _stack_data(data, S, d, dtype):
    # (X, y) stacked as (S, N, d) and (S, N), validated, in the models' dtype.
    if (isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], tuple)
            and np.ndim(data[0]) == 3):
        X = check_array("data[0]", data[0], ndim=3, shape=(S, None, d), dtype=dtype)
        y = check_array("data[1]", data[1], ndim=2, shape=X.shape[:2], dtype=dtype)
    else:
        if not isinstance(data, (list, tuple)):
            raise ValueError("data must be a tuple (X, y) of stacked arrays or a list of "
                             f"(X_r, y_r) tuples, got {type(data).__name__}")
        data = list(data)
        if len(data) != S:
            raise ValueError(f"data: {len(data)} data sets for {S} models")
        Xs, ys = [], []
        for r, pair in enumerate(data):
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ValueError(f"data[{r}] must be a tuple (X, y)")
            Xs.append(check_array(f"data[{r}][0]", pair[0], ndim=2, shape=(None, d), dtype=dtype))
            ys.append(check_array(f"data[{r}][1]", pair[1], ndim=1, shape=Xs[-1].shape[:1],
                                  dtype=dtype))
        if len({a.shape for a in Xs}) > 1:
            raise ValueError("data: every X_r must have the same number of rows N")
        X, y = np.stack(Xs), np.stack(ys)
    if not np.isin(y, (-1.0, 1.0)).all():
        raise ValueError("data: labels y must contain only -1 and +1")
    return X, y


def train_many(models, data, *, steps, lr=0.5, schedule=None):
    """Full-batch gradient descent on many independent networks, all cores, in place.

    Parameters
    ----------
    models : sequence of TwoLayerReLU
        S networks with the same ``d``, ``m``, dtype, threshold rule and
        dictionary (their ``c`` may differ when no schedule is given).  Trained
        in place: each model's ``W`` is replaced by its final weights.
    data : tuple (X, y) or sequence of tuples
        ``X`` of shape (S, N, d) and ``y`` (S, N) in {-1, +1}; or one ``(X_r, y_r)``
        per model, all of the same shape.
    steps : int
        Gradient steps per run (>= 1).
    lr : float, default 0.5
    schedule : ThresholdSchedule or tuple (start, end, ramp_steps), optional
        Threshold coefficient per step for every run; without it each model
        keeps its own ``c``.  With it, each model's ``c`` ends at the last step's
        value, as in :func:`~theorylab.training.train_two_layer`.

    Returns
    -------
    ManyRuns
        Per-run loss curves and divergence status (a diverged run is reported
        there, never as silent NaN weights).

    Notes
    -----
    The thread count is Numba's (``theorylab._kernels.kernel_threads``); the
    result does not depend on it.
    """
    if not isinstance(models, (list, tuple)):
        raise ValueError(f"models must be a list or tuple of TwoLayerReLU, "
                         f"got {type(models).__name__}")
    models = list(models)
    if not models:
        raise ValueError("models: need at least one TwoLayerReLU")
    for r, mdl in enumerate(models):
        if not isinstance(mdl, TwoLayerReLU):
            raise ValueError(f"models[{r}] is a {type(mdl).__name__}, not a TwoLayerReLU")
    first = models[0]
    for r, mdl in enumerate(models[1:], 1):
        same_M = (mdl.M is None and first.M is None) or (
            mdl.M is not None and first.M is not None and np.array_equal(mdl.M, first.M))
        if ((mdl.d, mdl.m, mdl.dtype, mdl.threshold) != (first.d, first.m, first.dtype,
                                                         first.threshold) or not same_M):
            raise ValueError(f"models[{r}] differs from models[0] in d, m, dtype, threshold "
                             "rule or dictionary; train_many needs them equal")
    for r, mdl in enumerate(models):  # finite weights of the model's own dtype
        check_array(f"models[{r}].W", mdl.W, ndim=2, shape=(mdl.m, mdl.d))
        if mdl.W.dtype != np.dtype(mdl.dtype):
            raise ValueError(f"models[{r}].W has dtype {mdl.W.dtype}, the model {mdl.dtype}")
    steps = check_int("steps", steps, 1)
    lr = check_float("lr", lr, 0.0, low_open=True)
    schedule = check_schedule(schedule)
    dtype = first.dtype
    S = len(models)
    X, y = _stack_data(data, S, first.d, dtype)
    M = np.zeros((0, 0), dtype=dtype) if first.M is None else np.ascontiguousarray(first.M, dtype)
    rule = _k.RULES[first.threshold]
    lr_arr = np.array([lr], dtype=dtype)
    W0 = np.stack([mdl.W for mdl in models])
    if schedule is not None:
        cs = [np.array([schedule(t) for t in range(steps)], dtype=dtype)] * S
    else:
        cs = [np.full(steps, mdl.c, dtype=dtype) for mdl in models]
    if schedule is None and len({mdl.c for mdl in models}) > 1:
        # One kernel call per distinct c keeps the kernel's signature simple.
        groups = {}
        for r, mdl in enumerate(models):
            groups.setdefault(mdl.c, []).append(r)
    else:
        groups = {None: list(range(S))}
    loss = np.empty((S, steps), dtype=dtype)
    diverged_at = np.empty(S, dtype=np.int64)
    for idx in groups.values():
        idx = np.array(idx)
        Xg, yg, c = X[idx], y[idx], cs[idx[0]]
        W = W0[idx]
        L = np.full((idx.size, steps), np.nan, dtype=dtype)
        div = np.full(idx.size, -1, dtype=np.int64)

        def run(s, e, t0, t1):
            # Steps t0..t1-1 from the current weights: a step depends only on W and c(t),
            # so step ranges give the bits of one call.  A diverged run has stopped.
            live = np.flatnonzero(div < 0)
            if live.size == 0:
                return
            full = live.size == idx.size
            Wn, Ln, dn = _k.train_full_batch_many(
                Xg if full else Xg[live], yg if full else yg[live], W if full else W[live],
                c[t0:t1], lr_arr, rule, M)
            W[live], L[live, t0:t1] = Wn, Ln
            div[live] = np.where(dn >= 0, dn + t0, -1)

        in_segments(run, idx.size, steps, block_rows=idx.size)
        loss[idx], diverged_at[idx] = L, div
        for j, r in enumerate(idx):
            models[r].W = W[j].copy()
    if schedule is not None:
        for mdl in models:
            mdl.c = schedule(steps - 1)
    return ManyRuns(loss=loss, diverged_at=diverged_at)
