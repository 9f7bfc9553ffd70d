"""Pooling, dropout and drop_path: NumPy oracles, VJPs, train/eval behaviour, bad inputs."""
import math

import numpy as np
import pytest

import lucid
from lucid.nn import functional as F
from gradcheck import check_vjp

DTYPES = [np.float32, np.float64]


def _randn(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _tol(dtype):
    return dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


def adaptive_pool_ref(x, oh, ow):
    """PyTorch's windows: [floor(i*H/oh), ceil((i+1)*H/oh))."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, math.ceil((i + 1) * h / oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, math.ceil((j + 1) * w / ow)
            out[:, :, i, j] = np.asarray(x[:, :, h0:h1, w0:w1], np.float64).mean((2, 3))
    return out


# ---- adaptive_avg_pool2d ----

POOL_CASES = [((2, 3, 7, 7), 1), ((2, 3, 7, 7), (1, 1)), ((1, 2, 8, 6), (4, 3)),
              ((2, 2, 7, 5), (3, 2)), ((1, 3, 5, 9), (5, 4)), ((1, 1, 3, 3), 5),
              ((1, 2, 6, 4), (None, 2))]


@pytest.mark.parametrize("shape,size", POOL_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_avg_pool2d_matches_oracle(shape, size, dtype):
    x = _randn(shape, dtype)
    pair = size if isinstance(size, tuple) else (size, size)
    oh, ow = (s if s is not None else full for s, full in zip(pair, shape[2:]))
    y = F.adaptive_avg_pool2d(x, size)
    assert y.dtype == dtype and y.shape == shape[:2] + (oh, ow)
    np.testing.assert_allclose(y, adaptive_pool_ref(x, oh, ow), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_avg_pool2d_nhwc(dtype):
    x = _randn((2, 7, 5, 3), dtype)
    for size in [(3, 2), 1]:
        y = F.adaptive_avg_pool2d(x, size, data_format="NHWC")
        ref = F.adaptive_avg_pool2d(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), size)
        np.testing.assert_allclose(y, ref.transpose(0, 2, 3, 1), **_tol(dtype))


@pytest.mark.parametrize("size", [(3, 2), 1, (5, 4)])
@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_adaptive_avg_pool2d_vjp(size, data_format):
    check_vjp(lambda x: F.adaptive_avg_pool2d(x, size, data_format=data_format),
              [_randn((2, 3, 7, 5))])


def test_adaptive_avg_pool2d_float32_grad_matches_float64():
    x, g = _randn((1, 2, 7, 5)), _randn((1, 2, 3, 2), seed=1)
    f = lambda x: F.adaptive_avg_pool2d(x, (3, 2))  # noqa: E731
    g64 = lucid.vjp(f, x)[1](g)[0]
    g32 = lucid.vjp(f, x.astype(np.float32))[1](g.astype(np.float32))[0]
    np.testing.assert_allclose(g32, g64, rtol=1e-6, atol=1e-7)


def test_adaptive_avg_pool2d_bad_size():
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output_size entries must be"):
        F.adaptive_avg_pool2d(np.ones((1, 1, 4, 4), np.float32), (0, 2))


def test_adaptive_avg_pool2d_bad_size_length():
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output_size must be an int or"):
        F.adaptive_avg_pool2d(np.ones((1, 1, 4, 4), np.float32), (1, 2, 3))


def test_adaptive_avg_pool2d_wrong_rank():
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: x must be 4-D"):
        F.adaptive_avg_pool2d(np.ones((4, 4), np.float32), 1)


def test_adaptive_avg_pool2d_empty_spatial():
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: cannot average over an empty"):
        F.adaptive_avg_pool2d(np.ones((1, 2, 0, 4), np.float32), 1)


# ---- global_avg_pool ----

@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 70, 2, 3), (3, 1, 1, 1), (0, 2, 3, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_avg_pool_matches_mean(shape, dtype, keepdims):
    x = _randn(shape, dtype)
    y = F.global_avg_pool(x, keepdims=keepdims)
    ref = x.astype(np.float64).mean((2, 3), keepdims=keepdims)
    assert y.dtype == dtype and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, **_tol(dtype))
    xt = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    y = F.global_avg_pool(xt, data_format="NHWC", keepdims=keepdims)
    ref = xt.astype(np.float64).mean((1, 2), keepdims=keepdims)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, **_tol(dtype))


@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_avg_pool_vjp(data_format, keepdims):
    f = lambda x: F.global_avg_pool(x, data_format=data_format, keepdims=keepdims)  # noqa: E731
    check_vjp(f, [_randn((2, 3, 4, 70))])


def test_global_avg_pool_bad_format():
    with pytest.raises(ValueError, match="global_avg_pool: data_format must be 'NCHW' or 'NHWC'"):
        F.global_avg_pool(np.ones((1, 2, 3, 3), np.float32), data_format="NWHC")


def test_global_avg_pool_wrong_rank():
    with pytest.raises(ValueError, match="global_avg_pool: x must be 4-D"):
        F.global_avg_pool(np.ones((2, 3, 3), np.float32))


def test_global_avg_pool_int_input():
    with pytest.raises(TypeError, match="global_avg_pool: x must be a float32 or float64 array"):
        F.global_avg_pool(np.ones((1, 2, 3, 3), np.int64))


# ---- dropout ----

@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 4), (0, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_matches_mask_formula(shape, dtype):
    x, key = _randn(shape, dtype), lucid.random.key(3)
    y = F.dropout(x, 0.3, key)
    keep = lucid.random.bernoulli(key, 0.7, shape)
    ref = np.where(keep, x * (dtype(1) / dtype(0.7)), 0)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, ref)


def test_dropout_keeps_about_one_minus_rate():
    y = F.dropout(np.ones(20000, np.float32), 0.25, lucid.random.key(0))
    assert abs((y != 0).mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)


def test_dropout_deterministic_given_key():
    x = _randn((8, 8), np.float32)
    k1, k2 = lucid.random.split(lucid.random.key(1))
    np.testing.assert_array_equal(F.dropout(x, 0.5, k1), F.dropout(x, 0.5, k1))
    assert not np.array_equal(F.dropout(x, 0.5, k1), F.dropout(x, 0.5, k2))


def test_dropout_identity_in_eval_and_rate_zero():
    x = _randn((3, 4), np.float32)
    assert F.dropout(x, 0.5, None, train=False) is x
    assert F.dropout(x, 0.0, None) is x


def test_dropout_vjp():
    check_vjp(lambda x: F.dropout(x, 0.4, lucid.random.key(7)), [_randn((4, 6))])


def test_dropout_needs_key_in_train():
    with pytest.raises(TypeError, match="dropout: a random key .* is required"):
        F.dropout(np.ones(3, np.float32), 0.5, None)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_dropout_rate_out_of_range(rate):
    with pytest.raises(ValueError, match=r"dropout: rate must be in \[0.0, 1.0\)"):
        F.dropout(np.ones(3, np.float32), rate, lucid.random.key(0))


def test_dropout_train_must_be_bool():
    with pytest.raises(TypeError, match="dropout: train must be a bool"):
        F.dropout(np.ones(3, np.float32), 0.5, lucid.random.key(0), train=1)


# ---- drop_path ----

@pytest.mark.parametrize("shape", [(6, 3, 2, 2), (5, 4), (7,)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_drop_path_matches_timm_formula(shape, dtype):
    x, key = _randn(shape, dtype), lucid.random.key(11)
    y = F.drop_path(x, 0.4, key)
    keep = lucid.random.bernoulli(key, 0.6, (shape[0],))
    scale = np.where(keep, dtype(1) / dtype(0.6), 0).astype(dtype)
    np.testing.assert_array_equal(y, x * scale.reshape((-1,) + (1,) * (len(shape) - 1)))


def test_drop_path_drops_whole_samples():
    y = F.drop_path(np.ones((64, 3, 2), np.float32), 0.5, lucid.random.key(2))
    per_sample = y.reshape(64, -1)
    assert np.all((per_sample == 0).all(1) | (per_sample == 2).all(1))
    assert 0 < (per_sample[:, 0] == 0).sum() < 64


def test_drop_path_identity_in_eval_and_rate_zero():
    x = _randn((3, 4), np.float32)
    assert F.drop_path(x, 0.5, None, train=False) is x
    assert F.drop_path(x, 0.0, None) is x


def test_drop_path_vjp():
    check_vjp(lambda x: F.drop_path(x, 0.5, lucid.random.key(5)), [_randn((6, 2, 3))])


def test_drop_path_needs_key_in_train():
    with pytest.raises(TypeError, match="drop_path: a random key .* is required"):
        F.drop_path(np.ones((2, 3), np.float32), 0.1, np.array([1, 2]))


def test_drop_path_rate_out_of_range():
    with pytest.raises(ValueError, match=r"drop_path: rate must be in \[0.0, 1.0\)"):
        F.drop_path(np.ones((2, 3), np.float32), 1.0, lucid.random.key(0))


def test_drop_path_scalar_rejected():
    with pytest.raises(ValueError, match="drop_path: x must have a batch axis"):
        F.drop_path(np.float32(1.0), 0.1, lucid.random.key(0))
