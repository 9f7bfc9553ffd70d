"""Shared jit options for CPU kernels.

- fastmath is off: lucid promises timm's numerics, and reassociation changes reductions
  (``_math.py`` opts in to ``reassoc`` for a few row sums, deliberately and tested).
- error_model="numpy": float division by zero gives inf/nan as in NumPy instead of
  raising ZeroDivisionError from inside a kernel (and skips the per-division check).
- House rule for ``prange`` bodies: bind one name per line (no tuple unpacking of row
  views); Numba 0.68 was seen to drop a store through such a view.
- Numba's cache is keyed on each kernel's own file: after editing a helper that kernels
  inline (``_math.py``, :func:`sum_partials` here), clear ``kernels/cpu/__pycache__``.
- ``pjit`` kernels run serially below a grain size (see :class:`GrainDispatcher`).
- Numba's OpenMP workers spin only briefly (``GOMP_SPINCOUNT``) before sleeping: lucid
  alternates Numba's pool with OpenBLAS's (the GEMMs), and on 2 cores a pool spinning
  after its region steals the core the other pool needs — measured: a GEMM followed by a
  0.4 ms parallel kernel took 80 ms (median) with libgomp's default spin, 1-2 ms with a
  short one; a tiny ConvNeXt training step went from ~2 s to 0.03-0.9 s (load 4-6).
  libgomp reads this when Numba first starts its threads, which is after this import;
  an ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` the user set wins.
"""
import os
import types

import numba
import numpy as np

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

_OPTIONS = dict(cache=True, nogil=True, error_model="numpy")
jit = numba.njit(**_OPTIONS)

# Column sums over rows split the rows into this many chunks (not one per thread), each
# summed into its own float64 partial row, then :func:`sum_partials`: the result is
# bitwise the same whatever the thread count, and no two threads write one row.
ROW_CHUNKS = 64


@numba.njit(inline="always")
def sum_partials(partial, out):
    """out[c] = the sum over chunks k of partial[k, c], in chunk order (float64)."""
    for c in range(partial.shape[1]):
        s = 0.0
        for k in range(partial.shape[0]):
            s += partial[k, c]
        out[c] = s


# Parallelise only from this many elements (of the largest array argument) up, as
# PyTorch's grain size: below it, waking the thread pool costs more than the work saves,
# and on a loaded machine a parallel region waits for a descheduled worker (ms per call).
GRAIN = 32768


class GrainDispatcher:
    """A kernel compiled twice, parallel and serial, chosen per call by the work size.

    Both variants are built lazily (a kernel a process never calls at one size is never
    compiled or loaded at that size). The serial twin is a clone of the Python function
    with ``_serial`` appended to its qualified name, because Numba names its on-disk
    cache files after ``__qualname__``: without it the two variants would share (and
    overwrite) one cache entry.
    """

    def __init__(self, py_func, grain: int = GRAIN):
        self.py_func = py_func
        self.grain = grain
        self.__name__ = py_func.__name__
        self.__qualname__ = py_func.__qualname__
        self.__doc__ = py_func.__doc__
        self.__module__ = py_func.__module__
        self._parallel = None
        self._serial = None

    @property
    def parallel(self):
        """The ``njit(parallel=True)`` dispatcher."""
        if self._parallel is None:
            self._parallel = numba.njit(parallel=True, **_OPTIONS)(self.py_func)
        return self._parallel

    @property
    def serial(self):
        """The serial ``njit`` dispatcher (``prange`` runs as ``range``)."""
        if self._serial is None:
            f = self.py_func
            twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial",
                                      f.__defaults__, f.__closure__)
            twin.__qualname__ = f.__qualname__ + "_serial"
            twin.__module__ = f.__module__
            twin.__doc__ = f.__doc__
            self._serial = numba.njit(**_OPTIONS)(twin)
        return self._serial

    def __call__(self, *args):
        work = 0
        for a in args:
            if type(a) is np.ndarray and a.size > work:
                work = a.size
        if work >= self.grain:
            return self.parallel(*args)
        return self.serial(*args)


def pjit(fn=None, *, grain: int = GRAIN):
    """Decorator for a ``prange`` kernel: parallel from ``grain`` elements up, else serial.

    Use as ``@pjit`` or ``@pjit(grain=N)`` (a smaller grain for kernels doing much work
    per element).
    """
    if fn is None:
        return lambda f: GrainDispatcher(f, grain)
    return GrainDispatcher(fn, grain)
