"""Loading any saved theorylab model from its ``.npz`` file.

Every way a file can be malformed is a ``ValueError`` that names the file and
the entry: a missing, unreadable or truncated file, an archive that is not a
zip (``.npz``) file, no ``kind`` or an unknown one, a ``metadata`` entry that is
not JSON, a missing array, an array of the wrong shape, dtype or with NaN or
infinite values.  The models' ``_from_npz`` read their entries through
:func:`npz_array`, :func:`npz_scalar` and :func:`npz_meta`, whose messages name
the entry; :func:`load` prefixes the path.
"""

from __future__ import annotations

import json
import numbers
import os
import zipfile
import zlib

import numpy as np

from .._validation import check_array

__all__ = ["load", "register", "read_npz", "npz_array", "npz_scalar", "npz_meta"]

_LOADERS = {}
_REQUIRED = object()
# What reading a damaged archive member can raise (zip structure, inflate, .npy header).
_READ_ERRORS = (zipfile.BadZipFile, EOFError, OSError, zlib.error, ValueError,
                NotImplementedError, RuntimeError)


def register(cls):
    """Make ``load`` understand files whose ``kind`` is ``cls.kind``."""
    _LOADERS[cls.kind] = cls
    return cls


def read_npz(path):
    """Every array of the ``.npz`` file ``path`` as a dict (read in full, file closed).

    Raises
    ------
    ValueError
        Naming ``path``: no such file, a directory, not a zip archive (another
        format, or truncated), or an entry that cannot be read (corrupt data,
        an object array: pickles are never loaded).
    """
    label = _label(path)
    if not hasattr(path, "read"):  # a path (an open binary file is read as it is)
        path = os.fspath(path)
        if not os.path.exists(path):
            raise ValueError(f"{label}: no such file")
        if os.path.isdir(path):
            raise ValueError(f"{label}: is a directory, not an .npz file")
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as exc:
        raise ValueError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    if not is_zip:
        raise ValueError(f"{label}: not an .npz file (not a zip archive: another format, "
                         "or truncated)")
    if hasattr(path, "seek"):
        path.seek(0)
    try:
        data = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise ValueError(f"{label}: not a readable .npz file ({_why(exc)})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # pragma: no cover - a zip is an npz
        raise ValueError(f"{label}: not an .npz file")
    arrays = {}
    with data:
        for name in data.files:
            try:
                arrays[name] = data[name]
            except _READ_ERRORS as exc:
                raise ValueError(f"{label}: entry {name!r} cannot be read "
                                 f"({_why(exc)})") from None
    return arrays


def _label(path):
    # How messages name the file: its path, or an open file's name.
    if hasattr(path, "read"):
        return str(getattr(path, "name", "<file object>"))
    return os.fspath(path)


def _why(exc):
    cls = type(exc)
    name = cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0]}" if text else name


def load(path):
    """Read a model written by any model's ``save``.

    Raises
    ------
    ValueError
        Naming the file and the entry, for every malformed file (see the module
        docstring).
    """
    data = read_npz(path)
    path = _label(path)
    if "kind" not in data:
        raise ValueError(f"{path}: not a theorylab model file (no 'kind' entry)")
    kind_arr = data["kind"]
    if kind_arr.dtype.kind != "U" or kind_arr.ndim != 0:
        raise ValueError(f"{path}: entry 'kind' must be a string naming the model class, got "
                         f"an array of dtype {kind_arr.dtype} and shape {kind_arr.shape}")
    kind = str(kind_arr)
    if kind not in _LOADERS:
        raise ValueError(f"{path}: unknown model kind {kind!r} in entry 'kind'; known: "
                         f"{sorted(_LOADERS)}")
    meta = {}
    if "metadata" in data:
        raw = data["metadata"]
        if raw.dtype.kind != "U" or raw.ndim != 0:
            raise ValueError(f"{path}: entry 'metadata' must be a JSON string, got an array "
                             f"of dtype {raw.dtype} and shape {raw.shape}")
        try:
            meta = json.loads(str(raw))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: entry 'metadata' is not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: entry 'metadata' must be a JSON object, got "
                             f"{type(meta).__name__}")
    if not isinstance(meta.get("user", {}), dict):
        raise ValueError(f"{path}: metadata 'user' must be a JSON object, got "
                         f"{type(meta['user']).__name__}")
    try:
        return _LOADERS[kind]._from_npz(data, meta)
    except ValueError as exc:
        raise ValueError(f"{path}: {kind} file: {exc}") from None
    except (KeyError, TypeError, IndexError, AttributeError) as exc:  # a loader's oversight
        raise ValueError(f"{path}: malformed {kind} file ({type(exc).__name__}: {exc})") from None


# -- helpers of the models' _from_npz ------------------------------------------------

def npz_array(data, name, *, ndim, shape=None, dtype=None, allow_empty=False,
              default=_REQUIRED):
    """Entry ``name`` of a model file as a validated finite float array.

    ``shape`` may hold None for free axes; ``default`` is returned when the
    entry is absent (otherwise a missing entry is a ValueError).
    """
    if name not in data:
        if default is not _REQUIRED:
            return default
        raise ValueError(f"missing entry {name!r}")
    return check_array(f"entry {name!r}", data[name], ndim=ndim, shape=shape, dtype=dtype,
                       allow_empty=allow_empty)


def npz_scalar(data, name, *, integer=False, low=None, low_open=False, default=_REQUIRED):
    """Entry ``name`` of a model file as a finite Python float (or int with ``integer``)."""
    if name not in data:
        if default is not _REQUIRED:
            return default
        raise ValueError(f"missing entry {name!r}")
    arr = np.asarray(data[name])
    if arr.shape not in ((), (1,)) or arr.dtype.kind not in "fiub":
        raise ValueError(f"entry {name!r} must be a number, got an array of dtype "
                         f"{arr.dtype} and shape {arr.shape}")
    value = arr.reshape(()).item()
    if integer:
        if arr.dtype.kind == "f":
            if not (np.isfinite(value) and float(value).is_integer()):
                raise ValueError(f"entry {name!r} must be an integer, got {value!r}")
            value = int(value)
    elif not np.isfinite(value):
        raise ValueError(f"entry {name!r} must be finite, got {value}")
    else:
        value = float(value)
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"entry {name!r} must be {'>' if low_open else '>='} {low}, "
                         f"got {value}")
    return value


def npz_meta(meta, key, *, types=None, default=_REQUIRED):
    """``meta[key]`` (the file's JSON metadata), checked to be one of ``types``."""
    if key not in meta:
        if default is not _REQUIRED:
            return default
        raise ValueError(f"metadata has no {key!r}")
    value = meta[key]
    if types is not None:
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in (
            types if isinstance(types, tuple) else (types,)))
        if not ok:
            raise ValueError(f"metadata {key!r} has the wrong type: {value!r}")
    if isinstance(value, numbers.Real) and not isinstance(value, bool) \
            and not np.isfinite(value):
        raise ValueError(f"metadata {key!r} must be finite, got {value}")
    return value
