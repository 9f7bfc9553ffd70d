"""Indexing and windowed copies on the CUDA backend (raw numba.cuda arrays), through one
index map (``kernels/cuda/gather.py``): every output element's flat source position is an
affine function of its coordinates plus, for advanced indexing, the index arrays' values.

:func:`getitem` / :func:`getitem_bwd` are the impls of ``lucid.numpy``'s ``getitem_p`` /
``getitem_bwd_p``; the window helpers serve concatenate, split, pad and their backwards.
Index arrays on the device cannot be bounds-checked without reading them on the host,
so their values are taken as NumPy does (negative from the end) and then clamped into
the axis, as JAX's gathers do; concrete (host) index arrays are checked by
``lucid.numpy.getitem`` before they are uploaded, as on the CPU.
"""
from __future__ import annotations

import math

import numpy as np

from ._cuda_ops import empty
from ._device import DeviceArray
from .kernels.cuda import gather as KG
from .kernels.cuda import indexing as KI
from .kernels.cuda import memory as KM


def _c_strides(shape):
    strides, acc = [], 1
    for n in reversed(tuple(shape)):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def _merged(dims):
    """(len, stride, bstride) dims with size-1 dims dropped and adjacent dims that walk
    memory (and the index block) contiguously merged into one."""
    out = []
    for n, s, b in dims:
        if n == 1:
            continue
        if out and out[-1][1] == n * s and out[-1][2] == n * b:
            out[-1] = (out[-1][0] * n, s, b)
        else:
            out.append((n, s, b))
    return out


def _pad(values, n, what):
    if len(values) > n:
        raise NotImplementedError(f"lucid (cuda): {what}: the device index map handles "
                                  f"{n}, got {len(values)}")
    return (0,) * (n - len(values)) + tuple(int(v) for v in values)


def _positions(base, dims, idx=None, arrays=()):
    """Flat int64 source positions of an index map: ``dims`` (len, stride, bstride) in
    output order, ``arrays`` (axis size, axis stride) per row of ``idx``."""
    dims = _merged(dims)
    n = math.prod(d[0] for d in dims)
    pos = empty((n,), np.int64)
    if n == 0:
        return pos
    what = "an index whose output dims do not merge into few enough"
    shape = _pad([d[0] for d in dims], KG.MAX_DIMS, what)
    shape = tuple(max(s, 1) for s in shape)
    strides = _pad([d[1] for d in dims], KG.MAX_DIMS, what)
    bstrides = _pad([d[2] for d in dims], KG.MAX_DIMS, what)
    sizes = tuple(a[0] for a in arrays) + (0,) * (KG.MAX_ARRAYS - len(arrays))
    astrides = tuple(a[1] for a in arrays) + (0,) * (KG.MAX_ARRAYS - len(arrays))
    if idx is None:
        idx = empty((1, 1), np.int64)   # never read: no index arrays
    KG.positions(int(base), shape, strides, bstrides, idx, len(arrays), sizes, astrides, pos)
    return pos


def _block(full, starts, lens):
    """The index map of the block at ``starts`` with sizes ``lens`` in a C-contiguous
    array of shape ``full`` (step 1 along every axis)."""
    strides = _c_strides(full)
    base = sum(a * s for a, s in zip(starts, strides))
    return base, [(n, s, 0) for n, s in zip(lens, strides)]


def _flat(a):
    return a.reshape(a.size)


def take_block(src, out, starts):
    """out = src[starts[k] : starts[k] + out.shape[k], ...] (the crop of pad's backward)."""
    if out.size:
        KG.take(_flat(src), _positions(*_block(src.shape, starts, out.shape)), _flat(out))


def put_block(src, out, starts, accumulate=False):
    """out[starts[k] : starts[k] + src.shape[k], ...] = src (``+=`` when accumulating)."""
    if src.size == 0:
        return
    pos = _positions(*_block(out.shape, starts, src.shape))
    (KI.scatter_add if accumulate else KG.put)(_flat(src), pos, _flat(out))


def _axis_starts(ndim, axis, start):
    return tuple(start if d == axis else 0 for d in range(ndim))


def take_window(src, out, axis, start, n):
    """out = src[..., start : start + n, ...] along ``axis`` (n == out.shape[axis])."""
    take_block(src, out, _axis_starts(len(src.shape), axis, start))


def put_window(src, out, axis, start, n, accumulate=False):
    """out[..., start : start + n, ...] = src along ``axis`` (or ``+=``)."""
    put_block(src, out, _axis_starts(len(out.shape), axis, start), accumulate)


