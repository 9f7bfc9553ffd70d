"""Fused functional ops for the models' hot paths (``F.scale_residual``; ``F.bias_gelu``
lives with the activations).

Each computes exactly what its unfused chain computes (same roundings), in one pass
over memory instead of one per op.
"""
from .._backend import kernels
from .._core import Primitive, aval, bind
from ._validate import (as_rows, check_channel_vector, contiguous, float_array,
                        optional_float_array, same_dtype, where)

K = kernels("fused")

scale_residual_p = Primitive("nn.functional.scale_residual")
bias_scale_residual_p = Primitive("nn.functional.bias_scale_residual")
# The VJPs read y and the per-channel vectors; the shortcut x is freed after the forward.
scale_residual_p.saves = ((1, 2), ())
bias_scale_residual_p.saves = ((1, 2, 3), ())
scale_residual_p.def_abstract(lambda x, y, gamma: aval(x.shape, x.dtype))
bias_scale_residual_p.def_abstract(lambda x, y, gamma, b: aval(x.shape, x.dtype))


@scale_residual_p.def_impl
def _scale_residual_impl(x, y, gamma, *, out):
    x2, y2 = as_rows(x), as_rows(y)
    K.scale_residual_fwd(x2, y2, contiguous(gamma), out[0].reshape(x2.shape))


@bias_scale_residual_p.def_impl
def _bias_scale_residual_impl(x, y, gamma, b, *, out):
    x2, y2 = as_rows(x), as_rows(y)
    K.bias_scale_residual_fwd(x2, y2, contiguous(b), contiguous(gamma),
                              out[0].reshape(x2.shape))


@scale_residual_p.def_vjp
def _scale_residual_vjp(cts, x, y, gamma, *, results, needs):
    gy, ggamma = bind(scale_residual_bwd_p, cts[0], y, gamma)
    return cts[0], gy, ggamma   # d(x + y * gamma)/dx is the identity


@bias_scale_residual_p.def_vjp
def _bias_scale_residual_vjp(cts, x, y, gamma, b, *, results, needs):
    gy, ggamma, gb = bind(bias_scale_residual_bwd_p, cts[0], y, gamma, b)
    return cts[0], gy, ggamma, gb


scale_residual_bwd_p = Primitive("nn.functional.scale_residual_bwd", multiple_results=True)
bias_scale_residual_bwd_p = Primitive("nn.functional.bias_scale_residual_bwd",
                                      multiple_results=True)
scale_residual_bwd_p.def_abstract(   # gy, ggamma
    lambda g, y, gamma: (aval(y.shape, y.dtype), aval(gamma.shape, gamma.dtype)))
bias_scale_residual_bwd_p.def_abstract(   # gy, ggamma, gb
    lambda g, y, gamma, b: (aval(y.shape, y.dtype), aval(gamma.shape, gamma.dtype),
                            aval(b.shape, b.dtype)))


@scale_residual_bwd_p.def_impl
def _scale_residual_bwd_impl(g, y, gamma, *, out):
    gy, ggamma = out
    g2 = as_rows(g)
    K.scale_residual_bwd(g2, as_rows(y), contiguous(gamma), gy.reshape(g2.shape), ggamma)


@bias_scale_residual_bwd_p.def_impl
def _bias_scale_residual_bwd_impl(g, y, gamma, b, *, out):
    gy, ggamma, gb = out
    g2 = as_rows(g)
    K.bias_scale_residual_bwd(g2, as_rows(y), contiguous(b), contiguous(gamma),
                              gy.reshape(g2.shape), ggamma, gb)


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
        return bind(scale_residual_p, x, y, gamma)
    return bind(bias_scale_residual_p, x, y, gamma, b)
