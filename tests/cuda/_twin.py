"""Run a CUDA kernel and its CPU twin (``lucid.kernels.cpu``) on the same inputs and
compare every array argument afterwards (inputs must be untouched, outputs equal)."""
import importlib

import numpy as np
import pytest
from numba import cuda

from _ptx import ENABLED as PTX_ONLY


class Out:
    """An output argument: allocated NaN-filled on both sides (so an element one side
    leaves unwritten shows up), or zero-filled when the kernel accumulates into it."""

    def __init__(self, shape, dtype, zero=False):
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.dtype, self.zero = np.dtype(dtype), zero

    def make(self):
        if self.zero:
            return np.zeros(self.shape, self.dtype)
        if self.dtype.kind == "f":
            return np.full(self.shape, np.nan, self.dtype)
        return np.zeros(self.shape, self.dtype)


def tolerance(dtype):
    """(rtol, atol) between the backends: float64 math on both sides for float64; the CPU's
    float32 polynomials and summation orders against the GPU's for float32."""
    return (1e-9, 1e-12) if np.dtype(dtype) == np.float64 else (2e-5, 2e-6)


def twin(family, name, *args, dtype=np.float32, tol=None):
    """Run ``family.name`` on both backends; assert every array argument matches.

    Returns the CPU-side arguments (host arrays) after the call.
    """
    cpu = getattr(importlib.import_module(f"lucid.kernels.cpu.{family}"), name)
    gpu = getattr(importlib.import_module(f"lucid.kernels.cuda.{family}"), name)
    host = [a.make() if isinstance(a, Out) else (a.copy() if isinstance(a, np.ndarray) else a)
            for a in args]
    dev = [cuda.to_device(a.make()) if isinstance(a, Out) else
           (cuda.to_device(a) if isinstance(a, np.ndarray) else a) for a in args]
    cpu(*host)
    gpu(*dev)
    if PTX_ONLY:   # compiled, not run: nothing to compare
        return host
    rtol, atol = tol if tol is not None else tolerance(dtype)
    for i, (h, d) in enumerate(zip(host, dev)):
        if isinstance(h, np.ndarray):
            got = d.copy_to_host()
            assert got.shape == h.shape and got.dtype == h.dtype, (name, i)
            np.testing.assert_allclose(got, h, rtol=rtol, atol=atol,
                                       err_msg=f"{family}.{name}: argument {i}")
    return host


runs_kernels = pytest.mark.skipif(PTX_ONLY, reason="PTX mode compiles kernels, runs none")


def assert_close(got, want, **kwargs):
    """np.testing.assert_allclose, skipped in PTX mode (kernels were compiled, not run)."""
    if not PTX_ONLY:
        np.testing.assert_allclose(got, want, **kwargs)


def assert_equal(got, want, **kwargs):
    """np.testing.assert_array_equal, skipped in PTX mode."""
    if not PTX_ONLY:
        np.testing.assert_array_equal(got, want, **kwargs)


def rand(rng, shape, dtype, lo=None):
    """Normal values (or uniform in [lo, lo + 2) when ``lo`` is given) of ``dtype``."""
    if lo is not None:
        return (lo + 2 * rng.random(shape)).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)
