"""Indexing (``x[idx]``) and ``take``.

The index is static data of the primitive (ints, slices, None, Ellipsis as a hashable
tuple, see :func:`_normalize_index`); integer index arrays are positional array inputs
(so they may be traced), and a concrete boolean mask becomes the integer arrays of its
``nonzero()`` (NumPy's own definition of mask indexing), whose length fixes the result
shape at trace time. The forward is NumPy indexing; the VJP writes the cotangent back
into zeros: a plain assignment for basic indexing (ints, slices, None, Ellipsis never
select an element twice), a Numba scatter-add with ``np.add.at`` semantics when index
arrays may repeat positions.
"""
import numpy as np

from .._backend import kernels
from .._core import Primitive, Tracer, aval, bind, on_device
from ._core import as_float_array, contig, device_under, err, normalize_axis
from ._shape import reshape

K = kernels("indexing")
_MAX_DIMS = 64  # NumPy's limit: at most this many index arrays (each indexes one axis)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _index_array(it):
    """An index list/array as an integer or bool array (or int tracer), validated."""
    if isinstance(it, Tracer):
        if it.dtype == np.bool_:
            raise TypeError(err("getitem", f"a boolean mask that is a traced array "
                                           f"({it.aval}) cannot index: the result's shape would "
                                           "depend on its values. Use lucid.numpy.where(mask, x, "
                                           "0) or a concrete NumPy mask instead"))
        if it.dtype.kind not in "iu":
            raise TypeError(err("getitem", "indices must be concrete (ints, slices, integer "
                                           f"arrays), got a traced array of dtype {it.dtype}"))
        return it
    if on_device(it):   # an index array already on the device (values never read here)
        if it.dtype.kind not in "iu":
            raise TypeError(err("getitem", f"an index array on the device must hold integers, "
                                           f"got dtype {it.dtype}: a boolean mask's result "
                                           "shape depends on its values, so mask with a host "
                                           "(NumPy) array or use lucid.numpy.where"))
        return it
    arr = np.asarray(it)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.intp)  # np.asarray([]) is float64
    if arr.dtype.kind not in "iub":
        raise TypeError(err("getitem", f"index arrays must hold integers or bools, "
                                       f"got dtype {arr.dtype}"))
    if arr.dtype == np.bool_ and arr.ndim == 0:
        raise TypeError(err("getitem", "a 0-d boolean index is not supported; use None "
                                       "(a new axis) or a slice"))
    return arr


def _check_part(it):
    """One index item: an int, slice, None, Ellipsis or an index array (validated)."""
    if it is None or it is Ellipsis or _is_int(it):
        return int(it) if _is_int(it) else it
    if isinstance(it, slice):
        bounds = (it.start, it.stop, it.step)
        if any(isinstance(v, Tracer) for v in bounds):
            raise TypeError(err("getitem", "indices must be concrete (ints, slices, integer "
                                           "arrays), got a traced slice bound"))
        if not all(v is None or _is_int(v) for v in bounds):
            raise TypeError(err("getitem", f"slice bounds must be ints or None, got {it!r}"))
        return ("slice",) + tuple(None if v is None else int(v) for v in bounds)
    if isinstance(it, (list, np.ndarray, Tracer)) or on_device(it):
        return _index_array(it)
    raise TypeError(err("getitem", f"unsupported index {it!r} of type {type(it).__name__}; "
                                   "use ints, slices, None, Ellipsis or integer arrays"))


