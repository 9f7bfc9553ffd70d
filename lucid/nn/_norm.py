"""``layer_norm`` and ``batch_norm`` (PyTorch semantics: biased variance, eps inside the sqrt)."""
import math

import numpy as np

from .._autodiff import primitive
from .._backend import kernels
from .. import _buffers as buffers
from ._validate import (as_rows, axis_to_rows, check_axis, check_channel_vector, check_real,
                        contiguous, float_array, optional_float_array, rows_to_axis, same_dtype,
                        where)

K = kernels("norm")


@primitive(name="nn.functional.layer_norm")
def _layer_norm(x, w, b, *, eps, axis):
    x2 = axis_to_rows(x, axis)
    cols = x2.shape[1]
    w1 = np.ones(cols, x.dtype) if w is None else contiguous(w)
    b1 = np.zeros(cols, x.dtype) if b is None else contiguous(b)
    y2 = buffers.empty_like(x2)
    mean = np.empty(x2.shape[0])
    rstd = np.empty(x2.shape[0])
    K.layer_norm_fwd(x2, w1, b1, float(eps), y2, mean, rstd)

    def vjp(g):
        dx2 = buffers.empty_like(x2)
        dw = np.empty(cols, x.dtype)
        db = np.empty(cols, x.dtype)
        K.layer_norm_bwd(axis_to_rows(g, axis), x2, w1, mean, rstd, dx2, dw, db)
        return (rows_to_axis(dx2, x.shape, axis), None if w is None else dw,
                None if b is None else db)

    return rows_to_axis(y2, x.shape, axis), vjp


def layer_norm(x, weight=None, bias=None, eps: float = 1e-5, *, axis: int = -1):
    """Normalise over one axis, then scale and shift, as ``F.layer_norm`` over one dim.

    ``axis=-1`` is channels-last data (timm's ``LayerNorm`` on NHWC); ``axis=1`` on an
    NCHW array is timm's ``LayerNorm2d``.

    Args:
      x: float32/float64 array with at least 1 dimension.
      weight, bias: optional arrays of shape (C,), C = x.shape[axis].
      eps: added to the (biased) variance inside the square root.
      axis: the axis to normalise over.
    Returns:
      an array shaped like ``x``.
    """
    op = "layer_norm"
    x = float_array(x, op, "x")
    weight = optional_float_array(weight, op, "weight")
    bias = optional_float_array(bias, op, "bias")
    if x.ndim < 1:
        raise ValueError(f"{where(op)}: x must have at least 1 dimension, got a scalar")
    axis = check_axis(axis, x.ndim, op)
    size = x.shape[axis]
    if size == 0:
        raise ValueError(f"{where(op)}: cannot normalise over an empty axis {axis} "
                         f"(x has shape {tuple(x.shape)})")
    check_channel_vector(weight, size, op, "weight", f"x.shape[{axis}]")
    check_channel_vector(bias, size, op, "bias", f"x.shape[{axis}]")
    same_dtype(op, x=x, weight=weight, bias=bias)
    eps = check_real(eps, op, "eps", low=0.0)
    return _layer_norm(x, weight, bias, eps=eps, axis=axis)


# ---- batch norm: channels on axis 1 ("mid", viewed as (N, C, S)) or last ("last", (rows, C)) ----

def _channel_view(a, layout):
    if layout == "last":
        return as_rows(a)
    a = contiguous(a)
    return a.reshape(a.shape[0], a.shape[1], int(np.prod(a.shape[2:], dtype=np.int64)))


def _kernel(name, layout):
    return getattr(K, f"{name}_{layout}")


def _affine_terms(mean, invstd, w, b, dtype):
    """Per-channel (scale, shift) with y = x * scale + shift, in the data's dtype."""
    scale = invstd if w is None else invstd * w
    shift = -mean * scale if b is None else b - mean * scale
    return scale.astype(dtype), shift.astype(dtype)


def _param_grads(w, b, sum_g, sum_gxc, invstd):
    dw = None if w is None else (sum_gxc * invstd).astype(w.dtype)
    db = None if b is None else sum_g.astype(b.dtype)
    return dw, db


@primitive(name="nn.functional.batch_norm")
def _batch_norm_eval(x, rm, rv, w, b, *, eps, layout):
    xv = _channel_view(x, layout)
    mean = rm.astype(np.float64)
    invstd = 1.0 / np.sqrt(rv.astype(np.float64) + eps)
    scale, shift = _affine_terms(mean, invstd, w, b, x.dtype)
    y = np.empty_like(xv)
    _kernel("batch_norm_fwd", layout)(xv, scale, shift, y)

    def vjp(g):
        gv = _channel_view(g, layout)
        dx = np.empty_like(xv)
        _kernel("batch_norm_fwd", layout)(gv, scale, np.zeros_like(shift), dx)
        sum_g, sum_gxc = np.empty_like(mean), np.empty_like(mean)
        _kernel("batch_norm_bwd_sums", layout)(gv, xv, mean, sum_g, sum_gxc)
        return (dx.reshape(x.shape), None, None) + _param_grads(w, b, sum_g, sum_gxc, invstd)

    return y.reshape(x.shape), vjp


