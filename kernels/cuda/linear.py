"""Bias kernels for ``linear`` (the CUDA twin of ``kernels/cpu/linear.py``; the GEMMs
are in ``gemm.py``)."""
from numba import cuda, float64

from ._common import RB, block_sum, launch, launch_reduce


@cuda.jit
def _bias_add_fwd(y, b, out):
    cols = y.shape[1]
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        r = i // cols
        c = i % cols
        out[r, c] = y[r, c] + b[c]


@cuda.jit
def _column_sums(g, out):
    """out[c] = sum over rows of g[r, c]: one block per column, fixed tree (float64)."""
    buf = cuda.shared.array(RB, float64)
    rows, cols = g.shape
    for c in range(cuda.blockIdx.x, cols, cuda.gridDim.x):
        s = 0.0
        for r in range(cuda.threadIdx.x, rows, RB):
            s += g[r, c]
        total = block_sum(s, buf)
        if cuda.threadIdx.x == 0:
            out[c] = total


def bias_add_fwd(y, b, out):
    """out[r, c] = y[r, c] + b[c] for y (M, N); ``out`` may be ``y`` itself."""
    launch(_bias_add_fwd, y.size, y, b, out)


def bias_add_bwd(g, out):
    """out[c] = sum over rows of g[r, c] (float64, deterministic), for g (M, N)."""
    launch_reduce(_column_sums, g.shape[1], g, out)
