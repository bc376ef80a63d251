"""Input validation shared by the public layer.

Every check raises ``ValueError`` naming the offending parameter and the
allowed range, before any work starts.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

__all__ = [
    "check_int",
    "check_float",
    "check_choice",
    "check_bool",
    "check_norm",
    "check_array",
    "check_binary_labels",
    "check_dtype",
    "check_instance",
    "check_protocol",
    "check_callable",
    "check_memory",
    "memory_limit",
    "as_generator",
    "norm_name",
]


_NORM_ALIASES = {
    "2": 2.0, "l2": 2.0, 2: 2.0, 2.0: 2.0,
    "inf": np.inf, "linf": np.inf, "l_inf": np.inf, np.inf: np.inf,
    "1": 1.0, "l1": 1.0, 1: 1.0, 1.0: 1.0,
}


def check_int(name, value, low=None, high=None):
    """Return ``value`` as ``int`` if it is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def check_float(name, value, low=None, high=None, *, low_open=False, high_open=False):
    """Return ``value`` as a finite ``float`` within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    lo_bad = low is not None and (value <= low if low_open else value < low)
    hi_bad = high is not None and (value >= high if high_open else value > high)
    if lo_bad or hi_bad:
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lb}{low}, {high}{hb}, got {value}")
    return value


def check_bool(name, value):
    """Return ``value`` as ``bool`` if it is a bool (NumPy's included); strings are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(map(str, choices))}, got {value!r}")
    return value


def check_norm(norm, allowed=(2.0, np.inf, 1.0), name="norm"):
    """Normalise a norm spec (2, 'l2', 'inf', np.inf, 1, ...) to 2.0, inf or 1.0."""
    try:
        # True == 1 as a dict key: a bool is never a norm (it would select l1).
        p = (None if isinstance(norm, (bool, np.bool_))
             else _NORM_ALIASES[norm.lower() if isinstance(norm, str) else norm])
    except (KeyError, TypeError):
        p = None
    if p is None or p not in allowed:
        names = ", ".join(norm_name(a) for a in allowed)
        raise ValueError(f"{name} must be one of {names}, got {norm!r}")
    return p


def norm_name(p):
    """'l2', 'linf' or 'l1' for a normalised norm."""
    return {2.0: "l2", np.inf: "linf", 1.0: "l1"}[p]


def check_array(name, X, *, ndim, shape=None, dtype=None, allow_empty=False):
    """Validate a finite floating array and return it C-contiguous.

    ``shape`` may contain ``None`` for free axes; ``ndim=None`` takes any number of
    dimensions >= 1.  ``dtype`` forces a dtype (float64 when None and the input is
    not already float32/float64).
    """
    try:
        arr = np.asarray(X)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} must be array-like: {exc}") from exc
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if (arr.ndim != ndim) if ndim is not None else arr.ndim < 1:
        raise ValueError(f"{name} must have {ndim or 'at least 1'} dimensions, got shape "
                         f"{arr.shape}")
    if shape is not None:
        for axis, (want, got) in enumerate(zip(shape, arr.shape)):
            if want is not None and want != got:
                raise ValueError(
                    f"{name} must have shape {tuple('*' if s is None else s for s in shape)}, "
                    f"got {arr.shape} (axis {axis})"
                )
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_binary_labels(y, n, dtype=np.float64, name="y"):
    """Validate labels in {-1, +1} of length ``n``; return them as floats."""
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if not np.isin(arr, (-1, 1)).all():
        raise ValueError(f"{name} must contain only -1 and +1")
    return np.ascontiguousarray(arr, dtype=dtype)


def as_generator(rng_or_seed, name="seed"):
    """A ``numpy.random.Generator`` from an int seed, a SeedSequence or a Generator."""
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    if isinstance(rng_or_seed, np.random.SeedSequence):
        return np.random.default_rng(rng_or_seed)
    if isinstance(rng_or_seed, numbers.Integral) and not isinstance(rng_or_seed, bool):
        if rng_or_seed < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {rng_or_seed}")
        return np.random.default_rng(int(rng_or_seed))
    raise ValueError(
        f"{name} must be a non-negative int, a numpy SeedSequence or a Generator, "
        f"got {rng_or_seed!r}"
    )


def check_dtype(name, dtype, allowed=("float64", "float32")):
    """The NumPy scalar type of ``dtype`` if its name is in ``allowed`` (ValueError otherwise).

    Anything NumPy cannot read as a dtype (``"foo"``, ``None`` means float64 to NumPy
    and is refused here too) is the same ValueError, never NumPy's TypeError.
    """
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt.name not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {dtype!r}")
    return dt.type


def check_instance(name, value, types):
    """``value`` if it is an instance of ``types`` (a class or a tuple of classes)."""
    if not isinstance(value, types):
        types = types if isinstance(types, tuple) else (types,)
        raise ValueError(f"{name} must be a {' or '.join(t.__name__ for t in types)}, "
                         f"got {type(value).__name__}")
    return value


def check_protocol(name, value, attributes, what):
    """``value`` if it has every attribute in ``attributes`` (duck-typed arguments).

    For parameters that accept any object shaped like ``what`` (e.g. an O(n d)
    stand-in for a world); a None, a string or a number is the same ValueError.
    """
    missing = [a for a in attributes if not hasattr(value, a)]
    if missing:
        raise ValueError(f"{name} must be a {what} (with {', '.join(attributes)}), got "
                         f"{type(value).__name__}")
    return value


def check_callable(name, value):
    """``value`` if it is None or callable."""
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be callable or None, got {type(value).__name__}")
    return value


def memory_limit():
    """Bytes one array may take: the machine's physical memory (1 TiB if unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):  # pragma: no cover - non-POSIX
        return 1 << 40


def _bytes_text(n):
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def check_memory(name, shape, dtype=np.float64, copies=1):
    """Refuse, before allocating, work whose ``copies`` arrays of ``shape`` exceed memory.

    ``name`` is the parameter (or parameters) that set the size; the message states
    the memory the request would need and the limit (:func:`memory_limit`).
    """
    need = copies * np.dtype(dtype).itemsize * math.prod(int(s) for s in shape)
    limit = memory_limit()
    if need > limit:
        raise ValueError(f"{name}: {tuple(int(s) for s in shape)} {np.dtype(dtype).name} would "
                         f"need {_bytes_text(need)} of memory, more than the "
                         f"{_bytes_text(limit)} of this machine")
    return need
