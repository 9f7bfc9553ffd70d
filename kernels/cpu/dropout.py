"""Dropout kernels: elementwise (flat arrays) and per-sample (drop path) masks.

``keep`` is made by the caller from x's own shape (size, or rows), so every index is in
bounds (issue 10 audit)."""
import numba

from ._common import pjit


@pjit
def dropout_fwd(x, keep, scale, out):
    """out = x * scale where keep (bool, same size) else 0; also the backward (x = g)."""
    for i in numba.prange(x.size):
        out[i] = x[i] * scale if keep[i] else x[i] * 0


@pjit
def drop_path_fwd(x, keep, scale, out):
    """x, out (N, S); keep (N,) bool: row n is x[n] * scale or 0. Also the backward."""
    rows, size = x.shape
    for r in numba.prange(rows):
        s = scale if keep[r] else scale * 0  # x * 0 keeps NaN as NaN, as torch
        for i in range(size):
            out[r, i] = x[r, i] * s