def _normalize_index(index, shape):
    """``(parts, arrays)``: the index as a hashable tuple in which ``("array", k)`` stands
    for ``arrays[k]`` and ``("slice", start, stop, step)`` for a slice; boolean masks
    are checked against the axes they cover and replaced by their ``nonzero()``."""
    items = [_check_part(it) for it in (index if isinstance(index, tuple) else (index,))]
    used = sum(it.ndim if _is_mask(it) else 1 for it in items
               if it is not None and it is not Ellipsis)
    _check_count(sum(it is Ellipsis for it in items), used, len(shape))
    parts, arrays, dim = [], [], 0
    for it in items:
        if it is Ellipsis:
            dim += max(len(shape) - used, 0)
        elif _is_mask(it):
            covered = tuple(shape[dim:dim + it.ndim])
            if it.shape != covered:
                raise IndexError(err("getitem", f"boolean index of shape {it.shape} does not "
                                                f"match the indexed axes of shape {covered} "
                                                f"(indexing an array of shape {shape})"))
            for nz in it.nonzero():
                parts.append(("array", len(arrays)))
                arrays.append(nz)
            dim += it.ndim
            continue
        elif isinstance(it, (np.ndarray, Tracer)) or on_device(it):
            parts.append(("array", len(arrays)))
            arrays.append(contig(it) if isinstance(it, np.ndarray) else it)
            dim += 1
            continue
        elif it is not None:
            dim += 1
        parts.append(it)
    if len(arrays) > _MAX_DIMS:
        raise IndexError(err("getitem", f"too many index arrays ({len(arrays)})"))
    return tuple(parts), arrays


def _is_mask(it) -> bool:
    return isinstance(it, np.ndarray) and it.dtype == np.bool_


def _rebuild(parts, arrays) -> tuple:
    """The NumPy index that ``parts`` and the index ``arrays`` stand for."""
    out = []
    for p in parts:
        if isinstance(p, tuple):
            out.append(slice(*p[1:]) if p[0] == "slice" else arrays[p[1]])
        else:
            out.append(p)
    return tuple(out)


def _check_count(n_ellipsis, used, ndim):
    if n_ellipsis > 1:
        raise IndexError(err("getitem", "an index can only have a single ellipsis ('...')"))
    if used > ndim:
        raise IndexError(err("getitem", f"too many indices for an array of dimension {ndim}: "
                                        f"{used} were indexed"))


def _index_shape(shape, parts, array_shapes) -> tuple:
    """The shape of ``x[index]`` for ``x`` of ``shape`` (NumPy's rules), from shapes alone.

    Index arrays (and ints, when there are index arrays) are broadcast together; their
    broadcast shape replaces the axes they index when they are adjacent in the index
    (None and Ellipsis separate them), else it comes first.
    """
    used = sum(p is not None and p is not Ellipsis for p in parts)
    _check_count(sum(p is Ellipsis for p in parts), used, len(shape))
    fancy = bool(array_shapes)
    try:
        bshape = np.broadcast_shapes(*array_shapes) if fancy else ()
    except ValueError:
        raise IndexError(err("getitem", "shape mismatch: indexing arrays could not be broadcast "
                                        f"together with shapes {list(array_shapes)}")) from None
    out, dim, first, state = [], 0, None, "before"  # state: before/in/after/split
    for p in list(parts) + [Ellipsis] * (Ellipsis not in parts):
        advanced = fancy and (_is_int(p) or (isinstance(p, tuple) and p[0] == "array"))
        if advanced:
            first = len(out) if first is None else first
            state = {"before": "in", "after": "split"}.get(state, state)
        elif state == "in":
            state = "after"
        if p is Ellipsis:
            n = len(shape) - used
            out.extend(shape[dim:dim + n])
            dim += n
        elif p is None:
            out.append(1)
        else:
            size = shape[dim]
            if _is_int(p) and not -size <= p < size:
                raise IndexError(err("getitem", f"index {p} is out of bounds for axis {dim} with "
                                                f"size {size} (indexing an array of shape "
                                                f"{tuple(shape)})"))
            if isinstance(p, tuple) and p[0] == "slice":
                if p[3] == 0:
                    raise ValueError(err("getitem", "slice step cannot be zero"))
                out.append(len(range(*slice(*p[1:]).indices(size))))
            dim += 1
    at = 0 if state == "split" else first
    return tuple(out[:at] + list(bshape) + out[at:]) if fancy else tuple(out)


# Basic indexing copies into the output rather than being a view primitive: the view
# would be strided (every kernel reading it copies it) and would make the program's
# buffers alias in ways a planner must track; the copy is what the eager code did.
getitem_p = Primitive("getitem")
getitem_p.saves = (tuple(range(1, _MAX_DIMS + 1)), ())  # the index arrays, not x
getitem_bwd_p = Primitive("getitem_bwd")


@getitem_p.def_abstract
def _getitem_abstract(x, *arrays, index):
    return aval(_index_shape(x.shape, index, [a.shape for a in arrays]), x.dtype)


