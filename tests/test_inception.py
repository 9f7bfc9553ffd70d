"""F.inception_dwconv2d (InceptionNeXt's token mixer in one pass) against the split /
conv2d / concatenate chain it replaces, finite differences, and its argument checks."""
import numpy as np
import pytest

import lucid
import lucid.numpy as lnp
import lucid.nn.functional as F
from tests.gradcheck import check_vjp

# (C, gc, square k, band kb, H, W): timm's defaults, atto's (gc = C/4, kb = 9), bands
# wider than the image, a single row, and no identity channels.
CONFIGS = [(16, 2, 3, 11, 6, 13), (8, 2, 3, 9, 5, 4), (9, 3, 5, 7, 1, 9), (6, 2, 3, 3, 7, 5)]


def _args(C, gc, k, kb, H, W, dtype, n=2, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, H, W, C)).astype(dtype)
    ws = [rng.standard_normal(s).astype(dtype) for s in
          [(gc, 1, k, k), (gc, 1, 1, kb), (gc, 1, kb, 1)]]
    bs = [rng.standard_normal(gc).astype(dtype) if bias else None for _ in range(3)]
    return x, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2]


def _chain(x, w_hw, b_hw, w_w, b_w, w_h, b_h):
    """timm's InceptionDWConv2d, NHWC: split, three depthwise convs, concatenate."""
    gc, C = w_hw.shape[0], x.shape[3]
    c_id = C - 3 * gc
    parts = lnp.split(x, [c_id, c_id + gc, c_id + 2 * gc], axis=3)
    outs = [parts[0]]
    for part, w, b in zip(parts[1:], (w_hw, w_w, w_h), (b_hw, b_w, b_h)):
        pad = ((w.shape[2] - 1) // 2, (w.shape[3] - 1) // 2)
        outs.append(F.conv2d(part, w, b, padding=pad, groups=gc, data_format="NHWC"))
    return lnp.concatenate(outs, axis=3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS)
def test_equals_the_split_conv_concatenate_chain(config, dtype):
    args = _args(*config, dtype)
    ref = _chain(*args)
    out = F.inception_dwconv2d(*args, data_format="NHWC")
    assert out.dtype == dtype and out.shape == args[0].shape
    np.testing.assert_allclose(out, ref, rtol=1e-6 if dtype == np.float32 else 1e-13,
                               atol=1e-6 if dtype == np.float32 else 1e-13)
    c_id = config[0] - 3 * config[1]
    np.testing.assert_array_equal(out[..., :c_id], args[0][..., :c_id])   # identity is exact
    nchw = F.inception_dwconv2d(args[0].transpose(0, 3, 1, 2), *args[1:])
    np.testing.assert_array_equal(nchw, out.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("config", CONFIGS[:3])
def test_gradients_match_finite_differences_and_the_chain(config):
    args = _args(*config, np.float64, seed=1)
    f = lambda *a: F.inception_dwconv2d(*a, data_format="NHWC")
    check_vjp(f, args)
    cot = np.random.default_rng(2).standard_normal(args[0].shape)
    _, vjp = lucid.vjp(f, *args)
    _, vjp_ref = lucid.vjp(_chain, *args)
    for got, want in zip(vjp(cot), vjp_ref(cot)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_without_biases_and_in_nchw():
    args = _args(16, 2, 3, 11, 4, 6, np.float64, seed=3, bias=False)
    x = np.ascontiguousarray(args[0].transpose(0, 3, 1, 2))
    check_vjp(lambda x, a, c, e: F.inception_dwconv2d(x, a, None, c, None, e, None),
              [x, args[1], args[3], args[5]])
    grads = lucid.vjp(lambda *a: F.inception_dwconv2d(*a), x, *args[1:])[1](np.ones_like(x))
    assert grads[2] is None and grads[4] is None and grads[6] is None


def test_the_module_runs_the_fused_op_and_matches_the_chain():
    mixer = lucid.nn.InceptionDWConv2d(16, band_kernel_size=11)
    params, _ = mixer.init(lucid.random.key(0))
    p = lucid.tree.map(lambda a: a + np.float32(0.1) * lucid.random.normal(lucid.random.key(2),
                                                                       a.shape), params)
    x = lucid.random.normal(lucid.random.key(1), (2, 16, 6, 13))
    ref = _chain(np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
                 p["dwconv_hw"]["weight"], p["dwconv_hw"]["bias"], p["dwconv_w"]["weight"],
                 p["dwconv_w"]["bias"], p["dwconv_h"]["weight"], p["dwconv_h"]["bias"])
    np.testing.assert_allclose(mixer.apply(p, x), ref.transpose(0, 3, 1, 2), atol=1e-6)


def _bad(**changes):
    args = list(_args(16, 2, 3, 11, 4, 5, np.float32))
    names = ["x", "w_hw", "b_hw", "w_w", "b_w", "w_h", "b_h"]
    for name, value in changes.items():
        args[names.index(name)] = value
    return args


@pytest.mark.parametrize("changes, error, match", [
    (dict(w_w=np.zeros((2, 1, 1, 10), np.float32)), ValueError, "w_w needs odd kernel sizes"),
    (dict(w_h=np.zeros((3, 1, 11, 1), np.float32)), ValueError, "w_h must be a depthwise weight"),
    (dict(w_hw=np.zeros((2, 2, 3, 3), np.float32)), ValueError, "w_hw must be a depthwise"),
    (dict(x=np.zeros((1, 4, 5, 5), np.float32)), ValueError, "need at least 6 channels"),
    (dict(x=np.zeros((4, 5, 16), np.float32)), ValueError, "x must be 4-D"),
    (dict(b_w=np.zeros(3, np.float32)), ValueError, r"b_w must have shape \(2,\)"),
    (dict(b_h=np.zeros(2, np.float64)), TypeError, "all arrays must share one dtype"),
    (dict(x=np.zeros((1, 4, 5, 16), np.int32)), TypeError, "x must be a float32 or float64"),
])
def test_bad_arguments_get_clear_errors(changes, error, match):
    with pytest.raises(error, match=f"inception_dwconv2d: .*{match}|{match}"):
        F.inception_dwconv2d(*_bad(**changes), data_format="NHWC")
    with pytest.raises(ValueError, match="data_format must be 'NCHW' or 'NHWC'"):
        F.inception_dwconv2d(*_bad(), data_format="HWC")
