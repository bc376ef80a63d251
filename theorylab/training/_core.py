"""The one gradient-descent loop, its history, schedules and the trainer registry.

Every learner's trainer (two-layer network, CNN, image models) is a thin module
that supplies the three things that differ between them: where a step's batch
comes from, the step itself (an optional attack at the current weights, then
the loss and weight gradient on validated arrays) and what is logged.  The loop
here owns the rest, once: the divergence checks, the update, the progress bar.
Per-learner modules import only this module (and the layers below training).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np

from .. import attacks
from .._validation import check_float, check_int
from ..models._base import interruptible
from ._convergence import (DENSE_RATIO_RTOL, LOSS_RTOL, MIN_WINDOW_STEPS, SCHEDULE_RTOL, WINDOW,
                           convergence_diagnostics)

__all__ = ["History", "TrainingDiverged", "ThresholdSchedule", "register_trainer", "trainer_for",
           "check_schedule", "resolve_attack", "split_seed", "run_steps", "progress_bar",
           "convergence_diagnostics", "WINDOW", "MIN_WINDOW_STEPS", "LOSS_RTOL",
           "DENSE_RATIO_RTOL", "SCHEDULE_RTOL"]


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became NaN or infinite; ``history`` holds the run so far."""

    def __init__(self, message, step, history):
        super().__init__(message)
        self.step = step
        self.history = history


@dataclass(frozen=True)
class ThresholdSchedule:
    """Linear ramp of the threshold coefficient c from ``start`` to ``end`` over ``ramp_steps``.

    c(t) = start + (end - start) min(1, t / ramp_steps); constant ``end`` after.
    The pilot's clean schedule is ``ThresholdSchedule(1.0, 0.5, steps // 2)``.
    """

    start: float
    end: float
    ramp_steps: int = 1

    def __post_init__(self):
        check_float("schedule.start", self.start, 0.0)
        check_float("schedule.end", self.end, 0.0)
        check_int("schedule.ramp_steps", self.ramp_steps, 1)

    def __call__(self, t):
        return self.start + (self.end - self.start) * min(1.0, t / self.ramp_steps)


def check_schedule(schedule):
    """A ThresholdSchedule from itself, a (start, end, ramp_steps) tuple, or None."""
    if isinstance(schedule, tuple):
        if len(schedule) != 3:
            raise ValueError("schedule must be a ThresholdSchedule or a (start, end, "
                             f"ramp_steps) tuple, got {len(schedule)} values")
        schedule = ThresholdSchedule(*schedule)
    if schedule is not None and not isinstance(schedule, ThresholdSchedule):
        raise ValueError("schedule must be a ThresholdSchedule or a (start, end, ramp_steps) "
                         f"tuple, got {type(schedule).__name__}")
    return schedule


@dataclass
class History:
    """What a training run logged, one record (a dict) per logged step.

    Attributes
    ----------
    records : list of dict
        One per logged step; the keys depend on the learner (see its trainer).
    config : dict
        The run's parameters (JSON-serialisable).
    losses : list of float
        The mean loss of every step's batch, in order (filled by :func:`run_steps`;
        the records log it only every ``log_every`` steps).
    convergence : dict or None
        The trainer's diagnosis of the run's tail
        (:func:`~theorylab.training.convergence_diagnostics`): ``converged``,
        ``reason`` and each criterion's measured value and tolerance.  None where
        the trainer does not diagnose (the baselines' exact trainers, image models).
    """

    records: list = field(default_factory=list)
    config: dict = field(default_factory=dict)
    losses: list = field(default_factory=list)
    convergence: dict | None = None

    def __getitem__(self, key):
        """The logged series ``key`` as an array (e.g. ``history["clean_accuracy"]``)."""
        return np.array([r[key] for r in self.records])

    @property
    def final(self):
        """The last record."""
        return self.records[-1]

    @property
    def converged(self):
        """Whether the run converged (``convergence["converged"]``); None if not diagnosed."""
        return None if self.convergence is None else bool(self.convergence["converged"])

    def to_dict(self):
        out = {"config": self.config, "records": self.records}
        if self.convergence is not None:
            out["convergence"] = self.convergence
        return out


_TRAINERS = {}


