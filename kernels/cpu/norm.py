"""Normalisation kernels: layer norm over rows, batch norm over channels.

Statistics are accumulated in float64 (two passes: mean, then squared deviations)
and saved as float64 for the backward. Outputs use PyTorch's form
``y = x * scale + shift`` with per-row / per-channel scale and shift in x's dtype.

Batch-norm kernels come in two layouts: ``_last`` for channels-last data viewed as
(rows, C), and ``_mid`` for channels-second data viewed as (N, C, S) (NCHW with
S = H*W). Reductions over rows use a fixed number of row chunks with float64
partials, so results do not depend on the thread count and threads never race.

Memory safety (issue 10 audit): ``F.layer_norm`` / ``F.batch_norm`` check every
per-channel vector has the normalised axis' size and that it is not empty; all other
indices are loop variables over the arrays' own shapes.
"""
import math

import numba
import numpy as np

from ._common import ROW_CHUNKS, pjit, sum_partials
from ._math import row_dot_dev, row_sum, row_sum_sq_dev, scalar_like


@pjit
def layer_norm_fwd(x, w, b, eps, out, mean, rstd):
    """Normalise each row of x (R, C); w, b (C,); mean, rstd (R,) float64 are saved."""
    rows, cols = x.shape
    for r in numba.prange(rows):
        xr = x[r]
        m = row_sum(xr) / cols
        rs = 1.0 / math.sqrt(row_sum_sq_dev(xr, m) / cols + eps)
        mean[r] = m
        rstd[r] = rs
        scale = scalar_like(x, rs)
        shift = scalar_like(x, -rs * m)
        o = out[r]
        for c in range(cols):
            o[c] = (xr[c] * scale + shift) * w[c] + b[c]


@pjit
def layer_norm_bwd(g, x, w, mean, rstd, dx, dw, db):
    """Cotangents of layer_norm: dx (R, C), and dw, db (C,) summed over rows."""
    rows, cols = x.shape
    chunks = max(1, min(ROW_CHUNKS, rows))
    pw = np.zeros((chunks, cols))
    pb = np.zeros((chunks, cols))
    for k in numba.prange(chunks):
        gw = np.empty(cols)
        pwk = pw[k]
        pbk = pb[k]
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            xr = x[r]
            gr = g[r]
            m = mean[r]
            rs = rstd[r]
            for c in range(cols):
                gw[c] = gr[c] * w[c]
                pwk[c] += gr[c] * ((xr[c] - m) * rs)
                pbk[c] += gr[c]
            a1 = row_sum(gw) / cols                       # mean of g*w
            a2 = rs * rs * row_dot_dev(gw, xr, m) / cols  # mean of g*w*xhat, times rstd
            o = dx[r]
            for c in range(cols):
                o[c] = rs * (gw[c] - a1 - (xr[c] - m) * a2)
    sum_partials(pw, dw)
    sum_partials(pb, db)


@pjit
def batch_norm_stats_last(x, mean, var):
    """Per-channel mean and biased variance (float64) of x (rows, C)."""
    rows, cols = x.shape
    chunks = max(1, min(ROW_CHUNKS, rows))
    part = np.zeros((chunks, cols))
    for k in numba.prange(chunks):
        pk = part[k]
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            for c in range(cols):
                pk[c] += x[r, c]
    sum_partials(part, mean)
    for c in range(cols):
        mean[c] /= rows
    part[:] = 0.0
    for k in numba.prange(chunks):
        pk = part[k]
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            for c in range(cols):
                d = x[r, c] - mean[c]
                pk[c] += d * d
    sum_partials(part, var)
    for c in range(cols):
        var[c] /= rows


@pjit
def batch_norm_stats_mid(x, mean, var):
    """Per-channel mean and biased variance (float64) of x (N, C, S)."""
    n, cols, size = x.shape
    count = n * size
    for c in numba.prange(cols):
        s = 0.0
        for i in range(n):
            s += row_sum(x[i, c])
        m = s / count
        v = 0.0
        for i in range(n):
            v += row_sum_sq_dev(x[i, c], m)
        mean[c] = m
        var[c] = v / count


@pjit
def batch_norm_fwd_last(x, scale, shift, out):
    """out = x * scale[c] + shift[c] for x (rows, C); scale, shift in x's dtype."""
    rows, cols = x.shape
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = x[r, c] * scale[c] + shift[c]


@pjit
def batch_norm_fwd_mid(x, scale, shift, out):
    """out = x * scale[c] + shift[c] for x (N, C, S)."""
    n, cols, size = x.shape
    for p in numba.prange(n * cols):
        i = p // cols
        c = p % cols
        a = scale[c]
        b = shift[c]
        for s in range(size):
            out[i, c, s] = x[i, c, s] * a + b


@pjit
def batch_norm_bwd_sums_last(g, x, mean, sum_g, sum_gxc):
    """Per channel: sum_g = sum of g, sum_gxc = sum of g * (x - mean), for (rows, C)."""
    rows, cols = x.shape
    chunks = max(1, min(ROW_CHUNKS, rows))
    pg = np.zeros((chunks, cols))
    px = np.zeros((chunks, cols))
    for k in numba.prange(chunks):
        pgk = pg[k]
        pxk = px[k]
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            for c in range(cols):
                pgk[c] += g[r, c]
                pxk[c] += g[r, c] * (x[r, c] - mean[c])
    sum_partials(pg, sum_g)
    sum_partials(px, sum_gxc)


@pjit
def batch_norm_bwd_sums_mid(g, x, mean, sum_g, sum_gxc):
    """Per channel: sum_g = sum of g, sum_gxc = sum of g * (x - mean), for (N, C, S)."""
    n, cols, size = x.shape
    for c in numba.prange(cols):
        sg = 0.0
        sx = 0.0
        for i in range(n):
            sg += row_sum(g[i, c])
            sx += row_dot_dev(g[i, c], x[i, c], mean[c])
        sum_g[c] = sg
        sum_gxc[c] = sx


@pjit
def batch_norm_bwd_x_last(g, x, a, bx, c0, out):
    """out = a[c] * g + bx[c] * x + c0[c] (float64 coefficients) for (rows, C)."""
    rows, cols = x.shape
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = a[c] * g[r, c] + bx[c] * x[r, c] + c0[c]


@pjit
def batch_norm_bwd_x_mid(g, x, a, bx, c0, out):
    """out = a[c] * g + bx[c] * x + c0[c] (float64 coefficients) for (N, C, S)."""
    n, cols, size = x.shape
    for p in numba.prange(n * cols):
        i = p // cols
        c = p % cols
        ac = a[c]
        bc = bx[c]
        cc = c0[c]
        for s in range(size):
            out[i, c, s] = ac * g[i, c, s] + bc * x[i, c, s] + cc
