"""Sound lower bounds on the robust margin of the two-layer symmetric threshold network.

The network is ``f(x) = sum_i st_{b_i}(<w_i, x>)`` with ``st_b(z) = sign(z) max(|z| - b, 0)``,
``W`` of shape (m, d) and thresholds ``b >= 0``.  For a label ``y`` in {-1, +1} the quantity
bounded is the worst margin ``min_{||delta||_p <= eps} y f(x + delta)``, p in {2, inf}, with
dual exponent q (q = 1 for p = inf, q = 2 for p = 2).  ``st`` is odd, so
``y st_b(z) = st_b(y z)``: the label is folded into the weights, ``v_i = y w_i``, and the
margin is ``sum_i st_{b_i}(z_i)`` with ``z_i = <v_i, x + delta>``.

Floating-point rules (every bound returned here obeys them):

* ``_U = 2**-53`` is the unit roundoff and ``gamma(n) = n u / (1 - n u)`` the classical bound
  on the relative error of a sum or dot product of n terms (any summation order, so BLAS
  blocking and FMA are covered).
* Pre-activation intervals ``[lo, hi] = z0 -/+ eps ||v_i||_q`` are widened by
  ``w = 4 gamma(d + 4) (||x||_inf + eps) ||v_i||_1``: this covers the error of the dot
  product, of the norm (``||v||_2 <= ||v||_1``) and of the two additions, with a factor 2 to
  spare, so the exact pre-activation lies in the float interval (``_TINY`` is added too).
* A bound ``B`` computed as a sum of terms ``t_k`` is returned as ``B - err`` with
  ``err = 2 gamma(n) T`` (n = the longest chain of roundings, at most d + m + 8) and T an
  upper bound on ``sum_k |t_k|`` that also covers the error carried in from forming ``Lambda``
  (``gamma(m) sum_i |alpha_i| |v_i| . |x + delta|``) and from each intercept
  (``|st(z*)| + |alpha z*| <= 2 |z*| + b``), with ``|z*| <= |z0| + half-width``.  T is
  cheap: ``3 a (|alpha| . ||w||_1) + sum |beta| + sum (2 (|z0| + h) + b)`` for slopes in
  [0, 1], ``a = ||x||_inf + eps``.  A worst-case (not probabilistic) estimate,
  "rigorous-ish": it assumes IEEE round-to-nearest and no underflow.

Mutation hooks (tests patch them to check that soundness tests catch wrong variants):
``_dual_norm`` (the norm in the bound), ``_row_norms`` (the norm in the intervals) and
``_intercepts`` (the intercepts beta).
"""

from __future__ import annotations

import numpy as np

__all__ = ["margin", "crown_bounds", "ibp_bounds"]

_U = np.finfo(np.float64).eps / 2   # unit roundoff of float64
_TINY = np.finfo(np.float64).tiny   # absolute slack against underflow
_CHUNK = 256                        # points per block: (N, m) temporaries stay in cache


def _gamma(n):
    """Relative error bound of an n-term sum in float64 (Higham's gamma_n)."""
    return n * _U / (1.0 - n * _U)


def _norm_order(p):
    """Return the primal order as ``2`` or ``np.inf``; ValueError for anything else."""
    if isinstance(p, str):
        p = p.strip().lower()
        p = {"2": 2, "l2": 2, "inf": np.inf, "linf": np.inf}.get(p, p)
    if p == 2:
        return 2
    if p == np.inf:
        return np.inf
    raise ValueError(f"p must be 2 or inf, got {p!r}")


def _labels(y, n):
    """Labels as a float64 vector of +-1 (anything else breaks the folding y st(z) = st(yz))."""
    y = np.broadcast_to(np.asarray(y, dtype=np.float64), (n,))
    if not np.all(np.abs(y) == 1.0):
        raise ValueError("labels must be -1 or +1")
    return np.ascontiguousarray(y)


