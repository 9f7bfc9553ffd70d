"""``layer_norm`` and ``batch_norm`` (PyTorch semantics: biased variance, eps inside the sqrt)."""
import math

import numpy as np

from .._backend import kernels
from .._core import Primitive, aval, bind
from .. import _buffers as buffers
from ._validate import (as_rows, axis_to_rows, check_axis, check_channel_vector, check_real,
                        contiguous, float_array, optional_float_array, same_dtype, where)

K = kernels("norm")


def _row_target(out, axis):
    """The (rows, C) array a row kernel writes for ``out`` normalised over ``axis``: a view
    of ``out`` when ``axis`` is last, else scratch that :func:`_store_rows` moves back."""
    if axis == out.ndim - 1:
        return as_rows(out)
    return buffers.empty((out.size // out.shape[axis], out.shape[axis]), out.dtype)


def _store_rows(rows, out, axis):
    if axis != out.ndim - 1:
        moved = rows.reshape(out.shape[:axis] + out.shape[axis + 1:] + (out.shape[axis],))
        np.copyto(out, np.moveaxis(moved, -1, axis))


def _ones_zeros(w, b, cols, dtype):
    """The affine vectors the kernels read: ``w``/``b`` or ones/zeros when absent."""
    w1 = np.ones(cols, dtype) if w is None else contiguous(w)
    b1 = np.zeros(cols, dtype) if b is None else contiguous(b)
    return w1, b1


layer_norm_p = Primitive("nn.functional.layer_norm", multiple_results=True)  # y, mean, rstd
layer_norm_p.saves = ((0, 1), (1, 2))


@layer_norm_p.def_abstract
def _layer_norm_abstract(x, w, b, *, eps, axis):
    rows = x.size // x.shape[axis]
    return aval(x.shape, x.dtype), aval((rows,), np.float64), aval((rows,), np.float64)


@layer_norm_p.def_impl
def _layer_norm_impl(x, w, b, *, out, eps, axis):
    y, mean, rstd = out
    x2 = axis_to_rows(x, axis)
    w1, b1 = _ones_zeros(w, b, x2.shape[1], x.dtype)
    y2 = _row_target(y, axis)
    K.layer_norm_fwd(x2, w1, b1, float(eps), y2, mean, rstd)
    _store_rows(y2, y, axis)


@layer_norm_p.def_vjp
def _layer_norm_vjp(cts, x, w, b, *, results, needs, eps, axis):
    _, mean, rstd = results
    dx, dw, db = bind(layer_norm_bwd_p, cts[0], x, w, mean, rstd, axis=axis)
    return dx, (None if w is None else dw), (None if b is None else db)


layer_norm_bwd_p = Primitive("nn.functional.layer_norm_bwd", multiple_results=True)


@layer_norm_bwd_p.def_abstract
def _layer_norm_bwd_abstract(g, x, w, mean, rstd, *, axis):
    cols = (x.shape[axis],)
    return aval(x.shape, x.dtype), aval(cols, x.dtype), aval(cols, x.dtype)   # dx, dw, db


@layer_norm_bwd_p.def_impl
def _layer_norm_bwd_impl(g, x, w, mean, rstd, *, out, axis):
    dx, dw, db = out
    x2 = axis_to_rows(x, axis)
    w1 = _ones_zeros(w, None, x2.shape[1], x.dtype)[0]
    dx2 = _row_target(dx, axis)
    K.layer_norm_bwd(axis_to_rows(g, axis), x2, w1, mean, rstd, dx2, dw, db)
    _store_rows(dx2, dx, axis)


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
    return bind(layer_norm_p, x, weight, bias, eps=eps, axis=axis)[0]


# ---- batch norm: channels on axis 1 ("mid", viewed as (N, C, S)) or last ("last", (rows, C)) ----

def _channel_view(a, layout):
    if layout == "last":
        return as_rows(a)
    a = contiguous(a)
    return a.reshape(a.shape[0], a.shape[1], int(np.prod(a.shape[2:], dtype=np.int64)))


def _kernel(name, layout):
    return getattr(K, f"{name}_{layout}")


def _channels(x, layout):
    return x.shape[-1] if layout == "last" else x.shape[1]


def _scale_shift(mean, invstd, w, b, dtype):
    """Per-channel (scale, shift) with y = x * scale + shift, in the data's dtype."""
    scale = invstd if w is None else invstd * w
    shift = -mean * scale if b is None else b - mean * scale
    return scale.astype(dtype), shift.astype(dtype)


def _store_param_grads(dw, db, sum_g, sum_gxc, invstd):
    dw[...] = sum_gxc * invstd
    db[...] = sum_g


def _running_invstd(rv, eps):
    return 1.0 / np.sqrt(rv.astype(np.float64) + eps)


def _grads_abstract(g, x, *rest, eps, layout):
    c = (_channels(x, layout),)
    return aval(x.shape, x.dtype), aval(c, x.dtype), aval(c, x.dtype)   # dx, dw, db


# eval: normalise with the running statistics
batch_norm_eval_p = Primitive("nn.functional.batch_norm")
batch_norm_eval_p.saves = ((0, 1, 2, 3), ())
batch_norm_eval_p.def_abstract(lambda x, rm, rv, w, b, *, eps, layout: aval(x.shape, x.dtype))


@batch_norm_eval_p.def_impl
def _batch_norm_eval_impl(x, rm, rv, w, b, *, out, eps, layout):
    xv = _channel_view(x, layout)
    scale, shift = _scale_shift(rm.astype(np.float64), _running_invstd(rv, eps), w, b, x.dtype)
    _kernel("batch_norm_fwd", layout)(xv, scale, shift, out[0].reshape(xv.shape))


@batch_norm_eval_p.def_vjp
def _batch_norm_eval_vjp(cts, x, rm, rv, w, b, *, results, needs, eps, layout):
    dx, dw, db = bind(batch_norm_eval_bwd_p, cts[0], x, rm, rv, w, eps=eps, layout=layout)
    return dx, None, None, (None if w is None else dw), (None if b is None else db)


batch_norm_eval_bwd_p = Primitive("nn.functional.batch_norm_bwd", multiple_results=True)
batch_norm_eval_bwd_p.def_abstract(_grads_abstract)


@batch_norm_eval_bwd_p.def_impl
def _batch_norm_eval_bwd_impl(g, x, rm, rv, w, *, out, eps, layout):
    dx, dw, db = out
    xv, gv = _channel_view(x, layout), _channel_view(g, layout)
    mean, invstd = rm.astype(np.float64), _running_invstd(rv, eps)
    scale, shift = _scale_shift(mean, invstd, w, None, x.dtype)
    _kernel("batch_norm_fwd", layout)(gv, scale, np.zeros_like(shift), dx.reshape(xv.shape))
    sum_g, sum_gxc = np.empty_like(mean), np.empty_like(mean)
    _kernel("batch_norm_bwd_sums", layout)(gv, xv, mean, sum_g, sum_gxc)
    _store_param_grads(dw, db, sum_g, sum_gxc, invstd)


# train: normalise with the batch statistics, which are results (float64 mean and biased
# variance) that the VJP reads and batch_norm_running_stats folds into the running ones
batch_norm_train_p = Primitive("nn.functional.batch_norm_train", multiple_results=True)
batch_norm_train_p.saves = ((0, 1), (1, 2))


@batch_norm_train_p.def_abstract
def _batch_norm_train_abstract(x, w, b, *, eps, layout):
    c = (_channels(x, layout),)
    return aval(x.shape, x.dtype), aval(c, np.float64), aval(c, np.float64)


@batch_norm_train_p.def_impl
def _batch_norm_train_impl(x, w, b, *, out, eps, layout):
    y, mean, var = out
    xv = _channel_view(x, layout)
    _kernel("batch_norm_stats", layout)(xv, mean, var)
    scale, shift = _scale_shift(mean, 1.0 / np.sqrt(var + eps), w, b, x.dtype)
    _kernel("batch_norm_fwd", layout)(xv, scale, shift, y.reshape(xv.shape))


@batch_norm_train_p.def_vjp
def _batch_norm_train_vjp(cts, x, w, b, *, results, needs, eps, layout):
    if cts[0] is None:  # only the statistics were used: they carry no gradient
        return None, None, None
    _, mean, var = results
    dx, dw, db = bind(batch_norm_train_bwd_p, cts[0], x, w, mean, var, eps=eps, layout=layout)
    return dx, (None if w is None else dw), (None if b is None else db)


batch_norm_train_bwd_p = Primitive("nn.functional.batch_norm_train_bwd", multiple_results=True)
batch_norm_train_bwd_p.def_abstract(_grads_abstract)


@batch_norm_train_bwd_p.def_impl
def _batch_norm_train_bwd_impl(g, x, w, mean, var, *, out, eps, layout):
    dx, dw, db = out
    xv, gv = _channel_view(x, layout), _channel_view(g, layout)
    count = x.size // mean.shape[0]
    invstd = 1.0 / np.sqrt(var + eps)
    sum_g, sum_gxc = np.empty_like(mean), np.empty_like(mean)
    _kernel("batch_norm_bwd_sums", layout)(gv, xv, mean, sum_g, sum_gxc)
    batch_stats_input_grad(gv, xv, w, mean, invstd, sum_g, sum_gxc, count, layout, dx)
    _store_param_grads(dw, db, sum_g, sum_gxc, invstd)


def batch_stats_input_grad(gv, xv, w, mean, invstd, sum_g, sum_gxc, count, layout, dx):
    """dx of batch normalisation with batch statistics, from the per-channel sums of g and
    g * (x - mean) over ``count`` values (local sums, or sums over every rank for sync-BN)."""
    a = invstd if w is None else invstd * w
    bx = -a * invstd * invstd * sum_gxc / count
    c0 = -bx * mean - a * sum_g / count
    _kernel("batch_norm_bwd_x", layout)(gv, xv, a, bx, c0, dx.reshape(xv.shape))


# running statistics: (1 - momentum) * running + momentum * batch (unbiased variance)
batch_norm_running_stats_p = Primitive("nn.functional.batch_norm_running_stats",
                                       multiple_results=True)
batch_norm_running_stats_p.def_abstract(
    lambda rm, rv, mean, var, *, momentum, count: (aval(rm.shape, rm.dtype),
                                                   aval(rv.shape, rv.dtype)))
batch_norm_running_stats_p.def_vjp(lambda cts, *args, **_: (None,) * 4)  # not differentiated


@batch_norm_running_stats_p.def_impl
def _batch_norm_running_stats_impl(rm, rv, mean, var, *, out, momentum, count):
    out[0][...] = (1.0 - momentum) * rm + momentum * mean
    out[1][...] = (1.0 - momentum) * rv + momentum * var * (count / (count - 1))


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
        return bind(batch_norm_eval_p, x, rm, rv, w, b, eps=eps, layout=layout)
    momentum = check_real(momentum, op, "momentum", low=0.0, high=1.0)
    channels = x.shape[axis]
    count = math.prod(x.shape) // max(channels, 1)
    if count < 2:
        raise ValueError(f"{where(op)}: train mode needs more than 1 value per channel, got x "
                         f"of shape {tuple(x.shape)}")
    y, mean, var = bind(batch_norm_train_p, x, w, b, eps=eps, layout=layout)
    if rm is None:  # untracked statistics: nothing to update
        return y, None, None
    new_rm, new_rv = bind(batch_norm_running_stats_p, rm, rv, mean, var, momentum=momentum,
                          count=count)
    return y, new_rm, new_rv


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
