"""Broadcasting binary primitives, ``where`` and (non-differentiable) comparisons.

Every VJP sums the cotangent over the broadcast axes (:func:`sum_to_shape`). The
``needs`` flags (from the grad transform) say which operands are differentiated, so no
work is spent on the cotangent of a constant (``x * 2.0``, ``x @ data``).
"""
import numpy as np

from .._core import Primitive, Tracer, aval, bind, on_device
from .._backend import kernels
from ._broadcast import broadcast_apply, sum_product_to_shape, sum_to_shape
from ._core import broadcast_shapes, contig, convert, err, result_dtype
from ._unary import flat_primitive, negative_p

K = kernels("binary")


def _prepare(opname, *xs):
    """Convert operands to their common float dtype; return them and the broadcast shape."""
    dtype = result_dtype(opname, *xs)
    xs = [convert(x, dtype, opname) for x in xs]
    return xs, broadcast_shapes(opname, *(x.shape for x in xs))


def _unbroadcast(need, g, shape):
    return sum_to_shape(g, shape) if need else None


def broadcast_primitive(name: str) -> Primitive:
    """``name_fwd`` of kernels/cpu/binary.py over the broadcast of its operands."""
    prim = Primitive(name)
    prim.inplace_ok = True  # out[i] depends on its operands at i only: may overwrite one
    kernel = f"{name}_fwd"
    prim.def_abstract(lambda *xs, shape: aval(shape, xs[-1].dtype))

    @prim.def_impl
    def _impl(*xs, out, shape):
        broadcast_apply(getattr(K, kernel), shape, out[0].dtype, *xs, out=out[0])
    return prim


add_p = broadcast_primitive("add")
subtract_p = broadcast_primitive("subtract")
multiply_p = broadcast_primitive("multiply")
divide_p = broadcast_primitive("divide")
power_p = broadcast_primitive("power")
maximum_p = broadcast_primitive("maximum")
minimum_p = broadcast_primitive("minimum")
where_p = broadcast_primitive("where")
divide_bwd_y_p = flat_primitive("divide_bwd_y", "binary", "divide_bwd_y")
power_bwd_p = flat_primitive("power_bwd", "binary", "power_bwd", n_results=2)
extremum_bwd_p = flat_primitive("maximum_bwd", "binary", "maximum_bwd", n_results=2)
where_bwd_p = flat_primitive("where_bwd", "binary", "where_bwd", n_results=2)
power_p.saves = ((0, 1), (0,))
maximum_p.saves = minimum_p.saves = ((0, 1), ())
add_p.saves = subtract_p.saves = ((), ())


@add_p.def_vjp
def _add_vjp(cts, x, y, *, results, needs, shape):  # x, y: avals (add keeps no values)
    return _unbroadcast(needs[0], cts[0], x.shape), _unbroadcast(needs[1], cts[0], y.shape)


@subtract_p.def_vjp
def _subtract_vjp(cts, x, y, *, results, needs, shape):
    g = cts[0]
    gy = bind(negative_p, sum_to_shape(g, y.shape)) if needs[1] else None
    return _unbroadcast(needs[0], g, x.shape), gy


@multiply_p.def_vjp
def _multiply_vjp(cts, x, y, *, results, needs, shape):
    g = cts[0]
    return (_multiply_ct(needs[0], g, y, x.shape, shape),
            _multiply_ct(needs[1], g, x, y.shape, shape))


def _multiply_ct(need, g, other, own_shape, shape):
    """Cotangent of one factor of a product: sum_to_shape(g * other, own_shape)."""
    if not need:
        return None
    if tuple(other.shape) == shape and tuple(own_shape) != shape:  # a broadcast factor (layer
        return bind(sum_product_p, g, other, shape=tuple(own_shape))  # scale): no g * other
    return sum_to_shape(bind(multiply_p, g, other, shape=shape), own_shape)


@divide_p.def_vjp
def _divide_vjp(cts, x, y, *, results, needs, shape):
    gx = bind(divide_p, cts[0], y, shape=shape)  # g / y, full shape
    gy = bind(divide_bwd_y_p, gx, results[0]) if needs[1] else None
    return _unbroadcast(needs[0], gx, x.shape), _unbroadcast(needs[1], gy, y.shape)


@power_p.def_vjp
def _power_vjp(cts, x, y, *, results, needs, shape):
    gx, gy = bind(power_bwd_p, cts[0], x, y, results[0])
    return _unbroadcast(needs[0], gx, x.shape), _unbroadcast(needs[1], gy, y.shape)


@maximum_p.def_vjp
def _maximum_vjp(cts, x, y, *, results, needs, shape):
    gx, gy = bind(extremum_bwd_p, cts[0], x, y)  # ties split the cotangent evenly
    return _unbroadcast(needs[0], gx, x.shape), _unbroadcast(needs[1], gy, y.shape)


@minimum_p.def_vjp
def _minimum_vjp(cts, x, y, *, results, needs, shape):
    gx, gy = bind(extremum_bwd_p, cts[0], y, x)  # minimum(x, y) picks x where y > x
    return _unbroadcast(needs[0], gx, x.shape), _unbroadcast(needs[1], gy, y.shape)


@where_p.def_vjp
def _where_vjp(cts, cond, x, y, *, results, needs, shape):
    gx, gy = bind(where_bwd_p, cond, cts[0])
    return None, _unbroadcast(needs[1], gx, x.shape), _unbroadcast(needs[2], gy, y.shape)


sum_product_p = Primitive("sum_product_to_shape")
sum_product_p.def_abstract(lambda g, x, *, shape: aval(shape, g.dtype))


@sum_product_p.def_impl
def _sum_product_impl(g, x, *, out, shape):
    out[0][...] = sum_product_to_shape(g, x, shape)


