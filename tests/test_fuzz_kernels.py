"""Hypothesis fuzz of the conv / pool / inception kernels against NumPy oracles (issue 10).

Values and both gradients (through ``lucid.vjp``) are compared with loops over taps
written here, independent of lucid's kernels. Shapes, strides and paddings are drawn
to reach every kernel branch: the four conv2d paths, paddings wider than the kernel
(every tap outside: the case that corrupted the heap), 7-wide stride-1 depthwise rows
(the blocked ``_row7``), H or W = 0, both layouts and both float dtypes.

The examples are derandomized (CI is reproducible) and few, so the file takes seconds.
:func:`test_fuzz_under_numba_boundscheck` runs this file once more in a subprocess with
``NUMBA_BOUNDSCHECK=1`` and a private ``NUMBA_CACHE_DIR``, where an out-of-bounds
index raises IndexError instead of silently reading or corrupting memory. The big
version, locally (minutes)::

    LUCID_FUZZ_EXAMPLES=2000 NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR=/tmp/lucid-bc \\
        python -m pytest tests/test_fuzz_kernels.py -k "not subprocess"
"""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lucid
from lucid.kernels.cpu import conv as K
from lucid.nn import functional as F
from lucid.nn._conv import _Geometry, _select_path

EXAMPLES = int(os.environ.get("LUCID_FUZZ_EXAMPLES", "25"))
# The bounds-checked subprocess compiles every kernel afresh; one dtype halves that (the
# index arithmetic does not depend on the dtype).
DTYPES = [np.dtype(d).type for d in os.environ.get("LUCID_FUZZ_DTYPES", "float32,float64")
          .split(",")]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
TOL = {np.float32: 2e-4, np.float64: 1e-10}


# ----------------------------------------------------------------------------- oracles

def _taps(xp, w, stride, out_hw):
    """For each tap (i, j): the strided window of the padded input it reads."""
    sh, sw = stride
    Ho, Wo = out_hw
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            yield i, j, (slice(None), slice(None), slice(i, i + sh * (Ho - 1) + 1, sh),
                         slice(j, j + sw * (Wo - 1) + 1, sw))


