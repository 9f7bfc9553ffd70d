"""The device-side bodies of the nn primitives (``lucid._cuda_ops``) against lucid's CPU
primitives: values and gradients (``lucid.vjp`` on host arrays), float32 and float64."""
import numpy as np
import pytest
from numba import cuda

import lucid
import lucid.nn.functional as F
from lucid import _cuda_ops as ops
from lucid.nn._conv import _Geometry, _select_path

from _twin import assert_close, runs_kernels

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def _dev(*arrays):
    return [None if a is None else cuda.to_device(a) for a in arrays]


def _host(a):
    return None if a is None else a.copy_to_host()


def _check(got, want, dtype):
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            assert_close(_host(g), w, **_tol(dtype))


# (x NCHW, w, stride, padding, groups): depthwise 7x7 'same', patchify (stem), pointwise,
# a strided grouped 3x3 (the general path).
CONVS = [((2, 4, 7, 6), (4, 1, 7, 7), 1, 3, 4), ((2, 3, 8, 8), (5, 3, 4, 4), 4, 0, 1),
         ((2, 6, 3, 4), (5, 6, 1, 1), 1, 0, 1), ((1, 4, 7, 6), (6, 2, 3, 3), 2, 1, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xs, ws, s, p, groups", CONVS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv2d(dtype, xs, ws, s, p, groups, channels_last):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    fmt = "NHWC" if channels_last else "NCHW"
    out, vjp_fn = lucid.vjp(lambda x, w, b: F.conv2d(x, w, b, s, p, groups, data_format=fmt),
                            x, w, b)
    g = rng.standard_normal(out.shape).astype(dtype)
    want = vjp_fn(g)
    H, W = (x.shape[1], x.shape[2]) if channels_last else x.shape[2:]
    kh, kw = ws[2:]
    geo = _Geometry(kh, kw, s, s, p, p, p, p, groups, (H + 2 * p - kh) // s + 1,
                    (W + 2 * p - kw) // s + 1)
    path = _select_path(ws[1] * groups, ws[0], geo)
    xd, wd, bd, gd = _dev(x, w, b, g)
    _check([ops.conv2d_fwd(xd, wd, bd, geo, path, channels_last)], [out], dtype)
    into, = _dev(np.full(out.shape, np.nan, dtype))   # the primitive's preallocated output
    assert ops.conv2d_fwd(xd, wd, bd, geo, path, channels_last, into) is into
    _check([into], [out], dtype)
    _check(ops.conv2d_bwd(gd, xd, wd, bd, geo, path, channels_last), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inception_mixer(dtype):
    rng = np.random.default_rng(1)
    N, C, H, W, gc = 2, 9, 5, 6, 2
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    ws = [rng.standard_normal((gc, 1) + k).astype(dtype) for k in ((3, 3), (1, 5), (5, 1))]
    bs = [rng.standard_normal(gc).astype(dtype), None, rng.standard_normal(gc).astype(dtype)]
    f = lambda x, a, b, c, d, e: F.inception_dwconv2d(x, a, b, c, None, e, d)  # noqa: E731
    out, vjp_fn = lucid.vjp(f, x, ws[0], bs[0], ws[1], bs[2], ws[2])
    g = rng.standard_normal(out.shape).astype(dtype)
    gx, gw0, gb0, gw1, gb2, gw2 = vjp_fn(g)
    xd, gd = _dev(x, g)
    wd, bd = _dev(*ws), _dev(*bs)
    _check([ops.inception_fwd(xd, wd, bd, False)], [out], dtype)
    dgx, dgws, dgbs = ops.inception_bwd(gd, xd, wd, bd, False)
    _check([dgx, *dgws, dgbs[0], dgbs[1], dgbs[2]], [gx, gw0, gw1, gw2, gb0, None, gb2], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wshape", [(5, 4), (5, 4, 1, 1)])
def test_linear(dtype, wshape):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 4)).astype(dtype), rng.standard_normal(wshape).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    out, vjp_fn = lucid.vjp(F.linear, x, w, b)
    g = rng.standard_normal(out.shape).astype(dtype)
    xd, wd, bd, gd = _dev(x, w, b, g)
    _check([ops.linear_fwd(xd, wd, bd)], [out], dtype)
    _check(ops.linear_bwd(gd, xd, wd, bd), vjp_fn(g), dtype)


@runs_kernels
def test_a_convnext_block_never_copies_to_the_host():
    """dwconv -> LN -> fc1 -> bias+GELU -> fc2 -> layer scale + residual, forward and
    backward through the device bodies: no device->host copy at any level."""
    from _count import device_to_host_copies
    from lucid import _cuda_layers as L
    rng = np.random.default_rng(3)
    C, N, H, W = 4, 2, 5, 5
    x = cuda.to_device(rng.standard_normal((N, H, W, C)).astype(np.float32))
    def dev(*shape):
        return cuda.to_device(rng.standard_normal(shape).astype(np.float32))

    wd, bd, ln_w, ln_b, gamma = dev(C, 1, 7, 7), dev(C), dev(C), dev(C), dev(C)
    w1, b1, w2 = dev(4 * C, C), dev(4 * C), dev(C, 4 * C)
    geo = _Geometry(7, 7, 1, 1, 3, 3, 3, 3, C, H, W)
    with device_to_host_copies() as seen:
        y = ops.conv2d_fwd(x, wd, bd, geo, "depthwise", True)
        z, mean, rstd = L.layer_norm_fwd(y, ln_w, ln_b, 1e-6, 3)
        h = ops.linear_fwd(z, w1, None)
        a = L.bias_gelu_fwd(h, b1)
        m = ops.linear_fwd(a, w2, None)
        out = L.scale_residual_fwd(x, m, gamma)
        g = out   # any cotangent on the device
        gx, gm, _, _ = L.scale_residual_bwd(g, m, gamma)
        ga, _, _ = ops.linear_bwd(gm, a, w2, None)
        gh, _ = L.bias_gelu_bwd(ga, h, b1)
        gz, _, _ = ops.linear_bwd(gh, z, w1, None)
        gy, _, _ = L.layer_norm_bwd(gz, y, ln_w, ln_b, mean, rstd, 3)
        ops.conv2d_bwd(gy, x, wd, bd, geo, "depthwise", True)
    assert seen == []
    with device_to_host_copies() as seen:   # the counter does see a readout
        out.copy_to_host()
    assert seen == [tuple(out.shape)]
