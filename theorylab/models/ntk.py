"""Neural-tangent baselines: the network linearised around its random init.

Provenance: "the NTK of this network cannot defend at the same radius" is the
paper's claim [C] (spec 3.1 item 4); the frozen-gate form and the expectation
that it behaves like a linear classifier locally are derived here [D] (spec
3.3(vi), V7).

``form="empirical"``: the NTK of :class:`~theorylab.models.TwoLayerReLU` at its
initialisation W0 with the gates frozen, phi(x) = x (x) g(x), g_i(x) =
1{|<w0_i, x>| > b_i} (thresholds by the network's rule at coefficient c), and a
trained linear head V (m, d):

    f(x) = b + sum_i g_i(x) <v_i, x>.

The output of the network at init (O(sqrt(k) sigma_0), tiny) is dropped, so the
head carries the whole function.  ``gate="relu"`` uses one-sided gates
1{<w0_i, x> > 0} (a plain ReLU net) whose infinite-width limit is the analytic
kernel below; the two-sided threshold gate has no closed-form limit.

``form="analytic"``: the infinite-width NTK of the one-sided ReLU net, the
arc-cosine form K(x, x') = <x, x'> (pi - theta)/(2 pi), with kernel regression,
f(x) = b + sum_n alpha_n K(x, x_n).

Training solves the kernel problem in the dual (Gram matrix in row blocks,
Cholesky with jitter, eigendecomposition as the fallback, condition number
reported); the empirical head is then V = (1/m) G^T diag(alpha) X exactly.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .._kernels import ntk as _k
from .._kernels.relu_net import logistic
from .._validation import check_array, check_choice, check_float, check_int
from ._base import BinaryModel, Capabilities, save_npz
from .linear import lbfgs

__all__ = ["NTKClassifier", "solve_psd", "GATES", "KERNEL_SOLVERS"]

GATES = ("threshold", "relu")
KERNEL_SOLVERS = ("ridge", "logistic")


def _norm1_symmetric(K, block=1024):
    # ||K||_1 = max row sum of |K| for symmetric K, by row blocks (no N x N temporary).
    return max(float(np.abs(K[i:i + block]).sum(axis=1).max())
               for i in range(0, K.shape[0], block))


def solve_psd(K, rhs, *, reg=0.0):
    """Solve (K + reg * mean(diag K) I) alpha = rhs for a symmetric PSD ``K``.

    Cholesky first; if it fails, retry with a jitter of 1e-12, 1e-10, 1e-8 times
    the mean diagonal; if all fail, an eigendecomposition with eigenvalues below
    1e-12 * max clipped (a pseudo-inverse).  Memory: ``K`` and one working copy
    (2 N^2 doubles; 6.4 GB at N = 20000), plus the eigenvectors in the fallback.

    Returns
    -------
    alpha : ndarray
    info : dict
        ``method`` ("cholesky" or "eigh"), ``jitter`` (relative), ``condition``
        (LAPACK's 1-norm estimate after Cholesky, exact lambda_max / lambda_min
        after eigh; inf for a singular matrix).
    """
    K = np.asarray(K, dtype=np.float64)
    if not np.isfinite(np.sum(K)):  # any NaN or inf makes the sum non-finite
        raise ValueError("K contains NaN or infinite values")
    n = K.shape[0]
    diag = np.einsum("ii->i", K)
    scale = float(np.mean(diag))
    if scale <= 0:
        raise ValueError("K must have a positive mean diagonal")
    norm1 = _norm1_symmetric(K)
    A = np.empty_like(K)
    for jitter in (0.0, 1e-12, 1e-10, 1e-8):
        shift = (reg + jitter) * scale
        np.copyto(A, K)
        np.einsum("ii->i", A)[:] += shift  # the diagonal view: no identity matrix
        try:
            c, low = scipy.linalg.cho_factor(A, lower=True, overwrite_a=True,
                                             check_finite=False)
        except np.linalg.LinAlgError:
            continue
        # K is PSD with a non-negative diagonal, so ||K + shift I||_1 = ||K||_1 + shift.
        rcond, _ = scipy.linalg.lapack.dpocon(c, norm1 + shift, uplo="L")
        alpha = scipy.linalg.cho_solve((c, low), rhs, check_finite=False)
        return alpha, {"method": "cholesky", "jitter": jitter,
                       "condition": float(1.0 / rcond) if rcond > 0 else float("inf")}
    np.copyto(A, K)
    np.einsum("ii->i", A)[:] += reg * scale
    lam, U = np.linalg.eigh(A)
    del A
    keep = lam > 1e-12 * lam.max()
    coef = U[:, keep].T @ rhs
    coef = coef / (lam[keep, None] if np.ndim(rhs) == 2 else lam[keep])
    cond = float(lam.max() / lam.min()) if lam.min() > 0 else float("inf")
    return U[:, keep] @ coef, {"method": "eigh", "jitter": None, "condition": cond}


def fit_kernel(K, y, *, solver, reg, max_iter, tol):
    """Dual coefficients of kernel ridge (b = 0) or kernel logistic regression.

    ridge: alpha = (K + reg mean(diag K) I)^-1 y.  logistic: minimise
    (1/N) sum_n log(1 + exp(-y_n ((K alpha)_n + b))) + (reg/2) alpha^T K alpha.
    """
    if solver == "ridge":
        alpha, info = solve_psd(K, y, reg=reg)
        return alpha, 0.0, info
    n = K.shape[0]

    def fun(theta):
        Ka = K @ theta[:-1]
        loss, slope = logistic(Ka + theta[-1], y)
        value = loss.mean() + 0.5 * reg * theta[:-1] @ Ka
        return value, np.append(K @ (slope / n + reg * theta[:-1]), slope.mean())

    theta, info = lbfgs(fun, np.zeros(n + 1), max_iter=max_iter, tol=tol)
    return theta[:-1], float(theta[-1]), {"method": "lbfgs", **info}


class NTKClassifier(BinaryModel):
    """Neural-tangent classifier, empirical (finite width) or analytic (infinite width).

    Build it with :meth:`empirical`, :meth:`from_network` or :meth:`analytic`,
    then :meth:`fit`.  The constructor takes the raw parameters (used by ``load``).

    Parameters
    ----------
    d : int
    form : {"empirical", "analytic"}
    W0 : ndarray (m, d), b0 : ndarray (m,), two_sided : bool
        Frozen gates of the empirical form.
    V : ndarray (m, d), optional
        Linear head (zeros until fitted).
    X_train : ndarray (N, d), alpha : ndarray (N,)
        Support set and dual coefficients of the analytic form.
    b : float
        Intercept.
    """

    kind = "NTKClassifier"

    def __init__(self, d, *, form="empirical", W0=None, b0=None, two_sided=True, V=None,
                 X_train=None, alpha=None, b=0.0):
        self.d = check_int("d", d, 1)
        self.dtype = np.float64
        self.form = check_choice("form", form, ("empirical", "analytic"))
        self.b = check_float("b", b)
        self.fit_info, self.metadata = {}, {}
        if self.form == "empirical":
            if W0 is None or b0 is None:
                raise ValueError("W0 and b0 are required with form='empirical'")
            self.W0 = check_array("W0", W0, ndim=2, shape=(None, self.d), dtype=np.float64)
            self.m = self.W0.shape[0]
            self.b0 = check_array("b0", b0, ndim=1, shape=(self.m,), dtype=np.float64)
            self.two_sided = bool(two_sided)
            self.V = (np.zeros((self.m, self.d)) if V is None else
                      check_array("V", V, ndim=2, shape=(self.m, self.d), dtype=np.float64))
        else:
            self.X_train = (np.zeros((0, self.d)) if X_train is None else check_array(
                "X_train", X_train, ndim=2, shape=(None, self.d), dtype=np.float64))
            n = self.X_train.shape[0]
            self.alpha = (np.zeros(n) if alpha is None else check_array(
                "alpha", alpha, ndim=1, shape=(n,), dtype=np.float64, allow_empty=True))
            self._ntr = _k.row_norms(self.X_train)

    def weight_arrays(self):
        if self.form == "empirical":
            return {"W0": self.W0, "b0": self.b0, "V": self.V, "b": np.float64(self.b)}
        return {"X_train": self.X_train, "alpha": self.alpha, "b": np.float64(self.b)}

    # -- constructors --------------------------------------------------------
    @classmethod
    def empirical(cls, d, m, *, gate="threshold", c=0.5, init_scale=None, seed=0,
                  dictionary=None):
        """Frozen-gate NTK of a fresh ``TwoLayerReLU(d, m, threshold="max", c=c, seed=seed)``.

        ``gate="relu"`` keeps the same init W0 but uses one-sided gates at 0.
        """
        from .two_layer import TwoLayerReLU
        check_choice("gate", gate, GATES)
        net = TwoLayerReLU(d, m, threshold="max", c=c, init_scale=init_scale, seed=seed,
                           dictionary=dictionary)
        if gate == "relu":
            return cls(d, W0=net.W_init, b0=np.zeros(net.m), two_sided=False)
        return cls.from_network(net)

    @classmethod
    def from_network(cls, net, c=None):
        """Frozen-gate NTK at ``net.W_init`` with its threshold rule at coefficient ``c``."""
        init = net.copy()
        init.W = init.W_init.copy()
        return cls(net.d, W0=init.W, b0=init.thresholds(c), two_sided=True)

    @classmethod
    def analytic(cls, d):
        """Infinite-width arc-cosine NTK (fit it to set the support set)."""
        return cls(d, form="analytic")

    # -- kernels ---------------------------------------------------------------
    def features_gates(self, X):
        """Frozen gate pattern g(x) for the rows of ``X``, shape (N, m) (empirical form)."""
        if self.form != "empirical":
            raise ValueError("features_gates needs form='empirical'")
        return _k.gates(self.check_X(X), self.W0, self.b0, self.two_sided)

    def gram(self, X, Y=None):
        """The kernel matrix K(X, Y) (Y defaults to X)."""
        X = self.check_X(X)
        Y = X if Y is None else self.check_X(Y, "Y")
        if self.form == "empirical":
            GX = _k.gates(X, self.W0, self.b0, self.two_sided)
            GY = GX if Y is X else _k.gates(Y, self.W0, self.b0, self.two_sided)
            return _k.empirical_gram(X, GX, Y, GY)
        nX = _k.row_norms(X)
        return _k.arccos_gram(X, Y, nX, nX if Y is X else _k.row_norms(Y))

    def fit(self, X, y, *, solver="ridge", reg=1e-3, max_iter=300, tol=1e-6):
        """Fit the head (empirical) or the dual coefficients (analytic).

        Parameters
        ----------
        solver : {"ridge", "logistic"}
            Kernel ridge regression on the +-1 labels (closed form, b = 0) or
            kernel logistic regression (L-BFGS on the dual, free intercept).
        reg : float, default 1e-3
            Ridge: relative to the mean diagonal of K.  Logistic: weight of
            (1/2) alpha^T K alpha.
        """
        check_choice("solver", solver, KERNEL_SOLVERS)
        reg = check_float("reg", reg, 0.0)
        max_iter = check_int("max_iter", max_iter, 1)
        tol = check_float("tol", tol, 0.0, low_open=True)
        X, y = self.check_Xy(X, y)
        if np.all(y == y[0]):
            raise ValueError("y must contain both classes -1 and +1")
        if self.form == "empirical":
            G = _k.gates(X, self.W0, self.b0, self.two_sided)
            K = _k.empirical_gram(X, G, X, G)
        else:
            nX = _k.row_norms(X)
            K = _k.arccos_gram(X, X, nX, nX)
        alpha, self.b, info = fit_kernel(K, y, solver=solver, reg=reg, max_iter=max_iter,
                                         tol=tol)
        alpha = np.ascontiguousarray(alpha)
        if self.form == "empirical":
            self.V = _k.head_from_dual(X, G, alpha)
        else:
            self.X_train, self.alpha, self._ntr = X.copy(), alpha, nX
        self.fit_info = {"solver": solver, "reg": reg, "n_train": int(X.shape[0]), **info}
        return self

    # -- evaluation on validated arrays ------------------------------------------
    def _scores_grad(self, X, with_grad):
        if self.form == "empirical":
            G = _k.gates(X, self.W0, self.b0, self.two_sided)
            f = _k.head_scores(X, G, self.V, self.b)
            # Gates are locally constant almost everywhere: d f / d x = G V.
            return f, (G @ self.V if with_grad else None)
        f, grad = _k.arccos_predict(X, _k.row_norms(X), self.X_train, self._ntr, self.alpha,
                                    self.b, with_grad)
        return f, (grad if with_grad else None)

    def _scores(self, X):
        return self._scores_grad(X, False)[0]

    def _score_grad(self, X):
        return self._scores_grad(X, True)

    @property
    def capabilities(self):
        """The frozen-gate form is piecewise linear: a sound bound in l2 and linf."""
        return Capabilities(certify={2.0, np.inf} if self.form == "empirical" else set())

    def _loss_grad(self, X, y):
        f, grad = self._scores_grad(X, True)
        loss, slope = logistic(f, y)
        return loss, slope[:, None] * grad

    # -- persistence -------------------------------------------------------
    def save(self, path):
        """Write to ``path`` (.npz).

        Entries: ``kind`` ("NTKClassifier"), ``b``; empirical: ``W0`` (m, d),
        ``b0`` (m,), ``V`` (m, d); analytic: ``X_train`` (N, d), ``alpha`` (N,).
        JSON ``metadata``: ``form``, ``two_sided``, ``fit_info``, user metadata.
        """
        arrays = {"b": np.float64(self.b)}
        if self.form == "empirical":
            arrays.update(W0=self.W0, b0=self.b0, V=self.V)
        else:
            arrays.update(X_train=self.X_train, alpha=self.alpha)
        save_npz(path, self.kind, arrays, {
            "form": self.form, "two_sided": getattr(self, "two_sided", None),
            "fit_info": self.fit_info, "user": self.metadata})

    @classmethod
    def _from_npz(cls, data, meta):
        # Every entry validated before use: a malformed file is a ValueError naming it.
        from .io import npz_array, npz_meta, npz_scalar

        form = npz_meta(meta, "form", types=str)
        if form not in ("empirical", "analytic"):
            raise ValueError(f"metadata 'form' must be 'empirical' or 'analytic', got {form!r}")
        b = npz_scalar(data, "b")
        if form == "empirical":
            W0 = npz_array(data, "W0", ndim=2, dtype=np.float64)
            m, d = W0.shape
            b0 = npz_array(data, "b0", ndim=1, shape=(m,), dtype=np.float64)
            V = npz_array(data, "V", ndim=2, shape=(m, d), dtype=np.float64)
            model = cls(d, W0=W0, b0=b0, V=V, two_sided=npz_meta(meta, "two_sided", types=bool),
                        b=b)
        else:
            X_train = npz_array(data, "X_train", ndim=2, dtype=np.float64, allow_empty=True)
            alpha = npz_array(data, "alpha", ndim=1, shape=(X_train.shape[0],),
                              dtype=np.float64, allow_empty=True)
            model = cls(X_train.shape[1], form="analytic",
                        X_train=X_train if X_train.size else None, alpha=alpha, b=b)
        model.fit_info = npz_meta(meta, "fit_info", types=dict, default={})
        model.metadata = meta.get("user", {})
        return model

    def __repr__(self):
        if self.form == "empirical":
            gate = "threshold" if self.two_sided else "relu"
            return f"NTKClassifier(empirical, d={self.d}, m={self.m}, gate={gate!r})"
        return f"NTKClassifier(analytic, d={self.d}, n_train={self.X_train.shape[0]})"
