"""Projected gradient ascent on the per-sample loss inside the p-ball."""

from __future__ import annotations

import numpy as np

from .._validation import as_generator, check_bool, check_float, check_int, check_norm
from ._core import (compiled_loop, prepare, project, require_finite_gradients, sample_ball,
                    steepest_ascent)
from ._registry import Attack, register

__all__ = ["pgd"]


def keep_better(best, best_loss, cand, loss):
    """Rows whose loss beats best_loss (strictly: the first best wins ties) take cand, in place."""
    better = loss > best_loss
    best[better] = cand[better]
    return np.where(better, loss, best_loss)


def _pgd(model, X, y, eps, p, *, world=None, seed=0, steps=20, step_size=None,
         random_start=False, restarts=1):
    # Validated arrays and options in (pgd() and training check them once).
    alpha = 2.5 * eps / steps if step_size is None else step_size
    rng = as_generator(seed, "seed") if random_start else None
    best = np.zeros_like(X)
    if eps == 0.0:
        return best
    with model.fixed_weights():
        fused = compiled_loop(model, "pgd", p)
        best_loss = None if fused else model.loss_and_input_gradient(X, y, check_input=False)[0]
        for _ in range(restarts):
            delta = (sample_ball(X.shape, eps, p, rng, X.dtype) if random_start
                     else np.zeros_like(X))
            if fused:
                # A compiled start keeps its best iterate from the loss at X on, like the
                # loop below; the best over starts is then the same row by row.
                cand, loss, ok = model.compiled_pgd(X, y, delta, steps, alpha, eps, p)
                require_finite_gradients(ok, cand)
                if best_loss is None:
                    best, best_loss = cand, loss
                else:
                    best_loss = keep_better(best, best_loss, cand, loss)
                continue
            for t in range(steps + 1):
                loss, G = model.loss_and_input_gradient(X + delta, y, check_input=False)
                best_loss = keep_better(best, best_loss, delta, loss)
                if t == steps:
                    break
                delta = project(delta + steepest_ascent(G, alpha, p), eps, p).astype(X.dtype)
    return best


def check_pgd_options(steps=20, step_size=None, random_start=False, restarts=1):
    """Validated PGD options (a ValueError naming the option otherwise)."""
    steps = check_int("steps", steps, 1)
    restarts = check_int("restarts", restarts, 1)
    random_start = check_bool("random_start", random_start)
    if restarts > 1 and not random_start:
        raise ValueError("restarts > 1 needs random_start=True")
    if step_size is not None:
        step_size = check_float("step_size", step_size, 0.0)
    return dict(steps=steps, step_size=step_size, random_start=random_start, restarts=restarts)


def pgd(model, X, y, eps, norm, *, steps=20, step_size=None, random_start=False, seed=0,
        restarts=1):
    """Projected gradient ascent on the per-sample loss inside the p-ball.

    Each step moves by the steepest-ascent direction of the norm (so the l2
    step is normalised and the linf step is a sign step), then projects back
    onto the ball.  Per sample, the iterate with the highest loss over all
    steps and restarts (including the start) is returned.

    Parameters
    ----------
    eps : float
        Radius >= 0.
    norm : {2, inf, 1}
    steps : int, default 20
    step_size : float, optional
        Default 2.5 * eps / steps (Madry et al.'s choice).
    random_start : bool, default False
        Start uniformly inside the ball (:func:`sample_ball`) instead of at 0.
    seed : int, SeedSequence or Generator, default 0
        Randomness of the random starts; ignored without them.
    restarts : int, default 1
        Number of independent starts (> 1 needs ``random_start``).

    Returns
    -------
    delta : ndarray, same shape as ``X``, with ||delta||_p <= eps per sample.

    Notes
    -----
    l2 and linf run the model's compiled loop when it has one, one call per
    start: the same iterates and choice of the best, bit for bit in linf and up
    to rounding in l2 (where a rounding can still flip a near-tie or a gate).
    """
    p = check_norm(norm)
    eps = check_float("eps", eps, 0.0)
    opts = check_pgd_options(steps, step_size, random_start, restarts)
    as_generator(seed, "seed")  # checked even when unused: a bad seed is a bad call
    X, y = prepare(model, X, y)
    return _pgd(model, X, y, eps, p, seed=seed, **opts)


register(Attack("pgd", _pgd, "gradient", trains=True,
                options={"steps": 20, "step_size": None, "random_start": False, "restarts": 1},
                check=lambda o: check_pgd_options(**o),
                summary="projected steepest ascent on the loss, best iterate kept (Madry et al.)"))
