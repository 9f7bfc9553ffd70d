"""CUDA kernels (numba.cuda): the same module and kernel names as ``kernels/cpu``.

Not implemented yet: selecting ``LUCID_BACKEND=cuda`` fails at the first kernel with an
ImportError naming the missing module. The seam is ``lucid/_backend.py``.
"""
