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


@numba.njit(inline="always")
def _chunk(t, nchunk, R):
    """Task t -> (a, lo, hi): rows lo:hi of slice a."""
    step = (R + nchunk - 1) // nchunk
    lo = min((t % nchunk) * step, R)
    return t // nchunk, lo, min(lo + step, R)


@pjit
def sum_fwd(x, nchunk, scale, out):
    """out[a, c] = scale * sum_r x[a, r, c]."""
    A, R, C = x.shape
    part = np.zeros((A * nchunk, C))
    for t in numba.prange(A * nchunk):
        a, lo, hi = _chunk(t, nchunk, R)
        acc = part[t]
        if C == 1:
            s = 0.0
            for r in range(lo, hi):
                s += x[a, r, 0]
            acc[0] = s
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
def sum_bwd(g, scale, out):
    """out[a, r, c] = scale * g[a, c]: the cotangent of sum/mean, spread over R."""
    A, R, C = out.shape
    for t in numba.prange(A * R):
        a = t // R
        o = out[a, t % R]
        ga = g[a]
        for c in range(C):
            o[c] = ga[c] * scale


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
    for t in numba.prange(A * R):
        a = t // R
        xr = x[a, t % R]
        o = out[a, t % R]
        for c in range(C):
            o[c] = g[a, c] / count[a, c] if xr[c] == y[a, c] else 0.0
