"""Fused optimizer updates over flat device arrays (the CUDA twin of
``kernels/cpu/optim.py``): one pass per parameter leaf, scalars computed by the caller,
arithmetic in float64 stored in the arrays' dtype."""
import math

from numba import cuda, float64

from ._common import RB, block_sum, flat, launch_reduce


@cuda.jit
def _adam_update(g, p, mu, nu, b1, b2, eps, eps_root, bc1, bc2, bc1_next, nesterov, scale, wd,
                 mu_out, nu_out, u_out):
    """u = scale * (m_hat / (sqrt(v_hat + eps_root) + eps) + wd * p); with ``nesterov``
    (NAdam) m_hat = b1 * m / bc1_next + (1 - b1) * g / bc1."""
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        gi = g[i]
        m = b1 * mu[i] + (1.0 - b1) * gi
        v = b2 * nu[i] + (1.0 - b2) * gi * gi
        mu_out[i] = m
        nu_out[i] = v
        if nesterov:
            m_hat = b1 * (m / bc1_next) + (1.0 - b1) * (gi / bc1)
        else:
            m_hat = m / bc1
        step = m_hat / (math.sqrt(v / bc2 + eps_root) + eps)
        if wd != 0.0:
            step += wd * p[i]
        u_out[i] = scale * step


@cuda.jit
def _sgd_update(g, p, wd, scale, u_out):
    """u = scale * (g + wd * p)."""
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        d = g[i]
        if wd != 0.0:
            d += wd * p[i]
        u_out[i] = scale * d


@cuda.jit
def _sgd_momentum_update(g, p, buf, momentum, nesterov, wd, scale, buf_out, u_out):
    """d = g + wd * p; buf' = momentum * buf + d; u = scale * (d + momentum * buf' if
    nesterov else buf')."""
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        d = g[i]
        if wd != 0.0:
            d += wd * p[i]
        b = momentum * buf[i] + d
        buf_out[i] = b
        if nesterov:
            u_out[i] = scale * (d + momentum * b)
        else:
            u_out[i] = scale * b


@cuda.jit
def _sum_squares(x, out):
    buf = cuda.shared.array(RB, float64)
    if cuda.blockIdx.x == 0:     # one block: a single fixed tree over the whole array
        s = 0.0
        for i in range(cuda.threadIdx.x, x.size, RB):
            v = float64(x[i])
            s += v * v
        total = block_sum(s, buf)
        if cuda.threadIdx.x == 0:
            out[0] = total


adam_update = flat(_adam_update)
sgd_update = flat(_sgd_update)
sgd_momentum_update = flat(_sgd_momentum_update)


def sum_squares(x, out):
    """out[0] = sum(x**2), accumulated in float64 (for the global gradient norm)."""
    launch_reduce(_sum_squares, 1, x, out)
