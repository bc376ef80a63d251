"""Fast minimum-norm attack (FMN, Pintor et al. 2021): per point, a small breaking delta.

One run gives every point's smallest radius found, hence a whole robustness curve
(:attr:`Attack.radii`); the registered fixed-eps ``run`` makes it an ordinary attack too.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import as_generator, check_float, check_int, check_norm
from ._core import into_ball, prepare, row_norms, rows, steepest_ascent
from ._registry import Attack, register

__all__ = ["fmn", "fmn_radii"]

_DUAL = {2.0: 2.0, np.inf: 1.0}


def _project_rows(D, radius, p, dtype):
    # Projection of each row on its own ball ||delta_n||_p <= radius_n (on delta: relative to x).
    flat = rows(D)
    r = radius[:, None]
    if p == np.inf:
        out = np.clip(flat, -r, r)
    else:
        n = np.linalg.norm(flat, axis=1, keepdims=True)
        out = flat * np.minimum(1.0, r / np.where(n > 0, n, 1.0))
    return out.reshape(D.shape).astype(dtype, copy=False)


def _cosine(start, end, k, steps):
    return end + (start - end) * (1 + math.cos(math.pi * k / steps)) / 2


def _search(model, X, y, p, steps, gamma_init, gamma_final, alpha_init, alpha_final, eps=None):
    # FMN on validated arrays.  Returns the best adversarial delta and its norm per point
    # (zero and inf where none) and, when eps is given, the lowest-margin iterate inside
    # the eps-ball with its margin and the last iterate (for the fixed-eps attack).
    adv, adv_norm = np.zeros_like(X), np.full(X.shape[0], np.inf)
    m, G = model.margin_and_input_gradient(X, y, check_input=False)
    adv_norm[m <= 0] = 0.0  # already misclassified: radius 0, delta 0
    ball, ball_m, last = np.zeros_like(X), m.astype(np.float64), np.zeros_like(X)
    idx = np.flatnonzero(m > 0)
    if idx.size == 0:
        return adv, adv_norm, ball, ball_m, last
    d, eps_n = np.zeros_like(X[idx]), np.zeros(idx.size)
    m, G = m[idx], G[idx]

    def record(d, m):
        dn = row_norms(d, p)
        cand = (m <= 0) & (dn < adv_norm[idx])
        if cand.any():  # re-evaluated with model.margin: only confirmed witnesses count
            sub = np.flatnonzero(cand)
            ok = model.margin(X[idx[sub]] + d[sub], y[idx[sub]], check_input=False) <= 0
            adv[idx[sub[ok]]], adv_norm[idx[sub[ok]]] = d[sub[ok]], dn[sub[ok]]
        if eps is not None:
            inb = (dn <= eps) & (m < ball_m[idx])
            ball[idx[inb]], ball_m[idx[inb]] = d[inb], m[inb]
        return dn

    for k in range(steps):
        dn = record(d, m)
        gamma = _cosine(gamma_init, gamma_final, k, steps)
        alpha = _cosine(alpha_init, alpha_final, k, steps)
        gq = row_norms(G, _DUAL[p])
        if not np.isfinite(gq).all():
            raise ValueError("gradient contains NaN or infinite values")
        # Linear estimate of the distance to the boundary (a zero gradient gives none),
        # overshot by 1 + gamma: landing exactly on the boundary of a linear model leaves
        # half the points at a margin of +1 ulp, where FMN would stay for ever.
        dist = np.where(gq > 0, np.abs(m) / np.where(gq > 0, gq, 1.0), 0.0) * (1 + gamma)
        best = adv_norm[idx]
        eps_n = np.where(m <= 0, np.minimum(eps_n * (1 - gamma), best),
                         np.where(np.isfinite(best), eps_n * (1 + gamma), dn + dist))
        # A steepest-descent step of the norm (sign in linf), of length alpha * eps_n.
        step = steepest_ascent(-G, 1.0, p) * (alpha * eps_n).reshape((-1,) + (1,) * (X.ndim - 1))
        d = _project_rows(d + step, eps_n, p, X.dtype)
        m, G = model.margin_and_input_gradient(X[idx] + d, y[idx], check_input=False)
    record(d, m)
    last[idx] = d
    return adv, adv_norm, ball, ball_m, last


def _fmn_radii(model, X, y, p, *, seed=0, steps=100, gamma_init=0.05, gamma_final=0.001,
               alpha_init=1.0, alpha_final=0.01):
    # Validated arrays and options in (the registry's radii; fmn_radii() checks them).
    with model.fixed_weights():
        adv, radius = _search(model, X, y, p, steps, gamma_init, gamma_final, alpha_init,
                              alpha_final)[:2]
    return adv, radius


def _fmn(model, X, y, eps, p, *, world=None, seed=0, steps=100, gamma_init=0.05,
         gamma_final=0.001, alpha_init=1.0, alpha_final=0.01):
    # The fixed-eps attack: the minimal witness where its norm is <= eps, else the
    # lowest-margin point found inside the ball.
    if eps == 0.0:
        return np.zeros_like(X)
    with model.fixed_weights():
        adv, radius, ball, ball_m, last = _search(model, X, y, p, steps, gamma_init, gamma_final,
                                                  alpha_init, alpha_final, eps)
        out = np.where((radius <= eps).reshape((-1,) + (1,) * (X.ndim - 1)), adv, ball)
        rest = np.flatnonzero(radius > eps)
        # Two more candidates inside the ball: the last iterate and the best witness,
        # projected (FMN's iterates hover at the boundary, often outside the eps-ball).
        for cand in (last[rest], adv[rest]):
            if rest.size == 0:
                break
            cand = into_ball(cand, eps, p, X.dtype)
            mc = model.margin(X[rest] + cand, y[rest], check_input=False)
            won = mc < ball_m[rest]
            out[rest[won]], ball_m[rest[won]] = cand[won], mc[won]
    return into_ball(out, eps, p, X.dtype)


def check_fmn_options(steps=100, gamma_init=0.05, gamma_final=0.001, alpha_init=1.0,
                      alpha_final=0.01):
    """Validated FMN options (a ValueError naming the option otherwise).

    ``seed`` is not among them: the registry and the public functions check it.
    """
    gamma_init = check_float("gamma_init", gamma_init, 0.0, 1.0, low_open=True, high_open=True)
    alpha_init = check_float("alpha_init", alpha_init, 0.0, low_open=True)
    return dict(steps=check_int("steps", steps, 1), gamma_init=gamma_init,
                gamma_final=check_float("gamma_final", gamma_final, 0.0, gamma_init),
                alpha_init=alpha_init,
                alpha_final=check_float("alpha_final", alpha_final, 0.0, alpha_init))


def fmn_radii(model, X, y, norm, *, steps=100, gamma_init=0.05, gamma_final=0.001,
              alpha_init=1.0, alpha_final=0.01, seed=0):
    """Per point, the smallest breaking perturbation FMN finds, and its norm.

    From delta = 0, each step moves along the steepest descent of the margin (sign
    steps in linf, normalised in l2) and projects on a ball of adaptive radius:
    shrunk where the iterate breaks the point, grown towards the boundary otherwise.
    Every iterate with margin <= 0 (confirmed with ``model.margin``) and a smaller
    norm than the previous witness becomes the point's witness.

    Parameters
    ----------
    model : theorylab model
    X : array of shape (N, ...)
    y : labels
    norm : {2, inf}
    steps : int, default 100
        Gradient steps (Pintor et al.'s budget for a whole curve).
    gamma_init, gamma_final : float, default 0.05 and 0.001
        Relative change of the radius per step, cosine-annealed from the first to the
        second (FMN's values): the radius shrinks by (1 - gamma) where the iterate is
        adversarial, and grows by (1 + gamma) otherwise once a witness exists (before
        that it jumps to the linear estimate ||delta||_p + |margin| / ||grad||_q).
    alpha_init, alpha_final : float, default 1.0 and 0.01
        Step length as a fraction of the current radius, cosine-annealed.  Relative
        (unlike FMN's absolute steps on [0, 1] images): R^d inputs have no scale.
    seed : int, SeedSequence or Generator, default 0
        Accepted for the common interface; FMN starts at X and is deterministic.

    Returns
    -------
    delta : ndarray, shape and dtype of ``X``
        The best witness per point (zero where none was found or the point is
        misclassified already).
    radius : ndarray of shape (N,)
        ||delta_n||_p of the witness (float64); inf where none was found, 0 where
        the point is already misclassified.  An upper bound on the exact radius.
    """
    p = check_norm(norm, allowed=(2.0, np.inf))
    opts = check_fmn_options(steps, gamma_init, gamma_final, alpha_init, alpha_final)
    as_generator(seed, "seed")
    X, y = prepare(model, X, y)
    return _fmn_radii(model, X, y, p, seed=seed, **opts)


def fmn(model, X, y, eps, norm, *, steps=100, gamma_init=0.05, gamma_final=0.001,
        alpha_init=1.0, alpha_final=0.01, seed=0):
    """FMN as a fixed-radius attack.

    Per point: FMN's minimal witness (see :func:`fmn_radii`) where its norm is <= eps;
    otherwise the lowest-margin point found inside the eps-ball (among the iterates
    inside it, the last iterate and the witness projected on it).

    Parameters
    ----------
    model : theorylab model
    X : array of shape (N, ...)
    y : labels
    eps : float
        Radius >= 0.
    norm : {2, inf}
    steps : int, default 100
        Gradient steps (Pintor et al.'s budget for a whole curve).
    gamma_init, gamma_final : float, default 0.05 and 0.001
        Relative change of the radius per step, cosine-annealed from the first to the
        second (FMN's values): the radius shrinks by (1 - gamma) where the iterate is
        adversarial, and grows by (1 + gamma) otherwise once a witness exists (before
        that it jumps to the linear estimate ||delta||_p + |margin| / ||grad||_q).
    alpha_init, alpha_final : float, default 1.0 and 0.01
        Step length as a fraction of the current radius, cosine-annealed.  Relative
        (unlike FMN's absolute steps on [0, 1] images): R^d inputs have no scale.
    seed : int, SeedSequence or Generator, default 0
        Accepted for the common interface; FMN starts at X and is deterministic.

    Returns
    -------
    delta : ndarray, shape and dtype of ``X``, with ||delta_n||_p <= eps.
    """
    p = check_norm(norm, allowed=(2.0, np.inf))
    eps = check_float("eps", eps, 0.0)
    opts = check_fmn_options(steps, gamma_init, gamma_final, alpha_init, alpha_final)
    as_generator(seed, "seed")
    X, y = prepare(model, X, y)
    return _fmn(model, X, y, eps, p, seed=seed, **opts)


_OPTIONS = {"steps": 100, "gamma_init": 0.05, "gamma_final": 0.001, "alpha_init": 1.0,
            "alpha_final": 0.01}
register(Attack("fmn", _fmn, "min-norm", norms=(2.0, np.inf), radii=_fmn_radii,
                options=_OPTIONS, check=lambda o: check_fmn_options(**o),
                summary="fast minimum-norm attack: per-point smallest breaking radius "
                        "(Pintor et al. 2021)"))
