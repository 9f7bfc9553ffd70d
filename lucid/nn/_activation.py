"""Activations: ``relu``, ``gelu`` (exact erf form or tanh approximation) and a fused bias+GELU.

``bias_gelu`` is the single-pass ``gelu(h + b)`` over a bias-free linear layer's output
that the models use to skip one full read and write of the MLP's widest activation.
Each op is a primitive (shape rule, forward into given outputs, VJP rule) whose
backward kernels run in a ``<op>_bwd`` primitive.
"""

from .._backend import kernels
from .._core import Primitive, aval, bind
from ..numpy._unary import flat_primitive
from ._validate import as_rows, contiguous, float_array, same_dtype, where

K = kernels("activation")
KL = kernels("linear")
_BACKWARD = {}   # name -> its "<name>_bwd" primitive (for backends registering impls)


def _elementwise(name: str, backward_reads: str) -> Primitive:
    """``nn.functional.<name>`` over the flat kernel ``<name>_fwd``; its VJP runs
    ``<name>_bwd(g, x or y)`` (``backward_reads``: "x" or "y") as a primitive."""
    fwd = flat_primitive(f"nn.functional.{name}", "activation", f"{name}_fwd")
    bwd = flat_primitive(f"nn.functional.{name}_bwd", "activation", f"{name}_bwd")
    fwd.saves = ((0,), ()) if backward_reads == "x" else ((), (0,))
    _BACKWARD[name] = bwd

    @fwd.def_vjp
    def _vjp(cts, x, *, results, needs):
        return (bind(bwd, cts[0], x if backward_reads == "x" else results[0]),)

    return fwd


relu_p = _elementwise("relu", "y")            # the gradient mask is y > 0
gelu_p = _elementwise("gelu", "x")
gelu_tanh_p = _elementwise("gelu_tanh", "x")
relu_bwd_p, gelu_bwd_p, gelu_tanh_bwd_p = (_BACKWARD[n] for n in ("relu", "gelu", "gelu_tanh"))


def relu(x):
    """max(x, 0) elementwise (gradient 0 at x == 0, as PyTorch).

    Args:
      x: float32/float64 array of any shape.
    Returns:
      an array shaped like ``x``.
    """
    return bind(relu_p, float_array(x, "relu", "x"))


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
    return bind(gelu_p if approximate == "none" else gelu_tanh_p, x)


bias_gelu_p = Primitive("nn.functional.bias_gelu")
bias_gelu_p.saves = ((0, 1), ())
bias_gelu_p.def_abstract(lambda h, b: aval(h.shape, h.dtype))


@bias_gelu_p.def_impl
def _bias_gelu_impl(h, b, *, out):
    h2 = as_rows(h)
    K.bias_gelu_fwd(h2, contiguous(b), out[0].reshape(h2.shape))


@bias_gelu_p.def_vjp
def _bias_gelu_vjp(cts, h, b, *, results, needs):
    return bind(bias_gelu_bwd_p, cts[0], h, b)


bias_gelu_bwd_p = Primitive("nn.functional.bias_gelu_bwd", multiple_results=True)


@bias_gelu_bwd_p.def_abstract
def _bias_gelu_bwd_abstract(g, h, b):
    return aval(h.shape, h.dtype), aval(b.shape, b.dtype)   # gh, gb


@bias_gelu_bwd_p.def_impl
def _bias_gelu_bwd_impl(g, h, b, *, out):
    gh, gb = out
    h2 = as_rows(h)
    gh2 = gh.reshape(h2.shape)
    K.bias_gelu_bwd(contiguous(g).reshape(h2.shape), h2, contiguous(b), gh2)
    KL.bias_add_bwd(gh2, gb)


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
    return bind(bias_gelu_p, h, b)
