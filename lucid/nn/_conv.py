"""2-D convolution (``lucid.nn.functional.conv2d``), with PyTorch's semantics.

One primitive, ``conv2d_p`` (its backward kernels in ``conv2d_bwd_p``), works in
channels-last (NHWC) internally along one of four paths, chosen from the static shapes
by the public function; each path is a forward with its backward right below it:

* depthwise (groups == C_in == C_out): direct Numba kernels over contiguous channels;
* pointwise (1x1, stride 1, no padding, groups 1): one BLAS GEMM over (N*H*W, C);
* patchify (kernel == stride, no padding, groups 1; ConvNeXt's stem and downsamples):
  space-to-depth + one GEMM; rows/columns that do not fill a patch are dropped;
* general (any groups, stride, padding): im2col + one GEMM per group; backward col2im.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._backend import kernels
from .._core import Primitive, aval, bind
from .. import _buffers as buffers
from ._validate import (check_channel_vector, check_ndim, contiguous, float_array,
                        optional_float_array, same_dtype, where)
from .._limits import MAX_INDEX, check_alloc

__all__ = ["conv2d"]

K = kernels("conv")
_OP = where("conv2d")


class _Geometry(NamedTuple):
    """Static shape facts of one convolution (NHWC input, OIHW weight)."""
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int
    groups: int
    Ho: int
    Wo: int


# ----------------------------------------------------------------------------- layouts

def nhwc(a, channels_last, dtype=None):
    """``a`` (NCHW, or NHWC when ``channels_last``) as a C-contiguous NHWC array."""
    return np.ascontiguousarray(a if channels_last else a.transpose(0, 2, 3, 1), dtype=dtype)


def nhwc_target(out, channels_last):
    """The NHWC array a kernel writes for the output ``out``: ``out`` itself when it is
    NHWC, else scratch that :func:`store_nhwc` transposes into ``out``."""
    if channels_last:
        return out
    N, C, H, W = out.shape
    return buffers.empty((N, H, W, C), out.dtype)


def store_nhwc(y, out, channels_last):
    if not channels_last:
        np.copyto(out, y.transpose(0, 3, 1, 2))


# ----------------------------------------------------------------------------- depthwise
# Each path: forward(x, w, b, geo, out) and backward(g, x, w, geo, gx, gw, gb) on
# C-contiguous NHWC arrays; a gradient passed as None is not wanted (not computed when
# that saves work).

def _depthwise_weight(w):
    """groups == C_in == C_out: w (C, 1, kh, kw) is used as (kh, kw, C)."""
    return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))


def _depthwise(x, w, b, geo, out):
    bias = b if b is not None else np.zeros(x.shape[3], x.dtype)
    K.depthwise_fwd(x, _depthwise_weight(w), bias, geo.sh, geo.sw, geo.pt, geo.pl, out)


def _depthwise_bwd(g, x, w, geo, gx, gw, gb):
    wk = _depthwise_weight(w)
    if gx is not None and geo.sh == geo.sw == 1:
        # the adjoint of a stride-1 correlation is the correlation of g with the flipped
        # kernel and mirrored padding: the (faster) forward kernel
        wflip = np.ascontiguousarray(wk[::-1, ::-1])
        K.depthwise_fwd(g, wflip, np.zeros(x.shape[3], x.dtype), 1, 1, geo.kh - 1 - geo.pt,
                        geo.kw - 1 - geo.pl, gx)
    elif gx is not None:
        K.depthwise_bwd_x(g, wk, geo.sh, geo.sw, geo.pt, geo.pl, gx)
    if gw is None and gb is None:
        return
    gwk = np.empty_like(wk)
    K.depthwise_bwd_w(g, x, geo.sh, geo.sw, geo.pt, geo.pl, gwk,
                      gb if gb is not None else np.empty(x.shape[3], x.dtype))
    if gw is not None:
        gw[...] = gwk.transpose(2, 0, 1)[:, None]


# ----------------------------------------------------------------------------- pointwise

def _pointwise(x, w, b, geo, out):
    """1x1, stride 1, unpadded, groups 1: out (N*H*W, O) = x (N*H*W, C) @ w (O, C).T."""
    O, C = w.shape[0], x.shape[3]
    np.matmul(x.reshape(-1, C), w.reshape(O, C).T, out=out.reshape(-1, O))
    if b is not None:
        K.bias_add(out.reshape(-1, O), b)


def _pointwise_bwd(g, x, w, geo, gx, gw, gb):
    O, C = w.shape[0], x.shape[3]
    g2 = g.reshape(-1, O)
    if gx is not None:
        np.matmul(g2, w.reshape(O, C), out=gx.reshape(-1, C))
    if gw is not None:
        np.matmul(g2.T, x.reshape(-1, C), out=gw.reshape(O, C))
    if gb is not None:
        K.bias_grad(g2, gb)


# ----------------------------------------------------------------------------- patchify

def _space_to_depth(x, geo):
    """The patch columns (N*Ho*Wo, C*kh*kw), ordered (c, i, j) like OIHW's trailing axes,
    so the weight is used as the (O, C*kh*kw) view it already is: no weight copy."""
    cols = buffers.empty((x.shape[0] * geo.Ho * geo.Wo, x.shape[3] * geo.kh * geo.kw), x.dtype)
    K.space_to_depth(x, geo.kh, geo.kw, geo.Ho, geo.Wo, cols)
    return cols


def _patchify(x, w, b, geo, out):
    """kernel == stride, unpadded, groups 1: space-to-depth (rows/columns that do not
    fill a patch are dropped), then one GEMM."""
    O = w.shape[0]
    np.matmul(_space_to_depth(x, geo), w.reshape(O, -1).T, out=out.reshape(-1, O))
    if b is not None:
        K.bias_add(out.reshape(-1, O), b)


def _patchify_bwd(g, x, w, geo, gx, gw, gb):
    O = w.shape[0]
    g2 = g.reshape(-1, O)
    if gw is not None:  # the columns are rebuilt (one pass over x), not kept from forward
        np.matmul(g2.T, _space_to_depth(x, geo), out=gw.reshape(O, -1))
    if gx is not None:
        gcols = buffers.empty((g2.shape[0], w[0].size), x.dtype)
        np.matmul(g2, w.reshape(O, -1), out=gcols)
        K.depth_to_space(gcols, geo.kh, geo.kw, geo.Ho, geo.Wo, gx)
    if gb is not None:
        K.bias_grad(g2, gb)


# ----------------------------------------------------------------------------- general

def _weight_matrix(w, groups):
    """OIHW -> (G, kh*kw*Cg, Og), rows ordered (i, j, c) like the patch columns."""
    O, Cg, kh, kw = w.shape
    wg = w.reshape(groups, O // groups, Cg, kh, kw).transpose(0, 3, 4, 2, 1)
    return np.ascontiguousarray(wg).reshape(groups, kh * kw * Cg, O // groups)


def _weight_from_matrix(wmat, shape):
    """The inverse of _weight_matrix: (G, kh*kw*Cg, Og) -> OIHW."""
    O, Cg, kh, kw = shape
    G = wmat.shape[0]
    return wmat.reshape(G, kh, kw, Cg, O // G).transpose(0, 4, 3, 1, 2).reshape(shape)


def _im2col(x, geo):
    N, _, _, C = x.shape
    G = geo.groups
    cols = np.empty((G, N * geo.Ho * geo.Wo, geo.kh * geo.kw * (C // G)), x.dtype)
    K.im2col(x, geo.kh, geo.kw, geo.sh, geo.sw, geo.pt, geo.pl, geo.Ho, geo.Wo, cols)
    return cols


def _general(x, w, b, geo, out):
    """Any groups, stride and padding: im2col per group, then a batched GEMM. The columns
    (kh*kw times the input's size) are recomputed in backward, not kept."""
    O, G = w.shape[0], geo.groups
    M = x.shape[0] * geo.Ho * geo.Wo
    wmat, cols = _weight_matrix(w, G), _im2col(x, geo)
    if G == 1:
        np.matmul(cols[0], wmat[0], out=out.reshape(M, O))
    else:  # (G, M, Og) -> (M, G, Og) is exactly NHWC's channel order g*Og + o
        out.reshape(M, G, O // G)[...] = np.matmul(cols, wmat).transpose(1, 0, 2)
    del cols
    if b is not None:
        K.bias_add(out.reshape(-1, O), b)


def _general_bwd(g, x, w, geo, gx, gw, gb):
    O, G = w.shape[0], geo.groups
    M = x.shape[0] * geo.Ho * geo.Wo
    gg = g.reshape(M, G, O // G).transpose(1, 0, 2)
    if gw is not None:
        gw[...] = _weight_from_matrix(np.matmul(_im2col(x, geo).transpose(0, 2, 1), gg), w.shape)
    if gx is not None:
        gcols = np.matmul(gg, _weight_matrix(w, G).transpose(0, 2, 1))
        K.col2im(gcols, geo.kh, geo.kw, geo.sh, geo.sw, geo.pt, geo.pl, geo.Ho, geo.Wo, gx)
    if gb is not None:
        K.bias_grad(g.reshape(M, O), gb)


_PATHS = {"depthwise": (_depthwise, _depthwise_bwd), "pointwise": (_pointwise, _pointwise_bwd),
          "patchify": (_patchify, _patchify_bwd), "general": (_general, _general_bwd)}


def _select_path(c_in, c_out, geo):
    """The name of the fastest path that computes this convolution exactly."""
    unpadded = geo.pt == geo.pb == geo.pl == geo.pr == 0
    if geo.groups == c_in == c_out:
        return "depthwise"
    if geo.groups == 1 and unpadded and (geo.kh, geo.kw) == (geo.sh, geo.sw):
        return "pointwise" if geo.kh == geo.kw == 1 else "patchify"
    return "general"


# ----------------------------------------------------------------------------- primitives

conv2d_p = Primitive("nn.functional.conv2d")
conv2d_p.saves = ((0, 1), ())  # x and w; the bias is not read by the backward


@conv2d_p.def_abstract
def _conv2d_abstract(x, w, b, *, geo, channels_last, path):
    N, O = x.shape[0], w.shape[0]
    shape = (N, geo.Ho, geo.Wo, O) if channels_last else (N, O, geo.Ho, geo.Wo)
    return aval(shape, x.dtype)


@conv2d_p.def_impl
def _conv2d_impl(x, w, b, *, out, geo, channels_last, path):
    """The convolution on validated arrays of one dtype, in NHWC (NCHW is transposed)."""
    y = nhwc_target(out[0], channels_last)
    _PATHS[path][0](nhwc(x, channels_last), contiguous(w),
                    None if b is None else contiguous(b), geo, y)
    store_nhwc(y, out[0], channels_last)


@conv2d_p.def_vjp
def _conv2d_vjp(cts, x, w, b, *, results, needs, geo, channels_last, path):
    wants = (bool(needs[0]), bool(needs[1]), bool(needs[2]) and b is not None)
    if not any(wants):
        return None, None, None
    grads = iter(bind(conv2d_bwd_p, cts[0], x, w, geo=geo, channels_last=channels_last,
                      path=path, wants=wants))
    return tuple(next(grads) if want else None for want in wants)


conv2d_bwd_p = Primitive("nn.functional.conv2d_bwd", multiple_results=True)


@conv2d_bwd_p.def_abstract
def _conv2d_bwd_abstract(g, x, w, *, geo, channels_last, path, wants):
    """One result per wanted gradient, in the order (gx, gw, gb)."""
    avals = (aval(x.shape, x.dtype), aval(w.shape, w.dtype), aval(w.shape[:1], w.dtype))
    return tuple(a for a, want in zip(avals, wants) if want)


@conv2d_bwd_p.def_impl
def _conv2d_bwd_impl(g, x, w, *, out, geo, channels_last, path, wants):
    xh = nhwc(x, channels_last)
    results = iter(out)
    gx, gw, gb = (next(results) if want else None for want in wants)
    gxh = None if gx is None else nhwc_target(gx, channels_last)
    _PATHS[path][1](nhwc(g, channels_last, xh.dtype), xh, contiguous(w), geo, gxh, gw, gb)
    if gx is not None:
        store_nhwc(gxh, gx, channels_last)


# ----------------------------------------------------------------------------- public API

def conv2d(x, w, b=None, stride=1, padding=0, groups=1, *, data_format="NCHW"):
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    Args:
      x: input, (N, C, H, W) or with ``data_format="NHWC"`` (N, H, W, C); float32/float64.
      w: weight (O, C // groups, kh, kw), PyTorch's OIHW layout in both data formats.
      b: bias (O,) or None.
      stride: int or (sh, sw), in [1, 2**31 - 1].
      padding: int, (ph, pw), ((top, bottom), (left, right)) in [0, 2**31 - 1], "valid",
        or "same"
        (stride 1 only; an odd total goes to the bottom/right, as in PyTorch).
      groups: number of channel groups; divides C and O.
      data_format: "NCHW" or "NHWC"; the output uses the same layout.
    Returns:
      (N, O, Ho, Wo) (or (N, Ho, Wo, O)) with Ho = (H + top + bottom - kh) // sh + 1, in
      the arguments' dtype (x, w and b must share it: float32 or float64).
    """
    if data_format not in ("NCHW", "NHWC"):
        raise ValueError(f"{_OP}: data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
    x, w = float_array(x, "conv2d", "x"), float_array(w, "conv2d", "w")
    b = optional_float_array(b, "conv2d", "b")
    _check_ranks(x, w, b)
    same_dtype("conv2d", x=x, w=w, b=b)
    channels_last = data_format == "NHWC"
    _, H, W, C = x.shape if channels_last else (x.shape[0], *x.shape[2:], x.shape[1])
    O, Cg, kh, kw = w.shape
    groups = _positive_int(groups, "groups")
    if Cg * groups != C:
        raise ValueError(f"{_OP}: x has {C} input channels ({data_format}) but w.shape[1] * "
                         f"groups = {Cg} * {groups} = {Cg * groups}")
    if O % groups:
        raise ValueError(f"{_OP}: out channels w.shape[0] = {O} is not divisible by "
                         f"groups = {groups}")
    check_channel_vector(b, O, "conv2d", "b", f"w's {O} output channels")
    sh, sw = _pair(stride, "stride")
    if not (1 <= sh <= MAX_INDEX and 1 <= sw <= MAX_INDEX):
        raise ValueError(f"{_OP}: stride must be positive (at most 2**31 - 1), got {stride!r}")
    (pt, pb), (pl, pr) = _padding(padding, kh, kw, (sh, sw))
    Ho, Wo = (H + pt + pb - kh) // sh + 1, (W + pl + pr - kw) // sw + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"{_OP}: kernel {kh}x{kw} is larger than the padded input "
                         f"{H + pt + pb}x{W + pl + pr} (output would be {Ho}x{Wo})")
    geo = _Geometry(kh, kw, sh, sw, pt, pb, pl, pr, groups, Ho, Wo)
    _check_sizes(x, geo, O, channels_last)
    return bind(conv2d_p, x, w, b, geo=geo, channels_last=channels_last,
                path=_select_path(C, O, geo))


def _check_sizes(x, geo, O, channels_last):
    """Refuse outputs (and the general path's im2col buffer) that cannot fit in memory."""
    N, C = x.shape[0], x.shape[3] if channels_last else x.shape[1]
    check_alloc(_OP, (N, geo.Ho, geo.Wo, O), x.dtype)
    if _select_path(C, O, geo) == "general":
        check_alloc(_OP, (N * geo.Ho * geo.Wo, geo.kh * geo.kw * C), x.dtype,
                    "im2col buffer")


def _check_ranks(x, w, b):
    check_ndim(x, "conv2d", "x", (4,), "(N, C, H, W), or (N, H, W, C) with data_format='NHWC'")
    check_ndim(w, "conv2d", "w", (4,), "(out, in // groups, kh, kw)")
    if b is not None:
        check_ndim(b, "conv2d", "b", (1,), "(out,)")
    if min(w.shape) < 1:
        raise ValueError(f"{_OP}: w must have no empty dimension, got shape {tuple(w.shape)}")


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _positive_int(v, name):
    if not _is_int(v):
        raise TypeError(f"{_OP}: {name} must be an int, got {v!r}")
    if v < 1:
        raise ValueError(f"{_OP}: {name} must be positive, got {v!r}")
    return int(v)


def _pair(v, name):
    """An int or a pair of ints -> (int, int)."""
    if _is_int(v):
        return int(v), int(v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(_is_int(e) for e in v):
        return int(v[0]), int(v[1])
    raise TypeError(f"{_OP}: {name} must be an int or a pair of ints, got {v!r}")


def _padding(padding, kh, kw, stride):
    """Normalise ``padding`` to ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"{_OP}: padding string must be 'same' or 'valid', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"{_OP}: padding='same' needs stride 1, got stride {stride}")
        return (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
            isinstance(p, (tuple, list)) for p in padding):
        pads = tuple(_pair(p, "padding") for p in padding)
    else:
        ph, pw = _pair(padding, "padding")
        pads = ((ph, ph), (pw, pw))
    if min(min(p) for p in pads) < 0 or max(max(p) for p in pads) > MAX_INDEX:
        # the upper bound keeps the kernels' index arithmetic inside int64
        raise ValueError(f"{_OP}: padding must be non-negative (at most 2**31 - 1), "
                         f"got {padding!r}")
    return pads
