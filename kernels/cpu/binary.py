"""Broadcasting binary elementwise kernels.

Forward kernels take 4-d C-contiguous operands whose dims are either 1 (broadcast) or
equal to ``out``'s: the caller collapses any NumPy broadcast to this form (merging
adjacent dims that broadcast alike), so the same kernel serves ``x + y``,
``x + bias`` and ``x * scalar`` without materialising the broadcast. Work is split
into blocks of one output row so a flat (1, 1, 1, n) array still runs in parallel.

Backward kernels work on flat arrays that the caller has already broadcast to the
output shape (the non-hot ops), or reuse a forward kernel (``multiply``, ``divide``).
"""
import math

import numba

from ._common import pjit
from ._ieee import div

BLOCK = 8192  # elements per parallel task along the last dim


@numba.njit(inline="always")
def _tasks(out):
    """(number of tasks, blocks per row) for a 4-d output."""
    nb = (out.shape[3] + BLOCK - 1) // BLOCK
    return out.shape[0] * out.shape[1] * out.shape[2] * nb, nb


@numba.njit(inline="always")
def _task(out, nb, t):
    """Task ``t`` -> (i0, i1, i2, lo, hi): elements lo:hi of output row (i0, i1, i2)."""
    b = t % nb
    r = t // nb
    i2 = r % out.shape[2]
    r //= out.shape[2]
    lo = b * BLOCK
    return r // out.shape[1], r % out.shape[1], i2, lo, min(lo + BLOCK, out.shape[3])


@numba.njit(inline="always")
def _row(a, i0, i1, i2):
    """Row (i0, i1, i2) of an operand; size-1 dims broadcast (index 0)."""
    return a[min(i0, a.shape[0] - 1), min(i1, a.shape[1] - 1), min(i2, a.shape[2] - 1)]


@pjit
def add_fwd(x, y, out):
    ntask, nb = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, i2, lo, hi = _task(out, nb, t)
        xr, yr, o = _row(x, i0, i1, i2), _row(y, i0, i1, i2), out[i0, i1, i2]
        if x.shape[3] == y.shape[3]:
            for k in range(lo, hi):
                o[k] = xr[k] + yr[k]
        elif x.shape[3] == 1:
            a = xr[0]
            for k in range(lo, hi):
                o[k] = a + yr[k]
        else:
            b = yr[0]
            for k in range(lo, hi):
                o[k] = xr[k] + b


@pjit
def subtract_fwd(x, y, out):
    ntask, nb = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, i2, lo, hi = _task(out, nb, t)
        xr, yr, o = _row(x, i0, i1, i2), _row(y, i0, i1, i2), out[i0, i1, i2]
        if x.shape[3] == y.shape[3]:
            for k in range(lo, hi):
                o[k] = xr[k] - yr[k]
        elif x.shape[3] == 1:
            a = xr[0]
            for k in range(lo, hi):
                o[k] = a - yr[k]
        else:
            b = yr[0]
            for k in range(lo, hi):
                o[k] = xr[k] - b


@pjit
def multiply_fwd(x, y, out):
    ntask, nb = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, i2, lo, hi = _task(out, nb, t)
        xr, yr, o = _row(x, i0, i1, i2), _row(y, i0, i1, i2), out[i0, i1, i2]
        if x.shape[3] == y.shape[3]:
            for k in range(lo, hi):
                o[k] = xr[k] * yr[k]
        elif x.shape[3] == 1:
            a = xr[0]
            for k in range(lo, hi):
                o[k] = a * yr[k]
        else:
            b = yr[0]
            for k in range(lo, hi):
                o[k] = xr[k] * b


