"""Closed-form and iterative attacks, robust accuracy and robustness curves.

All attacks return the *perturbation* ``delta`` (same shape as ``X``); the
attacked input is ``X + delta``.  Nothing is clipped to a box: the theory's
inputs have no pixel range.  Perturbations are per sample: norms are taken
over all of a sample's coordinates (for patch inputs (N, P, d), over P*d).

Any model works that provides the private protocol of
:class:`theorylab.models._base.BinaryModel`: ``_check_X``, ``_check_y``,
``_loss_grad`` (per-sample loss and input gradient) and ``_correct``.  A
model may also compile the l2 and linf loops of :func:`fgm` and :func:`pgd`
(``_fgm_fused``, ``_pgd_fused``; TwoLayerReLU both, SmoothedReLUCNN ``_pgd_fused``),
which then run instead.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from ._validation import as_generator, check_choice, check_float, check_int, check_norm, norm_name

__all__ = [
    "steepest_ascent",
    "project",
    "sample_ball",
    "fgm",
    "pgd",
    "dense_direction",
    "robust_accuracy",
    "robustness_curve",
    "cumulative_survival",
    "RobustnessCurve",
    "tau50",
]

ZERO_GRAD_POLICIES = ("zero", "raise")


def _rows(A):
    return A.reshape(A.shape[0], -1)


def _row_max_abs(G):
    return np.abs(G).max(axis=1) if G.shape[1] else np.zeros(G.shape[0], G.dtype)


def steepest_ascent(G, eps, norm, *, zero_grad="zero"):
    """The per-row maximiser of <delta, g> over the ball ||delta||_p <= eps.

    Parameters
    ----------
    G : ndarray of shape (N, ...)
        Gradients, one sample per leading index.
    eps : float
        Radius (>= 0).
    norm : {2, inf, 1}
        l2: eps g / ||g||_2.  linf: eps sign(g).  l1: the whole budget on the
        coordinate of largest |g_j| (first one on ties), with its sign.
    zero_grad : {"zero", "raise"}, default "zero"
        A sample whose gradient is exactly zero gets a zero perturbation, or
        raises ``ValueError``.

    Returns
    -------
    delta : ndarray, shape and dtype of ``G``
        ||delta||_p = eps and <delta, g> = eps ||g||_q (q the dual exponent)
        for every non-zero row; zero rows stay zero.

    Notes
    -----
    The l2 norm is computed after dividing each row by its largest entry, so
    gradients as small as 1e-300 neither underflow to a 0/0 nor return NaN.
    """
    p = check_norm(norm)
    eps = check_float("eps", eps, 0.0)
    check_choice("zero_grad", zero_grad, ZERO_GRAD_POLICIES)
    G = np.asarray(G)
    if not np.isfinite(G).all():
        raise ValueError("gradient contains NaN or infinite values")
    flat = _rows(G)
    scale = _row_max_abs(flat)
    zero = scale == 0
    if zero.any() and zero_grad == "raise":
        raise ValueError(f"zero gradient for samples {np.flatnonzero(zero)[:10].tolist()}")
    out = np.zeros_like(flat)
    nz = ~zero
    if p == 2.0:
        U = flat[nz] / scale[nz, None]
        out[nz] = eps * U / np.linalg.norm(U, axis=1, keepdims=True)
    elif p == np.inf:
        out[nz] = eps * np.sign(flat[nz])
    else:
        rows = np.flatnonzero(nz)
        j = np.abs(flat[rows]).argmax(axis=1)
        out[rows, j] = eps * np.sign(flat[rows, j])
    return out.reshape(G.shape)


def _project_l1(flat, eps):
    # Euclidean projection onto the l1 ball (Duchi et al. 2008), row-wise, by sorting.
    a = np.abs(flat)
    outside = a.sum(axis=1) > eps
    if not outside.any():
        return flat
    A = a[outside]
    srt = -np.sort(-A, axis=1)
    css = np.cumsum(srt, axis=1) - eps
    idx = np.arange(1, A.shape[1] + 1)
    rho = (srt - css / idx > 0).sum(axis=1)
    theta = css[np.arange(A.shape[0]), rho - 1] / rho
    res = flat.copy()
    res[outside] = np.sign(flat[outside]) * np.maximum(A - theta[:, None], 0.0)
    return res


def project(delta, eps, norm):
    """Euclidean projection of each sample's perturbation onto the p-ball of radius eps."""
    p = check_norm(norm)
    flat = _rows(np.asarray(delta))
    if p == np.inf:
        out = np.clip(flat, -eps, eps)
    elif p == 2.0:
        n = np.linalg.norm(flat, axis=1, keepdims=True)
        out = flat * np.minimum(1.0, eps / np.where(n > 0, n, 1.0))
    else:
        out = _project_l1(flat, eps)
    return out.reshape(np.shape(delta))


