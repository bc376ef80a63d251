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

__all__ = ["limit_threads", "limit_process_threads", "numba_version", "blas_kernels"]


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


def blas_kernels():
    """The CPU kernels NumPy's BLAS runs (OpenBLAS's core name, e.g. "Haswell"), or "unknown".

    OpenBLAS built with DYNAMIC_ARCH picks its kernels from the CPU, and its AVX2 and
    AVX-512 kernels round differently: the same run gives other last bits on another
    machine unless ``OPENBLAS_CORETYPE`` pins them (``make check`` does).  Reports record it.
    """
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in str(info.get("filepath", "")):
            return str(info.get("architecture") or info.get("internal_api", "unknown"))
    return "unknown"
