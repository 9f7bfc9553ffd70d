"""Fused optimizer updates over flat device arrays (the CUDA twin of
``kernels/cpu/optim.py``): one pass per parameter leaf, scalars computed by the caller,
arithmetic in float64 stored in the arrays' dtype."""
import math

from numba import cuda, float64

from ._common import RB, block_sum, flat, launch, launch_reduce


@cuda.jit(device=True, inline=True)
def _adam_item(i, g, p, mu, nu, b1, b2, eps, eps_root, bc1, bc2, bc1_next, nesterov, scale, wd,
               mu_out, nu_out, u_out):
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
def _adam_update(g, p, mu, nu, b1, b2, eps, eps_root, bc1, bc2, bc1_next, nesterov, scale, wd,
                 mu_out, nu_out, u_out):
    """u = scale * (m_hat / (sqrt(v_hat + eps_root) + eps) + wd * p); with ``nesterov``
    (NAdam) m_hat = b1 * m / bc1_next + (1 - b1) * g / bc1."""
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        _adam_item(i, g, p, mu, nu, b1, b2, eps, eps_root, bc1, bc2, bc1_next, nesterov, scale,
                   wd, mu_out, nu_out, u_out)


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


# ------------------------------------------------------------------------------------------
# Device-side plumbing of ``lucid.optim`` (no CPU twin: on the CPU these are NumPy
# expressions or Python arithmetic on the host step count). They keep a device optimizer
# state on the device: the step count is a 0-d int64 device array that is incremented and
# read (for Adam's bias corrections) by kernels, and the global gradient norm never leaves
# the device.

@cuda.jit
def _adam_update_counted(g, p, mu, nu, count, b1, b2, eps, eps_root, nesterov, scale, wd,
                         mu_out, nu_out, u_out):
    """:func:`adam_update` with the bias corrections computed from the step count ``count[0]``
    (updates already applied) as the CPU computes them: ``1 - b ** t``, ``t = count + 1``."""
    t = float64(count[0] + 1)
    bc1 = 1.0 - b1 ** t
    bc2 = 1.0 - b2 ** t
    bc1_next = 1.0 - b1 ** (t + 1.0)
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        _adam_item(i, g, p, mu, nu, b1, b2, eps, eps_root, bc1, bc2, bc1_next, nesterov, scale,
                   wd, mu_out, nu_out, u_out)


@cuda.jit
def _increment(count, out):
    if cuda.grid(1) == 0:
        out[0] = count[0] + 1


@cuda.jit
def _scale(u, factor, out):
    for i in range(cuda.grid(1), u.size, cuda.gridsize(1)):
        out[i] = u[i] * factor


@cuda.jit
def _add_scaled(u, p, a, out):
    for i in range(cuda.grid(1), u.size, cuda.gridsize(1)):
        out[i] = u[i] + a * p[i]


@cuda.jit
def _norm_of_sums(sums, out):
    """out[0] = sqrt(sums[0] + sums[1] + ...), added left to right as the CPU's loop does."""
    if cuda.grid(1) == 0:
        total = 0.0
        for k in range(sums.size):
            total += sums[k]
        out[0] = math.sqrt(total)


@cuda.jit
def _clip(u, norm, norm_t, max_norm, max_norm_t, out):
    """out = u when norm < max_norm, else (u / norm) * max_norm in u's precision (norm_t,
    max_norm_t: the norm and bound rounded to u's dtype, as NumPy rounds a Python float)."""
    keep = norm[0] < max_norm
    n = norm_t[0]
    for i in range(cuda.grid(1), u.size, cuda.gridsize(1)):
        if keep:
            out[i] = u[i]
        else:
            out[i] = (u[i] / n) * max_norm_t


def adam_update_counted(g, p, mu, nu, count, b1, b2, eps, eps_root, nesterov, scale, wd,
                        mu_out, nu_out, u_out):
    """:func:`adam_update` whose bias corrections come from the 0-d int64 device step count
    ``count`` (no host read of the count)."""
    launch(_adam_update_counted, g.size, g, p, mu, nu, count.reshape(1), b1, b2, eps, eps_root,
           nesterov, scale, wd, mu_out, nu_out, u_out)


def increment(count, out):
    """out = count + 1 for 0-d int64 device arrays (the optimizer's step count)."""
    launch(_increment, 1, count.reshape(1), out.reshape(1))


def scale(u, factor, out):
    """out = u * factor (flat arrays; pass ``factor`` in u's dtype for NumPy's rounding)."""
    launch(_scale, u.size, u, factor, out)


def add_scaled(u, p, a, out):
    """out = u + a * p (flat arrays of one size; ``a`` in their dtype)."""
    launch(_add_scaled, u.size, u, p, a, out)


def norm_of_sums(sums, out):
    """out[0] = sqrt(sum(sums)) (float64, one thread: a fixed order)."""
    launch(_norm_of_sums, 1, sums, out)


def clip(u, norm, norm_t, max_norm, max_norm_t, out):
    """Global-norm clipping of one flat leaf (see ``_clip``); ``norm`` is a float64 (1,)
    device array, ``norm_t`` the same norm in u's dtype."""
    launch(_clip, u.size, u, norm, norm_t, max_norm, max_norm_t, out)