def sample_ball(shape, eps, norm, rng, dtype=np.float64):
    """Points drawn uniformly from the p-ball of radius eps, one per sample.

    l2: a Gaussian direction times eps U^(1/n) (n the sample's dimension).
    linf: uniform on the cube.  l1: uniform on the cross-polytope, from the
    first n coordinates of a uniform point on the (n+1)-simplex with random signs.
    """
    p = check_norm(norm)
    N = shape[0]
    n = int(np.prod(shape[1:]))
    if p == np.inf:
        out = rng.uniform(-eps, eps, size=(N, n))
    elif p == 2.0:
        g = rng.standard_normal((N, n))
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        out = g * (eps * rng.random(N) ** (1.0 / n))[:, None]
    else:
        e = rng.exponential(size=(N, n + 1))
        out = eps * (e[:, :n] / e.sum(axis=1, keepdims=True)) * rng.choice([-1.0, 1.0], (N, n))
    return out.reshape(shape).astype(dtype)


def frozen(model):
    """The model's ``frozen_thresholds()`` context if it has one (weights fixed inside)."""
    f = getattr(model, "frozen_thresholds", None)
    return f() if f is not None else contextlib.nullcontext()


def _prepare(model, X, y):
    X = model._check_X(X)
    return X, model._check_y(y, X.shape[0])


# Models may compile the l2 and linf loops of fgm and pgd (``_fgm_fused``, ``_pgd_fused``:
# TwoLayerReLU both, SmoothedReLUCNN pgd); they give the same perturbations as the NumPy
# code here, bit for bit in linf and up to rounding in l2.  False forces the NumPy code
# (tests compare the two).
_FUSED = True


def _fused(model, name, p):
    # The model's compiled loop ``name`` for norm p, or None.
    return getattr(model, name, None) if _FUSED and p in (2.0, np.inf) else None


def _require_finite_gradients(ok, delta):
    # steepest_ascent's NaN policy for the compiled loops, which flag rows instead of raising.
    if not (ok.all() and np.isfinite(delta).all()):
        raise ValueError("gradient contains NaN or infinite values")


def fgm(model, X, y, eps, norm, *, zero_grad="zero"):
    """Fast gradient method: one closed-form step of radius ``eps`` up the loss.

    Parameters
    ----------
    model : theorylab model
    X : array of shape (N, ...)
    y : labels
    eps : float
        Radius >= 0.
    norm : {2, inf, 1}
        FGM (l2), FGSM (linf), or the l1 single-coordinate step.
    zero_grad : {"zero", "raise"}
        Policy for a sample with an exactly zero gradient (default: zero step).

    Returns
    -------
    delta : ndarray, same shape as ``X``

    Notes
    -----
    With ``zero_grad="zero"``, l2 and linf run the model's compiled step when it
    has one: the same bits in linf, the same up to rounding in l2.
    """
    p = check_norm(norm)
    eps = check_float("eps", eps, 0.0)
    X, y = _prepare(model, X, y)
    fused = _fused(model, "_fgm_fused", p) if zero_grad == "zero" else None
    if fused is not None:
        delta, ok = fused(X, y, eps, p)
        _require_finite_gradients(ok, delta)
        return delta
    _, G = model._loss_grad(X, y)
    return steepest_ascent(G, eps, p, zero_grad=zero_grad).astype(X.dtype, copy=False)


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
    steps = check_int("steps", steps, 1)
    restarts = check_int("restarts", restarts, 1)
    if restarts > 1 and not random_start:
        raise ValueError("restarts > 1 needs random_start=True")
    alpha = 2.5 * eps / steps if step_size is None else check_float("step_size", step_size, 0.0)
    X, y = _prepare(model, X, y)
    rng = as_generator(seed, "seed") if random_start else None
    best = np.zeros_like(X)
    if eps == 0.0:
        return best
    with frozen(model):
        fused = _fused(model, "_pgd_fused", p)
        best_loss = model._loss_grad(X, y)[0] if fused is None else None
        for _ in range(restarts):
            delta = (sample_ball(X.shape, eps, p, rng, X.dtype) if random_start
                     else np.zeros_like(X))
            if fused is not None:
                # A compiled start keeps its best iterate from the loss at X on, like the
                # loop below; the best over starts is then the same row by row.
                cand, loss, ok = fused(X, y, delta, steps, alpha, eps, p)
                _require_finite_gradients(ok, cand)
                if best_loss is None:
                    best, best_loss = cand, loss
                else:
                    best_loss = _keep_better(best, best_loss, cand, loss)
                continue
            for t in range(steps + 1):
                loss, G = model._loss_grad(X + delta, y)
                best_loss = _keep_better(best, best_loss, delta, loss)
                if t == steps:
                    break
                delta = project(delta + steepest_ascent(G, alpha, p), eps, p).astype(X.dtype)
    return best


