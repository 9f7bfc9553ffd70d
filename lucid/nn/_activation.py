"""Activations: ``relu``, ``gelu`` (exact erf form or tanh approximation) and a fused bias+GELU.

``bias_gelu`` is the single-pass ``gelu(h + b)`` over a bias-free linear layer's output
that the models use to skip one full read and write of the MLP's widest activation.
"""
import numpy as np

from .._autodiff import primitive
from .._backend import kernels
from ..numpy._unary import flat_apply
from .. import _buffers as buffers
from ._validate import as_rows, contiguous, float_array, same_dtype, where

K = kernels("activation")
KL = kernels("linear")



@primitive(name="nn.functional.relu")
def _relu(x):
    y = flat_apply(K.relu_fwd, x)
    return y, lambda g: (flat_apply(K.relu_bwd, g, y),)


@primitive(name="nn.functional.gelu")
def _gelu(x):
    return flat_apply(K.gelu_fwd, x), lambda g: (flat_apply(K.gelu_bwd, g, x),)


@primitive(name="nn.functional.gelu")
def _gelu_tanh(x):
    return flat_apply(K.gelu_tanh_fwd, x), lambda g: (flat_apply(K.gelu_tanh_bwd, g, x),)


def relu(x):
    """max(x, 0) elementwise (gradient 0 at x == 0, as PyTorch).

    Args:
      x: float32/float64 array of any shape.
    Returns:
      an array shaped like ``x``.
    """
    return _relu(float_array(x, "relu", "x"))


def gelu(x, approximate: str = "none"):
    """Gaussian error linear unit, as ``torch.nn.functional.gelu``.

    Args:
      x: float32/float64 array of any shape.
      approximate: ``"none"`` for 0.5 x (1 + erf(x / sqrt 2)), ``"tanh"`` for
        0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    Returns:
      an array shaped like ``x``.
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"{where('gelu')}: approximate must be 'none' or 'tanh', "
                         f"got {approximate!r}")
    x = float_array(x, "gelu", "x")
    return _gelu(x) if approximate == "none" else _gelu_tanh(x)


@primitive(name="nn.functional.bias_gelu")
def _bias_gelu(h, b):
    h2 = as_rows(h)
    b = contiguous(b)
    out = buffers.empty_like(h2)
    K.bias_gelu_fwd(h2, b, out)

    def vjp(g):
        gh = buffers.empty_like(h2)
        K.bias_gelu_bwd(contiguous(g).reshape(h2.shape), h2, b, gh)
        gb = np.empty_like(b)
        KL.bias_add_bwd(gh, gb)
        return gh.reshape(h.shape), gb

    return out.reshape(h.shape), vjp


def bias_gelu(h, b):
    """gelu(h + b) in one pass (exact erf GELU), b broadcast over the last axis.

    Args:
      h: array of shape (..., C), typically a linear layer's output before its bias.
      b: bias of shape (C,), same dtype as ``h``.
    Returns:
      an array shaped like ``h``.
    """
    op = "bias_gelu"
    h = float_array(h, op, "h")
    b = float_array(b, op, "b")
    if h.ndim < 1 or tuple(b.shape) != (h.shape[-1],):
        raise ValueError(f"{where(op)}: b must have shape (C,) with C = h.shape[-1], got h "
                         f"{tuple(h.shape)} and b {tuple(b.shape)}")
    same_dtype(op, h=h, b=b)
    return _bias_gelu(h, b)
