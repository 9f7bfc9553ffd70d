"""The output-buffer pool: a buffer is handed out again only when nothing references it."""
import numpy as np
import pytest

import lucid
import lucid.nn.functional as F
from lucid import _buffers as buffers

BIG = (1100, 1000)   # 4.4 MB of float32: over MIN_BYTES


def _addr(a):
    return a.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def fresh_pool():
    buffers.clear()
    yield
    buffers.clear()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_free_buffer_is_reused(dtype):
    a = buffers.empty(BIG, dtype)
    address = _addr(a)
    del a
    b = buffers.empty(BIG, dtype)
    assert _addr(b) == address and b.shape == BIG and b.dtype == dtype


def test_held_buffer_or_view_is_not_reused():
    a = buffers.empty(BIG, np.float32)
    b = buffers.empty(BIG, np.float32)
    assert _addr(a) != _addr(b)
    view = a.reshape(-1)[::2]
    address = _addr(a)
    del a, b
    c = buffers.empty(BIG, np.float32)
    d = buffers.empty(BIG, np.float32)
    assert address not in (_addr(c), _addr(d))
    assert view.base is not None


def test_other_shape_or_dtype_gets_its_own_buffer():
    a = buffers.empty(BIG, np.float32)
    address = _addr(a)
    del a
    assert _addr(buffers.empty(BIG, np.float64)) != address
    assert buffers.empty((BIG[1], BIG[0]), np.float32).shape == (BIG[1], BIG[0])


def test_small_arrays_bypass_the_pool():
    buffers.empty((4, 4), np.float32)
    assert buffers._pool == {}


def test_pool_keeps_at_most_max_bytes(monkeypatch):
    monkeypatch.setattr(buffers, "MAX_BYTES", 2 * 4 * BIG[0] * BIG[1])
    held = [buffers.empty(BIG, np.float32) for _ in range(4)]
    assert len(buffers._pool[(BIG, np.dtype(np.float32))]) == 2
    assert len({_addr(h) for h in held}) == 4


def test_pooled_outputs_are_not_overwritten_by_later_calls():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1100, 64)).astype(np.float32)
    w = rng.standard_normal((1000, 64)).astype(np.float32)
    first = F.linear(x, w)
    want = first.copy()
    second = F.linear(x * 2, w)
    np.testing.assert_array_equal(first, want)
    assert _addr(first) != _addr(second)


def test_training_gradients_unchanged_by_pooling():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1100, 64)).astype(np.float32)
    w = rng.standard_normal((1000, 64)).astype(np.float32)
    b = rng.standard_normal(1000).astype(np.float32)

    def loss(w, b):
        return lucid.numpy.sum(F.bias_gelu(F.linear(x, w), b))

    g1 = lucid.grad(loss, argnums=(0, 1))(w, b)
    g2 = lucid.grad(loss, argnums=(0, 1))(w, b)
    for a, c in zip(g1, g2):
        np.testing.assert_array_equal(a, c)
