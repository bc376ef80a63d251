"""Sweep specifications: a TOML file that expands into cells, each with its own seed.

A spec names one experiment, the axes swept and their values, the replicate
seeds, and the parameters held fixed::

    [sweep]
    name = "tau50_linf"          # optional, default: the file's stem
    base_seed = 0                # optional, default 0
    seeds = 3                    # replicates 0, 1, 2 (or a list of ints)

    [experiment]
    kind = "pipeline"            # "pipeline", "check" or "callable"
    # kind = "check":    check = "fp.v3_adversarial_purifies_linf", regime = "quick"
    # kind = "callable": function = "package.module:function"

    [axes]                       # the cartesian product, in file order
    d = [64, 128, 256]
    norm = ["2", "inf"]

    [fixed]
    k = 4

Each cell's parameters are ``fixed`` merged with one value per axis.  Its seed
comes from ``SeedSequence(base_seed, spawn_key=H)`` where ``H`` is the SHA-256
of the canonical JSON of (parameters, replicate): a cell's seed depends on its
own parameters only, so adding an axis value (or moving a parameter between
``fixed`` and ``axes``) never changes another cell's seed or result.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Spec", "Cell", "load_spec", "parse_spec", "canonical_json", "cell_seed",
           "EXPERIMENT_KINDS"]

EXPERIMENT_KINDS = ("pipeline", "check", "callable")
_TABLES = ("sweep", "experiment", "axes", "fixed")
_RESERVED = ("replicate", "seed")  # cell columns; a parameter may not take these names


def _toml():
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:
        try:
            import tomli as tomllib  # the same parser, packaged for Python 3.10
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "reading a sweep spec on Python < 3.11 needs the 'tomli' package: "
                "pip install tomli") from None
    return tomllib


def canonical_json(obj):
    """JSON with sorted keys and no spaces: equal parameters give equal text.

    Python's float repr is the shortest string that round-trips, so the text
    identifies values bit for bit; NaN and infinities are written as
    ``NaN`` / ``Infinity``.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _digest_words(text):
    # Eight 32-bit words of SHA-256: a spawn key that no two parameter sets share.
    h = hashlib.sha256(text.encode()).digest()
    return tuple(int.from_bytes(h[i:i + 4], "big") for i in range(0, 32, 4))


def cell_seed(base_seed, params, replicate):
    """The seed of one cell: an int in [0, 2**63), fixed by its parameters and replicate.

    Parameters
    ----------
    base_seed : int
    params : dict
        The cell's parameters (JSON-serialisable).
    replicate : int

    Returns
    -------
    int
        Fits SQLite's signed 64-bit integers and any ``seed=`` of the library.
    """
    key = _digest_words(canonical_json({"params": params, "replicate": replicate}))
    ss = np.random.SeedSequence(base_seed, spawn_key=key)
    hi, lo = (int(w) for w in ss.generate_state(2, np.uint32))
    return ((hi << 32) | lo) >> 1


@dataclass(frozen=True)
class Cell:
    """One point of the grid: parameters, replicate, seed and a stable key."""

    index: int
    params: dict
    replicate: int
    seed: int
    key: str

    def task(self, experiment):
        """The picklable description a worker runs (see :func:`~.experiments.run_cell`)."""
        return {"key": self.key, "experiment": dict(experiment), "params": dict(self.params),
                "replicate": self.replicate, "seed": self.seed}


@dataclass
class Spec:
    """A validated sweep specification (see the module docstring).

    Attributes
    ----------
    name : str
    experiment : dict
        ``kind`` plus its settings (``check``/``regime``, or ``function``).
    axes : dict
        Axis name -> list of values, in file order.
    fixed : dict
    seeds : list of int
        Replicate labels.
    base_seed : int
    path : str or None
        Where the spec was read from.
    """

    name: str
    experiment: dict
    axes: dict
    fixed: dict = field(default_factory=dict)
    seeds: list = field(default_factory=lambda: [0])
    base_seed: int = 0
    path: str | None = None

    @property
    def experiment_id(self):
        """A string naming the experiment, stored with the results."""
        e = self.experiment
        if e["kind"] == "check":
            return f"check:{e['check']}:{e.get('regime', 'quick')}"
        if e["kind"] == "callable":
            return f"callable:{e['function']}"
        return "pipeline"

    def __len__(self):
        return math.prod(len(v) for v in self.axes.values()) * len(self.seeds)

    def cells(self):
        """Every cell, in a deterministic order (axes in file order, replicates innermost)."""
        names = list(self.axes)
        out = []
        for values in itertools.product(*(self.axes[n] for n in names)):
            params = dict(self.fixed)
            params.update(zip(names, values))
            for r in self.seeds:
                key = hashlib.sha256(canonical_json({
                    "experiment": self.experiment_id, "params": params, "replicate": r,
                    "base_seed": self.base_seed}).encode()).hexdigest()
                out.append(Cell(len(out), params, r, cell_seed(self.base_seed, params, r), key))
        return out

    def to_dict(self):
        return {"name": self.name, "experiment": self.experiment, "axes": self.axes,
                "fixed": self.fixed, "seeds": self.seeds, "base_seed": self.base_seed}


