"""Adversarial training of the low-complexity baselines: the strongest algorithm per family.

The lower bound of Feature Purification says linear models, low-degree
polynomials and the NTK cannot defend at the network's radius *whatever
algorithm trains them* (spec 3.1 item 4).  Clean training is the weakest such
algorithm; these are the strongest ones we have, one per family, each at a
given radius ``eps`` in linf:

* :func:`adversarial_logistic`: a linear rule, the **exact** adversarial
  logistic loss min_{w,b} mean log(1 + exp(-(y (<w, x> + b) - eps ||w||_1)))
  + (l2/2) ||w||^2.  Convex; solved to optimality (L-BFGS-B on the smooth split
  w = u - v, u, v >= 0, which has the same minimum: for a given w,
  sum(u + v) >= ||w||_1 with equality at u = w+, v = w-, and the loss grows
  with sum(u + v)).
* :func:`adversarial_separable`: a separable odd polynomial with M = I, the
  **exact** inner maximisation (per coordinate, the interval end or interior
  critical point where y q_j is smallest,
  :meth:`~theorylab.models.PolynomialClassifier.worst_case_points`).  The
  worst-case margin is a minimum of functions linear in the coefficients, so
  the robust loss is convex too; L-BFGS with Danskin's gradient (the gradient
  at the minimiser) solves it.
* :func:`adversarial_kernel`: kernel machines (the cubic-kernel machine, the
  analytic NTK: dual coefficients on the fixed support set; the frozen-gate
  empirical NTK: its head V), alternating "attack at the current parameters
  with theorylab's attacks (per point the strongest of them), then minimise the
  regularised logistic loss on those points", for a few epochs.

Every trainer works in place and returns a :class:`~theorylab.training._core.History`
(per epoch or once for the exact solvers: loss, robust training accuracy).
This module imports only the training core (and the layers below training).
"""

from __future__ import annotations

import numpy as np

from .. import attacks
from .._kernels.polynomial import separable_weight_gradient
from .._kernels.relu_net import logistic
from .._validation import check_array, check_float, check_int, check_norm
from ..models import LinearClassifier, NTKClassifier, PolynomialClassifier
from ..models.linear import lbfgs
from ._core import History, TrainingDiverged, split_seed

__all__ = ["adversarial_logistic", "adversarial_separable", "adversarial_kernel",
           "adversarial_logistic_objective"]


def _check_linf(norm):
    p = check_norm(norm)
    if p != np.inf:
        raise ValueError(f"norm must be inf (the lower-bound checks' threat), got {norm!r}")
    return p


def adversarial_logistic_objective(w, b, X, y, eps, l2):
    """The exact linf adversarial logistic objective of a linear rule (w, b), a float.

    mean log(1 + exp(-(y (<w, x> + b) - eps ||w||_1))) + (l2/2) ||w||^2: the mean
    logistic loss at each point's worst case in the box (:func:`adversarial_logistic`).
    """
    m = y * (X @ w + b) - eps * np.abs(w).sum()
    return float(np.mean(np.logaddexp(0.0, -m)) + 0.5 * l2 * w @ w)


def _robust_history(config, records):
    return History(records=records, config=config)


