"""Average-pooling kernels: adaptive (PyTorch windows) and global, NCHW planes or NHWC rows.

Window sums are accumulated in float64.

Memory safety (audited for issue 10): adaptive windows are [floor(i*H/oh),
ceil((i+1)*H/oh)) for i < oh, inside [0, H) and never empty when H >= 1; the callers
guarantee H, W >= 1 and oh, ow, H, W <= 2**31 - 1 (so i * H cannot overflow int64) and
give ``out``/``g`` the planes of ``x``. The global kernels only loop over their arrays'
own shapes.
"""
import numba
import numpy as np

from ._common import pjit
from ._math import row_sum


@numba.njit(inline="always")
def _window(i, size, out_size):
    """PyTorch's adaptive window [floor(i*size/out), ceil((i+1)*size/out))."""
    return (i * size) // out_size, -((-(i + 1) * size) // out_size)


@pjit
def adaptive_avg_pool2d_fwd(x, out):
    """x (P, H, W) planes -> out (P, OH, OW)."""
    planes, h, w = x.shape
    oh, ow = out.shape[1], out.shape[2]
    for p in numba.prange(planes):
        for i in range(oh):
            h0, h1 = _window(i, h, oh)
            for j in range(ow):
                w0, w1 = _window(j, w, ow)
                s = 0.0
                for y in range(h0, h1):
                    for xx in range(w0, w1):
                        s += x[p, y, xx]
                out[p, i, j] = s / ((h1 - h0) * (w1 - w0))


@pjit
def adaptive_avg_pool2d_bwd(g, out):
    """g (P, OH, OW) -> out (P, H, W): each window's cotangent spread evenly over it."""
    planes, h, w = out.shape
    oh, ow = g.shape[1], g.shape[2]
    for p in numba.prange(planes):
        out[p] = 0.0
        for i in range(oh):
            h0, h1 = _window(i, h, oh)
            for j in range(ow):
                w0, w1 = _window(j, w, ow)
                v = g[p, i, j] / ((h1 - h0) * (w1 - w0))
                for y in range(h0, h1):
                    for xx in range(w0, w1):
                        out[p, y, xx] += v


@pjit
def global_avg_pool_fwd(x, out):
    """x (P, S) -> out (P,): the mean of each row (NCHW planes flattened)."""
    size = x.shape[1]
    for p in numba.prange(x.shape[0]):
        out[p] = row_sum(x[p]) / size


@pjit
def global_avg_pool_bwd(g, out):
    """g (P,) -> out (P, S) = g / S."""
    size = out.shape[1]
    for p in numba.prange(out.shape[0]):
        v = g[p] / size
        for s in range(size):
            out[p, s] = v


@pjit
def global_avg_pool_nhwc_fwd(x, out):
    """x (N, S, C) -> out (N, C): the mean over S of each image's channel vectors."""
    n, size, cols = x.shape
    # Parallel over (image, channel block) pairs: batch 1 inference still uses every thread.
    blocks = (cols + 63) // 64
    for q in numba.prange(n * blocks):
        i = q // blocks
        c0 = (q % blocks) * 64
        c1 = min(c0 + 64, cols)
        acc = np.zeros(c1 - c0)
        for s in range(size):
            for c in range(c0, c1):
                acc[c - c0] += x[i, s, c]
        for c in range(c0, c1):
            out[i, c] = acc[c - c0] / size


@pjit
def global_avg_pool_nhwc_bwd(g, out):
    """g (N, C) -> out (N, S, C) = g / S."""
    n, size, cols = out.shape
    for q in numba.prange(n * size):
        i = q // size
        s = q % size
        for c in range(cols):
            out[i, s, c] = g[i, c] / size
