"""Unary elementwise primitives: forward kernel, VJP rule, side by side."""
import numpy as np

from .._autodiff import primitive
from .._backend import kernels
from ._core import as_float_array, contig

K = kernels("elementwise")


def flat_apply(kernel, *arrays):
    """Run a flat elementwise kernel over same-shape arrays into a new array."""
    out = np.empty(arrays[0].shape, arrays[0].dtype)
    kernel(*(contig(a).reshape(-1) for a in arrays), out.reshape(-1))
    return out


@primitive(name="negative")
def _negative(x):
    return flat_apply(K.negative_fwd, x), lambda g: (flat_apply(K.negative_fwd, g),)


@primitive(name="exp")
def _exp(x):
    y = flat_apply(K.exp_fwd, x)
    return y, lambda g: (flat_apply(K.exp_bwd, g, y),)


@primitive(name="log")
def _log(x):
    return flat_apply(K.log_fwd, x), lambda g: (flat_apply(K.log_bwd, g, x),)


@primitive(name="sqrt")
def _sqrt(x):
    y = flat_apply(K.sqrt_fwd, x)
    return y, lambda g: (flat_apply(K.sqrt_bwd, g, y),)


@primitive(name="tanh")
def _tanh(x):
    y = flat_apply(K.tanh_fwd, x)
    return y, lambda g: (flat_apply(K.tanh_bwd, g, y),)


@primitive(name="erf")
def _erf(x):
    return flat_apply(K.erf_fwd, x), lambda g: (flat_apply(K.erf_bwd, g, x),)


@primitive(name="abs")
def _abs(x):
    return flat_apply(K.abs_fwd, x), lambda g: (flat_apply(K.abs_bwd, g, x),)


@primitive(name="square")
def _square(x):
    return flat_apply(K.square_fwd, x), lambda g: (flat_apply(K.square_bwd, g, x),)


def negative(x):
    """Elementwise -x."""
    return _negative(as_float_array(x, "negative"))


def exp(x):
    """Elementwise e**x."""
    return _exp(as_float_array(x, "exp"))


def log(x):
    """Elementwise natural logarithm (-inf at 0, nan below 0, as NumPy)."""
    return _log(as_float_array(x, "log"))


def sqrt(x):
    """Elementwise square root (nan below 0, as NumPy)."""
    return _sqrt(as_float_array(x, "sqrt"))


def tanh(x):
    """Elementwise hyperbolic tangent."""
    return _tanh(as_float_array(x, "tanh"))


def erf(x):
    """Elementwise error function (libm's erf/erff: accurate to ~1 ulp)."""
    return _erf(as_float_array(x, "erf"))


def abs(x):  # noqa: A001 - NumPy's name
    """Elementwise |x|; its gradient at 0 is 0 (JAX)."""
    return _abs(as_float_array(x, "abs"))


def square(x):
    """Elementwise x**2."""
    return _square(as_float_array(x, "square"))


absolute = abs
