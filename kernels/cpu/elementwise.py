"""Elementwise kernels over flat C-contiguous arrays (the caller ravels and broadcasts)."""
import math

import numba

from ._common import pjit


@pjit
def exp_fwd(x, out):
    for i in numba.prange(x.size):
        out[i] = math.exp(x[i])


@pjit
def exp_bwd(g, y, out):
    for i in numba.prange(g.size):
        out[i] = g[i] * y[i]
