"""The one thread-limiting helper: Numba's kernel threads and every BLAS, together.

Results never depend on a thread count (kernels reduce over fixed chunks and
their BLAS calls are pinned to one thread, see ``_blas``), but NumPy's own
threaded BLAS (``@`` in Python code) sums in a thread-dependent order, and
spinning threads of several processes oversubscribe the cores.  The check
runner, the sweep cells and the image experiments therefore run with limited
threads, through this module only.
"""

from __future__ import annotations

import contextlib

import numba

from ._jit import kernel_threads

__all__ = ["limit_threads", "limit_process_threads", "numba_version"]


@contextlib.contextmanager
def limit_threads(numba_threads=None, blas_threads=1):
    """Run the block with at most ``numba_threads`` kernel threads and ``blas_threads`` BLAS ones.

    ``numba_threads=None`` leaves Numba's count as it is.  Both are restored on exit.
    """
    from threadpoolctl import threadpool_limits

    with contextlib.ExitStack() as stack:
        stack.enter_context(threadpool_limits(limits=blas_threads, user_api="blas"))
        if numba_threads is not None:
            stack.enter_context(kernel_threads(numba_threads))
        yield


def limit_process_threads(numba_threads=1, blas_threads=1):
    """Limit this process's threads for its whole lifetime (a worker's initializer)."""
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(max(1, min(int(numba_threads), numba.config.NUMBA_NUM_THREADS)))
    # threadpool_limits acts when called; keeping the object keeps nothing alive.
    threadpool_limits(limits=blas_threads, user_api="blas")


def numba_version():
    """The installed Numba's version string (for run environments and reports)."""
    return numba.__version__