def st(z, b):
    """The symmetric threshold ``sign(z) max(|z| - b, 0)``, elementwise (b >= 0 broadcasts)."""
    return z - np.clip(z, -b, b)  # z - clip is exact: no rounding when |z| <= b


def margin(X, y, W, b):
    """Margin ``y f(x)`` of the network in float64; a tie (f = 0) gives exactly 0.

    Parameters
    ----------
    X : array_like, shape (N, d) or (d,)
        Points.
    y : array_like, shape (N,) or scalar
        Labels in {-1, +1}.
    W : array_like, shape (m, d)
        First-layer weights.
    b : array_like, shape (m,)
        Thresholds.

    Returns
    -------
    ndarray, shape (N,), or float for a single point.
    """
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    X2 = np.atleast_2d(X)
    f = st(X2 @ W.T, b).sum(axis=1)
    out = _labels(y, X2.shape[0]) * f + 0.0  # + 0.0 turns -0.0 into 0.0
    return float(out[0]) if X.ndim == 1 else out


# ---------------------------------------------------------------- mutation hooks

def _dual_norm(A, p):
    """``||a||_q`` of each row of A: the exact max of ``-<a, delta>`` over the unit p-ball."""
    return np.abs(A).sum(axis=-1) if p == np.inf else np.sqrt((A * A).sum(axis=-1))


def _row_norms(W, p):
    """``||w_i||_q`` of each weight row: the half-width of pre-activation intervals per unit eps."""
    return np.abs(W).sum(axis=1) if p == np.inf else np.sqrt((W * W).sum(axis=1))


def _intercepts(lo, hi, b, alpha):
    """Tightest intercept of a line of slope alpha below ``st_b`` on [lo, hi].

    ``st_b(z) - alpha z`` is piecewise linear, so its minimum over the interval sits at an end
    or at a breakpoint ``-b``, ``b`` inside it: valid for *any* alpha.

    Returns
    -------
    beta, zstar : ndarray
        The minimum and the point where it is reached (``-zstar`` is d beta / d alpha).
    """
    beta = st(lo, b) - alpha * lo
    zstar = lo
    for c, val in ((hi, st(hi, b) - alpha * hi),
                   (-b, np.where((lo <= -b) & (-b <= hi), alpha * b, np.inf)),   # st(-b) = 0
                   (b, np.where((lo <= b) & (b <= hi), -alpha * b, np.inf))):   # st(b) = 0
        take = val < beta
        beta = np.where(take, val, beta)
        zstar = np.where(take, c, zstar)
    return beta, zstar


# ---------------------------------------------------------------- shared pieces

def _prepare(X, y, W, b):
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return X, _labels(y, X.shape[0]), W, b


def _widening(a, l1, d):
    """Widening of the intervals, (N, m): ``4 gamma(d + 4) a ||w_i||_1 + tiny``.

    ``|fl(z0) - z0| <= gamma_d ||x||_inf ||w||_1``; the norm and the additions add less, so
    this covers all of them with a factor 2 to spare.
    """
    return np.multiply.outer(4.0 * _gamma(d + 4) * a, l1) + _TINY


def _intervals(X, y, W, b, eps, p):
    """Sound pre-activation intervals of the folded neurons over the ball.

    Returns
    -------
    z0 : (N, m) centres ``<v_i, x>``;  lo, hi : (N, m) widened ends;
    a : (N,) ``||x||_inf + eps``, so that ``a ||w_i||_1`` bounds ``|v_i| . |x + delta|``;
    c : (N,) ``sum_i 2 (|z0_i| + half-width_i) + b_i``, the error scale of the intercepts.
    """
    l1 = np.abs(W).sum(axis=1)
    z0 = (y[:, None] * X) @ W.T
    a = np.abs(X).max(axis=1, initial=0.0) + eps
    half = eps * _row_norms(W, p) + _widening(a, l1, X.shape[1])
    c = 2.0 * (np.abs(z0).sum(axis=1) + half.sum(axis=1)) + b.sum()
    return z0, z0 - half, z0 + half, a, c


