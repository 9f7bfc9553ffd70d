"""Scatter kernel for the backward of indexing (the CUDA twin of ``kernels/cpu/indexing.py``)."""
from numba import cuda

from . import _common


@cuda.jit
def _scatter_add(g, pos, out):
    # One thread, in index order: repeated positions accumulate without float atomics,
    # so the result is deterministic (indexing is not on the models' hot path).
    if cuda.grid(1) == 0:
        for i in range(g.size):
            out[pos[i]] += g[i]


def scatter_add(g, pos, out):
    """out[pos[i]] += g[i] for flat arrays, repeated positions accumulating (np.add.at)."""
    _common.start(_scatter_add, 1, 1, (g, pos, out))
