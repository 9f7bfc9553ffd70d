"""CUDA impls of lucid.numpy's primitives (elementwise, reductions, shapes, indexing, matmul).

Registered by :func:`lucid._cuda_impls.install` (through ``Primitive.def_impl(fn,
backend="cuda")``); see that module for the conventions (DeviceArray in, preallocated
DeviceArray ``out``, no host round trip). Each impl mirrors its CPU twin in
``lucid/numpy/_*.py``: the same shape logic (``_broadcast.py``'s collapse to 4-d operands
and (A, R, C) reduction views), with NumPy's data movement done by device kernels that
write into ``out`` directly. Python/NumPy scalars and 0-d host arrays (weak scalars that
``convert`` made) go wherever the arrays are: they become 0-d device arrays filled from
the host value, never a read of device data. Windowed copies (concatenate, split, pad and
their backwards) and indexing go through one index map (``kernels/cuda/gather.py``, see
:mod:`lucid._cuda_indexing`).
"""
from __future__ import annotations

import importlib
import math

import numpy as np

from . import _cuda_indexing as IX
from ._cuda_arrays import _four_d, _layout
from ._cuda_ops import empty
from ._device import DeviceArray
from .kernels.cuda import binary as KB
from .kernels.cuda import compare as KC
from .kernels.cuda import gemm as KG
from .kernels.cuda import memory as KM
from .kernels.cuda import reduce as KR
from .numpy._broadcast import _collapse, reduce_layout

_KERNELS = "lucid.kernels.cuda."


def _flatv(a):
    """A C-contiguous raw array as 1-d."""
    return a.reshape(a.size)


def _scalar(v, dtype=None):
    """A host scalar (Python/NumPy scalar or 0-d array) as a 0-d device array of ``dtype``
    (its own when None), filled from the host value (a kernel argument, no transfer)."""
    host = np.asarray(v)
    if host.ndim:
        raise ValueError(f"lucid (cuda): a host array {host.shape} {host.dtype} met device "
                         "arrays; move it with lucid.device_put first")
    s = empty((), dtype or host.dtype)
    KM.fill(s.reshape(1), host.astype(s.dtype).item())
    return s


def _raw(v, dtype=None):
    """The raw device array of an operand (a DeviceArray, or a host scalar)."""
    return v.raw if isinstance(v, DeviceArray) else _scalar(v, dtype)


def broadcast_into(src, out):
    """out = src broadcast to out's shape (NumPy rules; dims merged first, so any rank
    whose broadcast pattern collapses to <= 6 dims), cast to out's dtype."""
    if out.size == 0:
        return
    dims = _collapse(tuple(out.shape), [tuple(src.shape)]) or [[1, (True,)]]
    if len(dims) > KM.MAX_NDIM:
        raise NotImplementedError(f"lucid (cuda): broadcasting {tuple(src.shape)} to "
                                  f"{tuple(out.shape)} needs {len(dims)} dims; the device "
                                  f"copy handles {KM.MAX_NDIM}")
    KM.broadcast(src.reshape(tuple(n if f[0] else 1 for n, f in dims)), 1.0,
                 out.reshape(tuple(n for n, _ in dims)))


def broadcast(src, shape, dtype=None):
    """src broadcast to ``shape`` (and cast to ``dtype``), C-contiguous: a view when only
    size-1 dims differ and the dtype is kept, else a new array."""
    shape, dtype = tuple(shape), np.dtype(dtype or src.dtype)
    if src.size == math.prod(shape) and np.dtype(src.dtype) == dtype:
        return src.reshape(shape)
    out = empty(shape, dtype)
    broadcast_into(src, out)
    return out


def device_full(device, shape, value, dtype):
    """A new DeviceArray of ``shape`` and ``dtype`` on ``device`` filled with ``value``
    (lucid.numpy's ``*_like`` of a device array)."""
    from ._device import _cuda
    dtype = np.dtype(dtype)
    with _cuda().gpus[device.id]:
        a = empty(tuple(shape), dtype)
        if a.size:
            KM.fill(a, np.asarray(value).astype(dtype).item())
    return DeviceArray(a, device)


def device_copy(x, dtype):
    """A new DeviceArray: ``x`` cast to ``dtype`` on its device (``array``/``asarray``)."""
    from ._device import _cuda
    with _cuda().gpus[x.device.id]:
        a = empty(x.shape, dtype)
        if a.size:
            KM.cast(x.raw, a)
    return DeviceArray(a, x.device)


# ----------------------------------------------------------------------------- elementwise

