"""Shape primitives: the forward is a NumPy data movement, the VJP its inverse.

``reshape``, ``transpose``, ``broadcast_to``, ``concatenate``, ``split`` and ``pad``
are primitives; ``expand_dims``, ``squeeze``, ``ravel``, ``stack``, ``moveaxis`` and
``swapaxes`` are built from them.
"""
import math

import numpy as np

from .._limits import check_alloc
from .._core import Primitive, Tracer, aval, bind
from ._broadcast import sum_to_shape
from ._core import (as_float_array, broadcast_shapes, check_shape, convert, err,
                    normalize_axes, normalize_axis, result_dtype)


# A view primitive: a C-contiguous input (every primitive writes C-contiguous outputs)
# reshapes without a copy. (NumPy copies a non-contiguous input, e.g. a caller's strided
# array, which is still correct eagerly.)
reshape_p = Primitive("reshape", view=True)
reshape_p.saves = ((), ())
reshape_p.def_abstract(lambda x, *, shape: aval(shape, x.dtype))
reshape_p.def_impl(lambda x, *, shape: np.reshape(x, shape))


@reshape_p.def_vjp
def _reshape_vjp(cts, x, *, results, needs, shape):
    return (bind(reshape_p, cts[0], shape=x.shape),)


def _reshape(x, *, shape):
    return bind(reshape_p, x, shape=shape)


def reshape(x, shape):
    """``x`` with a new shape of the same size (one dim may be -1)."""
    x = as_float_array(x, "reshape")
    items = shape if isinstance(shape, (tuple, list)) else (shape,)
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in items):
        raise TypeError(err("reshape", f"shape must be an int or a tuple of ints, got {shape!r}"))
    items = [int(s) for s in items]
    if items.count(-1) > 1 or any(s < -1 for s in items):
        raise ValueError(err("reshape", f"invalid shape {tuple(items)}: at most one -1 and no "
                                        "other negative sizes"))
    known = math.prod(s for s in items if s != -1)
    if -1 in items:
        if known == 0 or x.size % known:
            raise ValueError(err("reshape", f"cannot reshape an array of size {x.size} into "
                                            f"shape {tuple(items)}"))
        items[items.index(-1)] = x.size // known
    if math.prod(items) != x.size:
        raise ValueError(err("reshape", f"cannot reshape an array of size {x.size} into shape "
                                        f"{tuple(items)}"))
    return x if tuple(items) == x.shape else _reshape(x, shape=tuple(items))


def ravel(x):
    """``x`` flattened to 1-d."""
    return reshape(x, -1)


# A copy into a C-contiguous output, not a view: a transposed view is strided, every
# kernel reading it would copy it anyway, and a reshape of it would not be a view.
transpose_p = Primitive("transpose")
transpose_p.saves = ((), ())
transpose_p.def_abstract(lambda x, *, axes: aval(tuple(x.shape[a] for a in axes), x.dtype))


@transpose_p.def_impl
def _transpose_impl(x, *, out, axes):
    np.copyto(out[0], x.transpose(axes))


@transpose_p.def_vjp
def _transpose_vjp(cts, x, *, results, needs, axes):
    return (bind(transpose_p, cts[0], axes=tuple(int(a) for a in np.argsort(axes))),)


def _transpose(x, *, axes):
    return bind(transpose_p, x, axes=axes)


