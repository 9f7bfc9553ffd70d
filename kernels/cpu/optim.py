"""Fused optimizer update kernels over flat C-contiguous arrays (one parameter leaf per call).

Each kernel reads a leaf's gradient, parameter and state once and writes the new
state and the update in the same pass, instead of the ~10 temporaries a NumPy
expression would allocate (a ConvNeXt-T step updates 28M parameters). Scalars
(learning rate, bias corrections) are computed by the caller in float64; the
arithmetic runs in float64 and is stored in the arrays' dtype.

Memory safety (issue 10 audit): every array argument of one call has g's size; the
glue in ``lucid/optim`` checks each gradient, parameter and state leaf's shape against
its parameter (``as_update`` / ``state_array``) before flattening them.
"""
import math

import numba

from ._common import pjit


@pjit
def adam_update(g, p, mu, nu, b1, b2, eps, eps_root, bc1, bc2, bc1_next, nesterov, scale, wd,
                mu_out, nu_out, u_out):
    """Adam(W) moments and update: u = scale * (m_hat / (sqrt(v_hat + eps_root) + eps) + wd * p).

    ``bc1 = 1 - b1**t`` and ``bc2 = 1 - b2**t`` are the bias corrections; ``wd = 0``
    gives plain Adam (``p`` is then not read). With ``nesterov`` (Optax's NAdam),
    m_hat = b1 * m / bc1_next + (1 - b1) * g / bc1 with ``bc1_next = 1 - b1**(t + 1)``.
    """
    for i in numba.prange(g.size):
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


@pjit
def sgd_update(g, p, wd, scale, u_out):
    """Plain SGD update with coupled weight decay: u = scale * (g + wd * p)."""
    for i in numba.prange(g.size):
        d = g[i]
        if wd != 0.0:
            d += wd * p[i]
        u_out[i] = scale * d


@pjit
def sgd_momentum_update(g, p, buf, momentum, nesterov, wd, scale, buf_out, u_out):
    """SGD with momentum (PyTorch/Optax ``trace``, no dampening) and coupled weight decay.

    d = g + wd * p; buf' = momentum * buf + d; u = scale * (d + momentum * buf' if
    nesterov else buf').
    """
    for i in numba.prange(g.size):
        d = g[i]
        if wd != 0.0:
            d += wd * p[i]
        b = momentum * buf[i] + d
        buf_out[i] = b
        if nesterov:
            u_out[i] = scale * (d + momentum * b)
        else:
            u_out[i] = scale * b


@pjit
def sum_squares(x, out):
    """out[0] = sum(x**2), accumulated in float64 (for the global gradient norm)."""
    total = 0.0
    for i in numba.prange(x.size):
        xi = numba.float64(x[i])
        total += xi * xi
    out[0] = total
