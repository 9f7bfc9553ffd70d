"""A caching pool of device allocations by size class (pure Python: the bookkeeping of
the CUDA backend's allocator, ``allocator.py``, kept apart so it is testable anywhere).

Freed blocks are kept and handed out again for requests of the same size class, so a
training loop that allocates the same shapes every step stops calling the driver after
its first step (``cuMemAlloc``/``cuMemFree`` synchronise the device and cost tens of
microseconds each). Reuse is safe on one stream: a block is handed out again only after
its last user was queued, and the new user's kernels are queued after it.

Size classes: requests are rounded up to a multiple of 512 bytes below 1 MiB and, above,
to a multiple of a quarter of the largest power of two not above the request (at most
25% slack), so nearby sizes share blocks without unbounded waste.
"""
from __future__ import annotations

import threading

SMALL = 1 << 20
GRANULE = 512


def size_class(nbytes: int) -> int:
    """The rounded size a request of ``nbytes`` is served with (0 stays 0)."""
    if nbytes < 0:
        raise ValueError(f"device allocation of a negative size: {nbytes}")
    if nbytes <= SMALL:
        return -(-nbytes // GRANULE) * GRANULE
    step = (1 << (int(nbytes).bit_length() - 1)) >> 2
    return -(-nbytes // step) * step


class SizeClassPool:
    """Blocks kept by size class. ``alloc(n) -> handle`` and ``free(handle)`` are the
    driver calls; ``limit`` bounds the bytes kept unused (beyond it, freed blocks go back
    to the driver)."""

    def __init__(self, alloc, free, limit: int | None = None):
        self._alloc, self._free, self.limit = alloc, free, limit
        self._blocks: dict = {}
        self._lock = threading.Lock()
        self.cached_bytes = self.in_use_bytes = 0
        self.hits = self.misses = 0

    def take(self, nbytes: int):
        """A block of at least ``nbytes``: ``(handle, size_class)``."""
        size = size_class(nbytes)
        with self._lock:
            free = self._blocks.get(size)
            if free:
                self.hits += 1
                self.cached_bytes -= size
                self.in_use_bytes += size
                return free.pop(), size
            self.misses += 1
        handle = self._alloc(size)
        with self._lock:
            self.in_use_bytes += size
        return handle, size

    def give(self, handle, size: int) -> None:
        """Return a block (its last user is gone) for reuse, or to the driver when the pool
        already keeps ``limit`` bytes."""
        with self._lock:
            self.in_use_bytes -= size
            keep = self.limit is None or self.cached_bytes + size <= self.limit
            if keep:
                self._blocks.setdefault(size, []).append(handle)
                self.cached_bytes += size
        if not keep:
            self._free(handle)

    def release(self) -> int:
        """Free every cached block (e.g. before retrying an allocation that ran out of
        memory); returns the bytes released."""
        with self._lock:
            blocks, self._blocks = self._blocks, {}
            released, self.cached_bytes = self.cached_bytes, 0
        for handles in blocks.values():
            for handle in handles:
                self._free(handle)
        return released
