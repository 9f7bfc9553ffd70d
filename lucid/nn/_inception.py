"""``inception_dwconv2d``: InceptionNeXt's token mixer as one primitive.

``concat(x_id, dwconv_hw(x_hw), dwconv_w(x_w), dwconv_h(x_h))`` over the channel split
``(C - 3*gc, gc, gc, gc)``, computed in one pass per row instead of a split, three
convolutions and a concatenate (each of which copies the activation).
"""
import numpy as np

from .. import _buffers as buffers
from .._autodiff import primitive
from .._backend import kernels
from ._validate import check_channel_vector, float_array, optional_float_array, same_dtype, where

__all__ = ["inception_dwconv2d"]

K = kernels("inception")
_OP = "inception_dwconv2d"


def _hwc(w):
    """A depthwise OIHW weight (gc, 1, kh, kw) as the kernels' (kh, kw, gc)."""
    return np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))


def _oihw(wk):
    return np.ascontiguousarray(wk.transpose(2, 0, 1))[:, None]


@primitive(name="nn.functional.inception_dwconv2d")
def _inception(x, w_hw, b_hw, w_w, b_w, w_h, b_h, *, channels_last):
    xh = np.ascontiguousarray(x if channels_last else x.transpose(0, 2, 3, 1))
    ws = [_hwc(w) for w in (w_hw, w_w, w_h)]
    gc = ws[0].shape[2]
    zero = np.zeros(gc, xh.dtype)
    bs = [zero if b is None else np.ascontiguousarray(b) for b in (b_hw, b_w, b_h)]
    c_id = xh.shape[3] - 3 * gc
    out = buffers.empty_like(xh)
    K.mixer_fwd(xh, c_id, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2], out)

    def vjp(g):
        gh = np.ascontiguousarray(g if channels_last else g.transpose(0, 2, 3, 1))
        # The adjoint of a stride-1 'same' correlation is the correlation with the
        # flipped kernel: the forward kernel gives the input gradient.
        flip = [np.ascontiguousarray(wk[::-1, ::-1]) for wk in ws]
        gx = buffers.empty_like(xh)
        K.mixer_fwd(gh, c_id, flip[0], zero, flip[1], zero, flip[2], zero, gx)
        gws = [np.empty_like(wk) for wk in ws]
        gbs = [np.empty_like(zero) for _ in range(3)]
        K.mixer_bwd_w(gh, xh, c_id, gws[0], gbs[0], gws[1], gbs[1], gws[2], gbs[2])
        if not channels_last:
            gx = np.ascontiguousarray(gx.transpose(0, 3, 1, 2))
        return (gx, _oihw(gws[0]), gbs[0] if b_hw is not None else None,
                _oihw(gws[1]), gbs[1] if b_w is not None else None,
                _oihw(gws[2]), gbs[2] if b_h is not None else None)

    if not channels_last:
        out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    return out, vjp


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
    return _inception(x, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2],
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
