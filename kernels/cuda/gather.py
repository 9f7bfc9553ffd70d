"""Index arithmetic for indexing and windowed copies on the device (the NumPy slicing and
fancy indexing the CPU backend does with NumPy itself).

An index is described by an affine map plus index arrays: output element ``i``, with
C-order coordinates ``d[k]`` over ``shape`` (at most :data:`MAX_DIMS` dims), reads source
flat position ``base + sum_k d[k] * strides[k] + sum_j wrap(idx[j, b]) * astrides[j]``,
where ``b = sum_k d[k] * bstrides[k]`` is its place in the (broadcast) index arrays and
``wrap`` takes a negative index from the end and clamps to ``[0, sizes[j])`` (JAX's
retrieval rule, so a device index array out of bounds never reads outside the source).
:func:`positions` writes those flat positions; :func:`take` and :func:`put` move the
values (every kernel a grid-stride loop over its items).
"""
from numba import cuda, int64

from ._common import launch

MAX_DIMS = 8      # output dims of one map (after merging dims that merge)
MAX_ARRAYS = 8    # index arrays of one map


@cuda.jit
def _positions(base, shape, strides, bstrides, idx, sizes, astrides, narr, pos):
    d = cuda.local.array(MAX_DIMS, int64)
    for i in range(cuda.grid(1), pos.size, cuda.gridsize(1)):
        t = i
        for k in range(MAX_DIMS - 1, -1, -1):
            d[k] = t % shape[k]
            t //= shape[k]
        off = base
        b = 0
        for k in range(MAX_DIMS):
            off += d[k] * strides[k]
            b += d[k] * bstrides[k]
        for j in range(narr):
            v = idx[j, b]
            n = sizes[j]
            if v < 0:
                v += n
            v = min(max(v, 0), n - 1)
            off += v * astrides[j]
        pos[i] = off


@cuda.jit
def _take(src, pos, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[pos[i]]


@cuda.jit
def _put(src, pos, out):
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        out[pos[i]] = src[i]


def positions(base, shape, strides, bstrides, idx, narr, sizes, astrides, pos):
    """pos[i] = the source flat position of output element i (see the module docstring).

    ``shape``, ``strides``, ``bstrides`` are tuples of :data:`MAX_DIMS` ints (leading
    dims of size 1 pad them); ``idx`` an int64 (narr or 1, block size or 1) device array
    whose first ``narr`` rows are read; ``sizes``, ``astrides`` tuples of
    :data:`MAX_ARRAYS` ints (the indexed axes' sizes and strides); ``pos`` flat int64.
    """
    launch(_positions, pos.size, int(base), shape, strides, bstrides, idx, sizes, astrides,
           narr, pos)


def take(src, pos, out):
    """out[i] = src[pos[i]] (flat arrays)."""
    launch(_take, out.size, src, pos, out)


def put(src, pos, out):
    """out[pos[i]] = src[i] (flat arrays; positions distinct, so no write races)."""
    launch(_put, src.size, src, pos, out)
