"""Indexing (``x[idx]``) and ``take``.

The forward is NumPy indexing (which also bounds-checks); the VJP writes the
cotangent back into zeros: a plain assignment for basic indexing (ints, slices,
None, Ellipsis never select an element twice), a Numba scatter-add with
``np.add.at`` semantics when integer/bool arrays may repeat positions.
"""
import numpy as np

from .._autodiff import Tracer, primitive
from .._backend import kernels
from ._core import as_float_array, contig, err, normalize_axis
from ._shape import reshape

K = kernels("indexing")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _normalize_index(index):
    """A tuple index of concrete parts, and whether it uses advanced (array) indexing."""
    items = index if isinstance(index, tuple) else (index,)
    parts, advanced = [], False
    for it in items:
        if isinstance(it, Tracer) or (isinstance(it, slice) and any(
                isinstance(v, Tracer) for v in (it.start, it.stop, it.step))):
            raise TypeError(err("getitem", "indices must be concrete (ints, slices, integer "
                                           "arrays), got a traced array"))
        if it is None or it is Ellipsis or _is_int(it):
            parts.append(it)
        elif isinstance(it, slice):
            if not all(v is None or _is_int(v) for v in (it.start, it.stop, it.step)):
                raise TypeError(err("getitem", f"slice bounds must be ints or None, got {it!r}"))
            parts.append(it)
        elif isinstance(it, (list, np.ndarray)):
            arr = np.asarray(it)
            if arr.size == 0 and arr.dtype.kind == "f":
                arr = arr.astype(np.intp)  # np.asarray([]) is float64
            if arr.dtype.kind not in "iub":
                raise TypeError(err("getitem", f"index arrays must hold integers or bools, "
                                               f"got dtype {arr.dtype}"))
            parts.append(arr)
            advanced = True
        else:
            raise TypeError(err("getitem", f"unsupported index {it!r} of type "
                                           f"{type(it).__name__}; use ints, slices, None, "
                                           "Ellipsis or integer arrays"))
    return tuple(parts), advanced


@primitive(name="getitem")
def _getitem(x, *, index, advanced):
    try:
        y = contig(x[index])
    except IndexError as e:
        raise IndexError(err("getitem", f"{e} (indexing an array of shape {x.shape})")) from None
    shape, dtype = x.shape, x.dtype

    def vjp(g):
        gx = np.zeros(shape, dtype)
        if advanced:  # positions may repeat: accumulate
            pos = np.arange(gx.size).reshape(shape)[index]
            K.scatter_add(contig(g).reshape(-1), contig(pos).reshape(-1), gx.reshape(-1))
        else:
            gx[index] = g
        return (gx,)
    return y, vjp


def getitem(x, index):
    """``x[index]`` with NumPy semantics: ints, slices, None, Ellipsis, int/bool arrays.

    Raises:
      IndexError: an index out of bounds. TypeError: a traced or non-integer index.
    """
    x = as_float_array(x, "getitem")
    index, advanced = _normalize_index(index)
    return _getitem(x, index=index, advanced=advanced)


def take(x, indices, axis=None):
    """Elements of ``x`` at integer ``indices`` along ``axis`` (the flattened ``x`` if None)."""
    x = as_float_array(x, "take")
    if isinstance(indices, Tracer):
        raise TypeError(err("take", "indices must be concrete integers, got a traced array"))
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(err("take", f"indices must be integers, got dtype {idx.dtype}"))
    if axis is None:
        x, axis = reshape(x, -1), 0
    axis = normalize_axis(axis, x.ndim, "take")
    return getitem(x, (slice(None),) * axis + (idx,))