def _flat(family, kernel):
    """The impl of a ``flat_primitive``: the flat kernel of ``kernels/cuda/<family>`` over
    the inputs broadcast to the output shape, writing the outputs in place."""
    def impl(*xs, out):
        shape = tuple(out[0].shape)
        fn = getattr(importlib.import_module(_KERNELS + family), kernel)
        fn(*(_flatv(broadcast(_raw(x), shape)) for x in xs), *(_flatv(o.raw) for o in out))
    impl.__name__ = f"{kernel}_cuda"
    return impl


def _apply4(kernel, operands, out):
    """``kernel(*operands4d, out4d)`` over the broadcast of ``operands`` to out's shape (the
    CPU's ``broadcast_apply``; a > 4-d interleaved broadcast is materialised, then flat)."""
    if out.size == 0:
        return
    shape = tuple(out.shape)
    four = _four_d(shape, operands)
    if four is None:
        out4 = (1, 1, 1, out.size)
        ops = [broadcast(o, shape).reshape(out4) for o in operands]
    else:
        out4, ops = four
    kernel(*ops, out.reshape(out4))


def _broadcasting(name):
    """The impl of ``broadcast_primitive(name)``: ``binary.<name>_fwd`` (where's condition
    keeps its own dtype; the values are in the output's)."""
    kernel = getattr(KB, f"{name}_fwd")

    def impl(*xs, out, shape):
        o = out[0]
        ops = [_raw(x, None if (name == "where" and i == 0) else o.dtype)
               for i, x in enumerate(xs)]
        _apply4(kernel, ops, o.raw)
    impl.__name__ = f"{name}_cuda"
    return impl


def _compare(x, y, *, out, ufunc):
    _apply4(lambda a, b, o: KC.compare(ufunc, a, b, o), [_raw(x), _raw(y)], out[0].raw)


def _add_int(x, *, out, value):
    KC.add_int(_flatv(x.raw), int(value), _flatv(out[0].raw))


def _astype(x, *, out, dtype):
    if x.size:
        KM.cast(x.raw, out[0].raw)


# ----------------------------------------------------------------------------- shapes

def _reshape(x, *, shape):
    if not x.is_c_contiguous():
        raise ValueError(f"lucid (cuda): reshape is a view of a C-contiguous array (every "
                         f"primitive writes one); this {x.shape} array is strided")
    return DeviceArray(x.raw.reshape(tuple(shape)), x.device)   # (a tuple: 0-d too)


def _broadcast_to(x, *, out, shape):
    broadcast_into(x.raw, out[0].raw)


def _concatenate(*arrays, out, axis):
    o = out[0]
    start = 0
    for a in arrays:
        n = a.shape[axis]
        IX.put_window(a.raw, o.raw, axis, start, n)
        start += n


def _split(x, *, out, bounds, axis):
    from .numpy._shape import _split_slices
    for piece, o in zip(_split_slices(x.shape[axis], bounds), out):
        start, stop, _ = piece.indices(x.shape[axis])
        IX.take_window(x.raw, o.raw, axis, start, max(stop - start, 0))


def _split_bwd(*gs, out, shape, dtype, bounds, axis):
    from .numpy._shape import _split_slices
    o = out[0]
    overlap = any(b < a for a, b in zip(bounds[:-1], bounds[1:]))
    if overlap or any(g is None for g in gs):
        KM.fill(o.raw, 0)
    for piece, g in zip(_split_slices(shape[axis], bounds), gs):
        if g is not None:
            start, stop, _ = piece.indices(shape[axis])
            IX.put_window(g.raw, o.raw, axis, start, max(stop - start, 0), accumulate=overlap)


def _pad(x, *, out, widths, value):
    o = out[0]
    if o.size:
        KM.fill(o.raw, value)
    IX.put_block(x.raw, o.raw, tuple(a for a, _ in widths))


def _crop(g, *, out, shape, widths):
    IX.take_block(g.raw, out[0].raw, tuple(a for a, _ in widths))


# ----------------------------------------------------------------------------- reductions

def _scale(R, mean):
    return (1.0 / R if R else math.nan) if mean else 1.0


def _sum(x, *, out, axes, keepdims, mean):
    xv, _, (A, R, C) = _layout(x.raw, tuple(axes))
    KR.sum_fwd(xv, 1, _scale(R, mean), out[0].raw.reshape(A, C))


def _max(x, *, out, axes, keepdims):
    xv, _, (A, R, C) = _layout(x.raw, tuple(axes))
    KR.max_fwd(xv, 1, out[0].raw.reshape(A, C))


def _from_layout_into(out, a, perm):
    """Write the (A, R, 1) array ``a`` of transposed layout ``perm`` back into ``out``."""
    moved = a.reshape(tuple(out.shape[p] for p in perm))
    KM.permute_copy(moved, tuple(int(p) for p in np.argsort(perm)), out)


