"""Input conversion and validation shared by lucid.numpy operations."""
import numpy as np

from .._autodiff import Tracer

_FLOAT = (np.float32, np.float64)


def as_float_array(x, opname: str, dtype=None):
    """A C-contiguous float32/float64 array (or the tracer itself) for a kernel.

    Python scalars and lists become float32 (lucid's default dtype) unless ``dtype`` is
    given; integer/bool arrays become float32; float16 and complex are rejected.
    """
    if isinstance(x, Tracer):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.type in _FLOAT:
            return x if x.flags.c_contiguous else np.ascontiguousarray(x)
        if x.dtype.kind in "biu":
            return np.ascontiguousarray(x, dtype=dtype or np.float32)
        raise TypeError(f"lucid.numpy.{opname}: expected a float32 or float64 array, got dtype {x.dtype}")
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise TypeError(f"lucid.numpy.{opname}: expected an array, got {type(x).__name__}") from e
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"lucid.numpy.{opname}: expected a numeric array, got {type(x).__name__}")
    return np.ascontiguousarray(arr, dtype=dtype or (arr.dtype if arr.dtype.type in _FLOAT and
                                                      not np.isscalar(x) else np.float32))
