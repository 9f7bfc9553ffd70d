"""The CUDA backend's allocator: Numba's device memory manager with a caching pool
(``_pool.SizeClassPool``), installed as a Numba External Memory Management plugin.

Numba's default manager calls ``cuMemAlloc`` for every array and queues ``cuMemFree``;
eager execution allocates every primitive's outputs, so the pool keeps freed blocks and
hands them out again (PyTorch's caching allocator and JAX's BFC allocator do the same).
``install()`` must run before the first CUDA context is created; it leaves a manager
chosen through ``NUMBA_CUDA_MEMORY_MANAGER`` alone. Not used by the simulator (which has
no device memory).
"""
from __future__ import annotations

import weakref

from numba.cuda.cudadrv import driver as _driver

from ._pool import SizeClassPool


class CachingMemoryManager(_driver.NumbaCUDAMemoryManager):
    """Device allocations served from a size-class pool; freed blocks are kept for reuse
    and released to the driver when an allocation runs out of memory or on ``reset``."""

    def initialize(self):
        super().initialize()
        self.pool = SizeClassPool(self._driver_alloc, _driver.driver.cuMemFree)

    def _driver_alloc(self, size):
        def allocate():
            return _driver.driver.cuMemAlloc(size)
        try:
            return self._attempt_allocation(allocate)
        except _driver.CudaAPIError:
            if not self.pool.release():   # out of memory with blocks cached: free them, retry
                raise
            return self._attempt_allocation(allocate)

    def memalloc(self, size):
        handle, rounded = self.pool.take(size)
        mem = _driver.AutoFreePointer(weakref.proxy(self.context), handle, size,
                                      finalizer=self._return_to_pool(handle, rounded))
        self.allocations[handle] = mem   # keeps the pointer alive while arrays use it
        return mem.own()

    def _return_to_pool(self, handle, rounded):
        allocations, pool = self.allocations, self.pool

        def finalize():
            allocations.pop(handle, None)
            pool.give(handle, rounded)
        return finalize

    def reset(self):
        super().reset()
        self.pool.release()


def install() -> bool:
    """Make :class:`CachingMemoryManager` Numba's device memory manager (True when done;
    False when the user chose a manager through ``NUMBA_CUDA_MEMORY_MANAGER``)."""
    from numba.cuda.core import config
    if config.CUDA_MEMORY_MANAGER not in ("default", None):
        return False
    from numba import cuda
    cuda.set_memory_manager(CachingMemoryManager)
    return True
