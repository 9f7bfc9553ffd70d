"""Composite modules: Sequential, the Inception depthwise token mixer and the MLP head.

InceptionDWConv2d and MlpHead keep timm's submodules (their attribute names are the
state-dict keys) for introspection, but run their functional forms
(``inception_mixer_apply``, ``mlp_head_apply``), which the InceptionNeXt model functions call
directly; ``<name>_config`` validates the constructor arguments and ``<name>_specs`` gives
the parameter specs.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import random as _random
from .._core import name_scope
from . import functional as F
from ._layers import (GELU, AdaptiveAvgPool2d, Conv2d, Dropout, Identity, LayerNorm, Linear,
                      _check_rate)
from ._module import Module, _ndim, check_positive_int
from ._spec import ParamSpec
from ._tree_util import has_leaves, subtree

__all__ = ["Sequential", "InceptionDWConv2d", "MlpHead", "InceptionMixerConfig",
           "inception_mixer_config", "inception_mixer_specs", "inception_mixer_apply",
           "MlpHeadConfig", "mlp_head_config", "mlp_head_specs", "mlp_head_apply"]


class Sequential(Module):
    """Runs modules in order; their parameters form a list (keys "0.weight", "1.bias", ...)."""

    native_nhwc = True  # each child converts the layout for itself if it needs to

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"lucid.nn.Sequential: argument {i} is {type(m).__name__}, "
                                "expected a lucid.nn.Module")
            setattr(self, str(i), m)

    def __len__(self):
        return len(self.named_children())

    def __getitem__(self, i):
        return self.children()[i]

    def __iter__(self):
        return iter(self.children())

    def specs(self):
        return [m if m._custom_init() else m.specs() for m in self.children()]

    def _run(self, params, state, x, *, train, key, data_format):
        states, changed = [], False
        for i, m in enumerate(self.children()):
            k = None if key is None else _random.fold_in(key, i)
            s = subtree(state, str(i))
            with name_scope(str(i)):
                x, ns = m._call(subtree(params, str(i)), s, x, train, k, data_format)
            states.append(ns if has_leaves(ns) else {})
            changed = changed or ns is not s
        return x, (states if changed else state)


def _odd_kernel(k, what):
    k = check_positive_int(k, what, "InceptionDWConv2d")
    if k % 2 == 0:
        raise ValueError(f"lucid.nn.InceptionDWConv2d: {what} must be odd (same-size output), "
                         f"got {k}")
    return k


@dataclass(frozen=True)
class InceptionMixerConfig:
    """The static configuration of InceptionNeXt's token mixer (see InceptionDWConv2d)."""

    in_chs: int
    gc: int
    square_kernel_size: int
    band_kernel_size: int
    branch_ratio: float


def inception_mixer_config(in_chs, square_kernel_size=3, band_kernel_size=11,
                           branch_ratio=0.125) -> InceptionMixerConfig:
    """Validate InceptionDWConv2d's constructor arguments (timm's names and defaults)."""
    in_chs = check_positive_int(in_chs, "in_chs", "InceptionDWConv2d")
    sk = _odd_kernel(square_kernel_size, "square_kernel_size")
    kb = _odd_kernel(band_kernel_size, "band_kernel_size")
    if not isinstance(branch_ratio, (int, float)) or not 0 < branch_ratio <= 1 / 3:
        raise ValueError("lucid.nn.InceptionDWConv2d: branch_ratio must be in (0, 1/3], got "
                         f"{branch_ratio!r}")
    gc = int(in_chs * branch_ratio)
    if gc < 1:
        raise ValueError(f"lucid.nn.InceptionDWConv2d: in_chs * branch_ratio = {in_chs} * "
                         f"{branch_ratio} gives no channel per branch")
    return InceptionMixerConfig(in_chs, gc, sk, kb, branch_ratio)


def _dw_spec(gc, kh, kw):
    return {"weight": ParamSpec((gc, 1, kh, kw), "trunc_normal", 0.02), "bias": ParamSpec((gc,))}


def inception_mixer_specs(cfg: InceptionMixerConfig) -> dict:
    """Parameter specs of the mixer: its three depthwise convs, in timm's key order."""
    sk, kb, gc = cfg.square_kernel_size, cfg.band_kernel_size, cfg.gc
    return {"dwconv_hw": _dw_spec(gc, sk, sk), "dwconv_w": _dw_spec(gc, 1, kb),
            "dwconv_h": _dw_spec(gc, kb, 1)}


