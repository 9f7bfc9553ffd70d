"""Normalisation kernels (the CUDA twin of ``kernels/cpu/norm.py``): layer norm over
rows, batch norm over channels in the ``_last`` (rows, C) and ``_mid`` (N, C, S) layouts.

Every statistic is reduced by one block with a fixed shared-memory tree in float64
(see ``_common``): mean first, then squared deviations, as on the CPU; saved
statistics are float64.
"""
import math

from numba import cuda, float64

from ._common import (CW, RB, RL, block_sum, column_groups, column_sum, launch, launch_columns,
                      launch_reduce)


@cuda.jit
def _layer_norm_fwd(x, w, b, eps, out, mean, rstd):
    buf = cuda.shared.array(RB, float64)
    rows, cols = x.shape
    t = cuda.threadIdx.x
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        s = 0.0
        for c in range(t, cols, RB):
            s += x[r, c]
        m = block_sum(s, buf) / cols
        v = 0.0
        for c in range(t, cols, RB):
            d = x[r, c] - m
            v += d * d
        rs = 1.0 / math.sqrt(block_sum(v, buf) / cols + eps)
        if t == 0:
            mean[r] = m
            rstd[r] = rs
        for c in range(t, cols, RB):
            out[r, c] = ((x[r, c] - m) * rs) * w[c] + b[c]


@cuda.jit
def _layer_norm_bwd_x(g, x, w, mean, rstd, dx):
    buf = cuda.shared.array(RB, float64)
    rows, cols = x.shape
    t = cuda.threadIdx.x
    for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        m = mean[r]
        rs = rstd[r]
        s1 = 0.0
        s2 = 0.0
        for c in range(t, cols, RB):
            gw = g[r, c] * w[c]
            s1 += gw
            s2 += gw * (x[r, c] - m)
        a1 = block_sum(s1, buf) / cols                 # mean of g*w
        a2 = rs * rs * block_sum(s2, buf) / cols       # mean of g*w*xhat, times rstd
        for c in range(t, cols, RB):
            dx[r, c] = rs * (g[r, c] * w[c] - a1 - (x[r, c] - m) * a2)


