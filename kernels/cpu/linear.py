"""Bias kernels for ``linear`` (the GEMMs themselves run in NumPy's BLAS at Python level)."""
import numba
import numpy as np

from ._common import pjit

# Column sums split the rows into a fixed number of chunks (not one per thread), so
# the result is bitwise the same whatever the thread count.
_CHUNKS = 64


@pjit
def bias_add_fwd(y, b, out):
    """out[r, c] = y[r, c] + b[c] for y (M, N); ``out`` may be ``y`` itself."""
    rows, cols = y.shape
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = y[r, c] + b[c]


@pjit
def bias_add_bwd(g, out):
    """out[c] = sum over rows of g[r, c] (float64 accumulation), for g (M, N)."""
    rows, cols = g.shape
    chunks = max(1, min(_CHUNKS, rows))
    partial = np.zeros((chunks, cols))
    for k in numba.prange(chunks):
        acc = partial[k]
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            for c in range(cols):
                acc[c] += g[r, c]
    for c in range(cols):
        s = 0.0
        for k in range(chunks):
            s += partial[k, c]
        out[c] = s