def transpose(x, axes=None):
    """Permute the axes (reverse them when ``axes`` is None)."""
    x = as_float_array(x, "transpose")
    if axes is None:
        axes = tuple(range(x.ndim))[::-1]
    if not isinstance(axes, (tuple, list)):
        raise TypeError(err("transpose", f"axes must be a tuple of ints, got {axes!r}"))
    perm = tuple(normalize_axis(a, x.ndim, "transpose") for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(err("transpose", f"axes {tuple(axes)} are not a permutation of the "
                                          f"{x.ndim} axes"))
    return x if perm == tuple(range(x.ndim)) else _transpose(x, axes=perm)


def moveaxis(x, source, destination):
    """Move axis ``source`` to position ``destination`` (ints)."""
    x = as_float_array(x, "moveaxis")
    src = normalize_axis(source, x.ndim, "moveaxis")
    dst = normalize_axis(destination, x.ndim, "moveaxis")
    order = [d for d in range(x.ndim) if d != src]
    order.insert(dst, src)
    return transpose(x, tuple(order))


def swapaxes(x, axis1, axis2):
    """Swap two axes."""
    x = as_float_array(x, "swapaxes")
    a, b = normalize_axis(axis1, x.ndim, "swapaxes"), normalize_axis(axis2, x.ndim, "swapaxes")
    order = list(range(x.ndim))
    order[a], order[b] = b, a
    return transpose(x, tuple(order))


# Not a view: the materialised array is written into the output (kernels must never
# get NumPy's read-only broadcast views).
broadcast_to_p = Primitive("broadcast_to")
broadcast_to_p.saves = ((), ())
broadcast_to_p.def_abstract(lambda x, *, shape: aval(shape, x.dtype))


@broadcast_to_p.def_impl
def _broadcast_to_impl(x, *, out, shape):
    np.copyto(out[0], np.broadcast_to(x, shape))


@broadcast_to_p.def_vjp
def _broadcast_to_vjp(cts, x, *, results, needs, shape):
    return (sum_to_shape(cts[0], x.shape),)


def _broadcast_to(x, *, shape):
    return bind(broadcast_to_p, x, shape=shape)


def broadcast_to(x, shape):
    """``x`` broadcast to ``shape`` (NumPy rules), as a new array."""
    x = as_float_array(x, "broadcast_to")
    shape = check_shape(shape, "broadcast_to")
    if len(shape) < x.ndim or broadcast_shapes("broadcast_to", x.shape, shape) != shape:
        raise ValueError(err("broadcast_to", f"cannot broadcast shape {x.shape} to {shape}"))
    return x if shape == x.shape else _broadcast_to(x, shape=shape)


def expand_dims(x, axis):
    """Insert size-1 axes at ``axis`` (int or tuple, positions in the result)."""
    x = as_float_array(x, "expand_dims")
    n_new = len(axis) if isinstance(axis, (tuple, list)) else 1
    axes = normalize_axes(axis, x.ndim + n_new, "expand_dims")
    dims = iter(x.shape)
    return reshape(x, tuple(1 if d in axes else next(dims) for d in range(x.ndim + n_new)))


def squeeze(x, axis=None):
    """Remove size-1 axes (all of them, or those in ``axis``, which must have size 1)."""
    x = as_float_array(x, "squeeze")
    if axis is None:
        axes = tuple(d for d, n in enumerate(x.shape) if n == 1)
    else:
        axes = normalize_axes(axis, x.ndim, "squeeze")
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            raise ValueError(err("squeeze", f"cannot squeeze axis {bad[0]} of size "
                                            f"{x.shape[bad[0]]} (shape {x.shape})"))
    return reshape(x, tuple(n for d, n in enumerate(x.shape) if d not in axes))


def _as_sequence(arrays, opname):
    if isinstance(arrays, (np.ndarray, Tracer)) or not isinstance(arrays, (list, tuple)):
        raise TypeError(err(opname, f"expected a list or tuple of arrays, got "
                                    f"{type(arrays).__name__}"))
    if not arrays:
        raise ValueError(err(opname, "need at least one array"))
    dtype = result_dtype(opname, *arrays)
    return [convert(a, dtype, opname) for a in arrays]


concatenate_p = Primitive("concatenate")
concatenate_p.saves = ((), ())


@concatenate_p.def_abstract
def _concatenate_abstract(*arrays, axis):
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    return aval(shape, arrays[0].dtype)


@concatenate_p.def_impl
def _concatenate_impl(*arrays, out, axis):
    np.concatenate(arrays, axis=axis, out=out[0])


@concatenate_p.def_vjp
def _concatenate_vjp(cts, *arrays, results, needs, axis):
    bounds = tuple(int(b) for b in np.cumsum([a.shape[axis] for a in arrays])[:-1])
    pieces = bind(split_p, cts[0], bounds=bounds, axis=axis)
    return tuple(p if need else None for p, need in zip(pieces, needs))


def _concatenate(*arrays, axis):
    return bind(concatenate_p, *arrays, axis=axis)


def concatenate(arrays, axis=0):
    """Join arrays along an existing axis (``axis=None`` flattens them first)."""
    arrays = _as_sequence(arrays, "concatenate")
    if axis is None:
        arrays, axis = [reshape(a, -1) for a in arrays], 0
    ndim = arrays[0].ndim
    if ndim == 0:
        raise ValueError(err("concatenate", "zero-dimensional arrays cannot be concatenated"))
    axis = normalize_axis(axis, ndim, "concatenate")
    for a in arrays:
        if a.ndim != ndim or any(n != m for d, (n, m) in enumerate(zip(a.shape, arrays[0].shape))
                                 if d != axis):
            raise ValueError(err("concatenate", f"all shapes must match except along axis "
                                                f"{axis}, got {[tuple(b.shape) for b in arrays]}"))
    return arrays[0] if len(arrays) == 1 else _concatenate(*arrays, axis=axis)


def stack(arrays, axis=0):
    """Join same-shape arrays along a new axis."""
    arrays = _as_sequence(arrays, "stack")
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError(err("stack", f"all arrays must have the same shape, got "
                                      f"{[tuple(a.shape) for a in arrays]}"))
    axis = normalize_axis(axis, arrays[0].ndim + 1, "stack")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis)


