"""Low-degree polynomial classifiers: the polynomial part of the lower bound.

Provenance: "low-degree polynomials cannot defend at the same radius" is the
paper's claim [C] (spec 3.1 item 4).  The degree-D failure radius
(sqrt(k)/d)^(1/D) of separable polynomials under the dense linf attack, and the
warning that with +-1 codes the l2 cubic is *not* separated from the network,
are derived here [D] (spec 3.3(v), V6).

Two forms of :class:`PolynomialClassifier`:

* ``"separable"``: f(x) = b + sum_j sum_{e in degrees} C[e, j] <M_j, x>^e, odd
  degrees e <= D in the dictionary basis.  Trained by logistic regression
  (:meth:`~PolynomialClassifier.fit`), or the oracle family sum_j w*_j q(<M_j, x>)
  (:meth:`~PolynomialClassifier.oracle`, default q(t) = t^D).  With M = I its
  linf worst case is exact (a sum of one-variable minima).
* ``"kernel"``: the full degree-D space through k(x, x') = (gamma <x, x'> + coef0)^D,
  f(x) = b + sum_n alpha_n k(x, x_n), by kernel ridge or kernel logistic
  regression; its input gradient is closed form.
"""

from __future__ import annotations

import numpy as np

from .._kernels import polynomial as _k
from .._kernels.relu_net import logistic
from .._validation import (check_array, check_choice, check_float, check_int, check_memory,
                           check_norm, check_protocol)
from ._base import BinaryModel, Capabilities, save_npz
from .linear import lbfgs
from .ntk import KERNEL_SOLVERS, fit_kernel

__all__ = ["PolynomialClassifier", "FORMS"]

FORMS = ("separable", "kernel")


def _check_degree(degree):
    degree = check_int("degree", degree, 1)
    if degree % 2 == 0:
        raise ValueError(f"degree must be odd (the label is an odd function), got {degree}")
    return degree


def _real_roots(coeffs):
    # Real roots of sum_i coeffs[i] t^i (np.roots wants the highest power first).
    c = np.trim_zeros(coeffs[::-1], "f")
    if c.size <= 1:
        return np.zeros(0)
    r = np.roots(c)
    return np.sort(r[np.abs(r.imag) <= 1e-9 * (1.0 + np.abs(r))].real)


