"""``linear``: y = x @ w.T + b, with PyTorch's (out, in) weight layout.

The three GEMMs (forward, grad-x, grad-w) run in NumPy's BLAS at Python level into
preallocated outputs; the bias add and the bias gradient are Numba kernels.
"""
import numpy as np

from .._backend import kernels
from .._core import Primitive, aval, bind
from ._validate import (as_rows, check_channel_vector, contiguous, float_array,
                        optional_float_array, same_dtype, where)

K = kernels("linear")


def _weight_2d(w):
    return w.reshape(w.shape[0], w.shape[1])   # (out, in) or timm's (out, in, 1, 1)


linear_p = Primitive("nn.functional.linear")
linear_p.saves = ((0, 1), ())  # x and w; b only by shape
linear_bwd_x_p = Primitive("nn.functional.linear_bwd_x")   # g @ w
linear_bwd_w_p = Primitive("nn.functional.linear_bwd_w")   # g^T @ x
bias_bwd_p = Primitive("nn.functional.linear_bwd_b")       # g summed over rows


@linear_p.def_abstract
def _linear_abstract(x, w, b):
    return aval(x.shape[:-1] + (w.shape[0],), x.dtype)


@linear_p.def_impl
def _linear_impl(x, w, b, *, out):
    w2, x2 = _weight_2d(w), as_rows(x)
    y = out[0].reshape(x2.shape[0], w2.shape[0])
    np.matmul(x2, w2.T, out=y)
    if b is not None:
        K.bias_add_fwd(y, contiguous(b), y)


@linear_p.def_vjp
def _linear_vjp(cts, x, w, b, *, results, needs):
    g = cts[0]
    gx = bind(linear_bwd_x_p, g, w) if needs[0] else None
    gw = bind(linear_bwd_w_p, g, x, w_shape=w.shape) if needs[1] else None
    gb = bind(bias_bwd_p, g) if b is not None and needs[2] else None
    return gx, gw, gb


linear_bwd_x_p.def_abstract(lambda g, w: aval(g.shape[:-1] + (w.shape[1],), g.dtype))


@linear_bwd_x_p.def_impl
def _linear_bwd_x_impl(g, w, *, out):
    w2, g2 = _weight_2d(w), as_rows(g)
    np.matmul(g2, w2, out=out[0].reshape(g2.shape[0], w2.shape[1]))


linear_bwd_w_p.def_abstract(lambda g, x, *, w_shape: aval(w_shape, g.dtype))


@linear_bwd_w_p.def_impl
def _linear_bwd_w_impl(g, x, *, out, w_shape):
    np.matmul(as_rows(g).T, as_rows(x), out=out[0].reshape(w_shape[0], w_shape[1]))


bias_bwd_p.def_abstract(lambda g: aval(g.shape[-1:], g.dtype))


@bias_bwd_p.def_impl
def _bias_bwd_impl(g, *, out):
    K.bias_add_bwd(as_rows(g), out[0])


def linear(x, w, b=None):
    """Affine map over the last axis, as ``torch.nn.functional.linear``.

    Args:
      x: input of shape (..., in_features), float32 or float64.
      w: weight of shape (out_features, in_features), or (out, in, 1, 1) (a 1x1
        convolution's weight, as timm's conv-MLP stores it); its gradient keeps w's shape.
      b: optional bias of shape (out_features,).
    Returns:
      y = x @ w.T + b, shape (..., out_features), in x's dtype.
    """
    op = "linear"
    x = float_array(x, op, "x")
    w = float_array(w, op, "w")
    b = optional_float_array(b, op, "b")
    if x.ndim < 1:
        raise ValueError(f"{where(op)}: x must have at least 1 dimension (..., in_features), "
                         f"got a scalar")
    if not (w.ndim == 2 or (w.ndim == 4 and tuple(w.shape[2:]) == (1, 1))):
        raise ValueError(f"{where(op)}: w must have shape (out_features, in_features) or "
                         f"(out_features, in_features, 1, 1), got shape {tuple(w.shape)}")
    if x.shape[-1] != w.shape[1]:
        raise ValueError(f"{where(op)}: x has {x.shape[-1]} input features (last axis) but w "
                         f"of shape {tuple(w.shape)} expects {w.shape[1]}")
    check_channel_vector(b, w.shape[0], op, "b", f"w's {w.shape[0]} output features")
    same_dtype(op, x=x, w=w, b=b)
    return bind(linear_p, x, w, b)