def _sum_bwd(g, *, out, shape, axes, mean):
    perm, (A, R, C) = reduce_layout(tuple(shape), tuple(axes))
    o = out[0].raw
    gx = o.reshape(A, R, C) if perm is None else empty((A, R, C), o.dtype)
    KR.sum_bwd(g.raw.reshape(A, C), _scale(R, mean), gx)
    if perm is not None:
        _from_layout_into(o, gx, perm)


def _max_bwd(g, x, y, *, out, axes):
    xv, perm, (A, R, C) = _layout(x.raw, tuple(axes))
    o = out[0].raw
    gx = o.reshape(A, R, C) if perm is None else empty((A, R, C), o.dtype)
    KR.max_bwd(xv, y.raw.reshape(A, C), g.raw.reshape(A, C), gx)
    if perm is not None:
        _from_layout_into(o, gx, perm)


# ----------------------------------------------------------------------------- matmul

def _batched(x, batch):
    """x (..., r, c) as a 3-d (nb or 1, r, c) array over the broadcast ``batch`` dims (a
    view unless x's own batch dims must be broadcast)."""
    s = tuple(x.shape)
    own, (r, c) = s[:-2], s[-2:]
    if math.prod(own) == 1:
        return x.reshape(1, r, c)
    nb = math.prod(batch)
    if (1,) * (len(batch) - len(own)) + own == tuple(batch):
        return x.reshape(nb, r, c)
    return broadcast(x, tuple(batch) + (r, c)).reshape(nb, r, c)


def _matmul(a, b, *, out, shape):
    batch, (M, N) = tuple(shape[:-2]), tuple(shape[-2:])
    KG.matmul(_batched(a.raw, batch), _batched(b.raw, batch),
              out[0].raw.reshape(math.prod(batch), M, N))


def _matmul_bwd_a(g, b, *, out):
    s = tuple(g.shape)
    batch, (M, N) = s[:-2], s[-2:]
    K = b.shape[-2]
    KG.matmul(g.raw.reshape(math.prod(batch), M, N), _batched(b.raw, batch),
              out[0].raw.reshape(math.prod(batch), M, K), trans_b=True)


def _matmul_bwd_b(g, a, *, out, b_shape):
    K, N = b_shape[-2:]
    s = tuple(g.shape)
    if len(b_shape) == 2:   # a shared weight: one GEMM over all batch rows
        rows = math.prod(s[:-1])
        KG.matmul(a.raw.reshape(rows, K), g.raw.reshape(rows, N), out[0].raw, trans_a=True)
        return
    batch, M = s[:-2], s[-2]
    nb = math.prod(batch)
    KG.matmul(_batched(a.raw, batch), g.raw.reshape(nb, M, N), out[0].raw.reshape(nb, K, N),
              trans_a=True)


# ----------------------------------------------------------------------------- table

def _stop_gradient(x):
    return x


def _flat_table():
    """Every flat primitive (lucid.numpy's unary ops and backward kernels, and the nn
    activations built the same way) with the generic impl, unless one is registered."""
    from .numpy._unary import FLAT_PRIMITIVES
    table = []
    for prim, (family, kernel) in FLAT_PRIMITIVES:
        module = importlib.import_module(_KERNELS + family)
        if "cuda" not in prim.impls and hasattr(module, kernel):
            table.append((prim, _flat(family, kernel)))
    return table


def install() -> None:
    """Register this family's CUDA impls with the core."""
    from ._autodiff import stop_gradient_p
    from .numpy import _binary as B, _core as C, _indexing as I, _linalg as L
    from .numpy import _reduce as R, _shape as S
    table = [(B.subtract_p, _broadcasting("subtract")), (B.divide_p, _broadcasting("divide")),
             (B.power_p, _broadcasting("power")), (B.maximum_p, _broadcasting("maximum")),
             (B.minimum_p, _broadcasting("minimum")), (B.where_p, _broadcasting("where")),
             (B.compare_p, _compare), (B.add_int_p, _add_int), (C.astype_p, _astype),
             (S.reshape_p, _reshape), (S.broadcast_to_p, _broadcast_to),
             (S.concatenate_p, _concatenate), (S.split_p, _split), (S.split_bwd_p, _split_bwd),
             (S.pad_p, _pad), (S.crop_p, _crop), (R.sum_p, _sum), (R.max_p, _max),
             (R.sum_bwd_p, _sum_bwd), (R.max_bwd_p, _max_bwd),
             (I.getitem_p, IX.getitem), (I.getitem_bwd_p, IX.getitem_bwd),
             (L.matmul_p, _matmul), (L.matmul_bwd_a_p, _matmul_bwd_a),
             (L.matmul_bwd_b_p, _matmul_bwd_b), (stop_gradient_p, _stop_gradient)]
    for prim, impl in table + _flat_table():
        prim.def_impl(impl, backend="cuda")
