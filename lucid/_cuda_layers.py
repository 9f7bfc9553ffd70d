"""Device-side bodies of the normalisation (LayerNorm, eval BatchNorm), activation, fused,
pooling and loss primitives on the CUDA backend (raw numba.cuda arrays; see ``_cuda_ops``). The kernel
calls are the CPU primitives' (``lucid/nn/_*.py``); per-channel and per-row scalar math
runs in ``kernels/cuda/channel.py`` instead of NumPy, so nothing goes through the host.
"""
from __future__ import annotations

import numpy as np

from ._cuda_ops import empty, permuted, rows, zeros
from .kernels.cuda import activation as KA
from .kernels.cuda import channel as KCh
from .kernels.cuda import fused as KF
from .kernels.cuda import linear as KL
from .kernels.cuda import memory as KM
from .kernels.cuda import norm as KN
from .kernels.cuda import pool as KP
from .kernels.cuda import reduce as KR
from .kernels.cuda import softmax as KS

F64 = np.float64


def _ones(n, dtype):
    out = empty(n, dtype)
    KM.fill(out, 1)
    return out


def axis_to_rows(x, axis):
    """x with ``axis`` moved last, as C-contiguous (rows, C)."""
    nd = len(x.shape)
    if axis != nd - 1:
        x = permuted(x, [i for i in range(nd) if i != axis] + [axis])
    return rows(x)


def rows_to_axis(r, shape, axis):
    """Inverse of :func:`axis_to_rows` for an array of the original ``shape``."""
    nd = len(shape)
    moved = r.reshape(*(tuple(shape[:axis]) + tuple(shape[axis + 1:]) + (shape[axis],)))
    if axis == nd - 1:
        return moved
    perm = list(range(axis)) + [nd - 1] + list(range(axis, nd - 1))
    return permuted(moved, perm)


# ----------------------------------------------------------------------------- layer norm

def layer_norm_fwd(x, w, b, eps, axis):
    """-> (y, mean, rstd); mean and rstd (rows,) float64 are the backward's residuals."""
    x2 = axis_to_rows(x, axis)
    n, C = x2.shape
    w1 = _ones(C, x.dtype) if w is None else w
    b1 = zeros(C, x.dtype) if b is None else b
    y2, mean, rstd = empty(x2.shape, x.dtype), empty(n, F64), empty(n, F64)
    KN.layer_norm_fwd(x2, w1, b1, float(eps), y2, mean, rstd)
    return rows_to_axis(y2, x.shape, axis), mean, rstd


def layer_norm_bwd(g, x, w, b, mean, rstd, axis):
    """-> (dx, dw or None, db or None)."""
    x2 = axis_to_rows(x, axis)
    C = x2.shape[1]
    w1 = _ones(C, x.dtype) if w is None else w
    dx2, dw, db = empty(x2.shape, x.dtype), empty(C, x.dtype), empty(C, x.dtype)
    KN.layer_norm_bwd(axis_to_rows(g, axis), x2, w1, mean, rstd, dx2, dw, db)
    return (rows_to_axis(dx2, x.shape, axis), None if w is None else dw,
            None if b is None else db)


# ----------------------------------------------------------------------------- batch norm

def _channel_view(a, layout):
    if layout == "last":
        return rows(a)
    s = a.size // (a.shape[0] * a.shape[1])
    return a.reshape(a.shape[0], a.shape[1], s)


def _affine(mean, var, w, b, eps, dtype):
    C = mean.size
    invstd, scale, shift = empty(C, F64), empty(C, dtype), empty(C, dtype)
    KCh.bn_affine(mean, var, mean if w is None else w, mean if b is None else b, float(eps),
                  w is not None, b is not None, invstd, scale, shift)
    return invstd, scale, shift


def _as_f64(v):
    if np.dtype(v.dtype) == F64:
        return v
    out = empty(v.shape, F64)
    KM.cast(v, out)
    return out


def batch_norm_eval_fwd(x, rm, rv, w, b, eps, layout):
    """Normalise with the running statistics -> y."""
    xv = _channel_view(x, layout)
    _, scale, shift = _affine(_as_f64(rm), _as_f64(rv), w, b, eps, x.dtype)
    y = empty(xv.shape, x.dtype)
    getattr(KN, f"batch_norm_fwd_{layout}")(xv, scale, shift, y)
    return y.reshape(*x.shape)


# ----------------------------------------------------------------------------- activations

def _flat(kernel, *arrays, out=None):
    out = empty(arrays[0].shape, arrays[0].dtype) if out is None else out
    kernel(*(a.reshape(a.size) for a in arrays), out.reshape(out.size))
    return out


def activation_fwd(name, x, out=None):
    """``name`` in relu, gelu, gelu_tanh -> y (written into ``out`` when given)."""
    return _flat(getattr(KA, f"{name}_fwd"), x, out=out)


def activation_bwd(name, g, x, y):
    """relu's backward reads y, the GELUs' read x."""
    return _flat(getattr(KA, f"{name}_bwd"), g, y if name == "relu" else x)


