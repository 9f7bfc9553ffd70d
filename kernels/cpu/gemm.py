"""The CPU backend's GEMM, the twin of ``kernels/cuda/gemm.py``: NumPy's BLAS into ``out``.

out = op(a) @ op(b), op transposing the last two axes when its flag is set; 2-d or 3-d
(batched, broadcasting a batch of 1) operands.
"""
import numpy as np


def backend_name():
    """What :func:`matmul` uses: NumPy's BLAS."""
    return "numpy"


def matmul(a, b, out, trans_a=False, trans_b=False):
    """out = op(a) @ op(b) (NumPy's ``matmul`` with ``out=``; the transposes are views)."""
    np.matmul(a.swapaxes(-1, -2) if trans_a else a, b.swapaxes(-1, -2) if trans_b else b, out=out)
