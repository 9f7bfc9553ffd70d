"""Activation kernels over flat C-contiguous arrays (the caller ravels), plus fused bias+GELU.

Constants are cast to the element's type with ``_c`` so float32 data is computed in
float32 vector lanes (a float64 literal would promote the whole expression);
float64 data uses libm erf/exp (see ``_math``).
"""
import numba

from ._common import pjit
from ._math import erf, exp

_SQRT1_2 = 0.7071067811865476        # 1 / sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327   # 1 / sqrt(2 pi)
_SQRT_2_PI = 0.7978845608028654      # sqrt(2 / pi)
_TANH_C = 0.044715


@numba.njit(inline="always")
def _c(x, value):
    """``value`` in the floating type of the scalar ``x`` (keeps float32 math in float32)."""
    return type(x)(value)


@numba.njit(inline="always")
def _gelu(v):
    return _c(v, 0.5) * v * (_c(v, 1.0) + erf(v * _c(v, _SQRT1_2)))


@numba.njit(inline="always")
def _gelu_grad(v):
    cdf = _c(v, 0.5) * (_c(v, 1.0) + erf(v * _c(v, _SQRT1_2)))
    pdf = exp(_c(v, -0.5) * v * v) * _c(v, _INV_SQRT_2PI)
    return cdf + v * pdf


@numba.njit(inline="always")
def _gelu_tanh(v):
    # 0.5 v (1 + tanh(u)) = v * sigmoid(2u): no cancellation for negative v.
    u = _c(v, _SQRT_2_PI) * (v + _c(v, _TANH_C) * v * v * v)
    return v / (_c(v, 1.0) + exp(_c(v, -2.0) * u))


@numba.njit(inline="always")
def _gelu_tanh_grad(v):
    # With s = sigmoid(2u): d/dv [v s] = s + 2 v s (1 - s) u'; 1 - s = e s avoids cancellation.
    u = _c(v, _SQRT_2_PI) * (v + _c(v, _TANH_C) * v * v * v)
    e = exp(_c(v, -2.0) * u)
    s = _c(v, 1.0) / (_c(v, 1.0) + e)
    du = _c(v, _SQRT_2_PI) * (_c(v, 1.0) + _c(v, 3.0 * _TANH_C) * v * v)
    one_minus_s = e * s if s > 0 else _c(v, 1.0)  # s == 0 once e overflows to inf
    return s + _c(v, 2.0) * v * s * one_minus_s * du


@pjit
def relu_fwd(x, out):
    for i in numba.prange(x.size):
        v = x[i]
        out[i] = v if not v <= 0 else _c(v, 0.0)  # NaN passes through, as in torch.relu


@pjit
def relu_bwd(g, y, out):
    for i in numba.prange(g.size):
        out[i] = g[i] if not y[i] <= 0 else _c(g[i], 0.0)


@pjit
def gelu_fwd(x, out):
    for i in numba.prange(x.size):
        out[i] = _gelu(x[i])


@pjit
def gelu_bwd(g, x, out):
    for i in numba.prange(x.size):
        out[i] = g[i] * _gelu_grad(x[i])


@pjit
def gelu_tanh_fwd(x, out):
    for i in numba.prange(x.size):
        out[i] = _gelu_tanh(x[i])


@pjit
def gelu_tanh_bwd(g, x, out):
    for i in numba.prange(x.size):
        out[i] = g[i] * _gelu_tanh_grad(x[i])


@pjit
def bias_gelu_fwd(h, b, out):
    """out = gelu(h + b) for h (M, C) and b (C,): one pass over a linear layer's output."""
    rows, cols = h.shape
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = _gelu(h[r, c] + b[c])


@pjit
def bias_gelu_bwd(g, h, b, out):
    """out = g * gelu'(h + b), the cotangent of h (and, summed over rows, of b)."""
    rows, cols = h.shape
    for r in numba.prange(rows):
        for c in range(cols):
            out[r, c] = g[r, c] * _gelu_grad(h[r, c] + b[c])
