"""layer_norm and batch_norm against float64 NumPy oracles (PyTorch formulas), VJPs, bad inputs."""
import numpy as np
import pytest

import lucid
from lucid.kernels.cpu import norm as KN
from lucid.nn import functional as F
from gradcheck import check_vjp

DTYPES = [np.float32, np.float64]


def _randn(shape, dtype=np.float64, seed=0, scale=1.0, shift=0.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale + shift).astype(dtype)


def _tol(dtype):
    return dict(rtol=1e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)


def _along(v, axis, ndim):
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(v, np.float64).reshape(shape)


def layer_norm_ref(x, w, b, eps, axis):
    x = np.asarray(x, np.float64)
    y = (x - x.mean(axis, keepdims=True)) / np.sqrt(x.var(axis, keepdims=True) + eps)
    if w is not None:
        y = y * _along(w, axis, x.ndim)
    return y if b is None else y + _along(b, axis, x.ndim)


def batch_norm_ref(x, rm, rv, w, b, train, momentum, eps, axis):
    x = np.asarray(x, np.float64)
    red = tuple(i for i in range(x.ndim) if i != axis)
    if train:
        mean, var = x.mean(red), x.var(red)
        count = x.size // x.shape[axis]
        new_rm = (1 - momentum) * rm + momentum * mean
        new_rv = (1 - momentum) * rv + momentum * var * count / (count - 1)
    else:
        mean, var = np.asarray(rm, np.float64), np.asarray(rv, np.float64)
    y = (x - _along(mean, axis, x.ndim)) / np.sqrt(_along(var, axis, x.ndim) + eps)
    if w is not None:
        y = y * _along(w, axis, x.ndim)
    if b is not None:
        y = y + _along(b, axis, x.ndim)
    return (y, new_rm, new_rv) if train else y


# ---- layer_norm ----

LN_CASES = [((5, 8), -1), ((2, 3, 16), -1), ((3, 1), -1), ((0, 4), -1), ((2, 6, 3, 5), 1),
            ((4, 7), 0), ((9,), 0), ((130, 3), -1)]


@pytest.mark.parametrize("shape,axis", LN_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_oracle(shape, axis, dtype, affine):
    x = _randn(shape, dtype, scale=2.0, shift=0.5)
    c = shape[axis]
    w = _randn((c,), dtype, seed=1) if affine else None
    b = _randn((c,), dtype, seed=2) if affine else None
    y = F.layer_norm(x, w, b, eps=1e-6, axis=axis)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y, layer_norm_ref(x, w, b, 1e-6, axis), **_tol(dtype))


def test_layer_norm_large_mean_is_stable():
    x = _randn((4, 64), np.float32, shift=1e4)  # naive E[x^2] - E[x]^2 would lose everything
    np.testing.assert_allclose(F.layer_norm(x), layer_norm_ref(x, None, None, 1e-5, -1), atol=5e-3)


@pytest.mark.parametrize("shape,axis", [((3, 6), -1), ((2, 4, 3, 3), 1)])
def test_layer_norm_vjp(shape, axis):
    c = shape[axis]
    args = [_randn(shape, scale=2.0), _randn((c,), seed=1), _randn((c,), seed=2)]
    check_vjp(lambda x, w, b: F.layer_norm(x, w, b, axis=axis), args)


def test_layer_norm_vjp_without_affine():
    check_vjp(lambda x: F.layer_norm(x, eps=1e-3), [_randn((5, 7))])


@pytest.mark.parametrize("shape,axis", [((70, 12), -1), ((2, 5, 3, 4), 1)])
def test_layer_norm_float32_grads_match_float64(shape, axis):
    x64, w64, b64 = _randn(shape), _randn((shape[axis],), seed=1), _randn((shape[axis],), seed=2)
    g64 = _randn(shape, seed=3)
    f = lambda x, w, b: F.layer_norm(x, w, b, axis=axis)  # noqa: E731
    grads64 = lucid.vjp(f, x64, w64, b64)[1](g64)
    args32 = [a.astype(np.float32) for a in (x64, w64, b64)]
    grads32 = lucid.vjp(f, *args32)[1](g64.astype(np.float32))
    for g32, g in zip(grads32, grads64):
        assert g32.dtype == np.float32
        np.testing.assert_allclose(g32, g, rtol=1e-4, atol=1e-4)


def test_layer_norm_kernel_saves_stats():
    x = _randn((6, 10), np.float32)
    out, mean, rstd = np.empty_like(x), np.empty(6), np.empty(6)
    KN.layer_norm_fwd(x, np.ones(10, np.float32), np.zeros(10, np.float32), 1e-5, out, mean, rstd)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(1), rtol=1e-12)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(x.astype(np.float64).var(1) + 1e-5), rtol=1e-12)


def test_layer_norm_weight_mismatch():
    with pytest.raises(ValueError, match="layer_norm: weight must have shape \\(4,\\)"):
        F.layer_norm(np.ones((2, 4), np.float32), np.ones(3, np.float32))


