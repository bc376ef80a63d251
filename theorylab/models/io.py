"""Loading any saved theorylab model from its ``.npz`` file."""

from __future__ import annotations

import json

import numpy as np

__all__ = ["load", "register"]

_LOADERS = {}


def register(cls):
    """Make ``load`` understand files whose ``kind`` is ``cls.kind``."""
    _LOADERS[cls.kind] = cls
    return cls


def load(path):
    """Read a model written by any model's ``save``.

    Raises
    ------
    ValueError
        If the file has no ``kind`` entry or an unknown one.
    """
    with np.load(path, allow_pickle=False) as data:
        if "kind" not in data:
            raise ValueError(f"{path}: not a theorylab model file (no 'kind' entry)")
        kind = str(data["kind"])
        if kind not in _LOADERS:
            raise ValueError(f"{path}: unknown model kind {kind!r}; known: {sorted(_LOADERS)}")
        meta = json.loads(str(data["metadata"])) if "metadata" in data else {}
        arrays = {name: data[name] for name in data.files}
    return _LOADERS[kind]._from_npz(arrays, meta)
