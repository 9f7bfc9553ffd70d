"""Reusable output buffers for the big activations of the functional ops.

A fresh array over glibc's mmap threshold (at most 32 MB) is new, unmapped memory every
time: writing it costs page faults (a 77 MB ConvNeXt-T fc1 output at batch 16: 20-35 ms,
more than the GEMM's share of some layers). :func:`empty` hands back a buffer of the
same shape and dtype that an earlier call allocated once nothing else references it any
more (CPython reference count; views hold their base, so a live view keeps its buffer
taken). The pool is bounded, so memory it keeps is at most ``MAX_BYTES``.
"""
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 22     # below 4 MB malloc reuses freed memory by itself
MAX_BYTES = 1 << 30     # the most the pool keeps alive between calls
_pool: dict = {}        # (shape, dtype) -> [arrays]
_pooled_bytes = 0
_lock = threading.Lock()
# References to a free pooled array while :func:`empty` inspects it: the pool's list,
# the loop variable and getrefcount's argument.
_FREE_REFS = 3


def empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array; big ones come from the pool when one is free."""
    global _pooled_bytes
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    nbytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    with _lock:
        bufs = _pool.setdefault((shape, dtype), [])
        for buf in bufs:
            if sys.getrefcount(buf) == _FREE_REFS:
                return buf
        buf = np.empty(shape, dtype)
        if _pooled_bytes + nbytes <= MAX_BYTES:
            bufs.append(buf)
            _pooled_bytes += nbytes
        return buf


def empty_like(a) -> np.ndarray:
    """:func:`empty` with ``a``'s shape and dtype."""
    return empty(a.shape, a.dtype)


def clear() -> None:
    """Drop every pooled buffer (memory is returned once their users let go)."""
    global _pooled_bytes
    with _lock:
        _pool.clear()
        _pooled_bytes = 0