@cuda.jit
def _layer_norm_bwd_wb(g, x, mean, rstd, dw, db):
    """dw, db: sums over rows, one block per CW columns (coalesced), fixed tree."""
    buf = cuda.shared.array((RL, CW), float64)
    rows, cols = x.shape
    for grp in range(cuda.blockIdx.x, (cols + CW - 1) // CW, cuda.gridDim.x):
        c = grp * CW + cuda.threadIdx.x
        sw = 0.0
        sb = 0.0
        if c < cols:
            for r in range(cuda.threadIdx.y, rows, RL):
                gi = g[r, c]
                sw += gi * ((x[r, c] - mean[r]) * rstd[r])
                sb += gi
        tw = column_sum(sw, buf)
        tb = column_sum(sb, buf)
        if cuda.threadIdx.y == 0 and c < cols:
            dw[c] = tw
            db[c] = tb


def layer_norm_fwd(x, w, b, eps, out, mean, rstd):
    """Normalise each row of x (R, C); w, b (C,); mean, rstd (R,) float64 are saved."""
    launch_reduce(_layer_norm_fwd, x.shape[0], x, w, b, eps, out, mean, rstd)


def layer_norm_bwd(g, x, w, mean, rstd, dx, dw, db):
    """Cotangents of layer_norm: dx (R, C), and dw, db (C,) summed over rows."""
    launch_reduce(_layer_norm_bwd_x, x.shape[0], g, x, w, mean, rstd, dx)
    launch_columns(_layer_norm_bwd_wb, column_groups(x.shape[1]), g, x, mean, rstd, dw, db)


# ---- batch norm: (rows, C) is seen as (rows, C, 1), so one body serves both layouts ----

@cuda.jit(device=True, inline=True)
def _item(x, c, k):
    """Item k of channel c of x (N, C, S): image k // S, pixel k % S."""
    return x[k // x.shape[2], c, k % x.shape[2]]


@cuda.jit
def _bn_stats(x, mean, var):
    buf = cuda.shared.array(RB, float64)
    cols = x.shape[1]
    count = x.shape[0] * x.shape[2]
    for c in range(cuda.blockIdx.x, cols, cuda.gridDim.x):
        s = 0.0
        for k in range(cuda.threadIdx.x, count, RB):
            s += _item(x, c, k)
        m = block_sum(s, buf) / count
        v = 0.0
        for k in range(cuda.threadIdx.x, count, RB):
            d = _item(x, c, k) - m
            v += d * d
        total = block_sum(v, buf)
        if cuda.threadIdx.x == 0:
            mean[c] = m
            var[c] = total / count


@cuda.jit
def _bn_bwd_sums(g, x, mean, sum_g, sum_gxc):
    buf = cuda.shared.array(RB, float64)
    cols = x.shape[1]
    count = x.shape[0] * x.shape[2]
    for c in range(cuda.blockIdx.x, cols, cuda.gridDim.x):
        m = mean[c]
        sg = 0.0
        sx = 0.0
        for k in range(cuda.threadIdx.x, count, RB):
            gi = _item(g, c, k)
            sg += gi
            sx += gi * (_item(x, c, k) - m)
        tg = block_sum(sg, buf)
        tx = block_sum(sx, buf)
        if cuda.threadIdx.x == 0:
            sum_g[c] = tg
            sum_gxc[c] = tx


@cuda.jit
def _bn_affine_mid(x, scale, shift, out):
    cols = x.shape[1]
    size = x.shape[2]
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        s = i % size
        c = (i // size) % cols
        n = i // (size * cols)
        out[n, c, s] = x[n, c, s] * scale[c] + shift[c]


@cuda.jit
def _bn_bwd_x_mid(g, x, a, bx, c0, out):
    cols = x.shape[1]
    size = x.shape[2]
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        s = i % size
        c = (i // size) % cols
        n = i // (size * cols)
        out[n, c, s] = a[c] * g[n, c, s] + bx[c] * x[n, c, s] + c0[c]


def _as3(x):
    """(rows, C) seen as (rows, C, 1) so one kernel body serves both layouts."""
    return x.reshape(x.shape[0], x.shape[1], 1)


def batch_norm_stats_last(x, mean, var):
    """Per-channel mean and biased variance (float64) of x (rows, C)."""
    launch_reduce(_bn_stats, x.shape[1], _as3(x), mean, var)


def batch_norm_stats_mid(x, mean, var):
    """Per-channel mean and biased variance (float64) of x (N, C, S)."""
    launch_reduce(_bn_stats, x.shape[1], x, mean, var)


def batch_norm_fwd_last(x, scale, shift, out):
    """out = x * scale[c] + shift[c] for x (rows, C)."""
    launch(_bn_affine_mid, x.size, _as3(x), scale, shift, _as3(out))


def batch_norm_fwd_mid(x, scale, shift, out):
    """out = x * scale[c] + shift[c] for x (N, C, S)."""
    launch(_bn_affine_mid, x.size, x, scale, shift, out)


def batch_norm_bwd_sums_last(g, x, mean, sum_g, sum_gxc):
    """Per channel: sum of g and of g * (x - mean), for (rows, C)."""
    launch_reduce(_bn_bwd_sums, x.shape[1], _as3(g), _as3(x), mean, sum_g, sum_gxc)


def batch_norm_bwd_sums_mid(g, x, mean, sum_g, sum_gxc):
    """Per channel: sum of g and of g * (x - mean), for (N, C, S)."""
    launch_reduce(_bn_bwd_sums, x.shape[1], g, x, mean, sum_g, sum_gxc)


def batch_norm_bwd_x_last(g, x, a, bx, c0, out):
    """out = a[c] * g + bx[c] * x + c0[c] (float64 coefficients) for (rows, C)."""
    launch(_bn_bwd_x_mid, x.size, _as3(g), _as3(x), a, bx, c0, _as3(out))


def batch_norm_bwd_x_mid(g, x, a, bx, c0, out):
    """out = a[c] * g + bx[c] * x + c0[c] (float64 coefficients) for (N, C, S)."""
    launch(_bn_bwd_x_mid, x.size, g, x, a, bx, c0, out)
