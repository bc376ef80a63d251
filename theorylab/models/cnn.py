"""The two-layer smoothed-ReLU convolutional network of Li & Li (ICLR 2025).

    F_k(X) = sum_{r=1}^m sum_{p=1}^P sigma(<w_{k,r}, x_p>),   k = 0..K-1,

with weights shared across the P patches, a second layer fixed to ones, and
the smoothed ReLU sigma of degree q and threshold rho (C1 at 0 and rho):
0 below 0, z^q / (q rho^(q-1)) on [0, rho], z - (1 - 1/q) rho above.  The loss
is softmax cross-entropy.

Provenance: a two-layer smoothed-ReLU CNN trained by GD is the paper's [C];
the exact form above (Allen-Zhu & Li's) and the constants are theorylab's
reconstruction [R] (spec ``robust_features.md`` section 2.2).
"""

from __future__ import annotations

import numpy as np

from .._kernels import cnn as _k
from .._validation import (as_generator, check_array, check_dtype, check_float, check_int,
                           check_memory)
from ._base import Capabilities, Learner, in_segments, save_npz

__all__ = ["SmoothedReLUCNN"]

class SmoothedReLUCNN(Learner):
    """Two-layer smoothed-ReLU patch CNN with K output classes.

    Parameters
    ----------
    K : int
        Number of classes (>= 2).
    m : int
        Filters per class (>= 1).
    d : int
        Patch dimension (>= 1).  The number of patches P is free: the filters
        are shared across patches, so any (N, P, d) input is accepted.
    q : int, default 3
        Degree of the polynomial piece of sigma (>= 2, so sigma is C1 at 0).
    rho : float, default 0.5
        End of the polynomial piece (> 0); the spec's pilot value.
    init_scale : float, default 0.01
        Standard deviation sigma_0 of the Gaussian init N(0, sigma_0^2 I) (> 0).
    seed : int, SeedSequence or Generator, default 0
        Randomness of the initialisation.
    dtype : {float64, float32}, default float64
    W : ndarray of shape (K, m, d), optional
        Explicit initial weights instead of a random init.

    Attributes
    ----------
    W : ndarray of shape (K, m, d)
        Filters w_{k,r}.
    W_init : ndarray of shape (K, m, d)
        The weights at initialisation.
    """

    kind = "SmoothedReLUCNN"
    capabilities = Capabilities(compiled={"pgd", "ascent"}, certify={2.0, np.inf})

    def __init__(self, K, m, d, *, q=3, rho=0.5, init_scale=0.01, seed=0, dtype=np.float64,
                 W=None):
        self.K = check_int("K", K, 2)
        self.m = check_int("m", m, 1)
        self.d = check_int("d", d, 1)
        self.q = check_int("q", q, 2)
        self.rho = check_float("rho", rho, 0.0, low_open=True)
        self.init_scale = check_float("init_scale", init_scale, 0.0, low_open=True)
        self.dtype = check_dtype("dtype", dtype)
        check_memory("K, m, d", (self.K, self.m, self.d), self.dtype, copies=3)
        if W is None:
            rng = as_generator(seed, "seed")
            W = self.init_scale * rng.standard_normal((self.K, self.m, self.d))
        self.W = check_array("W", W, ndim=3, shape=(self.K, self.m, self.d),
                             dtype=self.dtype).copy()
        self.W_init = self.W.copy()
        self.metadata = {}

    @property
    def n_classes(self):
        return self.K

    # -- validation and the array protocol (theorylab.models._base.Learner) ----
    def weight_arrays(self):
        return {"W": self.W}

    def check_X(self, X, name="X"):
        self.check_weights()
        return check_array(name, X, ndim=3, shape=(None, None, self.d), dtype=self.dtype)

    def check_y(self, y, n, name="y"):
        arr = np.asarray(y)
        if arr.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
        if arr.dtype.kind not in "iu":
            integral = (arr.dtype.kind == "f" and np.all(np.isfinite(arr))
                        and np.all(arr == np.round(arr)))
            if not integral:
                raise ValueError(f"{name} must contain integer class labels, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.K):
            raise ValueError(f"{name} must contain labels in [0, {self.K - 1}]")
        return np.ascontiguousarray(arr, dtype=np.int64)

    def _scores(self, X):
        return _k.scores(X, self.W, self.q, self.rho)

    def _loss_grad(self, X, y):
        loss, _, G = _k.loss_and_input_gradient(X, y, self.W, self.q, self.rho)
        return loss, G

    @staticmethod
    def _split_margin(F, y):
        # F_y - max_{j != y} F_j and the competing class j (first index on ties).
        rows = np.arange(F.shape[0])
        Fy = F[rows, y].copy()
        other = F.copy()
        other[rows, y] = -np.inf
        j = np.argmax(other, axis=1)
        return Fy - other[rows, j], j

    def _margin(self, X, y):
        return self._split_margin(self._scores(X), y)[0]

    def _margin_grad(self, X, y):
        # Gradient of F_y - F_j for the competing class j at X: the filters of class y
        # and of class j, each weighted by sigma' of its pre-activations.
        marg, j = self._split_margin(self._scores(X), y)
        N, P, d = X.shape
        G = np.zeros_like(X)
        for sign, cls in ((1.0, y), (-1.0, j)):
            Wc = self.W[cls]                                    # (N, m, d)
            Z = np.einsum("npd,nmd->npm", X, Wc)
            S = _k.smoothed_relu_derivative(Z.ravel(), self.q, self.rho).reshape(Z.shape)
            G += sign * np.einsum("npm,nmd->npd", S, Wc)
        return marg, G

    # Compiled PGD loop (capabilities.compiled); validated arrays in, the kernel's outputs
    # back.  step and eps are rounded to the model's dtype, as NumPy rounds a Python float
    # meeting a float32 array.
    def compiled_pgd(self, X, y, D0, steps, step, eps, p):
        """One start of :func:`theorylab.attacks.pgd` in one compiled kernel (l2, linf)."""
        dt = np.dtype(self.dtype).type
        W, q, rho, step, eps, linf = self.W, self.q, self.rho, dt(step), dt(eps), p == np.inf
        D = np.array(D0, dtype=self.dtype, order="C")
        best, best_loss = np.empty_like(D), np.empty(D.shape[0], dtype=self.dtype)
        ok = np.ones(D.shape[0], dtype=np.bool_)

        def run(s, e, t0, t1):
            _k.pgd_steps(X[s:e], y[s:e], W, q, rho, D[s:e], t0, t1, steps, step, eps, linf,
                         best[s:e], best_loss[s:e], ok[s:e])

        in_segments(run, X.shape[0], steps + 1, block_rows=_k.chunk_samples(X.shape[1]))
        return best, best_loss, ok

    def compiled_ascent(self, X, y, D0, steps, step, eps, p):
        """:func:`theorylab.attacks.ascent` in one compiled kernel (l2, linf): (delta, ok)."""
        dt = np.dtype(self.dtype).type
        D = np.array(D0, dtype=self.dtype, order="C")

        def run(s, e, t0, t1):
            # The ascent's state is its last iterate: t1 - t0 more steps from it.
            D[s:e] = _k.ascent(X[s:e], y[s:e], self.W, self.q, self.rho, D[s:e], t1 - t0,
                               dt(step), dt(eps), p == np.inf)

        in_segments(run, X.shape[0], steps, block_rows=_k.chunk_samples(X.shape[1]))
        return D, np.isfinite(D.reshape(D.shape[0], -1)).all(axis=1)

    def correct_along(self, X, D, y, ts):
        """Correctness of X + t D for each t (validated arrays), shape (len(ts), N).

        Exact for this model because its pre-activations are linear in the input.
        """
        F = _k.scores_along(X, np.ascontiguousarray(D, dtype=self.dtype), self.W, self.q,
                            self.rho, np.asarray(ts, dtype=np.float64))
        rows = np.arange(F.shape[1])
        Fy = F[:, rows, y].copy()
        F[:, rows, y] = -np.inf
        return Fy > F.max(axis=2)

    # -- public evaluation ----------------------------------------------
    def predict(self, X):
        """argmax_k F_k(X) per sample (first index on ties)."""
        return np.argmax(self.decision_function(X), axis=1).astype(np.int64)

    def patch_contributions(self, X):
        """Per-patch contributions to the scores, shape (N, P, K); they sum over P to F."""
        return _k.patch_scores(self.check_X(X), self.W, self.q, self.rho)

    def weight_gradient(self, X, y, *, check_input=True):
        """Per-sample losses (N,), scores (N, K) and the gradient of the mean loss in ``W``.

        ``check_input=False`` skips validation (arrays already checked).
        """
        if check_input:
            X, y = self.check_Xy(X, y)
        return _k.loss_and_weight_gradient(X, y, self.W, self.q, self.rho)

    # -- structure -------------------------------------------------------
    def correlations(self, features):
        """<w_{k,r}, f_j> for feature rows ``features`` (J, d): array (K, m, J)."""
        F = check_array("features", features, ndim=2, shape=(None, self.d), dtype=np.float64)
        return np.einsum("kmd,jd->kmj", self.W.astype(np.float64), F)

    # -- persistence -----------------------------------------------------
    def save(self, path):
        """Write the model to ``path`` (.npz).

        Entries: ``kind`` ("SmoothedReLUCNN"), ``W`` (K, m, d), ``q`` (int),
        ``rho`` (float), ``W_init`` (K, m, d), and a JSON ``metadata`` string with
        ``init_scale``, ``dtype`` and user metadata (e.g. the world spec).
        """
        meta = {"init_scale": self.init_scale, "dtype": np.dtype(self.dtype).name,
                "user": self.metadata}
        save_npz(path, self.kind, {"W": self.W, "q": np.array(self.q), "rho": np.array(self.rho),
                                   "W_init": self.W_init}, meta)

    @classmethod
    def _from_npz(cls, data, meta):
        # Every entry validated before use: a malformed file is a ValueError naming it.
        from .io import npz_array, npz_meta, npz_scalar

        dtype = npz_meta(meta, "dtype", types=str, default=None)
        if dtype is not None and dtype not in ("float64", "float32"):
            raise ValueError(f"metadata 'dtype' must be float64 or float32, got {dtype!r}")
        W = npz_array(data, "W", ndim=3, dtype=dtype)
        if W.shape[0] < 2:
            raise ValueError(f"entry 'W' must have shape (K, m, d) with K >= 2 classes, got "
                             f"{W.shape}")
        q = npz_scalar(data, "q", integer=True, low=2)
        rho = npz_scalar(data, "rho", low=0.0, low_open=True)
        init_scale = npz_meta(meta, "init_scale", types=(int, float), default=0.01)
        if init_scale <= 0:
            raise ValueError(f"metadata 'init_scale' must be > 0, got {init_scale}")
        W_init = npz_array(data, "W_init", ndim=3, shape=W.shape, dtype=W.dtype, default=None)
        model = cls(W.shape[0], W.shape[1], W.shape[2], q=q, rho=rho, init_scale=init_scale,
                    W=W, dtype=dtype or W.dtype.name)
        if W_init is not None:
            model.W_init = W_init
        model.metadata = meta.get("user", {})
        return model

    def copy(self):
        """An independent copy (weights, init, metadata)."""
        new = SmoothedReLUCNN(self.K, self.m, self.d, q=self.q, rho=self.rho,
                              init_scale=self.init_scale, W=self.W, dtype=self.dtype)
        new.W_init = self.W_init.copy()
        new.metadata = dict(self.metadata)
        return new

    def __repr__(self):
        return (f"SmoothedReLUCNN(K={self.K}, m={self.m}, d={self.d}, q={self.q}, "
                f"rho={self.rho:g}, dtype={np.dtype(self.dtype).name})")
