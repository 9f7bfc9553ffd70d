"""Analytic layer descriptions (output shape, parameters, MACs) for ``lucid.summary``.

MACs follow timm's published convention (``torch.utils.flop_counter`` / 2): convolutions
and matrix products only; norms, activations, pooling and additions count zero.
Shapes are NCHW, the public layout, whatever layout the layer runs in.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LayerInfo", "conv2d_info", "channel_linear_info", "linear_info", "op_info"]


@dataclass
class LayerInfo:
    """One row of a summary; a group row's params/MACs are the sums of its children.

    Attributes:
      name: the state-dict prefix of the layer ("stages.1.blocks.0.mlp.fc1").
      kind: the layer type ("Conv2d", "LayerNorm2d", "ConvNeXtBlock", ...).
      out_shape: the NCHW output shape, or None when unknown.
      params: number of trainable parameters.
      macs: multiply-accumulates, or None when unknown.
      children: sub-rows.
      detail: a short description ("7x7 dw, s1").
    """

    name: str
    kind: str
    out_shape: tuple | None
    params: int
    macs: int | None
    children: list = field(default_factory=list)
    detail: str = ""

    @classmethod
    def group(cls, name, kind, children, detail: str = ""):
        macs = [c.macs for c in children]
        out = children[-1].out_shape if children else None
        return cls(name, kind, out, sum(c.params for c in children),
                   None if any(m is None for m in macs) else sum(macs), list(children), detail)

    def walk(self, depth: int = 0):
        """Yield ``(depth, row)`` for this row and its descendants, depth first."""
        yield depth, self
        for c in self.children:
            yield from c.walk(depth + 1)


def _pair(v) -> tuple:
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)


def conv2d_info(name, in_shape, cin, cout, kernel, stride=1, padding=0, groups=1, bias=True,
                kind="Conv2d") -> LayerInfo:
    """A convolution's row: floor-divided output size, OIHW weight, optional bias."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    n, _, h, w = in_shape
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    per_out = (cin // groups) * kh * kw
    params = cout * per_out + (cout if bias else 0)
    detail = f"{kh}x{kw}" + (" dw" if groups == cin == cout and groups > 1 else "") + \
        (f", s{sh}" if (sh, sw) != (1, 1) else "")
    return LayerInfo(name, kind, (n, cout, ho, wo), params, n * cout * ho * wo * per_out,
                     detail=detail)


def channel_linear_info(name, in_shape, cin, cout, bias=True, kind="Linear") -> LayerInfo:
    """A per-pixel channel mixing (Linear over channels or 1x1 conv) on an NCHW map."""
    n, _, h, w = in_shape
    return LayerInfo(name, kind, (n, cout, h, w), cout * cin + (cout if bias else 0),
                     n * h * w * cin * cout, detail=f"{cin}->{cout}")


def linear_info(name, in_shape, fin, fout, bias=True, kind="Linear") -> LayerInfo:
    """A Linear layer over the last axis."""
    rows = int(np.prod(in_shape[:-1], dtype=np.int64))
    return LayerInfo(name, kind, tuple(in_shape[:-1]) + (fout,), fout * fin + (fout if bias else 0),
                     rows * fin * fout, detail=f"{fin}->{fout}")


def op_info(name, kind, out_shape, params: int = 0, detail: str = "") -> LayerInfo:
    """A layer without MACs (norm, activation, pooling, dropout, layer scale)."""
    shape = tuple(out_shape) if out_shape is not None else None
    return LayerInfo(name, kind, shape, int(params), 0, detail=detail)