def _keep_better(best, best_loss, cand, loss):
    # Rows whose loss beats best_loss (strictly: the first best wins ties) take cand, in place.
    better = loss > best_loss
    best[better] = cand[better]
    return np.where(better, loss, best_loss)


def dense_direction(world, y, eps, norm, *, dtype=np.float64):
    """The dense label-direction attack of Feature Purification (spec 2.3).

    delta = -y eps M w* / ||M w*||_2 (l2) or -y eps sign(M w*) (linf): the
    direction along which clean training accumulates its dense mixtures.
    """
    p = check_norm(norm, allowed=(2.0, np.inf))
    eps = check_float("eps", eps, 0.0)
    y = np.asarray(y, dtype=np.float64)
    u = world.label_direction
    u = u / np.linalg.norm(u) if p == 2.0 else np.sign(u)
    return (-eps * y[:, None] * u[None, :]).astype(dtype)


ATTACKS = ("pgd", "fgm", "dense", "exact", "none")


def robust_accuracy(model, X, y, eps, norm, attack="pgd", *, world=None, **attack_kwargs):
    """Fraction of samples still classified correctly after the attack.

    Parameters
    ----------
    attack : {"pgd", "fgm", "dense", "exact", "none"}
        ``"dense"`` needs ``world``; ``"exact"`` needs a model that certifies
        its own worst case (``model.exact_robust_correct``, e.g. linear models).
    **attack_kwargs
        Passed to :func:`pgd` or :func:`fgm`.
    """
    check_choice("attack", attack, ATTACKS)
    p = check_norm(norm)
    eps = check_float("eps", eps, 0.0)
    X, yv = _prepare(model, X, y)
    if attack == "exact":
        if not hasattr(model, "exact_robust_correct"):
            raise ValueError(f"attack='exact' is not available for {type(model).__name__}")
        return float(np.mean(model.exact_robust_correct(X, yv, eps, p)))
    delta = _perturbation(model, X, yv, eps, p, attack, world, attack_kwargs)
    return float(np.mean(model._correct(X + delta, yv)))


def _perturbation(model, X, y, eps, p, attack, world, attack_kwargs):
    # The perturbation of a named non-exact attack on validated arrays.
    if attack == "pgd":
        return pgd(model, X, y, eps, p, **attack_kwargs)
    if attack == "fgm":
        return fgm(model, X, y, eps, p, **attack_kwargs)
    if attack == "dense":
        if world is None:
            raise ValueError("attack='dense' needs world=")
        return dense_direction(world, y, eps, p, dtype=X.dtype)
    return np.zeros_like(X)


def tau50(eps, accuracy, clean_accuracy=None):
    """Radius where robust accuracy first falls below 0.5, by linear interpolation.

    Parameters
    ----------
    eps, accuracy : sequences of equal length
        A robustness curve, eps increasing.
    clean_accuracy : float, optional
        Accuracy at eps = 0, used as the curve's first point.

    Returns
    -------
    float
        ``inf`` when the curve never falls below 0.5 on the grid (tau50 lies
        beyond it), 0.0 when it starts below 0.5.
    """
    e = np.asarray(eps, dtype=float)
    a = np.asarray(accuracy, dtype=float)
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ValueError("eps and accuracy must be 1-d sequences of the same length")
    if np.any(np.diff(e) <= 0):
        raise ValueError("eps must be strictly increasing")
    if clean_accuracy is not None and e[0] > 0:
        e = np.concatenate([[0.0], e])
        a = np.concatenate([[clean_accuracy], a])
    below = np.flatnonzero(a < 0.5)
    if below.size == 0:
        return float("inf")
    i = below[0]
    if i == 0:
        return float(e[0]) if clean_accuracy is None else 0.0
    e0, e1, a0, a1 = e[i - 1], e[i], a[i - 1], a[i]
    return float(e0 + (a0 - 0.5) * (e1 - e0) / (a0 - a1))


