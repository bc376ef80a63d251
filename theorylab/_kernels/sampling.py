"""Kernels of the data samplers (no random numbers here: the caller draws them)."""

from __future__ import annotations

import numpy as np

from ._jit import jit

__all__ = ["codes_from_uniform"]


@jit
def codes_from_uniform(u, p):
    """Sparse +-1 codes from uniforms: Z = -1 where u < p/2, +1 where p/2 <= u < p, else 0.

    One pass over ``u`` (N, d) in place of NumPy's compare, boolean gather and
    scatter; the same values as ``np.where(u < p, np.where(u < p / 2, -1, 1), 0)``.
    """
    n, d = u.shape
    Z = np.empty((n, d))
    half = 0.5 * p
    for i in range(n):
        for j in range(d):
            v = u[i, j]
            if v < p:
                Z[i, j] = -1.0 if v < half else 1.0
            else:
                Z[i, j] = 0.0
    return Z
