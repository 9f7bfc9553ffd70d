"""Elementwise CUDA kernels against their CPU twins on the simulator (float32, float64)."""
import numpy as np
import pytest
from numba import cuda

from _twin import Out, assert_equal, rand, runs_kernels, twin

DTYPES = [np.float32, np.float64]
N = 37  # not a multiple of the launch's thread count: the grid-stride tails run


@pytest.fixture
def rng():
    return np.random.default_rng(0)


UNARY = [("negative_fwd", None), ("exp_fwd", None), ("log_fwd", 0.1), ("sqrt_fwd", 0.1),
         ("tanh_fwd", None), ("erf_fwd", None), ("abs_fwd", None), ("square_fwd", None)]
UNARY_BWD = [("exp_bwd", None), ("log_bwd", 0.1), ("sqrt_bwd", 0.1), ("tanh_bwd", None),
             ("erf_bwd", None), ("abs_bwd", None), ("square_bwd", None)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_unary(rng, dtype):
    for name, lo in UNARY:
        twin("elementwise", name, rand(rng, N, dtype, lo), Out(N, dtype), dtype=dtype)
    for name, lo in UNARY_BWD:
        twin("elementwise", name, rand(rng, N, dtype), rand(rng, N, dtype, lo), Out(N, dtype),
             dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_edge_values(dtype):
    x = np.array([0.0, -1.0, 2.0, -0.0, np.inf], dtype)
    for name in ("log_fwd", "sqrt_fwd", "abs_fwd"):
        twin("elementwise", name, x, Out(x.shape, dtype), dtype=dtype)
    twin("elementwise", "log_bwd", np.ones_like(x), x, Out(x.shape, dtype), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations(rng, dtype):
    x = rand(rng, N, dtype) * 3
    x[:3] = [0.0, -0.0, 1e-3]
    for name in ("relu_fwd", "gelu_fwd", "gelu_tanh_fwd"):
        twin("activation", name, x, Out(N, dtype), dtype=dtype)
    g = rand(rng, N, dtype)
    for name in ("relu_bwd", "gelu_bwd", "gelu_tanh_bwd"):
        twin("activation", name, g, x, Out(N, dtype), dtype=dtype)
    h, b = rand(rng, (5, 7), dtype), rand(rng, 7, dtype)
    twin("activation", "bias_gelu_fwd", h, b, Out((5, 7), dtype), dtype=dtype)
    twin("activation", "bias_gelu_bwd", rand(rng, (5, 7), dtype), h, b, Out((5, 7), dtype),
         dtype=dtype)


BROADCASTS = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (1, 3, 1, 5)),
              ((1, 1, 1, 1), (2, 1, 3, 4)), ((2, 3, 4, 1), (2, 3, 4, 5))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs, ys", BROADCASTS)
def test_binary_forward(rng, dtype, xs, ys):
    out_shape = np.broadcast_shapes(xs, ys)
    x, y = rand(rng, xs, dtype), rand(rng, ys, dtype, 0.5)
    y.flat[0] = x.flat[0]  # a tie for maximum/minimum
    for name in ("add_fwd", "subtract_fwd", "multiply_fwd", "divide_fwd", "maximum_fwd",
                 "minimum_fwd"):
        twin("binary", name, x, y, Out(out_shape, dtype), dtype=dtype)
    twin("binary", "power_fwd", np.abs(x) + 0.5, y, Out(out_shape, dtype), dtype=dtype)
    c = rng.random(out_shape) > 0.5
    twin("binary", "where_fwd", c, x, y, Out(out_shape, dtype), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_divide_by_zero(dtype):
    x = np.array([1.0, -1.0, 0.0, 2.0], dtype).reshape(1, 1, 1, 4)
    y = np.array([0.0, 0.0, 0.0, -0.0], dtype).reshape(1, 1, 1, 4)
    twin("binary", "divide_fwd", x, y, Out(x.shape, dtype), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_backward(rng, dtype):
    g, x, y = rand(rng, N, dtype), rand(rng, N, dtype, 0.2), rand(rng, N, dtype)
    y[:4] = x[:4]  # ties
    y[4] = 0.0
    twin("binary", "divide_bwd_y", g, x, Out(N, dtype), dtype=dtype)
    twin("binary", "power_bwd", g, x, y, x ** y, Out(N, dtype), Out(N, dtype), dtype=dtype)
    twin("binary", "maximum_bwd", g, x, y, Out(N, dtype), Out(N, dtype), dtype=dtype)
    twin("binary", "where_bwd", rng.random(N) > 0.5, g, Out(N, dtype), Out(N, dtype),
         dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout(rng, dtype):
    x, keep = rand(rng, N, dtype), rng.random(N) > 0.3
    twin("dropout", "dropout_fwd", x, keep, 1 / 0.7, Out(N, dtype), dtype=dtype)
    x2, rows = rand(rng, (4, 9), dtype), np.array([True, False, True, True])
    twin("dropout", "drop_path_fwd", x2, rows, 1 / 0.75, Out((4, 9), dtype), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizers(rng, dtype):
    g, p, mu, nu = (rand(rng, N, dtype) for _ in range(4))
    nu = np.abs(nu)
    for wd in (0.0, 0.05):
        for nesterov in (False, True):
            twin("optim", "adam_update", g, p, mu, nu, 0.9, 0.999, 1e-8, 0.0, 1 - 0.9 ** 3,
                 1 - 0.999 ** 3, 1 - 0.9 ** 4, nesterov, -1e-3, wd, Out(N, dtype), Out(N, dtype),
                 Out(N, dtype), dtype=dtype)
        twin("optim", "sgd_update", g, p, wd, -0.1, Out(N, dtype), dtype=dtype)
        for nesterov in (False, True):
            twin("optim", "sgd_momentum_update", g, p, mu, 0.9, nesterov, wd, -0.1,
                 Out(N, dtype), Out(N, dtype), dtype=dtype)
    twin("optim", "sum_squares", rand(rng, 301, dtype), Out(1, np.float64), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_and_bias(rng, dtype):
    x, y, g = (rand(rng, (11, 6), dtype) for _ in range(3))
    b, gamma = rand(rng, 6, dtype), rand(rng, 6, dtype)
    twin("fused", "scale_residual_fwd", x, y, gamma, Out((11, 6), dtype), dtype=dtype)
    twin("fused", "scale_residual_bwd", g, y, gamma, Out((11, 6), dtype), Out(6, dtype),
         dtype=dtype)
    twin("fused", "bias_scale_residual_fwd", x, y, b, gamma, Out((11, 6), dtype), dtype=dtype)
    twin("fused", "bias_scale_residual_bwd", g, y, b, gamma, Out((11, 6), dtype), Out(6, dtype),
         Out(6, dtype), dtype=dtype)
    twin("linear", "bias_add_fwd", x, b, Out((11, 6), dtype), dtype=dtype)
    twin("linear", "bias_add_bwd", g, Out(6, dtype), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scatter_add_repeated_positions(rng, dtype):
    g, pos = rand(rng, 12, dtype), np.array([0, 3, 3, 1, 0, 5, 5, 5, 2, 4, 0, 3])
    twin("indexing", "scatter_add", g, pos, Out(6, dtype, zero=True), dtype=dtype)


@runs_kernels
def test_host_array_is_refused():
    from lucid.kernels.cuda import activation
    x = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="host numpy array.*device arrays"):
        activation.relu_fwd(x, cuda.device_array(4, np.float32))


@runs_kernels
def test_reductions_are_deterministic(rng):
    from lucid.kernels.cuda import linear
    g = cuda.to_device(rand(rng, (50, 3), np.float32))
    first, again = cuda.device_array(3, np.float32), cuda.device_array(3, np.float32)
    linear.bias_add_bwd(g, first)
    linear.bias_add_bwd(g, again)
    assert np.array_equal(first.copy_to_host(), again.copy_to_host())


@pytest.mark.parametrize("perm", [(0, 2, 3, 1), (3, 1, 0, 2), (1, 0), (0, 1, 2)])
def test_memory_permute_fill_cast_tile(rng, perm):
    from lucid.kernels.cuda import memory
    shape = (2, 3, 4, 5)[:len(perm)]
    x = rand(rng, shape, np.float32)
    want = np.ascontiguousarray(x.transpose(perm))
    dst = cuda.device_array(want.shape, np.float32)
    memory.permute_copy(cuda.to_device(x), perm, dst)
    assert_equal(dst.copy_to_host(), want)
    memory.fill(dst, -1.5)
    assert_equal(dst.copy_to_host(), np.full(want.shape, -1.5, np.float32))
    wide = cuda.device_array(shape, np.float64)
    memory.cast(cuda.to_device(x), wide)
    assert_equal(wide.copy_to_host(), x.astype(np.float64))
    tiled = cuda.device_array(3 * x.shape[-1], np.float32)
    memory.tile(cuda.to_device(x[(0,) * (x.ndim - 1)]), 3, tiled)
    assert_equal(tiled.copy_to_host(), np.tile(x[(0,) * (x.ndim - 1)], 3))
    with pytest.raises(ValueError, match="perm"):
        memory.permute_copy(cuda.to_device(x), perm[:-1] + (9,), dst)
