"""Whether a training run has converged, judged on the tail of its History.

A run is *converged* when, over a trailing window of its steps,

* its loss has reached a plateau: the mean loss of the window's second half is
  within ``loss_rtol`` (relative) of the mean of its first half (the halves'
  means are the smoothing: each averages many batch losses);
* every *stable* quantity the trainer names (for the two-layer network the median
  dense ratio and the threshold coefficient c) changed by at most its tolerance,
  relative, between the first logged record in the window and the last one.

The defaults and why they are what they are sit next to them below.  They were
written before any check's training was measured, and are not tuned to make
the checks' runs pass.  :func:`convergence_diagnostics` recomputes the diagnosis
with other tolerances; ``History.convergence`` holds the trainer's.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import check_float

__all__ = ["convergence_diagnostics", "power_law_change", "WINDOW", "MIN_WINDOW_STEPS",
           "LOSS_EXPONENT", "LOSS_RTOL", "DENSE_RATIO_RTOL", "SCHEDULE_RTOL"]

# The last fifth of the run.  With the pilot's schedule (c ramped over the first half) it
# lies wholly in the constant-c phase, and at the checks' T = 300-1000 it averages 60-200
# batch losses.  A fraction, not a step count: a twice longer run is judged over twice as
# many steps, so a quantity decaying like a power of t changes by the same relative amount
# over the window whatever T is, and the tolerances below mean the same thing for every T.
WINDOW = 0.2
# Each half of the window averages at least 10 batch losses; with fewer the run is too
# short to tell a trend from the noise of single batches, and is reported not converged.
MIN_WINDOW_STEPS = 20
# The logistic loss of a separable problem never plateaus: GD drives it to 0 like 1/t while
# the weights' direction converges (Soudry et al. 2018), and approaches that rate from above,
# the local exponent -d ln L / d ln t falling to 1 only like 1/ln t (the Li & Li CNN's
# standard run, whose loss change over the window is 12.6, 11.5, 11.0, 10.8% at T = 300,
# 600, 1200, 2400 against 10.5% for 1/t exactly), so a tolerance at 1/t itself would flag
# every such run at every length.  A loss falling like t^-2 or faster, twice the late
# exponent (a fit still in progress decays exponentially: its exponent t / tau grows without
# bound), is still being fitted: the tolerance is the change of t^-2 between the window's
# halves (:func:`power_law_change`), 20% for the default window.
LOSS_EXPONENT = 2.0


def power_law_change(window, exponent):
    """Relative change of the mean of L = t^-exponent between the halves of [(1 - w) T, T].

    The change of the first half's mean to the second's, over the first's.
    """
    a, m = 1.0 - window, 1.0 - window / 2.0
    if a <= 0:
        return 1.0
    if exponent == 1.0:
        return 1.0 - math.log(1.0 / m) / math.log(m / a)
    e = 1.0 - exponent
    return 1.0 - (1.0 - m ** e) / (m ** e - a ** e)


LOSS_RTOL = power_law_change(WINDOW, LOSS_EXPONENT)
# A scale-free summary of the weights (the median dense ratio) that moves by at most 5% over
# the last fifth of the run, extrapolated at that rate as a power of t (rho ~ t^-b, b <= 0.23),
# would move by at most 15% if the run were doubled: beyond that the number reports where
# training stopped more than where it went.
DENSE_RATIO_RTOL = 0.05
# The threshold coefficient follows a schedule, it is not learned: any change inside the
# window means the ramp had not ended, and the network was still chasing a moving target.
SCHEDULE_RTOL = 0.0


def _window_steps(steps, window):
    return max(MIN_WINDOW_STEPS, int(round(window * steps)))


def _loss_plateau(losses, n, tol):
    half = n // 2
    first = float(np.mean(losses[-n:-half]))
    second = float(np.mean(losses[-half:]))
    if not (math.isfinite(first) and math.isfinite(second)):
        return None, f"the loss is not finite in the last {n} steps"
    change = abs(second - first) / first if first > 0 else (0.0 if second == 0 else math.inf)
    what = "falling" if second < first else "rising"
    return change, (f"loss still {what}: {100 * change:.2f}% between the halves of the last {n} "
                    f"steps (tolerance {100 * tol:.3g}%)")


def _window_records(records, start):
    # The first record at or after the window's start, and the last record; when the window
    # holds only the last record, the record before it (the span then covers the window).
    if len(records) < 2:
        return None
    inside = [i for i, r in enumerate(records) if r["step"] >= start]
    first = inside[0] if inside and inside[0] < len(records) - 1 else len(records) - 2
    return records[first], records[-1]


def _stable(pair, key, n, tol):
    if pair is None:
        return None, f"{key}: fewer than two logged records, stability not measured"
    a, b = float(pair[0][key]), float(pair[1][key])
    if not (math.isfinite(a) and math.isfinite(b)):
        return None, f"{key} is not finite ({a:g} -> {b:g})"
    change = abs(b - a) / abs(a) if a != 0 else (0.0 if b == 0 else math.inf)
    return change, (f"{key} moved {100 * change:.2f}% ({a:.4g} -> {b:.4g}) over the last "
                    f"{pair[1]['step'] - pair[0]['step']} steps (tolerance {100 * tol:g}%)")


def convergence_diagnostics(history, *, stable=None, window=WINDOW, loss_rtol=None):
    """Judge whether the run of ``history`` has converged (loss plateau, stable quantities).

    Parameters
    ----------
    history : History
        With ``losses`` (one per step, :func:`~theorylab.training.run_steps` fills it)
        and ``records`` carrying ``step`` and the keys of ``stable``.
    stable : dict, optional
        Logged key -> relative tolerance of its change over the window (e.g.
        ``{"dense_ratio": DENSE_RATIO_RTOL, "c": SCHEDULE_RTOL}``, the two-layer
        trainer's).  Default: the loss plateau only.
    window : float, default :data:`WINDOW`
        The trailing fraction of the steps judged, in (0, 1]; at least
        :data:`MIN_WINDOW_STEPS` steps.
    loss_rtol : float, optional
        Tolerance of the relative change of the mean loss between the window's halves;
        default the change of a t^-2 loss over that window (:func:`power_law_change`
        with :data:`LOSS_EXPONENT`; :data:`LOSS_RTOL` = 0.2 for the default window).

    Returns
    -------
    dict
        ``converged`` (bool), ``reason`` (why not, ``""`` when converged),
        ``window_steps``, and ``criteria``: name -> ``{"value", "tolerance",
        "holds"}`` (``value`` the measured relative change, None where it could not be
        measured: the run is then not converged).  JSON-serialisable.
    """
    window = check_float("window", window, 0.0, 1.0, low_open=True)
    loss_rtol = power_law_change(window, LOSS_EXPONENT) if loss_rtol is None else check_float(
        "loss_rtol", loss_rtol, 0.0)
    stable = {} if stable is None else {str(k): check_float(f"stable[{k!r}]", v, 0.0)
                                        for k, v in dict(stable).items()}
    if not hasattr(history, "losses") or not hasattr(history, "records"):
        raise ValueError(f"history must be a History, got {type(history).__name__}")
    losses = np.asarray(history.losses, dtype=np.float64)
    steps = losses.size
    n = _window_steps(steps, window)
    criteria = {}
    reasons = []
    if n > steps:
        reasons.append(f"only {steps} steps: too short to judge (the window needs "
                       f"{MIN_WINDOW_STEPS})")
        for name, tol in [("loss_plateau", loss_rtol)] + [(f"{k}_stable", t)
                                                          for k, t in stable.items()]:
            criteria[name] = {"value": None, "tolerance": tol, "holds": False}
        return {"converged": False, "reason": reasons[0], "window_steps": n,
                "criteria": criteria}
    measured = [("loss_plateau", loss_rtol, _loss_plateau(losses, n, loss_rtol))]
    pair = _window_records(history.records, steps - n)
    measured += [(f"{k}_stable", tol, _stable(pair, k, n, tol)) for k, tol in stable.items()]
    for name, tol, (value, text) in measured:
        holds = value is not None and value <= tol
        criteria[name] = {"value": value if value is None or math.isfinite(value) else None,
                          "tolerance": tol, "holds": holds}
        if not holds:
            reasons.append(text)
    return {"converged": not reasons, "reason": "; ".join(reasons), "window_steps": n,
            "criteria": criteria}