def _classify(lo, hi, b):
    """Masks ``(linear, dead, unstable)`` of the neurons on their intervals.

    linear: one piece of slope 1 on the whole interval (z <= -b, z >= b, or b = 0 where
    st is the identity); dead: inside [-b, b], st = 0; unstable: anything else.
    """
    linear = (hi <= -b) | (lo >= b) | (b == 0)
    dead = (lo >= -b) & (hi <= b) & ~linear
    return linear, dead, ~(linear | dead)


def _chord_slopes(lo, hi, b):
    """Default slopes: piece slope (0 or 1) if stable, chord of st over [lo, hi] if not."""
    linear, dead, unstable = _classify(lo, hi, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        chord = (st(hi, b) - st(lo, b)) / (hi - lo)
    chord = np.clip(np.nan_to_num(chord, nan=0.0), 0.0, 1.0)
    return np.where(unstable, chord, linear.astype(np.float64)), unstable


def _crown_eval(alpha, X, y, W, b, eps, p, z0, lo, hi, a, c, grad=True):
    """CROWN bound (minus its rounding error) for slopes alpha in [0, 1], and its supergradient.

    ``y f(x + delta) >= sum_i alpha_i z_i + beta_i >= <Lam, x> - eps ||Lam||_q + sum_i beta_i``
    with ``Lam = sum_i alpha_i v_i``; the minimiser delta* of <Lam, delta> gives the supergradient
    ``z_i(delta*) - zstar_i`` (the bound is concave in alpha).

    Rounding: ``|alpha| . (a ||w||_1)`` bounds the error carried by Lam (times gamma_m) and the
    terms ``|Lam| . |x|`` and ``eps ||Lam||_1``; ``sum |beta| + c`` bounds the intercepts' terms.
    """
    d, m = X.shape[1], W.shape[0]
    beta, zstar = _intercepts(lo, hi, b, alpha)
    lam = y[:, None] * (alpha @ W)
    nrm = _dual_norm(lam, p)
    value = np.einsum("nj,nj->n", lam, X) - eps * nrm + beta.sum(axis=1)
    terms = 3.0 * a * (np.abs(alpha) @ np.abs(W).sum(axis=1)) + np.abs(beta).sum(axis=1) + c
    bound = value - (2.0 * _gamma(d + m + 8) * terms + _TINY)
    if not grad:
        return bound, None
    # delta* = argmin of <lam, delta> over the ball (any subgradient where lam has zeros)
    if p == np.inf:
        dstar = -eps * np.sign(lam)
    else:
        dstar = -eps * lam / np.where(nrm > 0, nrm, 1.0)[:, None]
    return bound, z0 + (y[:, None] * dstar) @ W.T - zstar


def _crown_block(X, y, W, b, eps, p, optimize, iters, lr):
    z0, lo, hi, a, c = _intervals(X, y, W, b, eps, p)
    alpha, unstable = _chord_slopes(lo, hi, b)
    ctx = (X, y, W, b, eps, p, z0, lo, hi, a, c)
    run = optimize and unstable.any()
    best, grad = _crown_eval(alpha, *ctx, grad=run)
    best_alpha = alpha.copy()
    if not run:
        return best, best_alpha

    def keep(al, val):
        better = val > best
        best[better] = val[better]
        best_alpha[better] = al[better]

    # The IBP-equivalent lines (slope 0 on unstable neurons) are a candidate: with them the
    # result is never below IBP in exact arithmetic (stable lines are exact, st is monotone).
    a0 = np.where(unstable, 0.0, alpha)
    keep(a0, _crown_eval(a0, *ctx, grad=False)[0])
    # Projected Adam ascent on the unstable slopes, from the chord.  The bound is concave in
    # alpha and every iterate is sound, so the best value per point is kept.
    mom, sq = np.zeros_like(alpha), np.zeros_like(alpha)
    b1, b2 = 0.9, 0.999
    for t in range(1, iters + 1):
        g = np.where(unstable, grad, 0.0)
        mom = b1 * mom + (1 - b1) * g
        sq = b2 * sq + (1 - b2) * g * g
        step = lr * (mom / (1 - b1 ** t)) / (np.sqrt(sq / (1 - b2 ** t)) + 1e-12)
        alpha = np.where(unstable, np.clip(alpha + step, 0.0, 1.0), alpha)
        val, grad = _crown_eval(alpha, *ctx, grad=t < iters)
        keep(alpha, val)
    return best, best_alpha


def crown_bounds(X, y, W, b, eps, p, *, optimize=False, iters=20, lr=0.02, return_slopes=False):
    """Sound CROWN lower bounds on ``min_{||delta||_p <= eps} y f(x + delta)``, per point.

    Parameters
    ----------
    X : array_like, shape (N, d)
        Points (any float dtype; float64 inside).
    y : array_like, shape (N,)
        Labels in {-1, +1}.
    W : array_like, shape (m, d)
        First-layer weights.
    b : array_like, shape (m,)
        Thresholds, >= 0.
    eps : float
        Radius, >= 0.
    p : {2, inf}
        Norm of the ball.
    optimize : bool, optional
        If True, projected Adam ascent on the slopes of the unstable neurons in [0, 1]
        (alpha-CROWN).  The best bound per point over the chord slopes, the slope-0 (IBP-like)
        lines and every iterate is returned, so it is never below ``optimize=False``.
    iters : int, optional
        Adam iterations.
    lr : float, optional
        Adam step size (slopes live in [0, 1]; Adam moves each by about lr per step).
    return_slopes : bool, optional
        Also return the slopes (N, m) that give each bound.

    Returns
    -------
    bounds : ndarray, shape (N,)
        Lower bounds, already reduced by their floating-point error estimate.
    slopes : ndarray, shape (N, m)
        Only with ``return_slopes``.

    Notes
    -----
    Each neuron gets a line ``alpha_i z + beta_i`` below ``st`` on its interval; beta_i is the
    tightest intercept (see ``_intercepts``), so the bound is valid for any slopes.  Stable
    neurons get their piece's slope (exact), unstable ones the chord clipped to [0, 1].
    Cost per evaluation: two GEMMs of N x m x d (forming Lambda, and z(delta*) for the gradient;
    the plain bound needs only the first).
    """
    p = _norm_order(p)
    X, y, W, b = _prepare(X, y, W, b)
    eps = float(eps)
    out = np.empty(X.shape[0])
    slopes = np.empty((X.shape[0], W.shape[0])) if return_slopes else None
    for s in range(0, X.shape[0], _CHUNK):
        sl = slice(s, s + _CHUNK)
        out[sl], a = _crown_block(X[sl], y[sl], W, b, eps, p, optimize, iters, lr)
        if return_slopes:
            slopes[sl] = a
    return (out, slopes) if return_slopes else out


def ibp_bounds(X, y, W, b, eps, p):
    """Sound interval (IBP) lower bounds: each neuron at the minimum of st over its interval.

    Parameters
    ----------
    X, y, W, b, eps, p
        As in :func:`crown_bounds`.

    Returns
    -------
    ndarray, shape (N,)

    Notes
    -----
    st is nondecreasing, so the minimum is ``st(lo_i)``; the bound is ``sum_i st(lo_i)`` minus
    ``2 gamma(m + 2) sum_i (2 (|z0_i| + h_i) + b_i)`` (h_i the half-width, so the bracket
    dominates ``|st(lo_i)| + |lo_i| + b_i``).  It equals CROWN with constant lines; the CROWN
    bound with slope 0 on the unstable neurons (and exact lines on the stable ones) is never
    below it in exact arithmetic, plain CROWN (chord slopes) can be.
    """
    p = _norm_order(p)
    X, y, W, b = _prepare(X, y, W, b)
    _, lo, _, _, c = _intervals(X, y, W, b, float(eps), p)
    s = st(lo, b)
    return s.sum(axis=1) - (2.0 * _gamma(W.shape[0] + 2) * c + _TINY)
