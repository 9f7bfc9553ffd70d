"""Input conversion and validation shared by lucid.numpy operations.

Dtype rules (JAX-like, float-only):
  * float32 and float64 are the float dtypes; float16/complex/object/strings are rejected.
  * Python scalars and lists are *weak*: they take the dtype of the arrays they meet
    (float32 when they meet none). Integer and bool arrays are converted the same way.
  * float32 combined with float64 gives float64 (NumPy promotion); a float32 tracer is
    then cast with the differentiable :func:`astype`.
"""
import numpy as np

from .._core import Primitive, Tracer, aval, bind, on_device

_FLOAT = (np.float32, np.float64)
DEFAULT_DTYPE = np.dtype(np.float32)


def err(opname: str, msg: str) -> str:
    """An error message that names the operation."""
    return f"lucid.numpy.{opname}: {msg}"


def _strong_dtype(x, opname: str):
    """The float dtype ``x`` imposes on a result, or None for weak/integer inputs."""
    if isinstance(x, Tracer) and x.aval.weak:
        return None  # a Python scalar passed to lucid.jit: weak, as in JAX
    if isinstance(x, (Tracer, np.ndarray, np.generic)):
        dt = x.dtype
    elif isinstance(x, (bool, int, float)):
        return None
    else:
        try:
            dt = np.asarray(x).dtype
        except Exception as e:  # noqa: BLE001 - re-raised with context
            raise TypeError(err(opname, f"expected an array, got {type(x).__name__}")) from e
        if dt.kind in "biuf":
            return None  # a list/tuple of numbers is weak, like a Python scalar
    if dt.type in _FLOAT:
        return np.dtype(dt)
    if dt.kind in "biu":
        return None
    raise TypeError(err(opname, f"expected float32 or float64 data, got dtype {dt} "
                                f"({type(x).__name__})"))


def device_under(x):
    """The device of the array under ``x`` (a DeviceArray, or a grad tracer's value), or
    None on the host and inside jit (whose tracers have no values)."""
    while isinstance(x, Tracer):
        x = getattr(x, "primal", None)
    return x.device if on_device(x) else None


def result_dtype(opname: str, *xs) -> np.dtype:
    """The float dtype of an operation on ``xs`` (see the module docstring)."""
    dts = [np.dtype(x.dtype) if on_device(x) else _strong_dtype(x, opname) for x in xs]
    if any(d == np.float64 for d in dts if d is not None):
        return np.dtype(np.float64)
    return DEFAULT_DTYPE


def convert(x, dtype, opname: str):
    """``x`` as a C-contiguous array (or a tracer) of float ``dtype``."""
    dtype = np.dtype(dtype)
    if isinstance(x, Tracer) or on_device(x):
        return x if x.dtype == dtype else _astype(x, dtype=dtype)
    _strong_dtype(x, opname)  # validates
    return np.asarray(x, dtype=dtype, order="C")  # (ascontiguousarray would make 0-d 1-d)


def as_float_array(x, opname: str, dtype=None):
    """A C-contiguous float32/float64 array (or the tracer itself) for a kernel.

    Float arrays keep their dtype; Python scalars, lists, integer and bool arrays
    become ``dtype`` (float32 by default); float16 and complex are rejected.
    """
    return convert(x, dtype or result_dtype(opname, x), opname)


astype_p = Primitive("astype")
astype_p.saves = ((), ())  # the VJP reads only the source dtype (from the input's aval)
astype_p.def_abstract(lambda x, *, dtype: aval(x.shape, dtype))


@astype_p.def_impl
def _astype_impl(x, *, out, dtype):
    np.copyto(out[0], x, casting="unsafe")  # the same cast as x.astype(dtype)


@astype_p.def_vjp
def _astype_vjp(cts, x, *, results, needs, dtype):
    return (bind(astype_p, cts[0], dtype=np.dtype(x.dtype)),)


def _astype(x, *, dtype):
    return bind(astype_p, x, dtype=np.dtype(dtype))


def astype(x, dtype):
    """Cast to float32 or float64, differentiably (the cotangent is cast back).

    Args:
      x: array or tracer.
      dtype: ``float32`` or ``float64``.
    Returns:
      the cast array (``x`` itself when the dtype already matches).
    """
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(err("astype", f"expected a dtype, got {dtype!r}")) from e
    if dt.type not in _FLOAT:
        raise TypeError(err("astype", f"only float32 and float64 are supported, got {dt}"))
    return convert(x, dt, "astype")


def normalize_axis(axis, ndim: int, opname: str) -> int:
    """A single axis in [0, ndim) (negative counts from the end)."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(err(opname, f"axis must be an int, got {axis!r}"))
    if not -ndim <= axis < ndim:
        raise ValueError(err(opname, f"axis {axis} is out of bounds for an array of "
                                     f"dimension {ndim}"))
    return int(axis) % ndim


def normalize_axes(axis, ndim: int, opname: str) -> tuple:
    """Sorted, unique axes from None (all), an int or a tuple/list of ints."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    axes = tuple(normalize_axis(a, ndim, opname) for a in items)
    if len(set(axes)) != len(axes):
        raise ValueError(err(opname, f"repeated axis in {axis!r}"))
    return tuple(sorted(axes))


def check_shape(shape, opname: str) -> tuple:
    """A shape tuple of non-negative ints from an int or a sequence of ints."""
    items = shape if isinstance(shape, (tuple, list)) else (shape,)
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_))
               for s in items):
        raise TypeError(err(opname, f"shape must be an int or a tuple of ints, got {shape!r}"))
    if any(s < 0 for s in items):
        raise ValueError(err(opname, f"shape must be non-negative, got {tuple(items)}"))
    return tuple(int(s) for s in items)


def broadcast_shapes(opname: str, *shapes) -> tuple:
    """NumPy's broadcast of ``shapes``, or a ValueError naming the operation."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(err(opname, "operands could not be broadcast together with shapes "
                                     + " ".join(str(tuple(s)) for s in shapes))) from None


def contig(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous array, copying only if needed (keeps 0-d arrays 0-d)."""
    return np.asarray(a, order="C")