def inception_mixer_apply(params, x, cfg: InceptionMixerConfig, *, data_format="NHWC"):
    """The mixer as a pure function: identity + square + two band depthwise convs.

    One fused pass (``F.inception_dwconv2d``) instead of split -> three convs -> concatenate.
    """
    axis = 1 if data_format == "NCHW" else -1
    if _ndim(x) != 4 or x.shape[axis] != cfg.in_chs:
        raise ValueError(f"lucid.nn.InceptionDWConv2d: expected a 4-D {data_format} "
                         f"input with {cfg.in_chs} channels, got shape {tuple(x.shape)}")
    hw, w, h = params["dwconv_hw"], params["dwconv_w"], params["dwconv_h"]
    return F.inception_dwconv2d(x, hw["weight"], hw.get("bias"), w["weight"], w.get("bias"),
                                h["weight"], h.get("bias"), data_format=data_format)


@dataclass(frozen=True)
class MlpHeadConfig:
    """The static configuration of timm's MlpClassifierHead (see MlpHead)."""

    in_features: int
    num_classes: int
    hidden_size: int
    drop_rate: float
    bias: bool


def mlp_head_config(in_features, num_classes=1000, pool_type="avg", mlp_ratio=3, act_layer=GELU,
                    drop_rate=0.0, bias=True) -> MlpHeadConfig:
    """Validate MlpHead's constructor arguments (timm's names and defaults)."""
    if pool_type != "avg":
        raise ValueError(f"lucid.nn.MlpHead: pool_type must be 'avg', got {pool_type!r}")
    in_features = check_positive_int(in_features, "in_features", "MlpHead")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError("lucid.nn.MlpHead: num_classes must be an int >= 0, got "
                         f"{num_classes!r}")
    _check_rate(drop_rate, "drop_rate", "MlpHead")
    return MlpHeadConfig(in_features, num_classes, int(mlp_ratio * in_features),
                         float(drop_rate), bool(bias))


def _linear_spec(fin, fout, bias):
    spec = {"weight": ParamSpec((fout, fin), "trunc_normal", 0.02)}
    if bias:
        spec["bias"] = ParamSpec((fout,))
    return spec


def mlp_head_specs(cfg: MlpHeadConfig) -> dict:
    """Parameter specs of the head (fc1, norm, fc2 unless num_classes is 0), timm's keys."""
    hidden = cfg.hidden_size
    spec = {"fc1": _linear_spec(cfg.in_features, hidden, cfg.bias),
            "norm": {"weight": ParamSpec((hidden,), "ones"), "bias": ParamSpec((hidden,))}}
    if cfg.num_classes:
        spec["fc2"] = _linear_spec(hidden, cfg.num_classes, cfg.bias)
    return spec


# The Module form of the head gave its dropout the key of its fifth child call; kept so that
# training runs draw the same masks as before.
_HEAD_DROPOUT_CALL = 5


def mlp_head_apply(params, x, cfg: MlpHeadConfig, *, train=False, key=None, data_format="NHWC",
                   pre_logits=False):
    """The head as a pure function: avg pool -> fc1 -> GELU -> LayerNorm -> dropout -> fc2.

    ``pre_logits=True`` stops before the dropout and fc2 (timm's ``forward_head``).
    """
    axis = 1 if data_format == "NCHW" else -1
    if _ndim(x) != 4 or x.shape[axis] != cfg.in_features:
        raise ValueError(f"lucid.nn.MlpHead: expected a 4-D {data_format} feature map "
                         f"with {cfg.in_features} channels, got shape {tuple(x.shape)}")
    with name_scope("global_pool"):   # timm's module paths, for lucid.summary
        x = F.global_avg_pool(x, data_format=data_format, keepdims=False)
    fc1, norm = params["fc1"], params["norm"]
    x = F.linear(x, fc1["weight"], fc1.get("bias"))
    with name_scope("act"):
        x = F.gelu(x)
    x = F.layer_norm(x, norm["weight"], norm["bias"], 1e-6, axis=-1)
    if pre_logits:
        return x
    if train and cfg.drop_rate > 0.0:
        if key is None:
            raise TypeError("lucid.nn.MlpHead: training with drop_rate > 0 needs a random key")
        with name_scope("drop"):
            x = F.dropout(x, cfg.drop_rate, _random.fold_in(key, _HEAD_DROPOUT_CALL), train=True)
    if "fc2" not in params:
        return x
    return F.linear(x, params["fc2"]["weight"], params["fc2"].get("bias"))


