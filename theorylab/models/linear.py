"""Linear classifiers sign(<w, x> + b): the simplest low-complexity baseline.

Provenance: "linear classifiers cannot defend at the same radius" is the
paper's claim [C] (spec section 3.1 item 4); the bound that quantifies it in our
reconstruction, robust acc <= (k + sigma^2) / (d tau^2) in l2, is derived here [D]
(spec 3.3(ii), :func:`theorylab.theory.linear_robust_bound`).

A linear model's worst case inside a p-ball is known in closed form,

    min_{||delta||_p <= eps} y (<w, x + delta> + b) = y (<w, x> + b) - eps ||w||_q,

with q the dual exponent, so its robust accuracy is *certified* (exact), not
estimated by an attack: :meth:`LinearClassifier.worst_case_margin` (declared in
``capabilities.exact``), which :mod:`theorylab.verify` and the evaluation use.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

from .._kernels import linear as _k
from .._validation import (check_array, check_choice, check_float, check_int, check_memory,
                           check_norm, check_protocol)
from ._base import BinaryModel, Capabilities, save_npz

__all__ = ["LinearClassifier", "dual_norm", "lbfgs"]

SOLVERS = ("lbfgs", "gd")


def dual_norm(w, p):
    """||w||_q for the exponent q dual to ``p`` (2 -> 2, inf -> 1, 1 -> inf)."""
    w = np.asarray(w, dtype=np.float64).ravel()
    if p == 2.0:
        s = np.abs(w).max() if w.size else 0.0
        return 0.0 if s == 0 else float(s * np.linalg.norm(w / s))  # no under/overflow
    if p == np.inf:
        return float(np.abs(w).sum())
    return float(np.abs(w).max()) if w.size else 0.0


def lbfgs(fun, x0, *, max_iter, tol, bounds=None):
    """Minimise ``fun(x) -> (value, grad)`` with SciPy's L-BFGS-B (``bounds``: optional box).

    Raises ``FloatingPointError`` if the objective stops being finite (never
    returns NaN parameters silently).

    Returns
    -------
    x : ndarray
    info : dict
        ``n_iter``, ``converged``, ``objective``, ``message``.
    """
    def wrapped(x):
        value, grad = fun(x)
        if not (np.isfinite(value) and np.isfinite(grad).all()):
            raise FloatingPointError(f"objective became non-finite ({value}); "
                                     "increase the regularisation")
        return value, grad

    res = scipy.optimize.minimize(wrapped, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                  options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15})
    return res.x, {"n_iter": int(res.nit), "converged": bool(res.success),
                   "objective": float(res.fun), "message": str(res.message)}


def _lipschitz(X):
    # Largest eigenvalue of [X 1]^T [X 1] / N by 50 power iterations from a fixed
    # start (deterministic); 10% margin because power iteration approaches from below.
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    v = np.ones(A.shape[1]) / np.sqrt(A.shape[1])
    lam = 0.0
    for _ in range(50):
        u = A.T @ (A @ v) / X.shape[0]
        lam = float(np.linalg.norm(u))
        if lam == 0:
            return 1.0
        v = u / lam
    return 1.1 * lam


class LinearClassifier(BinaryModel):
    """f(x) = <w, x> + b with the logistic loss.

    Parameters
    ----------
    d : int
        Input dimension.
    w : ndarray of shape (d,), optional
        Weights (default zeros: train with :meth:`fit`).
    b : float, default 0.0
        Intercept.

    Attributes
    ----------
    w, b : the parameters.
    fit_info : dict
        What the last :meth:`fit` reported (iterations, convergence, objective).
    """

    kind = "LinearClassifier"
    capabilities = Capabilities(exact={2.0, np.inf, 1.0})

    def __init__(self, d, *, w=None, b=0.0):
        self.d = check_int("d", d, 1)
        check_memory("d", (self.d,), copies=2)
        self.dtype = np.float64
        self.w = (np.zeros(self.d) if w is None
                  else check_array("w", w, ndim=1, shape=(self.d,), dtype=np.float64).copy())
        self.b = check_float("b", b)
        self.fit_info = {}
        self.metadata = {}

    def weight_arrays(self):
        return {"w": self.w, "b": np.float64(self.b)}

    @classmethod
    def oracle(cls, world):
        """The Bayes-direction rule w = M w*, b = 0 (spec 3.3(ii)): the best-aligned linear rule."""
        check_protocol("world", world, ("d", "label_direction"), "sparse-coding world")
        return cls(world.d, w=world.label_direction)

    # -- training ----------------------------------------------------------
    def fit(self, X, y, *, l2=1e-4, solver="lbfgs", max_iter=500, tol=1e-8):
        """Logistic regression from the current parameters.

        Minimises (1/N) sum_n log(1 + exp(-y_n f(x_n))) + (l2/2) ||w||^2.
        With separable data (as +-1 codes are) ``l2 > 0`` keeps the minimiser finite.

        Parameters
        ----------
        X : ndarray of shape (N, d)
        y : ndarray of shape (N,), labels in {-1, +1} (both classes present)
        l2 : float, default 1e-4
            Ridge penalty on w (>= 0).
        solver : {"lbfgs", "gd"}
            SciPy L-BFGS-B, or full-batch gradient descent with step 1/L.
        max_iter : int, default 500
        tol : float, default 1e-8
            Gradient tolerance (sup norm for L-BFGS, l2 norm for GD).

        Returns
        -------
        self
        """
        l2 = check_float("l2", l2, 0.0)
        check_choice("solver", solver, SOLVERS)
        max_iter = check_int("max_iter", max_iter, 1)
        tol = check_float("tol", tol, 0.0, low_open=True)
        X, y = self.check_Xy(X, y)
        if np.all(y == y[0]):
            raise ValueError("y must contain both classes -1 and +1")

        def fun(theta):
            value, gw, gb = _k.objective(X, y, theta[:-1], theta[-1], l2)
            return value, np.append(gw, gb)

        theta0 = np.append(self.w, self.b)
        if solver == "lbfgs":
            theta, info = lbfgs(fun, theta0, max_iter=max_iter, tol=tol)
        else:
            theta, info = self._gd(fun, theta0, 1.0 / (0.25 * _lipschitz(X) + l2), max_iter, tol)
        self.w, self.b = np.ascontiguousarray(theta[:-1]), float(theta[-1])
        self.fit_info = {"solver": solver, "l2": l2, **info}
        return self

    @staticmethod
    def _gd(fun, theta, step, max_iter, tol):
        value, grad = fun(theta)
        it = 0
        for it in range(1, max_iter + 1):
            theta = theta - step * grad
            value, grad = fun(theta)
            if not np.isfinite(value):
                raise FloatingPointError(f"gradient descent diverged at iteration {it}")
            if np.linalg.norm(grad) <= tol:
                break
        return theta, {"n_iter": it, "converged": bool(np.linalg.norm(grad) <= tol),
                       "objective": float(value), "message": f"step {step:.3g}"}

    # -- evaluation on validated arrays --------------------------------------
    def _scores(self, X):
        return _k.scores(X, self.w, self.b)

    def _loss_grad(self, X, y):
        return _k.loss_and_input_gradient(X, y, self.w, self.b)

    def _score_grad(self, X):
        return self._scores(X), np.broadcast_to(self.w, X.shape).copy()

    # -- the exact worst case ----------------------------------------------------
    def worst_case_margin(self, X, y, eps, p, *, check_input=True):
        """min_{||delta||_p <= eps} y f(x + delta) = y f(x) - eps ||w||_q, exactly.

        A point is robust at radius eps exactly where this is > 0.
        """
        if check_input:
            p = check_norm(p)
            eps = check_float("eps", eps, 0.0)
            X, y = self.check_Xy(X, y)
        return y * self._scores(X) - eps * dual_norm(self.w, p)

    def robust_margins(self, X, y, eps, norm):
        """Worst-case margins (validated): :meth:`worst_case_margin`."""
        return self.worst_case_margin(X, y, eps, norm)

    def worst_perturbation(self, y, eps, norm):
        """The minimiser delta of y f(x + delta) in the ball (it does not depend on x).

        l2: -y eps w/||w||; linf: -y eps sign(w); l1: -y eps e_j at j = argmax |w_j|.
        """
        p = check_norm(norm)
        eps = check_float("eps", eps, 0.0)
        y = np.asarray(y, dtype=np.float64)
        if p == 2.0:
            n = dual_norm(self.w, 2.0)
            u = self.w / n if n > 0 else np.zeros(self.d)
        elif p == np.inf:
            u = np.sign(self.w)
        else:
            u = np.zeros(self.d)
            j = int(np.abs(self.w).argmax())
            u[j] = np.sign(self.w[j])
        return -eps * y[:, None] * u[None, :]

    # -- persistence -------------------------------------------------------
    def save(self, path):
        """Write to ``path`` (.npz): ``kind``, ``w`` (d,), ``b`` (scalar), JSON ``metadata``."""
        save_npz(path, self.kind, {"w": self.w, "b": np.float64(self.b)},
                 {"fit_info": self.fit_info, "user": self.metadata})

    @classmethod
    def _from_npz(cls, data, meta):
        # Every entry validated before use: a malformed file is a ValueError naming it.
        from .io import npz_array, npz_meta, npz_scalar

        w = npz_array(data, "w", ndim=1, dtype=np.float64)
        model = cls(w.shape[0], w=w, b=npz_scalar(data, "b"))
        model.fit_info = npz_meta(meta, "fit_info", types=dict, default={})
        model.metadata = meta.get("user", {})
        return model

    def copy(self):
        new = LinearClassifier(self.d, w=self.w, b=self.b)
        new.fit_info, new.metadata = dict(self.fit_info), dict(self.metadata)
        return new

    def __repr__(self):
        return f"LinearClassifier(d={self.d}, ||w||={dual_norm(self.w, 2.0):.3g}, b={self.b:.3g})"
