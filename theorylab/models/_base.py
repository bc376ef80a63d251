"""What every theorylab model shares: validation of inputs and the npz format."""

from __future__ import annotations

import json

import numpy as np

from .._validation import check_array

__all__ = ["BinaryModel", "save_npz"]


def save_npz(path, kind, arrays, metadata):
    """Write ``arrays`` plus a string ``kind`` and JSON ``metadata`` to ``path``."""
    payload = {"kind": np.array(kind), "metadata": np.array(json.dumps(metadata))}
    payload.update(arrays)
    with open(path, "wb") as fh:  # an open file stops numpy appending '.npz'
        np.savez(fh, **payload)


class BinaryModel:
    """Mixin for binary classifiers with labels in {-1, +1} and logistic loss.

    Subclasses define ``d``, ``dtype``, ``_scores(X)`` and ``_loss_grad(X, y)``
    (per-sample loss and input gradient) on validated arrays.
    """

    n_classes = 2

    def _check_X(self, X, name="X"):
        return check_array(name, X, ndim=2, shape=(None, self.d), dtype=self.dtype)

    def _check_y(self, y, n, name="y"):
        arr = np.asarray(y)
        if arr.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
        if not np.isin(arr, (-1, 1)).all():
            raise ValueError(f"{name} must contain only -1 and +1")
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _correct(self, X, y):
        # Validated arrays in, boolean per sample out: y f(x) > 0 strictly.
        return y * self._scores(X) > 0

    def decision_function(self, X):
        """Real-valued score f(x) for each row of ``X``; the class is its sign."""
        return self._scores(self._check_X(X))

    def predict(self, X):
        """Labels in {-1, +1}; 0 where f(x) == 0 exactly (undecided, counted as an error)."""
        return np.sign(self.decision_function(X)).astype(np.int64)

    def margins(self, X, y):
        """y f(x): positive exactly where the point is classified correctly."""
        X = self._check_X(X)
        return self._check_y(y, X.shape[0]) * self._scores(X)

    def accuracy(self, X, y):
        """Fraction of points with y f(x) > 0 (a tie f = 0 is an error)."""
        X = self._check_X(X)
        return float(np.mean(self._correct(X, self._check_y(y, X.shape[0]))))

    def loss(self, X, y, reduction="mean"):
        """Logistic loss log(1 + exp(-y f(x))): its mean, or per sample with ``reduction='none'``."""
        X = self._check_X(X)
        loss, _ = self._loss_grad(X, self._check_y(y, X.shape[0]))
        if reduction == "none":
            return loss
        if reduction == "mean":
            return float(np.mean(loss))
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")

    def input_gradient(self, X, y):
        """Gradient of each sample's loss with respect to its input, shape of ``X``."""
        X = self._check_X(X)
        return self._loss_grad(X, self._check_y(y, X.shape[0]))[1]
