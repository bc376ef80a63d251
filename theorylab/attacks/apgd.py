"""APGD with the margin loss (Croce & Hein 2020), for binary and K-class margins."""

from __future__ import annotations

import math

import numpy as np

from .._validation import as_generator, check_bool, check_float, check_int, check_norm
from ._core import into_ball, prepare, sample_ball, steepest_ascent
from ._registry import Attack, register

__all__ = ["apgd"]


def checkpoints(iters):
    """Iterations after which APGD checks its step size: ceil(p_j iters), p_j as in the paper.

    p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06).
    """
    ps, prev, cur = [], 0.0, 0.22
    while cur <= 1.0:
        ps.append(cur)
        prev, cur = cur, cur + max(cur - prev - 0.03, 0.06)
    return sorted({w for w in (math.ceil(q * iters - 1e-9) for q in ps) if 0 < w <= iters})


def _apgd(model, X, y, eps, p, *, world=None, seed=0, iters=100, restarts=1, random_start=True,
          rho=0.75, momentum=0.75):
    # Validated arrays and options in (apgd() and the registry check them once).
    best = np.zeros_like(X)
    if eps == 0.0:
        return best
    rng = as_generator(seed, "seed")
    ckpts = set(checkpoints(iters))
    with model.fixed_weights():
        best_m = model.margin(X, y, check_input=False).astype(np.float64)
        for r in range(restarts):
            idx = np.flatnonzero(best_m > 0)  # broken points are done (early exit)
            if idx.size == 0:
                break
            start = (sample_ball((idx.size,) + X.shape[1:], eps, p, rng, X.dtype)
                     if (r > 0 or random_start) else np.zeros_like(X[idx]))
            _one_restart(model, X, y, eps, p, into_ball(start, eps, p, X.dtype), idx, best,
                         best_m, iters, ckpts, rho, momentum)
    return into_ball(best, eps, p, X.dtype)  # a no-op safeguard: every iterate is feasible


def _one_restart(model, X, y, eps, p, d, idx, best, best_m, iters, ckpts, rho, momentum):
    # One APGD run from d on the rows idx; updates (best, best_m) in place, per point.
    def evaluate(rows, delta):
        m, G = model.margin_and_input_gradient(X[rows] + delta, y[rows], check_input=False)
        better = m < best_m[rows]  # strictly: the first witness wins ties
        best[rows[better]] = delta[better]
        best_m[rows[better]] = m[better]
        return m.astype(np.float64), G

    m, G = evaluate(idx, d)
    s = {"d": d, "prev": d.copy(), "m": m, "G": G, "eta": np.full(idx.size, 2.0 * eps),
         "bd": d.copy(), "bm": m.copy(), "bG": G.copy(),  # this restart's best (restart point)
         "ups": np.zeros(idx.size, np.int64), "last_bm": m.copy(),
         "halved": np.zeros(idx.size, bool), "idx": idx}
    last_w = 0
    for i in range(iters):
        a = momentum if i > 0 else 1.0  # the first step has no previous one
        d, prev, eta = s["d"], s["prev"], s["eta"]
        bcast = (-1,) + (1,) * (X.ndim - 1)
        # steepest_ascent raises on a non-finite gradient ("gradient contains NaN ...").
        z = into_ball(d + eta.reshape(bcast) * steepest_ascent(-s["G"], 1.0, p), eps, p, X.dtype)
        new = into_ball(d + a * (z - d) + (1.0 - a) * (d - prev), eps, p, X.dtype)
        m, G = evaluate(s["idx"], new)
        s["ups"] += m < s["m"]  # the objective -margin went up
        s.update(prev=d, d=new, m=m, G=G)
        imp = m < s["bm"]
        s["bd"][imp], s["bm"][imp], s["bG"][imp] = new[imp], m[imp], G[imp]
        if i + 1 in ckpts:
            # Halve where fewer than rho of the steps since the last checkpoint went up, or
            # where neither the step size nor the best objective moved since then.
            span = i + 1 - last_w
            halve = (s["ups"] < rho * span) | (~s["halved"] & (s["bm"] >= s["last_bm"]))
            s["eta"][halve] /= 2.0
            # Restart those rows from their best point, with no momentum across the jump.
            for key, src in (("d", "bd"), ("prev", "bd"), ("m", "bm"), ("G", "bG")):
                s[key][halve] = s[src][halve]
            s["halved"], s["last_bm"], s["ups"] = halve, s["bm"].copy(), np.zeros_like(s["ups"])
            last_w = i + 1
        live = s["m"] > 0
        if not live.all():  # drop the broken rows (their witness is already in best)
            s = {k: v[live] for k, v in s.items()}
            if s["idx"].size == 0:
                return