@getitem_p.def_impl
def _getitem_impl(x, *arrays, out, index):
    try:
        y = x[_rebuild(index, arrays)]
    except IndexError as e:  # an index array's value out of bounds
        raise IndexError(err("getitem", f"{e} (indexing an array of shape {x.shape})")) from None
    if y.shape != out[0].shape:
        raise RuntimeError(f"lucid internal error: getitem's shape rule gave {out[0].shape}, "
                           f"NumPy {y.shape}")
    np.copyto(out[0], y)


@getitem_p.def_vjp
def _getitem_vjp(cts, x, *arrays, results, needs, index):
    gx = bind(getitem_bwd_p, cts[0], *arrays, shape=x.shape, index=index)
    return (gx,) + (None,) * len(arrays)


getitem_bwd_p.def_abstract(lambda g, *arrays, shape, index: aval(shape, g.dtype))


@getitem_bwd_p.def_impl
def _getitem_bwd_impl(g, *arrays, out, shape, index):
    """The cotangent written back into zeros; summed where index arrays repeat positions."""
    gx = out[0]
    gx.fill(0)
    idx = _rebuild(index, arrays)
    if arrays:  # positions may repeat: accumulate
        pos = np.arange(gx.size).reshape(shape)[idx]
        K.scatter_add(contig(g).reshape(-1), contig(pos).reshape(-1), gx.reshape(-1))
    else:
        gx[idx] = g


def getitem(x, index):
    """``x[index]`` with NumPy semantics: ints, slices, None, Ellipsis, int/bool arrays.

    Integer index arrays may be traced (inside ``lucid.jit``); a boolean mask must be
    concrete, since the result's shape depends on its values. On a device array, host
    index arrays (and a mask's indices) are checked, then copied to its device; integer
    index arrays already on the device cannot be checked without a host read, so their
    values are clamped into the axis there (JAX's rule for gathers).

    Raises:
      IndexError: an index out of bounds. TypeError: a traced non-integer index or a
      non-integer index.
    """
    x = as_float_array(x, "getitem")
    parts, arrays = _normalize_index(index, tuple(x.shape))
    _index_shape(tuple(x.shape), parts, [a.shape for a in arrays])  # raises on bad input
    for a in arrays:
        if isinstance(a, np.ndarray) and a.size:
            _check_array_bounds(a, parts, arrays, x.shape)
    device = device_under(x)
    if device is not None:  # host index arrays (checked above) follow x to its device
        from .._device import device_put
        arrays = [device_put(a, device) if isinstance(a, np.ndarray) else a for a in arrays]
    return bind(getitem_p, x, *arrays, index=parts)


def _check_array_bounds(a, parts, arrays, shape):
    """A concrete index array's values against the axis it indexes (at trace time too)."""
    k = next(i for i, p in enumerate(parts) if isinstance(p, tuple) and p[0] == "array"
             and arrays[p[1]] is a)
    before = parts[:k]
    if Ellipsis in before:
        dim = len(shape) - sum(p is not None and p is not Ellipsis for p in parts[k:])
    else:
        dim = sum(p is not None for p in before)
    lo, hi, size = int(a.min()), int(a.max()), shape[dim]
    if lo < -size or hi >= size:
        bad = lo if lo < -size else hi
        raise IndexError(err("getitem", f"index {bad} is out of bounds for axis {dim} with size "
                                        f"{size} (indexing an array of shape {tuple(shape)})"))


def take(x, indices, axis=None):
    """Elements of ``x`` at integer ``indices`` along ``axis`` (the flattened ``x`` if None)."""
    x = as_float_array(x, "take")
    if isinstance(indices, Tracer) or on_device(indices):
        if indices.dtype.kind not in "iu":
            raise TypeError(err("take", f"indices must be integers, got a traced or device "
                                        f"array of dtype {indices.dtype}"))
        idx = indices
    else:
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(err("take", f"indices must be integers, got dtype {idx.dtype}"))
    if axis is None:
        x, axis = reshape(x, -1), 0
    axis = normalize_axis(axis, x.ndim, "take")
    return getitem(x, (slice(None),) * axis + (idx,))
