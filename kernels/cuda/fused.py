"""Fused layer-scale + residual kernels (the CUDA twin of ``kernels/cpu/fused.py``)."""
from numba import cuda, float64

from ._common import RB, block_sum, launch, launch_reduce


@cuda.jit
def _scale_residual_fwd(x, y, gamma, out):
    cols = x.shape[1]
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        r = i // cols
        c = i % cols
        out[r, c] = x[r, c] + y[r, c] * gamma[c]


@cuda.jit
def _bias_scale_residual_fwd(x, y, b, gamma, out):
    cols = x.shape[1]
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        r = i // cols
        c = i % cols
        out[r, c] = x[r, c] + (y[r, c] + b[c]) * gamma[c]


@cuda.jit
def _scale_grad_rows(g, gamma, gy):
    cols = g.shape[1]
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        r = i // cols
        c = i % cols
        gy[r, c] = g[r, c] * gamma[c]


@cuda.jit
def _scale_grad_columns(g, y, b, gamma, ggamma, gb, with_bias):
    """ggamma[c] = sum_r g * (y + b); gb[c] = sum_r g * gamma (when with_bias): one block
    per column, fixed tree (float64)."""
    buf = cuda.shared.array(RB, float64)
    rows, cols = g.shape
    for c in range(cuda.blockIdx.x, cols, cuda.gridDim.x):
        bc = b[c] if with_bias else 0.0
        s = 0.0
        sg = 0.0
        for r in range(cuda.threadIdx.x, rows, RB):
            s += g[r, c] * (y[r, c] + bc)
            sg += g[r, c]
        total = block_sum(s, buf)
        total_g = block_sum(sg, buf)
        if cuda.threadIdx.x == 0:
            ggamma[c] = total
            if with_bias:
                gb[c] = total_g * gamma[c]


def scale_residual_fwd(x, y, gamma, out):
    """out[r, c] = x[r, c] + y[r, c] * gamma[c] for x, y (M, C) and gamma (C,)."""
    launch(_scale_residual_fwd, x.size, x, y, gamma, out)


def scale_residual_bwd(g, y, gamma, gy, ggamma):
    """gy = g * gamma and ggamma = sum over rows of g * y (float64 accumulation)."""
    launch(_scale_grad_rows, g.size, g, gamma, gy)
    launch_reduce(_scale_grad_columns, g.shape[1], g, y, gamma, gamma, ggamma, ggamma, False)


def bias_scale_residual_fwd(x, y, b, gamma, out):
    """out[r, c] = x[r, c] + (y[r, c] + b[c]) * gamma[c]."""
    launch(_bias_scale_residual_fwd, x.size, x, y, b, gamma, out)


def bias_scale_residual_bwd(g, y, b, gamma, gy, ggamma, gb):
    """gy = g * gamma; ggamma = sum over rows of g * (y + b); gb = sum over rows of gy."""
    launch(_scale_grad_rows, g.size, g, gamma, gy)
    launch_reduce(_scale_grad_columns, g.shape[1], g, y, b, gamma, ggamma, gb, True)
