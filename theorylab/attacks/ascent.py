"""Projected steepest ascent returning its *last* iterate: the training-time attack.

Madry et al.'s adversarial training (and the spec's Li & Li pilot) perturbs each
training point with ``steps`` projected steepest-ascent steps on the loss and
trains on the last iterate; with one step of size eps from the clean point it is
the one-step gradient ascent of Li & Li (FGSM in linf, normalised FGM in l2).
For evaluation use :func:`theorylab.attacks.pgd`, which keeps the best iterate.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_generator, check_bool, check_float, check_int, check_norm
from ._core import (compiled_loop, prepare, project, require_finite_gradients, sample_ball,
                    steepest_ascent)
from ._registry import Attack, register

__all__ = ["ascent"]


def _ascent(model, X, y, eps, p, *, world=None, seed=0, steps=1, step_size=None,
            random_start=False):
    # Validated arrays and options in.
    if eps == 0.0:
        return np.zeros_like(X)
    step = (eps if steps == 1 else 2.5 * eps / steps) if step_size is None else step_size
    D = (sample_ball(X.shape, eps, p, as_generator(seed, "seed"), X.dtype) if random_start
         else np.zeros_like(X))
    if compiled_loop(model, "ascent", p):
        delta, ok = model.compiled_ascent(X, y, D, steps, step, eps, p)
        require_finite_gradients(ok, delta)
        return delta
    with model.fixed_weights():
        for _ in range(steps):
            _, G = model.loss_and_input_gradient(X + D, y, check_input=False)
            D = project(D + steepest_ascent(G, step, p), eps, p).astype(X.dtype)
    return D


def _check(options):
    out = dict(options)
    out["steps"] = check_int("steps", options["steps"], 1)
    out["random_start"] = check_bool("random_start", options["random_start"])
    if options["step_size"] is not None:
        out["step_size"] = check_float("step_size", options["step_size"], 0.0, low_open=True)
    return out


def ascent(model, X, y, eps, norm, *, steps=1, step_size=None, random_start=False, seed=0):
    """``steps`` projected steepest-ascent steps on the loss; the last iterate.

    Parameters
    ----------
    eps : float
        Radius >= 0.
    norm : {2, inf, 1}
    steps : int, default 1
    step_size : float, optional
        Default eps for one step (then this is FGM), 2.5 eps / steps otherwise.
    random_start : bool, default False
        Start uniformly inside the ball.
    seed : int, SeedSequence or Generator
        Randomness of the random start.

    Returns
    -------
    delta : ndarray, same shape as ``X``, ||delta||_p <= eps per sample.
    """
    p = check_norm(norm)
    eps = check_float("eps", eps, 0.0)
    opts = _check({"steps": steps, "step_size": step_size, "random_start": random_start})
    if opts["random_start"]:
        as_generator(seed, "seed")
    X, y = prepare(model, X, y)
    return _ascent(model, X, y, eps, p, seed=seed, **opts)


register(Attack("ascent", _ascent, "gradient", trains=True, check=_check,
                options={"steps": 1, "step_size": None, "random_start": False},
                summary="projected steepest ascent, last iterate (training-time PGD; one "
                        "step of size eps is FGM)"))
