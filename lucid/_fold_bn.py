"""Inference rewrites that fold BatchNorm (with running statistics) into a neighbouring
convolution or linear layer, as ONNX Runtime's Conv+BN fusion does.

In eval mode BatchNorm is a per-channel affine map ``y = x * scale + shift`` with
``scale = gamma / sqrt(running_var + eps)`` and ``shift = beta - running_mean * scale``, so

* ``bn(conv(x, w, b))``  = ``conv(x, w * scale[o], b * scale + shift)``  (InceptionNeXt's stem);
* ``linear(bn(x), w, b)`` = ``linear(x, w * scale[c], b + w @ shift)``  (its blocks' fc1);
* ``conv(bn(x), w, b)``   = the same per input channel, for an unpadded, ungrouped conv
  (its downsampling layers; with padding the border would see ``shift`` instead of 0).

The folded weights are computed by one small ``fold_batch_norm`` equation per call (the
weight scaled in its dtype, the bias in float64), so the weights stay program inputs and
the activations skip one full read and write per BatchNorm; a fold is made only where the
activation is larger than the weight (measured: folding every BN made InceptionNeXt-T's
batch-1 forward 123 ms against 80 ms unfolded, the weights outweigh batch-1 activations). Results agree with the unfolded program to float rounding
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
    b64 = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
    scale_w = scale.astype(w.dtype)   # the weight is scaled in its own dtype (one pass)
    if side == "out":     # BN after the layer: scale the output channels (axis 0)
        np.multiply(w, scale_w.reshape((-1,) + (1,) * (w.ndim - 1)), out=out[0])
        out[1][...] = b64 * scale + shift
    else:                 # BN before the layer: scale the input channels (axis 1)
        np.multiply(w, scale_w.reshape((1, -1) + (1,) * (w.ndim - 2)), out=out[0])
        w_sum = w.reshape(w.shape[0], w.shape[1], -1).sum(axis=2)   # (O, C), GEMV below
        out[1][...] = b64 + w_sum @ shift.astype(w.dtype)


def _pays(activation, weight) -> bool:
    """Folding reads and writes the weight once per call to save one pass over the
    activation: worth it only when the activation is the larger (batch 16 in InceptionNeXt's
    early stages; not at batch 1, where the weights outweigh the activations)."""
    return activation.aval.size > weight.aval.size


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
    j = uses.sole_producer(v, i, replaced)
    if j is None:
        return False
    conv = program.eqns[j]
    if conv.prim.name != "nn.functional.conv2d" or \
            e.params["layout"] != _conv_channel_layout(conv) or not _pays(v, conv.inputs[1]):
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
    j = uses.sole_producer(v, i, replaced)
    if j is None:
        return False
    bn = program.eqns[j]
    if not _is_eval_bn(bn) or not _pays(v, e.inputs[1]):
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
