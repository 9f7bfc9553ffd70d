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


# ----------------------------------------------------------------------------- through the core

def _vjp_on_both(fn, args, consts=()):
    """``lucid.vjp`` of ``fn(*consts)(*args)`` on the CPU and on the device (every array on
    it); outputs and gradients equal, no device->host copy in the device forward/backward."""
    rng = np.random.default_rng(7)
    out, vjp_fn = lucid.vjp(fn(*consts), *args)
    outs = out if isinstance(out, tuple) else (out,)
    cts = tuple(_rand(rng, np.shape(o), o.dtype) for o in outs)
    want = vjp_fn(cts if isinstance(out, tuple) else cts[0])
    dconsts, dargs, dcts = lucid.device_put((consts, args, cts), "cuda")
    with device_to_host_copies() as seen:
        dout, dvjp_fn = lucid.vjp(fn(*dconsts), *dargs)
        got = dvjp_fn(dcts if isinstance(out, tuple) else dcts[0])
    assert seen == []
    douts = dout if isinstance(out, tuple) else (dout,)
    for a, b in zip(outs + tuple(want), douts + tuple(got)):
        assert isinstance(b, lucid.DeviceArray)
        np.testing.assert_allclose(lucid.device_get(b), a, rtol=1e-4, atol=1e-5)


_F32 = np.float32
_CASES = {
    "batch_norm_train_nhwc": (
        lambda rm, rv: lambda x, w, b: F.batch_norm(x, rm, rv, w, b, train=True, momentum=0.2,
                                                    axis=-1),
        [(2, 2, 2, 3), (3,), (3,)], [(3,), (3,)]),
    "batch_norm_train_untracked": (
        lambda: lambda x: F.batch_norm(x, None, None, train=True)[0], [(2, 3, 2, 2)], []),
    "batch_norm_eval": (
        lambda rm, rv: lambda x, w, b: F.batch_norm(x, rm, rv, w, b, axis=1),
        [(2, 3, 2, 2), (3,), (3,)], [(3,), (3,)]),
    "softmax": (lambda: lambda x: F.softmax(x, axis=1), [(2, 3, 4)], []),
    "log_softmax": (lambda: lambda x: F.log_softmax(x), [(2, 3, 4)], []),
    "cross_entropy_soft": (
        lambda: lambda x, t: F.cross_entropy(x, F.softmax(t), label_smoothing=0.1),
        [(3, 5), (3, 5)], []),
    "relu": (lambda: F.relu, [(3, 4)], []),
    "gelu_tanh": (lambda: lambda x: F.gelu(x, approximate="tanh"), [(3, 4)], []),
    "bias_gelu": (lambda: F.bias_gelu, [(3, 4), (4,)], []),
    "scale_residual": (lambda: F.scale_residual, [(3, 4), (3, 4), (4,), (4,)], []),
    "inception_nhwc": (
        lambda: lambda x, w1, b1, w2, w3: F.inception_dwconv2d(
            x, w1, b1, w2, None, w3, None, data_format="NHWC"),
        [(1, 3, 4, 8), (2, 1, 3, 3), (2,), (2, 1, 1, 3), (2, 1, 3, 1)], []),
    "adaptive_avg_pool2d": (lambda: lambda x: F.adaptive_avg_pool2d(x, (2, 2)), [(1, 2, 3, 5)],
                            []),
}


@runs_kernels
@pytest.mark.parametrize("name", sorted(_CASES))
def test_vjp_on_device_equals_cpu(name):
    make, arg_shapes, const_shapes = _CASES[name]
    rng = np.random.default_rng(8)
    args = [_rand(rng, s, _F32) for s in arg_shapes]
    consts = [(rng.random(s) + 0.5).astype(_F32) for s in const_shapes]
    _vjp_on_both(make, args, consts)


