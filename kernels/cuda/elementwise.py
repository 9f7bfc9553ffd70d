"""Unary elementwise kernels over flat contiguous device arrays (the CUDA twin of
``kernels/cpu/elementwise.py``): ``<op>_fwd(x, out)`` and ``<op>_bwd(g, saved, out)``."""
import math

from numba import cuda

from ._common import div, flat, safe_exp

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@cuda.jit
def _negative_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = -x[i]


@cuda.jit
def _exp_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = safe_exp(x[i])


@cuda.jit
def _exp_bwd(g, y, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = g[i] * y[i]


@cuda.jit
def _log_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if v > 0:
            out[i] = math.log(v)
        elif v == 0:
            out[i] = -math.inf
        else:
            out[i] = math.nan


@cuda.jit
def _log_bwd(g, x, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = div(g[i], x[i])


@cuda.jit
def _sqrt_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = math.sqrt(v) if v >= 0 else math.nan


@cuda.jit
def _sqrt_bwd(g, y, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = div(g[i] * 0.5, y[i])


@cuda.jit
def _tanh_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = math.tanh(x[i])


@cuda.jit
def _tanh_bwd(g, y, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = g[i] * (1.0 - y[i] * y[i])


@cuda.jit
def _erf_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = math.erf(x[i])


@cuda.jit
def _erf_bwd(g, x, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = g[i] * (_TWO_OVER_SQRT_PI * math.exp(-v * v))


@cuda.jit
def _abs_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = abs(x[i])


@cuda.jit
def _abs_bwd(g, x, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = g[i] if x[i] >= 0 else -g[i]   # JAX's rule: +g at 0 and -0, -g at NaN


@cuda.jit
def _square_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = x[i] * x[i]


@cuda.jit
def _square_bwd(g, x, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = 2.0 * g[i] * x[i]


negative_fwd = flat(_negative_fwd)
exp_fwd = flat(_exp_fwd)
exp_bwd = flat(_exp_bwd)
log_fwd = flat(_log_fwd)
log_bwd = flat(_log_bwd)
sqrt_fwd = flat(_sqrt_fwd)
sqrt_bwd = flat(_sqrt_bwd)
tanh_fwd = flat(_tanh_fwd)
tanh_bwd = flat(_tanh_bwd)
erf_fwd = flat(_erf_fwd)
erf_bwd = flat(_erf_bwd)
abs_fwd = flat(_abs_fwd)
abs_bwd = flat(_abs_bwd)
square_fwd = flat(_square_fwd)
square_bwd = flat(_square_bwd)
