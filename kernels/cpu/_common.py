"""Shared jit options for CPU kernels."""
import numba

# fastmath is off: lucid promises timm's numerics, and reassociation changes reductions.
jit = numba.njit(cache=True, nogil=True)
pjit = numba.njit(cache=True, nogil=True, parallel=True)