def check_apgd_options(iters=100, restarts=1, random_start=True, rho=0.75, momentum=0.75):
    """Validated APGD options (a ValueError naming the option otherwise).

    ``seed`` is not among them: the registry and the public functions check it.
    """
    return dict(iters=check_int("iters", iters, 1), restarts=check_int("restarts", restarts, 1),
                random_start=check_bool("random_start", random_start),
                rho=check_float("rho", rho, 0.0, 1.0, low_open=True),
                momentum=check_float("momentum", momentum, 0.0, 1.0, low_open=True))


def apgd(model, X, y, eps, norm, *, iters=100, restarts=1, random_start=True, rho=0.75,
         momentum=0.75, seed=0):
    """APGD on the margin loss: minimise the per-sample margin inside the p-ball.

    Step size 2 eps, halved per sample at checkpoints (22% of the iterations, then
    gaps shrinking by 3% down to 6%) when fewer than ``rho`` of the steps since the
    last checkpoint lowered the margin, or when neither the step size nor the best
    margin changed since then; after a halving the sample restarts from its best
    point.  Steps use momentum ``momentum`` and the steepest-descent direction of the
    norm (sign steps in linf, normalised in l2).  The margin loss does not saturate
    at large margins as the logistic loss does.

    Parameters
    ----------
    model : theorylab model
        Any learner of the protocol (binary or K-class margin).
    X : array of shape (N, ...)
    y : labels
    eps : float
        Radius >= 0.
    norm : {2, inf}
    iters : int, default 100
        Gradient steps per restart (AutoAttack's value).
    restarts : int, default 1
        Independent runs; every run after the first starts at a uniform point of the
        ball.  A point broken by one run is not attacked by the next ones.
    random_start : bool, default True
        The first run starts at a uniform point of the ball (else at ``X``).
    rho : float in (0, 1], default 0.75
        Fraction of improving steps below which the step size is halved.
    momentum : float in (0, 1], default 0.75
        Weight of the new step (1 - momentum goes to the previous one).
    seed : int, SeedSequence or Generator, default 0
        Randomness of the starts.

    Returns
    -------
    delta : ndarray, shape and dtype of ``X``
        Per point, the iterate with the lowest margin over all iterations and
        restarts (zero when none beats the clean point); ||delta_n||_p <= eps.
        Nothing is clipped to a box.
    """
    p = check_norm(norm, allowed=(2.0, np.inf))
    eps = check_float("eps", eps, 0.0)
    opts = check_apgd_options(iters, restarts, random_start, rho, momentum)
    as_generator(seed, "seed")
    X, y = prepare(model, X, y)
    return _apgd(model, X, y, eps, p, seed=seed, **opts)


register(Attack("apgd", _apgd, "gradient", norms=(2.0, np.inf),
                options={"iters": 100, "restarts": 1, "random_start": True, "rho": 0.75,
                         "momentum": 0.75},
                check=lambda o: check_apgd_options(**o),
                summary="APGD on the margin loss: adaptive step size, momentum, restarts "
                        "(Croce & Hein 2020)"))