class InceptionDWConv2d(Module):
    """InceptionNeXt's token mixer: identity + three depthwise conv branches on channel splits.

    The channels split, in this order, into ``(C - 3*gc, gc, gc, gc)`` with
    ``gc = int(C * branch_ratio)``: identity, a square ``k x k`` depthwise conv, a ``1 x kb``
    band (mixes along W) and a ``kb x 1`` band (mixes along H); the results are concatenated.

    Args:
      in_chs: channels C.
      square_kernel_size: k (odd), default 3.
      band_kernel_size: kb (odd), default 11 (timm's inception_next_atto uses 9).
      branch_ratio: gc / C, default 0.125 (atto: 0.25).
    """

    native_nhwc = True

    def __init__(self, in_chs, square_kernel_size=3, band_kernel_size=11, branch_ratio=0.125):
        super().__init__()
        cfg = inception_mixer_config(in_chs, square_kernel_size, band_kernel_size, branch_ratio)
        self.mixer_config = cfg
        self.in_chs, self.gc = cfg.in_chs, cfg.gc
        sk, kb, gc = cfg.square_kernel_size, cfg.band_kernel_size, cfg.gc
        self.square_kernel_size, self.band_kernel_size, self.branch_ratio = sk, kb, branch_ratio
        self.dwconv_hw = Conv2d(gc, gc, sk, padding=(sk - 1) // 2, groups=gc)
        self.dwconv_w = Conv2d(gc, gc, (1, kb), padding=(0, (kb - 1) // 2), groups=gc)
        self.dwconv_h = Conv2d(gc, gc, (kb, 1), padding=((kb - 1) // 2, 0), groups=gc)
        self.split_indexes = (cfg.in_chs - 3 * gc, gc, gc, gc)

    def specs(self):
        return inception_mixer_specs(self.mixer_config)

    def _run(self, params, state, x, *, train, key, data_format):
        return inception_mixer_apply(params, x, self.mixer_config, data_format=data_format), state

    def extra_repr(self):
        return (f"{self.in_chs}, square_kernel_size={self.square_kernel_size}, "
                f"band_kernel_size={self.band_kernel_size}, branch_ratio={self.branch_ratio}")


class MlpHead(Module):
    """timm's MlpClassifierHead: avg pool -> fc1 -> GELU -> LayerNorm(eps 1e-6) -> dropout -> fc2.

    Takes the feature map (NCHW from ``__call__``). Also available as ``_MLPHead``.

    Args:
      in_features: channels of the feature map.
      num_classes: logits (0: no fc2, return the normalised hidden features).
      pool_type: "avg" (the only pooling supported).
      mlp_ratio: hidden width = int(mlp_ratio * in_features); default 3.
      act_layer: activation Module class, default GELU (exact erf).
      drop_rate: dropout before fc2 (training only).
      bias: biases in fc1 / fc2.
    """

    native_nhwc = True

    def __init__(self, in_features, num_classes=1000, pool_type="avg", mlp_ratio=3, act_layer=GELU,
                 drop_rate=0.0, bias=True):
        super().__init__()
        cfg = mlp_head_config(in_features, num_classes, pool_type, mlp_ratio, act_layer,
                              drop_rate, bias)
        # a head with another activation composes its submodules (forward below)
        self.head_config = cfg if act_layer is GELU else None
        self.in_features, self.num_classes = cfg.in_features, cfg.num_classes
        self.hidden_size = hidden = cfg.hidden_size
        self.global_pool = AdaptiveAvgPool2d(1, flatten=True)
        self.fc1 = Linear(in_features, hidden, bias=bias)
        self.act = act_layer()
        self.norm = LayerNorm(hidden, eps=1e-6)
        self.drop = Dropout(drop_rate)
        self.fc2 = Linear(hidden, num_classes, bias=bias) if num_classes > 0 else Identity()

    def _run(self, params, state, x, *, train, key, data_format):
        if self.head_config is None:
            return super()._run(params, state, x, train=train, key=key, data_format=data_format)
        return mlp_head_apply(params, x, self.head_config, train=train, key=key,
                              data_format=data_format), state

    def forward(self, x):
        axis = self.ctx.channel_axis
        if x.ndim != 4 or x.shape[axis] != self.in_features:
            raise ValueError(f"lucid.nn.MlpHead: expected a 4-D {self.ctx.data_format} feature map "
                             f"with {self.in_features} channels, got shape {tuple(x.shape)}")
        x = self.global_pool(x)
        x = self.norm(self.act(self.fc1(x)))
        return self.fc2(self.drop(x))


_MLPHead = MlpHead
