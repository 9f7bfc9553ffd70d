"""Shared jit options for CPU kernels.

- fastmath is off: lucid promises timm's numerics, and reassociation changes reductions
  (``_math.py`` opts in to ``reassoc`` for a few row sums, deliberately and tested).
- error_model="numpy": float division by zero gives inf/nan as in NumPy instead of
  raising ZeroDivisionError from inside a kernel (and skips the per-division check).
- House rule for ``prange`` bodies: bind one name per line (no tuple unpacking of row
  views); Numba 0.68 was seen to drop a store through such a view.
- Numba's cache is keyed on each kernel's own file: after editing a helper module that
  kernels inline (``_math.py``), clear ``kernels/cpu/__pycache__``.
"""
import numba

jit = numba.njit(cache=True, nogil=True, error_model="numpy")
pjit = numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