def _split_slices(n: int, bounds) -> list:
    """The slices np.split(x, bounds) takes along an axis of length ``n``."""
    edges = (0,) + tuple(bounds) + (n,)
    return [slice(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]


def _split_shapes(shape, bounds, axis) -> list:
    shapes = []
    for piece in _split_slices(shape[axis], bounds):
        s = list(shape)
        s[axis] = len(range(*piece.indices(shape[axis])))
        shapes.append(tuple(s))
    return shapes


split_p = Primitive("split", multiple_results=True)
split_p.saves = ((), ())
split_bwd_p = Primitive("split_bwd")


@split_p.def_abstract
def _split_abstract(x, *, bounds, axis):
    return tuple(aval(s, x.dtype) for s in _split_shapes(x.shape, bounds, axis))


@split_p.def_impl
def _split_impl(x, *, out, bounds, axis):
    lead = (slice(None),) * axis
    for piece, o in zip(_split_slices(x.shape[axis], bounds), out):
        np.copyto(o, x[lead + (piece,)])


@split_p.def_vjp
def _split_vjp(cts, x, *, results, needs, bounds, axis):
    return (bind(split_bwd_p, *cts, shape=x.shape, dtype=np.dtype(x.dtype), bounds=bounds,
                 axis=axis),)


split_bwd_p.def_abstract(lambda *gs, shape, dtype, bounds, axis: aval(shape, dtype))


@split_bwd_p.def_impl
def _split_bwd_impl(*gs, out, shape, dtype, bounds, axis):
    """The pieces' cotangents written back into place (zeros where a piece got none).

    Decreasing split indices make pieces overlap (np.split allows them): then the
    overlapping cotangents are summed."""
    lead = (slice(None),) * axis
    overlap = any(b < a for a, b in zip(bounds[:-1], bounds[1:]))
    if overlap:
        out[0].fill(0)
    for piece, g in zip(_split_slices(shape[axis], bounds), gs):
        where = lead + (piece,)
        if overlap and g is not None:
            out[0][where] += g
        elif not overlap:
            out[0][where] = 0 if g is None else g


def _split(x, *, bounds, axis):
    return bind(split_p, x, bounds=bounds, axis=axis)


def split(x, indices_or_sections, axis=0):
    """Split into a list of arrays: ``n`` equal sections, or at the given indices."""
    x = as_float_array(x, "split")
    if x.ndim == 0:
        raise ValueError(err("split", "cannot split a 0-d array"))
    axis = normalize_axis(axis, x.ndim, "split")
    n = x.shape[axis]
    ios = indices_or_sections
    if isinstance(ios, (int, np.integer)) and not isinstance(ios, bool):
        if ios <= 0 or n % ios:
            raise ValueError(err("split", f"cannot split an axis of length {n} into {ios} "
                                          "equal sections"))
        bounds = tuple(range(n // ios, n, n // ios)) if n else (0,) * (ios - 1)
    elif isinstance(ios, (list, tuple, np.ndarray)) and all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ios):
        bounds = tuple(_split_index(int(i), n) for i in ios)
    else:
        raise TypeError(err("split", f"indices_or_sections must be an int or a sequence of "
                                     f"ints, got {indices_or_sections!r}"))
    return list(_split(x, bounds=bounds, axis=axis))


def _split_index(i: int, n: int) -> int:
    """A split index as NumPy reads it: negative counts from the end, then clipped to [0, n]."""
    i = i + n if i < 0 else i
    return min(max(i, 0), n)


def _inner(shape, widths) -> tuple:
    """The slices of a padded array of (unpadded) ``shape`` that hold the original."""
    return tuple(slice(a, a + n) for n, (a, _) in zip(shape, widths))


pad_p = Primitive("pad")
pad_p.saves = ((), ())
crop_p = Primitive("pad_bwd")  # the VJP of pad: the inner block of the cotangent


@pad_p.def_abstract
def _pad_abstract(x, *, widths, value):
    return aval(tuple(n + a + b for n, (a, b) in zip(x.shape, widths)), x.dtype)


@pad_p.def_impl
def _pad_impl(x, *, out, widths, value):
    out[0].fill(value)
    out[0][_inner(x.shape, widths)] = x


@pad_p.def_vjp
def _pad_vjp(cts, x, *, results, needs, widths, value):
    return (bind(crop_p, cts[0], shape=x.shape, widths=widths),)


crop_p.def_abstract(lambda g, *, shape, widths: aval(shape, g.dtype))


@crop_p.def_impl
def _crop_impl(g, *, out, shape, widths):
    np.copyto(out[0], g[_inner(shape, widths)])


def _pad(x, *, widths, value):
    return bind(pad_p, x, widths=widths, value=value)


def pad(x, pad_width, mode="constant", constant_values=0.0):
    """Pad with a constant. ``pad_width``: int, (before, after), or one pair per axis."""
    x = as_float_array(x, "pad")
    if mode != "constant":
        raise ValueError(err("pad", f"only mode='constant' is supported, got {mode!r}"))
    try:
        widths = np.broadcast_to(np.asarray(pad_width), (x.ndim, 2))
    except ValueError:
        raise ValueError(err("pad", f"pad_width {pad_width!r} does not fit an array of "
                                    f"dimension {x.ndim}")) from None
    if widths.dtype.kind not in "iu" or (widths < 0).any():
        raise ValueError(err("pad", f"pad_width must hold non-negative ints, got {pad_width!r}"))
    if not isinstance(constant_values, (int, float)) or isinstance(constant_values, bool):
        raise TypeError(err("pad", f"constant_values must be a number, got {constant_values!r}"))
    widths = tuple((int(a), int(b)) for a, b in widths)
    check_alloc("lucid.numpy.pad", [n + a + b for n, (a, b) in zip(x.shape, widths)], x.dtype)
    return _pad(x, widths=widths, value=float(constant_values))
