"""Fused kernels for the models' residual branches (one pass instead of two or three).

Memory safety (issue 10 audit): ``F.scale_residual`` checks x and y share (..., C) and
gamma and b are (C,), so every index stays inside the rows and channel vectors.

``scale_residual``: out = x + y * gamma over (M, C) rows, gamma per channel — timm's
layer scale followed by the residual add, computed as the same two roundings
(product, then sum; no FMA contraction since fastmath is off).
``bias_scale_residual``: out = x + (y + b) * gamma — the same with the bias of the
linear layer that made y folded in (three roundings, as timm's three ops).
"""
import numba
import numpy as np

from ._common import ROW_CHUNKS, pjit, sum_partials


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
    chunks = max(1, min(ROW_CHUNKS, rows))
    partial = np.zeros((chunks, cols))
    for k in numba.prange(chunks):
        acc = partial[k]
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            for c in range(cols):
                gi = g[r, c]
                gy[r, c] = gi * gamma[c]
                acc[c] += gi * y[r, c]
    sum_partials(partial, ggamma)


@pjit
def bias_scale_residual_fwd(x, y, b, gamma, out):
    """out[r, c] = x[r, c] + (y[r, c] + b[c]) * gamma[c] for x, y (M, C), b and gamma (C,)."""
    rows, cols = x.shape
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = x[r, c] + (y[r, c] + b[c]) * gamma[c]


@pjit
def bias_scale_residual_bwd(g, y, b, gamma, gy, ggamma, gb):
    """gy = g * gamma; ggamma = sum over rows of g * (y + b); gb = sum over rows of gy
    (float64 partials over fixed row chunks, see ``_common.ROW_CHUNKS``)."""
    rows, cols = g.shape
    chunks = max(1, min(ROW_CHUNKS, rows))
    partial = np.zeros((2, chunks, cols))
    for k in numba.prange(chunks):
        acc_gamma = partial[0, k]
        acc_b = partial[1, k]
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            for c in range(cols):
                gi = g[r, c]
                gyi = gi * gamma[c]
                gy[r, c] = gyi
                acc_gamma[c] += gi * (y[r, c] + b[c])
                acc_b[c] += gyi
    sum_partials(partial[0], ggamma)
    sum_partials(partial[1], gb)
