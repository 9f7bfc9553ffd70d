"""Device bodies of the norm, activation, fused, pooling and loss primitives
(``lucid._cuda_layers``) against lucid's CPU primitives: values and ``lucid.vjp``
gradients, float32 and float64."""
import numpy as np
import pytest
from numba import cuda

import lucid
import lucid.nn.functional as F
from lucid import _cuda_layers as L

from _twin import assert_close

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)


def _dev(*arrays):
    return [None if a is None else cuda.to_device(np.ascontiguousarray(a)) for a in arrays]


def _check(got, want, dtype):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            assert_close(g.copy_to_host(), w, **_tol(dtype))


def _ref(f, *args):
    """(out, grads) of f on the CPU for a random cotangent g; also returns g."""
    out, vjp_fn = lucid.vjp(f, *args)
    g = np.random.default_rng(9).standard_normal(np.shape(out)).astype(out.dtype)
    return out, vjp_fn(g), g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [1, 3])
def test_layer_norm(dtype, axis):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3, 4)).astype(dtype)
    w, b = rng.standard_normal(x.shape[axis]).astype(dtype), rng.standard_normal(x.shape[axis]).astype(dtype)
    out, want, g = _ref(lambda x, w, b: F.layer_norm(x, w, b, 1e-6, axis=axis), x, w, b)
    xd, wd, bd, gd = _dev(x, w, b, g)
    y, mean, rstd = L.layer_norm_fwd(xd, wd, bd, 1e-6, axis)
    _check([y], [out], dtype)
    _check(L.layer_norm_bwd(gd, xd, wd, bd, mean, rstd, axis), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis, layout", [(1, "mid"), (-1, "last")])
def test_batch_norm_eval(dtype, axis, layout):
    """(Train mode and the backward are the primitives' impls: tests/cuda/test_impls_nn.py.)"""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 4, 2, 5)) + 1).astype(dtype)
    C = x.shape[axis]
    rm, rv = rng.standard_normal(C).astype(dtype), rng.random(C).astype(dtype) + 0.5
    w = rng.standard_normal(C).astype(dtype)
    out = F.batch_norm(x, rm, rv, w, None, axis=axis)
    xd, rmd, rvd, wd = _dev(x, rm, rv, w)
    _check([L.batch_norm_eval_fwd(xd, rmd, rvd, wd, None, 1e-5, layout)], [out], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_and_fused(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 6)).astype(dtype)
    xd, = _dev(x)
    for name, f in (("relu", F.relu), ("gelu", F.gelu),
                    ("gelu_tanh", lambda v: F.gelu(v, approximate="tanh"))):
        out, (want,), g = _ref(f, x)
        y = L.activation_fwd(name, xd)
        _check([y], [out], dtype)
        _check([L.activation_bwd(name, *_dev(g), xd, y)], [want], dtype)
    b, gamma = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    bd, gammad = _dev(b, gamma)
    out, want, g = _ref(F.bias_gelu, x, b)
    _check([L.bias_gelu_fwd(xd, bd)], [out], dtype)
    _check(L.bias_gelu_bwd(*_dev(g), xd, bd), want, dtype)
    y = rng.standard_normal(x.shape).astype(dtype)
    yd, = _dev(y)
    out, want, g = _ref(F.scale_residual, x, y, gamma)
    _check([L.scale_residual_fwd(xd, yd, gammad)], [out], dtype)
    _check(L.scale_residual_bwd(*_dev(g), yd, gammad)[:3], want, dtype)
    out, want, g = _ref(F.scale_residual, x, y, gamma, b)
    _check([L.scale_residual_fwd(xd, yd, gammad, bd)], [out], dtype)
    _check(L.scale_residual_bwd(*_dev(g), yd, gammad, bd), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_global_avg_pool(dtype, fmt):
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5)).astype(dtype)
    out, (want,), g = _ref(lambda x: F.global_avg_pool(x, data_format=fmt), x)
    xd, gd = _dev(x, g)
    _check([L.global_avg_pool_fwd(xd, fmt == "NHWC")], [out], dtype)
    _check([L.global_avg_pool_bwd(gd, x.shape, fmt == "NHWC")], [want], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1])
def test_softmax(dtype, axis):
    x = np.random.default_rng(4).standard_normal((4, 7)).astype(dtype)
    xd, = _dev(x)
    for log, f in ((False, F.softmax), (True, F.log_softmax)):
        out, (want,), g = _ref(lambda v: f(v, axis=axis), x)
        y = L.softmax_fwd(xd, axis, log)
        _check([y], [out], dtype)
        _check([L.softmax_bwd(*_dev(g), y, axis, log)], [want], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy(dtype, reduction, soft):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 6)).astype(dtype)
    t = rng.random((5, 6)).astype(dtype) if soft else rng.integers(0, 6, 5)
    if soft:
        t /= t.sum(1, keepdims=True)
    out, vjp_fn = lucid.vjp(lambda x, t: F.cross_entropy(x, t, 0.1, reduction), x, t)
    g = np.asarray(rng.standard_normal(np.shape(out)), dtype)
    want = vjp_fn(g)
    xd, td, gd = _dev(x, t, g)
    loss, lse = L.cross_entropy_fwd(xd, td, 0.1, reduction)
    _check([loss], [out], dtype)
    _check(L.cross_entropy_bwd(gd, xd, td, lse, 0.1, reduction), want, dtype)
