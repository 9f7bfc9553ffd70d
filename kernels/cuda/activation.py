"""Activation kernels (the CUDA twin of ``kernels/cpu/activation.py``): flat arrays, plus
fused bias+GELU over (M, C) rows. Arithmetic runs in float64 and is stored in the
output's dtype (within rounding of the CPU's float32 polynomials)."""
import math

from numba import cuda

from ._common import flat, launch, safe_exp

_SQRT1_2 = 0.7071067811865476        # 1 / sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327   # 1 / sqrt(2 pi)
_SQRT_2_PI = 0.7978845608028654      # sqrt(2 / pi)
_TANH_C = 0.044715


@cuda.jit(device=True, inline=True)
def _gelu(v):
    return 0.5 * v * (1.0 + math.erf(v * _SQRT1_2))


@cuda.jit(device=True, inline=True)
def _gelu_grad(v):
    cdf = 0.5 * (1.0 + math.erf(v * _SQRT1_2))
    pdf = math.exp(-0.5 * v * v) * _INV_SQRT_2PI
    return cdf + v * pdf


@cuda.jit(device=True, inline=True)
def _gelu_tanh(v):
    u = _SQRT_2_PI * (v + _TANH_C * v * v * v)
    return v / (1.0 + safe_exp(-2.0 * u))


@cuda.jit(device=True, inline=True)
def _gelu_tanh_grad(v):
    u = _SQRT_2_PI * (v + _TANH_C * v * v * v)
    e = safe_exp(-2.0 * u)
    s = 1.0 / (1.0 + e)
    du = _SQRT_2_PI * (1.0 + 3.0 * _TANH_C * v * v)
    one_minus_s = e * s if s > 0 else 1.0
    return s + 2.0 * v * s * one_minus_s * du


@cuda.jit
def _relu_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = v if not v <= 0 else 0.0  # NaN passes through, as torch.relu


@cuda.jit
def _relu_bwd(g, y, out):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        out[i] = g[i] if not y[i] <= 0 else 0.0


@cuda.jit
def _gelu_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = _gelu(x[i])


@cuda.jit
def _gelu_bwd(g, x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = g[i] * _gelu_grad(x[i])


@cuda.jit
def _gelu_tanh_fwd(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = _gelu_tanh(x[i])


@cuda.jit
def _gelu_tanh_bwd(g, x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = g[i] * _gelu_tanh_grad(x[i])


@cuda.jit
def _bias_gelu_fwd(h, b, out):
    cols = h.shape[1]
    for i in range(cuda.grid(1), h.size, cuda.gridsize(1)):
        r = i // cols
        c = i % cols
        out[r, c] = _gelu(h[r, c] + b[c])


@cuda.jit
def _bias_gelu_bwd(g, h, b, out):
    cols = h.shape[1]
    for i in range(cuda.grid(1), h.size, cuda.gridsize(1)):
        r = i // cols
        c = i % cols
        out[r, c] = g[r, c] * _gelu_grad(h[r, c] + b[c])


relu_fwd = flat(_relu_fwd)
relu_bwd = flat(_relu_bwd)
gelu_fwd = flat(_gelu_fwd)
gelu_bwd = flat(_gelu_bwd)
gelu_tanh_fwd = flat(_gelu_tanh_fwd)
gelu_tanh_bwd = flat(_gelu_tanh_bwd)


def bias_gelu_fwd(h, b, out):
    """out = gelu(h + b) for h (M, C) and b (C,)."""
    launch(_bias_gelu_fwd, h.size, h, b, out)


def bias_gelu_bwd(g, h, b, out):
    """out = g * gelu'(h + b), the cotangent of h."""
    launch(_bias_gelu_bwd, h.size, g, h, b, out)