@dataclass
class RobustnessCurve:
    """Robust accuracy over a grid of radii for one model, norm and attack."""

    eps: np.ndarray
    accuracy: np.ndarray
    norm: str
    attack: str
    clean_accuracy: float
    details: dict = field(default_factory=dict)

    @property
    def tau50(self):
        """Interpolated radius of 50% robust accuracy (see :func:`tau50`)."""
        return tau50(self.eps, self.accuracy, self.clean_accuracy)

    def at(self, eps):
        """Robust accuracy at a grid radius."""
        idx = np.flatnonzero(np.isclose(self.eps, eps))
        if idx.size == 0:
            raise ValueError(f"eps={eps} is not on the curve's grid {self.eps.tolist()}")
        return float(self.accuracy[idx[0]])

    def to_dict(self):
        return {"eps": self.eps.tolist(), "accuracy": self.accuracy.tolist(), "norm": self.norm,
                "attack": self.attack, "clean_accuracy": self.clean_accuracy,
                "tau50": self.tau50, **self.details}


def cumulative_survival(correct_at, eps_grid, n):
    """Which points survive an attack at every radius up to each one of a grid.

    A perturbation found at radius r is admissible at every radius r' >= r, so a
    point broken at r is counted as broken at all larger radii of the grid.  The
    curve is the union of the per-radius attacks (never weaker than attacking
    each radius on its own, and monotone), and each radius attacks only the points
    still standing, which is what makes it cheap: a non-robust model's curve costs
    little beyond its first radii.

    Parameters
    ----------
    correct_at : callable
        ``correct_at(eps, idx) -> bool array of len(idx)``: correct after the
        attack at radius ``eps``, for the points with indices ``idx``.
    eps_grid : sequence of float
        Strictly increasing radii.
    n : int
        Number of points.

    Returns
    -------
    ndarray of bool, shape (len(eps_grid), n)
    """
    grid = np.asarray(eps_grid, dtype=float)
    if grid.ndim != 1 or np.any(np.diff(grid) <= 0):
        raise ValueError("eps_grid must be a strictly increasing 1-d sequence")
    out = np.zeros((grid.size, n), dtype=bool)
    alive = np.arange(n)
    for i, eps in enumerate(grid):
        if alive.size:
            ok = np.asarray(correct_at(float(eps), alive), dtype=bool)
            if ok.shape != alive.shape:
                raise ValueError(f"correct_at returned shape {ok.shape}, expected {alive.shape}")
            alive = alive[ok]
            out[i, alive] = True
    return out


def robustness_curve(model, X, y, eps_grid, norm, attack="pgd", *, world=None,
                     cumulative=False, **attack_kwargs):
    """Robust accuracy at each radius of ``eps_grid`` (strictly increasing, >= 0).

    Parameters
    ----------
    cumulative : bool, default False
        Count a point as robust at eps only if the attack failed at every grid
        radius <= eps (:func:`cumulative_survival`): a monotone, never weaker and
        usually much cheaper curve.  Default: each radius attacked on its own.

    Returns
    -------
    RobustnessCurve
    """
    p = check_norm(norm)
    grid = np.asarray(eps_grid, dtype=float)
    if grid.ndim != 1 or grid.size == 0 or np.any(grid < 0) or not np.isfinite(grid).all():
        raise ValueError("eps_grid must be a non-empty 1-d sequence of finite radii >= 0")
    if np.any(np.diff(grid) <= 0):
        raise ValueError("eps_grid must be strictly increasing")
    check_choice("attack", attack, ATTACKS)
    if attack == "exact" and not hasattr(model, "exact_robust_correct"):
        raise ValueError(f"attack='exact' is not available for {type(model).__name__}")
    if attack == "dense" and world is None:
        raise ValueError("attack='dense' needs world=")
    X, yv = _prepare(model, X, y)
    clean = float(np.mean(model._correct(X, yv)))
    if cumulative:
        def correct_at(eps, idx):
            Xi, yi = X[idx], yv[idx]
            if attack == "exact":
                return model.exact_robust_correct(Xi, yi, eps, p)
            return model._correct(Xi + _perturbation(model, Xi, yi, eps, p, attack, world,
                                                     attack_kwargs), yi)

        acc = cumulative_survival(correct_at, grid, X.shape[0]).mean(axis=1)
    else:
        acc = np.array([robust_accuracy(model, X, yv, e, p, attack, world=world,
                                        **attack_kwargs) for e in grid])
    return RobustnessCurve(grid, acc, norm_name(p), attack, clean)