def adversarial_logistic(model, X, y, eps, *, norm="inf", l2=1e-4, max_iter=2000, tol=1e-10):
    """Fit a :class:`~theorylab.models.LinearClassifier` to the exact linf adversarial loss.

    Parameters
    ----------
    model : LinearClassifier
        Fitted in place, starting from its current parameters.
    X, y : arrays (N, d), (N,) with labels in {-1, +1} (both classes)
    eps : float
        Radius >= 0 (0 is plain logistic regression).
    norm : {"inf"}
        Threat norm (only linf: the split below is its dual norm, l1).
    l2 : float, default 1e-4
        Ridge penalty on w (>= 0).
    max_iter : int, default 2000
    tol : float, default 1e-10
        Projected-gradient tolerance of L-BFGS-B.

    Returns
    -------
    History
        One record: ``loss`` (the objective), ``robust_accuracy`` (exact, on the
        training points), ``n_iter``, ``converged``, ``nnz`` (non-zero weights).
    """
    if not isinstance(model, LinearClassifier):
        raise ValueError(f"model must be a LinearClassifier, got {type(model).__name__}")
    _check_linf(norm)
    eps = check_float("eps", eps, 0.0)
    l2 = check_float("l2", l2, 0.0)
    max_iter = check_int("max_iter", max_iter, 1)
    tol = check_float("tol", tol, 0.0, low_open=True)
    X, y = model.check_Xy(X, y)
    if np.all(y == y[0]):
        raise ValueError("y must contain both classes -1 and +1")
    d, n = model.d, X.shape[0]
    ones = np.ones(n)

    def fun(theta):
        u, v, b = theta[:d], theta[d:2 * d], theta[-1]
        w = u - v
        margin = y * (X @ w + b) - eps * (u.sum() + v.sum())
        loss, s = logistic(margin, ones)  # s = d loss / d margin
        gy = X.T @ (s * y) / n
        shrink = -eps * s.mean()
        gw = gy + l2 * w
        grad = np.concatenate([gw + shrink, -gw + shrink, [np.mean(s * y)]])
        return loss.mean() + 0.5 * l2 * w @ w, grad

    theta0 = np.concatenate([np.maximum(model.w, 0), np.maximum(-model.w, 0), [model.b]])
    bounds = [(0.0, None)] * (2 * d) + [(None, None)]
    theta, info = lbfgs(fun, theta0, max_iter=max_iter, tol=tol, bounds=bounds)
    model.w = np.ascontiguousarray(theta[:d] - theta[d:2 * d])
    model.b = float(theta[-1])
    robust = float(np.mean(model.worst_case_margin(X, y, eps, np.inf, check_input=False) > 0))
    model.fit_info = {"solver": "adversarial-lbfgs-b", "eps": eps, "norm": "inf", "l2": l2,
                      **info}
    return _robust_history({"trainer": "adversarial_logistic", "eps": eps, "l2": l2}, [{
        "loss": info["objective"], "robust_accuracy": robust, "n_iter": info["n_iter"],
        "converged": info["converged"], "nnz": int(np.count_nonzero(model.w))}])


def adversarial_separable(model, X, y, eps, *, norm="inf", l2=1e-4, max_iter=500, tol=1e-9):
    """Fit a separable polynomial (M = I) to its exact linf adversarial logistic loss.

    The inner maximisation is exact (:meth:`PolynomialClassifier.worst_case_points`),
    recomputed at every evaluation of the objective; the outer problem is convex
    (module docstring) and solved by L-BFGS with Danskin's gradient, from the
    model's current coefficients.

    Parameters
    ----------
    model : PolynomialClassifier
        Separable form with M = I (``capabilities.exact`` has inf); fitted in place.
    X, y : arrays
    eps : float
    norm : {"inf"}
    l2 : float, default 1e-4
        Penalty (l2/2) ||C||_F^2.
    max_iter : int, default 500
    tol : float, default 1e-9

    Returns
    -------
    History
        One record: ``loss``, ``robust_accuracy`` (exact, training points), ``n_iter``,
        ``converged``.
    """
    if not isinstance(model, PolynomialClassifier) or np.inf not in model.capabilities.exact:
        raise ValueError("model must be a separable PolynomialClassifier with M = I")
    _check_linf(norm)
    eps = check_float("eps", eps, 0.0)
    l2 = check_float("l2", l2, 0.0)
    max_iter = check_int("max_iter", max_iter, 1)
    tol = check_float("tol", tol, 0.0, low_open=True)
    X, y = model.check_Xy(X, y)
    if np.all(y == y[0]):
        raise ValueError("y must contain both classes -1 and +1")
    shape, degrees = model.C.shape, model.degrees

    def fun(theta):
        model.set_coefficients(theta[:-1].reshape(shape), theta[-1])
        T = model.worst_case_points(X, y, eps, check_input=False)
        loss, slope = logistic(model.scores(T, check_input=False), y)
        C = model.C
        grad = separable_weight_gradient(T, slope, degrees) + l2 * C
        return loss.mean() + 0.5 * l2 * np.sum(C * C), np.append(grad.ravel(), slope.mean())

    theta, info = lbfgs(fun, np.append(model.C.ravel(), model.b), max_iter=max_iter, tol=tol)
    model.set_coefficients(theta[:-1].reshape(shape), theta[-1])
    robust = float(np.mean(model.worst_case_margin(X, y, eps, np.inf, check_input=False) > 0))
    model.fit_info = {"solver": "adversarial-lbfgs", "eps": eps, "norm": "inf", "l2": l2,
                      **info}
    return _robust_history({"trainer": "adversarial_separable", "eps": eps, "l2": l2}, [{
        "loss": info["objective"], "robust_accuracy": robust, "n_iter": info["n_iter"],
        "converged": info["converged"]}])


