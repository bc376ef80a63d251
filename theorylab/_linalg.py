"""Small numerically careful helpers shared across layers."""

import numpy as np

__all__ = ["row_norms"]


def row_norms(A):
    """l2 norm of each row of a 2-d array, without overflow or underflow.

    Each row is divided by its largest magnitude before squaring, so rows of
    size 1e300 or 1e-300 give their true norm instead of inf or 0.
    """
    A = np.asarray(A)
    s = np.abs(A).max(axis=1) if A.shape[1] else np.zeros(A.shape[0], A.dtype)
    safe = np.where(s > 0, s, 1.0)
    Q = A / safe[:, None]
    return s * np.sqrt(np.einsum("ij,ij->i", Q, Q))
