"""relu, gelu (erf and tanh), the fused bias+GELU, linear, and the fast float32 math behind them."""
import math

import numpy as np
import pytest

import lucid
from lucid.kernels.cpu import _math, activation as KA, linear as KL
from lucid.nn import functional as F
from lucid.nn._activation import bias_gelu
from gradcheck import check_vjp

DTYPES = [np.float32, np.float64]
SHAPES = [(7,), (3, 5), (2, 3, 4), (0, 4)]
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _randn(shape, dtype, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _tol(dtype):
    return dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def gelu_ref(x):
    x = np.asarray(x, np.float64)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_grad_ref(x):
    x = np.asarray(x, np.float64)
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * pdf


def gelu_tanh_grad_ref(x):
    x = np.asarray(x, np.float64)
    t = np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 0.134145 * x * x)


def gelu_tanh_ref(x):
    x = np.asarray(x, np.float64)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


# ---- the float32 math kernels ----

def _scalar_kernel(fn):
    import numba

    @numba.njit
    def apply(x, out):
        for i in range(x.size):
            out[i] = fn(x[i])
    return apply


def test_fast_erf_float32_accuracy():
    x = np.linspace(-6, 6, 200001).astype(np.float32)
    out = np.empty_like(x)
    _scalar_kernel(_math.erf)(x, out)
    assert np.max(np.abs(out - _erf(x.astype(np.float64)))) < 5e-7


def test_fast_exp_float32_accuracy_and_range():
    x = np.concatenate([np.linspace(-87, 88.72, 100001), [-1e4, -88.0, 89.0, np.nan]])
    x = x.astype(np.float32)
    out = np.empty_like(x)
    _scalar_kernel(_math.exp)(x, out)
    ref = np.exp(x[:-4].astype(np.float64))
    assert np.max(np.abs(out[:-4] - ref) / ref) < 3e-7
    assert out[-4] == 0.0 and out[-3] < 1e-37 and out[-2] == np.inf and np.isnan(out[-1])


def test_float64_math_is_libm():
    x = np.linspace(-5, 5, 1001)
    out = np.empty_like(x)
    _scalar_kernel(_math.erf)(x, out)
    np.testing.assert_array_equal(out, _erf(x))


