"""Array creation and dtypes (no gradient). lucid's default float dtype is float32.

Python floats and lists of them become float32 (not NumPy's float64); arrays keep
their dtype; integer data stays integer (useful for indices).
"""
import math

import numpy as np

from .._autodiff import Tracer
from .._core import on_device
from .._limits import check_alloc
from ._core import DEFAULT_DTYPE, astype, check_shape, device_under, err

float32, float64 = np.float32, np.float64
int32, int64, bool_ = np.int32, np.int64, np.bool_
ndarray = np.ndarray
pi, e, inf, nan = np.pi, np.e, np.inf, np.nan


def _dtype(dtype, opname, default=DEFAULT_DTYPE):
    if dtype is None:
        return np.dtype(default)
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(err(opname, f"expected a dtype, got {dtype!r}")) from exc


def _from_python(x, opname):
    """``x`` as an ndarray; float data that came from Python scalars/lists is float32."""
    native = isinstance(x, (np.ndarray, np.generic))
    try:
        arr = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - re-raised with context
        raise TypeError(err(opname, f"cannot convert {type(x).__name__} to an array")) from exc
    if arr.dtype == object:
        raise TypeError(err(opname, f"cannot convert {type(x).__name__} to a numeric array"))
    if not native and arr.dtype == np.float64:
        arr = arr.astype(DEFAULT_DTYPE)
    return arr


def _on_device(x, dtype, copy):
    """A device array ``x`` as ``dtype`` on its device (a device copy when asked or cast)."""
    from .._cuda_impls_numpy import device_copy
    dt = _dtype(dtype, "asarray", x.dtype)
    return device_copy(x, dt) if copy or dt != x.dtype else x


def asarray(x, dtype=None):
    """``x`` as an array, without copying when possible. A tracer is returned as is
    (cast with :func:`astype` when ``dtype`` differs); a device array stays on its device."""
    if on_device(x):
        return _on_device(x, dtype, copy=False)
    if isinstance(x, Tracer):
        return x if dtype is None else astype(x, dtype)
    arr = _from_python(x, "asarray")
    return arr if dtype is None else arr.astype(_dtype(dtype, "asarray"), copy=False)


def array(x, dtype=None):
    """Like :func:`asarray`, but always a new array (tracers are immutable: returned as is)."""
    if isinstance(x, Tracer):
        return asarray(x, dtype)
    if on_device(x):
        return _on_device(x, dtype, copy=True)
    arr = _from_python(x, "array")
    return arr.astype(_dtype(dtype, "array", arr.dtype), copy=True)


def _sized(shape, dtype, opname):
    """``shape`` checked, and refused (ValueError naming the op) if it cannot fit in memory."""
    shape = check_shape(shape, opname)
    check_alloc(f"lucid.numpy.{opname}", shape, dtype)
    return shape


def zeros(shape, dtype=None):
    """A new array of zeros (float32 by default)."""
    dt = _dtype(dtype, "zeros")
    return np.zeros(_sized(shape, dt, "zeros"), dt)


def ones(shape, dtype=None):
    """A new array of ones (float32 by default)."""
    dt = _dtype(dtype, "ones")
    return np.ones(_sized(shape, dt, "ones"), dt)


def full(shape, fill_value, dtype=None):
    """A new array filled with ``fill_value`` (float32 by default)."""
    dt = _dtype(dtype, "full")
    return np.full(_sized(shape, dt, "full"), fill_value, dt)


def _filled_like(x, fill_value, dtype, opname):
    """``fill_value`` with ``x``'s shape and dtype (or ``dtype``), on ``x``'s device."""
    if on_device(x) or isinstance(x, Tracer):
        shape, dt = tuple(x.shape), np.dtype(x.dtype)
    else:
        arr = _from_python(x, opname)
        shape, dt = arr.shape, arr.dtype
    dt = _dtype(dtype, opname, dt)
    device = device_under(x)
    if device is not None:
        from .._cuda_impls_numpy import device_full
        return device_full(device, shape, fill_value, dt)
    return np.full(shape, fill_value, dt)


def zeros_like(x, dtype=None):
    """Zeros with ``x``'s shape and dtype (works on tracers; no gradient), on ``x``'s
    device."""
    return _filled_like(x, 0, dtype, "zeros_like")


def ones_like(x, dtype=None):
    """Ones with ``x``'s shape and dtype (works on tracers; no gradient), on ``x``'s device."""
    return _filled_like(x, 1, dtype, "ones_like")


def full_like(x, fill_value, dtype=None):
    """``fill_value`` with ``x``'s shape and dtype (works on tracers; no gradient), on
    ``x``'s device."""
    return _filled_like(x, fill_value, dtype, "full_like")


def arange(start, stop=None, step=1, dtype=None):
    """Evenly spaced values in [start, stop) (or [0, start)): int64 for int arguments,
    else float32."""
    lo, hi = (0, start) if stop is None else (start, stop)
    if not all(isinstance(a, (int, float, np.integer, np.floating)) and not isinstance(a, bool)
               for a in (lo, hi, step)):
        raise TypeError(err("arange", f"start, stop and step must be numbers, got "
                                      f"{(start, stop, step)}"))
    if step == 0:
        raise ValueError(err("arange", "step must not be 0"))
    ints = all(isinstance(a, (int, np.integer)) for a in (lo, hi, step))
    default = np.int64 if ints else DEFAULT_DTYPE
    dt = _dtype(dtype, "arange", default)
    span = (hi - lo) / step
    if not math.isfinite(span):
        raise ValueError(err("arange", f"start, stop and step must be finite, got "
                                       f"{(start, stop, step)}"))
    check_alloc("lucid.numpy.arange", (max(0, math.ceil(span)),), dt)
    return np.arange(lo, hi, step, dtype=dt)


def eye(n, m=None, k=0, dtype=None):
    """An identity-like 2-d array (float32 by default)."""
    dt = _dtype(dtype, "eye")
    rows = check_shape(n, "eye")[0]
    cols = rows if m is None else check_shape(m, "eye")[0]
    check_alloc("lucid.numpy.eye", (rows, cols), dt)
    return np.eye(rows, cols, k, dtype=dt)
