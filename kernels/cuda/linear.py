"""Bias kernels for ``linear`` (the CUDA twin of ``kernels/cpu/linear.py``; the GEMMs
are in ``gemm.py``)."""
from numba import cuda, float64

from ._common import CW, RL, column_groups, column_sum, launch, launch_columns


@cuda.jit
def _bias_add_fwd(y, b, out):
    cols = y.shape[1]
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        r = i // cols
        c = i % cols
        out[r, c] = y[r, c] + b[c]


@cuda.jit
def _column_sums(g, out):
    """out[c] = sum over rows of g[r, c]: one block per CW columns, fixed tree (float64)."""
    buf = cuda.shared.array((RL, CW), float64)
    rows, cols = g.shape
    for grp in range(cuda.blockIdx.x, (cols + CW - 1) // CW, cuda.gridDim.x):
        c = grp * CW + cuda.threadIdx.x
        s = 0.0
        if c < cols:
            for r in range(cuda.threadIdx.y, rows, RL):
                s += g[r, c]
        total = column_sum(s, buf)
        if cuda.threadIdx.y == 0 and c < cols:
            out[c] = total


def column_sums(g, out):
    """out[c] = sum over rows of g[r, c] for g (M, C) (float64, deterministic)."""
    launch_columns(_column_sums, column_groups(g.shape[1]), g, out)


def bias_add_fwd(y, b, out):
    """out[r, c] = y[r, c] + b[c] for y (M, N); ``out`` may be ``y`` itself."""
    launch(_bias_add_fwd, y.size, y, b, out)


def bias_add_bwd(g, out):
    """out[c] = sum over rows of g[r, c] (float64, deterministic), for g (M, N)."""
    column_sums(g, out)
