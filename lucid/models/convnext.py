"""ConvNeXt (Liu et al., "A ConvNet for the 2020s"), numerically identical to timm's ``ConvNeXt``.

Functional form::

    cfg = ConvNeXtConfig(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768))
    params, state = init(lucid.random.key(0), cfg)     # state is {} (no BatchNorm)
    logits = apply(params, x)                          # x: NCHW
    logits, state = apply(params, x, train=True, key=k, config=cfg)

Convention (both families): ``apply`` returns the logits when ``train`` is False and
``(logits, new_state)`` when it is True (``new_state`` is ``{}`` here). ``params`` is a
nested dict whose "."-joined paths are timm's state-dict keys, with timm's shapes.
Without ``config`` the architecture is read off the parameter shapes and the dropout /
drop-path rates are 0; pass ``config=`` to train with stochastic depth.

Object form: :class:`ConvNeXt` (the documented constructor) and the variant factories
``convnext_atto`` ... ``convnext_xlarge``.

Internally the activations are channels-last (NHWC): the NCHW input is transposed
once, every conv runs with ``data_format="NHWC"`` and every LayerNorm over the last axis.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import numpy as lnp
from .._core import name_scope
from ..nn import functional as F
from ..nn._spec import ParamSpec, materialize
from . import _common as C
from ._convnext_config import ConvNeXtConfig, config_from_params
from ._registry import register_model

__all__ = ["ConvNeXtConfig", "ConvNeXt", "init", "apply", "forward_features", "forward_head",
           "config_from_params", "specs", "VARIANTS"]

_WHERE = "lucid.models.convnext"


# ---- blocks: parameter specs and pure functions (NHWC activations) -------------------------
def _conv(cin, cout, k, bias=True, groups=1, std=0.02):
    spec = {"weight": ParamSpec((cout, cin // groups, k, k), "trunc_normal", std)}
    if bias:
        spec["bias"] = ParamSpec((cout,))
    return spec


def _linear(fin, fout, conv, std=0.02):
    shape = (fout, fin, 1, 1) if conv else (fout, fin)
    return {"weight": ParamSpec(shape, "trunc_normal", std), "bias": ParamSpec((fout,))}


def _norm(c):
    return {"weight": ParamSpec((c,), "ones"), "bias": ParamSpec((c,))}


def _layer_norm(p, x, eps):
    return F.layer_norm(x, p["weight"], p["bias"], eps, axis=-1)


def stem_specs(cfg):
    return [_conv(cfg.in_chans, cfg.dims[0], cfg.patch_size, cfg.conv_bias), _norm(cfg.dims[0])]


def stem_apply(p, x, cfg):
    """Patchify conv (kernel = stride = patch_size) -> LayerNorm."""
    x = F.conv2d(x, p[0]["weight"], p[0].get("bias"), stride=cfg.patch_size, data_format="NHWC")
    return _layer_norm(p[1], x, cfg.norm_eps)


def downsample_specs(cfg, i):
    return [_norm(cfg.dims[i - 1]), _conv(cfg.dims[i - 1], cfg.dims[i], 2, cfg.conv_bias)]


def downsample_apply(p, x, cfg):
    """LayerNorm -> 2x2 stride-2 conv, between stages."""
    x = _layer_norm(p[0], x, cfg.norm_eps)
    return F.conv2d(x, p[1]["weight"], p[1].get("bias"), stride=2, data_format="NHWC")


def block_specs(cfg, i):
    c, k = cfg.dims[i], cfg.kernel(i)
    spec = {}
    if cfg.ls_init_value is not None:
        spec["gamma"] = ParamSpec((c,), "full", cfg.ls_init_value)
    spec["conv_dw"] = _conv(c, c, k, cfg.conv_bias, groups=c)
    spec["norm"] = _norm(c)
    spec["mlp"] = {"fc1": _linear(c, 4 * c, cfg.conv_mlp), "fc2": _linear(4 * c, c, cfg.conv_mlp)}
    return spec


def block_apply(p, x, cfg, rate, key, train):
    """dwconv -> LN -> fc1 -> GELU -> fc2 -> gamma, plus the residual (timm's ConvNeXtBlock)."""
    w = p["conv_dw"]["weight"]
    y = F.conv2d(x, w, p["conv_dw"].get("bias"), padding=(w.shape[2] - 1) // 2, groups=w.shape[0],
                 data_format="NHWC")
    y = _layer_norm(p["norm"], y, cfg.norm_eps)
    return C.mlp_residual(p, x, y, rate, key, train)


def stage_specs(cfg, i):
    stage = {} if i == 0 else {"downsample": downsample_specs(cfg, i)}
    stage["blocks"] = [block_specs(cfg, i) for _ in range(cfg.depths[i])]
    return stage


def stage_apply(p, x, cfg, i, train, key):
    """One stage: the downsample (stages after the first), then its blocks."""
    first = sum(cfg.depths[:i])  # global block index: drop-path rate and key
    rates = C.drop_path_rates(cfg.drop_path_rate, cfg.depths)
    if i > 0:
        x = downsample_apply(p["downsample"], x, cfg)
    for j, block in enumerate(p["blocks"]):
        with name_scope(f"blocks.{j}"):
            x = block_apply(block, x, cfg, rates[first + j], C.sub_key(key, first + j), train)
    return x


def head_specs(cfg):
    head = {"norm": _norm(cfg.dims[-1])}
    if cfg.num_classes:
        head["fc"] = {"weight": ParamSpec((cfg.num_classes, cfg.dims[-1]), "trunc_normal",
                                          0.02 * cfg.head_init_scale),
                      "bias": ParamSpec((cfg.num_classes,))}
    return head


def head_apply(p, x, cfg, train, key, pre_logits=False):
    """Global average pool -> LayerNorm -> dropout -> fc (timm's NormMlpClassifierHead)."""
    with name_scope("head"), name_scope("global_pool"):
        x = F.global_avg_pool(x, data_format="NHWC")
    x = _layer_norm(p["norm"], x, cfg.norm_eps)
    if pre_logits:
        return x
    if train and cfg.drop_rate > 0.0:
        with name_scope("head"), name_scope("drop"):
            x = F.dropout(x, cfg.drop_rate, key, train=True)
    return F.linear(x, p["fc"]["weight"], p["fc"]["bias"]) if "fc" in p else x


# ---- model --------------------------------------------------------------------------------
def specs(cfg: ConvNeXtConfig) -> dict:
    """The parameter spec tree (timm's keys, order, shapes and initialisation)."""
    return {"stem": stem_specs(cfg), "stages": [stage_specs(cfg, i) for i in range(len(cfg.dims))],
            "head": head_specs(cfg)}


def init(key, config: ConvNeXtConfig, dtype=np.float32):
    """Fresh ``(params, state)`` with timm's initialisation; ``state`` is ``{}``."""
    if not isinstance(config, ConvNeXtConfig):
        raise TypeError(f"{_WHERE}.init: config must be a ConvNeXtConfig, got "
                        f"{type(config).__name__}")
    return materialize(specs(config), key, dtype)


def _checked(params, state, train, key, config, where):
    """Validate the trees, the config and the key before any kernel runs; returns the config."""
    cfg = config_from_params(params) if config is None else config
    if not isinstance(cfg, ConvNeXtConfig):
        raise TypeError(f"{where}: config must be a ConvNeXtConfig, got {type(cfg).__name__}")
    C.check_tree(params, C.expected_shapes(specs, cfg)[0], "params", where)
    if state is not None and C.named_leaves(state):
        raise ValueError(f"{where}: ConvNeXt has no state (BatchNorm buffers), got a non-empty "
                         "state")
    C.check_key(key, train, cfg.drop_path_rate > 0 or cfg.drop_rate > 0, where,
                f"drop_path_rate={cfg.drop_path_rate}, drop_rate={cfg.drop_rate}")
    return cfg


def _features(params, x, cfg, train, key):
    """NHWC images -> NHWC feature map of the last stage (each piece in the name scope of
    its module path, which lucid.summary reads from the traced program)."""
    with name_scope("stem"):
        x = stem_apply(params["stem"], x, cfg)
    for i, stage in enumerate(params["stages"]):
        with name_scope(f"stages.{i}"):
            x = stage_apply(stage, x, cfg, i, train, key)
    return x


def apply(params, x, *, state=None, train: bool = False, key=None, config: ConvNeXtConfig = None):
    """Run ConvNeXt.

    Args:
      params: the parameter tree (from ``init`` or a timm state dict).
      x: NCHW images (N, in_chans, H, W), H, W >= 32 for four stages.
      state: unused (ConvNeXt has no buffers); ``None`` or ``{}``.
      train: training mode: drop path and dropout are active.
      key: random key, required when training with a drop-path or dropout rate > 0.
      config: the architecture and rates; default: read off ``params`` with zero rates.
    Returns:
      logits (N, num_classes), or ``(logits, {})`` when ``train``.
    """
    where = f"{_WHERE}.apply"
    cfg = _checked(params, state, train, key, config, where)
    x = C.check_input(x, cfg.in_chans, cfg.min_input_size, C.params_dtype(params, where), where)
    x = _features(params, lnp.transpose(x, (0, 2, 3, 1)), cfg, train, key)
    logits = head_apply(params["head"], x, cfg, train, C.sub_key(key, sum(cfg.depths)))
    return (logits, {}) if train else logits


def forward_features(params, x, *, state=None, train: bool = False, key=None,
                     config: ConvNeXtConfig = None):
    """The NCHW feature map before the head (timm's ``forward_features``); same arguments and
    return convention as :func:`apply`."""
    where = f"{_WHERE}.forward_features"
    cfg = _checked(params, state, train, key, config, where)
    x = C.check_input(x, cfg.in_chans, cfg.min_input_size, C.params_dtype(params, where), where)
    feats = lnp.transpose(_features(params, lnp.transpose(x, (0, 2, 3, 1)), cfg, train, key),
                          (0, 3, 1, 2))
    return (feats, {}) if train else feats


def forward_head(params, x, *, state=None, train: bool = False, key=None,
                 config: ConvNeXtConfig = None, pre_logits: bool = False):
    """The head on an NCHW feature map (timm's ``forward_head``): logits, or the pooled,
    normalised features with ``pre_logits=True``; same return convention as :func:`apply`."""
    where = f"{_WHERE}.forward_head"
    cfg = _checked(params, state, train, key, config, where)
    x = C.check_input(x, cfg.dims[-1], 1, C.params_dtype(params, where), where)
    out = head_apply(params["head"], lnp.transpose(x, (0, 2, 3, 1)), cfg, train,
                     C.sub_key(key, sum(cfg.depths)), pre_logits)
    return (out, {}) if train else out


# ---- object form --------------------------------------------------------------------------
def _pieces(cfg: ConvNeXtConfig) -> dict:
    """The sub-modules of the facade: each runs one of the functions above."""
    from ..nn import Sequential
    rates = C.drop_path_rates(cfg.drop_path_rate, cfg.depths)

    def block(i, g):
        return C.Piece("ConvNeXtBlock", lambda: block_specs(cfg, i),
                       lambda p, s, x, train, key: (block_apply(p, x, cfg, rates[g], key, train), s))

    def stage(i):
        first = sum(cfg.depths[:i])
        down = None if i == 0 else C.Piece(
            "Downsample", lambda: downsample_specs(cfg, i),
            lambda p, s, x, train, key: (downsample_apply(p, x, cfg), s))
        blocks = Sequential(*[block(i, first + j) for j in range(cfg.depths[i])])
        return C.Piece("ConvNeXtStage", lambda: stage_specs(cfg, i),
                       lambda p, s, x, train, key: (_stage_alone(p, x, cfg, i, train, key), s),
                       downsample=down, blocks=blocks)

    return {"stem": C.Piece("Stem", lambda: stem_specs(cfg),
                            lambda p, s, x, train, key: (stem_apply(p, x, cfg), s)),
            "stages": Sequential(*[stage(i) for i in range(len(cfg.dims))]),
            "head": C.Piece("NormClassifierHead", lambda: head_specs(cfg),
                            lambda p, s, x, train, key: (head_apply(p, x, cfg, train, key), s))}


def _stage_alone(p, x, cfg, i, train, key):
    """A stage called on its own: block j of the stage gets ``fold_in(key, j)``."""
    rates = C.drop_path_rates(cfg.drop_path_rate, cfg.depths)[sum(cfg.depths[:i]):]
    if i > 0:
        x = downsample_apply(p["downsample"], x, cfg)
    for j, block in enumerate(p["blocks"]):
        x = block_apply(block, x, cfg, rates[j], C.sub_key(key, j), train)
    return x


class ConvNeXt(C.FamilyModel):
    """ConvNeXt as a Module (``.config``, ``.init``, ``.apply`` give the functional form).

    Sub-modules as timm's: ``stem``, ``stages[i]`` (``downsample``, ``blocks[j]``) and
    ``head``; each runs its piece of the functional form on its slice of ``params``.

    Args:
      num_classes: classifier outputs.
      depths, dims: blocks and channels per stage.
      drop_path: stochastic-depth rate (timm's ``drop_path_rate``).
      layer_scale_init: initial layer scale (timm's ``ls_init_value``).
      **overrides: any other :class:`ConvNeXtConfig` field (``conv_mlp``, ``drop_rate``, ...).
    """

    _specs, _init, _apply = staticmethod(specs), staticmethod(init), staticmethod(apply)
    _features, _head = staticmethod(forward_features), staticmethod(forward_head)
    _build = staticmethod(_pieces)
    _classifier = "head.fc"

    def __init__(self, num_classes: int = 1000, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768),
                 drop_path: float = 0.0, layer_scale_init: float = 1e-6, **overrides):
        super().__init__()
        where = "lucid.models.ConvNeXt"
        drop_path = C.pop_alias(overrides, "drop_path", "drop_path_rate", drop_path, 0.0, where)
        ls = C.pop_alias(overrides, "layer_scale_init", "ls_init_value", layer_scale_init, 1e-6,
                         where)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(ConvNeXtConfig)}
        if unknown:
            raise TypeError(f"{where}: unknown argument(s) {sorted(unknown)}")
        self.config = ConvNeXtConfig(num_classes=num_classes, depths=depths, dims=dims,
                                     drop_path_rate=drop_path, ls_init_value=ls, **overrides)


