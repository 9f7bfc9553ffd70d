"""The nn family's CUDA impls (``lucid/_cuda_impls_nn.py``) against the CPU impls of the same
primitives: every impl on the same inputs into NaN-prefilled outputs (so an output one side
leaves unwritten shows up), float32 and float64, with no device->host copy inside; then
``lucid.vjp`` through the core on device arrays, and a small InceptionNeXt training loss,
every parameter gradient and the new BatchNorm statistics on the device equal to the CPU's.

The primitive-level tests also run in PTX mode (the impls' kernels compiled for sm_90);
the core-level ones need values and run on the simulator or a GPU only.
"""
import numpy as np
import pytest
from numba import cuda

import lucid
import lucid.nn.functional as F
from lucid import _cuda_impls, _fold_bn
from lucid._core import aval_of
from lucid.nn import _activation as act, _fused as fused, _inception as inc, _norm as norm
from lucid.nn import _pool as pool, _softmax as sm

from _count import device_to_host_copies
from _twin import assert_close, runs_kernels

DTYPES = [np.float32, np.float64]
CUDA0 = lucid.Device("cuda", 0)


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)


def _on_device(a):
    return lucid.DeviceArray(cuda.to_device(np.array(a, order="C")), CUDA0)


def _check(prim, args, dtype, **params):
    """Run ``prim``'s cpu and cuda impls on ``args``; assert equal outputs. -> cpu outputs."""
    _cuda_impls.install()
    avals = prim.out_avals([aval_of(a) for a in args], params)
    host = tuple(np.full(a.shape, np.nan, a.dtype) for a in avals)
    dev = tuple(_on_device(h) for h in host)
    prim.impls["cpu"](*args, out=host, **params)
    dargs = [_on_device(a) if isinstance(a, np.ndarray) else a for a in args]
    with device_to_host_copies() as seen:
        prim.impls["cuda"](*dargs, out=dev, **params)
    assert seen == [], f"{prim.name}: device->host copies {seen}"
    for i, (h, d) in enumerate(zip(host, dev)):
        assert_close(d.raw.copy_to_host(), h, err_msg=f"{prim.name}: output {i}", **_tol(dtype))
    return host


def _rand(rng, shape, dtype, shift=0.0):
    return (rng.standard_normal(shape) + shift).astype(dtype)


# ----------------------------------------------------------------------------- primitives

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout, shape", [("mid", (2, 3, 2, 2)), ("last", (2, 2, 2, 3))])
def test_batch_norm_primitives(dtype, layout, shape):
    rng = np.random.default_rng(0)
    x, g = _rand(rng, shape, dtype, 1.0), _rand(rng, shape, dtype)
    w, b, rm = (_rand(rng, 3, dtype) for _ in range(3))
    rv = (rng.random(3) + 0.5).astype(dtype)
    for wa, ba in ((w, b), (None, None)):   # the backward writes dw and db even without them
        _, mean, var = _check(norm.batch_norm_train_p, (x, wa, ba), dtype, eps=1e-5,
                              layout=layout)
        _check(norm.batch_norm_train_bwd_p, (g, x, wa, mean, var), dtype, eps=1e-5,
               layout=layout)
        _check(norm.batch_norm_eval_bwd_p, (g, x, rm, rv, wa), dtype, eps=1e-3, layout=layout)
    _check(norm.batch_norm_running_stats_p, (rm, rv, mean, var), dtype, momentum=0.2,
           count=x.size // 3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fold_batch_norm(dtype):
    rng = np.random.default_rng(1)
    bn = [_rand(rng, 4, dtype), (rng.random(4) + 0.5).astype(dtype), _rand(rng, 4, dtype),
          _rand(rng, 4, dtype)]                                     # rm, rv, gamma, beta
    conv_w, conv_b = _rand(rng, (4, 3, 3, 3), dtype), _rand(rng, 4, dtype)
    _check(_fold_bn.fold_batch_norm_p, (conv_w, conv_b, *bn), dtype, eps=1e-5, side="out")
    lin_w = _rand(rng, (5, 4), dtype)   # BN on the linear's 4 inputs, no bias, no gamma
    _check(_fold_bn.fold_batch_norm_p, (lin_w, None, bn[0], bn[1], None, bn[3]), dtype,
           eps=1e-5, side="in")
    pw = _rand(rng, (2, 4, 1, 1), dtype)   # an unpadded 1x1 conv after BN, no beta
    _check(_fold_bn.fold_batch_norm_p, (pw, _rand(rng, 2, dtype), *bn[:3], None), dtype,
           eps=1e-5, side="in")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [2, 1])