@pjit
def divide_fwd(x, y, out):
    # No reciprocal-multiply for a scalar divisor: x / b must round like NumPy's x / b.
    # div() gives inf/nan for b == 0, where Numba's `/` would raise.
    ntask, nb = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, i2, lo, hi = _task(out, nb, t)
        xr, yr, o = _row(x, i0, i1, i2), _row(y, i0, i1, i2), out[i0, i1, i2]
        sx = 1 if x.shape[3] > 1 else 0
        sy = 1 if y.shape[3] > 1 else 0
        for k in range(lo, hi):
            o[k] = div(xr[k * sx], yr[k * sy])


@pjit
def power_fwd(x, y, out):
    ntask, nb = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, i2, lo, hi = _task(out, nb, t)
        xr, yr, o = _row(x, i0, i1, i2), _row(y, i0, i1, i2), out[i0, i1, i2]
        sx = 1 if x.shape[3] > 1 else 0
        sy = 1 if y.shape[3] > 1 else 0
        for k in range(lo, hi):
            o[k] = xr[k * sx] ** yr[k * sy]


@pjit
def maximum_fwd(x, y, out):
    ntask, nb = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, i2, lo, hi = _task(out, nb, t)
        xr, yr, o = _row(x, i0, i1, i2), _row(y, i0, i1, i2), out[i0, i1, i2]
        sx = 1 if x.shape[3] > 1 else 0
        sy = 1 if y.shape[3] > 1 else 0
        for k in range(lo, hi):
            a, b = xr[k * sx], yr[k * sy]
            o[k] = a if (a >= b or a != a) else b  # NaN propagates, as np.maximum


@pjit
def minimum_fwd(x, y, out):
    ntask, nb = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, i2, lo, hi = _task(out, nb, t)
        xr, yr, o = _row(x, i0, i1, i2), _row(y, i0, i1, i2), out[i0, i1, i2]
        sx = 1 if x.shape[3] > 1 else 0
        sy = 1 if y.shape[3] > 1 else 0
        for k in range(lo, hi):
            a, b = xr[k * sx], yr[k * sy]
            o[k] = a if (a <= b or a != a) else b


@pjit
def where_fwd(c, x, y, out):
    ntask, nb = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, i2, lo, hi = _task(out, nb, t)
        cr, xr, yr = _row(c, i0, i1, i2), _row(x, i0, i1, i2), _row(y, i0, i1, i2)
        o = out[i0, i1, i2]
        sc = 1 if c.shape[3] > 1 else 0
        sx = 1 if x.shape[3] > 1 else 0
        sy = 1 if y.shape[3] > 1 else 0
        for k in range(lo, hi):
            o[k] = xr[k * sx] if cr[k * sc] else yr[k * sy]


# ---- backward kernels on flat arrays already broadcast to the output shape ----

@pjit
def divide_bwd_y(gx, out, res):
    """d(x / y)/dy * g = -(g / y) * (x / y) = -gx * out."""
    for i in numba.prange(gx.size):
        res[i] = -gx[i] * out[i]


@pjit
def power_bwd(g, x, y, out, gx, gy):
    """gx = g * y * x**(y-1) (0 where y == 0); gy = g * out * log(x) (0 where x == 0)."""
    for i in numba.prange(g.size):
        a, b = x[i], y[i]
        gx[i] = 0.0 if b == 0 else g[i] * b * a ** (b - 1)
        if a == 0:
            gy[i] = 0.0
        elif a > 0:
            gy[i] = g[i] * out[i] * math.log(a)
        else:
            gy[i] = math.nan


@pjit
def maximum_bwd(g, x, y, gx, gy):
    """Cotangent to the larger input; ties split evenly (JAX). minimum swaps x and y."""
    for i in numba.prange(g.size):
        a, b = x[i], y[i]
        w = 1.0 if a > b else (0.5 if a == b else 0.0)
        gx[i] = g[i] * w
        gy[i] = g[i] * (1.0 - w)


@pjit
def where_bwd(c, g, gx, gy):
    for i in numba.prange(g.size):
        if c[i]:
            gx[i] = g[i]
            gy[i] = 0.0
        else:
            gx[i] = 0.0
            gy[i] = g[i]
