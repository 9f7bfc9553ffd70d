"""A fix for a race in numba-cuda's CUDA simulator (0.30), applied only under it.

The simulator identifies a ``cuda.shared.array`` by its call site and creates it on first
use with an unlocked check-then-set (``FakeCUDAShared.array``). A block's threads are
Python threads that all reach that line at the start of a kernel; when the interpreter
switches threads between the check and the set, two threads get different "shared"
arrays and a block reduction silently sums only part of its inputs. It showed up as an
intermittent wrong softmax backward once the tests shortened the GIL switch interval.
This replaces the method with the same logic under a lock.

It also shortens the interpreter's thread switch interval under the simulator: each
``syncthreads`` of a simulated block otherwise waits a 5 ms GIL switch (a tiled GEMM or
a block reduction became ~5x slower; the test suite set it, a ``lucid`` process run on the
simulator did not).
"""
import sys
import threading
import traceback

import numpy as np
from numba.core import types
from numba.np import numpy_support


def install():
    """Patch ``FakeCUDAShared.array`` (idempotent) and shorten the switch interval."""
    sys.setswitchinterval(min(sys.getswitchinterval(), 5e-5))
    from numba.cuda.simulator import kernelapi
    shared = kernelapi.FakeCUDAShared
    if getattr(shared.array, "_lucid_locked", False):
        return
    original = shared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:   # dynamic shared memory: no lookup to race
            return original(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = self._allocations[caller] = np.empty(shape, dtype)
        return res

    array._lucid_locked = True
    shared.array = array
