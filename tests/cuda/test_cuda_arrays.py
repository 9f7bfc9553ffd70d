"""Device bodies of lucid.numpy's array primitives (``lucid._cuda_arrays``) against NumPy:
broadcasting binary ops and where, unary ops, reductions, unbroadcasting sums, spreads."""
import numpy as np
import pytest
from numba import cuda

from lucid import _cuda_arrays as A

from _twin import assert_close, assert_equal

SHAPES = [((2, 3, 4), (3, 1)), ((4, 1, 5), (1, 6, 1)), ((2, 3), ()), ((2, 1, 3, 1, 2, 1), (1, 2, 1, 3, 1, 2))]


def _d(a):
    return cuda.to_device(np.ascontiguousarray(a))


@pytest.mark.parametrize("xs, ys", SHAPES)
def test_binary_broadcasting(xs, ys):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(xs), rng.random(ys) + 0.5
    out_shape = np.broadcast_shapes(xs, ys)
    for name in A.BINARY:
        a = np.abs(x) if name == "power" else x
        want = getattr(np, name)(a, y)
        got = A.binary(name, _d(a), _d(y), out_shape, np.float64).copy_to_host()
        assert_close(got, want, rtol=1e-12, err_msg=name)
    c = rng.random(out_shape) > 0.5
    got = A.where(_d(c), _d(x), _d(y), out_shape, np.float64).copy_to_host()
    assert_equal(got, np.where(c, x, y))
    g = rng.standard_normal(out_shape)
    for shape, v in ((xs, x), (ys, y)):
        assert_close(A.sum_to_shape(_d(g), shape).copy_to_host(),
                                   np.sum(g, axis=tuple(range(len(out_shape) - len(shape))))
                                   .sum(axis=tuple(i for i, n in enumerate(shape) if n == 1),
                                        keepdims=True).reshape(shape), rtol=1e-12)
        assert_close(A.sum_product_to_shape(_d(g), _d(g * 2), shape).copy_to_host(),
                                   A.sum_to_shape(_d(2 * g * g), shape).copy_to_host(), rtol=1e-12)


def test_unary_and_backward():
    x = np.random.default_rng(1).random((3, 5)) + 0.1
    for name in A.UNARY:
        want = {"negative": -x, "exp": np.exp(x), "log": np.log(x), "sqrt": np.sqrt(x),
                "tanh": np.tanh(x), "abs": np.abs(x), "square": x * x}.get(name)
        got = A.unary(name, _d(x)).copy_to_host()
        if want is not None:
            assert_close(got, want, rtol=1e-12, err_msg=name)
    g = np.ones_like(x)
    assert_close(A.unary("log", _d(g), True, _d(x)).copy_to_host(), 1 / x)


@pytest.mark.parametrize("axes", [(0,), (1,), (2,), (0, 2), (0, 1, 2)])
def test_reductions_and_spread(axes):
    x = np.random.default_rng(2).standard_normal((3, 4, 5))
    assert_close(A.reduce_sum(_d(x), axes, 0.5).copy_to_host(),
                               0.5 * x.sum(axis=axes), rtol=1e-12)
    assert_equal(A.reduce_max(_d(x), axes).copy_to_host(), x.max(axis=axes))
    g = np.random.default_rng(3).standard_normal(np.sum(x, axis=axes).shape)
    want = np.broadcast_to(np.expand_dims(g, axes), x.shape) * 0.25
    assert_close(A.spread(_d(g), x.shape, axes, 0.25).copy_to_host(), want)
