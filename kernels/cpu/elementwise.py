"""Unary elementwise kernels over flat C-contiguous arrays (the caller ravels).

Each op has a forward ``<op>_fwd(x, out)`` and a backward ``<op>_bwd(g, saved, out)``
that multiplies the cotangent ``g`` by the derivative, evaluated from whichever of
the input ``x`` or the output ``y`` is cheaper to reuse. ``negative``'s backward is
``negative_fwd`` itself.
"""
import math

import numba

from ._common import pjit
from ._ieee import div

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@pjit
def negative_fwd(x, out):
    for i in numba.prange(x.size):
        out[i] = -x[i]


@pjit
def exp_fwd(x, out):
    for i in numba.prange(x.size):
        out[i] = math.exp(x[i])


@pjit
def exp_bwd(g, y, out):
    for i in numba.prange(g.size):
        out[i] = g[i] * y[i]


@pjit
def log_fwd(x, out):
    # log(0) = -inf and log(<0) = nan, as NumPy; math.log would raise instead.
    for i in numba.prange(x.size):
        v = x[i]
        if v > 0:
            out[i] = math.log(v)
        elif v == 0:
            out[i] = -math.inf
        else:
            out[i] = math.nan


@pjit
def log_bwd(g, x, out):
    for i in numba.prange(g.size):
        out[i] = div(g[i], x[i])


@pjit
def sqrt_fwd(x, out):
    for i in numba.prange(x.size):
        v = x[i]
        out[i] = math.sqrt(v) if v >= 0 else math.nan


@pjit
def sqrt_bwd(g, y, out):
    for i in numba.prange(g.size):
        out[i] = div(g[i] * 0.5, y[i])


@pjit
def tanh_fwd(x, out):
    for i in numba.prange(x.size):
        out[i] = math.tanh(x[i])


@pjit
def tanh_bwd(g, y, out):
    for i in numba.prange(g.size):
        out[i] = g[i] * (1.0 - y[i] * y[i])


@pjit
def erf_fwd(x, out):
    # math.erf is libm's erf/erff: correctly rounded to ~1 ulp in both precisions.
    for i in numba.prange(x.size):
        out[i] = math.erf(x[i])


@pjit
def erf_bwd(g, x, out):
    for i in numba.prange(g.size):
        v = x[i]
        out[i] = g[i] * (_TWO_OVER_SQRT_PI * math.exp(-v * v))


@pjit
def abs_fwd(x, out):
    for i in numba.prange(x.size):
        out[i] = abs(x[i])


@pjit
def abs_bwd(g, x, out):
    # JAX's rule (lax._abs_jvp_rule: select(x >= 0, g, -g)): +g at 0 and -0, -g at NaN.
    for i in numba.prange(g.size):
        out[i] = g[i] if x[i] >= 0 else -g[i]


@pjit
def square_fwd(x, out):
    for i in numba.prange(x.size):
        out[i] = x[i] * x[i]


@pjit
def square_bwd(g, x, out):
    for i in numba.prange(g.size):
        out[i] = 2.0 * g[i] * x[i]
