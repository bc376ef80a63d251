"""The ordered sum of per-chunk partials that every deterministic reduction ends with."""

from __future__ import annotations

from ._jit import jit


@jit
def add_partials(G, partial, k):
    """G += partial[0] + ... in chunk order, entry by entry: the first ``k`` slots.

    A serial loop on purpose.  Written as the array expression ``G += partial[c]``
    inside a parallel kernel (where Numba turns it into a parallel loop of its own),
    the kernel's chunks ran no faster on two threads than on one: ten N = 4096,
    d = 64, m = 128 weight gradients took 31 ms on either, 18 ms on two threads with
    this loop (and 39 -> 22 ms for the input gradients, which have no such sum, in
    the same rounds).  Same additions in the same order, so the same bits.
    """
    m, d = G.shape
    for c in range(k):
        for i in range(m):
            for j in range(d):
                G[i, j] += partial[c, i, j]
