"""Fused kernels for the models' residual branches (one pass instead of two or three).

``scale_residual``: out = x + y * gamma over (M, C) rows, gamma per channel — timm's
layer scale followed by the residual add, computed as the same two roundings
(product, then sum; no FMA contraction since fastmath is off).
"""
import numba
import numpy as np

from ._common import pjit

# Column sums use a fixed number of row chunks (not one per thread), so the gradient of
# gamma is bitwise the same whatever the thread count.
_CHUNKS = 64


@pjit
def scale_residual_fwd(x, y, gamma, out):
    """out[r, c] = x[r, c] + y[r, c] * gamma[c] for x, y (M, C) and gamma (C,)."""
    rows, cols = x.shape
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = x[r, c] + y[r, c] * gamma[c]


@pjit
def scale_residual_bwd(g, y, gamma, gy, ggamma):
    """gy = g * gamma and ggamma = sum over rows of g * y (float64 accumulation)."""
    rows, cols = g.shape
    chunks = max(1, min(_CHUNKS, rows))
    partial = np.zeros((chunks, cols))
    for k in numba.prange(chunks):
        acc = partial[k]
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            for c in range(cols):
                gi = g[r, c]
                gy[r, c] = gi * gamma[c]
                acc[c] += gi * y[r, c]
    for c in range(cols):
        s = 0.0
        for k in range(chunks):
            s += partial[k, c]
        ggamma[c] = s
