"""The one place where Numba's compilation policy is set.

Every kernel in :mod:`theorylab._kernels` is decorated with :func:`jit`, so the
policy (nopython, caching, no ``fastmath``) lives here and nowhere else.

Caching is on by default and writes where Numba is told to (``NUMBA_CACHE_DIR``
is honoured by Numba itself).  Set ``THEORYLAB_NUMBA_CACHE=0`` to turn it off,
for instance when editing kernels: Numba does not notice edits in a jitted
function imported from another module (numba #1833), so a stale cache is possible
while developing.
"""

from __future__ import annotations

import contextlib
import os
import types

import numba

from ._blas import pin_numba_blas

__all__ = ["jit", "prange", "get_num_threads", "CACHE_ENABLED", "SERIAL_KERNELS", "SERIAL_ENV",
           "n_chunks", "kernel_threads"]

prange = numba.prange
# The current kernel thread count (work splits, never results, may depend on it).  From
# Python only: a kernel that calls it cannot be cached.
get_num_threads = numba.get_num_threads

# OpenMP threads that spin while waiting take the cores from every other process: on
# two busy cores a 2 ms kernel took 64-96 ms with the default (active) policy and 8 ms
# with a passive one.  Respect a user's choice; must be set before the pool launches.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Launch Numba's thread pool now.  A cached non-parallel kernel that calls a
# parallel one does not launch the pool when it is loaded from the cache, and
# the first call then crashes the process (numba #8578, #4807).  Every kernel
# module imports this one, and get_num_threads() launches the pool.
numba.get_num_threads()
# Kernels parallelise over fixed chunks themselves; the BLAS they call runs single-threaded
# so that results never depend on a thread count (see _blas).
pin_numba_blas()

CACHE_ENABLED = os.environ.get("THEORYLAB_NUMBA_CACHE", "1").strip().lower() not in {
    "0",
    "false",
    "no",
    "off",
}

# A process that runs its kernels on one thread (the check runner's workers) gains nothing
# from parallel=True, whose compile (the parfor passes) is most of a cold start: 136 of
# 146 s of the two-layer kernels and 139 of 144 s of the CNN's (benchmarks/bench_compile.py,
# loaded machine).  With THEORYLAB_SERIAL_KERNELS=1, read once at import, every kernel is
# compiled without it: prange runs as range over the same fixed chunks, in chunk order,
# which is the order the parallel kernels reduce in, so the bits are the same.
SERIAL_ENV = "THEORYLAB_SERIAL_KERNELS"
SERIAL_KERNELS = os.environ.get(SERIAL_ENV, "0").strip().lower() in {"1", "true", "yes", "on"}


def _serial_twin(f):
    # Numba's cache key does not include the parallel flag: the serial build gets its own
    # name, hence its own cache files, beside the parallel one.
    twin = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__,
                              f.__closure__)
    twin.__qualname__ = f.__qualname__ + "__serial"
    twin.__doc__, twin.__module__ = f.__doc__, f.__module__
    twin.__kwdefaults__ = f.__kwdefaults__
    return twin


def jit(func=None, *, parallel=False):
    """Compile ``func`` in nopython mode with theorylab's policy.

    ``fastmath`` is never enabled: several kernels test for zero norms and
    non-finite values, which ``fastmath`` silently breaks (numba #2919).

    Parameters
    ----------
    func : callable, optional
        The function to compile (when used as ``@jit`` without arguments).
    parallel : bool, default False
        Allow ``prange`` loops.  Parallel kernels must not draw random numbers
        and must reduce over fixed chunks (see :func:`n_chunks`).
    """

    def wrap(f):
        if parallel and SERIAL_KERNELS:
            return numba.njit(_serial_twin(f), cache=CACHE_ENABLED, parallel=False, nogil=True)
        return numba.njit(f, cache=CACHE_ENABLED, parallel=parallel, nogil=True)

    return wrap if func is None else wrap(func)


@numba.njit(cache=CACHE_ENABLED)
def n_chunks(n):
    """Number of fixed-size chunks for a deterministic reduction over ``n`` items.

    Depends on ``n`` only, never on the thread count, so partial sums combined
    in chunk order give the same bits for any ``numba.set_num_threads``.
    """
    return (n + 255) // 256


@contextlib.contextmanager
def kernel_threads(n):
    """Run the block with at most ``n`` kernel threads, restoring the count after.

    The layers above use this instead of importing Numba: the thread count is a
    kernel-layer setting.  Results do not depend on it (kernels chunk by N).
    """
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)
