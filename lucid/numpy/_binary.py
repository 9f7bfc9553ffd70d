"""Broadcasting binary primitives, ``where`` and (non-differentiable) comparisons.

Every VJP sums the cotangent over the broadcast axes (:func:`sum_to_shape`). The
static ``need`` flags say which operands are traced, so no work is spent on the
cotangent of a constant (``x * 2.0``, ``x @ data``).
"""
import numpy as np

from .._autodiff import Tracer, primitive
from .._backend import kernels
from ._broadcast import broadcast_apply, materialize, sum_product_to_shape, sum_to_shape
from ._core import broadcast_shapes, contig, convert, err, result_dtype
from ._unary import K as KE
from ._unary import flat_apply

K = kernels("binary")


def _prepare(opname, *xs):
    """Convert operands to their common float dtype; return them, the shape, the need flags."""
    dtype = result_dtype(opname, *xs)
    xs = [convert(x, dtype, opname) for x in xs]
    shape = broadcast_shapes(opname, *(x.shape for x in xs))
    return xs, shape, tuple(isinstance(x, Tracer) for x in xs)


def _unbroadcast(flag, g, shape):
    return sum_to_shape(g, shape) if flag else None


@primitive(name="add")
def _add(x, y, *, shape, need):
    out = broadcast_apply(K.add_fwd, shape, x.dtype, x, y)
    xs, ys = x.shape, y.shape
    return out, lambda g: (_unbroadcast(need[0], g, xs), _unbroadcast(need[1], g, ys))


@primitive(name="subtract")
def _subtract(x, y, *, shape, need):
    out = broadcast_apply(K.subtract_fwd, shape, x.dtype, x, y)
    xs, ys = x.shape, y.shape

    def vjp(g):
        gy = flat_apply(KE.negative_fwd, sum_to_shape(g, ys)) if need[1] else None
        return _unbroadcast(need[0], g, xs), gy
    return out, vjp


@primitive(name="multiply")
def _multiply(x, y, *, shape, need):
    out = broadcast_apply(K.multiply_fwd, shape, x.dtype, x, y)

    def vjp(g):
        g = contig(g)
        return (_multiply_ct(need[0], g, y, x.shape, shape),
                _multiply_ct(need[1], g, x, y.shape, shape))
    return out, vjp


def _multiply_ct(flag, g, other, own_shape, shape):
    """Cotangent of one factor of a product: sum_to_shape(g * other, own_shape)."""
    if not flag:
        return None
    if other.shape == shape and own_shape != shape:  # a broadcast factor (layer scale):
        return sum_product_to_shape(g, other, own_shape)  # reduce without g * other
    return sum_to_shape(broadcast_apply(K.multiply_fwd, shape, g.dtype, g, other), own_shape)


@primitive(name="divide")
def _divide(x, y, *, shape, need):
    out = broadcast_apply(K.divide_fwd, shape, x.dtype, x, y)
    xs = x.shape

    def vjp(g):
        gx = broadcast_apply(K.divide_fwd, shape, g.dtype, g, y)  # g / y, full shape
        gy = flat_apply(K.divide_bwd_y, gx, out) if need[1] else None
        return _unbroadcast(need[0], gx, xs), _unbroadcast(need[1], gy, y.shape)
    return out, vjp


@primitive(name="power")
def _power(x, y, *, shape, need):
    out = broadcast_apply(K.power_fwd, shape, x.dtype, x, y)

    def vjp(g):
        gx, gy = np.empty(shape, g.dtype), np.empty(shape, g.dtype)
        K.power_bwd(*(a.reshape(-1) for a in (contig(g), materialize(x, shape),
                                              materialize(y, shape), out, gx, gy)))
        return _unbroadcast(need[0], gx, x.shape), _unbroadcast(need[1], gy, y.shape)
    return out, vjp


def _extremum_vjp(g, first, second, shape):
    """``(g * [first > second], g * [first < second])``, ties counting 1/2 to each."""
    g1, g2 = np.empty(shape, g.dtype), np.empty(shape, g.dtype)
    K.maximum_bwd(*(a.reshape(-1) for a in (contig(g), materialize(first, shape),
                                            materialize(second, shape), g1, g2)))
    return g1, g2


@primitive(name="maximum")
def _maximum(x, y, *, shape, need):
    out = broadcast_apply(K.maximum_fwd, shape, x.dtype, x, y)

    def vjp(g):
        gx, gy = _extremum_vjp(g, x, y, shape)
        return _unbroadcast(need[0], gx, x.shape), _unbroadcast(need[1], gy, y.shape)
    return out, vjp


