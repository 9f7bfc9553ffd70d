"""``inception_dwconv2d``: InceptionNeXt's token mixer as one primitive.

``concat(x_id, dwconv_hw(x_hw), dwconv_w(x_w), dwconv_h(x_h))`` over the channel split
``(C - 3*gc, gc, gc, gc)``, computed in one pass per row instead of a split, three
convolutions and a concatenate (each of which copies the activation).
"""
import numpy as np

from .. import _buffers as buffers
from .._backend import kernels
from .._core import Primitive, aval, bind
from ._conv import nhwc, nhwc_target, store_nhwc
from ._validate import check_channel_vector, float_array, optional_float_array, same_dtype, where

__all__ = ["inception_dwconv2d"]

K = kernels("inception")
_OP = "inception_dwconv2d"


def _hwc(w):
    """A depthwise OIHW weight (gc, 1, kh, kw) as the kernels' (kh, kw, gc)."""
    return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))


def _oihw(wk):
    return np.ascontiguousarray(wk.transpose(2, 0, 1))[:, None]


def _tiled(wk, W):
    """(kh, kw, gc) -> (kh, kw, W * gc): each tap's channel vector repeated along a row."""
    return np.ascontiguousarray(np.tile(wk, (1, 1, W)))


def _untiled(p, gc):
    """Chunk partials (chunks, ..., W * gc) -> their sum over chunks and pixels (..., gc)."""
    s = p.sum(axis=0)
    return s.reshape(s.shape[:-1] + (-1, gc)).sum(axis=-2)


def _gather(a, c_id, gc):
    xb = buffers.empty((3,) + a.shape[:2] + (a.shape[2] * gc,), a.dtype)
    K.gather_branches(a, c_id, gc, xb)
    return xb


inception_p = Primitive("nn.functional.inception_dwconv2d")
inception_p.saves = ((0, 1, 3, 5), ())  # x and the three weights
inception_p.def_abstract(lambda x, *wbs, channels_last: aval(x.shape, x.dtype))


@inception_p.def_impl
def _inception_impl(x, w_hw, b_hw, w_w, b_w, w_h, b_h, *, out, channels_last):
    xh = nhwc(x, channels_last)
    W = xh.shape[2]
    ws = [_hwc(w) for w in (w_hw, w_w, w_h)]
    gc = ws[0].shape[2]
    c_id = xh.shape[3] - 3 * gc
    bts = [np.zeros(W * gc, xh.dtype) if b is None else np.tile(b, W) for b in (b_hw, b_w, b_h)]
    y = nhwc_target(out[0], channels_last)
    K.mixer_fwd(xh, _gather(xh, c_id, gc), c_id, _tiled(ws[0], W), bts[0], _tiled(ws[1], W),
                bts[1], _tiled(ws[2], W), bts[2], y)
    store_nhwc(y, out[0], channels_last)


@inception_p.def_vjp
def _inception_vjp(cts, x, w_hw, b_hw, w_w, b_w, w_h, b_h, *, results, needs, channels_last):
    gx, gw_hw, gw_w, gw_h, gb_hw, gb_w, gb_h = bind(
        inception_bwd_p, cts[0], x, w_hw, w_w, w_h, channels_last=channels_last)
    return (gx, gw_hw, gb_hw if b_hw is not None else None, gw_w,
            gb_w if b_w is not None else None, gw_h, gb_h if b_h is not None else None)


inception_bwd_p = Primitive("nn.functional.inception_dwconv2d_bwd", multiple_results=True)


@inception_bwd_p.def_abstract
def _inception_bwd_abstract(g, x, w_hw, w_w, w_h, *, channels_last):
    gc = (w_hw.shape[0],)   # gx, the three weight gradients, the three bias gradients
    return ((aval(x.shape, x.dtype),) + tuple(aval(w.shape, w.dtype) for w in (w_hw, w_w, w_h))
            + (aval(gc, x.dtype),) * 3)