def register_trainer(kind, fn):
    """Let :func:`theorylab.training.train` dispatch models of ``kind`` to ``fn(model, world, **kw)``."""
    _TRAINERS[kind] = fn


def trainer_for(model):
    """The registered trainer of ``model``'s kind (ValueError naming the known kinds)."""
    kind = getattr(model, "kind", None)
    if kind not in _TRAINERS:
        raise ValueError(f"model: no trainer for {type(model).__name__}; "
                         f"known kinds: {sorted(_TRAINERS)}")
    return _TRAINERS[kind]


def resolve_attack(adversarial, eps, p, *, steps=None, step_size=None, random_start=True,
                   rename=None):
    """The training-time attack ``adversarial`` (a registered name) and its options.

    Validated once, before training starts; the loop then calls ``attack.run`` on
    validated arrays with no further checks.  ``steps`` and ``step_size`` fill the
    options of that name where the attack takes them (PGD); ``random_start`` too.
    ``rename`` maps a trainer's historical names onto registered attacks.

    Returns
    -------
    (Attack, dict) or (None, {}) for clean training.

    Raises
    ------
    ValueError
        An unknown or non-training attack, or ``eps <= 0`` with an attack: that
        would train on clean points under an adversarial name (use
        ``adversarial=None``).
    """
    if adversarial is None:
        return None, {}
    allowed = attacks.names(trains=True)
    if adversarial not in allowed and adversarial not in (rename or {}):
        raise ValueError(f"adversarial must be None or one of {allowed}, got {adversarial!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0 with adversarial={adversarial!r}, got {eps} "
                         "(use adversarial=None for clean training)")
    spec = attacks.get((rename or {}).get(adversarial, adversarial))
    spec.check_norm(p)
    given = {"steps": steps, "step_size": step_size, "random_start": random_start}
    opts = {k: v for k, v in given.items() if k in spec.options and v is not None}
    return spec, spec.check_options(opts)


def split_seed(seed, n=3):
    """``n`` independent Generators from one run seed (data, held-out set, attacks...)."""
    from .._validation import as_generator

    root = as_generator(seed, "seed")
    return tuple(np.random.default_rng(s) for s in root.bit_generator.seed_seq.spawn(n))


@contextlib.contextmanager
def progress_bar(enabled, total, desc):
    """A tqdm bar on a terminal when ``enabled`` (library calls pass False), else None."""
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="step")
    try:
        yield bar
    finally:
        bar.close()


def run_steps(model, *, steps, lr, step, history, update=None, before_update=None,
              after_update=None, bar=None, hint="lower lr"):
    """The gradient-descent loop every trainer runs.

    Parameters
    ----------
    model : learner with a weight array ``W``
        Updated in place: ``W -= lr * grad`` (or ``update(grad)``).
    steps : int
    lr : float
    step : callable
        ``step(t) -> (per-sample losses, aux, grad)`` at the current weights
        (the learner's batch, attack and gradient, on validated arrays).
    history : History
        Carried by :class:`TrainingDiverged` when the run stops.
    before_update, after_update : callable, optional
        ``f(t, mean_loss, aux)`` around the update (logging hooks).
    bar : tqdm bar, optional
    hint : str
        What the divergence message suggests.

    Raises
    ------
    TrainingDiverged
        When the mean loss or the updated weights are not finite.
    """
    with interruptible():
        _run_steps(model, steps, lr, step, history, update, before_update, after_update, bar,
                   hint)


def _run_steps(model, steps, lr, step, history, update, before_update, after_update, bar, hint):
    for t in range(steps):
        loss, aux, grad = step(t)
        with np.errstate(over="ignore"):  # an overflowing sum is caught just below
            mean_loss = float(np.mean(loss))
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"loss is {mean_loss} at step {t} (lr={lr}); {hint}",
                                   t, history)
        history.losses.append(mean_loss)
        if before_update is not None:
            before_update(t, mean_loss, aux)
        with np.errstate(over="ignore", invalid="ignore"):  # detected just below
            if update is None:
                model.W -= lr * grad
            else:
                update(grad)
        if not np.isfinite(model.W).all():
            raise TrainingDiverged(f"weights became non-finite at step {t} (lr={lr})",
                                   t, history)
        if after_update is not None:
            after_update(t, mean_loss, aux)
        if bar is not None:
            bar.update(1)
