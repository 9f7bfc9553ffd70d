"""Reductions over the middle axis of a C-contiguous (A, R, C) array.

The caller collapses any set of reduced axes to this form: trailing reduced axes give
(A, R, 1), leading ones (1, R, C), a contiguous middle block (A, R, C); other patterns
are transposed so the reduced axes come last. ``R`` is split into ``nchunk`` chunks
that the caller chooses from the shape alone, so results do not depend on the
thread count. Sums accumulate in float64 for both input dtypes.
"""
import math

import numba
import numpy as np

from ._common import pjit

BLOCK = 8192  # elements per parallel task when spreading a cotangent


@numba.njit(inline="always")
def _chunk(t, nchunk, R):
    """Task t -> (a, lo, hi): rows lo:hi of slice a."""
    step = (R + nchunk - 1) // nchunk
    lo = min((t % nchunk) * step, R)
    return t // nchunk, lo, min(lo + step, R)


@numba.njit(inline="always")
def _sum_run(v):
    """Sum of a contiguous run with four independent float64 accumulators: without
    fastmath LLVM keeps a single accumulator's adds in order, one add latency each."""
    s0 = s1 = s2 = s3 = 0.0
    m = v.size // 4
    for i in range(m):  # indices from range(m) are provably >= 0: no wraparound code
        j = 4 * i
        s0 += v[j]
        s1 += v[j + 1]
        s2 += v[j + 2]
        s3 += v[j + 3]
    for i in range(v.size - 4 * m):
        s0 += v[4 * m + i]
    return (s0 + s1) + (s2 + s3)


@pjit
def sum_fwd(x, nchunk, scale, out):
    """out[a, c] = scale * sum_r x[a, r, c]."""
    A, R, C = x.shape
    part = np.zeros((A * nchunk, C))
    for t in numba.prange(A * nchunk):
        a, lo, hi = _chunk(t, nchunk, R)
        acc = part[t]
        if C == 1:
            acc[0] = _sum_run(x.reshape(A, R)[a, lo:hi])
        else:
            for r in range(lo, hi):
                row = x[a, r]
                for c in range(C):
                    acc[c] += row[c]
    for a in numba.prange(A):
        for c in range(C):
            s = 0.0
            for k in range(nchunk):
                s += part[a * nchunk + k, c]
            out[a, c] = s * scale


@pjit
def sum_prod_fwd(x, y, nchunk, out):
    """out[a, c] = sum_r x[a, r, c] * y[a, r, c], without materialising the product
    (the cotangent of a broadcast factor: d(x * w)/dw summed over the broadcast)."""
    A, R, C = x.shape
    part = np.zeros((A * nchunk, C))
    for t in numba.prange(A * nchunk):
        a, lo, hi = _chunk(t, nchunk, R)
        acc = part[t]
        for r in range(lo, hi):
            xr, yr = x[a, r], y[a, r]
            for c in range(C):
                acc[c] += xr[c] * yr[c]
    for a in numba.prange(A):
        for c in range(C):
            s = 0.0
            for k in range(nchunk):
                s += part[a * nchunk + k, c]
            out[a, c] = s


@numba.njit(inline="always")
def _row_blocks(A, R, C):
    """(rows per task, tasks per slice): parallel tasks of ~BLOCK elements over (A, R, C)."""
    rows = max(1, BLOCK // max(C, 1))
    return rows, (R + rows - 1) // rows


@pjit
def sum_bwd(g, scale, out):
    """out[a, r, c] = scale * g[a, c]: the cotangent of sum/mean, spread over R."""
    A, R, C = out.shape
    rows, nb = _row_blocks(A, R, C)
    for t in numba.prange(A * nb):
        a = t // nb
        lo = (t % nb) * rows
        hi = min(lo + rows, R)
        if C == 1:  # no per-element row views: a full reduction has R = size
            v = g[a, 0] * scale
            for r in range(lo, hi):
                out[a, r, 0] = v
        else:
            for r in range(lo, hi):
                for c in range(C):
                    out[a, r, c] = g[a, c] * scale


@numba.njit(inline="always")
def _replaces(v, m):
    """Whether v replaces the running max m: NaN wins and then sticks, as in np.max."""
    return m == m and (v > m or v != v)


@pjit
def max_fwd(x, nchunk, out):
    """out[a, c] = max_r x[a, r, c] (R >= 1; NaN propagates)."""
    A, R, C = x.shape
    part = np.full((A * nchunk, C), -math.inf, dtype=x.dtype)
    for t in numba.prange(A * nchunk):
        a, lo, hi = _chunk(t, nchunk, R)
        acc = part[t]
        for r in range(lo, hi):
            row = x[a, r]
            for c in range(C):
                if _replaces(row[c], acc[c]):
                    acc[c] = row[c]
    for a in numba.prange(A):
        for c in range(C):
            m = part[a * nchunk, c]
            for k in range(1, nchunk):
                v = part[a * nchunk + k, c]
                if _replaces(v, m):
                    m = v
            out[a, c] = m


@pjit
def max_bwd(x, y, g, out):
    """Cotangent g[a, c] of y = max_r x[a, r, c], split evenly among the tied maxima."""
    A, R, C = x.shape
    count = np.zeros((A, C))
    for a in numba.prange(A):
        for r in range(R):
            for c in range(C):
                if x[a, r, c] == y[a, c]:
                    count[a, c] += 1.0
    rows, nb = _row_blocks(A, R, C)
    for t in numba.prange(A * nb):
        a = t // nb
        lo = (t % nb) * rows
        for r in range(lo, min(lo + rows, R)):
            for c in range(C):
                out[a, r, c] = g[a, c] / count[a, c] if x[a, r, c] == y[a, c] else 0.0
