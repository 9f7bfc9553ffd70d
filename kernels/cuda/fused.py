"""Fused layer-scale + residual kernels (the CUDA twin of ``kernels/cpu/fused.py``)."""
from numba import cuda, float64

from ._common import CW, RL, column_groups, column_sum, launch, launch_columns


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
    """ggamma[c] = sum_r g * (y + b); gb[c] = gamma * sum_r g (when with_bias): one block
    per CW columns, fixed tree (float64)."""
    buf = cuda.shared.array((RL, CW), float64)
    rows, cols = g.shape
    for grp in range(cuda.blockIdx.x, (cols + CW - 1) // CW, cuda.gridDim.x):
        c = grp * CW + cuda.threadIdx.x
        s = 0.0
        sg = 0.0
        if c < cols:
            bc = b[c] if with_bias else 0.0
            for r in range(cuda.threadIdx.y, rows, RL):
                s += g[r, c] * (y[r, c] + bc)
                sg += g[r, c]
        total = column_sum(s, buf)
        total_g = column_sum(sg, buf)
        if cuda.threadIdx.y == 0 and c < cols:
            ggamma[c] = total
            if with_bias:
                gb[c] = total_g * gamma[c]


def scale_residual_fwd(x, y, gamma, out):
    """out[r, c] = x[r, c] + y[r, c] * gamma[c] for x, y (M, C) and gamma (C,)."""
    launch(_scale_residual_fwd, x.size, x, y, gamma, out)


def scale_residual_bwd(g, y, gamma, gy, ggamma):
    """gy = g * gamma and ggamma = sum over rows of g * y (float64 accumulation)."""
    launch(_scale_grad_rows, g.size, g, gamma, gy)
    launch_columns(_scale_grad_columns, column_groups(g.shape[1]), g, y, gamma, gamma, ggamma,
                   ggamma, False)


def bias_scale_residual_fwd(x, y, b, gamma, out):
    """out[r, c] = x[r, c] + (y[r, c] + b[c]) * gamma[c]."""
    launch(_bias_scale_residual_fwd, x.size, x, y, b, gamma, out)


def bias_scale_residual_bwd(g, y, b, gamma, gy, ggamma, gb):
    """gy = g * gamma; ggamma = sum over rows of g * (y + b); gb = sum over rows of gy."""
    launch(_scale_grad_rows, g.size, g, gamma, gy)
    launch_columns(_scale_grad_columns, column_groups(g.shape[1]), g, y, b, gamma, ggamma, gb,
                   True)
