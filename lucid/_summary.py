"""``lucid.summary``: a model's layers with output shapes, parameters and MACs, or a flowchart.

Everything is read from the program ``lucid.jit`` traces of the model's forward on
abstract values: the parameters come from the model's specs as shapes only (nothing is
allocated, no kernel runs), each equation of the program is attributed to a layer
(lucid/_summary_rows.py) and counted by the per-primitive rules below. There is no second
description of any architecture: a custom configuration or a user-defined module is
summarised by tracing it like any other.

MACs follow timm's convention (``torch.utils.flop_counter`` / 2): convolutions and
matrix products only; norms, activations, pooling, additions and the fused elementwise
kernels count zero. A primitive that looks like a contraction but has no rule here counts
as unknown ("?"), never silently as zero.
"""
from __future__ import annotations

import numpy as np

from . import tree as _tree
from ._summary_format import mermaid as _mermaid
from ._summary_format import table as _table
from ._summary_rows import LayerInfo, build_rows

__all__ = ["summary", "ModelSummary", "LayerInfo", "MACS"]

_WHERE = "lucid.summary"
_NN = "nn.functional."


# ---- per-primitive rules (keyed by primitive name) -----------------------------------------
def _conv2d_macs(e):
    """Output elements x (Cin / groups) x kh x kw; w is OIHW."""
    _, cin_per_group, kh, kw = e.inputs[1].aval.shape
    return e.outputs[0].aval.size * cin_per_group * kh * kw


def _linear_macs(e):
    """Rows x in x out (the weight is (out, in) or timm's 1x1-conv (out, in, 1, 1))."""
    x, w = e.inputs[0].aval, e.inputs[1].aval
    return (x.size // x.shape[-1]) * w.shape[0] * w.shape[1]


def _matmul_macs(e):
    """Output elements x the contracted length."""
    return e.outputs[0].aval.size * e.inputs[0].aval.shape[-1]


def _inception_macs(e):
    """The three depthwise branches: output pixels x sum over branches of gc x kh x kw."""
    out = e.outputs[0].aval
    channels = out.shape[-1] if e.params["channels_last"] else out.shape[1]
    pixels = out.size // channels
    return pixels * sum(int(np.prod(w.aval.shape)) for w in e.inputs[1:7:2])


def _zero(e):
    return 0


MACS = {
    _NN + "conv2d": _conv2d_macs,
    _NN + "linear": _linear_macs,
    "matmul": _matmul_macs,
    _NN + "inception_dwconv2d": _inception_macs,
    # what lucid.jit's fusion passes create: elementwise, the GEMM stays a linear
    _NN + "bias_gelu": _zero, _NN + "scale_residual": _zero, _NN + "bias_scale_residual": _zero,
}
_CONTRACTION_HINTS = ("conv", "linear", "matmul", "dot", "einsum", "gemm")

_KINDS = {
    _NN + "conv2d": "Conv2d", _NN + "inception_dwconv2d": "InceptionDWConv2d",
    _NN + "layer_norm": "LayerNorm", _NN + "batch_norm": "BatchNorm2d",
    _NN + "batch_norm_train": "BatchNorm2d", _NN + "sync_batch_norm": "BatchNorm2d",
    _NN + "gelu": "GELU", _NN + "gelu_tanh": "GELU", _NN + "bias_gelu": "GELU",
    _NN + "relu": "ReLU", _NN + "global_avg_pool": "AdaptiveAvgPool2d",
    _NN + "adaptive_avg_pool2d": "AdaptiveAvgPool2d", _NN + "dropout": "Dropout",
    _NN + "drop_path": "DropPath", _NN + "softmax": "Softmax", "matmul": "MatMul",
}


def _conv2d_detail(e):
    geo, w = e.params["geo"], e.inputs[1].aval.shape
    cin = w[1] * geo.groups
    dw = " dw" if geo.groups == cin == w[0] and geo.groups > 1 else ""
    stride = f", s{geo.sh}" if (geo.sh, geo.sw) != (1, 1) else ""
    return f"{geo.kh}x{geo.kw}{dw}{stride}"


def _inception_detail(e):
    x, gc = e.inputs[0].aval, e.inputs[1].aval.shape[0]
    channels = x.shape[-1] if e.params["channels_last"] else x.shape[1]
    return f"id {channels - 3 * gc} + 3x{gc} ch"


_DETAILS = {
    _NN + "conv2d": _conv2d_detail,
    _NN + "linear": lambda e: f"{e.inputs[1].aval.shape[1]}->{e.inputs[1].aval.shape[0]}",
    _NN + "inception_dwconv2d": _inception_detail,
}


class _Rules:
    """What lucid/_summary_rows.py asks of an equation."""

    @staticmethod
    def macs(e):
        rule = MACS.get(e.prim.name)
        if rule is not None:
            return int(rule(e))
        return None if any(h in e.prim.name for h in _CONTRACTION_HINTS) else 0

    @staticmethod
    def kind(e, reads_param: bool):
        if e.prim.name == _NN + "linear":   # a 1x1-conv weight: timm's module is a Conv2d
            return "Conv2d" if e.inputs[1].aval.ndim == 4 else "Linear"
        if e.prim.name == "multiply" and reads_param:
            return "LayerScale"
        return _KINDS.get(e.prim.name)

    @staticmethod
    def detail(e):
        rule = _DETAILS.get(e.prim.name)
        return rule(e) if rule is not None else ""


# ---- the result -----------------------------------------------------------------------------
class ModelSummary:
    """The result of :func:`summary`; ``str()`` / ``repr()`` give the text.

    Attributes:
      text: the table or the mermaid flowchart.
      total_params: trainable parameters (equals ``model.num_parameters()``).
      total_macs: multiply-accumulates for the input shape (None if a primitive's are unknown).
      root: the :class:`LayerInfo` tree.
    """

    def __init__(self, text, root):
        self.text, self.root = text, root
        self.total_params, self.total_macs = root.params, root.macs

    def __str__(self):
        return self.text

    __repr__ = __str__


# ---- tracing ----------------------------------------------------------------------------------
def _abstract_trees(model):
    """``(params, state)`` with the right shapes and dtypes, allocating no parameter: the held
    trees when the model has them, else memory-less stand-ins built from its specs."""
    from . import random as _random
    from .nn._spec import materialize
    if model.__dict__.get("_params") is not None:
        return model.params, model.state
    if model._custom_init():  # a module that only defines init(): small by construction
        return model.init(_random.key(0))
    return materialize(model.specs(), _random.key(0), abstract=True)


def _float_dtype(params):
    for leaf in _tree.leaves(params):
        dt = np.dtype(getattr(leaf, "dtype", np.float64))
        if dt.kind == "f":
            return dt
    return np.dtype(np.float32)



def _trace(model, shape):
    """The program of ``model`` (eval mode) on an abstract NCHW input; returns
    ``(program, leaf_paths, sizes, x_var)``."""
    from ._core import aval
    from ._jit import make_program
    params, state = _abstract_trees(model)
    p_leaves, _ = _tree.flatten_with_path(params)
    s_leaves, _ = _tree.flatten_with_path(state)
    x = np.broadcast_to(np.zeros((), _float_dtype(params)), shape)
    leaves, treedef = _tree.flatten((params, state, x))
    avals = [aval(np.shape(l), getattr(l, "dtype", np.asarray(l).dtype)) for l in leaves]

    def forward(p, s, xx):
        return model._call(p, s, xx, False, None, "NCHW")

    try:
        program, _ = make_program(forward, avals, treedef.unflatten)
    except Exception as e:  # noqa: BLE001 - re-raised with what was being traced
        raise ValueError(f"{_WHERE}: tracing {type(model).__name__}'s forward on an input of "
                         f"shape {shape} failed: {type(e).__name__}: {e}") from e
    named = [(_tree.path_str(p), np.size(l)) for p, l in p_leaves] + \
            [(_tree.path_str(p), 0) for p, l in s_leaves]
    inputs = program.inputs[:len(named)]
    leaf_paths = {v: path for v, (path, _) in zip(inputs, named)}
    sizes = {v: int(size) for v, (_, size) in zip(inputs, named)}
    return program, leaf_paths, sizes, program.inputs[len(named)]


def _module_kinds(model) -> dict:
    """Module path -> class name; containers (Sequential) add no row of their own."""
    from .nn import Sequential
    return {path: type(m).__name__ for path, m in model.named_modules()
            if path and not isinstance(m, Sequential)}


def _layer_tree(model, shape) -> LayerInfo:
    program, leaf_paths, sizes, x = _trace(model, shape)
    y = program.outputs[0] if program.outputs else None
    return build_rows(program, leaf_paths, sizes, _module_kinds(model), _Rules,
                      type(model).__name__, x, y)


# ---- the public function ------------------------------------------------------------------------
def _check_input_shape(shape):
    ok = isinstance(shape, (tuple, list)) and len(shape) in (3, 4) and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape)
    if not ok:
        raise ValueError(f"{_WHERE}: input_shape must be (N, C, H, W) or (C, H, W) with positive "
                         f"ints, got {shape!r}")
    return (1,) + tuple(int(s) for s in shape) if len(shape) == 3 else tuple(int(s) for s in shape)


