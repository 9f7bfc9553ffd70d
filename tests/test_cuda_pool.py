"""The CUDA backend's caching allocator bookkeeping (``lucid.kernels.cuda._pool``, pure
Python: runs without numba-cuda or a GPU) against a fake driver that records calls."""
import pytest

from lucid.kernels.cuda._pool import SizeClassPool, size_class


class FakeDriver:
    def __init__(self):
        self.live, self.calls, self.next = {}, [], 1

    def alloc(self, n):
        handle, self.next = self.next, self.next + 1
        self.live[handle] = n
        self.calls.append(("alloc", n))
        return handle

    def free(self, handle):
        assert handle in self.live, "double free or unknown handle"
        del self.live[handle]
        self.calls.append(("free", handle))


@pytest.mark.parametrize("n, want", [(0, 0), (1, 512), (512, 512), (513, 1024),
                                     (1 << 20, 1 << 20), ((1 << 20) + 1, 5 << 18),
                                     (3_000_000, 3_145_728), (1 << 30, 1 << 30)])
def test_size_class_rounds_up_with_bounded_slack(n, want):
    assert size_class(n) == want
    assert want >= n and (n <= 1 << 20 or want - n <= n // 4)


def test_size_class_refuses_a_negative_size():
    with pytest.raises(ValueError, match="negative size: -1"):
        size_class(-1)


def test_freed_blocks_are_reused_by_the_same_size_class():
    drv = FakeDriver()
    pool = SizeClassPool(drv.alloc, drv.free)
    a, sa = pool.take(1000)
    b, sb = pool.take(3000)
    pool.give(a, sa)
    c, sc = pool.take(900)          # same class as 1000 (1024): a's block, no driver call
    assert (c, sc) == (a, 1024) and drv.calls == [("alloc", 1024), ("alloc", 3072)]
    d, _ = pool.take(1000)          # a is in use again: a new block
    assert d not in (a, b) and pool.hits == 1 and pool.misses == 3
    assert pool.in_use_bytes == 1024 + 3072 + 1024 and pool.cached_bytes == 0


def test_release_frees_every_cached_block_once_and_limit_bounds_the_cache():
    drv = FakeDriver()
    pool = SizeClassPool(drv.alloc, drv.free, limit=2048)
    blocks = [pool.take(1024) for _ in range(3)]
    for h, s in blocks:
        pool.give(h, s)
    assert pool.cached_bytes == 2048 and len(drv.live) == 2   # the third went to the driver
    assert pool.release() == 2048 and drv.live == {} and pool.cached_bytes == 0
    assert pool.release() == 0


def test_numba_memory_manager_plugin_returns_blocks_to_the_pool(monkeypatch):
    """The EMM plugin glue (``allocator.CachingMemoryManager``) with the driver calls
    replaced by the fake: a device pointer whose last owner is gone goes back to the
    pool, and the next allocation of its class reuses it without a driver call."""
    pytest.importorskip("numba_cuda")
    import gc
    from lucid.kernels.cuda import allocator
    drv = FakeDriver()
    d = allocator._driver.driver
    # into the instance dict: reading the lazy driver's attributes would load libcuda
    for name, fn in (("cuMemAlloc", drv.alloc), ("cuMemFree", drv.free),
                     ("cuMemGetInfo", lambda: (1 << 30, 1 << 30))):
        monkeypatch.setitem(vars(d), name, fn)

    class Context:   # what the manager needs of a CUDA context: a weak-referenceable owner
        pass

    ctx = Context()
    mm = allocator.CachingMemoryManager(context=ctx)
    mm.initialize()
    owned = mm.memalloc(1000)
    first = owned.device_pointer
    assert mm.pool.in_use_bytes == 1024
    del owned
    gc.collect()
    assert mm.pool.cached_bytes == 1024 and mm.pool.in_use_bytes == 0
    again = mm.memalloc(700)
    assert again.device_pointer == first and drv.calls == [("alloc", 1024)]
    del again
    gc.collect()
    mm.reset()
    assert drv.live == {}
