"""Device-side bodies of lucid's nn primitives on the CUDA backend, over raw numba.cuda
arrays: the same kernel calls as the CPU primitives in ``lucid/nn/_*.py``, with the NumPy
plumbing between them (transposes, tiling, zeros, per-channel coefficient math) done by
device kernels, so nothing goes through the host.

Each op is a forward ``<op>_fwd(...) -> outputs (+ residuals)`` and a backward
``<op>_bwd(g, residuals...) -> input cotangents``; the primitive layer (``_cuda_impls``)
wraps and unwraps :class:`lucid.DeviceArray`. numba.cuda is imported with this module,
which only the CUDA backend imports.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from .kernels.cuda import conv as KC
from .kernels.cuda import gemm as KG
from .kernels.cuda import inception as KI
from .kernels.cuda import memory as KM


def empty(shape, dtype):
    """An uninitialised C-contiguous device array (numba's allocator)."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return cuda.device_array(tuple(int(s) for s in shape), np.dtype(dtype))


def zeros(shape, dtype):
    out = empty(shape, dtype)
    if out.size:
        KM.fill(out, 0)
    return out


def permuted(x, perm):
    """np.ascontiguousarray(x.transpose(perm)) for a C-contiguous device array."""
    out = empty(tuple(x.shape[p] for p in perm), x.dtype)
    KM.permute_copy(x, tuple(perm), out)
    return out


def rows(x):
    """(prod(shape[:-1]), shape[-1]) view of a C-contiguous array."""
    n = tuple(x.shape)[-1]   # (the simulator's shapes refuse negative indices)
    return x.reshape(x.size // n, n)


# ----------------------------------------------------------------------------- conv2d

def _hwc(w):
    """A depthwise OIHW weight (C, 1, kh, kw) as the kernels' (kh, kw, C)."""
    C, _, kh, kw = w.shape
    return permuted(w.reshape(C, kh, kw), (1, 2, 0))


def _oihw(wk):
    kh, kw, C = wk.shape
    return permuted(wk, (2, 0, 1)).reshape(C, 1, kh, kw)


def _depthwise_fwd(x, w, b, geo, out=None):
    N, C = x.shape[0], x.shape[3]
    out = empty((N, geo.Ho, geo.Wo, C), x.dtype) if out is None else out
    KC.depthwise_fwd(x, _hwc(w), b if b is not None else zeros(C, x.dtype),
                     geo.sh, geo.sw, geo.pt, geo.pl, out)
    return out


def _depthwise_bwd(g, x, w, b, geo):
    wk = _hwc(w)
    gx = empty(x.shape, x.dtype)
    KC.depthwise_bwd_x(g, wk, geo.sh, geo.sw, geo.pt, geo.pl, gx)
    gwk, gb = empty(wk.shape, wk.dtype), empty(x.shape[3], x.dtype)
    KC.depthwise_bwd_w(g, x, geo.sh, geo.sw, geo.pt, geo.pl, gwk, gb)
    return gx, _oihw(gwk), gb if b is not None else None


def _gemm_fwd(cols, w, b, out):
    """out (M, O) = cols (M, K) @ w (O, K).T (+ b)."""
    KG.matmul(cols, w, out, trans_b=True)
    if b is not None:
        KC.bias_add(out, b)


def _gemm_bwd(g2, cols, w2, b):
    """(g cols, g w, g b) of out = cols @ w2.T + b."""
    gcols = empty(cols.shape, cols.dtype)
    KG.matmul(g2, w2, gcols)
    gw = empty(w2.shape, w2.dtype)
    KG.matmul(g2, cols, gw, trans_a=True)
    gb = None
    if b is not None:
        gb = empty(b.shape, b.dtype)
        KC.bias_grad(g2, gb)
    return gcols, gw, gb


def _patches(x, geo):
    N, C = x.shape[0], x.shape[3]
    cols = empty((N * geo.Ho * geo.Wo, C * geo.kh * geo.kw), x.dtype)
    KC.space_to_depth(x, geo.kh, geo.kw, geo.Ho, geo.Wo, cols)
    return cols


def _weight_matrix(w, groups):
    """OIHW -> (G, kh*kw*Cg, Og), rows ordered (i, j, c) like im2col's columns."""
    O, Cg, kh, kw = w.shape
    wg = permuted(w.reshape(groups, O // groups, Cg, kh, kw), (0, 3, 4, 2, 1))
    return wg.reshape(groups, kh * kw * Cg, O // groups)


def _im2col(x, geo):
    N, C = x.shape[0], x.shape[3]
    G = geo.groups
    cols = empty((G, N * geo.Ho * geo.Wo, geo.kh * geo.kw * (C // G)), x.dtype)
    KC.im2col(x, geo.kh, geo.kw, geo.sh, geo.sw, geo.pt, geo.pl, geo.Ho, geo.Wo, cols)
    return cols


def _general_fwd(x, w, b, geo):
    N, O, G = x.shape[0], w.shape[0], geo.groups
    M = N * geo.Ho * geo.Wo
    prod = empty((G, M, O // G), x.dtype)
    KG.matmul(_im2col(x, geo), _weight_matrix(w, G), prod)
    out = empty((N, geo.Ho, geo.Wo, O), x.dtype)   # (G, M, Og) -> NHWC's channel g*Og + o
    KM.permute_copy(prod, (1, 0, 2), out.reshape(M, G, O // G))
    if b is not None:
        KC.bias_add(out.reshape(M, O), b)
    return out


def _general_bwd(g, x, w, b, geo):
    O, Cg, kh, kw = w.shape
    G = geo.groups
    M = g.size // O
    gg = permuted(g.reshape(M, G, O // G), (1, 0, 2))
    gwm = empty((G, kh * kw * Cg, O // G), w.dtype)
    KG.matmul(_im2col(x, geo), gg, gwm, trans_a=True)
    gw = permuted(gwm.reshape(G, kh, kw, Cg, O // G), (0, 4, 3, 1, 2)).reshape(O, Cg, kh, kw)
    gcols = empty((G, M, kh * kw * Cg), x.dtype)
    KG.matmul(gg, _weight_matrix(w, G), gcols, trans_b=True)
    gx = empty(x.shape, x.dtype)
    KC.col2im(gcols, kh, kw, geo.sh, geo.sw, geo.pt, geo.pl, geo.Ho, geo.Wo, gx)
    gb = None
    if b is not None:
        gb = empty(b.shape, b.dtype)
        KC.bias_grad(g.reshape(M, O), gb)
    return gx, gw, gb


def conv2d_fwd(x, w, b, geo, path, channels_last, out=None):
    """The convolution (``path`` from ``lucid.nn._conv._select_path``) -> y, written into
    ``out`` when given (directly by the depthwise and GEMM kernels for NHWC results)."""
    xh = x if channels_last else permuted(x, (0, 2, 3, 1))
    N, O = xh.shape[0], w.shape[0]
    shape = (N, geo.Ho, geo.Wo, O)
    y = out.reshape(shape) if out is not None and channels_last else None
    if path == "depthwise":
        y = _depthwise_fwd(xh, w, b, geo, y)
    elif path in ("pointwise", "patchify"):
        cols = rows(xh) if path == "pointwise" else _patches(xh, geo)
        y = empty(shape, xh.dtype) if y is None else y
        _gemm_fwd(cols, w.reshape(O, w.size // O), b, rows(y))
    else:
        y = _general_fwd(xh, w, b, geo)
    if out is None:
        return y if channels_last else permuted(y, (0, 3, 1, 2))
    if not channels_last:
        KM.permute_copy(y, (0, 3, 1, 2), out)
    elif path not in ("depthwise", "pointwise", "patchify"):
        out.copy_to_device(y.reshape(tuple(out.shape)))
    return out


def conv2d_bwd(g, x, w, b, geo, path, channels_last):
    """(gx, gw, gb) of :func:`conv2d_fwd` for the output cotangent g."""
    xh = x if channels_last else permuted(x, (0, 2, 3, 1))
    gh = g if channels_last else permuted(g, (0, 2, 3, 1))
    O = w.shape[0]
    if path == "depthwise":
        gx, gw, gb = _depthwise_bwd(gh, xh, w, b, geo)
    elif path == "pointwise":
        gcols, gw2, gb = _gemm_bwd(rows(gh), rows(xh), w.reshape(O, w.size // O), b)
        gx, gw = gcols.reshape(*xh.shape), gw2.reshape(*w.shape)
    elif path == "patchify":
        gcols, gw2, gb = _gemm_bwd(rows(gh), _patches(xh, geo), w.reshape(O, w.size // O), b)
        gx = empty(xh.shape, xh.dtype)
        KC.depth_to_space(gcols, geo.kh, geo.kw, geo.Ho, geo.Wo, gx)
        gw = gw2.reshape(*w.shape)
    else:
        gx, gw, gb = _general_bwd(gh, xh, w, b, geo)
    return (gx if channels_last else permuted(gx, (0, 3, 1, 2))), gw, gb


# ----------------------------------------------------------------------------- inception

def _tiled(wk, W):
    """(kh, kw, gc) -> (kh, kw, W * gc), each tap's channel vector repeated along a row."""
    kh, kw, gc = wk.shape
    out = empty((kh, kw, W * gc), wk.dtype)
    KM.tile(wk, W, out)
    return out


def _untiled(p, gc, KR):
    """Chunk partials (chunks, ..., W * gc) -> their sum over chunks and pixels (..., gc)."""
    lead = tuple(p.shape[1:-1])
    inner = p.size // p.shape[0]
    s = empty(inner, p.dtype)
    KR.sum_fwd(p.reshape(1, p.shape[0], inner), 1, 1.0, s.reshape(1, inner))
    W = tuple(p.shape)[-1] // gc
    out = empty(lead + (gc,), p.dtype)
    KR.sum_fwd(s.reshape(inner // (W * gc), W, gc), 1, 1.0, out.reshape(inner // (W * gc), gc))
    return out


def _gather(a, c_id, gc):
    N, H, W = a.shape[:3]
    xb = empty((3, N, H, W * gc), a.dtype)
    KI.gather_branches(a, c_id, gc, xb)
    return xb


def inception_fwd(x, ws, bs, channels_last):
    """InceptionNeXt's mixer; ws, bs: the three (gc, 1, kh, kw) weights and (gc,)/None biases."""
    xh = x if channels_last else permuted(x, (0, 2, 3, 1))
    W, C = xh.shape[2], xh.shape[3]
    gc = ws[0].shape[0]
    c_id = C - 3 * gc
    tiles = []
    for w, b in zip(ws, bs):
        bt = zeros(W * gc, xh.dtype)
        if b is not None:
            KM.tile(b, W, bt)
        tiles += [_tiled(_hwc(w), W), bt]
    out = empty(xh.shape, xh.dtype)
    KI.mixer_fwd(xh, _gather(xh, c_id, gc), c_id, *tiles, out)
    return out if channels_last else permuted(out, (0, 3, 1, 2))


def inception_bwd(g, x, ws, bs, channels_last):
    """(gx, [gw_hw, gw_w, gw_h], [gb_hw, gb_w, gb_h]) of :func:`inception_fwd`."""
    from .kernels.cuda import reduce as KR
    xh = x if channels_last else permuted(x, (0, 2, 3, 1))
    gh = g if channels_last else permuted(g, (0, 2, 3, 1))
    N, H, W, C = xh.shape
    gc = ws[0].shape[0]
    c_id = C - 3 * gc
    gb = _gather(gh, c_id, gc)
    zero = zeros(W * gc, xh.dtype)
    flips = []
    for w in ws:   # the adjoint of a stride-1 'same' correlation: the flipped kernel
        wk = _hwc(w)
        flipped = empty(wk.shape, wk.dtype)
        KM.flip2(wk, flipped)
        flips += [_tiled(flipped, W), zero]
    gx = empty(xh.shape, xh.dtype)
    KI.mixer_fwd(gh, gb, c_id, *flips, gx)
    chunks = max(1, min(N * H, 16))
    parts = [zeros((chunks, w.shape[2], w.shape[3], W * gc), xh.dtype) for w in ws]
    part_b = zeros((chunks, 3, W * gc), xh.dtype)
    KI.mixer_bwd_w(gb, _gather(xh, c_id, gc), gc, *parts, part_b)
    gws = [_oihw(_untiled(p, gc, KR)) for p in parts]
    sb = _untiled(part_b, gc, KR)
    gbs = [None if b is None else sb[i] for i, b in enumerate(bs)]
    return (gx if channels_last else permuted(gx, (0, 3, 1, 2))), gws, gbs


# ----------------------------------------------------------------------------- linear

def linear_fwd(x, w, b, out=None):
    """y = x @ w.T + b over the last axis; w (out, in) or (out, in, 1, 1) (into ``out``)."""
    O = w.shape[0]
    x2, w2 = rows(x), w.reshape(O, w.size // O)
    y = empty((x2.shape[0], O), x.dtype) if out is None else out.reshape(x2.shape[0], O)
    _gemm_fwd(x2, w2, b, y)
    return y.reshape(*(tuple(x.shape[:-1]) + (O,)))


def linear_bwd(g, x, w, b):
    O = w.shape[0]
    gx, gw, gb = _gemm_bwd(rows(g), rows(x), w.reshape(O, w.size // O), b)
    return gx.reshape(*x.shape), gw.reshape(*w.shape), gb