@primitive(name="nn.functional.batch_norm")
def _batch_norm_train(x, rm, rv, w, b, *, momentum, eps, layout):
    xv = _channel_view(x, layout)
    channels = rm.shape[0]
    count = x.size // channels
    mean, var = np.empty(channels), np.empty(channels)
    _kernel("batch_norm_stats", layout)(xv, mean, var)
    invstd = 1.0 / np.sqrt(var + eps)
    scale, shift = _affine_terms(mean, invstd, w, b, x.dtype)
    y = np.empty_like(xv)
    _kernel("batch_norm_fwd", layout)(xv, scale, shift, y)
    new_rm = ((1.0 - momentum) * rm + momentum * mean).astype(rm.dtype)
    new_rv = ((1.0 - momentum) * rv + momentum * var * (count / (count - 1))).astype(rv.dtype)

    def vjp(g):
        if g[0] is None:  # only the running statistics were used: they carry no gradient
            return None, None, None, None, None
        gv = _channel_view(g[0], layout)
        sum_g, sum_gxc = np.empty(channels), np.empty(channels)
        _kernel("batch_norm_bwd_sums", layout)(gv, xv, mean, sum_g, sum_gxc)
        a = invstd if w is None else invstd * w
        bx = -a * invstd * invstd * sum_gxc / count
        c0 = -bx * mean - a * sum_g / count
        dx = np.empty_like(xv)
        _kernel("batch_norm_bwd_x", layout)(gv, xv, a, bx, c0, dx)
        return (dx.reshape(x.shape), None, None) + _param_grads(w, b, sum_g, sum_gxc, invstd)

    return (y.reshape(x.shape), new_rm, new_rv), vjp


def batch_norm(x, running_mean, running_var, weight=None, bias=None, *, train: bool = False,
               momentum: float = 0.1, eps: float = 1e-5, axis: int = 1):
    """Batch normalisation, as ``torch.nn.functional.batch_norm`` but functional.

    Args:
      x: float32/float64 array of shape (N, C, ...) (``axis=1``, e.g. NCHW) or (..., C)
        (``axis=-1``, e.g. NHWC).
      running_mean, running_var: arrays of shape (C,). In train mode both may be None
        (no running statistics are tracked; the returned ones are then None).
      weight, bias: optional arrays of shape (C,).
      train: normalise with the batch statistics (biased variance) and update the
        running ones; otherwise normalise with the running statistics.
      momentum: new_running = (1 - momentum) * running + momentum * batch_stat, with
        the unbiased batch variance for running_var (PyTorch semantics).
      eps: added to the variance inside the square root.
      axis: the channel axis, 1 or -1 (the last).
    Returns:
      ``y`` (shaped like x) when ``train`` is False; ``(y, new_running_mean,
      new_running_var)`` when ``train`` is True. Gradients flow to x, weight and bias,
      never to the running statistics.
    """
    op = "batch_norm"
    x, rm, rv, w, b, axis = _check_batch_norm(x, running_mean, running_var, weight, bias,
                                              train, axis)
    eps = check_real(eps, op, "eps", low=0.0)
    layout = "last" if axis == x.ndim - 1 else "mid"
    if not train:
        return _batch_norm_eval(x, rm, rv, w, b, eps=eps, layout=layout)
    momentum = check_real(momentum, op, "momentum", low=0.0, high=1.0)
    channels = x.shape[axis]
    if math.prod(x.shape) // max(channels, 1) < 2:
        raise ValueError(f"{where(op)}: train mode needs more than 1 value per channel, got x "
                         f"of shape {tuple(x.shape)}")
    if rm is None:  # untracked statistics: run with zero buffers and drop the update
        zeros = np.zeros(channels, x.dtype)
        y, _, _ = _batch_norm_train(x, zeros, zeros, w, b, momentum=1.0, eps=eps, layout=layout)
        return y, None, None
    return _batch_norm_train(x, rm, rv, w, b, momentum=momentum, eps=eps, layout=layout)


def _check_batch_norm(x, rm, rv, w, b, train, axis):
    op = "batch_norm"
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"{where(op)}: train must be a bool, got {train!r}")
    x = float_array(x, op, "x")
    rm = optional_float_array(rm, op, "running_mean")
    rv = optional_float_array(rv, op, "running_var")
    w, b = optional_float_array(w, op, "weight"), optional_float_array(b, op, "bias")
    if x.ndim < 2:
        raise ValueError(f"{where(op)}: x must have at least 2 dimensions (N, C, ...), got "
                         f"shape {tuple(x.shape)}")
    axis = check_axis(axis, x.ndim, op)
    if axis not in (1, x.ndim - 1):
        raise ValueError(f"{where(op)}: axis must be 1 (channels second, NCHW) or -1 (channels "
                         f"last, NHWC), got {axis} for a {x.ndim}-D input")
    if (rm is None) != (rv is None):
        raise ValueError(f"{where(op)}: pass both running_mean and running_var, or neither")
    if rm is None and not train:
        raise ValueError(f"{where(op)}: eval mode (train=False) needs running_mean and running_var")
    channels = x.shape[axis]
    for name, v in (("running_mean", rm), ("running_var", rv), ("weight", w), ("bias", b)):
        check_channel_vector(v, channels, op, name, f"the {channels} channels of x (axis {axis})")
    same_dtype(op, x=x, running_mean=rm, running_var=rv, weight=w, bias=b)
    return x, rm, rv, w, b, axis
