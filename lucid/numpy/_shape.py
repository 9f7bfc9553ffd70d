"""Shape primitives: the forward is a NumPy data movement, the VJP its inverse.

``reshape``, ``transpose``, ``broadcast_to``, ``concatenate``, ``split`` and ``pad``
are primitives; ``expand_dims``, ``squeeze``, ``ravel``, ``stack``, ``moveaxis`` and
``swapaxes`` are built from them.
"""
import math

import numpy as np

from .._limits import check_alloc
from .._autodiff import Tracer, primitive
from ._broadcast import materialize, sum_to_shape
from ._core import (as_float_array, broadcast_shapes, check_shape, contig, convert, err,
                    normalize_axes, normalize_axis, result_dtype)


@primitive(name="reshape")
def _reshape(x, *, shape):
    src = x.shape
    return x.reshape(shape), lambda g: (contig(g).reshape(src),)


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


@primitive(name="transpose")
def _transpose(x, *, axes):
    inverse = tuple(np.argsort(axes))
    return contig(x.transpose(axes)), lambda g: (contig(np.transpose(g, inverse)),)


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


@primitive(name="broadcast_to")
def _broadcast_to(x, *, shape):
    src = x.shape
    return materialize(x, shape), lambda g: (sum_to_shape(contig(g), src),)


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


@primitive(name="concatenate")
def _concatenate(*arrays, axis):
    bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
    out = np.concatenate(arrays, axis=axis)
    return out, lambda g: tuple(contig(p) for p in np.split(g, bounds, axis=axis))


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


@primitive(name="split")
def _split(x, *, bounds, axis):
    pieces = tuple(contig(p) for p in np.split(x, bounds, axis=axis))
    shapes = [p.shape for p in pieces]

    def vjp(gs):
        gs = [np.zeros(s, x.dtype) if g is None else g for g, s in zip(gs, shapes)]
        return (np.concatenate(gs, axis=axis),)
    return pieces, vjp


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


@primitive(name="pad")
def _pad(x, *, widths, value):
    out = np.full(tuple(n + a + b for n, (a, b) in zip(x.shape, widths)), value, x.dtype)
    inner = tuple(slice(a, a + n) for n, (a, _) in zip(x.shape, widths))
    out[inner] = x
    return out, lambda g: (contig(g[inner]),)


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
