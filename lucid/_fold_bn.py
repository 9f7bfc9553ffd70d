"""Inference rewrites that fold BatchNorm (with running statistics) into a neighbouring
convolution or linear layer, as ONNX Runtime's Conv+BN fusion does.

In eval mode BatchNorm is a per-channel affine map ``y = x * scale + shift`` with
``scale = gamma / sqrt(running_var + eps)`` and ``shift = beta - running_mean * scale``, so

* ``bn(conv(x, w, b))``  = ``conv(x, w * scale[o], b * scale + shift)``  (InceptionNeXt's stem);
* ``linear(bn(x), w, b)`` = ``linear(x, w * scale[c], b + w @ shift)``  (its blocks' fc1);
* ``conv(bn(x), w, b)``   = the same per input channel, for an unpadded, ungrouped conv
  (its downsampling layers; with padding the border would see ``shift`` instead of 0).

The folded weights are computed by one small ``fold_batch_norm`` equation per call (in
float64, then cast), so the weights stay program inputs and the activations skip one full
read and write per BatchNorm. Results agree with the unfolded program to float rounding
(~1e-7 relative), within timm parity. Only inference programs are rewritten: the rule
needs the intermediate to be read by nothing else, which a backward never allows.
"""
from __future__ import annotations

import numpy as np

from ._core import Primitive, aval
from ._program import Eqn, Var

__all__ = ["FOLDS", "fold_batch_norm_p"]

fold_batch_norm_p = Primitive("fold_batch_norm", multiple_results=True)


@fold_batch_norm_p.def_abstract
def _fold_abstract(w, b, rm, rv, gamma, beta, *, eps, side):
    return aval(w.shape, w.dtype), aval((w.shape[0],), w.dtype)


@fold_batch_norm_p.def_impl
def _fold_impl(w, b, rm, rv, gamma, beta, *, out, eps, side):
    scale = 1.0 / np.sqrt(rv.astype(np.float64) + eps)
    if gamma is not None:
        scale = scale * gamma
    shift = -rm.astype(np.float64) * scale
    if beta is not None:
        shift = shift + beta
    w64 = w.astype(np.float64)
    b64 = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
    if side == "out":     # BN after the layer: scale the output channels (axis 0)
        out[0][...] = w64 * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        out[1][...] = b64 * scale + shift
    else:                 # BN before the layer: scale the input channels (axis 1)
        out[0][...] = w64 * scale.reshape((1, -1) + (1,) * (w.ndim - 2))
        out[1][...] = b64 + w64.reshape(w.shape[0], w.shape[1], -1).sum(axis=2) @ shift


def _bn_parts(bn):
    """(x, running_mean, running_var, gamma, beta, eps) of an eval-mode batch_norm equation."""
    x, rm, rv, gamma, beta = bn.inputs
    return x, rm, rv, gamma, beta, bn.params["eps"]


def _folded(layer, bn, side, x_in):
    """[fold equation, the layer on ``x_in`` with the folded weights] replacing both."""
    _, rm, rv, gamma, beta, eps = _bn_parts(bn)
    w, b = layer.inputs[1], layer.inputs[2]
    w2, b2 = Var(w.aval), Var(aval((w.aval.shape[0],), w.aval.dtype))
    fold = Eqn(fold_batch_norm_p, (w, b, rm, rv, gamma, beta), (w2, b2),
               {"eps": eps, "side": side}, layer.scope)
    outputs = bn.outputs if side == "out" else layer.outputs
    return [fold, Eqn(layer.prim, (x_in, w2, b2), outputs, dict(layer.params), layer.scope)]


def _is_eval_bn(e):
    return e.prim.name == "nn.functional.batch_norm"


def _conv_channel_layout(conv):
    return "last" if conv.params["channels_last"] else "mid"


def _fold_conv_then_bn(program, uses, i, e, replaced):
    """bn(conv(x, w, b)) -> conv(x, w', b')."""
    if not _is_eval_bn(e):
        return False
    v = e.inputs[0]
    j = uses.defined.get(v)
    if j is None or j in replaced or not uses.only_reader(v, i):
        return False
    conv = program.eqns[j]
    if conv.prim.name != "nn.functional.conv2d" or \
            e.params["layout"] != _conv_channel_layout(conv):
        return False
    replaced[j] = []
    replaced[i] = _folded(conv, e, "out", conv.inputs[0])
    return True


def _fold_bn_then_layer(program, uses, i, e, replaced):
    """linear(bn(x), w, b) or conv(bn(x), w, b) (unpadded, ungrouped) -> layer(x, w', b')."""
    name = e.prim.name
    if name not in ("nn.functional.linear", "nn.functional.conv2d"):
        return False
    v = e.inputs[0]
    j = uses.defined.get(v)
    if j is None or j in replaced or not uses.only_reader(v, i):
        return False
    bn = program.eqns[j]
    if not _is_eval_bn(bn):
        return False
    if name == "nn.functional.linear":
        ok = bn.params["layout"] == "last"
    else:
        g = e.params["geo"]
        ok = (bn.params["layout"] == _conv_channel_layout(e) and g.groups == 1
              and g.pt == g.pb == g.pl == g.pr == 0)
    if not ok:
        return False
    replaced[j] = []
    replaced[i] = _folded(e, bn, "in", bn.inputs[0])
    return True


FOLDS = (_fold_conv_then_bn, _fold_bn_then_layer)
