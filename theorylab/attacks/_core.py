"""What every attack shares: steepest ascent, projection, ball sampling, validation.

Attacks act on the *perturbation* ``delta`` (same shape as ``X``); the attacked
input is ``X + delta``.  Nothing is clipped to a box: the theory's inputs have no
pixel range.  Perturbations are per sample: norms are taken over all of a
sample's coordinates (for patch inputs (N, P, d), over P*d).
"""

from __future__ import annotations

import contextlib

import numpy as np

from .._validation import (check_array, check_choice, check_dtype, check_float, check_instance, check_memory,
                           check_norm)
from ..models._base import Learner

__all__ = ["steepest_ascent", "project", "sample_ball", "rows", "row_norms", "prepare",
           "into_ball", "compiled_loop", "compiled_loops", "require_finite_gradients", "ZERO_GRAD_POLICIES"]

ZERO_GRAD_POLICIES = ("zero", "raise")


def rows(A):
    """``A`` (N, ...) as an (N, n) view, one sample per row."""
    return A.reshape(A.shape[0], -1)


def row_norms(delta, p):
    """||delta_n||_p per sample, in float64."""
    flat = rows(np.asarray(delta, dtype=np.float64))
    if flat.shape[1] == 0:
        return np.zeros(flat.shape[0])
    return np.linalg.norm(flat, ord=p, axis=1)


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
    try:
        G = check_array("G", G, ndim=None)
    except ValueError as exc:
        if "NaN" in str(exc):  # the wording the attacks' NaN policy has always used
            raise ValueError("gradient contains NaN or infinite values (G)") from None
        raise
    flat = rows(G)
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
        idx = np.flatnonzero(nz)
        j = np.abs(flat[idx]).argmax(axis=1)
        out[idx, j] = eps * np.sign(flat[idx, j])
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
    eps = check_float("eps", eps, 0.0)
    delta = check_array("delta", delta, ndim=None)
    flat = rows(delta)
    if p == np.inf:
        out = np.clip(flat, -eps, eps)
    elif p == 2.0:
        n = np.linalg.norm(flat, axis=1, keepdims=True)
        out = flat * np.minimum(1.0, eps / np.where(n > 0, n, 1.0))
    else:
        out = _project_l1(flat, eps)
    return out.reshape(np.shape(delta))


def into_ball(delta, eps, p, dtype):
    """``delta`` projected on the eps-ball and cast to ``dtype``, with ||delta_n||_p <= eps.

    A projection rounded to float32 (or an l2 rescaling in float64) can land one ulp
    outside the ball; those rows are shrunk by a few ulps until they are inside.
    """
    out = project(delta, eps, p).astype(dtype, copy=False)
    shrink = np.dtype(dtype).type(1 - 4 * np.finfo(dtype).eps)
    for _ in range(8):
        out_rows = np.flatnonzero(row_norms(out, p) > eps)
        if out_rows.size == 0:
            break
        out[out_rows] *= shrink
    return out


def sample_ball(shape, eps, norm, rng, dtype=np.float64):
    """Points drawn uniformly from the p-ball of radius eps, one per sample.

    l2: a Gaussian direction times eps U^(1/n) (n the sample's dimension).
    linf: uniform on the cube.  l1: uniform on the cross-polytope, from the
    first n coordinates of a uniform point on the (n+1)-simplex with random signs.
    """
    p = check_norm(norm)
    eps = check_float("eps", eps, 0.0)
    if not (isinstance(shape, tuple) and len(shape) >= 1
            and all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape)):
        raise ValueError(f"shape must be a tuple of non-negative ints (N, ...), got {shape!r}")
    dtype = check_dtype("dtype", dtype)
    check_memory("shape", shape, dtype, copies=3)
    check_instance("rng", rng, np.random.Generator)
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


def prepare(model, X, y):
    """Validated (X, y) for ``model`` (the boundary check of every public attack)."""
    check_instance("model", model, Learner)
    return model.check_Xy(X, y)


# Models may compile the l2 and linf loops of fgm and pgd (declared in
# ``model.capabilities.compiled``); they give the same perturbations as the NumPy code,
# bit for bit in linf and up to rounding in l2.  ``compiled_loops(False)`` forces the
# NumPy code (tests compare the two).
_COMPILED = {"enabled": True}


@contextlib.contextmanager
def compiled_loops(enabled):
    """Use (or not) the models' compiled attack loops inside the block."""
    old = _COMPILED["enabled"]
    _COMPILED["enabled"] = bool(enabled)
    try:
        yield
    finally:
        _COMPILED["enabled"] = old


def compiled_loop(model, name, p):
    """Whether ``model`` runs attack ``name`` in norm p in a compiled loop."""
    return (_COMPILED["enabled"] and p in (2.0, np.inf)
            and name in model.capabilities.compiled)


def require_finite_gradients(ok, delta=None):
    """steepest_ascent's NaN policy for the compiled loops, which flag rows instead of raising."""
    if not (ok.all() and (delta is None or np.isfinite(delta).all())):
        raise ValueError("gradient contains NaN or infinite values")