# ---- variants -----------------------------------------------------------------------------
VARIANTS = {
    "convnext_atto": dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), conv_mlp=True),
    "convnext_femto": dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384), conv_mlp=True),
    "convnext_pico": dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512), conv_mlp=True),
    "convnext_nano": dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640), conv_mlp=True),
    "convnext_tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "convnext_small": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    "convnext_base": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    "convnext_large": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    "convnext_xlarge": dict(depths=(3, 3, 27, 3), dims=(256, 512, 1024, 2048)),
}


def _create(variant, num_classes, weights, pretrained, kwargs) -> ConvNeXt:
    model = ConvNeXt(**{**VARIANTS[variant], "num_classes": num_classes, **kwargs})
    return C.finish_variant(model, variant, weights, pretrained)


@register_model
def convnext_atto(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> ConvNeXt:
    """ConvNeXt-Atto: 3.70M params, 0.55 GMACs (1x1-conv MLP weights)."""
    return _create("convnext_atto", num_classes, weights, pretrained, kwargs)


@register_model
def convnext_femto(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> ConvNeXt:
    """ConvNeXt-Femto (1x1-conv MLP weights)."""
    return _create("convnext_femto", num_classes, weights, pretrained, kwargs)


@register_model
def convnext_pico(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> ConvNeXt:
    """ConvNeXt-Pico (1x1-conv MLP weights)."""
    return _create("convnext_pico", num_classes, weights, pretrained, kwargs)


@register_model
def convnext_nano(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> ConvNeXt:
    """ConvNeXt-Nano (1x1-conv MLP weights)."""
    return _create("convnext_nano", num_classes, weights, pretrained, kwargs)


@register_model
def convnext_tiny(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> ConvNeXt:
    """ConvNeXt-T: 28.59M params, 4.46 GMACs at 224."""
    return _create("convnext_tiny", num_classes, weights, pretrained, kwargs)


@register_model
def convnext_small(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> ConvNeXt:
    """ConvNeXt-S: 50.22M params, 8.68 GMACs at 224."""
    return _create("convnext_small", num_classes, weights, pretrained, kwargs)


@register_model
def convnext_base(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> ConvNeXt:
    """ConvNeXt-B: 88.59M params, 15.36 GMACs at 224."""
    return _create("convnext_base", num_classes, weights, pretrained, kwargs)


@register_model
def convnext_large(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> ConvNeXt:
    """ConvNeXt-L: 197.77M params, 34.36 GMACs at 224."""
    return _create("convnext_large", num_classes, weights, pretrained, kwargs)


@register_model
def convnext_xlarge(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> ConvNeXt:
    """ConvNeXt-XL: 350.20M params, 60.92 GMACs at 224."""
    return _create("convnext_xlarge", num_classes, weights, pretrained, kwargs)