@primitive(name="minimum")
def _minimum(x, y, *, shape, need):
    out = broadcast_apply(K.minimum_fwd, shape, x.dtype, x, y)

    def vjp(g):
        gx, gy = _extremum_vjp(g, y, x, shape)  # minimum(x, y) picks x where y > x
        return _unbroadcast(need[0], gx, x.shape), _unbroadcast(need[1], gy, y.shape)
    return out, vjp


@primitive(name="where")
def _where(cond, x, y, *, shape, need):
    out = broadcast_apply(K.where_fwd, shape, x.dtype, cond, x, y)

    def vjp(g):
        gx, gy = np.empty(shape, g.dtype), np.empty(shape, g.dtype)
        K.where_bwd(*(a.reshape(-1) for a in (materialize(cond, shape), contig(g), gx, gy)))
        return None, _unbroadcast(need[0], gx, x.shape), _unbroadcast(need[1], gy, y.shape)
    return out, vjp


def _binary(prim, opname):
    def op(x, y):
        (x, y), shape, need = _prepare(opname, x, y)
        return prim(x, y, shape=shape, need=need)
    op.__name__ = op.__qualname__ = opname
    return op


add = _binary(_add, "add")
add.__doc__ = "Elementwise x + y with NumPy broadcasting."
subtract = _binary(_subtract, "subtract")
subtract.__doc__ = "Elementwise x - y with NumPy broadcasting."
multiply = _binary(_multiply, "multiply")
multiply.__doc__ = "Elementwise x * y with NumPy broadcasting."
divide = _binary(_divide, "divide")
divide.__doc__ = "Elementwise x / y with NumPy broadcasting (IEEE inf/nan on division by 0)."
true_divide = divide
power = _binary(_power, "power")
power.__doc__ = ("Elementwise x ** y with NumPy broadcasting. Gradients follow JAX: d/dx is 0 "
                 "where y == 0, d/dy is 0 where x == 0 (nan where x < 0).")
maximum = _binary(_maximum, "maximum")
maximum.__doc__ = ("Elementwise maximum (NaN propagates). Ties split the gradient evenly "
                   "between x and y (JAX).")
minimum = _binary(_minimum, "minimum")
minimum.__doc__ = "Elementwise minimum (NaN propagates). Ties split the gradient evenly (JAX)."


def where(cond, x, y):
    """Elementwise ``x`` where ``cond`` else ``y``, all three broadcast together.

    Args:
      cond: a bool array (or one convertible to bool); not differentiated.
      x, y: the values; differentiated.
    """
    if isinstance(cond, Tracer):
        raise TypeError(err("where", "cond must be a concrete bool array, got a traced array; "
                                     "build it with a comparison such as x > 0"))
    try:
        cond = np.asarray(cond)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise TypeError(err("where", f"cond must be a bool array, got "
                                     f"{type(cond).__name__}")) from e
    if cond.dtype.kind not in "biuf":
        raise TypeError(err("where", f"cond must be a bool array, got dtype {cond.dtype}"))
    cond = contig(cond.astype(bool, copy=False))
    dtype = result_dtype("where", x, y)
    x, y = convert(x, dtype, "where"), convert(y, dtype, "where")
    shape = broadcast_shapes("where", cond.shape, x.shape, y.shape)
    return _where(cond, x, y, shape=shape, need=(isinstance(x, Tracer), isinstance(y, Tracer)))


def clip(x, a_min=None, a_max=None):
    """``minimum(maximum(x, a_min), a_max)``; either bound may be None."""
    if a_min is None and a_max is None:
        raise ValueError(err("clip", "at least one of a_min and a_max must be given"))
    if a_min is not None:
        x = maximum(x, a_min)
    return x if a_max is None else minimum(x, a_max)


# ---- comparisons: plain bool ndarrays, no gradient ----

def _concrete(x):
    if isinstance(x, Tracer):
        if not x.trace.live:
            raise RuntimeError("lucid.numpy: got a traced array that escaped its transform")
        return x.value
    return x


def _comparison(ufunc, opname):
    def op(x, y):
        return np.asarray(ufunc(_concrete(x), _concrete(y)))
    op.__name__ = op.__qualname__ = opname
    op.__doc__ = f"Elementwise ``np.{ufunc.__name__}`` as a bool ndarray (not differentiable)."
    return op


less = _comparison(np.less, "less")
less_equal = _comparison(np.less_equal, "less_equal")
greater = _comparison(np.greater, "greater")
greater_equal = _comparison(np.greater_equal, "greater_equal")
equal = _comparison(np.equal, "equal")
not_equal = _comparison(np.not_equal, "not_equal")