# ----------------------------------------------------------------------------- getitem

def _is_int(p):
    return isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_))


def _is_array(p):
    return isinstance(p, tuple) and p[0] == "array"


def _walk(shape, parts, fancy):
    """The basic output dims (len, stride), the advanced axes (array k, size, stride),
    the base offset and where the index arrays' block goes -- NumPy's placement rule,
    as ``lucid.numpy._indexing._index_shape`` applies it."""
    strides = _c_strides(shape)
    used = sum(p is not None and p is not Ellipsis for p in parts)
    basic, adv, base, dim, first, state = [], [], 0, 0, None, "before"
    for p in list(parts) + [Ellipsis] * (Ellipsis not in parts):
        if fancy and (_is_int(p) or _is_array(p)):
            first = len(basic) if first is None else first
            state = {"before": "in", "after": "split"}.get(state, state)
        elif state == "in":
            state = "after"
        if p is Ellipsis:
            n = len(shape) - used
            basic += [(shape[d], strides[d]) for d in range(dim, dim + n)]
            dim += n
        elif p is None:
            basic.append((1, 0))
        elif _is_int(p):
            base += (int(p) % shape[dim]) * strides[dim]
            dim += 1
        elif _is_array(p):
            adv.append((p[1], shape[dim], strides[dim]))
            dim += 1
        else:   # ("slice", start, stop, step)
            start, stop, step = slice(*p[1:]).indices(shape[dim])
            basic.append((len(range(start, stop, step)), step * strides[dim]))
            base += start * strides[dim]
            dim += 1
    return basic, adv, base, (0 if state == "split" else first)


def _index_block(arrays, bshape):
    """The index arrays broadcast to ``bshape`` as the rows of one int64 device array."""
    if len(arrays) > KG.MAX_ARRAYS:
        raise NotImplementedError(f"lucid (cuda): getitem with {len(arrays)} index arrays; "
                                  f"the device index map handles {KG.MAX_ARRAYS}")
    n = math.prod(bshape)
    if n and len(bshape) > KM.MAX_NDIM:
        raise NotImplementedError(f"lucid (cuda): getitem with index arrays broadcast to "
                                  f"{len(bshape)} dims; the device handles {KM.MAX_NDIM}")
    idx = empty((len(arrays), max(n, 1)), np.int64)
    for k, a in enumerate(arrays):
        if not isinstance(a, DeviceArray):
            raise TypeError(f"lucid (cuda): getitem on a device array needs its index arrays "
                            f"on the device too, got {type(a).__name__}")
        if a.dtype.kind not in "iu":
            raise NotImplementedError(f"lucid (cuda): getitem with a {a.dtype} index array "
                                      "on the device (boolean masks are converted to integer "
                                      "indices on the host, see lucid.numpy.getitem)")
        if n:
            KM.broadcast(a.raw, 1.0, idx[k].reshape(bshape or (1,)))
    return idx


def _index_positions(shape, index, arrays):
    """The flat positions in an array of ``shape`` that ``x[index]`` reads, in order."""
    fancy = bool(arrays)
    bshape = tuple(np.broadcast_shapes(*(a.shape for a in arrays))) if fancy else ()
    basic, adv, base, at = _walk(tuple(shape), index, fancy)
    dims = [(n, s, 0) for n, s in basic]
    if fancy:
        block = [(n, 0, b) for n, b in zip(bshape, _c_strides(bshape))]
        dims = dims[:at] + block + dims[at:]
        idx = _index_block([arrays[k] for k, _, _ in adv], bshape)
        return _positions(base, dims, idx, [(size, stride) for _, size, stride in adv])
    return _positions(base, dims)


def getitem(x, *arrays, out, index):
    """x[index] into out (basic and advanced indexing, NumPy's rules)."""
    o = out[0]
    if o.size:
        KG.take(_flat(x.raw), _index_positions(x.shape, index, arrays), _flat(o.raw))


def getitem_bwd(g, *arrays, out, shape, index):
    """The cotangent written back into zeros, summed where index arrays repeat positions
    (one thread in index order: deterministic, as the CPU's scatter-add)."""
    o = out[0]
    if o.size:
        KM.fill(o.raw, 0)
    if g.size:
        pos = _index_positions(shape, index, arrays)
        (KI.scatter_add if arrays else KG.put)(_flat(g.raw), pos, _flat(o.raw))
