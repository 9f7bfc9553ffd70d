"""Unary elementwise primitives: forward kernel, VJP rule, side by side."""
import functools

import numpy as np

from .._backend import kernels
from .._core import Primitive, aval, bind
from ._broadcast import materialize
from ._core import as_float_array, contig

K = kernels("elementwise")


def flat_apply(kernel, *arrays, out=None):
    """Run a flat elementwise kernel over same-shape arrays into ``out`` (or a new array)."""
    if out is None:
        out = np.empty(arrays[0].shape, arrays[0].dtype)
    kernel(*(contig(a).reshape(-1) for a in arrays), out.reshape(-1))
    return out


def _float_dtype(avals):
    for a in avals:
        if a is not None and a.dtype.kind == "f":
            return a.dtype
    return avals[-1].dtype


# Every flat primitive with its (kernel family, kernel name): a device backend registers
# one generic impl per kernel name for them (lucid/_cuda_impls_numpy.py).
FLAT_PRIMITIVES: list = []


def flat_primitive(name: str, family: str, kernel: str, n_results: int = 1) -> Primitive:
    """A primitive running the flat elementwise kernel ``family.kernel(*inputs, *outputs)``
    over its inputs broadcast to one shape (outputs in the first float input's dtype).

    The backward kernels of elementwise ops are such primitives (no VJP of their own).
    """
    prim = Primitive(name, multiple_results=n_results > 1)
    prim.inplace_ok = True  # elementwise: an output may overwrite a same-shape input
    fam = kernels(family)
    FLAT_PRIMITIVES.append((prim, (family, kernel)))

    @prim.def_abstract
    def _abstract(*xs):
        out = aval(np.broadcast_shapes(*(x.shape for x in xs)), _float_dtype(xs))
        return (out,) * n_results if n_results > 1 else out

    @prim.def_impl
    def _impl(*xs, out):
        shape = out[0].shape
        getattr(fam, kernel)(*(materialize(x, shape).reshape(-1) for x in xs),
                             *(o.reshape(-1) for o in out))
    return prim


def unary_primitive(name: str, backward_reads: str | None) -> Primitive:
    """``name_fwd(x) -> y`` with the VJP ``name_bwd(g, x or y)`` (``backward_reads``)."""
    fwd = flat_primitive(name, "elementwise", f"{name}_fwd")
    if backward_reads is None:
        return fwd
    bwd = flat_primitive(f"{name}_bwd", "elementwise", f"{name}_bwd")
    fwd.saves = ((0,), ()) if backward_reads == "x" else ((), (0,))

    @fwd.def_vjp
    def _vjp(cts, x, *, results, needs):
        return (bind(bwd, cts[0], x if backward_reads == "x" else results[0]),)
    return fwd


negative_p = unary_primitive("negative", None)
negative_p.def_vjp(lambda cts, x, **_: (bind(negative_p, cts[0]),))
exp_p = unary_primitive("exp", "y")
log_p = unary_primitive("log", "x")
sqrt_p = unary_primitive("sqrt", "y")
tanh_p = unary_primitive("tanh", "y")
erf_p = unary_primitive("erf", "x")
abs_p = unary_primitive("abs", "x")
square_p = unary_primitive("square", "x")
_negative, _exp, _log, _sqrt, _tanh, _erf, _abs, _square = (
    functools.partial(bind, p) for p in (negative_p, exp_p, log_p, sqrt_p, tanh_p, erf_p,
                                          abs_p, square_p))


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
    """Elementwise |x|; its gradient is +1 at 0 (JAX: select(x >= 0, g, -g))."""
    return _abs(as_float_array(x, "abs"))


def square(x):
    """Elementwise x**2."""
    return _square(as_float_array(x, "square"))


absolute = abs
