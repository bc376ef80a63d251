"""Ilyas-style robust and non-robust feature datasets (spec robust_features.md 5.3).

* D_R: for each source image x (label y), start from another image and run
  normalised l2 gradient descent *on the input* until the adversarially
  trained model's hidden representation matches that of x; keep label y.
  What survives is what the robust model sees: robust features.
* D_NR: a targeted attack on the standard model moves x towards a target
  class t inside a small ball, and the result is relabelled t.  The only
  signal for t is the perturbation: non-robust features.

The hidden representation is the layer below the fixed output sum: for the
two-layer network h_i = relu(<w_i,x> - b_i) - relu(-<w_i,x> - b_i) (m units);
for the CNN h_{k,r} = sum_p sigma(<w_{k,r}, x_p>) (K*m units: pooled over patches, the
analogue of the globally pooled features below a ResNet's linear layer that Ilyas et al.
match).
"""

from __future__ import annotations

import numpy as np

from .. import attacks
from .._kernels import cnn as _kcnn
from .._validation import check_float, check_int, check_norm

__all__ = ["representation", "robust_dataset", "non_robust_dataset", "targeted_pgd"]


def _rep_and_grad(model, X, target=None):
    # Representation (n, H); with ``target`` also the gradient of
    # 0.5 ||h(x) - target||^2 per sample, shape of X (thresholds held fixed).
    if model.kind == "TwoLayerReLU":
        U = X @ model.W.T
        b = model.thresholds()
        H = np.maximum(U - b, 0.0) - np.maximum(-U - b, 0.0)
        if target is None:
            return H, None
        R = (H - target) * (np.abs(U) > b)
        return H, R @ model.W
    if model.kind == "SmoothedReLUCNN":
        n, P, d = X.shape
        K, m, _ = model.W.shape
        Wf = model.W.reshape(K * m, d)
        Z = np.einsum("npd,jd->npj", X, Wf)
        # Pooled over patches, like the global average pooling below a ResNet's last layer.
        H = _kcnn.smoothed_relu(Z.ravel(), model.q, model.rho).reshape(Z.shape).sum(axis=1)
        if target is None:
            return H, None
        S = _kcnn.smoothed_relu_derivative(Z.ravel(), model.q, model.rho).reshape(Z.shape)
        R = (H - target)[:, None, :] * S
        return H, np.einsum("npj,jd->npd", R, Wf)
    raise ValueError(f"model: no representation for {type(model).__name__}")


def representation(model, X):
    """Hidden representation of each input, shape (n, H)."""
    return _rep_and_grad(model, model.check_X(X))[0]


def robust_dataset(model, X_source, X_start, *, steps=200, step_size=0.1):
    """Inputs whose representation under ``model`` matches that of ``X_source``.

    Normalised l2 gradient descent on 0.5 ||h(x') - h(x)||^2 from ``X_start``,
    with a step size decaying linearly to zero (Ilyas et al. use normalised
    steps; the decay lets the iterates settle).

    Parameters
    ----------
    model : TwoLayerReLU or SmoothedReLUCNN
        The adversarially trained model whose features are kept.
    X_source : array
        Images whose representations are the targets.
    X_start : array, same shape
        Starting points (e.g. other images of the set, or noise).
    steps : int, default 200
    step_size : float, default 0.1
        Initial l2 length of a step per sample.

    Returns
    -------
    X_R : ndarray, shape of ``X_source``
    residual : ndarray of shape (n,)
        Final ||h(x') - h(x)|| / ||h(x)|| per sample (0 = exact match).
    """
    steps = check_int("steps", steps, 1)
    step_size = check_float("step_size", step_size, 0.0, low_open=True)
    Xs = model.check_X(X_source, "X_source")
    X = model.check_X(X_start, "X_start").copy()
    if X.shape != Xs.shape:
        raise ValueError(f"X_start must have the shape of X_source {Xs.shape}, got {X.shape}")
    target = _rep_and_grad(model, Xs)[0]
    for t in range(steps):
        _, G = _rep_and_grad(model, X, target)
        X -= attacks.steepest_ascent(G, step_size * (1.0 - t / steps), 2)
    H = _rep_and_grad(model, X)[0]
    scale = np.linalg.norm(target, axis=1)
    residual = np.linalg.norm(H - target, axis=1) / np.where(scale > 0, scale, 1.0)
    return X, residual


def targeted_pgd(model, X, targets, eps, norm, *, steps=20, step_size=None):
    """Perturbation of norm <= eps that lowers the loss of class ``targets`` (PGD descent).

    Returns the last iterate's perturbation (same shape as ``X``).
    """
    p = check_norm(norm, allowed=(2.0, np.inf))
    eps = check_float("eps", eps, 0.0)
    steps = check_int("steps", steps, 1)
    alpha = 2.5 * eps / steps if step_size is None else check_float("step_size", step_size, 0.0)
    X = model.check_X(X)
    t = model.check_y(targets, X.shape[0], "targets")
    delta = np.zeros_like(X)
    for _ in range(steps):
        _, G = model.loss_and_input_gradient(X + delta, t, check_input=False)
        delta = attacks.project(delta - attacks.steepest_ascent(G, alpha, p), eps, p)
    return delta.astype(X.dtype)


def non_robust_dataset(model, X, y, eps, norm, *, steps=20, n_classes=None):
    """Targeted attacks on ``model`` towards t, relabelled t.

    The target is the other class for binary labels {-1, +1} (t = -y), and
    t = y + 1 mod K for K classes (Ilyas et al.'s deterministic choice, which
    makes the new label a fixed permutation of the old one).

    Returns
    -------
    X_NR : ndarray, shape of ``X``
    t : ndarray
        The new labels.
    success : float
        Fraction of X_NR that ``model`` itself assigns to t.
    """
    X = model.check_X(X)
    y = np.asarray(y)
    if n_classes is None:
        n_classes = model.n_classes
    t = -y if n_classes == 2 and np.isin(y, (-1, 1)).all() else (y + 1) % n_classes
    X_nr = X + targeted_pgd(model, X, t, eps, norm, steps=steps)
    return X_nr, t, float(model.accuracy(X_nr, t))
