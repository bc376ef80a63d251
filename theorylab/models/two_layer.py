"""The two-layer symmetric threshold ReLU network of Feature Purification.

    f(x) = sum_i [relu(<w_i, x> - b_i) - relu(-<w_i, x> - b_i)]

Provenance: a two-layer ReLU net trained by GD from random init is the paper's
[C]; the symmetric pair with a fixed output layer and the threshold rules below
are theorylab's reconstruction [D] (spec section 2.2).  The thresholds follow a
rule tied to the weights rather than being learned, and are treated as
constants when differentiating.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .._kernels import relu_net as _k
from .._validation import (as_generator, check_array, check_choice, check_dtype, check_float,
                           check_instance, check_int, check_memory)
from ..worlds import SparseCoding
from ._base import BinaryModel, Capabilities, in_segments, save_npz

__all__ = ["TwoLayerReLU", "THRESHOLD_RULES"]

THRESHOLD_RULES = ("max", "norm", "fixed")
_DTYPES = {"float64": np.float64, "float32": np.float32}


class TwoLayerReLU(BinaryModel):
    """Symmetric soft-threshold two-layer network with a threshold rule.

    Parameters
    ----------
    d : int
        Input dimension.
    m : int
        Width (number of symmetric neuron pairs).
    init_scale : float, optional
        Standard deviation of the Gaussian init N(0, init_scale^2 I); default 1/d
        (the pilot's sigma_0).
    threshold : {"max", "norm", "fixed"}, default "max"
        How b is set from the current weights and the coefficient ``c``:
        ``"max"``: b_i = c * max_j |<w_i, M_j>| (relative to the neuron's main
        dictionary coefficient; the recommended rule); ``"norm"``: b_i = c ||w_i||
        (known to let adversarial training grow dense parts, spec 2.2);
        ``"fixed"``: b_i = c.
    c : float, default 0.5
        Threshold coefficient (>= 0); training may change it by a schedule.
    dictionary : ndarray of shape (d, d), optional
        Orthonormal dictionary (atoms in columns) used by the ``"max"`` rule and
        by the structural metrics; None means the identity.
    seed : int, SeedSequence or Generator, default 0
        Randomness of the initialisation.
    dtype : {float64, float32}, default float64
    W : ndarray of shape (m, d), optional
        Explicit initial weights instead of a random init.

    Attributes
    ----------
    W : ndarray of shape (m, d)
        Current weights (rows w_i).
    W_init : ndarray of shape (m, d)
        The weights at initialisation (for the purification principle).
    """

    kind = "TwoLayerReLU"
    capabilities = Capabilities(compiled={"pgd", "fgm", "fgm_step"}, certify={2.0, np.inf},
                                solve={2.0, np.inf})

    def __init__(self, d, m, *, init_scale=None, threshold="max", c=0.5, dictionary=None,
                 seed=0, dtype=np.float64, W=None):
        self.d = check_int("d", d, 1)
        self.m = check_int("m", m, 1)
        self.dtype = check_dtype("dtype", dtype)
        check_memory("m, d", (self.m, self.d), self.dtype, copies=3)  # W, W_init, the draw
        self.threshold = check_choice("threshold", threshold, THRESHOLD_RULES)
        self.c = check_float("c", c, 0.0)
        self.init_scale = (1.0 / self.d if init_scale is None
                           else check_float("init_scale", init_scale, 0.0, low_open=True))
        if dictionary is None:
            self.M = None
        else:
            M = check_array("dictionary", dictionary, ndim=2, shape=(self.d, self.d),
                            dtype=np.float64)
            if not np.allclose(M.T @ M, np.eye(self.d), atol=1e-8):
                raise ValueError("dictionary must be orthonormal (M^T M = I)")
            self.M = None if np.array_equal(M, np.eye(self.d)) else M
        if W is None:
            rng = as_generator(seed, "seed")
            W = self.init_scale * rng.standard_normal((self.m, self.d))
        self.W = check_array("W", W, ndim=2, shape=(self.m, self.d), dtype=self.dtype).copy()
        self.W_init = self.W.copy()
        self.metadata = {}

    # -- constructors ----------------------------------------------------
    @classmethod
    def for_world(cls, world, m=None, **kwargs):
        """A network sized for ``world`` (default width 2d, the pilot's) using its dictionary."""
        check_instance("world", world, SparseCoding)
        m = 2 * world.d if m is None else m
        kwargs.setdefault("dictionary", None if world.identity else world.M)
        return cls(world.d, m, **kwargs)

    @classmethod
    def purified(cls, world, *, c=0.5, scale=1.0, dtype=np.float64):
        """The purified oracle: one neuron per atom, w_j = scale * w*_j M_j, rule "max".

        This is the network the purification picture says adversarial training
        approaches (spec 3.3(iii)); it is the reference for robust accuracy.
        """
        check_instance("world", world, SparseCoding)
        scale = check_float("scale", scale, 0.0, low_open=True)
        W = scale * (world.M * world.w_star[None, :]).T
        return cls(world.d, world.d, threshold="max", c=c,
                   dictionary=None if world.identity else world.M, W=W, dtype=dtype)

    # -- structure -------------------------------------------------------
    def coefficients(self, W=None):
        """Weights in the dictionary basis, C_ij = <w_i, M_j>, shape (m, d)."""
        W = self.W if W is None else W
        return W if self.M is None else W @ self.M

    @contextlib.contextmanager
    def frozen_thresholds(self):
        """Compute b once and reuse it until the block exits.

        For code that evaluates the network many times at fixed weights (an
        attack's steps, one training step's attack and gradient); the weights
        must not change inside the block.
        """
        outer = getattr(self, "_frozen_b", None)  # nested blocks keep the outer value
        self._frozen_b = self.thresholds()
        try:
            yield self._frozen_b
        finally:
            self._frozen_b = outer

    def thresholds(self, c=None):
        """Current thresholds b (m,) from the rule, at coefficient ``c`` (default ``self.c``)."""
        if c is None and getattr(self, "_frozen_b", None) is not None:
            return self._frozen_b
        c = self.c if c is None else check_float("c", c, 0.0)
        # One implementation (a kernel) for this and for train_many's compiled loop, so
        # that a run trained in a batch has the bits of the same run trained alone.
        M = (np.zeros((0, 0), dtype=self.dtype) if self.M is None
             else np.ascontiguousarray(self.M, dtype=self.dtype))
        return _k.thresholds(np.ascontiguousarray(self.W), np.dtype(self.dtype).type(c),
                             _k.RULES[self.threshold], M)

    def weight_arrays(self):
        return {"W": self.W, "c": np.float64(self.c)}

    # -- evaluation on validated arrays ----------------------------------
    def _scores(self, X):
        return _k.scores(X, self.W, self.thresholds())

    def _loss_grad(self, X, y):
        loss, _, G = _k.loss_and_input_gradient(X, y, self.W, self.thresholds())
        return loss, G

    def _margin_grad(self, X, y):
        return _k.margin_and_input_gradient(X, y, self.W, self.thresholds())

    def fixed_weights(self):
        """The thresholds are computed once inside the block (:meth:`frozen_thresholds`)."""
        return self.frozen_thresholds()

    # Compiled attack loops (capabilities.compiled); validated arrays in, the kernels'
    # outputs back.  step and eps are rounded to the model's dtype, as NumPy rounds a
    # Python float meeting a float32 array.
    def compiled_pgd(self, X, y, D0, steps, step, eps, p):
        """One start of :func:`theorylab.attacks.pgd` in one compiled kernel (l2, linf)."""
        dt = np.dtype(self.dtype).type
        W, b, step, eps, linf = self.W, self.thresholds(), dt(step), dt(eps), p == np.inf
        D = np.array(D0, dtype=self.dtype, order="C")
        best, best_loss = np.empty_like(D), np.empty(D.shape[0], dtype=self.dtype)
        ok = np.ones(D.shape[0], dtype=np.bool_)

        def run(s, e, t0, t1):
            _k.pgd_steps(X[s:e], y[s:e], W, b, D[s:e], t0, t1, steps, step, eps, linf,
                         best[s:e], best_loss[s:e], ok[s:e])

        in_segments(run, X.shape[0], steps + 1, block_rows=_k.CHUNK)
        return best, best_loss, ok

    def compiled_fgm(self, X, y, eps, p):
        """:func:`theorylab.attacks.fgm` in one compiled kernel (l2, linf)."""
        dt = np.dtype(self.dtype).type
        return _k.fgm(X, y, self.W, self.thresholds(), dt(eps), p == np.inf)

    def compiled_fgm_weight_gradient(self, X, y, eps, p):
        """An FGM training step in one kernel: the attack, x + delta and the weight gradient.

        The bits of :meth:`compiled_fgm`, ``X + delta`` and :meth:`weight_gradient`
        (l2, linf), without forming the perturbed points as an array.
        """
        dt = np.dtype(self.dtype).type
        return _k.fgm_loss_and_weight_gradient(X, y, self.W, self.thresholds(), dt(eps),
                                               p == np.inf)

    def weight_gradient(self, X, y, *, check_input=True):
        """Per-sample losses, scores and the gradient of the mean loss in ``W``.

        Thresholds are held at their current values (constants in the gradient).
        ``check_input=False`` skips validation (arrays already checked).
        """
        if check_input:
            X, y = self.check_Xy(X, y)
        return _k.loss_and_weight_gradient(X, y, self.W, self.thresholds())

    # -- persistence -----------------------------------------------------
    def save(self, path):
        """Write the model to ``path`` (.npz).

        Entries: ``kind`` ("TwoLayerReLU"), ``W`` (m, d), ``b`` (m,) the thresholds
        at save time, ``W_init`` (m, d), ``M`` (d, d; empty when identity), and a
        JSON ``metadata`` string with ``threshold``, ``c``, ``init_scale``,
        ``dtype`` and user metadata (e.g. the world spec).
        """
        meta = {"threshold": self.threshold, "c": self.c, "init_scale": self.init_scale,
                "dtype": np.dtype(self.dtype).name, "user": self.metadata}
        M = np.zeros((0, 0)) if self.M is None else self.M
        save_npz(path, self.kind, {"W": self.W, "b": self.thresholds(), "W_init": self.W_init,
                                   "M": M}, meta)

    @classmethod
    def _from_npz(cls, data, meta):
        # Every entry validated before use: a malformed file is a ValueError naming it.
        from .io import npz_array, npz_meta

        dtype = npz_meta(meta, "dtype", types=str)
        if dtype not in _DTYPES:
            raise ValueError(f"metadata 'dtype' must be float64 or float32, got {dtype!r}")
        W = npz_array(data, "W", ndim=2, dtype=_DTYPES[dtype])
        m, d = W.shape
        M = npz_array(data, "M", ndim=2, dtype=np.float64, allow_empty=True, default=None)
        if M is not None and M.size == 0:
            M = None
        elif M is not None and M.shape != (d, d):
            raise ValueError(f"entry 'M' must have shape ({d}, {d}) (or be empty), got "
                             f"{M.shape}")
        if M is not None and not np.allclose(M.T @ M, np.eye(d), atol=1e-8):
            raise ValueError("entry 'M' must be an orthonormal dictionary (M^T M = I)")
        threshold = npz_meta(meta, "threshold", types=str)
        if threshold not in THRESHOLD_RULES:
            raise ValueError(f"metadata 'threshold' must be one of {list(THRESHOLD_RULES)}, "
                             f"got {threshold!r}")
        c = npz_meta(meta, "c", types=(int, float))
        init_scale = npz_meta(meta, "init_scale", types=(int, float))
        if c < 0 or init_scale <= 0:
            raise ValueError(f"metadata 'c' must be >= 0 and 'init_scale' > 0, got c={c}, "
                             f"init_scale={init_scale}")
        b = npz_array(data, "b", ndim=1, shape=(m,), dtype=np.float64)
        W_init = npz_array(data, "W_init", ndim=2, shape=(m, d), dtype=_DTYPES[dtype],
                           default=None)
        model = cls(d, m, threshold=threshold, c=c, init_scale=init_scale, dictionary=M, W=W,
                    dtype=dtype)
        if W_init is not None:
            model.W_init = W_init.copy()
        model.metadata = meta.get("user", {})
        if not np.allclose(model.thresholds(), b, rtol=1e-6, atol=0):
            raise ValueError("entry 'b' (the saved thresholds) does not match the threshold "
                             "rule applied to W")
        return model

    def copy(self):
        """An independent copy (weights, init, metadata)."""
        new = TwoLayerReLU(self.d, self.m, threshold=self.threshold, c=self.c,
                           init_scale=self.init_scale, dictionary=self.M, W=self.W,
                           dtype=self.dtype)
        new.W_init = self.W_init.copy()
        new.metadata = dict(self.metadata)
        return new

    def __repr__(self):
        return (f"TwoLayerReLU(d={self.d}, m={self.m}, threshold={self.threshold!r}, "
                f"c={self.c:g}, dtype={np.dtype(self.dtype).name})")