def test_softmax_primitives(dtype, axis):
    rng = np.random.default_rng(2)
    x, g = _rand(rng, (2, 3, 4), dtype), _rand(rng, (2, 3, 4), dtype)
    for fwd, bwd in ((sm.softmax_p, sm.softmax_bwd_p), (sm.log_softmax_p, sm.log_softmax_bwd_p)):
        y, = _check(fwd, (x,), dtype, axis=axis)
        _check(bwd, (g, y), dtype, axis=axis)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_soft_labels(dtype, reduction):
    rng = np.random.default_rng(3)
    x, t = _rand(rng, (3, 5), dtype), rng.random((3, 5))
    t = (t / t.sum(axis=1, keepdims=True)).astype(dtype)
    params = dict(smoothing=0.1, reduction=reduction)
    _, lse = _check(sm.cross_entropy_p, (x, t), dtype, **params)
    g = np.array(1.7, dtype) if reduction == "mean" else _rand(rng, 3, dtype)
    _check(sm.cross_entropy_soft_bwd_p, (g, x, t, lse), dtype, **params)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_and_fused_primitives(dtype):
    rng = np.random.default_rng(4)
    x, y, g = (_rand(rng, (3, 2, 6), dtype) for _ in range(3))
    x[0, 0, :2] = 0.0   # relu's gradient at 0 is 0
    b, gamma = _rand(rng, 6, dtype), _rand(rng, 6, dtype)
    relu_y, = _check(act.relu_p, (x,), dtype)
    _check(act.relu_bwd_p, (g, relu_y), dtype)
    _check(act.gelu_tanh_p, (x,), dtype)
    _check(act.gelu_tanh_bwd_p, (g, x), dtype)
    _check(act.bias_gelu_p, (x, b), dtype)
    _check(act.bias_gelu_bwd_p, (g, x, b), dtype)
    _check(fused.scale_residual_p, (x, y, gamma), dtype)
    _check(fused.bias_scale_residual_p, (x, y, gamma, b), dtype)
    _check(fused.scale_residual_bwd_p, (g, y, gamma), dtype)
    _check(fused.bias_scale_residual_bwd_p, (g, y, gamma, b), dtype)


@pytest.mark.parametrize("channels_last", [False, True])
def test_inception_primitives(channels_last):
    rng = np.random.default_rng(5)
    dtype = np.float64 if channels_last else np.float32
    shape = (1, 4, 5, 8) if channels_last else (1, 8, 4, 5)   # gc = 2: identity keeps 2
    x, g = _rand(rng, shape, dtype), _rand(rng, shape, dtype)
    ws = [_rand(rng, s, dtype) for s in ((2, 1, 3, 3), (2, 1, 1, 5), (2, 1, 5, 1))]
    bs = [_rand(rng, 2, dtype), None if channels_last else _rand(rng, 2, dtype),
          _rand(rng, 2, dtype)]
    _check(inc.inception_p, (x, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2]), dtype,
           channels_last=channels_last)
    _check(inc.inception_bwd_p, (g, x, *ws), dtype, channels_last=channels_last)


@pytest.mark.parametrize("nhwc", [False, True])
def test_adaptive_avg_pool2d_primitives(nhwc):
    rng = np.random.default_rng(6)
    dtype = np.float64 if nhwc else np.float32
    shape = (2, 5, 7, 3) if nhwc else (2, 3, 5, 7)
    x = _rand(rng, shape, dtype)
    y, = _check(pool.adaptive_avg_pool2d_p, (x,), dtype, out_hw=(2, 3), nhwc=nhwc)
    _check(pool.adaptive_avg_pool2d_bwd_p, (_rand(rng, y.shape, dtype),), dtype, shape=shape,
           nhwc=nhwc)