def _strongest(model, X, y, eps, p, names, world, rngs, steps):
    # Per point the perturbation with the highest loss over the attacks (each one's
    # witness is inside the ball by construction).
    best, best_loss = np.zeros_like(X), model.loss_and_input_gradient(X, y, check_input=False)[0]
    for name, rng in zip(names, rngs):
        spec = attacks.get(name)
        opts = {"steps": steps, "random_start": True} if name == "pgd" else (
            {"iters": steps} if name == "apgd" else {})
        delta = spec.run(model, X, y, eps, p, world=world, seed=rng, **spec.check_options(opts))
        loss = model.loss_and_input_gradient(X + delta, y, check_input=False)[0]
        better = loss > best_loss
        best[better], best_loss = delta[better], np.where(better, loss, best_loss)
    return best


def adversarial_kernel(model, X, y, eps, *, norm="inf", attack=("pgd",), world=None,
                       epochs=6, steps=10, inner_iter=10, l2=1e-4, seed=0):
    """Adversarial training of a kernel machine's trainable part, examples recomputed each epoch.

    Each epoch attacks the training points at the current parameters with every
    attack in ``attack`` (per point the strongest, by loss), then minimises the
    regularised logistic loss on those points by ``inner_iter`` L-BFGS steps,
    warm-started:

    * empirical (frozen-gate) NTK: the head V and the intercept, features
      g(x') (x) x' at the perturbed points (gates evaluated there, frozen at init),
      penalty (l2/2) ||V||_F^2;
    * analytic NTK and the polynomial-kernel machine: the dual coefficients alpha
      on the fixed support set S (the points of the clean fit) and the intercept,
      f(x') = b + sum_s alpha_s K(x', x_s), penalty (l2/2) alpha^T K_SS alpha /
      mean(diag K_SS).

    Parameters
    ----------
    model : NTKClassifier or PolynomialClassifier (kernel form), fitted
    X, y : arrays
        Training points (for the dual forms, usually the support set itself).
    eps : float
        Radius > 0.
    norm : {"inf"}
    attack : sequence of str, default ("pgd",)
        Registered attacks (:func:`theorylab.attacks.names`); "dense" needs ``world``.
        PGD starts at a random point of the ball.
    world : SparseCoding, optional
    epochs : int, default 6
        Refits; the attack runs ``epochs + 1`` times and the parameters that kept the
        most training points under their own attack are returned (the clean fit
        included, as epoch 0's starting point).
    steps : int, default 10
        PGD steps (APGD iterations).
    inner_iter : int, default 10
        L-BFGS iterations per epoch (few: a full refit on fixed perturbations
        overfits them).
    l2 : float, default 1e-4
    seed : int, SeedSequence or Generator
        The attacks' randomness (one child stream per epoch and attack).

    Returns
    -------
    History
        One record per epoch: ``epoch``, ``loss`` (regularised, on that epoch's
        perturbed points after the refit; NaN for the last, attack-only epoch),
        ``attacked_accuracy`` (training points surviving that epoch's attack
        before the refit).

    Raises
    ------
    TrainingDiverged
        If the objective stops being finite.
    """
    dual = (isinstance(model, NTKClassifier) and model.form == "analytic") or (
        isinstance(model, PolynomialClassifier) and model.form == "kernel")
    primal = isinstance(model, NTKClassifier) and model.form == "empirical"
    if not (dual or primal):
        raise ValueError("model must be an NTKClassifier or a kernel-form PolynomialClassifier, "
                         f"got {model!r}")
    p = _check_linf(norm)
    eps = check_float("eps", eps, 0.0, low_open=True)
    names = (attack,) if isinstance(attack, str) else tuple(attack)
    if not names:
        raise ValueError("attack must name at least one registered attack")
    for name in names:
        spec = attacks.get(name)
        spec.check_norm(p)
        if spec.needs_world and world is None:
            raise ValueError(f"attack {name!r} needs world")
    epochs = check_int("epochs", epochs, 1)
    steps = check_int("steps", steps, 1)
    inner_iter = check_int("inner_iter", inner_iter, 1)
    l2 = check_float("l2", l2, 0.0)
    X, y = model.check_Xy(X, y)
    n = X.shape[0]
    rngs = split_seed(seed, (epochs + 1) * len(names))
    if dual:
        S = model.X_train
        if S.shape[0] == 0:
            raise ValueError("model must be fitted (its support set is empty)")
        KSS = model.gram(S)
        scale = float(np.mean(np.diag(KSS)))
    history = History(config={"trainer": "adversarial_kernel", "eps": eps, "attack": list(names),
                              "epochs": epochs, "steps": steps, "inner_iter": inner_iter,
                              "l2": l2})
    def params():
        return ((model.alpha.copy() if dual else model.V.copy()), model.b)

    best, best_acc = None, -1.0
    for e in range(epochs + 1):
        with model.fixed_weights():
            delta = _strongest(model, X, y, eps, p, names, world,
                               rngs[e * len(names):(e + 1) * len(names)], steps)
        Xa = X + delta
        attacked = float(np.mean(model.correct(Xa, y, check_input=False)))
        # Keep the parameters that survived their own attack best (robust overfitting:
        # a refit on fixed perturbations can be broken by the next ones, Rice et al. 2020).
        if attacked > best_acc:
            best, best_acc = params(), attacked
        if e == epochs:
            history.records.append({"epoch": e, "loss": float("nan"),
                                    "attacked_accuracy": attacked, "n_iter": 0})
            break
        if dual:
            Phi = model.gram(Xa, S)

            def fun(theta, Phi=Phi):
                a = theta[:-1]
                loss, slope = logistic(Phi @ a + theta[-1], y)
                Ka = KSS @ a
                value = loss.mean() + 0.5 * l2 * (a @ Ka) / scale
                return value, np.append(Phi.T @ slope / n + l2 * Ka / scale, slope.mean())

            theta0 = np.append(model.alpha, model.b)
        else:
            G = model.features_gates(Xa)
            shape = model.V.shape

            def fun(theta, G=G, Xa=Xa):
                V = theta[:-1].reshape(shape)
                loss, slope = logistic(np.sum((Xa @ V.T) * G, axis=1) + theta[-1], y)
                grad = (G * slope[:, None]).T @ Xa / n + l2 * V
                return loss.mean() + 0.5 * l2 * np.sum(V * V), np.append(grad.ravel(),
                                                                          slope.mean())

            theta0 = np.append(model.V.ravel(), model.b)
        try:
            theta, info = lbfgs(fun, theta0, max_iter=inner_iter, tol=1e-9)
        except FloatingPointError as exc:
            raise TrainingDiverged(str(exc), e, history) from None
        if dual:
            model.alpha = check_array("alpha", theta[:-1], ndim=1, dtype=np.float64).copy()
        else:
            model.V = np.ascontiguousarray(theta[:-1].reshape(shape))
        model.b = float(theta[-1])
        history.records.append({"epoch": e, "loss": info["objective"],
                                "attacked_accuracy": attacked, "n_iter": info["n_iter"]})
    if dual:
        model.alpha = best[0]
    else:
        model.V = best[0]
    model.b = best[1]
    model.fit_info = {**model.fit_info, "adversarial": dict(history.config,
                                                            best_attacked_accuracy=best_acc)}
    return history