def _check_value(where, v):
    # TOML values allowed as parameters: JSON types only (no dates/times).
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return
    if isinstance(v, float):
        return
    if isinstance(v, list):
        for i, x in enumerate(v):
            _check_value(f"{where}[{i}]", x)
        return
    if isinstance(v, dict):
        for k, x in v.items():
            _check_value(f"{where}.{k}", x)
        return
    raise ValueError(f"{where}: {type(v).__name__} values are not supported (use numbers, "
                     "strings, booleans, arrays or tables)")


def _as_int(where, v, low=0):
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{where} must be an integer >= {low}, got {v!r}")
    return v


def parse_spec(data, *, name=None, path=None):
    """Validate a spec already read into a dict (e.g. from TOML) and return a :class:`Spec`.

    Raises
    ------
    ValueError
        Naming the offending table or key: unknown tables, an unknown
        experiment kind, an axis with no values or duplicated values, a
        parameter both fixed and swept, malformed seeds.
    """
    if not isinstance(data, dict):
        raise ValueError("spec must be a table")
    unknown = sorted(set(data) - set(_TABLES))
    if unknown:
        raise ValueError(f"spec: unknown table(s) {unknown}; allowed: {list(_TABLES)}")
    for t in _TABLES:
        if t in data and not isinstance(data[t], dict):
            raise ValueError(f"[{t}] must be a table")
    sweep = dict(data.get("sweep", {}))
    bad = sorted(set(sweep) - {"name", "base_seed", "seeds", "description"})
    if bad:
        raise ValueError(f"[sweep]: unknown key(s) {bad}; allowed: name, base_seed, seeds, "
                         "description")
    name = sweep.get("name", name or "sweep")
    if not isinstance(name, str) or not name:
        raise ValueError(f"sweep.name must be a non-empty string, got {name!r}")
    base_seed = _as_int("sweep.base_seed", sweep.get("base_seed", 0))
    seeds = sweep.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = list(range(_as_int("sweep.seeds", seeds, 1)))
    elif isinstance(seeds, list) and seeds:
        seeds = [_as_int(f"sweep.seeds[{i}]", s) for i, s in enumerate(seeds)]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"sweep.seeds has duplicated values: {seeds}")
    else:
        raise ValueError(f"sweep.seeds must be a count >= 1 or a non-empty list of ints, "
                         f"got {seeds!r}")

    experiment = _parse_experiment(dict(data.get("experiment", {})))

    axes = data.get("axes", {})
    if not axes:
        raise ValueError("[axes] must name at least one axis with its values")
    for a, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"axes.{a} must be a non-empty array of values, got {values!r}")
        _check_value(f"axes.{a}", values)
        texts = [canonical_json(v) for v in values]
        if len(set(texts)) != len(texts):
            raise ValueError(f"axes.{a} has duplicated values: {values}")
    fixed = dict(data.get("fixed", {}))
    _check_value("fixed", fixed)
    both = sorted(set(axes) & set(fixed))
    if both:
        raise ValueError(f"parameter(s) {both} are both in [axes] and in [fixed]")
    reserved = sorted((set(axes) | set(fixed)) & set(_RESERVED))
    if reserved:
        raise ValueError(f"parameter name(s) {reserved} are reserved (use [sweep] seeds)")
    spec = Spec(name=name, experiment=experiment, axes={a: list(v) for a, v in axes.items()},
                fixed=fixed, seeds=seeds, base_seed=base_seed, path=path)
    from .experiments import validate_params  # experiment-specific checks, before any work

    validate_params(spec)
    return spec


def _parse_experiment(e):
    kind = e.get("kind")
    if kind not in EXPERIMENT_KINDS:
        raise ValueError(f"experiment.kind must be one of {list(EXPERIMENT_KINDS)}, got {kind!r}")
    allowed = {"pipeline": {"kind", "warm"},
               "check": {"kind", "check", "regime", "strict", "warm"},
               "callable": {"kind", "function", "warm"}}[kind]
    bad = sorted(set(e) - allowed)
    if bad:
        raise ValueError(f"[experiment] (kind={kind!r}): unknown key(s) {bad}; allowed: "
                         f"{sorted(allowed)}")
    if kind == "check":
        if not isinstance(e.get("check"), str):
            raise ValueError("experiment.check must name a check id (see theorylab check --list)")
        e.setdefault("regime", "quick")
        if e["regime"] not in ("quick", "full"):
            raise ValueError(f"experiment.regime must be 'quick' or 'full', got {e['regime']!r}")
        if not isinstance(e.setdefault("strict", True), bool):
            raise ValueError("experiment.strict must be true or false")
    if kind == "callable":
        f = e.get("function")
        if not (isinstance(f, str) and f.count(":") == 1 and all(f.split(":"))):
            raise ValueError(f"experiment.function must be 'package.module:function', got {f!r}")
    if "warm" in e:
        from .warm import FAMILIES

        if not (isinstance(e["warm"], list) and set(e["warm"]) <= set(FAMILIES)):
            raise ValueError(f"experiment.warm must be a list of kernel families from "
                             f"{list(FAMILIES)}, got {e['warm']!r}")
    return e


def load_spec(path):
    """Read and validate a TOML sweep spec.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Spec
    """
    path = os.fspath(path)
    tomllib = _toml()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"spec: no such file {path!r}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"spec {path!r} is not valid TOML: {exc}") from None
    stem = os.path.splitext(os.path.basename(path))[0]
    return parse_spec(data, name=stem, path=os.path.abspath(path))
