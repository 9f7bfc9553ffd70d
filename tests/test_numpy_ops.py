"""lucid.numpy: every op against a NumPy oracle (both dtypes), every VJP against finite
differences (float64, tests/gradcheck.py), float32 VJPs against float64 ones, kernels
called directly, and one test per bad-input rule."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import lucid
import lucid.numpy as lnp
from gradcheck import check_vjp

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def rand(shape, dtype=np.float64, low=-1.0, high=1.0, seed=0):
    return np.asarray(np.random.default_rng(seed).uniform(low, high, shape), dtype)


def assert_matches(ours, ref, dtype):
    assert isinstance(ours, np.ndarray) and ours.dtype == dtype, (type(ours), ours.dtype)
    assert ours.shape == np.shape(ref)
    np.testing.assert_allclose(ours, ref, **tol(dtype))


def vjp_grads(f, args, dtype, seed=1):
    """Gradients of <f(*args), c> for a fixed random cotangent c, computed in ``dtype``."""
    args = [a.astype(dtype) for a in args]
    out, vjp_fn = lucid.vjp(f, *args)
    ct = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    return vjp_fn(ct)


def assert_f32_grads_match_f64(f, args):
    g32, g64 = vjp_grads(f, args, np.float32), vjp_grads(f, args, np.float64)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- unary
UNARY = {  # name: (numpy oracle, input range)
    "negative": (np.negative, (-2, 2)), "exp": (np.exp, (-2, 2)), "log": (np.log, (0.2, 3)),
    "sqrt": (np.sqrt, (0.2, 3)), "tanh": (np.tanh, (-2, 2)),
    "erf": (np.vectorize(math.erf, otypes=[np.float64]), (-3, 3)),
    "abs": (np.abs, (-2, 2)), "square": (np.square, (-2, 2)),
}
SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4), (0, 3)]


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_forward(name, shape, dtype):
    oracle, (lo, hi) = UNARY[name]
    x = rand(shape, dtype, lo, hi)
    ref = oracle(x.astype(np.float64))
    t = tol(dtype) if name != "erf" else dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 \
        else dict(rtol=1e-13, atol=1e-15)
    ours = getattr(lnp, name)(x)
    assert ours.dtype == dtype and ours.shape == shape
    np.testing.assert_allclose(ours, ref, **t)


@pytest.mark.parametrize("name", UNARY)
def test_unary_vjp(name):
    _, (lo, hi) = UNARY[name]
    x = rand((3, 4), np.float64, lo, hi)
    if name == "abs":
        x = np.where(np.abs(x) < 0.1, 0.5, x)  # away from the kink
    check_vjp(getattr(lnp, name), [x])
    assert_f32_grads_match_f64(getattr(lnp, name), [x])


def test_erf_float64_accuracy():
    x = np.linspace(-6, 6, 1001)
    ref = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(lnp.erf(x) - ref)) <= 1e-15


def test_unary_special_values():
    x = np.array([0.0, -1.0, 4.0])
    np.testing.assert_array_equal(lnp.log(x), [-np.inf, np.nan, np.log(4.0)])
    np.testing.assert_array_equal(lnp.sqrt(x), [0.0, np.nan, 2.0])
    g = lucid.grad(lambda v: lnp.sum(lnp.abs(v)))(np.array([-2.0, 0.0, -0.0, 3.0, np.nan]))
    # current JAX (lax._abs_jvp_rule): select(x >= 0, g, -g): +1 at 0 and -0, -1 at NaN
    np.testing.assert_array_equal(g, [-1.0, 1.0, 1.0, 1.0, -1.0])
    g = lucid.grad(lambda v: lnp.sum(lnp.log(v)))(np.array([0.0, 2.0]))  # no ZeroDivisionError
    np.testing.assert_array_equal(g, [np.inf, 0.5])


def test_unary_converts_ints_and_scalars_to_float32():
    assert lnp.exp(np.arange(3)).dtype == np.float32
    assert lnp.exp(1.0).dtype == np.float32 and lnp.exp(1.0).shape == ()
    assert lnp.exp([1.0, 2.0]).dtype == np.float32


# ---------------------------------------------------------------- binary
BINARY = {  # name: (numpy oracle, x range, y range)
    "add": (np.add, (-2, 2), (-2, 2)), "subtract": (np.subtract, (-2, 2), (-2, 2)),
    "multiply": (np.multiply, (-2, 2), (-2, 2)), "divide": (np.divide, (-2, 2), (0.5, 2)),
    "power": (np.power, (0.5, 2), (-2, 2)), "maximum": (np.maximum, (-2, 2), (-2, 2)),
    "minimum": (np.minimum, (-2, 2), (-2, 2)),
}
BROADCASTS = [((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (3, 4)), ((2, 3, 4), (3, 1)),
              ((4, 1), (1, 5)), ((), (2, 3)), ((5,), ()), ((2, 1, 3, 1, 2), (1, 4, 1, 5, 1)),
              ((0, 3), (3,)), ((2, 1, 4), (2, 3, 1)), ((20000,), (20000,))]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_forward(name, shapes, dtype):
    oracle, xr, yr = BINARY[name]
    x, y = rand(shapes[0], dtype, *xr, seed=1), rand(shapes[1], dtype, *yr, seed=2)
    assert_matches(getattr(lnp, name)(x, y), oracle(x, y), dtype)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (3, 1)), ((4, 1), (1, 5)),
                                    ((), (2, 3)), ((2, 1, 3, 1, 2), (1, 4, 1, 5, 1))], ids=str)
def test_binary_vjp(name, shapes):
    _, xr, yr = BINARY[name]
    x, y = rand(shapes[0], np.float64, *xr, seed=1), rand(shapes[1], np.float64, *yr, seed=2)
    check_vjp(getattr(lnp, name), [x, y])


@pytest.mark.parametrize("name", BINARY)
def test_binary_float32_vjp_matches_float64(name):
    _, xr, yr = BINARY[name]
    assert_f32_grads_match_f64(getattr(lnp, name),
                               [rand((3, 4), np.float64, *xr, seed=1),
                                rand((4,), np.float64, *yr, seed=2)])


@settings(max_examples=25, deadline=None, database=None)
@given(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       st.sampled_from(["add", "multiply"]))
def test_binary_random_broadcasts(shapes, name):
    (sx, sy), _ = shapes
    x, y = rand(sx, np.float64, seed=3), rand(sy, np.float64, seed=4)
    np.testing.assert_allclose(getattr(lnp, name)(x, y), getattr(np, name)(x, y), rtol=1e-15)
    check_vjp(getattr(lnp, name), [x, y])


def test_maximum_minimum_ties_split_evenly():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0])
    gx, gy = lucid.grad(lambda a, b: lnp.sum(lnp.maximum(a, b)), (0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gy, [0.5, 0.0, 1.0])
    gx, gy = lucid.grad(lambda a, b: lnp.sum(lnp.minimum(a, b)), (0, 1))(x, y)
    np.testing.assert_array_equal(gx, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(gy, [0.5, 1.0, 0.0])


def test_binary_ieee_edge_cases():
    x = np.array([1.0, -1.0, 0.0, np.nan])
    np.testing.assert_array_equal(lnp.divide(x, 0.0), [np.inf, -np.inf, np.nan, np.nan])
    np.testing.assert_array_equal(lnp.power(np.array([0.0, -0.0]), -1.0), [np.inf, -np.inf])
    np.testing.assert_array_equal(lnp.maximum(x, 0.5), np.maximum(x, 0.5))
    np.testing.assert_array_equal(lnp.minimum(0.5, x), np.minimum(0.5, x))
    g = lucid.grad(lambda b: lnp.sum(lnp.power(np.array([0.0, 2.0]), b)))(np.array([2.0, 3.0]))
    np.testing.assert_allclose(g, [0.0, 8 * np.log(2.0)])  # d/dy at x == 0 is 0 (JAX)
    # d/dx = y * x**(y-1) with no special case (JAX's float-exponent rule): 0 * inf = nan
    # at x == y == 0, y * x**(y-1) elsewhere, including y == 0 at x != 0 (0)
    g = lucid.grad(lambda a: lnp.sum(lnp.power(a, np.array([0.0, 0.0, 2.0, 0.5]))))(
        np.array([0.0, 3.0, 0.0, 0.0]))
    np.testing.assert_array_equal(g, [np.nan, 0.0, 0.0, np.inf])


def test_weak_typing_and_promotion():
    x32, x64 = rand((2, 3), np.float32), rand((2, 3), np.float64)
    assert lnp.add(x32, 2.0).dtype == np.float32
    assert lnp.multiply(3, x32).dtype == np.float32
    assert lnp.add(x32, [1.0, 2.0, 3.0]).dtype == np.float32
    assert lnp.add(x32, np.arange(3)).dtype == np.float32
    assert lnp.add(x32, x64).dtype == np.float64
    assert lnp.add(np.arange(3), 1).dtype == np.float32
    np.testing.assert_allclose(lnp.subtract(2.0, x32), 2.0 - x32, rtol=1e-7)


def test_mixed_dtype_gradient_keeps_input_dtype():
    x32, x64 = rand((2, 3), np.float32), rand((3,), np.float64, seed=5)
    gx, gy = lucid.grad(lambda a, b: lnp.sum(lnp.multiply(a, b)), (0, 1))(x32, x64)
    assert gx.dtype == np.float32 and gy.dtype == np.float64
    np.testing.assert_allclose(gx, np.broadcast_to(x64, (2, 3)), rtol=1e-6)
    np.testing.assert_allclose(gy, x32.astype(np.float64).sum(0), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_where(dtype):
    c = np.array([[True], [False]])
    x, y = rand((2, 3), dtype), rand((3,), dtype, seed=2)
    assert_matches(lnp.where(c, x, y), np.where(c, x, y), dtype)
    assert_matches(lnp.where(c, x, 0.0), np.where(c, x, 0.0).astype(dtype), dtype)
    assert_matches(lnp.where(np.array([1, 0, 2]), x, y), np.where([1, 0, 2], x, y), dtype)
    check_vjp(lambda a, b: lnp.where(c, a, b), [x.astype(np.float64), y.astype(np.float64)])


def test_clip_and_comparisons():
    x = np.array([-2.0, 0.5, 3.0])
    np.testing.assert_array_equal(lnp.clip(x, -1.0, 1.0), np.clip(x, -1.0, 1.0))
    check_vjp(lambda a: lnp.clip(a, -1.0, 1.0), [x])
    for name in ["less", "less_equal", "greater", "greater_equal", "equal", "not_equal"]:
        out = getattr(lnp, name)(x, 0.5)
        assert out.dtype == bool
        np.testing.assert_array_equal(out, getattr(np, name)(x, 0.5))


# ---------------------------------------------------------------- reductions
AXES = [None, 0, -1, (0, 2), (1,), (), (0, 1, 2), (2, 0)]


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var"])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_reduction_forward(name, axis, keepdims, dtype):
    x = rand((2, 3, 4), dtype)
    ours = getattr(lnp, name)(x, axis=axis, keepdims=keepdims)
    assert_matches(ours, getattr(np, name)(x, axis=axis, keepdims=keepdims), dtype)


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@pytest.mark.parametrize("shape,axis", [((70001,), None), ((3, 40000), 1), ((40000, 3), 0),
                                        ((5, 9000, 4), 1), ((20, 3000), None)], ids=str)
def test_reduction_large_chunked(name, shape, axis):
    x = rand(shape, np.float64)
    np.testing.assert_allclose(getattr(lnp, name)(x, axis=axis),
                               getattr(np, name)(x, axis=axis), rtol=1e-11)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var"])
@pytest.mark.parametrize("axis,keepdims", [(None, False), (1, True), ((0, 2), False),
                                           (-1, False), ((2, 0), True)], ids=str)
def test_reduction_vjp(name, axis, keepdims):
    x = rand((2, 3, 4), np.float64)
    check_vjp(lambda a: getattr(lnp, name)(a, axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("name", ["sum", "mean", "max", "var"])
def test_reduction_float32_vjp_matches_float64(name):
    assert_f32_grads_match_f64(lambda a: getattr(lnp, name)(a, axis=(0, 2)),
                               [rand((2, 3, 4), np.float64)])


def test_max_gradient_ties_split_evenly_and_nan_propagates():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]])
    g = lucid.grad(lambda a: lnp.sum(lnp.max(a, axis=1)))(x)
    np.testing.assert_array_equal(g, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    g = lucid.grad(lambda a: lnp.max(a))(np.array([2.0, 2.0, 2.0, 1.0]))
    np.testing.assert_allclose(g, [1 / 3, 1 / 3, 1 / 3, 0.0])
    assert np.isnan(lnp.max(np.array([1.0, np.nan, 3.0])))
    assert np.isnan(lnp.max(np.array([np.nan, 1.0]), axis=0))


def test_reductions_of_empty_and_scalar():
    assert lnp.sum(np.zeros((0, 3)), axis=0).shape == (3,)
    np.testing.assert_array_equal(lnp.sum(np.zeros((0, 3)), axis=0), 0.0)
    assert lnp.sum(np.float64(2.5)) == 2.5 and lnp.sum(np.float64(2.5)).shape == ()
    np.testing.assert_array_equal(lnp.var(np.array([1.0, 3.0]), ddof=1), 2.0)


# ---------------------------------------------------------------- shapes
SHAPE_OPS = [  # (lucid call, numpy call, input shape)
    (lambda a: lnp.reshape(a, (4, -1)), lambda a: a.reshape(4, -1), (2, 3, 4)),
    (lambda a: lnp.ravel(a), np.ravel, (2, 3, 4)),
    (lambda a: lnp.transpose(a), np.transpose, (2, 3, 4)),
    (lambda a: lnp.transpose(a, (1, -1, 0)), lambda a: np.transpose(a, (1, 2, 0)), (2, 3, 4)),
    (lambda a: lnp.moveaxis(a, 0, -1), lambda a: np.moveaxis(a, 0, -1), (2, 3, 4)),
    (lambda a: lnp.swapaxes(a, 0, 2), lambda a: np.swapaxes(a, 0, 2), (2, 3, 4)),
    (lambda a: lnp.broadcast_to(a, (2, 3, 4)), lambda a: np.broadcast_to(a, (2, 3, 4)), (3, 1)),
    (lambda a: lnp.expand_dims(a, (0, -1)), lambda a: np.expand_dims(a, (0, -1)), (2, 3)),
    (lambda a: lnp.squeeze(a), np.squeeze, (1, 3, 1)),
    (lambda a: lnp.squeeze(a, -1), lambda a: np.squeeze(a, -1), (1, 3, 1)),
    (lambda a: lnp.pad(a, ((1, 0), (2, 3))), lambda a: np.pad(a, ((1, 0), (2, 3))), (2, 3)),
    (lambda a: lnp.pad(a, 1, constant_values=-1.0),
     lambda a: np.pad(a, 1, constant_values=-1.0), (2, 3)),
    (lambda a: lnp.split(a, 2, axis=1)[1], lambda a: np.split(a, 2, axis=1)[1], (2, 4)),
    (lambda a: lnp.split(a, [1, -1, 10])[2], lambda a: np.split(a, [1, -1, 10])[2], (5, 2)),
    (lambda a: lnp.take(a, np.array([2, 0, 2]), axis=1),
     lambda a: np.take(a, [2, 0, 2], axis=1), (2, 3)),
    (lambda a: lnp.take(a, [[0, 5]]), lambda a: np.take(a, [[0, 5]]), (2, 3)),
]


@pytest.mark.parametrize("i", range(len(SHAPE_OPS)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_op_forward(i, dtype):
    ours, ref, shape = SHAPE_OPS[i]
    x = rand(shape, dtype)
    assert_matches(ours(x), ref(x), dtype)


@pytest.mark.parametrize("i", range(len(SHAPE_OPS)))
def test_shape_op_vjp(i):
    check_vjp(SHAPE_OPS[i][0], [rand(SHAPE_OPS[i][2], np.float64)])


@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_concatenate_and_stack(axis):
    a, b = rand((2, 3), seed=1), rand((2, 3), seed=2)
    np.testing.assert_array_equal(lnp.concatenate([a, b], axis=axis), np.concatenate([a, b], axis))
    check_vjp(lambda p, q: lnp.concatenate((p, q, p), axis=axis), [a, b])
    if axis is not None:
        np.testing.assert_array_equal(lnp.stack([a, b], axis=axis), np.stack([a, b], axis))
        check_vjp(lambda p, q: lnp.stack([p, q], axis=axis), [a, b])


def test_split_returns_list_and_unused_pieces_get_zero_gradient():
    x = rand((6, 2))
    parts = lnp.split(x, 3)
    assert isinstance(parts, list) and len(parts) == 3
    g = lucid.grad(lambda a: lnp.sum(lnp.split(a, 3)[1]))(x)
    np.testing.assert_array_equal(g, np.r_[np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2))])
    g = lucid.grad(lambda a: lnp.sum(lnp.split(a, 1)[0]))(x)  # a one-piece split
    np.testing.assert_array_equal(g, np.ones((6, 2)))


# ---------------------------------------------------------------- indexing
INDICES = [
    (1,), (slice(None), 0), (Ellipsis, 1), (slice(None, None, -1),), (None, slice(1, 3)),
    (slice(0, 3, 2), Ellipsis, None), (-1, -2, 0), (np.array([0, 2, 0, 0]),),
    ([1, 1], slice(None), [0, 3]), (slice(None), np.array([[0, 1], [1, 1]])),
    (np.array([True, False, True]),), (Ellipsis, [3, 3, 0]),
]


@pytest.mark.parametrize("index", INDICES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_getitem_forward(index, dtype):
    x = rand((3, 2, 4), dtype)
    assert_matches(lnp.getitem(x, index), np.asarray(x[index]), dtype)


@pytest.mark.parametrize("index", INDICES, ids=str)
def test_getitem_vjp(index):
    check_vjp(lambda a: lnp.getitem(a, index), [rand((3, 2, 4))])


def test_getitem_repeated_indices_accumulate_like_add_at():
    x = rand((4, 3))
    idx = np.array([0, 2, 0, 0, 3])
    g = lucid.grad(lambda a: lnp.sum(lnp.square(a[idx])))(x)
    ref = np.zeros_like(x)
    np.add.at(ref, idx, 2 * x[idx])
    np.testing.assert_allclose(g, ref, rtol=1e-14)


# ---------------------------------------------------------------- matmul / dot
MATMULS = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4, 5), (2, 5, 3)), ((4,), (4, 5)),
           ((3, 4), (4,)), ((4,), (4,)), ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (2, 4, 2))]


@pytest.mark.parametrize("shapes", MATMULS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_forward(shapes, dtype):
    a, b = rand(shapes[0], dtype, seed=1), rand(shapes[1], dtype, seed=2)
    out = lnp.matmul(a, b)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, np.matmul(a, b), rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("shapes", MATMULS, ids=str)
def test_matmul_vjp(shapes):
    check_vjp(lnp.matmul, [rand(shapes[0], seed=1), rand(shapes[1], seed=2)])


@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((2, 3, 4), (5, 4, 2)), ((4,), (3, 4, 2)),
                                    ((), (3, 2)), ((3, 4), (4,))], ids=str)
def test_dot(shapes):
    a, b = rand(shapes[0], seed=1), rand(shapes[1], seed=2)
    np.testing.assert_allclose(lnp.dot(a, b), np.dot(a, b), rtol=1e-12)
    check_vjp(lnp.dot, [a, b])


def test_matmul_float32_vjp_and_constant_operand():
    assert_f32_grads_match_f64(lnp.matmul, [rand((2, 3, 4), seed=1), rand((4, 5), seed=2)])
    w = rand((4, 5), seed=2)
    g = lucid.grad(lambda a: lnp.sum(lnp.matmul(a, w)))(rand((3, 4)))
    np.testing.assert_allclose(g, np.broadcast_to(w.sum(1), (3, 4)), rtol=1e-12)


# ---------------------------------------------------------------- kernels, directly
@pytest.mark.parametrize("arc", [(1, 1, 1), (5, 7, 1), (1, 7, 5), (3, 4, 2), (2, 0, 3),
                                 (1, 50000, 1), (1, 20000, 3)], ids=str)
@pytest.mark.parametrize("nchunk", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_reduce_kernels(arc, nchunk, dtype):
    from lucid.kernels.cpu import reduce as K
    x = rand(arc, dtype)
    out = np.empty((arc[0], arc[2]), dtype)
    K.sum_fwd(x, nchunk, 0.5, out)
    np.testing.assert_allclose(out, 0.5 * x.astype(np.float64).sum(1), rtol=1e-6, atol=1e-6)
    y = rand(arc, dtype, seed=4)
    K.sum_prod_fwd(x, y, nchunk, out)
    np.testing.assert_allclose(out, (x.astype(np.float64) * y).sum(1), rtol=1e-6, atol=1e-6)
    if arc[1]:
        K.max_fwd(x, nchunk, out)
        np.testing.assert_array_equal(out, x.max(1))
        g, gx = rand(out.shape, dtype, seed=3), np.empty_like(x)
        K.max_bwd(x, out, g, gx)
        np.testing.assert_array_equal(gx, np.where(x == x.max(1, keepdims=True), g[:, None], 0))
        K.sum_bwd(g, 2.0, gx)
        np.testing.assert_allclose(gx, np.broadcast_to(2 * g[:, None], x.shape), rtol=1e-7)


@pytest.mark.parametrize("shapes", [((1, 1, 1, 9), (1, 1, 1, 9)), ((1, 2, 3, 4), (1, 1, 1, 4)),
                                    ((1, 2, 3, 1), (1, 2, 1, 5)), ((1, 1, 1, 1), (2, 1, 3, 20000)),
                                    ((3, 1, 2, 1), (1, 2, 1, 2))], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_kernels_4d_broadcast(shapes, dtype):
    from lucid.kernels.cpu import binary as K
    x, y = rand(shapes[0], dtype, seed=1), rand(shapes[1], dtype, 0.5, 2, seed=2)
    for name, ref in [("add", np.add), ("subtract", np.subtract), ("multiply", np.multiply),
                      ("divide", np.divide), ("maximum", np.maximum), ("minimum", np.minimum)]:
        out = np.empty(np.broadcast_shapes(x.shape, y.shape), dtype)
        getattr(K, name + "_fwd")(x, y, out)
        np.testing.assert_array_equal(out, ref(x, y), err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_add_kernel(dtype):
    from lucid.kernels.cpu import indexing as K
    g, pos = rand((7,), dtype), np.array([0, 3, 3, 1, 0, 0, 4])
    out = np.zeros(5, dtype)
    K.scatter_add(g, pos, out)
    ref = np.zeros(5, dtype)
    np.add.at(ref, pos, g)
    np.testing.assert_allclose(out, ref, rtol=1e-6)


# ---------------------------------------------------------------- creation
def test_creation_helpers():
    assert lnp.asarray(1.5).dtype == np.float32 and lnp.asarray([1.0, 2.0]).dtype == np.float32
    x64 = np.ones(2)
    assert lnp.asarray(x64) is x64 and lnp.asarray(x64, lnp.float32).dtype == np.float32
    assert lnp.asarray([1, 2]).dtype.kind == "i"
    assert lnp.array(x64) is not x64
    assert lnp.zeros((2, 3)).dtype == np.float32 and lnp.ones(4, lnp.float64).dtype == np.float64
    np.testing.assert_array_equal(lnp.full((2,), 7.0), [7.0, 7.0])
    assert lnp.zeros_like(np.arange(3)).dtype.kind == "i"
    assert lnp.ones_like(np.ones((2, 2), np.float32)).dtype == np.float32
    np.testing.assert_array_equal(lnp.arange(4), [0, 1, 2, 3])
    assert lnp.arange(0.0, 1.0, 0.25).dtype == np.float32
    assert lnp.eye(3).dtype == np.float32
    assert lnp.float32 is np.float32 and lnp.float64 is np.float64


def test_astype_is_differentiable():
    x = rand((3,), np.float32)
    assert lnp.astype(x, np.float64).dtype == np.float64
    g = lucid.grad(lambda a: lnp.sum(lnp.square(lnp.astype(a, np.float64))))(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2 * x, rtol=1e-6)
    check_vjp(lambda a: lnp.astype(lnp.astype(a, np.float32), np.float64), [rand((3,))],
              eps=1e-2, rtol=1e-5)  # float32 rounding needs a coarse step; the map is linear


# ---------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("bad", [np.ones(3, np.float16), np.ones(3, np.complex64), "abc", None,
                                 np.array(["a"])], ids=str)
def test_unsupported_dtypes_raise_type_error(bad):
    with pytest.raises(TypeError, match="lucid.numpy.exp"):
        lnp.exp(bad)
    with pytest.raises(TypeError, match="lucid.numpy.add"):
        lnp.add(np.ones(3), bad)


BAD_CALLS = [  # (call, exception, message)
    (lambda: lnp.add(np.ones((2, 3)), np.ones(4)), ValueError, "add: operands could not be"),
    (lambda: lnp.where(np.ones(2, bool), np.ones(3), 0.0), ValueError, "where: operands"),
    (lambda: lnp.where(np.array(["x"]), 1.0, 0.0), TypeError, "where: cond"),
    (lambda: lnp.clip(np.ones(2)), ValueError, "clip"),
    (lambda: lnp.sum(np.ones((2, 3)), axis=2), ValueError, "sum: axis 2 is out of bounds"),
    (lambda: lnp.mean(np.ones((2, 3)), axis=(0, -2)), ValueError, "mean: repeated axis"),
    (lambda: lnp.sum(np.ones(2), axis=0.5), TypeError, "sum: axis must be an int"),
    (lambda: lnp.sum(np.ones(2), keepdims=1), TypeError, "sum: keepdims"),
    (lambda: lnp.max(np.ones((0, 2)), axis=0), ValueError, "max: cannot reduce a zero-size"),
    (lambda: lnp.var(np.ones(2), ddof=-1), ValueError, "var: ddof"),
    (lambda: lnp.reshape(np.ones(6), (4, -1)), ValueError, "reshape: cannot reshape"),
    (lambda: lnp.reshape(np.ones(6), (-1, -1)), ValueError, "reshape: invalid shape"),
    (lambda: lnp.reshape(np.ones(6), (2.0, 3)), TypeError, "reshape: shape must be"),
    (lambda: lnp.transpose(np.ones((2, 3)), (0, 0)), ValueError, "transpose: axes"),
    (lambda: lnp.transpose(np.ones((2, 3)), (0, 2)), ValueError, "transpose: axis 2"),
    (lambda: lnp.broadcast_to(np.ones(3), (2, 4)), ValueError, "broadcast_to"),
    (lambda: lnp.broadcast_to(np.ones((2, 3)), (3,)), ValueError, "broadcast_to: cannot"),
    (lambda: lnp.squeeze(np.ones((2, 1)), 0), ValueError, "squeeze: cannot squeeze axis 0"),
    (lambda: lnp.expand_dims(np.ones(2), 3), ValueError, "expand_dims: axis 3"),
    (lambda: lnp.concatenate([np.ones((2, 3)), np.ones((2, 4))]), ValueError, "concatenate"),
    (lambda: lnp.concatenate([np.ones(2), np.ones((2, 1))]), ValueError, "concatenate"),
    (lambda: lnp.concatenate(np.ones((2, 2))), TypeError, "concatenate: expected a list"),
    (lambda: lnp.concatenate([]), ValueError, "concatenate: need at least one"),
    (lambda: lnp.stack([np.ones(2), np.ones(3)]), ValueError, "stack: all arrays"),
    (lambda: lnp.split(np.ones(5), 2), ValueError, "split: cannot split an axis of length 5"),
    (lambda: lnp.split(np.ones(5), 1.5), TypeError, "split: indices_or_sections"),
    (lambda: lnp.pad(np.ones(2), -1), ValueError, "pad: pad_width"),
    (lambda: lnp.pad(np.ones(2), 1, mode="reflect"), ValueError, "pad: only mode"),
    (lambda: lnp.pad(np.ones((2, 2)), ((1, 1), (1, 1), (1, 1))), ValueError, "pad: pad_width"),
    (lambda: lnp.getitem(np.ones(3), 3), IndexError, "getitem: index 3 is out of bounds"),
    (lambda: lnp.getitem(np.ones(3), np.array([0, -4])), IndexError, "getitem"),
    (lambda: lnp.getitem(np.ones(3), 1.0), TypeError, "getitem: unsupported index"),
    (lambda: lnp.getitem(np.ones(3), np.array([0.5])), TypeError, "getitem: index arrays"),
    (lambda: lnp.getitem(np.ones(3), slice(0, 1.5)), TypeError, "getitem: slice bounds"),
    (lambda: lnp.take(np.ones(3), [0.5]), TypeError, "take: indices must be integers"),
    (lambda: lnp.matmul(np.ones((2, 3)), np.ones((4, 2))), ValueError, "matmul: contracted"),
    (lambda: lnp.matmul(np.ones((2, 2, 3)), np.ones((3, 3, 2))), ValueError, "matmul: operands"),
    (lambda: lnp.matmul(np.ones(3), 2.0), ValueError, "matmul: operands must be at least 1-d"),
    (lambda: lnp.dot(np.ones((2, 3)), np.ones((2, 2, 2))), ValueError, "dot: shapes"),
    (lambda: lnp.astype(np.ones(2), np.int32), TypeError, "astype: only float32"),
    (lambda: lnp.zeros((2, -1)), ValueError, "zeros: shape must be non-negative"),
    (lambda: lnp.arange(0, 3, 0), ValueError, "arange: step"),
]


@pytest.mark.parametrize("i", range(len(BAD_CALLS)))
def test_bad_input(i):
    call, exc, msg = BAD_CALLS[i]
    with pytest.raises(exc, match="lucid.numpy." + msg):
        call()


def test_traced_index_and_condition_are_rejected():
    def f(a):
        return lnp.sum(a[a])
    with pytest.raises(TypeError, match="getitem: indices must be concrete"):
        lucid.grad(f)(np.ones(3))
    with pytest.raises(TypeError, match="where: cond must be a bool array"):
        lucid.grad(lambda a: lnp.sum(lnp.where(a, a, 0.0)))(np.ones(3))


TRACED_BAD_CALLS = [  # (call on a traced (2, 3) array t, exception, message)
    (lambda t: lnp.add(t, np.ones(4)), ValueError, "add: operands could not be"),
    (lambda t: lnp.sum(t, axis=2), ValueError, "sum: axis 2 is out of bounds"),
    (lambda t: lnp.reshape(t, (4, -1)), ValueError, "reshape: cannot reshape"),
    (lambda t: lnp.transpose(t, (0, 0)), ValueError, "transpose: axes"),
    (lambda t: lnp.squeeze(t, 0), ValueError, "squeeze: cannot squeeze axis 0"),
    (lambda t: lnp.concatenate([t, np.ones((3, 4))]), ValueError, "concatenate"),
    (lambda t: lnp.split(t, 2, axis=1), ValueError, "split: cannot split an axis of length 3"),
    (lambda t: t[2], IndexError, "getitem: index 2 is out of bounds"),
    (lambda t: t @ np.ones((4, 2)), ValueError, "matmul: contracted"),
    (lambda t: lnp.broadcast_to(t, (3, 3)), ValueError, "broadcast_to"),
    (lambda t: lnp.exp(lnp.astype(t, np.float16)), TypeError, "astype: only float32"),
]


@pytest.mark.parametrize("i", range(len(TRACED_BAD_CALLS)))
def test_bad_input_is_caught_on_traced_arrays_too(i):
    call, exc, msg = TRACED_BAD_CALLS[i]
    raised = []

    def f(t):
        with pytest.raises(exc, match="lucid.numpy." + msg):
            call(t)
        raised.append(True)
        return lnp.sum(t)
    lucid.grad(f)(np.ones((2, 3)))
    assert raised
