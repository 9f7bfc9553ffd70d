"""Bias kernels for ``linear`` (the GEMMs themselves run in NumPy's BLAS at Python level).

``F.linear`` checks b is (out_features,) = the rows' width (issue 10 audit)."""
import numba
import numpy as np

from ._common import ROW_CHUNKS, pjit, sum_partials


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
    chunks = max(1, min(ROW_CHUNKS, rows))
    partial = np.zeros((chunks, cols))
    for k in numba.prange(chunks):
        acc = partial[k]
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            for c in range(cols):
                acc[c] += g[r, c]
    sum_partials(partial, out)
