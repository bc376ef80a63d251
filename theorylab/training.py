"""Gradient-descent training, clean or adversarial, with a logged history.

Two data regimes: ``mode="online"`` draws a fresh batch from the world at
every step (the spec's pilot: online SGD), ``mode="full"`` does full-batch GD
on one fixed sample of ``n_train`` points.  Adversarial training perturbs each
batch with FGM or PGD *at the current weights* and takes the step on the
perturbed points only (spec 2.3: no clean term).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import attacks, metrics
from ._validation import (as_generator, check_choice, check_float, check_int, check_norm,
                          norm_name)

__all__ = ["train", "train_two_layer", "train_many", "ManyRuns", "ThresholdSchedule", "History",
           "TrainingDiverged", "register_trainer"]


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


@dataclass
class History:
    """What a training run logged, one record (a dict) per logged step.

    Attributes
    ----------
    records : list of dict
        Each has ``step``, ``loss`` (mean loss of the step's batch, perturbed in
        adversarial training), ``batch_accuracy``, ``clean_accuracy`` (held-out
        set), ``c``, and the model's structural metrics.
    config : dict
        The run's parameters (JSON-serialisable).
    """

    records: list = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def __getitem__(self, key):
        """The logged series ``key`` as an array (e.g. ``history["clean_accuracy"]``)."""
        return np.array([r[key] for r in self.records])

    @property
    def final(self):
        """The last record."""
        return self.records[-1]

    def to_dict(self):
        return {"config": self.config, "records": self.records}


_TRAINERS = {}


def register_trainer(kind, fn):
    """Let :func:`train` dispatch models whose ``kind`` is ``kind`` to ``fn(model, world, **kw)``."""
    _TRAINERS[kind] = fn


def train(model, world, **kwargs):
    """Train ``model`` on ``world``; dispatches on the model's ``kind``.

    See :func:`train_two_layer` for :class:`~theorylab.models.TwoLayerReLU`
    (the keyword arguments are those of the registered trainer).

    Returns
    -------
    History
    """
    kind = getattr(model, "kind", None)
    if kind not in _TRAINERS:
        raise ValueError(f"model: no trainer for {type(model).__name__}; "
                         f"known kinds: {sorted(_TRAINERS)}")
    return _TRAINERS[kind](model, world, **kwargs)


def train_two_layer(model, world, *, steps, lr=0.5, mode="online", batch_size=1024, n_train=None,
          data=None, adversarial=None, eps=0.0, norm=2, pgd_steps=10, pgd_step_size=None,
          schedule=None, log_every=None, eval_size=2000, seed=0, progress=False,
          callback=None):
    """Train a :class:`~theorylab.models.TwoLayerReLU` on a sparse-coding world.

    Parameters
    ----------
    model : TwoLayerReLU
        Trained in place (its ``W``; thresholds follow its rule).
    world : SparseCoding
    steps : int
        Number of gradient steps (>= 1).
    lr : float, default 0.5
        Step size (the pilot's eta).
    mode : {"online", "full"}
        Fresh batches each step, or full-batch GD on ``n_train`` fixed points.
    batch_size : int, default 1024
        Batch size in online mode.
    n_train : int, optional
        Training-set size in full mode (required there unless ``data`` is given).
    data : tuple (X, y), optional
        A fixed training set to use instead of drawing one from the world
        (implies ``mode="full"``); the world still provides the held-out set and
        the teacher for the structural metrics.
    adversarial : {None, "fgm", "pgd"}
        Perturb each batch at the current weights before the step.
    eps : float
        Adversarial radius (> 0 when ``adversarial`` is set; 0 is allowed and
        trains on unperturbed points, the control of the mutation tests).
    norm : {2, inf, 1}
        Threat norm of the adversarial perturbation (PGD: 2 or inf... or 1).
    pgd_steps, pgd_step_size :
        PGD settings during training.
    schedule : ThresholdSchedule or tuple (start, end, ramp_steps), optional
        Threshold-coefficient schedule; without it the model's ``c`` is kept.
    log_every : int, optional
        Logging period (default steps // 10, at least 1); the last step is
        always logged.
    eval_size : int, default 2000
        Size of the held-out set for clean accuracy.
    seed : int, SeedSequence or Generator
        One seed for the whole run: data, held-out set and PGD starts are
        independent child streams of it.
    progress : bool, default False
        Show a tqdm bar (the CLI turns it on; library calls stay quiet).
    callback : callable, optional
        ``callback(step, model, record)`` after each logged step.

    Returns
    -------
    History

    Raises
    ------
    TrainingDiverged
        When the loss or the weights stop being finite; ``.history`` keeps the
        records logged so far.
    """
    steps = check_int("steps", steps, 1)
    lr = check_float("lr", lr, 0.0, low_open=True)
    check_choice("mode", mode, ("online", "full"))
    batch_size = check_int("batch_size", batch_size, 1)
    check_choice("adversarial", adversarial, (None, "fgm", "pgd"))
    eps = check_float("eps", eps, 0.0)
    p = check_norm(norm)
    pgd_steps = check_int("pgd_steps", pgd_steps, 1)
    eval_size = check_int("eval_size", eval_size, 1)
    log_every = max(1, steps // 10) if log_every is None else check_int("log_every", log_every, 1)
    if world.d != model.d:
        raise ValueError(f"world.d={world.d} does not match model.d={model.d}")
    if data is not None:
        if not (isinstance(data, tuple) and len(data) == 2):
            raise ValueError("data must be a tuple (X, y)")
        X_fixed = model.check_X(data[0], "data[0]")
        y_fixed = model.check_y(data[1], X_fixed.shape[0], "data[1]")
        mode, n_train = "full", X_fixed.shape[0]
    elif mode == "full":
        if n_train is None:
            raise ValueError("n_train is required with mode='full'")
        n_train = check_int("n_train", n_train, 1)
    if isinstance(schedule, tuple):
        schedule = ThresholdSchedule(*schedule)
    if schedule is not None and not isinstance(schedule, ThresholdSchedule):
        raise ValueError("schedule must be a ThresholdSchedule or a (start, end, ramp_steps) tuple")

    root = as_generator(seed, "seed")
    data_rng, eval_rng, attack_rng = (np.random.default_rng(s)
                                      for s in root.bit_generator.seed_seq.spawn(3))
    dtype = model.dtype
    held_out = world.sample(eval_size, eval_rng, dtype=dtype)
    if data is not None:
        from .worlds import Sample

        fixed = Sample(X_fixed, y_fixed, np.empty((n_train, 0)))
    else:
        fixed = world.sample(n_train, data_rng, dtype=dtype) if mode == "full" else None
    M = None if world.identity else world.M

    history = History(config={
        "steps": steps, "lr": lr, "mode": mode, "batch_size": batch_size, "n_train": n_train,
        "adversarial": adversarial, "eps": eps, "norm": norm_name(p), "pgd_steps": pgd_steps,
        "schedule": None if schedule is None else [schedule.start, schedule.end,
                                                   schedule.ramp_steps],
        "seed": seed if isinstance(seed, int) else None,
        "world": world.spec() if isinstance(world.seed, (int, np.integer)) else None,
    })

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc="adversarial" if adversarial else "clean", unit="step")
    try:
        for t in range(steps):
            if schedule is not None:
                model.c = schedule(t)
            batch = fixed if fixed is not None else world.sample(batch_size, data_rng, dtype=dtype)
            X, y = batch.X, batch.y
            with model.fixed_weights():  # one b for the step's attack and gradient
                if adversarial == "fgm":
                    X = X + attacks.fgm(model, X, y, eps, p)
                elif adversarial == "pgd":
                    X = X + attacks.pgd(model, X, y, eps, p, steps=pgd_steps,
                                        step_size=pgd_step_size, random_start=True,
                                        seed=attack_rng)
                loss, f, grad = model.weight_gradient(X, y)
            with np.errstate(over="ignore"):  # an overflowing sum is caught just below
                mean_loss = float(np.mean(loss))
            if not math.isfinite(mean_loss):
                raise TrainingDiverged(f"loss is {mean_loss} at step {t} (lr={lr}); "
                                       "lower lr or raise the threshold", t, history)
            with np.errstate(over="ignore", invalid="ignore"):  # detected just below
                model.W -= lr * grad
            if not np.isfinite(model.W).all():
                raise TrainingDiverged(f"weights became non-finite at step {t} (lr={lr})",
                                       t, history)
            if t % log_every == 0 or t == steps - 1:
                rec = {"step": t + 1, "loss": mean_loss,
                       "batch_accuracy": float(np.mean(y * f > 0)),
                       "clean_accuracy": model.accuracy(held_out.X, held_out.y), "c": model.c}
                rec.update(metrics.summarize(model.W, world.w_star, M))
                history.records.append(rec)
                if callback is not None:
                    callback(t + 1, model, rec)
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.3g}", acc=f"{rec['clean_accuracy']:.3f}")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    model.metadata.setdefault("world", history.config["world"])
    return history


register_trainer("TwoLayerReLU", train_two_layer)
from . import training_patches as _training_patches  # noqa: E402,F401  (registers the CNN trainer)
from .training_many import ManyRuns, train_many  # noqa: E402  (a batch of runs, all cores)
