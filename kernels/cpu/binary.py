"""Broadcasting binary elementwise kernels.

Forward kernels take 4-d C-contiguous operands whose dims are either 1 (broadcast) or
equal to ``out``'s: the caller collapses any NumPy broadcast to this form (merging
adjacent dims that broadcast alike), so the same kernel serves ``x + y``,
``x + bias`` and ``x * scalar`` without materialising the broadcast. Work is split
into tasks of ~BLOCK elements (several short rows, or a piece of one long row) so a
flat (1, 1, 1, n) array still runs in parallel and short rows cost no per-row division.

Backward kernels work on flat arrays that the caller has already broadcast to the
output shape (the non-hot ops), or reuse a forward kernel (``multiply``, ``divide``).
"""
import math

import numba

from ._common import pjit
from ._ieee import div

BLOCK = 8192  # elements per parallel task


@numba.njit(inline="always")
def _tasks(out):
    """Split a 4-d output into tasks of ~BLOCK elements: (count, rows, row chunks, blocks).

    A task covers ``rows`` consecutive rows (dim 2) of one (i0, i1) plane, or one
    BLOCK-long piece of a single row when rows are longer than BLOCK.
    """
    n3 = out.shape[3]
    rows = max(1, BLOCK // max(n3, 1))
    nr = (out.shape[2] + rows - 1) // rows
    nk = (n3 + BLOCK - 1) // BLOCK
    return out.shape[0] * out.shape[1] * nr * nk, rows, nr, nk


@numba.njit(inline="always")
def _task(out, t, rows, nr, nk):
    """Task ``t`` -> (i0, i1, rows r_lo:r_hi, elements lo:hi of each row).

    The integer divisions happen once per task, not once per row.
    """
    kb = t % nk
    t //= nk
    rb = t % nr
    t //= nr
    r_lo, lo = rb * rows, kb * BLOCK
    return (t // out.shape[1], t % out.shape[1], r_lo, min(r_lo + rows, out.shape[2]),
            lo, min(lo + BLOCK, out.shape[3]))


@numba.njit(inline="always")
def _plane(a, i0, i1):
    """Plane (i0, i1) of an operand; size-1 dims broadcast (index 0)."""
    return a[min(i0, a.shape[0] - 1), min(i1, a.shape[1] - 1)]


@numba.njit(inline="always")
def _row(p, r):
    """Row r of a plane from :func:`_plane` (row 0 if the plane broadcasts along dim 2).

    Kernels then loop ``for k in range(n)`` over ``row[lo:hi]`` slices: indices known to be
    non-negative let LLVM drop Numba's negative-index wraparound and vectorise.
    """
    return p[min(r, p.shape[0] - 1)]


@numba.njit(inline="always")
def _span(row, lo, hi):
    """(elements lo:hi of a row, stride 1), or (the row, stride 0) if it broadcasts."""
    if row.size == 1:
        return row, 0
    return row[lo:hi], 1


@pjit
def add_fwd(x, y, out):
    ntask, rows, nr, nk = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, r_lo, r_hi, lo, hi = _task(out, t, rows, nr, nk)
        xp, yp, op = _plane(x, i0, i1), _plane(y, i0, i1), out[i0, i1]
        for r in range(r_lo, r_hi):
            xr, yr, o = _row(xp, r), _row(yp, r), op[r, lo:hi]
            if x.shape[3] == y.shape[3]:
                xs, ys = xr[lo:hi], yr[lo:hi]
                for k in range(o.size):
                    o[k] = xs[k] + ys[k]
            elif x.shape[3] == 1:
                a, ys = xr[0], yr[lo:hi]
                for k in range(o.size):
                    o[k] = a + ys[k]
            else:
                xs, b = xr[lo:hi], yr[0]
                for k in range(o.size):
                    o[k] = xs[k] + b


@pjit
def subtract_fwd(x, y, out):
    ntask, rows, nr, nk = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, r_lo, r_hi, lo, hi = _task(out, t, rows, nr, nk)
        xp, yp, op = _plane(x, i0, i1), _plane(y, i0, i1), out[i0, i1]
        for r in range(r_lo, r_hi):
            xr, yr, o = _row(xp, r), _row(yp, r), op[r, lo:hi]
            if x.shape[3] == y.shape[3]:
                xs, ys = xr[lo:hi], yr[lo:hi]
                for k in range(o.size):
                    o[k] = xs[k] - ys[k]
            elif x.shape[3] == 1:
                a, ys = xr[0], yr[lo:hi]
                for k in range(o.size):
                    o[k] = a - ys[k]
            else:
                xs, b = xr[lo:hi], yr[0]
                for k in range(o.size):
                    o[k] = xs[k] - b


@pjit
def multiply_fwd(x, y, out):
    ntask, rows, nr, nk = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, r_lo, r_hi, lo, hi = _task(out, t, rows, nr, nk)
        xp, yp, op = _plane(x, i0, i1), _plane(y, i0, i1), out[i0, i1]
        for r in range(r_lo, r_hi):
            xr, yr, o = _row(xp, r), _row(yp, r), op[r, lo:hi]
            if x.shape[3] == y.shape[3]:
                xs, ys = xr[lo:hi], yr[lo:hi]
                for k in range(o.size):
                    o[k] = xs[k] * ys[k]
            elif x.shape[3] == 1:
                a, ys = xr[0], yr[lo:hi]
                for k in range(o.size):
                    o[k] = a * ys[k]
            else:
                xs, b = xr[lo:hi], yr[0]
                for k in range(o.size):
                    o[k] = xs[k] * b


@pjit
def divide_fwd(x, y, out):
    # No reciprocal-multiply for a scalar divisor: x / b must round like NumPy's x / b.
    # div() gives inf/nan for b == 0, where Numba's `/` would raise.
    ntask, rows, nr, nk = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, r_lo, r_hi, lo, hi = _task(out, t, rows, nr, nk)
        xp, yp, op = _plane(x, i0, i1), _plane(y, i0, i1), out[i0, i1]
        for r in range(r_lo, r_hi):
            xs, sx = _span(_row(xp, r), lo, hi)
            ys, sy = _span(_row(yp, r), lo, hi)
            o = op[r, lo:hi]
            for k in range(o.size):
                o[k] = div(xs[k * sx], ys[k * sy])


@pjit
def power_fwd(x, y, out):
    ntask, rows, nr, nk = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, r_lo, r_hi, lo, hi = _task(out, t, rows, nr, nk)
        xp, yp, op = _plane(x, i0, i1), _plane(y, i0, i1), out[i0, i1]
        for r in range(r_lo, r_hi):
            xs, sx = _span(_row(xp, r), lo, hi)
            ys, sy = _span(_row(yp, r), lo, hi)
            o = op[r, lo:hi]
            for k in range(o.size):
                o[k] = xs[k * sx] ** ys[k * sy]


@pjit
def maximum_fwd(x, y, out):
    ntask, rows, nr, nk = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, r_lo, r_hi, lo, hi = _task(out, t, rows, nr, nk)
        xp, yp, op = _plane(x, i0, i1), _plane(y, i0, i1), out[i0, i1]
        for r in range(r_lo, r_hi):
            xs, sx = _span(_row(xp, r), lo, hi)
            ys, sy = _span(_row(yp, r), lo, hi)
            o = op[r, lo:hi]
            for k in range(o.size):
                a, b = xs[k * sx], ys[k * sy]
                o[k] = a if (a >= b or a != a) else b  # NaN propagates, as np.maximum


@pjit
def minimum_fwd(x, y, out):
    ntask, rows, nr, nk = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, r_lo, r_hi, lo, hi = _task(out, t, rows, nr, nk)
        xp, yp, op = _plane(x, i0, i1), _plane(y, i0, i1), out[i0, i1]
        for r in range(r_lo, r_hi):
            xs, sx = _span(_row(xp, r), lo, hi)
            ys, sy = _span(_row(yp, r), lo, hi)
            o = op[r, lo:hi]
            for k in range(o.size):
                a, b = xs[k * sx], ys[k * sy]
                o[k] = a if (a <= b or a != a) else b


@pjit
def where_fwd(c, x, y, out):
    ntask, rows, nr, nk = _tasks(out)
    for t in numba.prange(ntask):
        i0, i1, r_lo, r_hi, lo, hi = _task(out, t, rows, nr, nk)
        cp, xp, yp, op = _plane(c, i0, i1), _plane(x, i0, i1), _plane(y, i0, i1), out[i0, i1]
        for r in range(r_lo, r_hi):
            cs, sc = _span(_row(cp, r), lo, hi)
            xs, sx = _span(_row(xp, r), lo, hi)
            ys, sy = _span(_row(yp, r), lo, hi)
            o = op[r, lo:hi]
            for k in range(o.size):
                o[k] = xs[k * sx] if cs[k * sc] else ys[k * sy]


# ---- backward kernels on flat arrays already broadcast to the output shape ----

@pjit
def divide_bwd_y(gx, out, res):
    """d(x / y)/dy * g = -(g / y) * (x / y) = -gx * out."""
    for i in numba.prange(gx.size):
        res[i] = -gx[i] * out[i]


@pjit
def power_bwd(g, x, y, out, gx, gy):
    """JAX's rules for a float exponent (lax._pow_jvp_lhs / _pow_jvp_rhs): gx = g * y *
    x**(y-1) with no special case (nan at x == y == 0, as 0 * inf); gy = g * out * log(x)
    with log(0) replaced by 0 (so 0 where x == 0) and nan where x < 0."""
    for i in numba.prange(g.size):
        a, b = x[i], y[i]
        gx[i] = g[i] * b * a ** (b - 1)
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
