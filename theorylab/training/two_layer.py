"""Training the two-layer threshold network on a sparse-coding world.

Two data regimes: ``mode="online"`` draws a fresh batch from the world at
every step (the spec's pilot: online SGD), ``mode="full"`` does full-batch GD
on one fixed sample of ``n_train`` points.  Adversarial training perturbs each
batch with a registered attack (FGM, PGD) *at the current weights* and takes
the step on the perturbed points only (spec 2.3: no clean term).  The loop is
:func:`theorylab.training._core.run_steps`.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from .._validation import (check_callable, check_choice, check_float, check_instance, check_int,
                           check_memory, check_norm, norm_name)
from ..models import TwoLayerReLU
from ..worlds import SparseCoding
from ._core import (DENSE_RATIO_RTOL, SCHEDULE_RTOL, History, check_schedule,
                    convergence_diagnostics, progress_bar, register_trainer, resolve_attack,
                    run_steps, split_seed)

__all__ = ["train_two_layer"]


def train_two_layer(model, world, *, steps, lr=0.5, mode="online", batch_size=1024, n_train=None,
                    data=None, adversarial=None, eps=0.0, norm=2, pgd_steps=10,
                    pgd_step_size=None, schedule=None, log_every=None, eval_size=2000, seed=0,
                    progress=False, callback=None):
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
    adversarial : {None, "fgm", "pgd"} or another training attack of the registry
        Perturb each batch at the current weights before the step
        (:func:`theorylab.attacks.names` with ``trains=True``); PGD starts at a
        random point of the ball and keeps its best iterate.
    eps : float
        Adversarial radius: > 0 with ``adversarial`` (a ValueError otherwise:
        clean training is ``adversarial=None``).
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

    Logged records have ``step``, ``loss`` (mean loss of the step's batch,
    perturbed in adversarial training), ``batch_accuracy``, ``clean_accuracy``
    (held-out set), ``c``, and the structural metrics of
    :func:`theorylab.metrics.summarize`.  ``History.convergence`` says whether the
    run converged: loss plateau, median dense ratio and ``c`` stable over the last
    fifth of the steps (:func:`~theorylab.training.convergence_diagnostics`).

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
    eps = check_float("eps", eps, 0.0)
    p = check_norm(norm)
    pgd_steps = check_int("pgd_steps", pgd_steps, 1)
    if pgd_step_size is not None:
        pgd_step_size = check_float("pgd_step_size", pgd_step_size, 0.0, low_open=True)
    attack, attack_options = resolve_attack(adversarial, eps, p, steps=pgd_steps,
                                            step_size=pgd_step_size, random_start=True)
    eval_size = check_int("eval_size", eval_size, 1)
    log_every = max(1, steps // 10) if log_every is None else check_int("log_every", log_every, 1)
    check_callable("callback", callback)
    check_instance("model", model, TwoLayerReLU)
    check_instance("world", world, SparseCoding)
    check_memory("batch_size", (batch_size, model.d), copies=4)
    check_memory("eval_size", (eval_size, model.d), copies=4)
    if n_train is not None:
        check_memory("n_train", (check_int("n_train", n_train, 1), model.d), copies=4)
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
    schedule = check_schedule(schedule)

    data_rng, eval_rng, attack_rng = split_seed(seed)
    dtype = model.dtype
    held_out = world.sample(eval_size, eval_rng, dtype=dtype)
    if data is not None:
        from ..worlds import Sample

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

    def step(t):
        if schedule is not None:
            model.c = schedule(t)
        batch = fixed if fixed is not None else world.sample(batch_size, data_rng, dtype=dtype)
        X, y = batch.X, batch.y
        with model.fixed_weights():  # one b for the step's attack and gradient
            fused = None
            if attack is not None and attack.train_step is not None:  # one kernel (FGM)
                fused = attack.train_step(model, X, y, eps, p, seed=attack_rng, **attack_options)
            if fused is not None:
                loss, f, grad = fused
            else:
                if attack is not None:
                    X = X + attack.run(model, X, y, eps, p, seed=attack_rng, **attack_options)
                loss, f, grad = model.weight_gradient(X, y, check_input=False)
        return loss, (y, f), grad

    with progress_bar(progress, steps, "adversarial" if adversarial else "clean") as bar:
        def log(t, mean_loss, aux):
            if not (t % log_every == 0 or t == steps - 1):
                return
            y, f = aux
            rec = {"step": t + 1, "loss": mean_loss,
                   "batch_accuracy": float(np.mean(y * f > 0)),
                   "clean_accuracy": model.accuracy(held_out.X, held_out.y), "c": model.c}
            rec.update(metrics.summarize(model.W, world.w_star, M))
            history.records.append(rec)
            if callback is not None:
                callback(t + 1, model, rec)
            if bar is not None:
                bar.set_postfix(loss=f"{mean_loss:.3g}", acc=f"{rec['clean_accuracy']:.3f}")

        run_steps(model, steps=steps, lr=lr, step=step, history=history, after_update=log,
                  bar=bar, hint="lower lr or raise the threshold")
    history.convergence = convergence_diagnostics(
        history, stable={"dense_ratio": DENSE_RATIO_RTOL, "c": SCHEDULE_RTOL})
    model.metadata.setdefault("world", history.config["world"])
    return history


register_trainer("TwoLayerReLU", train_two_layer)