def oracle_conv_vjp(x, w, b, stride, pads, groups, g):
    """NCHW conv out, and (gx, gw, gb) for cotangent g, in float64 by per-tap einsums."""
    (pt, pb), (pl, pr) = pads
    x, w = x.astype(np.float64), w.astype(np.float64)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    N, C, Hp, Wp = xp.shape
    O, Cg, kh, kw = w.shape
    Ho, Wo = (Hp - kh) // stride[0] + 1, (Wp - kw) // stride[1] + 1
    xg = xp.reshape(N, groups, Cg, Hp, Wp)
    wg = w.reshape(groups, O // groups, Cg, kh, kw)
    gg = g.astype(np.float64).reshape(N, groups, O // groups, Ho, Wo)
    out = np.zeros((N, groups, O // groups, Ho, Wo))
    gxp, gw = np.zeros_like(xg), np.zeros_like(wg)
    for i, j, win in _taps(xp, w, stride, (Ho, Wo)):
        win = (slice(None),) + win          # the group axis
        out += np.einsum("ngchw,goc->ngohw", xg[win], wg[..., i, j])
        gxp[win] += np.einsum("ngohw,goc->ngchw", gg, wg[..., i, j])
        gw[..., i, j] += np.einsum("ngohw,ngchw->goc", gg, xg[win])
    out = out.reshape(N, O, Ho, Wo) + (0 if b is None else b.astype(np.float64)[:, None, None])
    gx = gxp.reshape(N, C, Hp, Wp)[:, :, pt:Hp - pb, pl:Wp - pr]
    return out, gx, gw.reshape(w.shape), g.astype(np.float64).sum(axis=(0, 2, 3))


def oracle_adaptive_pool(x, out_hw):
    """NCHW adaptive average pool (float64)."""
    N, C, H, W = x.shape
    oh, ow = out_hw
    out = np.zeros((N, C, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, h1 = (i * H) // oh, -(-(i + 1) * H // oh)
            w0, w1 = (j * W) // ow, -(-(j + 1) * W // ow)
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].astype(np.float64).mean(axis=(2, 3))
    return out


def oracle_adaptive_pool_vjp(shape, out_hw, g):
    N, C, H, W = shape
    oh, ow = out_hw
    gx = np.zeros(shape)
    for i in range(oh):
        for j in range(ow):
            h0, h1 = (i * H) // oh, -(-(i + 1) * H // oh)
            w0, w1 = (j * W) // ow, -(-(j + 1) * W // ow)
            gx[:, :, h0:h1, w0:w1] += g[:, :, i:i + 1, j:j + 1] / ((h1 - h0) * (w1 - w0))
    return gx


# ----------------------------------------------------------------------------- helpers

def _to_layout(a, nhwc):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if nhwc else a


def _from_layout(a, nhwc):
    return np.asarray(a).transpose(0, 3, 1, 2) if nhwc else np.asarray(a)


def _close(got, want, dtype, what):
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0)) / scale
    assert err <= TOL[dtype], f"{what}: relative error {err:.3g}"


@st.composite
def conv_cases(draw):
    """(path, x NCHW, w, b, stride, pads, groups, nhwc, dtype) covering all four paths."""
    path = draw(st.sampled_from(["depthwise", "pointwise", "patchify", "general"]))
    dtype = draw(st.sampled_from(DTYPES))
    N = draw(st.integers(1, 2))
    if path == "depthwise":
        C = draw(st.integers(1, 5))
        O, groups = C, C
        kh, kw = draw(st.integers(1, 7)), draw(st.sampled_from([1, 2, 3, 5, 7, 7]))
        stride = (draw(st.integers(1, 3)), draw(st.sampled_from([1, 1, 2, 3])))
    elif path == "general":
        groups = draw(st.integers(1, 3))
        C, O = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
        O += groups if C == O == groups else 0  # else it is the depthwise path
        kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    else:
        C, O, groups = draw(st.integers(2, 4)), draw(st.integers(1, 4)), 1
        kh = kw = 1 if path == "pointwise" else draw(st.integers(2, 4))
        stride = (kh, kw)
    if path in ("pointwise", "patchify"):
        pads = ((0, 0), (0, 0))
    else:  # wider than the kernel too, so the mirrored kw-1-pad of the adjoint is negative
        side = st.sampled_from([0, 0, 1, 2, 3, 5, 7, 9])
        pads = tuple((draw(side), draw(side)) for _ in range(2))
    H = draw(st.integers(max(0, kh - sum(pads[0])), 10))
    W = draw(st.integers(max(0, kw - sum(pads[1])), 12))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if draw(st.booleans()) else None
    return path, x, w, b, stride, pads, groups, draw(st.booleans()), dtype


# ----------------------------------------------------------------------------- tests

def _edge_case(C, H, W, k, pad, stride=(1, 1), groups=None, O=None, dtype=np.float32):
    rng = np.random.default_rng(k * 100 + pad)
    groups = C if groups is None else groups
    x = rng.standard_normal((1, C, H, W)).astype(dtype)
    w = rng.standard_normal((O or C, C // groups, k, k)).astype(dtype)
    return "edge", x, w, None, stride, ((pad, pad), (pad, pad)), groups, False, dtype


# Issue 10's cases (depthwise 7x7, stride 1, padding 7: doubled column; padding 20: heap
# corruption) and neighbours, always run: the mirrored padding 6 - pad of the adjoint is
# negative, so the blocked 7-wide rows start before output 0 unless clamped.
EDGE_CASES = [_edge_case(64, 3, 3, 7, 20), _edge_case(3, 3, 3, 7, 7), _edge_case(2, 5, 12, 7, 9),
              _edge_case(2, 4, 4, 3, 5, stride=(2, 1)), _edge_case(4, 3, 3, 3, 6, groups=2, O=6),
              _edge_case(2, 1, 1, 5, 8, stride=(3, 3), dtype=np.float64)]


@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: f"k{c[2].shape[2]}p{c[5][0][0]}")
def test_conv2d_edge_cases(case):
    test_conv2d_values_and_gradients.hypothesis.inner_test(case)


@FUZZ
@given(conv_cases())
def test_conv2d_values_and_gradients(case):
    drawn, x, w, b, stride, pads, groups, nhwc, dtype = case
    (pt, pb), (pl, pr) = pads
    Ho = (x.shape[2] + pt + pb - w.shape[2]) // stride[0] + 1
    Wo = (x.shape[3] + pl + pr - w.shape[3]) // stride[1] + 1
    geo = _Geometry(w.shape[2], w.shape[3], *stride, pt, pb, pl, pr, groups, Ho, Wo)
    path = _select_path(x.shape[1], w.shape[0], geo)  # a drawn "general" may be unpadded 1x1
    fmt = "NHWC" if nhwc else "NCHW"
    args = (_to_layout(x, nhwc), w) + (() if b is None else (b,))

    def f(xx, ww, *bb):
        return F.conv2d(xx, ww, bb[0] if bb else None, stride, pads, groups, data_format=fmt)

    out, vjp_fn = lucid.vjp(f, *args)
    g = np.random.default_rng(1).standard_normal((x.shape[0], w.shape[0], Ho, Wo))
    want, gx, gw, gb = oracle_conv_vjp(x, w, b, stride, pads, groups, g)
    _close(_from_layout(out, nhwc), want, dtype, f"{path} forward")
    grads = vjp_fn(_to_layout(g.astype(dtype), nhwc))
    _close(_from_layout(grads[0], nhwc), gx, dtype, f"{path} input gradient")
    _close(grads[1], gw, dtype, f"{path} weight gradient")
    if b is not None:
        _close(grads[2], gb, dtype, f"{path} bias gradient")


@FUZZ
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9),
       st.integers(1, 11), st.integers(1, 11), st.booleans(),
       st.sampled_from(DTYPES), st.integers(0, 2 ** 32 - 1))
def test_adaptive_avg_pool2d_values_and_gradients(N, C, H, W, oh, ow, nhwc, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    fmt = "NHWC" if nhwc else "NCHW"
    out, vjp_fn = lucid.vjp(lambda a: F.adaptive_avg_pool2d(a, (oh, ow), data_format=fmt),
                            _to_layout(x, nhwc))
    _close(_from_layout(out, nhwc), oracle_adaptive_pool(x, (oh, ow)), dtype, "forward")
    g = rng.standard_normal((N, C, oh, ow))
    (gx,) = vjp_fn(_to_layout(g.astype(dtype), nhwc))
    _close(_from_layout(gx, nhwc), oracle_adaptive_pool_vjp(x.shape, (oh, ow), g), dtype,
           "input gradient")


@FUZZ
@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6),
       st.booleans(), st.booleans(), st.sampled_from(DTYPES),
       st.integers(0, 2 ** 32 - 1))
def test_global_avg_pool_values_and_gradients(N, C, H, W, nhwc, keepdims, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    fmt = "NHWC" if nhwc else "NCHW"
    out, vjp_fn = lucid.vjp(lambda a: F.global_avg_pool(a, data_format=fmt, keepdims=keepdims),
                            _to_layout(x, nhwc))
    want = x.astype(np.float64).mean(axis=(2, 3))
    _close(np.asarray(out).reshape(N, C), want, dtype, "forward")
    g = rng.standard_normal((N, C))
    (gx,) = vjp_fn(np.asarray(g, dtype).reshape(np.shape(out)))
    _close(_from_layout(gx, nhwc), np.broadcast_to(g[:, :, None, None] / (H * W), x.shape),
           dtype, "input gradient")


@FUZZ
@given(st.integers(1, 2), st.integers(1, 3), st.integers(0, 3), st.integers(0, 7),
       st.integers(0, 7), st.sampled_from([1, 3, 5, 7, 9, 11]), st.sampled_from([1, 3, 7, 11]),
       st.booleans(), st.sampled_from(DTYPES), st.integers(0, 2 ** 32 - 1))
def test_inception_dwconv2d_values_and_gradients(N, gc, c_id, H, W, k, kb, nhwc, dtype, seed):
    rng = np.random.default_rng(seed)
    C = c_id + 3 * gc
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    shapes = ((k, k), (1, kb), (kb, 1))
    ws = [rng.standard_normal((gc, 1) + s).astype(dtype) for s in shapes]
    bs = [rng.standard_normal(gc).astype(dtype) for _ in shapes]
    fmt = "NHWC" if nhwc else "NCHW"
    params = [a for pair in zip(ws, bs) for a in pair]
    out, vjp_fn = lucid.vjp(lambda a, *p: F.inception_dwconv2d(a, *p, data_format=fmt),
                            _to_layout(x, nhwc), *params)
    g = rng.standard_normal(x.shape)
    grads = vjp_fn(_to_layout(g.astype(dtype), nhwc))
    want, gx = np.zeros(x.shape), np.zeros(x.shape)
    want[:, :c_id], gx[:, :c_id] = x[:, :c_id], g[:, :c_id]
    for n, (w, b, (kh, kw)) in enumerate(zip(ws, bs, shapes)):
        sl = slice(c_id + n * gc, c_id + (n + 1) * gc)
        pads = (((kh - 1) // 2,) * 2, ((kw - 1) // 2,) * 2)
        o, gxn, gw, gb = oracle_conv_vjp(x[:, sl], w, b, (1, 1), pads, gc, g[:, sl])
        want[:, sl], gx[:, sl] = o, gxn
        _close(grads[1 + 2 * n], gw, dtype, f"branch {n} weight gradient")
        _close(grads[2 + 2 * n], gb, dtype, f"branch {n} bias gradient")
    _close(_from_layout(out, nhwc), want, dtype, "forward")
    _close(_from_layout(grads[0], nhwc), gx, dtype, "input gradient")


def test_depthwise_bwd_x_huge_stride_counts_taps():
    """The kernel itself (below conv2d's stride cap): a stride near 2**62 once made
    ``i + 3 * sh`` wrap negative, reading g[-1] and w[i + sh] far past the weight."""
    g = np.ones((1, 1, 3, 1), np.float64)
    w = np.arange(1.0, 10.0).reshape(3, 3, 1)
    gx = np.full((1, 3, 3, 1), np.nan)
    K.depthwise_bwd_x(g, w, 2 ** 62, 1, 0, 1, gx)
    # one output row (oh = 0) reads input rows 0..2 through kernel rows 0..2
    want = np.zeros((3, 3))
    for i in range(3):
        for ow in range(3):
            for j in range(3):
                iw = ow - 1 + j
                if 0 <= iw < 3:
                    want[i, iw] += w[i, j, 0]
    np.testing.assert_allclose(gx[0, :, :, 0], want)


@pytest.mark.skipif(os.environ.get("NUMBA_BOUNDSCHECK") != "1",
                    reason="only meaningful with NUMBA_BOUNDSCHECK=1")
def test_boundscheck_mode_is_live():
    """In the bounds-checked run a broken precondition (a weight with fewer channels than
    x) must raise IndexError: proves the kernels were compiled with checks, not loaded
    unchecked from a cache."""
    x = np.ones((1, 2, 2, 3))
    w = np.ones((1, 1, 2))
    with pytest.raises(IndexError):
        K.depthwise_fwd(x, w, np.zeros(3), 1, 1, 0, 0, np.empty((1, 2, 2, 3)))


@pytest.mark.skipif(os.environ.get("NUMBA_BOUNDSCHECK") == "1",
                    reason="already running bounds-checked")
def test_fuzz_under_numba_boundscheck_subprocess(tmp_path):
    """This file's fuzz again with Numba's bounds checks on (private cache: cached
    unchecked machine code must not be reused), fewer examples to bound compile time."""
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               LUCID_FUZZ_EXAMPLES=os.environ.get("LUCID_FUZZ_BOUNDSCHECK_EXAMPLES", "12"),
               LUCID_FUZZ_DTYPES="float64")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-x", __file__, "-k", "not subprocess"],
                          env=env, capture_output=True, text=True, timeout=900,
                          cwd=os.path.dirname(__file__))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
