"""Broadcasting plumbing shared by the primitives (raw ndarrays in, raw ndarrays out).

* :func:`broadcast_apply` runs a 4-d broadcasting kernel (``kernels/cpu/binary.py``)
  after collapsing the operands' broadcast to at most 4 dims.
* :func:`reduce_layout` views an array as (A, R, C) for the reduction kernels.
* :func:`sum_to_shape` ("unbroadcast") sums a cotangent over broadcast axes: the VJP
  of every broadcasting op; :func:`sum_product_to_shape` fuses a product into it.
"""
import math

import numpy as np

from .._backend import kernels
from .._core import Primitive, aval, bind
from ._core import contig

KR = kernels("reduce")

_CHUNK_ELEMS = 32768   # elements per reduction task when a reduction is split along R
_MANY_SLICES = 16      # with this many independent (A) slices, do not split R


def _collapse(out_shape, shapes):
    """Merge adjacent output dims in which every operand is alike (full or broadcast).

    Returns [[size, (full per operand)], ...] without the output's size-1 dims.
    """
    n = len(out_shape)
    padded = [(1,) * (n - len(s)) + tuple(s) for s in shapes]
    dims = []
    for d, size in enumerate(out_shape):
        if size == 1:
            continue
        full = tuple(p[d] != 1 for p in padded)
        if dims and dims[-1][1] == full:
            dims[-1][0] *= size
        else:
            dims.append([size, full])
    return dims


def broadcast_apply(kernel, out_shape, dtype, *operands, out=None):
    """``kernel(*operands4d, out4d)`` over the broadcast of C-contiguous ``operands``.

    Args:
      kernel: a 4-d broadcasting kernel from ``kernels/cpu/binary.py``.
      out_shape: the broadcast shape (already validated by the caller).
      dtype: the output dtype.
      out: the C-contiguous output to write (a new array when None).
    Returns:
      the output array of shape ``out_shape``.
    """
    if out is None:
        out = np.empty(out_shape, dtype)
    if out.size == 0:
        return out
    dims = _collapse(out_shape, [o.shape for o in operands])
    if len(dims) <= 4:
        dims = [[1, (False,) * len(operands)]] * (4 - len(dims)) + dims
        out4 = tuple(s for s, _ in dims)
        ops = [contig(o).reshape([s if f[i] else 1 for s, f in dims])
               for i, o in enumerate(operands)]
    else:  # a rare >4-d interleaved broadcast: materialise it, then run flat
        out4 = (1, 1, 1, out.size)
        ops = [materialize(o, out_shape).reshape(out4) for o in operands]
    kernel(*ops, out.reshape(out4))
    return out


def materialize(a, shape) -> np.ndarray:
    """``a`` broadcast to ``shape`` as a C-contiguous array (no copy if already that shape)."""
    # Never hand a kernel np.broadcast_to's read-only view: Numba compiles read-only
    # arrays as a separate signature.
    if a.size == math.prod(shape):  # only size-1 dims differ
        return contig(a).reshape(shape)
    return np.array(np.broadcast_to(a, shape), order="C")


def reduce_layout(shape, axes):
    """How to view an array of ``shape`` reduced over ``axes`` as (A, R, C).

    Returns:
      ``(perm, (A, R, C))``: ``perm`` is None when a reshape gives that view, else the
      transpose (kept axes, then reduced axes) that must be applied first (C is then 1).
    """
    groups = []  # [size, reduced]; size-1 dims are dropped, adjacent alike dims merged
    for d, n in enumerate(shape):
        if n == 1:
            continue
        red = d in axes
        if groups and groups[-1][1] == red:
            groups[-1][0] *= n
        else:
            groups.append([n, red])
    flags = tuple(r for _, r in groups)
    sizes = [n for n, _ in groups]
    direct = {(): (1, 1, 1), (True,): (1, *sizes, 1), (False,): (*sizes, 1, 1),
              (False, True): (*sizes, 1), (True, False): (1, *sizes),
              (False, True, False): tuple(sizes)}
    if flags in direct:
        return None, direct[flags]
    kept = [d for d in range(len(shape)) if d not in axes]
    A = math.prod(shape[d] for d in kept)
    R = math.prod(shape[d] for d in axes)
    return tuple(kept) + tuple(axes), (A, R, 1)


def n_chunks(A: int, R: int, C: int) -> int:
    """How many chunks to split R into: from the shape alone (deterministic results)."""
    if A >= _MANY_SLICES or R * C <= _CHUNK_ELEMS:
        return 1
    rows = max(1, _CHUNK_ELEMS // max(C, 1))
    return min(R, -(-R // rows))


def to_layout(x, perm, arc):
    """``x`` transposed by ``perm`` (if any) and viewed as the 3-d (A, R, C) array."""
    xv = x if perm is None else np.transpose(x, perm)
    return contig(xv).reshape(arc)


def from_layout(a, shape, perm):
    """Inverse of :func:`to_layout`: an (A, R, C) array back to ``shape``."""
    if perm is None:
        return a.reshape(shape)
    moved = a.reshape([shape[p] for p in perm])
    return contig(np.transpose(moved, np.argsort(perm)))


sum_to_shape_p = Primitive("sum_to_shape")


@sum_to_shape_p.def_abstract
def _sum_to_shape_abstract(g, *, shape):
    return aval(shape, g.dtype)


@sum_to_shape_p.def_impl
def _sum_to_shape_impl(g, *, out, shape):
    perm, (A, R, C) = reduce_layout(g.shape, _broadcast_axes(g.shape, shape))
    KR.sum_fwd(to_layout(g, perm, (A, R, C)), n_chunks(A, R, C), 1.0, out[0].reshape(A, C))


@sum_to_shape_p.def_vjp
def _sum_to_shape_vjp(cts, g, *, results, needs, shape):
    from ._shape import broadcast_to
    return (broadcast_to(cts[0], g.shape),)


def sum_to_shape(g, shape):
    """Sum ``g`` over the axes along which an array of ``shape`` was broadcast to it (the
    VJP of every broadcasting op); ``g`` itself when nothing was broadcast."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    return bind(sum_to_shape_p, g, shape=shape)


def _broadcast_axes(full, shape):
    """The axes of ``full`` along which an array of ``shape`` was broadcast to it."""
    lead = len(full) - len(shape)
    return tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and full[lead + i] != 1)


def sum_product_to_shape(g, x, shape):
    """``sum_to_shape(g * x, shape)`` for same-shape ``g`` and ``x``, in one pass."""
    perm, (A, R, C) = reduce_layout(g.shape, _broadcast_axes(g.shape, tuple(shape)))
    out = np.empty((A, C), g.dtype)
    KR.sum_prod_fwd(to_layout(g, perm, (A, R, C)), to_layout(x, perm, (A, R, C)),
                    n_chunks(A, R, C), out)
    return out.reshape(shape)
