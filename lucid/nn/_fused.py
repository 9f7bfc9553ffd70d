"""Fused functional ops for the models' hot paths (``F.scale_residual``; ``F.bias_gelu``
lives with the activations).

Each computes exactly what its unfused chain computes (same roundings), in one pass
over memory instead of one per op.
"""
import numpy as np

from .._autodiff import primitive
from .._backend import kernels
from .. import _buffers as buffers
from ._validate import (as_rows, check_channel_vector, contiguous, float_array,
                        optional_float_array, same_dtype, where)

K = kernels("fused")


@primitive(name="nn.functional.scale_residual")
def _scale_residual(x, y, gamma):
    x2, y2 = as_rows(x), as_rows(y)
    gamma = contiguous(gamma)
    out = buffers.empty_like(x2)
    K.scale_residual_fwd(x2, y2, gamma, out)

    def vjp(g):
        g2 = as_rows(g)
        gy = buffers.empty_like(g2)
        ggamma = np.empty_like(gamma)
        K.scale_residual_bwd(g2, y2, gamma, gy, ggamma)
        return g2.reshape(x.shape), gy.reshape(y.shape), ggamma

    return out.reshape(x.shape), vjp


@primitive(name="nn.functional.bias_scale_residual")
def _bias_scale_residual(x, y, gamma, b):
    x2, y2 = as_rows(x), as_rows(y)
    gamma, b = contiguous(gamma), contiguous(b)
    out = buffers.empty_like(x2)
    K.bias_scale_residual_fwd(x2, y2, b, gamma, out)

    def vjp(g):
        g2 = as_rows(g)
        gy = buffers.empty_like(g2)
        ggamma, gb = np.empty_like(gamma), np.empty_like(b)
        K.bias_scale_residual_bwd(g2, y2, b, gamma, gy, ggamma, gb)
        return g2.reshape(x.shape), gy.reshape(y.shape), ggamma, gb

    return out.reshape(x.shape), vjp


def scale_residual(x, y, gamma, b=None):
    """``x + y * gamma`` in one pass (layer scale + residual add), gamma over the last axis;
    with a bias ``b``, ``x + (y + b) * gamma`` (the bias of the linear layer that made y,
    folded into the same pass).

    Args:
      x: the shortcut, shape (..., C), float32/float64.
      y: the branch output, same shape and dtype as ``x``.
      gamma: per-channel scale of shape (C,), same dtype.
      b: optional per-channel bias of shape (C,), same dtype.
    Returns:
      an array shaped like ``x``, rounded as the unfused ops would round it.
    """
    op = "scale_residual"
    x = float_array(x, op, "x")
    y = float_array(y, op, "y")
    gamma = float_array(gamma, op, "gamma")
    b = optional_float_array(b, op, "b")
    if x.ndim < 1 or tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"{where(op)}: x and y must have the same shape (..., C), got x "
                         f"{tuple(x.shape)} and y {tuple(y.shape)}")
    if tuple(gamma.shape) != (x.shape[-1],):
        raise ValueError(f"{where(op)}: gamma must have shape ({x.shape[-1]},) to match x's last "
                         f"axis, got shape {tuple(gamma.shape)}")
    check_channel_vector(b, x.shape[-1], op, "b", f"x's {x.shape[-1]} channels (last axis)")
    same_dtype(op, x=x, y=y, gamma=gamma, b=b)
    if b is None:
        return _scale_residual(x, y, gamma)
    return _bias_scale_residual(x, y, gamma, b)