def _check_against_model(model, shape):
    cfg = getattr(model, "config", None)
    if cfg is None:
        return
    name = type(model).__name__
    if shape[1] != cfg.in_chans:
        raise ValueError(f"{_WHERE}: {name} takes {cfg.in_chans} input channels, got input_shape "
                         f"{shape}")
    if min(shape[2:]) < cfg.min_input_size:
        raise ValueError(f"{_WHERE}: {name} needs H, W >= {cfg.min_input_size}, got input_shape "
                         f"{shape}")


def summary(model, input_shape, format: str = "table", depth: int = 2) -> ModelSummary:
    """Describe a model layer by layer, from the program of its traced forward.

    Args:
      model: a lucid.nn.Module (e.g. ``lucid.models.convnext_tiny()``) or a registered name.
      input_shape: NCHW input shape, (N, C, H, W) or (C, H, W) (batch 1).
      format: "table" (layers, output shapes, params, MACs) or "mermaid" (a ``flowchart TD``:
        stem -> stages with their block structure -> head).
      depth: deepest level of the table (1: stem/stages/head, 2: blocks, 3: their layers).
    Returns:
      a :class:`ModelSummary`; its totals equal ``model.num_parameters()`` and timm's MACs.

    The model is traced in eval mode on abstract values: no kernel runs and its
    parameters are not allocated.
    """
    from .nn import Module
    if isinstance(model, str):
        from .models import create_model
        model = create_model(model)
    if not isinstance(model, Module):
        raise TypeError(f"{_WHERE}: model must be a lucid.nn.Module or a model name, got "
                        f"{type(model).__name__}")
    if format not in ("table", "mermaid"):
        raise ValueError(f"{_WHERE}: format must be 'table' or 'mermaid', got {format!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"{_WHERE}: depth must be a positive int, got {depth!r}")
    shape = _check_input_shape(input_shape)
    _check_against_model(model, shape)
    root = _layer_tree(model, shape)
    text = _table(model, root, shape, depth) if format == "table" else _mermaid(root, shape)
    return ModelSummary(text, root)
