"""The dense label-direction attack of Feature Purification (spec 2.3)."""

from __future__ import annotations

import numpy as np

from .._validation import (check_binary_labels, check_dtype, check_float, check_norm,
                           check_protocol)
from ._registry import Attack, register

__all__ = ["dense_direction"]


def dense_direction(world, y, eps, norm, *, dtype=np.float64):
    """delta = -y eps M w* / ||M w*||_2 (l2) or -y eps sign(M w*) (linf).

    The direction along which clean training accumulates its dense mixtures; it
    does not look at the model, only at the world's label direction.
    """
    check_protocol("world", world, ("label_direction",), "sparse-coding world")
    p = check_norm(norm, allowed=(2.0, np.inf))
    eps = check_float("eps", eps, 0.0)
    dtype = check_dtype("dtype", dtype)
    y = check_binary_labels(y, np.shape(y)[0] if np.ndim(y) == 1 else -1)
    u = world.label_direction
    u = u / np.linalg.norm(u) if p == 2.0 else np.sign(u)
    return (-eps * y[:, None] * u[None, :]).astype(dtype)


def _dense(model, X, y, eps, p, *, world=None, seed=0):
    if world is None:
        raise ValueError("attack 'dense' needs world=")
    return dense_direction(world, y, eps, p, dtype=X.dtype)


register(Attack("dense", _dense, "structured", norms=(2.0, np.inf), needs_world=True,
                summary="-y eps along the label direction M w* (the dense mixtures' direction)"))
