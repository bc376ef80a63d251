"""Every claim of the two papers as a runnable check with a verdict, and the runner.

Check modules are the ``fp_*``, ``lb_*``, ``ll_*`` and ``img_*`` modules of
this package (Feature Purification; its lower bounds; Li & Li's robust /
non-robust features; the image experiments).  :func:`load_checks` imports them
all, which registers their checks in :data:`REGISTRY`.  Users' checks come
from installed packages (the entry-point group ``theorylab.checks``) and from
modules (``theorylab check --module PATH_OR_MODULE``, :func:`load_module`).

Run checks with ``theorylab check`` (or ``python -m proofs_check``), or from
Python::

    import proofs_check as pc

    results = pc.run(["fp.v1_clean_features_l2"], regime="quick", seeds=3)
    print(pc.format_table(results))
    pc.write_report(results, "report.md")
"""

from __future__ import annotations

import difflib
import importlib
import numbers
import pkgutil

from ._harness import (CONVERGED, ERROR, FAIL, INCONCLUSIVE, NOT_CONVERGED_REASON, PASS, REGISTRY,
                       SOURCES, Check, CheckResult, Criterion, CriterionResult, Source,
                       convergence_measurements, evaluate, register)
from ._loading import GROUP, load_all, load_entry_points, load_module
from ._runner import format_table, run_checks, write_json, write_markdown, write_timings

__all__ = ["Check", "Criterion", "CheckResult", "CriterionResult", "Source", "evaluate",
           "register", "REGISTRY", "SOURCES", "GROUP", "load_checks", "load_all",
           "load_module", "load_entry_points", "run", "select", "format_table", "write_report",
           "write_json", "write_timings", "PASS", "FAIL", "INCONCLUSIVE", "ERROR",
           "CONVERGED", "NOT_CONVERGED_REASON", "convergence_measurements"]

_PREFIXES = ("fp_", "lb_", "ll_", "img_")


def load_checks():
    """Import theorylab's check modules once and return the registry (id -> Check)."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith(_PREFIXES):
            importlib.import_module(f"{__name__}.{info.name}")
    return REGISTRY


def _matches(check_id, pattern):
    return check_id == pattern or (pattern.endswith(".") and check_id.startswith(pattern))


def select(patterns, registry=None):
    """The registered checks named by ``patterns``, in registry order.

    Parameters
    ----------
    patterns : iterable of str
        Check ids, or prefixes ending in ``"."`` (``"fp."`` selects a group).
    registry : dict, optional
        id -> Check; default :data:`REGISTRY`.

    Returns
    -------
    list of Check

    Raises
    ------
    ValueError
        Naming the patterns that match no check, with the closest ids.

    Examples
    --------
    >>> import proofs_check as pc
    >>> registry = pc.load_checks()
    >>> [c.id for c in pc.select(["fp.v1_clean_features_l2"])]
    ['fp.v1_clean_features_l2']
    >>> pc.select(["fp.v1_clean_feature_l2"])
    Traceback (most recent call last):
    ...
    ValueError: unknown check ids ['fp.v1_clean_feature_l2'] ('fp.v1_clean_feature_l2': did you mean 'fp.v1_clean_features_l2'...?)
    """
    registry = REGISTRY if registry is None else registry
    patterns = list(patterns)
    unknown = [p for p in patterns if not any(_matches(cid, p) for cid in registry)]
    if unknown:
        hints = []
        for p in unknown:
            close = difflib.get_close_matches(p, list(registry), n=2)
            if close:
                hints.append(f"{p!r}: did you mean {' or '.join(map(repr, close))}?")
        raise ValueError(f"unknown check ids {unknown}" + (f" ({'; '.join(hints)})" if hints
                                                           else ""))
    return [c for cid, c in registry.items() if any(_matches(cid, p) for p in patterns)]


def run(checks=None, regime="quick", seeds=3, jobs=1, *, figures_dir=None, progress=False,
        params_override=None):
    """Run checks on several seeds and judge each one against its criteria.

    Parameters
    ----------
    checks : Check, str, or list of Check or str, optional
        Checks, or registered ids / group prefixes such as ``"fp."``.  Default:
        every registered check (theorylab's own are registered first).
    regime : {"quick", "full"}
        Which of each check's parameter sets to run.
    seeds : int or sequence of int, default 3
        ``n`` means seeds ``0 .. n-1``.
    jobs : int, default 1
        Worker processes.  Results do not depend on it.  With ``jobs > 1`` every
        check must be registered from an importable place (theorylab, an entry
        point, a module file or an importable module), since workers register
        the checks again by id.
    figures_dir : str, optional
        Save each check's figure there as ``<id>.png``.
    progress : bool, default False
        Show a progress bar.
    params_override : dict, optional
        Merged into every check's parameters.

    Returns
    -------
    list of CheckResult
        One per check, with ``verdict`` in ``PASS``, ``FAIL``, ``INCONCLUSIVE``
        or ``ERROR`` (the check raised, or a criterion names a key that no seed
        measured); print them with :func:`format_table`.

    Raises
    ------
    ValueError
        For an unknown id, a regime other than quick / full, no seeds, or
        ``jobs < 1``, before anything runs.

    Examples
    --------
    >>> import proofs_check as pc
    >>> results = pc.run("fp.v1_clean_features_l2", seeds=1)  # doctest: +SKIP
    >>> results[0].verdict  # doctest: +SKIP
    'PASS'
    """
    if regime not in ("quick", "full"):
        raise ValueError(f"regime must be 'quick' or 'full', got {regime!r}")
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {seeds}")
        seeds = list(range(int(seeds)))
    else:
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("seeds must name at least one seed")
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if checks is None:
        load_checks()
        chosen = list(REGISTRY.values())
    else:
        if isinstance(checks, (str, Check)):
            checks = [checks]
        if any(isinstance(c, str) for c in checks):
            load_checks()
        chosen = []
        for c in checks:
            chosen += select([c]) if isinstance(c, str) else [c]
        bad = [c for c in chosen if not isinstance(c, Check)]
        if bad:
            raise ValueError(f"checks must be Check objects or ids, got {bad[0]!r}")
        chosen = list({c.id: c for c in chosen}.values())
    if jobs > 1:
        for c in chosen:
            source = SOURCES.get(c.id)
            if REGISTRY.get(c.id) is not c or source is None or not source.reloadable:
                raise ValueError(f"check {c.id!r} is not registered from a module a worker "
                                 f"process can import (defined in a notebook or script?); "
                                 f"run it with jobs=1, or put it in a module")
    return run_checks(chosen, regime, seeds, figures_dir=figures_dir, progress=progress,
                      params_override=params_override, jobs=jobs)


def write_report(results, path):
    """Write the Markdown report of ``results`` (one section per check) to ``path``.

    The header lists the papers of the checks that ran; each section gives the
    claim, the regime, every criterion against its measurements, the verdict
    and the check's figure.
    """
    write_markdown(results, path)