def test_layer_norm_bias_mismatch_axis1():
    with pytest.raises(ValueError, match="layer_norm: bias must have shape \\(3,\\)"):
        F.layer_norm(np.ones((2, 3, 4, 4), np.float32), None, np.ones(4, np.float32), axis=1)


def test_layer_norm_bad_axis():
    with pytest.raises(ValueError, match="layer_norm: axis 2 is out of range"):
        F.layer_norm(np.ones((2, 4), np.float32), axis=2)


def test_layer_norm_mixed_dtypes():
    with pytest.raises(TypeError, match="layer_norm: all arrays must share one dtype"):
        F.layer_norm(np.ones((2, 4), np.float32), np.ones(4, np.float64))


def test_layer_norm_negative_eps():
    with pytest.raises(ValueError, match="layer_norm: eps must be >= 0"):
        F.layer_norm(np.ones((2, 4), np.float32), eps=-1.0)


def test_layer_norm_int_input():
    with pytest.raises(TypeError, match="layer_norm: x must be a float32 or float64 array"):
        F.layer_norm(np.ones((2, 4), np.int32))


def test_layer_norm_empty_axis():
    with pytest.raises(ValueError, match="layer_norm: cannot normalise over an empty axis"):
        F.layer_norm(np.ones((2, 0), np.float32))


# ---- batch_norm ----

BN_CASES = [((4, 3, 5, 5), 1), ((4, 5, 5, 3), -1), ((6, 4), 1), ((2, 3, 7), 1), ((3, 2, 2, 70), -1)]


def _bn_args(shape, axis, dtype, affine=True):
    c = shape[axis]
    x = _randn(shape, dtype, scale=1.5, shift=0.3)
    rm, rv = _randn((c,), dtype, seed=1), (np.abs(_randn((c,), seed=2)) + 0.5).astype(dtype)
    w = _randn((c,), dtype, seed=3) if affine else None
    b = _randn((c,), dtype, seed=4) if affine else None
    return x, rm, rv, w, b


