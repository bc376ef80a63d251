"""Gradient-free random search in the style of Square attack (Andriushchenko et al. 2020).

The theory's inputs are vectors of R^d (or bags of patches) without spatial
structure, so the "square" of the original becomes a random subset of
coordinates.  The attack only queries margins: it breaks points where the input
gradient is zero or useless (gradient masking), e.g. where every neuron of a
threshold network is switched off or the active ones cancel.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_generator, check_float, check_int, check_norm
from ._core import into_ball, prepare, rows
from ._registry import Attack, register

__all__ = ["square"]

# Square attack's query milestones, on a scale of 10000 queries: past each one the
# fraction of coordinates changed per query is halved.
_MILESTONES = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def fraction_schedule(p_init, query, queries):
    """Fraction of the coordinates changed at ``query`` (Square attack's p_selection)."""
    t = int(query / queries * 10000)
    return p_init / 2.0 ** sum(t > m for m in _MILESTONES)


def _subsets(rng, n_rows, n, size):
    # A uniformly random subset of `size` of the n coordinates per row.
    if size >= n:
        return np.broadcast_to(np.arange(n), (n_rows, n))
    if size == 1:  # most queries after the first 10%: skip the O(n) partition
        return rng.integers(0, n, size=(n_rows, 1))
    return np.argpartition(rng.random((n_rows, n)), size - 1, axis=1)[:, :size]


def _square(model, X, y, eps, p, *, world=None, seed=0, queries=1000, p_init=0.1):
    # Validated arrays and options in (square() and the registry check them once).
    best = np.zeros_like(X)
    if eps == 0.0:
        return best
    rng = as_generator(seed, "seed")
    n = rows(X).shape[1]
    shape = (-1,) + X.shape[1:]
    with model.fixed_weights():
        m0 = model.margin(X, y, check_input=False)
        idx = np.flatnonzero(m0 > 0)
        if idx.size == 0:
            return best
        # Start: a random vertex of the cube (linf) or a random point of the sphere (l2).
        if p == np.inf:
            D = eps * rng.choice([-1.0, 1.0], size=(idx.size, n))
        else:
            D = rng.standard_normal((idx.size, n))
            D *= eps / np.linalg.norm(D, axis=1, keepdims=True)
        D = rows(into_ball(D, eps, p, X.dtype))
        m = model.margin(X[idx] + D.reshape(shape), y[idx], check_input=False)
        bm = np.minimum(m, m0[idx])  # the best so far may be the clean point (delta = 0)
        best[idx[m < m0[idx]]] = D[m < m0[idx]].reshape(shape)
        for q in range(1, queries):
            live = m > 0  # stop per sample once it is broken
            if not live.all():
                idx, D, m, bm = idx[live], D[live], m[live], bm[live]
                if idx.size == 0:
                    break
            size = max(int(round(fraction_schedule(p_init, q, queries) * n)), 1)
            cols = _subsets(rng, idx.size, n, size)
            r = np.arange(idx.size)[:, None]
            cand = D.copy()
            if p == np.inf:
                cand[r, cols] *= -1.0  # flip: always a move to another vertex
            else:
                # A Gaussian update of the subset of norm ~2 eps sqrt(size / n) (twice the
                # subset's share of the budget, so mass can move there), then back on the sphere.
                cand[r, cols] += (2.0 * eps / np.sqrt(n)) * rng.standard_normal((idx.size, size))
                norms = np.linalg.norm(cand, axis=1, keepdims=True)
                cand *= eps / np.where(norms > 0, norms, 1.0)
            cand = rows(into_ball(cand, eps, p, X.dtype))
            mc = model.margin(X[idx] + cand.reshape(shape), y[idx], check_input=False)
            acc = mc < m  # keep the move iff the margin went down
            D[acc], m[acc] = cand[acc], mc[acc]
            won = mc < bm  # the kept delta is the one that was scored
            best[idx[won]], bm[won] = cand[won].reshape(shape), mc[won]
    return into_ball(best, eps, p, X.dtype)


def check_square_options(queries=1000, p_init=0.1):
    """Validated random-search options (a ValueError naming the option otherwise).

    ``seed`` is not among them: the registry and the public functions check it.
    """
    return dict(queries=check_int("queries", queries, 1),
                p_init=check_float("p_init", p_init, 0.0, 1.0, low_open=True))


def square(model, X, y, eps, norm, *, queries=1000, p_init=0.1, seed=0):
    """Random search on the margin, moving between vertices (linf) or on the sphere (l2).

    linf: start at a random vertex eps * s (s random signs); each query flips the
    signs of a random subset of coordinates (a move to another vertex).  l2: start
    at a random point of the sphere ||delta|| = eps; each query adds a Gaussian
    update to a random subset of coordinates and rescales the whole delta back to
    norm eps.  A move is kept per sample iff it lowers the margin; a sample stops
    once its margin is <= 0.  The subset holds a fraction of the coordinates that
    follows Square attack's schedule: ``p_init``, halved at 0.1%, 0.5%, 2%, 5%, 10%,
    20%, 40%, 60% and 80% of the queries.

    Parameters
    ----------
    model : theorylab model
        Any learner of the protocol; only its margins are queried.
    X : array of shape (N, ...)
    y : labels
    eps : float
        Radius >= 0.
    norm : {2, inf}
    queries : int, default 1000
        Margin queries per sample after the clean one (the start counts as one).
    p_init : float in (0, 1], default 0.1
        Initial fraction of coordinates changed per query.  Square attack uses 0.05
        to 0.8 on images; 0.1 changes 3 to 13 of d = 32 to 128 coordinates at first
        and single coordinates after 10% of the queries, a coordinate-wise local search.
    seed : int, SeedSequence or Generator, default 0

    Returns
    -------
    delta : ndarray, shape and dtype of ``X``
        Per point, the accepted move with the lowest margin (zero where the clean
        point is already misclassified or no move beat it); ||delta_n||_p <= eps.
    """
    p = check_norm(norm, allowed=(2.0, np.inf))
    eps = check_float("eps", eps, 0.0)
    opts = check_square_options(queries, p_init)
    as_generator(seed, "seed")
    X, y = prepare(model, X, y)
    return _square(model, X, y, eps, p, seed=seed, **opts)


register(Attack("square", _square, "gradient-free", norms=(2.0, np.inf),
                options={"queries": 1000, "p_init": 0.1},
                check=lambda o: check_square_options(**o),
                summary="random search over vertices (linf) or on the sphere (l2), margin "
                        "queries only (Square attack style)"))