def bias_gelu_fwd(h, b, out=None):
    out = empty(h.shape, h.dtype) if out is None else out
    KA.bias_gelu_fwd(rows(h), b, rows(out))
    return out


def bias_gelu_bwd(g, h, b):
    gh, gb = empty(h.shape, h.dtype), empty(b.shape, b.dtype)
    KA.bias_gelu_bwd(rows(g), rows(h), b, rows(gh))
    KL.bias_add_bwd(rows(gh), gb)
    return gh, gb


# ----------------------------------------------------------------------------- fused

def scale_residual_fwd(x, y, gamma, b=None, out=None):
    """x + y * gamma, or x + (y + b) * gamma with b (into ``out`` when given)."""
    out = empty(x.shape, x.dtype) if out is None else out
    if b is None:
        KF.scale_residual_fwd(rows(x), rows(y), gamma, rows(out))
    else:
        KF.bias_scale_residual_fwd(rows(x), rows(y), b, gamma, rows(out))
    return out


def scale_residual_bwd(g, y, gamma, b=None):
    """-> (gx, gy, ggamma, gb or None); gx is g itself."""
    gy, ggamma = empty(y.shape, y.dtype), empty(gamma.shape, gamma.dtype)
    if b is None:
        KF.scale_residual_bwd(rows(g), rows(y), gamma, rows(gy), ggamma)
        return g, gy, ggamma, None
    gb = empty(b.shape, b.dtype)
    KF.bias_scale_residual_bwd(rows(g), rows(y), b, gamma, rows(gy), ggamma, gb)
    return g, gy, ggamma, gb


# ----------------------------------------------------------------------------- pooling, dropout

def global_avg_pool_fwd(x, nhwc):
    """(N, C, H, W) or NHWC (N, H, W, C) -> (N, C)."""
    n = x.shape[0]
    c = x.shape[3] if nhwc else x.shape[1]
    out = empty((n, c), x.dtype)
    if nhwc:
        KP.global_avg_pool_nhwc_fwd(x.reshape(n, x.size // (n * c), c), out)
    else:
        KP.global_avg_pool_fwd(x.reshape(n * c, x.size // (n * c)), out.reshape(n * c))
    return out


def global_avg_pool_bwd(g, x_shape, nhwc):
    n = x_shape[0]
    c = x_shape[3] if nhwc else x_shape[1]
    dx = empty(x_shape, g.dtype)
    s = dx.size // (n * c)
    if nhwc:
        KP.global_avg_pool_nhwc_bwd(g.reshape(n, c), dx.reshape(n, s, c))
    else:
        KP.global_avg_pool_bwd(g.reshape(n * c), dx.reshape(n * c, s))
    return dx


# ----------------------------------------------------------------------------- softmax, loss

def softmax_fwd(x, axis, log=False):
    y2 = empty((x.size // x.shape[axis], x.shape[axis]), x.dtype)
    (KS.log_softmax_fwd if log else KS.softmax_fwd)(axis_to_rows(x, axis), y2)
    return rows_to_axis(y2, x.shape, axis)


def softmax_bwd(g, y, axis, log=False):
    y2 = axis_to_rows(y, axis)
    dx2 = empty(y2.shape, y.dtype)
    (KS.log_softmax_bwd if log else KS.softmax_bwd)(axis_to_rows(g, axis), y2, dx2)
    return rows_to_axis(dx2, y.shape, axis)


def cross_entropy_fwd(x, t, smoothing, reduction):
    """-> (loss in x's dtype: (N,) or 0-d, lse (N,) float64 residual)."""
    n = x.shape[0]
    loss, lse = empty(n, F64), empty(n, F64)
    soft = np.dtype(t.dtype).kind == "f"
    (KS.cross_entropy_soft_fwd if soft else KS.cross_entropy_fwd)(x, t, smoothing, loss, lse)
    out = empty((n,) if reduction == "none" else (), x.dtype)
    if reduction == "none":
        KM.cast(loss, out)
    else:
        total = empty((1, 1), F64)
        KR.sum_fwd(loss.reshape(1, n, 1), 1, 1.0 / n if reduction == "mean" else 1.0, total)
        KM.cast(total, out.reshape(1))
    return out, lse


def cross_entropy_bwd(g, x, t, lse, smoothing, reduction):
    """-> (dx, dt or None); g is the cotangent of the (reduced) loss, on the device."""
    n = x.shape[0]
    gr = empty(n, F64)
    if reduction == "none":
        KM.cast(g, gr)
    else:
        KCh.scaled_scalar(g, 1.0 / n if reduction == "mean" else 1.0, gr)
    dx = empty(x.shape, x.dtype)
    if np.dtype(t.dtype).kind != "f":
        KS.cross_entropy_bwd(gr, x, t, lse, smoothing, dx)
        return dx, None
    dt = empty(t.shape, t.dtype)
    KS.cross_entropy_soft_bwd(gr, x, t, lse, smoothing, dx, dt)
    return dx, dt