@inception_bwd_p.def_impl
def _inception_bwd_impl(g, x, w_hw, w_w, w_h, *, out, channels_last):
    xh, gh = nhwc(x, channels_last), nhwc(g, channels_last)
    N, H, W, C = xh.shape
    ws = [_hwc(w) for w in (w_hw, w_w, w_h)]
    gc = ws[0].shape[2]
    c_id = C - 3 * gc
    gb = _gather(gh, c_id, gc)
    # The adjoint of a stride-1 'same' correlation is the correlation with the
    # flipped kernel: the forward kernel gives the input gradient.
    flip = [_tiled(wk[::-1, ::-1], W) for wk in ws]
    zero = np.zeros(W * gc, xh.dtype)
    gx = nhwc_target(out[0], channels_last)
    K.mixer_fwd(gh, gb, c_id, flip[0], zero, flip[1], zero, flip[2], zero, gx)
    store_nhwc(gx, out[0], channels_last)
    chunks = max(1, min(N * H, 16))
    parts = [np.zeros((chunks,) + wk.shape[:2] + (W * gc,), xh.dtype) for wk in ws]
    part_b = np.zeros((chunks, 3, W * gc), xh.dtype)
    # x's branch channels are gathered again rather than kept from the forward: the
    # gather costs ~0.5 ms, keeping it 3/8 of the activation per block until backward.
    K.mixer_bwd_w(gb, _gather(xh, c_id, gc), gc, parts[0], parts[1], parts[2], part_b)
    for gw, p in zip(out[1:4], parts):
        gw[...] = _oihw(_untiled(p, gc))
    gbs = _untiled(part_b, gc)
    for i, gbias in enumerate(out[4:]):
        gbias[...] = gbs[i]


def inception_dwconv2d(x, w_hw, b_hw, w_w, b_w, w_h, b_h, *, data_format="NCHW"):
    """InceptionNeXt's token mixer: identity + three depthwise conv branches on channel splits.

    The C channels split, in order, into ``(C - 3*gc, gc, gc, gc)``: identity, then
    depthwise convolutions with ``w_hw`` (square), ``w_w`` (1 x kb band) and ``w_h``
    (kb x 1 band), all stride 1 with 'same' padding; the results are concatenated. Equal
    to timm's ``InceptionDWConv2d`` and to the split / ``conv2d`` / concatenate chain.

    Args:
      x: input, (N, C, H, W) or with ``data_format="NHWC"`` (N, H, W, C); float32/float64.
      w_hw, w_w, w_h: depthwise OIHW weights (gc, 1, kh, kw) with odd kh and kw.
      b_hw, b_w, b_h: biases (gc,) or None.
      data_format: "NCHW" or "NHWC"; the output uses the same layout.
    Returns:
      an array shaped like ``x``.
    """
    if data_format not in ("NCHW", "NHWC"):
        raise ValueError(f"{where(_OP)}: data_format must be 'NCHW' or 'NHWC', got "
                         f"{data_format!r}")
    x = float_array(x, _OP, "x")
    names = ("w_hw", "w_w", "w_h")
    ws = [float_array(w, _OP, name) for w, name in zip((w_hw, w_w, w_h), names)]
    bs = [optional_float_array(b, _OP, name) for b, name in zip((b_hw, b_w, b_h),
                                                                 ("b_hw", "b_w", "b_h"))]
    same_dtype(_OP, x=x, w_hw=ws[0], w_w=ws[1], w_h=ws[2], b_hw=bs[0], b_w=bs[1], b_h=bs[2])
    if x.ndim != 4:
        raise ValueError(f"{where(_OP)}: x must be 4-D ({data_format}), got shape "
                         f"{tuple(x.shape)}")
    gc = _check_weights(ws, names)
    for b, name in zip(bs, ("b_hw", "b_w", "b_h")):
        check_channel_vector(b, gc, _OP, name, f"the {gc} channels of each branch")
    C = x.shape[3] if data_format == "NHWC" else x.shape[1]
    if 3 * gc > C:
        raise ValueError(f"{where(_OP)}: three branches of {gc} channels need at least "
                         f"{3 * gc} channels, x has {C} ({data_format})")
    return bind(inception_p, x, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2],
                channels_last=data_format == "NHWC")


def _check_weights(ws, names) -> int:
    """The branch width gc, after checking the three weights are (gc, 1, odd, odd)."""
    gc = ws[0].shape[0] if ws[0].ndim == 4 else None
    for w, name in zip(ws, names):
        if w.ndim != 4 or w.shape[0] != gc or w.shape[1] != 1 or w.shape[0] < 1:
            raise ValueError(f"{where(_OP)}: {name} must be a depthwise weight (gc, 1, kh, kw) "
                             f"with the same gc as w_hw, got shape {tuple(w.shape)}")
        if w.shape[2] % 2 == 0 or w.shape[3] % 2 == 0:
            raise ValueError(f"{where(_OP)}: {name} needs odd kernel sizes for 'same' "
                             f"padding, got {tuple(w.shape[2:])}")
    return gc
