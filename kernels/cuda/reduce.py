"""Reductions over the middle axis of a contiguous (A, R, C) array (the CUDA twin of
``kernels/cpu/reduce.py``). One block per output (a, c) strides over R and combines its
threads' float64 partials with a fixed tree (deterministic). ``nchunk`` is accepted
for the CPU signature and unused: the block's tree is the chunking here."""
import math

import numpy as np
from numba import cuda, float64

from ._common import RB, block_max, block_sum, launch, launch_reduce


@cuda.jit
def _sum_fwd(x, y, use_y, scale, out):
    buf = cuda.shared.array(RB, float64)
    A, R, C = x.shape
    for q in range(cuda.blockIdx.x, A * C, cuda.gridDim.x):
        a = q // C
        c = q % C
        s = 0.0
        for r in range(cuda.threadIdx.x, R, RB):
            s += x[a, r, c] * y[a, r, c] if use_y else x[a, r, c]
        total = block_sum(s, buf)
        if cuda.threadIdx.x == 0:
            out[a, c] = total * scale


@cuda.jit
def _sum_bwd(g, scale, out):
    A, R, C = out.shape
    for q in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        c = q % C
        a = q // (R * C)
        out[a, (q // C) % R, c] = g[a, c] * scale


@cuda.jit
def _max_fwd(x, out):
    buf = cuda.shared.array(RB, float64)
    A, R, C = x.shape
    for q in range(cuda.blockIdx.x, A * C, cuda.gridDim.x):
        a = q // C
        c = q % C
        m = -math.inf
        for r in range(cuda.threadIdx.x, R, RB):
            v = x[a, r, c]
            if m == m and (v > m or v != v):
                m = v
        m = block_max(m, buf)
        if cuda.threadIdx.x == 0:
            out[a, c] = m


@cuda.jit
def _tie_count(x, y, count):
    buf = cuda.shared.array(RB, float64)
    A, R, C = x.shape
    for q in range(cuda.blockIdx.x, A * C, cuda.gridDim.x):
        a = q // C
        c = q % C
        s = 0.0
        for r in range(cuda.threadIdx.x, R, RB):
            if x[a, r, c] == y[a, c]:
                s += 1.0
        total = block_sum(s, buf)
        if cuda.threadIdx.x == 0:
            count[a, c] = total


@cuda.jit
def _max_bwd(x, y, g, count, out):
    A, R, C = x.shape
    for q in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        c = q % C
        r = (q // C) % R
        a = q // (R * C)
        out[a, r, c] = g[a, c] / count[a, c] if x[a, r, c] == y[a, c] else 0.0


def sum_fwd(x, nchunk, scale, out):
    """out[a, c] = scale * sum_r x[a, r, c]."""
    launch_reduce(_sum_fwd, x.shape[0] * x.shape[2], x, x, False, scale, out)


def sum_prod_fwd(x, y, nchunk, out):
    """out[a, c] = sum_r x[a, r, c] * y[a, r, c], without materialising the product."""
    launch_reduce(_sum_fwd, x.shape[0] * x.shape[2], x, y, True, 1.0, out)


def sum_bwd(g, scale, out):
    """out[a, r, c] = scale * g[a, c]: the cotangent of sum/mean, spread over R."""
    launch(_sum_bwd, out.size, g, scale, out)


def max_fwd(x, nchunk, out):
    """out[a, c] = max_r x[a, r, c] (R >= 1; NaN propagates)."""
    launch_reduce(_max_fwd, x.shape[0] * x.shape[2], x, out)


def max_bwd(x, y, g, out):
    """Cotangent g[a, c] of y = max_r x[a, r, c], split evenly among the tied maxima."""
    count = cuda.device_array((x.shape[0], x.shape[2]), dtype=np.float64)
    launch_reduce(_tie_count, x.shape[0] * x.shape[2], x, y, count)
    launch(_max_bwd, out.size, x, y, g, count, out)
