"""Is Numba's cache warm?  What the command line reads to announce a first compile.

Numba compiles a kernel on its first call and, with caching on (see
:mod:`._jit`), writes it to an index file (``.nbi``) plus data files under
``NUMBA_CACHE_DIR`` (or ``__pycache__`` beside the kernel's module).  The
index file of a kernel that was never compiled does not exist, so counting the
missing ones says, without compiling anything, whether a command is about to
spend many seconds in the compiler.  Library calls never print anything about
it; the CLI prints one line (:func:`cold_cache_notice`).
"""

from __future__ import annotations

import importlib
import os
import pkgutil

import numba

from ._jit import CACHE_ENABLED

__all__ = ["kernel_dispatchers", "missing_from_cache", "compile_estimate", "cold_cache_notice"]

# Seconds to compile one kernel, on average, measured on the shared 2-core development
# machine: the test suite's warm-up compiled 56 of the 62 kernels in 163 s (4 s from a warm
# cache); one quick check (fp.v1_clean_features_l2, one seed) compiled 10 in ~40 s.
SECONDS_PER_KERNEL = 3.0
# The serial twins the check runner's workers compile (no parfor passes): 41 kernels in
# 39 s (benchmarks/bench_compile.py --serial, load 3.2, 2026-12-03), split over the workers.
SERIAL_SECONDS_PER_KERNEL = 1.0
# The notice is printed when more than this fraction of the kernels is not cached: a
# cold cache (fresh clone, cleared cache, new Numba), not the few kernels a particular
# command never needed.
COLD_FRACTION = 0.5


def kernel_dispatchers():
    """Every Numba dispatcher defined in :mod:`theorylab._kernels`, by module order."""
    from theorylab import _kernels

    found = []
    for info in sorted(pkgutil.iter_modules(_kernels.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{_kernels.__name__}.{info.name}")
        for obj in vars(module).values():
            if (isinstance(obj, numba.core.dispatcher.Dispatcher)
                    and getattr(obj.py_func, "__module__", None) == module.__name__):
                found.append(obj)
    return found


def _index_path(dispatcher, serial=False):
    cache = getattr(dispatcher, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    path = getattr(cache_file, "_index_path", None)
    if serial and path and dispatcher.targetoptions.get("parallel"):
        # The serial twin (_jit._serial_twin) is the same code under "<qualname>__serial".
        q = dispatcher.py_func.__qualname__
        head, tail = os.path.split(path)
        path = os.path.join(head, tail.replace(f".{q}-", f".{q}__serial-", 1))
    return path


def missing_from_cache(serial=False):
    """``(missing, total)``: kernels with no cache index file, and all kernels.

    ``serial=True`` asks about the serial twins the check runner's workers load
    (``THEORYLAB_SERIAL_KERNELS=1``) instead of this process's builds.

    With caching off (``THEORYLAB_NUMBA_CACHE=0``) every kernel counts as
    missing: each process compiles what it calls.
    """
    dispatchers = kernel_dispatchers()
    if not CACHE_ENABLED:
        return len(dispatchers), len(dispatchers)
    missing = 0
    for d in dispatchers:
        path = _index_path(d, serial)
        if path is None or not os.path.exists(path):
            missing += 1
    return missing, len(dispatchers)


def compile_estimate(n_kernels, serial=False, workers=1):
    """Rough seconds to compile ``n_kernels`` kernels (at least 10, in steps of 10).

    ``serial``: the serial twins, compiled side by side by ``workers`` processes.
    """
    per = SERIAL_SECONDS_PER_KERNEL / max(1, workers) if serial else SECONDS_PER_KERNEL
    return max(10, int(round(n_kernels * per / 10.0)) * 10)


def cold_cache_notice(uses=None, serial=False, workers=1):
    """The one-line first-run notice, or ``None`` when the cache is warm.

    Parameters
    ----------
    uses : int, optional
        About how many kernels the command calls (a whole ``theorylab check``
        about 50, training one network about 10); the estimate counts
        ``min(uses, missing)`` kernels.  Default: every missing kernel.
    serial : bool, default False
        The command's kernels run in worker processes as serial twins (the
        check runner with ``--jobs > 1``): their cache files are asked about.
    workers : int, default 1
        Processes compiling side by side (with ``serial``).
    """
    missing, total = missing_from_cache(serial)
    if total == 0 or missing <= COLD_FRACTION * total:
        return None
    seconds = compile_estimate(missing if uses is None else min(uses, missing), serial,
                               workers)
    if not CACHE_ENABLED:
        return (f"compiling kernels, about {seconds} s (THEORYLAB_NUMBA_CACHE=0: not cached "
                "for next time)")
    return f"compiling kernels, about {seconds} s, cached for next time"
