"""Keyed, declared pipeline stages with one process-wide cache.

A :class:`Stage` names a step of a paper's pipeline (train the clean network,
fine-tune it adversarially, ...), the parameters its result depends on and a
code version.  Its result is cached under (stage name, version, seed, the values
of those parameters), so every caller in a process that asks for the same stage
with the same parameters (the checks of a regime, a sweep cell, a user's script)
gets the same object, and a stage whose code changes gets a new version and
never serves a stale result.  :func:`clear` empties every stage at once (asv's
``setup_cache`` idea, with the key made explicit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

__all__ = ["Stage", "clear", "cached_keys"]

_CACHE = {}


@dataclass(frozen=True)
class Stage:
    """One cached step of a pipeline.

    Attributes
    ----------
    name : str
    version : str
        Bumped whenever the stage's code changes what it computes.
    keys : tuple of str or None
        The parameters the result depends on (others are ignored by the key);
        None keys on every parameter (their JSON form).
    compute : callable
        ``compute(seed, params) -> result``.
    """

    name: str
    version: str
    keys: tuple
    compute: Callable

    def key(self, seed, params):
        """The cache key of this stage for ``seed`` and ``params``."""
        if self.keys is None:
            return (self.name, self.version, seed,
                    json.dumps(params, sort_keys=True, default=str))
        # A parameter absent from ``params`` keys as None (the stage's default).
        return (self.name, self.version, seed) + tuple(
            (k, _hashable(params.get(k))) for k in self.keys)

    def __call__(self, seed, params):
        """The stage's result for ``seed`` and ``params`` (computed once per process)."""
        key = self.key(seed, params)
        if key not in _CACHE:
            _CACHE[key] = self.compute(seed, params)
        return _CACHE[key]


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def clear():
    """Forget every cached stage result (tests use it to measure from scratch)."""
    _CACHE.clear()


def cached_keys():
    """The keys currently cached (for inspection and tests)."""
    return list(_CACHE)
