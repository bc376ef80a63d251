"""Projected gradient ascent returning its *last* iterate: the training-time attack.

Madry et al.'s adversarial training (and the spec's Li & Li pilot) perturbs each
training point with ``steps`` projected ascent steps and trains on the last
iterate; with one step of size eps from the clean point it is the one-step
gradient ascent of Li & Li (FGSM in linf, normalised FGM in l2).  For evaluation
use :func:`theorylab.attacks.pgd`, which keeps the best iterate.

The paper's exact step is not known (spec ``robust_features.md`` 3.2), so the
step's *form* and *objective* are options:

``form``
    ``"steepest"`` (default): the steepest-ascent direction of the threat norm
    (sign in linf, g / ||g||_2 in l2); ``"sign"``: step sign(g) in either norm;
    ``"l2"``: step g / ||g||_2 in either norm; ``"gradient"``: the unnormalised
    step gamma g (``step_size`` is gamma and must be given).  Every step is then
    projected onto the ball of radius eps in the threat norm.
``objective``
    ``"loss"`` (default): the per-sample training loss; ``"margin"``: the
    negative logit margin -(F_y - max_{j != y} F_j), whose gradient does not
    shrink with the softmax residual as the loss's does.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import as_generator, check_bool, check_choice, check_float, check_int, check_norm
from ._core import (compiled_loop, prepare, project, require_finite_gradients, rows,
                    sample_ball, steepest_ascent)
from ._registry import Attack, register

__all__ = ["ascent", "ASCENT_FORMS", "ASCENT_OBJECTIVES", "default_ascent_step"]

ASCENT_FORMS = ("steepest", "sign", "l2", "gradient")
ASCENT_OBJECTIVES = ("loss", "margin")


def default_ascent_step(eps, p, form, steps, n_coords):
    """The default step size of ``form`` in threat norm ``p`` (None for ``"gradient"``).

    One step: the size at which a step along a dense gradient (every coordinate
    the same magnitude) reaches the sphere of radius eps: eps for the norm's own
    steepest step, eps / sqrt(n) for a sign step in l2, eps sqrt(n) for an l2
    step in linf (n = ``n_coords``, a sample's coordinates).  Several steps:
    2.5 / steps of it (the pilot's PGD choice).
    """
    if form == "gradient":
        return None
    own = form == "steepest" or (form == "sign") == (p == np.inf)
    one = eps if own else (eps / math.sqrt(n_coords) if form == "sign"
                           else eps * math.sqrt(n_coords))
    return one if steps == 1 else 2.5 * one / steps


def _direction(G, step, form, p):
    # The unprojected move of one step from gradient G (rows of zeros stay zero).
    if form == "steepest":
        return steepest_ascent(G, step, p)
    if form == "sign":
        return steepest_ascent(G, step, np.inf)
    if form == "l2":
        return steepest_ascent(G, step, 2.0)
    if not np.isfinite(G).all():  # steepest_ascent's NaN policy, for the raw step too
        raise ValueError("gradient contains NaN or infinite values (G)")
    return step * G


def _gradient(model, X, y, objective):
    if objective == "loss":
        return model.loss_and_input_gradient(X, y, check_input=False)[1]
    # Ascent on -margin: the gradient of F_j - F_y (j the best other class at X).
    return -model.margin_and_input_gradient(X, y, check_input=False)[1]


def _ascent(model, X, y, eps, p, *, world=None, seed=0, steps=1, step_size=None,
            random_start=False, form="steepest", objective="loss"):
    # Validated arrays and options in.
    if eps == 0.0:
        return np.zeros_like(X)
    step = (default_ascent_step(eps, p, form, steps, rows(X).shape[1]) if step_size is None
            else step_size)
    D = (sample_ball(X.shape, eps, p, as_generator(seed, "seed"), X.dtype) if random_start
         else np.zeros_like(X))
    if form == "steepest" and objective == "loss" and compiled_loop(model, "ascent", p):
        delta, ok = model.compiled_ascent(X, y, D, steps, step, eps, p)
        require_finite_gradients(ok, delta)
        return delta
    with model.fixed_weights():
        for _ in range(steps):
            G = _gradient(model, X + D, y, objective)
            D = project(D + _direction(G, step, form, p), eps, p).astype(X.dtype)
    return D


def _check(options):
    out = dict(options)
    out["steps"] = check_int("steps", options["steps"], 1)
    out["random_start"] = check_bool("random_start", options["random_start"])
    out["form"] = check_choice("form", options["form"], ASCENT_FORMS)
    out["objective"] = check_choice("objective", options["objective"], ASCENT_OBJECTIVES)
    if options["step_size"] is not None:
        out["step_size"] = check_float("step_size", options["step_size"], 0.0, low_open=True)
    elif out["form"] == "gradient":
        raise ValueError("step_size (gamma) must be given with form='gradient': the "
                         "unnormalised step has no natural size")
    return out


def ascent(model, X, y, eps, norm, *, steps=1, step_size=None, random_start=False, seed=0,
           form="steepest", objective="loss"):
    """``steps`` projected gradient-ascent steps; the last iterate.

    Parameters
    ----------
    eps : float
        Radius >= 0.
    norm : {2, inf, 1}
        The threat norm: every step is projected onto its ball.
    steps : int, default 1
    step_size : float, optional
        Default :func:`default_ascent_step` (eps for one steepest step, then
        this is FGM); required (gamma) with ``form="gradient"``.
    random_start : bool, default False
        Start uniformly inside the ball.
    seed : int, SeedSequence or Generator
        Randomness of the random start.
    form : {"steepest", "sign", "l2", "gradient"}, default "steepest"
        The step (see the module docstring).
    objective : {"loss", "margin"}, default "loss"
        What the steps ascend: the loss, or the negative logit margin.

    Returns
    -------
    delta : ndarray, same shape as ``X``, ||delta||_p <= eps per sample.
    """
    p = check_norm(norm)
    eps = check_float("eps", eps, 0.0)
    opts = _check({"steps": steps, "step_size": step_size, "random_start": random_start,
                   "form": form, "objective": objective})
    if opts["random_start"]:
        as_generator(seed, "seed")
    X, y = prepare(model, X, y)
    return _ascent(model, X, y, eps, p, seed=seed, **opts)


register(Attack("ascent", _ascent, "gradient", trains=True, check=_check,
                options={"steps": 1, "step_size": None, "random_start": False,
                         "form": "steepest", "objective": "loss"},
                summary="projected gradient ascent, last iterate (training-time PGD; one "
                        "step of size eps is FGM); sign / l2 / unnormalised steps on the "
                        "loss or the logit margin"))
