"""Dropout kernels (the CUDA twin of ``kernels/cpu/dropout.py``)."""
from numba import cuda

from ._common import flat, launch


@cuda.jit
def _dropout_fwd(x, keep, scale, out):
    """out = x * scale where keep (bool, same size) else 0; also the backward (x = g)."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = x[i] * scale if keep[i] else x[i] * 0


@cuda.jit
def _drop_path_fwd(x, keep, scale, out):
    size = x.shape[1]
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        r = i // size
        s = i % size
        out[r, s] = x[r, s] * (scale if keep[r] else scale * 0)  # x * 0 keeps NaN


dropout_fwd = flat(_dropout_fwd)


def drop_path_fwd(x, keep, scale, out):
    """x, out (N, S); keep (N,) bool: row n is x[n] * scale or 0. Also the backward."""
    launch(_drop_path_fwd, x.size, x, keep, scale, out)
