"""lucid.nn.functional.conv2d: every path against a NumPy oracle, VJPs, bad inputs, kernels."""
import numpy as np
import pytest

import lucid
import lucid.numpy as lnp
from lucid.kernels.cpu import conv as K
from lucid.nn import functional as F
from lucid.nn._conv import _Geometry, _select_path
from gradcheck import check_vjp, rel_err


def oracle_conv(x, w, b, stride, pads, groups):
    """Plain NCHW float64 convolution: one einsum per tap and group."""
    (pt, pb), (pl, pr) = pads
    sh, sw = stride
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    N, _, H, W = xp.shape
    O, Cg, kh, kw = w.shape
    Ho, Wo, Og = (H - kh) // sh + 1, (W - kw) // sw + 1, O // groups
    out = np.zeros((N, O, Ho, Wo))
    for g in range(groups):
        xg, wg = xp[:, g * Cg:(g + 1) * Cg], np.asarray(w[g * Og:(g + 1) * Og], np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xg[:, :, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
                out[:, g * Og:(g + 1) * Og] += np.einsum("nchw,oc->nohw", patch, wg[:, :, i, j])
    return out if b is None else out + np.asarray(b, np.float64)[None, :, None, None]


def _pads(padding, kh, kw):
    if padding == "same":
        return ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)
    if padding == "valid":
        return (0, 0), (0, 0)
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    if isinstance(padding[0], int):
        return (padding[0], padding[0]), (padding[1], padding[1])
    return padding


# name: (C_in, C_out, groups, (kh, kw), stride, padding, (H, W), expected path)
CASES = {
    "dw7x7_same": (8, 8, 8, (7, 7), 1, "same", (9, 10), "depthwise"),
    "dw7x7_wide": (4, 4, 4, (7, 7), 1, 3, (6, 21), "depthwise"),
    "dw7x7_asym": (3, 3, 3, (7, 7), 1, ((1, 5), (4, 2)), (5, 16), "depthwise"),
    "dw3x3_p1": (5, 5, 5, (3, 3), 1, 1, (6, 7), "depthwise"),
    "dw1x11": (4, 4, 4, (1, 11), 1, (0, 5), (5, 12), "depthwise"),
    "dw11x1": (4, 4, 4, (11, 1), 1, (5, 0), (12, 5), "depthwise"),
    "dw1x9": (3, 3, 3, (1, 9), 1, "same", (4, 9), "depthwise"),
    "dw9x1": (3, 3, 3, (9, 1), 1, "same", (9, 4), "depthwise"),
    "dw3x3_asym": (6, 6, 6, (3, 3), 1, ((1, 2), (0, 3)), (5, 6), "depthwise"),
    "dw3x3_s2": (4, 4, 4, (3, 3), 2, 1, (9, 8), "depthwise"),
    "dw7x7_s2": (3, 3, 3, (7, 7), 2, 3, (13, 12), "depthwise"),
    "dw5x4_s3_asym": (4, 4, 4, (5, 4), (3, 2), ((2, 0), (1, 3)), (11, 9), "depthwise"),
    "dw4x4_same_even": (3, 3, 3, (4, 4), 1, "same", (6, 7), "depthwise"),
    "pw1x1": (6, 5, 1, (1, 1), 1, 0, (4, 5), "pointwise"),
    "patch4x4s4": (3, 8, 1, (4, 4), 4, 0, (16, 12), "patchify"),
    "patch4x4s4_floor": (3, 4, 1, (4, 4), 4, "valid", (122, 138), "patchify"),
    "patch2x2s2_odd": (5, 6, 1, (2, 2), 2, 0, (7, 9), "patchify"),
    "patch2x3s2x3": (2, 3, 1, (2, 3), (2, 3), 0, (5, 8), "patchify"),
    "gen3x3_g1": (3, 4, 1, (3, 3), 1, 1, (6, 5), "general"),
    "gen3x3_g2_s2": (4, 6, 2, (3, 3), 2, 1, (9, 8), "general"),
    "gen5x3_g1_s3_asym": (3, 2, 1, (5, 3), 3, ((2, 1), (0, 2)), (10, 11), "general"),
    "gen1x1_s2": (4, 3, 1, (1, 1), 2, 0, (5, 6), "general"),
    "gen1x1_padded": (4, 3, 1, (1, 1), 1, 1, (3, 4), "general"),
    "gen_dw_multiplier": (3, 6, 3, (3, 3), 1, 1, (5, 5), "general"),
    "gen_patch_padded": (2, 3, 1, (2, 2), 2, 1, (5, 6), "general"),
    "gen_groups_C_1x1": (4, 8, 4, (1, 1), 1, 0, (3, 3), "general"),
    "gen_2x2_same": (2, 3, 1, (2, 2), 1, "same", (4, 5), "general"),
}


def _make(case, n, dtype, seed=0, bias=True):
    C, O, groups, (kh, kw), stride, padding, (H, W), _ = CASES[case]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    return x, w, b, dict(stride=stride, padding=padding, groups=groups)


@pytest.mark.parametrize("case", sorted(CASES))
def test_path_selection(case):
    C, O, groups, (kh, kw), stride, padding, (H, W), path = CASES[case]
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    (pt, pb), (pl, pr) = _pads(padding, kh, kw)
    geo = _Geometry(kh, kw, sh, sw, pt, pb, pl, pr, groups,
                    (H + pt + pb - kh) // sh + 1, (W + pl + pr - kw) // sw + 1)
    assert _select_path(C, O, geo) == path


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_oracle(case, dtype, data_format, n):
    x, w, b, kw = _make(case, n, dtype)
    kh_, kw_ = w.shape[2:]
    stride = (kw["stride"],) * 2 if isinstance(kw["stride"], int) else kw["stride"]
    ref = oracle_conv(x, w, b, stride, _pads(kw["padding"], kh_, kw_), kw["groups"])
    if data_format == "NHWC":
        out = F.conv2d(x.transpose(0, 2, 3, 1), w, b, data_format="NHWC", **kw)
        out = out.transpose(0, 3, 1, 2)
    else:
        out = F.conv2d(x, w, b, **kw)
    assert out.dtype == dtype and out.shape == ref.shape
    assert rel_err(out, ref) < (2e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("case", ["dw7x7_same", "dw7x7_wide", "dw7x7_asym", "dw3x3_asym",
                                  "dw4x4_same_even", "dw5x4_s3_asym", "pw1x1", "patch2x2s2_odd",
                                  "gen3x3_g2_s2", "gen5x3_g1_s3_asym", "gen_dw_multiplier"])
@pytest.mark.parametrize("argnum", [0, 1, 2])
def test_vjp(case, argnum):
    x, w, b, kw = _make(case, 2, np.float64, seed=1)
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    check_vjp(lambda x, w, b: F.conv2d(x, w, b, data_format="NHWC", **kw), [xh, w, b],
              argnums=[argnum])


@pytest.mark.parametrize("case", ["dw3x3_s2", "patch4x4s4", "gen1x1_padded", "pw1x1"])
def test_vjp_nchw_without_bias(case):
    x, w, _, kw = _make(case, 2, np.float64, seed=2, bias=False)
    check_vjp(lambda x, w: F.conv2d(x, w, None, **kw), [x, w])


def test_patchify_gives_zero_gradient_to_dropped_pixels():
    x, w, b, kw = _make("patch2x2s2_odd", 1, np.float64)  # 7x9 input, 2x2 patches
    _, vjp_fn = lucid.vjp(lambda x: F.conv2d(x, w, b, **kw), x)
    (gx,) = vjp_fn(np.ones((1, 6, 3, 4)))
    assert np.all(gx[:, :, 6, :] == 0) and np.all(gx[:, :, :, 8] == 0)
    assert np.all(gx[:, :, :6, :8] != 0)


def test_mixed_dtypes_are_rejected():
    x, w, b, kw = _make("gen3x3_g1", 1, np.float32)
    with pytest.raises(TypeError, match="conv2d: all arrays must share one dtype"):
        F.conv2d(x, w.astype(np.float64), b, **kw)
    with pytest.raises(TypeError, match="conv2d: all arrays must share one dtype"):
        F.conv2d(x, w, b.astype(np.float64), **kw)


def test_padding_forms_agree():
    x, w, b, _ = _make("gen3x3_g1", 1, np.float64)
    ref = F.conv2d(x, w, b, padding=((1, 1), (1, 1)))
    for padding in (1, (1, 1), [1, 1], "same", np.int64(1)):
        np.testing.assert_array_equal(F.conv2d(x, w, b, padding=padding), ref)
    np.testing.assert_array_equal(F.conv2d(x, w, b, padding="valid"), F.conv2d(x, w, b))


# ----------------------------------------------------------------------------- bad inputs

def _ok():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((1, 4, 5, 5)).astype(np.float32),
            rng.standard_normal((6, 2, 3, 3)).astype(np.float32),
            np.zeros(6, np.float32))


@pytest.mark.parametrize("change, error, match", [
    (dict(x=np.zeros((4, 5, 5), np.float32)), ValueError, "x must be 4-D"),
    (dict(w=np.zeros((6, 2, 3), np.float32)), ValueError, "w must be 4-D"),
    (dict(w=np.zeros((6, 0, 3, 3), np.float32)), ValueError, "no empty dimension"),
    (dict(groups=1), ValueError, "4 input channels .* = 2"),
    (dict(w=np.zeros((5, 2, 3, 3), np.float32)), ValueError, "not divisible by groups"),
    (dict(b=np.zeros(5, np.float32)), ValueError, r"b must have shape \(6,\)"),
    (dict(b=np.zeros((6, 1), np.float32)), ValueError, "b must be 1-D"),
    (dict(stride=0), ValueError, "stride must be positive"),
    (dict(stride=(1, -2)), ValueError, "stride must be positive"),
    (dict(stride=1.5), TypeError, "stride must be an int"),
    (dict(stride=True), TypeError, "stride must be an int"),
    (dict(padding=-1), ValueError, "padding must be non-negative"),
    (dict(padding=((0, 1), (-1, 0))), ValueError, "padding must be non-negative"),
    # int64 index arithmetic in the kernels: strides and paddings stay below 2**31
    (dict(stride=(2 ** 31, 1)), ValueError, r"stride must be positive \(at most 2\*\*31 - 1\)"),
    (dict(stride=2 ** 62), ValueError, "stride must be positive"),
    (dict(padding=((0, 2 ** 31), (0, 0))), ValueError, "padding must be non-negative"),
    # refused before allocating: the message names the op and the size
    (dict(padding=3 * 10 ** 5), ValueError, r"output of shape \(1, 600003, 600003, 6\).*TiB"),
    (dict(padding="full"), ValueError, "'same' or 'valid'"),
    (dict(padding=(1, 2, 3)), TypeError, "padding must be an int or a pair"),
    (dict(padding="same", stride=2), ValueError, "padding='same' needs stride 1"),
    (dict(w=np.zeros((6, 2, 7, 3), np.float32)), ValueError, "larger than the padded input"),
    (dict(x=np.zeros((1, 4, 5, 5), np.int64)), TypeError, "x must be a float32 or float64"),
    (dict(w=np.zeros((6, 2, 3, 3), np.float16)), TypeError, "w must be a float32 or float64"),
    (dict(b=np.zeros(6, np.int32)), TypeError, "b must be a float32 or float64"),
    (dict(x="image"), TypeError, "x must be a float32 or float64"),
    (dict(groups=0), ValueError, "groups must be positive"),
    (dict(groups=2.0), TypeError, "groups must be an int"),
    (dict(data_format="NWHC"), ValueError, "data_format must be"),
])
def test_bad_input(change, error, match):
    x, w, b = _ok()
    args = dict(x=x, w=w, b=b, stride=1, padding=0, groups=2)
    args.update(change)
    fmt = args.pop("data_format", "NCHW")
    with pytest.raises(error, match="lucid.nn.functional.conv2d: .*" + match):
        F.conv2d(args.pop("x"), args.pop("w"), args.pop("b"), data_format=fmt, **args)


def test_im2col_buffer_refused_before_allocation(monkeypatch):
    """The output fits the cap but the general path's kh*kw times bigger patch matrix not."""
    monkeypatch.setenv("LUCID_MAX_ALLOC_BYTES", str(4 * 6 * 40 * 40))
    x = np.zeros((1, 4, 40, 40), np.float32)
    w = np.zeros((6, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"conv2d: the im2col buffer of shape \(1600, 36\)"):
        F.conv2d(x, w, padding=1, groups=2)
    monkeypatch.delenv("LUCID_MAX_ALLOC_BYTES")
    assert F.conv2d(x, w, padding=1, groups=2).shape == (1, 6, 40, 40)


def test_nhwc_channel_mismatch_is_read_from_the_last_axis():
    x, w, b = _ok()  # x has 4 channels in NCHW, 5 in NHWC
    with pytest.raises(ValueError, match=r"conv2d: x has 5 input channels \(NHWC\)"):
        F.conv2d(x, w, b, groups=2, data_format="NHWC")


def test_validation_sees_tracers():
    x, w, b = _ok()
    with pytest.raises(ValueError, match="conv2d: .*not divisible by groups"):
        lucid.grad(lambda w: F.conv2d(x, w, b, groups=2).sum())(w[:5])


# ----------------------------------------------------------------------------- kernels

def _nhwc(n, h, w, c, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(dtype)


def _patches(x, kh, kw, sh, sw, pt, pb, pl, pr, Ho, Wo):
    """(N, Ho, Wo, kh, kw, C) view-based oracle of the patch each output reads."""
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    return np.stack([np.stack([xp[:, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw]
                               for j in range(kw)], axis=3) for i in range(kh)], axis=3)


KGEOM = [  # (N, H, W, C, kh, kw, sh, sw, pt, pb, pl, pr)
    (1, 6, 23, 5, 7, 7, 1, 1, 3, 3, 3, 3),   # 7-wide stride-1 rows: 4-output blocks + tails
    (2, 5, 17, 3, 7, 7, 1, 1, 2, 4, 2, 4),   # ... with asymmetric padding
    (1, 4, 5, 2, 7, 7, 1, 1, 3, 3, 3, 3),    # ... rows narrower than the kernel
    (1, 8, 12, 3, 5, 7, 1, 1, 0, 0, 0, 0),   # ... unpadded
    (2, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1),
    (1, 9, 8, 3, 7, 7, 1, 1, 3, 3, 3, 3),
    (2, 8, 9, 4, 3, 2, 2, 3, 0, 2, 1, 0),
    (1, 5, 11, 2, 1, 11, 1, 1, 0, 0, 5, 5),
    (1, 13, 9, 3, 7, 3, 2, 1, 3, 2, 1, 1),
    (2, 14, 10, 4, 9, 3, 3, 2, 4, 4, 0, 2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", KGEOM)
def test_depthwise_kernels(geom, dtype):
    N, H, W, C, kh, kw, sh, sw, pt, pb, pl, pr = geom
    Ho, Wo = (H + pt + pb - kh) // sh + 1, (W + pl + pr - kw) // sw + 1
    x, g = _nhwc(N, H, W, C, dtype), _nhwc(N, Ho, Wo, C, dtype, seed=1)
    w, b = _nhwc(1, kh, kw, C, dtype, seed=2)[0], _nhwc(1, 1, 1, C, dtype, seed=3).ravel()
    P = _patches(x.astype(np.float64), kh, kw, sh, sw, pt, pb, pl, pr, Ho, Wo)
    out = np.empty((N, Ho, Wo, C), dtype)
    K.depthwise_fwd(x, w, b, sh, sw, pt, pl, out)
    assert rel_err(out, np.einsum("nhwijc,ijc->nhwc", P, w) + b) < 1e-6
    gw, gb = np.empty_like(w), np.empty_like(b)
    K.depthwise_bwd_w(g, x, sh, sw, pt, pl, gw, gb)
    assert rel_err(gw, np.einsum("nhwijc,nhwc->ijc", P, g)) < 1e-6
    assert rel_err(gb, g.sum(axis=(0, 1, 2))) < 1e-6
    gx = np.empty_like(x)
    K.depthwise_bwd_x(g, w, sh, sw, pt, pl, gx)
    # adjoint identity: <fwd(x) - b, g> == <x, bwd_x(g)>
    scale = np.sum(np.abs(out.astype(np.float64) - b) * np.abs(g))
    lhs = np.sum((out.astype(np.float64) - b) * g)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert abs(lhs - np.sum(x.astype(np.float64) * gx)) < tol * scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", KGEOM + [(2, 9, 7, 3, 2, 2, 2, 2, 0, 0, 0, 0)])
@pytest.mark.parametrize("groups", [1, 2])
def test_im2col_col2im(geom, groups, dtype):
    N, H, W, C, kh, kw, sh, sw, pt, pb, pl, pr = geom
    C *= groups
    Ho, Wo = (H + pt + pb - kh) // sh + 1, (W + pl + pr - kw) // sw + 1
    x = _nhwc(N, H, W, C, dtype)
    cols = np.empty((groups, N * Ho * Wo, kh * kw * C // groups), dtype)
    K.im2col(x, kh, kw, sh, sw, pt, pl, Ho, Wo, cols)
    P = _patches(x, kh, kw, sh, sw, pt, pb, pl, pr, Ho, Wo)
    P = P.reshape(N * Ho * Wo, kh * kw, groups, C // groups).transpose(2, 0, 1, 3)
    np.testing.assert_array_equal(cols, P.reshape(cols.shape))
    c = np.random.default_rng(4).standard_normal(cols.shape).astype(dtype)
    gx = np.empty_like(x)
    K.col2im(c, kh, kw, sh, sw, pt, pl, Ho, Wo, gx)
    ref = np.zeros((N, H + pt + pb, W + pl + pr, C))  # scatter-add oracle in padded space
    cp = c.reshape(groups, N, Ho, Wo, kh, kw, C // groups)
    for i in range(kh):
        for j in range(kw):
            ref[:, i:i + sh * (Ho - 1) + 1:sh, j:j + sw * (Wo - 1) + 1:sw] += \
                cp[:, :, :, :, i, j].transpose(1, 2, 3, 0, 4).reshape(N, Ho, Wo, C)
    assert rel_err(gx, ref[:, pt:pt + H, pl:pl + W]) < 1e-6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k", [((2, 8, 12, 3), (4, 4)), ((1, 7, 9, 5), (2, 2)),
                                      ((2, 5, 8, 2), (2, 3))])
def test_space_to_depth_kernels(shape, k, dtype):
    (N, H, W, C), (kh, kw) = shape, k
    Ho, Wo = H // kh, W // kw
    x = _nhwc(N, H, W, C, dtype)
    cols = np.empty((N * Ho * Wo, C * kh * kw), dtype)
    K.space_to_depth(x, kh, kw, Ho, Wo, cols)
    ref = x[:, :Ho * kh, :Wo * kw].reshape(N, Ho, kh, Wo, kw, C).transpose(0, 1, 3, 5, 2, 4)
    np.testing.assert_array_equal(cols, ref.reshape(cols.shape))
    back = np.full_like(x, np.nan)
    K.depth_to_space(cols, kh, kw, Ho, Wo, back)
    expected = np.zeros_like(x)
    expected[:, :Ho * kh, :Wo * kw] = x[:, :Ho * kh, :Wo * kw]
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 3), (7, 5), (40, 16)])
def test_bias_kernels(shape, dtype):
    rng = np.random.default_rng(5)
    y, b = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    expected = y + b
    K.bias_add(y, b)
    np.testing.assert_array_equal(y, expected)
    gb = np.full_like(b, np.nan)
    K.bias_grad(y, gb)
    assert rel_err(gb, y.astype(np.float64).sum(axis=0)) < (1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("pad", [6, 7, 8, 20])
def test_depthwise_input_grad_padding_wider_than_kernel(pad):
    """Regression: the stride-1 depthwise input gradient runs the forward kernel with padding
    kw-1-pad, negative here; it used to write before its output row (heap corruption at 20,
    a doubled last column at 7). Oracle: each input pixel's gradient is the sum of the taps
    that land on it."""
    rng = np.random.default_rng(pad)
    x = rng.random((1, 16, 3, 3)).astype("f4")
    w = rng.random((16, 1, 7, 7)).astype("f4")
    gx = lucid.grad(lambda x: lnp.sum(F.conv2d(x, w, padding=pad, groups=16)))(x)
    H = W = 3
    Ho, Wo = H + 2 * pad - 6, W + 2 * pad - 6
    ref = np.zeros((1, 16, H + 2 * pad, W + 2 * pad))
    for i in range(7):
        for j in range(7):
            ref[:, :, i:i + Ho, j:j + Wo] += w[None, :, 0, i, j, None, None]
    np.testing.assert_allclose(gx, ref[:, :, pad:pad + H, pad:pad + W], rtol=1e-5)