# ---- relu ----

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_numpy(shape, dtype):
    x = _randn(shape, dtype)
    y = F.relu(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    g = _randn(shape, dtype, seed=1)
    _, vjp = lucid.vjp(F.relu, x)
    np.testing.assert_array_equal(vjp(g)[0], g * (x > 0))


def test_relu_vjp():
    check_vjp(F.relu, [_randn((4, 6), np.float64) + 0.01])


def test_relu_keeps_nan():
    assert np.isnan(F.relu(np.array([np.nan], np.float32))[0])


# ---- gelu ----

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_formula(shape, dtype, approximate):
    x = _randn(shape, dtype, scale=3.0)
    y = F.gelu(x, approximate=approximate)
    ref = gelu_ref(x) if approximate == "none" else gelu_tanh_ref(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y, ref, **_tol(dtype))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float32_error_bound(approximate):
    # |gelu32(x) - gelu64(x)| <= 1e-6 * max(1, |x|), over a dense grid and far tails.
    x = np.concatenate([np.linspace(-12, 12, 400001), [-1e4, -100, -30, 30, 100, 1e4]])
    x = x.astype(np.float32)
    ref = gelu_ref(x) if approximate == "none" else gelu_tanh_ref(x)
    err = np.abs(F.gelu(x, approximate=approximate) - ref) / np.maximum(1, np.abs(x))
    assert err.max() <= 1e-6


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float32_grad_error_bound(approximate):
    x = np.concatenate([np.linspace(-12, 12, 200001), [-1e4, -100, 100, 1e4]]).astype(np.float32)
    _, vjp = lucid.vjp(lambda x: F.gelu(x, approximate=approximate), x)
    ref = gelu_grad_ref(x) if approximate == "none" else gelu_tanh_grad_ref(x)
    err = np.abs(vjp(np.ones_like(x))[0] - ref) / np.maximum(1, np.abs(x))
    assert err.max() <= 1e-6


def test_gelu_special_values():
    y = F.gelu(np.array([np.inf, np.nan, 0.0], np.float32))
    assert y[0] == np.inf and np.isnan(y[1]) and y[2] == 0.0


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_vjp(approximate):
    check_vjp(lambda x: F.gelu(x, approximate=approximate), [_randn((3, 7), np.float64, scale=2)])


def test_gelu_bad_approximate():
    with pytest.raises(ValueError, match="gelu: approximate must be"):
        F.gelu(np.ones(3, np.float32), approximate="fast")


# ---- fused bias + GELU ----

@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 4), (0, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_gelu_matches_unfused(shape, dtype):
    h, b = _randn(shape, dtype, scale=2), _randn(shape[-1:], dtype, seed=1)
    np.testing.assert_allclose(bias_gelu(h, b), gelu_ref(h.astype(np.float64) + b), **_tol(dtype))
    g = _randn(shape, dtype, seed=2)
    _, vjp = lucid.vjp(bias_gelu, h, b)
    gh, gb = vjp(g)
    gh_ref = g * gelu_grad_ref(h.astype(np.float64) + b)
    np.testing.assert_allclose(gh, gh_ref, **_tol(dtype))
    np.testing.assert_allclose(gb, gh_ref.reshape(-1, shape[-1]).sum(0), rtol=1e-5, atol=1e-5)


def test_bias_gelu_vjp():
    check_vjp(bias_gelu, [_randn((4, 5), np.float64), _randn((5,), np.float64, seed=1)])


def test_bias_gelu_kernels_direct():
    h, b = _randn((6, 4), np.float32), _randn((4,), np.float32, seed=1)
    out = np.empty_like(h)
    KA.bias_gelu_fwd(h, b, out)
    np.testing.assert_allclose(out, gelu_ref(h + b), atol=2e-6)


def test_bias_gelu_bad_bias():
    with pytest.raises(ValueError, match="bias_gelu: b must have shape"):
        bias_gelu(np.ones((2, 3), np.float32), np.ones(4, np.float32))


# ---- linear ----

@pytest.mark.parametrize("xshape", [(5,), (4, 5), (2, 3, 5), (0, 5)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_numpy(xshape, dtype, with_bias):
    x, w = _randn(xshape, dtype), _randn((3, 5), dtype, seed=1)
    b = _randn((3,), dtype, seed=2) if with_bias else None
    y = F.linear(x, w, b)
    ref = x.astype(np.float64) @ w.T.astype(np.float64) + (0 if b is None else b)
    assert y.dtype == dtype and y.shape == xshape[:-1] + (3,)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_linear_grads_match_numpy():
    x, w = _randn((2, 4, 5), np.float32), _randn((3, 5), np.float32, 1)
    b = _randn((3,), np.float32, 2)
    g = _randn((2, 4, 3), np.float32, 3)
    _, vjp = lucid.vjp(F.linear, x, w, b)
    gx, gw, gb = vjp(g)
    g2, x2 = g.reshape(-1, 3).astype(np.float64), x.reshape(-1, 5).astype(np.float64)
    np.testing.assert_allclose(gx, (g2 @ w).reshape(x.shape), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw, g2.T @ x2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gb, g2.sum(0), rtol=1e-5, atol=1e-5)


def test_linear_vjp():
    check_vjp(F.linear, [_randn((3, 4), np.float64), _randn((2, 4), np.float64, 1),
                         _randn((2,), np.float64, 2)])


def test_linear_accepts_1x1_conv_weight():
    x, w = _randn((2, 6, 6, 4), np.float64), _randn((3, 4, 1, 1), np.float64, 1)
    np.testing.assert_allclose(F.linear(x, w), x @ w[:, :, 0, 0].T, rtol=1e-12)
    _, vjp = lucid.vjp(F.linear, x, w)
    assert vjp(np.ones((2, 6, 6, 3)))[1].shape == (3, 4, 1, 1)
    check_vjp(F.linear, [x[:1, :2], w])


def test_bias_add_bwd_kernel_direct():
    g = _randn((130, 7), np.float32)  # more rows than the kernel's chunk count
    out = np.empty(7, np.float32)
    KL.bias_add_bwd(g, out)
    np.testing.assert_allclose(out, g.astype(np.float64).sum(0), rtol=1e-6, atol=1e-6)


def test_linear_feature_mismatch():
    with pytest.raises(ValueError, match="linear: x has 4 input features"):
        F.linear(np.ones((2, 4), np.float32), np.ones((3, 5), np.float32))


def test_linear_bad_weight_rank():
    with pytest.raises(ValueError, match="linear: w must have shape"):
        F.linear(np.ones((2, 4), np.float32), np.ones((3, 4, 2, 1), np.float32))


def test_linear_bias_mismatch():
    with pytest.raises(ValueError, match="linear: b must have shape \\(3,\\)"):
        F.linear(np.ones((2, 4), np.float32), np.ones((3, 4), np.float32), np.ones(4, np.float32))


def test_linear_mixed_dtypes():
    with pytest.raises(TypeError, match="linear: all arrays must share one dtype"):
        F.linear(np.ones((2, 4), np.float32), np.ones((3, 4), np.float64))


@pytest.mark.parametrize("fn", [F.relu, F.gelu, lambda x: F.linear(x, x)])
def test_integer_input_rejected(fn):
    with pytest.raises(TypeError, match="must be a float32 or float64 array"):
        fn(np.ones((2, 2), np.int64))


def test_linear_scalar_input_rejected():
    with pytest.raises(ValueError, match="linear: x must have at least 1 dimension"):
        F.linear(np.float32(1.0), np.ones((3, 1), np.float32))