def _binary(prim, opname):
    def op(x, y):
        (x, y), shape = _prepare(opname, x, y)
        return bind(prim, x, y, shape=shape)
    op.__name__ = op.__qualname__ = opname
    return op


add = _binary(add_p, "add")
add.__doc__ = "Elementwise x + y with NumPy broadcasting."
subtract = _binary(subtract_p, "subtract")
subtract.__doc__ = "Elementwise x - y with NumPy broadcasting."
multiply = _binary(multiply_p, "multiply")
multiply.__doc__ = "Elementwise x * y with NumPy broadcasting."
divide = _binary(divide_p, "divide")
divide.__doc__ = "Elementwise x / y with NumPy broadcasting (IEEE inf/nan on division by 0)."
true_divide = divide
power = _binary(power_p, "power")
power.__doc__ = ("Elementwise x ** y with NumPy broadcasting. Gradients follow current JAX "
                 "(lax.pow with a float exponent): d/dx = y * x**(y-1) everywhere (so nan at "
                 "x == y == 0 and inf at x == 0 for 0 < y < 1); d/dy = x**y * log(x) with "
                 "log(0) taken as 0 (so 0 where x == 0) and nan where x < 0.")
maximum = _binary(maximum_p, "maximum")
maximum.__doc__ = ("Elementwise maximum (NaN propagates). Ties split the gradient evenly "
                   "between x and y (JAX).")
minimum = _binary(minimum_p, "minimum")
minimum.__doc__ = "Elementwise minimum (NaN propagates). Ties split the gradient evenly (JAX)."


def where(cond, x, y):
    """Elementwise ``x`` where ``cond`` else ``y``, all three broadcast together.

    Args:
      cond: a bool array (or one convertible to bool); not differentiated.
      x, y: the values; differentiated.
    """
    if isinstance(cond, Tracer):
        if cond.dtype != np.bool_:
            raise TypeError(err("where", f"cond must be a bool array (e.g. from x > 0), got a "
                                         f"traced array of dtype {cond.dtype}"))
    elif on_device(cond):   # stays on its device
        if cond.dtype.kind not in "biuf":
            raise TypeError(err("where", f"cond must be a bool array, got dtype {cond.dtype}"))
        if cond.dtype != np.bool_:
            cond = not_equal(cond, 0)
    else:
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
    return bind(where_p, cond, x, y, shape=shape)


def clip(x, a_min=None, a_max=None):
    """``minimum(maximum(x, a_min), a_max)``; either bound may be None."""
    if a_min is None and a_max is None:
        raise ValueError(err("clip", "at least one of a_min and a_max must be given"))
    if a_min is not None:
        x = maximum(x, a_min)
    return x if a_max is None else minimum(x, a_max)


# ---- comparisons: bool arrays, no gradient ----

compare_p = Primitive("compare")


@compare_p.def_abstract
def _compare_abstract(x, y, *, ufunc):
    return aval(np.broadcast_shapes(x.shape, y.shape), np.bool_)


@compare_p.def_impl
def _compare_impl(x, y, *, out, ufunc):
    getattr(np, ufunc)(x, y, out=out[0])


compare_p.def_vjp(lambda cts, x, y, **_: (None, None))  # a boolean mask has no gradient


def _operand(x, other):
    """An array for a comparison operand; a Python number takes the other side's dtype
    (NumPy's weak scalars: ``f32_array > 0.1`` compares in float32)."""
    if isinstance(x, (Tracer, np.ndarray)) or on_device(x):
        return x   # (a device array stays on its device)
    dtype = getattr(other, "dtype", None)
    if isinstance(x, (int, float)) and not isinstance(x, bool) and dtype is not None \
            and np.dtype(dtype).kind in "fiu" and (np.dtype(dtype).kind == "f" or isinstance(x, int)):
        return np.asarray(x, dtype)
    return np.asarray(x)


def _comparison(ufunc, opname):
    def op(x, y):
        return bind(compare_p, _operand(x, y), _operand(y, x), ufunc=ufunc.__name__)
    op.__name__ = op.__qualname__ = opname
    op.__doc__ = f"Elementwise ``np.{ufunc.__name__}`` as a bool array (not differentiable)."
    return op


less = _comparison(np.less, "less")
less_equal = _comparison(np.less_equal, "less_equal")
greater = _comparison(np.greater, "greater")
greater_equal = _comparison(np.greater_equal, "greater_equal")
equal = _comparison(np.equal, "equal")
not_equal = _comparison(np.not_equal, "not_equal")
logical_and = _comparison(np.logical_and, "logical_and")
logical_or = _comparison(np.logical_or, "logical_or")
logical_xor = _comparison(np.logical_xor, "logical_xor")


def logical_not(x):
    """Elementwise ``not`` of a bool array (not differentiable)."""
    return equal(x, False)


# ---- integer counters (BatchNorm's num_batches_tracked, step counts): no gradient ----

add_int_p = Primitive("add_int")
add_int_p.def_abstract(lambda x, *, value: aval(x.shape, x.dtype))
add_int_p.def_vjp(lambda cts, x, **_: (None,))


@add_int_p.def_impl
def _add_int_impl(x, *, out, value):
    np.add(x, value, out=out[0], casting="unsafe")


def add_int(x, value: int):
    """``x + value`` for an integer array (a counter), traceable; not differentiable."""
    if not isinstance(x, Tracer) and not on_device(x):
        return np.asarray(np.asarray(x) + value, np.asarray(x).dtype)
    if x.dtype.kind not in "iu":
        raise TypeError(err("add_int", f"expected an integer array, got dtype {x.dtype}"))
    return bind(add_int_p, x, value=int(value))
