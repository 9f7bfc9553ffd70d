"""Softmax, log-softmax and fused cross-entropy kernels over rows of x (R, K).

Every row is shifted by its maximum before exponentiating (no overflow), and the
row sums are accumulated in float64.

Inside ``prange`` bodies, views and scalars are bound one per statement, never by tuple
assignment (``xr, o, lr, g = x[r], out[r], lse[r], g[r]``): with Numba 0.68 the parfor
pass silently dropped a store through such a view (``o[labels[r]] -= ...``).

Memory safety (issue 10 audit): ``labels`` index ``x[r]`` unchecked; ``F.cross_entropy``
refuses labels outside [0, K) (and unsigned ones too large for int64) before calling.
Rows have K >= 1 (``_row_max`` reads v[0]).
"""
import math

import numba
import numpy as np

from ._common import pjit
from ._math import exp, row_dot, row_sum, scalar_like


@numba.njit(inline="always")
def _row_max(v):
    # NaN needs no special case: a NaN element makes exp(v - m) and the row sum NaN anyway.
    m = v[0]
    for i in range(1, v.size):
        if v[i] > m:
            m = v[i]
    return m


@numba.njit(inline="always")
def _exp_shifted(v, m, buf):
    """buf = exp(v - m) (vectorised, in v's dtype); returns the float64 sum of buf."""
    for i in range(v.size):
        buf[i] = exp(v[i] - m)
    return row_sum(buf)


@pjit
def softmax_fwd(x, out):
    for r in numba.prange(x.shape[0]):
        xr = x[r]
        o = out[r]
        inv = scalar_like(x, 1.0 / _exp_shifted(xr, _row_max(xr), o))
        for i in range(xr.size):
            o[i] = o[i] * inv


@pjit
def softmax_bwd(g, y, out):
    """out = y * (g - sum(g * y)) per row."""
    for r in numba.prange(g.shape[0]):
        gr = g[r]
        yr = y[r]
        o = out[r]
        s = scalar_like(g, row_dot(gr, yr))
        for i in range(gr.size):
            o[i] = yr[i] * (gr[i] - s)


@pjit
def log_softmax_fwd(x, out):
    for r in numba.prange(x.shape[0]):
        xr = x[r]
        o = out[r]
        m = _row_max(xr)
        shift = scalar_like(x, m + math.log(_exp_shifted(xr, m, o)))  # o is scratch here
        for i in range(xr.size):
            o[i] = xr[i] - shift


@pjit
def log_softmax_bwd(g, y, out):
    """out = g - exp(y) * sum(g) per row, y = log_softmax(x)."""
    for r in numba.prange(g.shape[0]):
        gr = g[r]
        yr = y[r]
        o = out[r]
        s = scalar_like(g, row_sum(gr))
        for i in range(gr.size):
            o[i] = gr[i] - exp(yr[i]) * s


@numba.njit(inline="always")
def _logsumexp(xr, buf):
    m = _row_max(xr)
    return m + math.log(_exp_shifted(xr, m, buf))


@pjit
def cross_entropy_fwd(x, labels, smoothing, loss, lse):
    """Per-row loss with integer labels and label smoothing; lse (R,) float64 is saved.

    loss = lse - (1 - smoothing) * x[label] - smoothing / K * sum(x), i.e. -sum(t * log_softmax(x))
    with t = (1 - smoothing) * onehot(label) + smoothing / K.
    """
    rows, k = x.shape
    for r in numba.prange(rows):
        xr = x[r]
        lr = _logsumexp(xr, np.empty_like(xr))
        lse[r] = lr
        loss[r] = lr - (1.0 - smoothing) * xr[labels[r]] - smoothing / k * row_sum(xr)


@pjit
def cross_entropy_bwd(g, x, labels, lse, smoothing, out):
    """out = g[r] * (softmax(x) - t) per row, t the smoothed one-hot target."""
    rows, k = x.shape
    for r in numba.prange(rows):
        xr = x[r]
        o = out[r]
        lr = scalar_like(x, lse[r])  # keeps exp in x's dtype (vectorised for float32)
        gr = g[r]
        label = labels[r]
        base = smoothing / k
        for i in range(k):
            t = base + (1.0 - smoothing) if i == label else base
            o[i] = gr * (exp(xr[i] - lr) - t)


@pjit
def cross_entropy_soft_fwd(x, t, smoothing, loss, lse):
    """Per-row loss -sum(t' * log_softmax(x)) for probability targets t (R, K),
    t' = (1 - smoothing) * t + smoothing / K."""
    rows, k = x.shape
    for r in numba.prange(rows):
        xr = x[r]
        tr = t[r]
        lr = _logsumexp(xr, np.empty_like(xr))
        lse[r] = lr
        tsum = (1.0 - smoothing) * row_sum(tr) + smoothing
        tx = (1.0 - smoothing) * row_dot(tr, xr) + smoothing / k * row_sum(xr)
        loss[r] = lr * tsum - tx


@pjit
def cross_entropy_soft_bwd(g, x, t, lse, smoothing, dx, dt):
    """dx = g[r] * (softmax(x) * sum(t') - t'); dt = g[r] * (1 - smoothing) * (lse - x)."""
    rows, k = x.shape
    for r in numba.prange(rows):
        xr = x[r]
        tr = t[r]
        lr = scalar_like(x, lse[r])
        gr = g[r]
        tsum = (1.0 - smoothing) * row_sum(tr) + smoothing
        base = smoothing / k
        for i in range(k):
            ti = (1.0 - smoothing) * tr[i] + base
            dx[r, i] = gr * (exp(xr[i] - lr) * tsum - ti)
            dt[r, i] = gr * (1.0 - smoothing) * (lse[r] - xr[i])