@runs_kernels
def test_batch_norm_module_trains_on_device():
    """The facade: BatchNorm2d in training mode on the device updates its held running
    statistics (and the batch counter) on the device, as on the CPU."""
    x = _rand(np.random.default_rng(9), (2, 3, 2, 2), _F32, 1.0)
    cpu_bn, dev_bn = lucid.nn.BatchNorm2d(3).train(), lucid.nn.BatchNorm2d(3).train()
    want = cpu_bn(x)
    if "cuda" not in _add_int_impls():   # lucid.numpy's add_int on the device: another branch
        dev_bn.state = {**lucid.device_put(dev_bn.state, "cuda"),
                        "num_batches_tracked": dev_bn.state["num_batches_tracked"]}
        dev_bn.params = lucid.device_put(dev_bn.params, "cuda")
    else:
        dev_bn.to("cuda")
    xd = lucid.device_put(x, "cuda")
    with device_to_host_copies() as seen:
        got = dev_bn(xd)
    assert seen == []
    np.testing.assert_allclose(lucid.device_get(got), want, rtol=1e-4, atol=1e-5)
    for k, v in cpu_bn.state.items():
        np.testing.assert_allclose(np.asarray(lucid.device_get(dev_bn.state[k])), v, rtol=1e-5)
    assert int(lucid.device_get(dev_bn.state["num_batches_tracked"])) == 1


def _add_int_impls():
    from lucid.numpy._binary import add_int_p
    _cuda_impls.install()
    return add_int_p.impls


def _float64(tree):
    return lucid.tree.map(lambda a: a.astype(np.float64) if a.dtype.kind == "f" else a, tree)


@runs_kernels
def test_small_inception_next_training_step_on_device_equals_cpu():
    """Train-mode forward (batch statistics) + cross-entropy + backward on the device: the
    loss, every parameter gradient and every new BatchNorm statistic equal to the CPU's
    within 1e-4 relative, with no device->host copy until they are read.

    Several of these are mathematically zero (the stem conv's bias and the downsampling
    BatchNorms' shifts feed a later BatchNorm, which removes per-channel shifts; the mixer's
    identity channels keep the stem BN's zero mean): there both sides hold float32 rounding
    noise of sums of O(1) terms. Each leaf's tolerance therefore also admits 4x the CPU's own
    float32 error (its distance to the float64 CPU result), which is ~0 for the other leaves.
    """
    from lucid.models import inception_next as module
    cfg = module.InceptionNeXtConfig(num_classes=5, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32),
                                     drop_path_rate=0.0)
    params, state = module.init(lucid.random.key(0), cfg)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = np.array([1, 3])

    def loss_fn(p, s, x, y):
        logits, new_state = module.apply(p, x, state=s, train=True, config=cfg)
        return F.cross_entropy(logits, y, label_smoothing=0.1), new_state

    step = lucid.value_and_grad(loss_fn, has_aux=True)
    (want_loss, want_state), want = step(params, state, x, y)
    (_, exact_state), exact = step(*_float64((params, state, x)), y)
    p, s, xd, yd = lucid.device_put((params, state, x, y), "cuda")
    if "cuda" not in _add_int_impls():   # the counters stay host arrays (see above)
        s = lucid.tree.map(lambda d, h: h if np.asarray(h).dtype.kind == "i" else d, s, state)
    with device_to_host_copies() as seen:
        (loss, new_state), grads = step(p, s, xd, yd)
    assert seen == []
    assert abs(float(loss) - float(want_loss)) <= 1e-4 * abs(float(want_loss))
    triples = list(zip(lucid.tree.leaves(grads), lucid.tree.leaves(want),
                       lucid.tree.leaves(exact)))
    triples += list(zip(lucid.tree.leaves(new_state), lucid.tree.leaves(want_state),
                        lucid.tree.leaves(exact_state)))
    assert len(triples) == len(lucid.tree.leaves(want)) + len(lucid.tree.leaves(want_state))
    for got, ref, ref64 in triples:
        got, ref = np.asarray(lucid.device_get(got)), np.asarray(ref)
        noise = np.abs(ref - np.asarray(ref64)).max()
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max() + 4 * noise)


@runs_kernels
def test_strided_device_view_is_a_clear_error():
    xd = lucid.device_put(np.ones((2, 6), np.float32), "cuda")
    with pytest.raises(ValueError, match="expected a C-contiguous device array"):
        F.softmax(xd[:, ::2])
