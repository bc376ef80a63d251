"""Gradient-descent training, clean or adversarial, with a logged history.

:func:`train` dispatches on the model's kind to a per-learner trainer
(:func:`train_two_layer` for :class:`~theorylab.models.TwoLayerReLU`,
:func:`train_cnn` for :class:`~theorylab.models.SmoothedReLUCNN`); every
trainer runs the one loop of :mod:`theorylab.training._core`.
:mod:`.baselines` holds the adversarial trainers of the lower-bound baselines
(exact adversarial logistic regression, exact inner maximisation for separable
polynomials, attack-based epochs for kernel machines).
:func:`train_many` runs a batch of independent full-batch two-layer runs with
the whole loop compiled.
"""

from __future__ import annotations

import inspect

from ._core import (History, ThresholdSchedule, TrainingDiverged, convergence_diagnostics,
                    register_trainer, run_steps, trainer_for)
from .baselines import adversarial_kernel, adversarial_logistic, adversarial_separable
from .cnn import adversarial_examples, feature_summary, logit_decomposition, train_cnn
from .many import ManyRuns, train_many
from .two_layer import train_two_layer

__all__ = ["train", "train_two_layer", "train_cnn", "train_many", "ManyRuns", "ThresholdSchedule",
           "History", "TrainingDiverged", "convergence_diagnostics", "register_trainer",
           "run_steps", "adversarial_examples",
           "feature_summary", "logit_decomposition", "adversarial_logistic",
           "adversarial_separable", "adversarial_kernel"]


def train(model, world, *, steps, lr=None, adversarial=None, eps=None, norm=None,
          mode=None, batch_size=None, n_train=None, data=None, pgd_steps=None,
          pgd_step_size=None, random_start=None, attack_options=None, eps_ramp=None,
          schedule=None, log_every=None, eval_size=None, eval_eps=None, eval_steps=None,
          monitor_steps=None, seed=0, progress=False, callback=None):
    """Train ``model`` on ``world`` in place with its learner's trainer; returns a History.

    Parameters left at None take the learner's default (see :func:`train_two_layer`
    and :func:`train_cnn`); giving one the learner does not use is a ValueError.

    Parameters
    ----------
    model : TwoLayerReLU or SmoothedReLUCNN (or a kind registered with :func:`register_trainer`)
    world : SparseCoding or RobustNonRobustPatches
    steps : int
        Gradient steps (>= 1).
    lr : float
        Step size (default 0.5).
    adversarial : str, optional
        A training attack of :mod:`theorylab.attacks` ("fgm", "pgd", "ascent");
        None trains on clean points.
    eps : float
        Adversarial radius, > 0 with ``adversarial``.
    norm : {2, inf, 1}
        Threat norm (two-layer default 2; CNN default the world's threat).
    mode, batch_size, n_train, data, schedule, eval_size :
        Data and threshold schedule (two-layer: online or full batch; CNN: ``n_train``
        fixed points).
    pgd_steps, pgd_step_size, random_start, eps_ramp, eval_eps, eval_steps :
        The training attack's steps, an eps ramp, the logged robust accuracy (CNN).
    attack_options, monitor_steps :
        CNN: the training ascent's form / objective / step, and PGD on the training
        set at every logged step (the catastrophic-overfitting monitor); see
        :func:`train_cnn`.
    log_every : int, optional
        Logging period (default steps // 10).
    seed : int, SeedSequence or Generator
        One seed for the run (data, held-out set and attacks are child streams).
    progress : bool
        A tqdm bar (the CLI turns it on).
    callback : callable, optional
        ``callback(step, model, record)`` after each logged step.

    Returns
    -------
    History
        ``history.converged`` says whether the run converged (the two-layer network:
        loss plateau, dense ratio and threshold coefficient stable over the last fifth
        of the steps; the CNN: the loss plateau), ``history.convergence`` the measured
        criteria with their tolerances (:func:`convergence_diagnostics`).

    Raises
    ------
    TrainingDiverged
        When the loss or the weights stop being finite (``.history`` keeps the run).
    """
    fn = trainer_for(model)
    given = {k: v for k, v in dict(
        lr=lr, adversarial=adversarial, eps=eps, norm=norm, mode=mode, batch_size=batch_size,
        n_train=n_train, data=data, pgd_steps=pgd_steps, pgd_step_size=pgd_step_size,
        random_start=random_start, attack_options=attack_options, eps_ramp=eps_ramp,
        schedule=schedule, log_every=log_every, eval_size=eval_size, eval_eps=eval_eps,
        eval_steps=eval_steps, monitor_steps=monitor_steps,
        callback=callback).items() if v is not None}
    accepted = inspect.signature(fn).parameters
    unused = sorted(k for k in given if k not in accepted)
    if unused:
        raise ValueError(f"{', '.join(unused)}: not used when training a "
                         f"{type(model).__name__} (its trainer takes "
                         f"{sorted(k for k in accepted if k not in ('model', 'world'))})")
    return fn(model, world, steps=steps, seed=seed, progress=progress, **given)
