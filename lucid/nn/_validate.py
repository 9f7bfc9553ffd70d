"""Argument checks shared by ``lucid.nn.functional``: they run before any kernel.

Numba does not bounds-check, so every public function validates ranks, shapes and
dtypes here and raises ``TypeError`` / ``ValueError`` naming the operation, what it
expected and what it got. The checks read only ``.shape``, ``.dtype`` and ``.ndim``,
so they work on tracers too.
"""
import numbers

import numpy as np

from .._autodiff import Tracer
from .._core import on_device

_FLOAT = (np.float32, np.float64)


def where(op: str) -> str:
    """The public name of a functional op, for error messages."""
    return f"lucid.nn.functional.{op}"


def float_array(x, op: str, arg: str):
    """``x`` as a C-contiguous float32/float64 array, or the tracer itself.

    Python scalars and lists become float32 (lucid's default dtype); arrays of any
    other dtype (int, bool, float16, ...) are rejected rather than silently cast.
    """
    if isinstance(x, Tracer):
        if x.dtype.type not in _FLOAT:
            raise TypeError(f"{where(op)}: {arg} must be float32 or float64, got dtype {x.dtype}")
        return x
    if on_device(x):  # a device array (lucid.DeviceArray)
        if np.dtype(x.dtype).type not in _FLOAT:
            raise TypeError(f"{where(op)}: {arg} must be float32 or float64, got dtype {x.dtype}")
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.type not in _FLOAT:
            raise TypeError(f"{where(op)}: {arg} must be a float32 or float64 array, "
                            f"got dtype {x.dtype}")
        return x if x.flags.c_contiguous else np.ascontiguousarray(x)
    if isinstance(x, (numbers.Real, list, tuple)) and not isinstance(x, bool):
        arr = np.asarray(x)
        if arr.dtype.kind in "iuf":
            return np.array(arr, dtype=np.float32, order="C")  # keeps 0-d as 0-d
    raise TypeError(f"{where(op)}: {arg} must be a float32 or float64 array, "
                    f"got {type(x).__name__}")


def optional_float_array(x, op: str, arg: str):
    """Like :func:`float_array` but passes ``None`` through."""
    return None if x is None else float_array(x, op, arg)


def same_dtype(op: str, **arrays):
    """Raise TypeError unless every non-None array has the same dtype (no silent promotion)."""
    given = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {np.dtype(v.dtype) for v in given.values()}
    if len(dtypes) > 1:
        got = ", ".join(f"{k} {np.dtype(v.dtype)}" for k, v in given.items())
        raise TypeError(f"{where(op)}: all arrays must share one dtype (float32 or float64; "
                        f"cast them first), got {got}")


def check_ndim(x, op: str, arg: str, ndims, what: str = ""):
    """Raise ValueError unless ``x.ndim`` is in ``ndims``."""
    if x.ndim not in ndims:
        want = " or ".join(f"{n}-D" for n in ndims)
        hint = f" ({what})" if what else ""
        raise ValueError(f"{where(op)}: {arg} must be {want}{hint}, got shape {tuple(x.shape)}")


def check_channel_vector(v, size: int, op: str, arg: str, what: str):
    """Raise ValueError unless ``v`` is None or has shape ``(size,)``."""
    if v is not None and tuple(v.shape) != (size,):
        raise ValueError(f"{where(op)}: {arg} must have shape ({size},) to match {what}, "
                         f"got shape {tuple(v.shape)}")


def check_axis(axis, ndim: int, op: str) -> int:
    """``axis`` normalised to ``0 <= axis < ndim``, or ValueError/TypeError."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{where(op)}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{where(op)}: axis {axis} is out of range for a {ndim}-D input")
    return int(axis) % ndim


def check_real(value, op: str, arg: str, low=None, high=None, high_open=False) -> float:
    """``value`` as a float in [low, high] (or [low, high) with ``high_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where(op)}: {arg} must be a real number, got {type(value).__name__}")
    v = float(value)
    too_high = high is not None and (v >= high if high_open else v > high)
    if not np.isfinite(v) or (low is not None and v < low) or too_high:
        rng = f"in [{low}, {high}{')' if high_open else ']'}" if high is not None else f">= {low}"
        raise ValueError(f"{where(op)}: {arg} must be {rng}, got {value!r}")
    return v


def contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` itself when C-contiguous, else a C-contiguous copy (kernels index raw memory)."""
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def as_rows(a: np.ndarray) -> np.ndarray:
    """C-contiguous ``a`` viewed as (prod(leading dims), last dim); safe for empty arrays."""
    a = contiguous(a)
    return a.reshape(int(np.prod(a.shape[:-1], dtype=np.int64)), a.shape[-1])


def axis_to_rows(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` with ``axis`` moved last, as C-contiguous rows (copies only when axis is not last)."""
    return as_rows(a if axis == a.ndim - 1 else np.moveaxis(a, axis, -1))


def rows_to_axis(rows: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    """Inverse of :func:`axis_to_rows` for an array of the original ``shape``."""
    moved = rows.reshape(shape[:axis] + shape[axis + 1:] + (shape[axis],))
    return moved if axis == len(shape) - 1 else np.ascontiguousarray(np.moveaxis(moved, -1, axis))
