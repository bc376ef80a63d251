"""The learner protocol every theorylab model follows, and the npz format.

A *learner* is any model that attacks, certificates, training and the checks
can use without knowing its class.  It has two tiers, as scikit-learn's
``check_input=False`` estimators do:

* the **public, validating** methods: ``decision_function``, ``predict``,
  ``margins``, ``accuracy``, ``loss``, ``input_gradient``;
* the **array protocol**, the same computations on arrays that the caller has
  already validated with :meth:`Learner.check_X` / :meth:`Learner.check_y`:
  ``scores``, ``margin``, ``correct``, ``loss_and_input_gradient`` and
  ``margin_and_input_gradient``, each with ``check_input=True`` by default and
  ``check_input=False`` for inner loops (an attack's steps, a training step's
  attack), which then skip validation.

What a model can do beyond that is *declared* in :attr:`Learner.capabilities`
(a :class:`Capabilities`), never probed with ``hasattr``:

``compiled``
    attack loops the model runs in one compiled kernel
    (:meth:`Learner.compiled_pgd`, :meth:`Learner.compiled_fgm`; l2 and linf), and
    ``"fgm_step"``: an FGM training step's attack and weight gradient as one kernel
    (:meth:`Learner.compiled_fgm_weight_gradient`);
``exact``
    norms in which :meth:`Learner.worst_case_margin` is the exact minimum of the
    margin over the ball in closed form (linear models; separable polynomials
    in linf with M = I);
``certify`` / ``solve``
    norms in which :mod:`theorylab.verify` holds a sound certificate, resp. an
    exact solver (MILP, branch and bound), for this model's ``kind``.

Subclasses implement the hooks ``_scores(X)`` and ``_loss_grad(X, y)`` (per-sample
loss and input gradient) and, for margin-based attacks, ``_margin_grad(X, y)``
on validated arrays; the base class provides the rest.  The margin is
``y f(x)`` for binary models and ``F_y(x) - max_{j != y} F_j(x)`` for K classes:
a point is correct exactly when its margin is > 0 (a tie is an error).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass

import numpy as np

from .._validation import check_array, check_binary_labels

__all__ = ["Capabilities", "Learner", "BinaryModel", "save_npz", "NORMS", "interruptible",
           "in_segments", "SEGMENT_SECONDS"]

NORMS = (2.0, np.inf, 1.0)

#: Target length of one compiled call in a long loop: Ctrl-C is only seen between calls.
SEGMENT_SECONDS = 0.2


@contextlib.contextmanager
def interruptible():
    """Surface a Ctrl-C that lands inside a compiled kernel as KeyboardInterrupt.

    A SIGINT arriving while a parallel Numba kernel runs leaves the exception set
    when the kernel returns, and CPython reports that as a SystemError wrapping the
    KeyboardInterrupt; this re-raises the KeyboardInterrupt itself.
    """
    try:
        yield
    except SystemError as exc:
        # The interrupt may sit several SystemErrors deep (a Ctrl-C while Numba loads a
        # kernel from a cold cache: dispatcher -> _numba_unpickle -> KeyboardInterrupt).
        inner, seen = exc, set()
        while isinstance(inner, SystemError) and id(inner) not in seen:
            seen.add(id(inner))
            inner = inner.__cause__ or inner.__context__
        if isinstance(inner, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise


def in_segments(run, n_rows, n_steps, *, block_rows, max_block_rows=None, seconds=None):
    """Call ``run(s, e, t0, t1)`` over row blocks [s, e) and step ranges [t0, t1).

    For kernels whose rows are independent and whose state carries from one step
    range to the next (:func:`theorylab._kernels.relu_net.pgd_steps`): the ranges
    grow (at most 8x a call) until a call takes about ``seconds``, so control
    returns to Python, and Ctrl-C is honoured, several times a second; the bits are
    those of one call.  Row blocks are multiples of ``block_rows`` (the kernel's
    own chunk), so every chunk sees the same rows as in one call.
    ``seconds`` defaults to :data:`SEGMENT_SECONDS`.
    """
    seconds = SEGMENT_SECONDS if seconds is None else seconds
    per_block = max_block_rows or 64 * block_rows
    per_block = max(block_rows, per_block // block_rows * block_rows)
    for s in range(0, n_rows, per_block):
        e = min(n_rows, s + per_block)
        t0, seg = 0, 1
        while t0 < n_steps:
            t1 = min(n_steps, t0 + seg)
            start = time.perf_counter()
            with interruptible():
                run(s, e, t0, t1)
            took = time.perf_counter() - start
            seg = max(1, min(8 * seg, int(seg * seconds / max(took, 1e-6))))
            t0 = t1


@dataclass(frozen=True)
class Capabilities:
    """What a learner supports beyond the array protocol (see the module docstring).

    Attributes
    ----------
    compiled : frozenset of str
        Attack names ("pgd", "fgm") with a compiled loop (norms 2 and inf).
    exact : frozenset of float
        Norms (2.0, inf, 1.0) where ``worst_case_margin`` is exact in closed form.
    certify : frozenset of float
        Norms with a sound certifier in :mod:`theorylab.verify`.
    solve : frozenset of float
        Norms with an exact solver in :mod:`theorylab.verify`.
    """

    compiled: frozenset = frozenset()
    exact: frozenset = frozenset()
    certify: frozenset = frozenset()
    solve: frozenset = frozenset()

    def __post_init__(self):
        for name in ("compiled", "exact", "certify", "solve"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        bad = (self.exact | self.certify | self.solve) - set(NORMS)
        if bad:
            raise ValueError(f"capability norms must be among {NORMS}, got {sorted(bad)}")


def save_npz(path, kind, arrays, metadata):
    """Write ``arrays`` plus a string ``kind`` and JSON ``metadata`` to ``path``."""
    payload = {"kind": np.array(kind), "metadata": np.array(json.dumps(metadata))}
    payload.update(arrays)
    with open(path, "wb") as fh:  # an open file stops numpy appending '.npz'
        np.savez(fh, **payload)


class Learner:
    """Base of every model: the array protocol and the declared capabilities.

    Subclasses set ``kind``, ``d``, ``dtype`` and ``n_classes`` and implement
    ``check_X``, ``check_y``, ``_scores``, ``_loss_grad`` and ``_margin``
    (and ``_margin_grad`` for margin-loss attacks).
    """

    kind = "Learner"
    capabilities = Capabilities()

    # -- validation --------------------------------------------------------
    def weight_arrays(self):
        """The arrays the model scores with, by attribute name (see :meth:`check_weights`)."""
        return {}

    def check_weights(self):
        """Refuse to score with a NaN or infinite weight (ValueError naming the array).

        Every validating entry point runs it through :meth:`check_X` (one pass over
        the weights, which are small next to a batch); ``check_input=False`` calls
        skip it with the rest of the validation, so inner loops pay nothing.
        """
        for name, arr in self.weight_arrays().items():
            if arr is not None and not np.isfinite(arr).all():
                raise ValueError(f"{type(self).__name__}.{name} holds NaN or infinite values: "
                                 "the model cannot score (retrain or reload it)")

    def check_X(self, X, name="X"):  # pragma: no cover - every model overrides it
        """Validate the weights and the inputs (shape, dtype, finiteness); C-contiguous X."""
        raise NotImplementedError

    def check_y(self, y, n, name="y"):  # pragma: no cover - every model overrides it
        """Validate ``n`` labels; returns them in the model's label dtype."""
        raise NotImplementedError

    def check_Xy(self, X, y):
        """``check_X`` then ``check_y`` on the same number of samples."""
        X = self.check_X(X)
        return X, self.check_y(y, X.shape[0])

    # -- the array protocol ------------------------------------------------
    def scores(self, X, *, check_input=True):
        """Scores f(x) (N,) for binary models, F(x) (N, K) for K classes."""
        X = self.check_X(X) if check_input else X
        with interruptible():
            return self._scores(X)

    def margin(self, X, y, *, check_input=True):
        """Per-sample margin: > 0 exactly where the point is classified correctly."""
        if check_input:
            X, y = self.check_Xy(X, y)
        with interruptible():
            return self._margin(X, y)

    def correct(self, X, y, *, check_input=True):
        """Boolean per sample: margin > 0 strictly (a tie is an error)."""
        return self.margin(X, y, check_input=check_input) > 0

    def loss_and_input_gradient(self, X, y, *, check_input=True):
        """Per-sample loss (N,) and its gradient in each input (shape of ``X``)."""
        if check_input:
            X, y = self.check_Xy(X, y)
        with interruptible():
            return self._loss_grad(X, y)

    def margin_and_input_gradient(self, X, y, *, check_input=True):
        """Per-sample margin (N,) and its gradient in each input (shape of ``X``).

        For K classes the competing class is the best other class at ``X``
        (the gradient is that of F_y - F_j for that j).
        """
        if check_input:
            X, y = self.check_Xy(X, y)
        with interruptible():
            return self._margin_grad(X, y)

    # -- capability hooks (declared in ``capabilities``) -------------------------
    def compiled_pgd(self, X, y, D0, steps, step, eps, p):
        """One PGD start in a compiled loop (validated arrays; capability "pgd")."""
        raise ValueError(f"{type(self).__name__} has no compiled PGD loop")

    def compiled_fgm(self, X, y, eps, p):
        """FGM in a compiled loop (validated arrays; capability "fgm")."""
        raise ValueError(f"{type(self).__name__} has no compiled FGM step")

    def compiled_fgm_weight_gradient(self, X, y, eps, p):
        """``weight_gradient(X + fgm(X))`` in one kernel (validated arrays; capability "fgm_step").

        Returns ``(loss, scores, grad, ok)``: the weight gradient's outputs at the
        perturbed points and, per row, False where the input gradient or the
        perturbation is not finite.
        """
        raise ValueError(f"{type(self).__name__} has no compiled FGM training step")

    def worst_case_margin(self, X, y, eps, p, *, check_input=True):
        """Exact min over the p-ball of the margin, where ``capabilities.exact`` has p."""
        raise ValueError(f"{type(self).__name__} has no closed-form worst case in norm {p}")

    def fixed_weights(self):
        """A context in which the weights do not change (models may cache derived values)."""
        return contextlib.nullcontext()

    # -- public, validating methods ---------------------------------------------
    def decision_function(self, X):
        """Real-valued scores for each row of ``X`` (see :meth:`scores`)."""
        return self.scores(X)

    def margins(self, X, y):
        """Per-sample margins (validated): positive exactly where correct."""
        return self.margin(X, y)

    def accuracy(self, X, y):
        """Fraction of points with margin > 0 (a tie is an error)."""
        return float(np.mean(self.correct(X, y)))

    def loss(self, X, y, reduction="mean"):
        """The training loss: its mean, or per sample with ``reduction='none'``."""
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        loss, _ = self.loss_and_input_gradient(X, y)
        return loss if reduction == "none" else float(np.mean(loss))

    def input_gradient(self, X, y):
        """Gradient of each sample's loss with respect to its input, shape of ``X``."""
        return self.loss_and_input_gradient(X, y)[1]


class BinaryModel(Learner):
    """Binary classifiers with labels in {-1, +1}, score f (N,) and logistic loss.

    Subclasses define ``d``, ``dtype``, ``_scores(X)`` and ``_loss_grad(X, y)``;
    ``_margin_grad`` defaults to y times the score gradient taken from
    ``_score_grad(X)``, which subclasses provide.
    """

    n_classes = 2

    def check_X(self, X, name="X"):
        self.check_weights()
        return check_array(name, X, ndim=2, shape=(None, self.d), dtype=self.dtype)

    def check_y(self, y, n, name="y"):
        return check_binary_labels(y, n, dtype=self.dtype, name=name)

    def _margin(self, X, y):
        return y * self._scores(X)

    def _margin_grad(self, X, y):
        f, G = self._score_grad(X)
        return y * f, G * y[:, None]

    def _score_grad(self, X):  # pragma: no cover - models with margin attacks override it
        raise ValueError(f"{type(self).__name__} has no score gradient")

    def predict(self, X):
        """Labels in {-1, +1}; 0 where f(x) == 0 exactly (undecided, counted as an error)."""
        return np.sign(self.decision_function(X)).astype(np.int64)