@pytest.mark.parametrize("shape,axis", BN_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_eval_matches_oracle(shape, axis, dtype, affine):
    x, rm, rv, w, b = _bn_args(shape, axis, dtype, affine)
    y = F.batch_norm(x, rm, rv, w, b, train=False, eps=1e-3, axis=axis)
    assert isinstance(y, np.ndarray) and y.dtype == dtype and y.shape == shape
    ref = batch_norm_ref(x, rm, rv, w, b, False, 0.1, 1e-3, axis % len(shape))
    np.testing.assert_allclose(y, ref, **_tol(dtype))


@pytest.mark.parametrize("shape,axis", BN_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_train_matches_oracle(shape, axis, dtype):
    x, rm, rv, w, b = _bn_args(shape, axis, dtype)
    y, new_rm, new_rv = F.batch_norm(x, rm, rv, w, b, train=True, momentum=0.2, axis=axis)
    ref_y, ref_rm, ref_rv = batch_norm_ref(x, rm.astype(np.float64), rv.astype(np.float64), w, b,
                                           True, 0.2, 1e-5, axis % len(shape))
    assert y.dtype == new_rm.dtype == new_rv.dtype == dtype
    np.testing.assert_allclose(y, ref_y, **_tol(dtype))
    np.testing.assert_allclose(new_rm, ref_rm, **_tol(dtype))
    np.testing.assert_allclose(new_rv, ref_rv, **_tol(dtype))  # unbiased batch variance


def test_batch_norm_train_without_running_stats():
    x, _, _, w, b = _bn_args((4, 3, 2, 2), 1, np.float64)
    y, rm, rv = F.batch_norm(x, None, None, w, b, train=True)
    assert rm is None and rv is None
    np.testing.assert_allclose(y, batch_norm_ref(x, 0, 0, w, b, True, 0.1, 1e-5, 1)[0], rtol=1e-11)


def test_batch_norm_train_and_eval_differ():
    x, rm, rv, w, b = _bn_args((4, 3, 2, 2), 1, np.float64)
    y_train = F.batch_norm(x, rm, rv, w, b, train=True)[0]
    y_eval = F.batch_norm(x, rm, rv, w, b, train=False)
    assert not np.allclose(y_train, y_eval)


@pytest.mark.parametrize("shape,axis", [((3, 2, 3, 3), 1), ((3, 2, 2, 4), -1)])
@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_vjp(shape, axis, train):
    x, rm, rv, w, b = _bn_args(shape, axis, np.float64)

    def f(x, w, b):
        out = F.batch_norm(x, rm, rv, w, b, train=train, axis=axis)
        return out[0] if train else out

    check_vjp(f, [x, w, b])


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_vjp_without_affine(train):
    x, rm, rv, _, _ = _bn_args((5, 3, 2), 1, np.float64)
    f = lambda x: F.batch_norm(x, rm, rv, train=train)  # noqa: E731
    check_vjp((lambda x: f(x)[0]) if train else f, [x])


@pytest.mark.parametrize("layout", [((6, 3, 4, 4), 1), ((6, 4, 4, 3), -1)])
def test_batch_norm_float32_grads_match_float64(layout):
    shape, axis = layout
    x, rm, rv, w, b = _bn_args(shape, axis, np.float64)
    g = _randn(shape, seed=9)
    f = lambda x, w, b: F.batch_norm(x, rm.astype(x.dtype), rv.astype(x.dtype), w, b,  # noqa: E731
                                     train=True, axis=axis)[0]
    grads64 = lucid.vjp(f, x, w, b)[1](g)
    grads32 = lucid.vjp(f, *(a.astype(np.float32) for a in (x, w, b)))[1](g.astype(np.float32))
    for g32, g64 in zip(grads32, grads64):
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4)


def test_batch_norm_no_gradient_to_running_stats():
    x, rm, rv, w, b = _bn_args((4, 3, 2, 2), 1, np.float64)
    out, vjp = lucid.vjp(lambda x, rm, rv: F.batch_norm(x, rm, rv, w, b, train=True), x, rm, rv)
    gx, grm, grv = vjp((np.zeros_like(x), np.ones(3), np.ones(3)))
    assert not gx.any() and not grm.any() and not grv.any()
    gx, grm, grv = vjp((np.ones_like(x), np.zeros(3), np.zeros(3)))
    assert not grm.any() and not grv.any()


def test_batch_norm_stats_kernels_direct():
    x = _randn((130, 5), np.float32, shift=3.0)  # more rows than the reduction's chunks
    mean, var = np.empty(5), np.empty(5)
    KN.batch_norm_stats_last(x, mean, var)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(var, x.astype(np.float64).var(0), rtol=1e-10)
    x3 = _randn((3, 4, 10), np.float32)
    KN.batch_norm_stats_mid(x3, mean[:4], var[:4])
    np.testing.assert_allclose(var[:4], x3.astype(np.float64).var((0, 2)), rtol=1e-10)


def test_batch_norm_channel_mismatch():
    x, rm, rv, w, b = _bn_args((2, 3, 4, 4), 1, np.float32)
    with pytest.raises(ValueError, match="batch_norm: weight must have shape \\(3,\\)"):
        F.batch_norm(x, rm, rv, np.ones(4, np.float32), b)


def test_batch_norm_running_stats_mismatch():
    x, rm, rv, w, b = _bn_args((2, 3, 4, 4), 1, np.float32)
    with pytest.raises(ValueError, match="batch_norm: running_var must have shape \\(3,\\)"):
        F.batch_norm(x, rm, np.ones(2, np.float32), w, b)


def test_batch_norm_wrong_rank():
    with pytest.raises(ValueError, match="batch_norm: x must have at least 2 dimensions"):
        F.batch_norm(np.ones(3, np.float32), np.zeros(3, np.float32), np.ones(3, np.float32))


def test_batch_norm_bad_axis():
    x, rm, rv, w, b = _bn_args((2, 3, 4, 4), 1, np.float32)
    with pytest.raises(ValueError, match="batch_norm: axis must be 1 .* or -1"):
        F.batch_norm(x, rm, rv, w, b, axis=2)


def test_batch_norm_mixed_dtypes():
    x, rm, rv, w, b = _bn_args((2, 3, 4, 4), 1, np.float32)
    with pytest.raises(TypeError, match="batch_norm: all arrays must share one dtype"):
        F.batch_norm(x, rm.astype(np.float64), rv, w, b)


def test_batch_norm_eval_needs_running_stats():
    with pytest.raises(ValueError, match="batch_norm: eval mode .* needs running_mean"):
        F.batch_norm(np.ones((2, 3), np.float32), None, None)


def test_batch_norm_one_running_stat():
    with pytest.raises(ValueError, match="batch_norm: pass both running_mean and running_var"):
        F.batch_norm(np.ones((2, 3), np.float32), np.zeros(3, np.float32), None, train=True)


def test_batch_norm_single_value_per_channel_in_train():
    with pytest.raises(ValueError, match="batch_norm: train mode needs more than 1 value"):
        F.batch_norm(np.ones((1, 3, 1, 1), np.float32), None, None, train=True)


def test_batch_norm_bad_momentum():
    x, rm, rv, w, b = _bn_args((2, 3), 1, np.float32)
    with pytest.raises(ValueError, match="batch_norm: momentum must be in \\[0.0, 1.0\\]"):
        F.batch_norm(x, rm, rv, w, b, train=True, momentum=1.5)


def test_batch_norm_train_must_be_bool():
    x, rm, rv, w, b = _bn_args((2, 3), 1, np.float32)
    with pytest.raises(TypeError, match="batch_norm: train must be a bool"):
        F.batch_norm(x, rm, rv, w, b, train="yes")
