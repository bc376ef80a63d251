"""Finding checks: theorylab's own, installed packages' entry points, users' modules.

Three sources fill :data:`~proofs_check.REGISTRY`:

* theorylab's check modules (:func:`proofs_check.load_checks`);
* the entry points of the group ``theorylab.checks`` of every installed
  distribution: each names either a module whose import registers checks, or
  a callable returning a mapping ``id -> Check`` (theorylab's own entry point
  is ``proofs_check:load_checks``);
* modules given by the user (``theorylab check --module PATH_OR_MODULE``): a
  ``.py`` file or an importable dotted name whose import calls
  :func:`proofs_check.register`.

Every source is loaded once per process (loading it again is a no-op), and
:data:`~proofs_check.SOURCES` records where each check came from, which is
also how the worker processes of ``--jobs N`` register the same checks.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys

from ._harness import REGISTRY, SOURCES, Source, loading_from

__all__ = ["load_module", "load_entry_points", "load_all", "reload_sources", "GROUP"]

#: The entry-point group installed packages declare their checks in.
GROUP = "theorylab.checks"
_THEORYLAB_ENTRY = "proofs_check:load_checks"


def _is_path(spec):
    return spec.endswith(".py") or "/" in spec or os.sep in spec or os.path.isfile(spec)


def _module_name_for(path):
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    digest = hashlib.sha1(path.encode()).hexdigest()[:10]
    return f"theorylab_user_checks.{stem}_{digest}"


def _exec_file(spec):
    path = os.path.abspath(spec)
    if not os.path.isfile(path):
        raise ValueError(f"module {spec}: no such file")
    name = _module_name_for(path)
    if name in sys.modules:
        return sys.modules[name]
    folder = os.path.dirname(path)
    if folder not in sys.path:  # as `python file.py` does: its neighbours import
        sys.path.insert(0, folder)
    loader_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_module(spec):
    """Import a user's check module (a ``.py`` path or a dotted name) once.

    Parameters
    ----------
    spec : str
        A path to a Python file, or the dotted name of an importable module.

    Returns
    -------
    list of str
        The ids of the checks the module registered (empty when it was loaded
        before in this process).

    Raises
    ------
    ValueError
        If the file or module does not exist, or importing it raised (the
        message names the module and the exception; the original is chained).
    """
    spec = os.fspath(spec)
    before = set(REGISTRY)
    source = (Source("module", os.path.abspath(spec), spec) if _is_path(spec)
              else Source("module", spec))
    with loading_from(source):
        try:
            if _is_path(spec):
                _exec_file(spec)
            else:
                try:
                    importlib.import_module(spec)
                except ModuleNotFoundError as exc:
                    if exc.name and spec.split(".")[0] == exc.name.split(".")[0]:
                        raise ValueError(f"module {spec}: no such file and no importable "
                                         f"module of that name") from None
                    raise
        except ValueError as exc:
            if str(exc).startswith(f"module {spec}:"):
                raise
            raise ValueError(f"module {spec}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise ValueError(f"module {spec}: {type(exc).__name__}: {exc}") from exc
    return [cid for cid in REGISTRY if cid not in before]


def _entry_points():
    from importlib.metadata import entry_points

    return sorted(entry_points(group=GROUP), key=lambda e: e.name)


def _load_entry_point(ep):
    from . import load_checks

    if ep.value.replace(" ", "") == _THEORYLAB_ENTRY:
        load_checks()
        return
    source = Source("entry point", ep.name, f"{ep.name} = {ep.value}")
    with loading_from(source):
        try:
            obj = ep.load()
            found = obj() if callable(obj) else None
        except Exception as exc:
            raise ValueError(f"entry point {ep.name} = {ep.value} (group {GROUP}): "
                             f"{type(exc).__name__}: {exc}") from exc
    # A callable may return checks it did not register itself.
    for cid, check in dict(found or {}).items():
        if REGISTRY.get(cid) is not check:
            with loading_from(source):
                from ._harness import register

                register(check, replace=cid in REGISTRY and SOURCES.get(cid) == source)


def load_entry_points(names=None):
    """Load the ``theorylab.checks`` entry points of the installed distributions.

    Parameters
    ----------
    names : iterable of str, optional
        Load only the entry points of these names (default: all).

    Raises
    ------
    ValueError
        Naming the entry point, if loading it raised.
    """
    wanted = None if names is None else set(names)
    for ep in _entry_points():
        if wanted is None or ep.name in wanted:
            _load_entry_point(ep)


def load_all(modules=(), *, entry_points=True):
    """Register theorylab's checks, the installed packages' and ``modules``.

    Parameters
    ----------
    modules : iterable of str
        Paths or dotted names of users' check modules (:func:`load_module`).
    entry_points : bool, default True
        Also load every ``theorylab.checks`` entry point.

    Returns
    -------
    dict
        The registry, check id -> Check.
    """
    from . import load_checks

    load_checks()
    if entry_points:
        load_entry_points()
    for spec in modules:
        load_module(spec)
    return REGISTRY


def reload_sources(sources):
    """Register again, in a fresh process, the checks of the given :class:`Source` s."""
    from . import load_checks

    load_checks()
    for source in sources:
        if source.kind == "module":
            load_module(source.target)
        elif source.kind == "entry point":
            load_entry_points([source.target])
        elif source.kind == "register" and source.reloadable:
            importlib.import_module(source.target)
