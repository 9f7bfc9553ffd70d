"""``linear``: y = x @ w.T + b, with PyTorch's (out, in) weight layout.

The three GEMMs (forward, grad-x, grad-w) run in NumPy's BLAS at Python level into
preallocated outputs; the bias add and the bias gradient are Numba kernels.
"""
import numpy as np

from .._autodiff import primitive
from .._backend import kernels
from .. import _buffers as buffers
from ._validate import (as_rows, check_channel_vector, contiguous, float_array,
                        optional_float_array, same_dtype, where)

K = kernels("linear")


@primitive(name="nn.functional.linear")
def _linear(x, w, b):
    x2 = as_rows(x)
    w2 = w.reshape(w.shape[0], w.shape[1])   # (out, in) or timm's (out, in, 1, 1)
    y = buffers.empty((x2.shape[0], w2.shape[0]), x.dtype)
    np.matmul(x2, w2.T, out=y)
    if b is not None:
        K.bias_add_fwd(y, contiguous(b), y)

    def vjp(g):
        g2 = contiguous(g).reshape(y.shape)
        gx = buffers.empty_like(x2)
        np.matmul(g2, w2, out=gx)
        gw = np.empty(w2.shape, dtype=w.dtype)
        np.matmul(g2.T, x2, out=gw)
        gb = None
        if b is not None:
            gb = np.empty(b.shape, dtype=b.dtype)
            K.bias_add_bwd(g2, gb)
        return gx.reshape(x.shape), gw.reshape(w.shape), gb

    return y.reshape(x.shape[:-1] + (w2.shape[0],)), vjp


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
    return _linear(x, w, b)
