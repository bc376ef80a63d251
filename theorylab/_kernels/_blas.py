"""Pin the BLAS that Numba calls to one thread.

Numba's ``np.dot`` calls SciPy's BLAS (``scipy.linalg.cython_blas``).  With
several threads, OpenBLAS splits the reduction dimension of tall-skinny
products such as the weight gradient A^T X (a sum over samples) and adds the
pieces in a thread-count-dependent order: measured here, N = 1000 rows gave
different bits with 1 and 2 BLAS threads.  theorylab's kernels therefore do
their own parallelism (``prange`` over fixed chunks of samples, one
single-threaded GEMM per chunk, partial sums combined in chunk order), which
needs SciPy's BLAS single-threaded; it also stops Numba's and OpenBLAS's
thread pools from competing for the same cores.

Only SciPy's BLAS library is pinned; NumPy's own BLAS (used by ``X @ W`` in
Python code) keeps its threads.  Set ``THEORYLAB_PIN_BLAS=0`` to opt out (bits
may then depend on the BLAS thread count).
"""

from __future__ import annotations

import os

__all__ = ["PINNED", "pin_numba_blas"]

PINNED = False


def pin_numba_blas():
    """Set SciPy's BLAS to one thread; return True if a library was pinned."""
    global PINNED
    if os.environ.get("THEORYLAB_PIN_BLAS", "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    import scipy.linalg.cython_blas  # noqa: F401  (load the library Numba will call)
    from threadpoolctl import ThreadpoolController

    pinned = False
    for lib in ThreadpoolController().lib_controllers:
        # SciPy ships its BLAS inside scipy.libs (wheels) or links it from its own
        # directory; NumPy's copy lives elsewhere and is left alone.
        if lib.user_api == "blas" and "scipy" in os.path.dirname(lib.filepath).split(os.sep)[-1]:
            lib.set_num_threads(1)
            pinned = True
    PINNED = pinned
    return pinned