class PolynomialClassifier(BinaryModel):
    """Degree-D polynomial classifier, separable (dictionary basis) or full (kernel).

    Build with :meth:`separable`, :meth:`oracle` or :meth:`kernel`; the
    constructor takes the raw parameters (used by ``load``).

    Parameters
    ----------
    d : int
    form : {"separable", "kernel"}
    degrees : sequence of odd int (separable)
        Powers present, increasing.
    C : ndarray (len(degrees), d), optional
        Coefficients (separable; zeros until fitted).
    M : ndarray (d, d), optional
        Orthonormal dictionary, atoms in columns (None: identity).
    degree, gamma, coef0 : kernel parameters (gamma > 0, coef0 >= 0).
    X_train, alpha : support set and dual coefficients (kernel).
    b : float
        Intercept.
    """

    kind = "PolynomialClassifier"

    def __init__(self, d, *, form="separable", degrees=(1, 3), C=None, M=None, degree=3,
                 gamma=1.0, coef0=1.0, X_train=None, alpha=None, b=0.0):
        self.d = check_int("d", d, 1)
        check_memory("d", (4, self.d), copies=2)
        self.dtype = np.float64
        self.form = check_choice("form", form, FORMS)
        self.b = check_float("b", b)
        self.fit_info, self.metadata = {}, {}
        if self.form == "separable":
            degs = [_check_degree(e) for e in np.atleast_1d(degrees).tolist()]
            if not degs or sorted(set(degs)) != degs:
                raise ValueError(f"degrees must be a non-empty increasing list, got {degrees}")
            self.degrees = np.array(degs, dtype=np.int64)
            shape = (len(degs), self.d)
            self.C = (np.zeros(shape) if C is None
                      else check_array("C", C, ndim=2, shape=shape, dtype=np.float64).copy())
            self.M = None
            if M is not None:
                M = check_array("M", M, ndim=2, shape=(self.d, self.d), dtype=np.float64)
                if not np.allclose(M.T @ M, np.eye(self.d), atol=1e-8):
                    raise ValueError("M must be orthonormal (M^T M = I)")
                self.M = None if np.array_equal(M, np.eye(self.d)) else M
            self._crit = None
        else:
            self.degree = _check_degree(degree)
            self.gamma = check_float("gamma", gamma, 0.0, low_open=True)
            self.coef0 = check_float("coef0", coef0, 0.0)
            self.X_train = (np.zeros((0, self.d)) if X_train is None else check_array(
                "X_train", X_train, ndim=2, shape=(None, self.d), dtype=np.float64))
            n = self.X_train.shape[0]
            self.alpha = (np.zeros(n) if alpha is None else check_array(
                "alpha", alpha, ndim=1, shape=(n,), dtype=np.float64, allow_empty=True))

    def weight_arrays(self):
        if self.form == "separable":
            return {"C": self.C, "b": np.float64(self.b)}
        return {"X_train": self.X_train, "alpha": self.alpha, "b": np.float64(self.b)}

    # -- constructors --------------------------------------------------------
    @classmethod
    def separable(cls, d, degree=3, *, dictionary=None):
        """Zero separable polynomial with every odd power 1, 3, ..., ``degree``."""
        degree = _check_degree(degree)
        return cls(d, degrees=tuple(range(1, degree + 1, 2)), M=dictionary)

    @classmethod
    def oracle(cls, world, degree=3, q=None):
        """The oracle family f(x) = sum_j w*_j q(<M_j, x>) (spec V6).

        Parameters
        ----------
        world : SparseCoding
        degree : odd int, default 3
            With ``q=None``, q(t) = t^degree.
        q : dict {odd power: coefficient}, optional
            Any odd polynomial q, e.g. ``{1: -0.5, 3: 1.5}``.
        """
        check_protocol("world", world, ("d", "w_star", "identity", "M"), "sparse-coding world")
        if q is None:
            q = {_check_degree(degree): 1.0}
        if not isinstance(q, dict) or not q:
            raise ValueError("q must be a non-empty dict {odd power: coefficient}")
        degs = sorted(_check_degree(e) for e in q)
        C = np.array([q[e] * world.w_star for e in degs])
        return cls(world.d, degrees=degs, C=C, M=None if world.identity else world.M)

    @classmethod
    def kernel(cls, d, degree=3, *, gamma=1.0, coef0=1.0):
        """Full degree-D polynomial kernel machine (fit it to set the support set)."""
        return cls(d, form="kernel", degree=degree, gamma=gamma, coef0=coef0)

    # -- training ----------------------------------------------------------
    def _coords(self, X):
        return X if self.M is None else np.ascontiguousarray(X @ self.M)

    def fit(self, X, y, *, solver=None, l2=1e-4, reg=1e-3, max_iter=500, tol=1e-8):
        """Fit by logistic regression (separable) or kernel regression (kernel).

        Parameters
        ----------
        solver : {"lbfgs"} for separable; {"ridge", "logistic"} for kernel
            (default "lbfgs" / "ridge").
        l2 : float, default 1e-4
            Separable: penalty (l2/2) ||C||_F^2 on the mean logistic loss.
        reg : float, default 1e-3
            Kernel: see :func:`theorylab.models.ntk.fit_kernel`.
        """
        l2 = check_float("l2", l2, 0.0)
        reg = check_float("reg", reg, 0.0)
        max_iter = check_int("max_iter", max_iter, 1)
        tol = check_float("tol", tol, 0.0, low_open=True)
        allowed = ("lbfgs",) if self.form == "separable" else KERNEL_SOLVERS
        solver = check_choice("solver", allowed[0] if solver is None else solver, allowed)
        X, y = self.check_Xy(X, y)
        if np.all(y == y[0]):
            raise ValueError("y must contain both classes -1 and +1")
        if self.form == "kernel":
            K = _k.poly_gram(X, X, self.degree, self.gamma, self.coef0)
            alpha, self.b, info = fit_kernel(K, y, solver=solver, reg=reg, max_iter=max_iter,
                                             tol=tol)
            self.X_train, self.alpha = X.copy(), np.ascontiguousarray(alpha)
            self.fit_info = {"solver": solver, "reg": reg, "n_train": int(X.shape[0]), **info}
            return self
        T = self._coords(X)
        shape = self.C.shape

        def fun(theta):
            C = theta[:-1].reshape(shape)
            loss, slope = logistic(_k.separable_scores(T, C, self.degrees, theta[-1]), y)
            grad = _k.separable_weight_gradient(T, slope, self.degrees) + l2 * C
            value = loss.mean() + 0.5 * l2 * np.sum(C * C)
            return value, np.append(grad.ravel(), slope.mean())

        theta, info = lbfgs(fun, np.append(self.C.ravel(), self.b), max_iter=max_iter, tol=tol)
        self.C = np.ascontiguousarray(theta[:-1].reshape(shape))
        self.b, self._crit = float(theta[-1]), None  # critical points depend on C
        self.fit_info = {"solver": solver, "l2": l2, **info}
        return self

    # -- evaluation on validated arrays --------------------------------------
    def _scores_grad(self, X, with_grad, scale=None):
        if self.form == "kernel":
            f, G = _k.poly_predict(X, self.X_train, self.alpha, self.degree, self.gamma,
                                   self.coef0, self.b, with_grad)
            return f, (G * scale[:, None] if with_grad else None)
        T = self._coords(X)
        f = _k.separable_scores(T, self.C, self.degrees, self.b)
        if not with_grad:
            return f, None
        D = _k.separable_slopes(T, self.C, self.degrees, scale)
        return f, (D if self.M is None else D @ self.M.T)

    def _scores(self, X):
        return self._scores_grad(X, False)[0]

    def _loss_grad(self, X, y):
        if self.form == "kernel":  # scores and d f/dx in one pass over the support set
            f, G = self._scores_grad(X, True, np.ones(X.shape[0]))
            loss, slope = logistic(f, y)
            return loss, G * slope[:, None]
        loss, slope = logistic(self._scores(X), y)
        return loss, self._scores_grad(X, True, slope)[1]

    def _score_grad(self, X):
        return self._scores_grad(X, True, np.ones(X.shape[0]))

    def input_gradient_of_score(self, X):
        """d f / d x for each row of ``X`` (the score's gradient, not the loss's)."""
        return self._score_grad(self.check_X(X))[1]

    @property
    def capabilities(self):
        """Exact linf worst case for the separable form with M = I (see :meth:`worst_case_margin`)."""
        exact = {np.inf} if self.form == "separable" and self.M is None else set()
        return Capabilities(exact=exact)

    # -- the exact linf attack (separable, M = I) -------------------------------
    def _critical_points(self):
        if self._crit is None and self.degrees.tolist() == [1, 3]:
            # The cubic, vectorised (adversarial training recomputes this at every step):
            # q' = C1 + 3 C3 t^2 has the real roots +-sqrt(-C1 / (3 C3)) when that is >= 0.
            c1, c3 = self.C
            with np.errstate(divide="ignore", invalid="ignore"):
                s = np.where(c3 != 0, -c1 / (3.0 * np.where(c3 != 0, c3, 1.0)), -1.0)
            real = s >= 0
            r = np.sqrt(np.where(real, s, 0.0))
            self._crit = (np.stack([-r, r], axis=1), np.where(real, 2, 0).astype(np.int64))
        if self._crit is None:
            cols = {}
            roots = []
            for j in range(self.d):
                key = self.C[:, j].tobytes()
                if key not in cols:  # the oracle has only two distinct columns
                    deriv = np.zeros(self.degrees.max())
                    deriv[self.degrees - 1] = self.degrees * self.C[:, j]
                    cols[key] = _real_roots(deriv)
                roots.append(cols[key])
            width = max(1, max(r.size for r in roots))
            crit = np.zeros((self.d, width))
            for j, r in enumerate(roots):
                crit[j, :r.size] = r
            self._crit = (crit, np.array([r.size for r in roots], dtype=np.int64))
        return self._crit

    def worst_case_margin(self, X, y, eps, p, *, check_input=True):
        """Exact linf worst-case margins of a separable polynomial with M = I.

        The worst case over the box |delta_j| <= eps is the sum of
        per-coordinate minima, each at an end of the interval or at a critical
        point, so this is exact, not an attack.  Other norms, dictionaries or
        the kernel form raise ``ValueError`` (``capabilities.exact`` is empty there).
        """
        p = check_norm(p)
        eps = check_float("eps", eps, 0.0)
        if p not in self.capabilities.exact:
            raise ValueError("exact worst case: only separable polynomials with M = I against "
                             f"linf (form={self.form!r}, norm={p})")
        if check_input:
            X, y = self.check_Xy(X, y)
        crit, ncrit = self._critical_points()
        return _k.separable_worst_margins(X, y, self.C, self.degrees, self.b, crit, ncrit, eps)

    def set_coefficients(self, C, b):
        """Replace the separable coefficients and intercept (validated; caches reset)."""
        if self.form != "separable":
            raise ValueError(f"set_coefficients needs form='separable', got {self.form!r}")
        self.C = check_array("C", C, ndim=2, shape=self.C.shape, dtype=np.float64).copy()
        self.b, self._crit = check_float("b", b), None
        return self

    def worst_case_points(self, X, y, eps, *, check_input=True):
        """The points x + delta of the linf box where y f is smallest (separable, M = I).

        ``y f`` there equals :meth:`worst_case_margin` (the same candidates per
        coordinate): the exact inner maximisation of adversarial training.
        """
        eps = check_float("eps", eps, 0.0)
        if np.inf not in self.capabilities.exact:
            raise ValueError("worst_case_points: only separable polynomials with M = I "
                             f"(form={self.form!r})")
        if check_input:
            X, y = self.check_Xy(X, y)
        crit, ncrit = self._critical_points()
        return _k.separable_worst_points(X, y, self.C, self.degrees, crit, ncrit, eps)

    def gram(self, X, Y=None):
        """The kernel matrix (gamma <x, x'> + coef0)^D of the kernel form (Y defaults to X)."""
        if self.form != "kernel":
            raise ValueError(f"gram needs form='kernel', got {self.form!r}")
        X = self.check_X(X)
        Y = X if Y is None else self.check_X(Y, "Y")
        return _k.poly_gram(X, Y, self.degree, self.gamma, self.coef0)

    # -- persistence -------------------------------------------------------
    def save(self, path):
        """Write to ``path`` (.npz).

        Entries: ``kind`` ("PolynomialClassifier"), ``b``; separable: ``degrees``,
        ``C`` (E, d), ``M`` (d, d; empty for the identity); kernel: ``X_train``,
        ``alpha``.  JSON ``metadata``: ``form``, ``degree``, ``gamma``, ``coef0``,
        ``fit_info``, user metadata.
        """
        meta = {"form": self.form, "fit_info": self.fit_info, "user": self.metadata}
        arrays = {"b": np.float64(self.b)}
        if self.form == "separable":
            arrays.update(degrees=self.degrees, C=self.C,
                          M=np.zeros((0, 0)) if self.M is None else self.M)
        else:
            arrays.update(X_train=self.X_train, alpha=self.alpha)
            meta.update(degree=self.degree, gamma=self.gamma, coef0=self.coef0)
        save_npz(path, self.kind, arrays, meta)

    @classmethod
    def _from_npz(cls, data, meta):
        # Every entry validated before use: a malformed file is a ValueError naming it.
        from .io import npz_array, npz_meta, npz_scalar

        form = npz_meta(meta, "form", types=str)
        if form not in FORMS:
            raise ValueError(f"metadata 'form' must be one of {list(FORMS)}, got {form!r}")
        b = npz_scalar(data, "b")
        if form == "separable":
            C = npz_array(data, "C", ndim=2, dtype=np.float64)
            if "degrees" not in data:
                raise ValueError("missing entry 'degrees'")
            degrees = np.asarray(data["degrees"])
            if degrees.dtype.kind not in "iu" or degrees.shape != (C.shape[0],):
                raise ValueError(f"entry 'degrees' must be {C.shape[0]} integers (one per row "
                                 f"of C), got dtype {degrees.dtype} and shape {degrees.shape}")
            M = npz_array(data, "M", ndim=2, dtype=np.float64, allow_empty=True, default=None)
            M = None if M is not None and M.size == 0 else M
            if M is not None and M.shape != (C.shape[1],) * 2:
                raise ValueError(f"entry 'M' must have shape {(C.shape[1],) * 2} (or be "
                                 f"empty), got {M.shape}")
            model = cls(C.shape[1], degrees=degrees, C=C, M=M, b=b)
        else:
            X_train = npz_array(data, "X_train", ndim=2, dtype=np.float64, allow_empty=True)
            alpha = npz_array(data, "alpha", ndim=1, shape=(X_train.shape[0],),
                              dtype=np.float64, allow_empty=True)
            model = cls(X_train.shape[1], form="kernel",
                        degree=npz_meta(meta, "degree", types=int),
                        gamma=npz_meta(meta, "gamma", types=(int, float)),
                        coef0=npz_meta(meta, "coef0", types=(int, float)),
                        X_train=X_train if X_train.size else None, alpha=alpha, b=b)
        model.fit_info = npz_meta(meta, "fit_info", types=dict, default={})
        model.metadata = meta.get("user", {})
        return model

    def __repr__(self):
        if self.form == "separable":
            return f"PolynomialClassifier(separable, d={self.d}, degrees={self.degrees.tolist()})"
        return (f"PolynomialClassifier(kernel, d={self.d}, degree={self.degree}, "
                f"n_train={self.X_train.shape[0]})")
