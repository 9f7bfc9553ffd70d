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
from dataclasses import dataclass

import numpy as np

from .. import numpy as lnp
from ..nn import functional as F
from ..nn._spec import ParamSpec, materialize
from . import _common as C
from ._layer_info import convnext_info
from ._registry import register_model

__all__ = ["ConvNeXtConfig", "ConvNeXt", "init", "apply", "config_from_params", "specs",
           "VARIANTS"]

_WHERE = "lucid.models.convnext"


@dataclass(frozen=True)
class ConvNeXtConfig:
    """Every constructor option of ConvNeXt (timm names and defaults).

    Attributes:
      num_classes: logits (0: return the pooled, normalised features).
      depths, dims: blocks and channels per stage.
      in_chans: input channels.
      kernel_sizes: depthwise kernel size (odd), an int or one per stage.
      ls_init_value: initial layer scale gamma; None: no layer scale.
      patch_size: stem patchify kernel and stride.
      head_init_scale: scale of the head's initial weights.
      conv_mlp: MLP weights as 1x1 convs (4C, C, 1, 1) instead of linears (4C, C).
      conv_bias: biases in the stem, downsample and depthwise convs.
      norm_eps: LayerNorm epsilon.
      drop_rate: dropout before the classifier (training only).
      drop_path_rate: stochastic depth, linear over all blocks up to this rate (training only).
    """

    num_classes: int = 1000
    depths: tuple = (3, 3, 9, 3)
    dims: tuple = (96, 192, 384, 768)
    in_chans: int = 3
    kernel_sizes: int | tuple = 7
    ls_init_value: float | None = 1e-6
    patch_size: int = 4
    head_init_scale: float = 1.0
    conv_mlp: bool = False
    conv_bias: bool = True
    norm_eps: float = 1e-6
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self):
        where = "lucid.models.ConvNeXtConfig"
        depths = C.check_int_seq(self.depths, "depths", where)
        dims = C.check_int_seq(self.dims, "dims", where)
        if len(depths) != len(dims):
            raise ValueError(f"{where}: depths and dims need the same length, got {depths} and "
                             f"{dims}")
        ks = self.kernel_sizes
        ks = C.check_int_seq([ks] * len(dims) if isinstance(ks, (int, np.integer)) else ks,
                             "kernel_sizes", where)
        if len(ks) != len(dims) or any(k % 2 == 0 for k in ks):
            raise ValueError(f"{where}: kernel_sizes must be odd, one per stage, got "
                             f"{self.kernel_sizes!r}")
        C.check_int_seq([self.in_chans, self.patch_size], "in_chans and patch_size", where)
        C.check_int_seq([self.num_classes], "num_classes", where, minimum=0)
        for name in ("drop_rate", "drop_path_rate"):
            C.check_rate(getattr(self, name), name, where)
        C.check_finite(self.ls_init_value, "ls_init_value", where, optional=True)
        C.check_finite(self.norm_eps, "norm_eps", where, positive=True)
        for name, value in (("depths", depths), ("dims", dims),
                            ("kernel_sizes", ks if len(set(ks)) > 1 else ks[0])):
            object.__setattr__(self, name, value)

    def kernel(self, stage: int) -> int:
        return self.kernel_sizes if isinstance(self.kernel_sizes, int) else self.kernel_sizes[stage]

    @property
    def min_input_size(self) -> int:
        return self.patch_size * 2 ** (len(self.dims) - 1)


# ---- parameters ---------------------------------------------------------------------------
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


def _block_specs(cfg, c, k):
    spec = {}
    if cfg.ls_init_value is not None:
        spec["gamma"] = ParamSpec((c,), "full", cfg.ls_init_value)
    spec["conv_dw"] = _conv(c, c, k, cfg.conv_bias, groups=c)
    spec["norm"] = _norm(c)
    spec["mlp"] = {"fc1": _linear(c, 4 * c, cfg.conv_mlp), "fc2": _linear(4 * c, c, cfg.conv_mlp)}
    return spec


def specs(cfg: ConvNeXtConfig) -> dict:
    """The parameter spec tree (timm's keys, order, shapes and initialisation)."""
    dims = cfg.dims
    stages = []
    for i, (depth, c) in enumerate(zip(cfg.depths, dims)):
        stage = {} if i == 0 else {"downsample": [_norm(dims[i - 1]),
                                                  _conv(dims[i - 1], c, 2, cfg.conv_bias)]}
        stage["blocks"] = [_block_specs(cfg, c, cfg.kernel(i)) for _ in range(depth)]
        stages.append(stage)
    head = {"norm": _norm(dims[-1])}
    if cfg.num_classes:
        scale = cfg.head_init_scale
        head["fc"] = {"weight": ParamSpec((cfg.num_classes, dims[-1]), "trunc_normal",
                                          0.02 * scale),
                      "bias": ParamSpec((cfg.num_classes,))}
    return {"stem": [_conv(cfg.in_chans, dims[0], cfg.patch_size, cfg.conv_bias), _norm(dims[0])],
            "stages": stages, "head": head}


def init(key, config: ConvNeXtConfig, dtype=np.float32):
    """Fresh ``(params, state)`` with timm's initialisation; ``state`` is ``{}``."""
    if not isinstance(config, ConvNeXtConfig):
        raise TypeError(f"{_WHERE}.init: config must be a ConvNeXtConfig, got "
                        f"{type(config).__name__}")
    return materialize(specs(config), key, dtype)


def config_from_params(params) -> ConvNeXtConfig:
    """The architecture of a ConvNeXt parameter tree (rates at their defaults)."""
    try:
        stem = params["stem"][0]
        stages = params["stages"]
        block0 = stages[0]["blocks"][0]
        head = params["head"]
        return ConvNeXtConfig(
            num_classes=head["fc"]["weight"].shape[0] if "fc" in head else 0,
            depths=tuple(len(s["blocks"]) for s in stages),
            dims=tuple(s["blocks"][0]["conv_dw"]["weight"].shape[0] for s in stages),
            in_chans=stem["weight"].shape[1], patch_size=stem["weight"].shape[2],
            kernel_sizes=tuple(s["blocks"][0]["conv_dw"]["weight"].shape[2] for s in stages),
            ls_init_value=1e-6 if "gamma" in block0 else None,
            conv_mlp=block0["mlp"]["fc1"]["weight"].ndim == 4, conv_bias="bias" in stem)
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise ValueError(f"{_WHERE}.apply: params is not a ConvNeXt parameter tree (missing or "
                         f"malformed entry {e}); use init() or "
                         "lucid.models.from_state_dict()") from e


# ---- forward ------------------------------------------------------------------------------
def _layer_norm(p, x, eps):
    return F.layer_norm(x, p["weight"], p["bias"], eps, axis=-1)


def _block(p, x, cfg, rate, key, train):
    """dwconv -> LN -> fc1 -> GELU -> fc2 -> gamma, plus the residual (timm's ConvNeXtBlock)."""
    w = p["conv_dw"]["weight"]
    y = F.conv2d(x, w, p["conv_dw"].get("bias"), padding=(w.shape[2] - 1) // 2, groups=w.shape[0],
                 data_format="NHWC")
    y = _layer_norm(p["norm"], y, cfg.norm_eps)
    return C.mlp_residual(p, x, y, rate, key, train)


def _head(p, x, cfg, train, key):
    """Global average pool -> LayerNorm -> dropout -> fc (timm's NormMlpClassifierHead)."""
    x = _layer_norm(p["norm"], F.global_avg_pool(x, data_format="NHWC"), cfg.norm_eps)
    if train and cfg.drop_rate > 0.0:
        x = F.dropout(x, cfg.drop_rate, key, train=True)
    return F.linear(x, p["fc"]["weight"], p["fc"]["bias"]) if "fc" in p else x


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
    cfg = config_from_params(params) if config is None else config
    if not isinstance(cfg, ConvNeXtConfig):
        raise TypeError(f"{where}: config must be a ConvNeXtConfig, got {type(cfg).__name__}")
    C.check_tree(params, C.expected_shapes(specs, cfg)[0], "params", where)
    if state is not None and C.named_leaves(state):
        raise ValueError(f"{where}: ConvNeXt has no state (BatchNorm buffers), got a non-empty "
                         "state")
    rates = C.drop_path_rates(cfg.drop_path_rate, cfg.depths)
    C.check_key(key, train, cfg.drop_path_rate > 0 or cfg.drop_rate > 0, where,
                f"drop_path_rate={cfg.drop_path_rate}, drop_rate={cfg.drop_rate}")
    x = C.check_input(x, cfg.in_chans, cfg.min_input_size, C.params_dtype(params, where), where)
    x = lnp.transpose(x, (0, 2, 3, 1))
    stem = params["stem"]
    x = F.conv2d(x, stem[0]["weight"], stem[0].get("bias"), stride=cfg.patch_size,
                 data_format="NHWC")
    x = _layer_norm(stem[1], x, cfg.norm_eps)
    g = 0
    for i, stage in enumerate(params["stages"]):
        if i > 0:
            ds = stage["downsample"]
            x = _layer_norm(ds[0], x, cfg.norm_eps)
            x = F.conv2d(x, ds[1]["weight"], ds[1].get("bias"), stride=2, data_format="NHWC")
        for block in stage["blocks"]:
            x = _block(block, x, cfg, rates[g], C.sub_key(key, g), train)
            g += 1
    logits = _head(params["head"], x, cfg, train, C.sub_key(key, g))
    return (logits, {}) if train else logits


# ---- object form --------------------------------------------------------------------------
class ConvNeXt(C.FamilyModel):
    """ConvNeXt as a Module (``.config``, ``.init``, ``.apply`` give the functional form).

    Args:
      num_classes: classifier outputs.
      depths, dims: blocks and channels per stage.
      drop_path: stochastic-depth rate (timm's ``drop_path_rate``).
      layer_scale_init: initial layer scale (timm's ``ls_init_value``).
      **overrides: any other :class:`ConvNeXtConfig` field (``conv_mlp``, ``drop_rate``, ...).
    """

    _specs, _init, _apply = staticmethod(specs), staticmethod(init), staticmethod(apply)
    _info = staticmethod(convnext_info)

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


def _create(variant, num_classes, weights, kwargs) -> ConvNeXt:
    model = ConvNeXt(**{**VARIANTS[variant], "num_classes": num_classes, **kwargs})
    return C.load_weights(model, weights)


@register_model
def convnext_atto(num_classes: int = 1000, *, weights=None, **kwargs) -> ConvNeXt:
    """ConvNeXt-Atto: 3.70M params, 0.55 GMACs (1x1-conv MLP weights)."""
    return _create("convnext_atto", num_classes, weights, kwargs)


@register_model
def convnext_femto(num_classes: int = 1000, *, weights=None, **kwargs) -> ConvNeXt:
    """ConvNeXt-Femto (1x1-conv MLP weights)."""
    return _create("convnext_femto", num_classes, weights, kwargs)


@register_model
def convnext_pico(num_classes: int = 1000, *, weights=None, **kwargs) -> ConvNeXt:
    """ConvNeXt-Pico (1x1-conv MLP weights)."""
    return _create("convnext_pico", num_classes, weights, kwargs)


@register_model
def convnext_nano(num_classes: int = 1000, *, weights=None, **kwargs) -> ConvNeXt:
    """ConvNeXt-Nano (1x1-conv MLP weights)."""
    return _create("convnext_nano", num_classes, weights, kwargs)


@register_model
def convnext_tiny(num_classes: int = 1000, *, weights=None, **kwargs) -> ConvNeXt:
    """ConvNeXt-T: 28.59M params, 4.46 GMACs at 224."""
    return _create("convnext_tiny", num_classes, weights, kwargs)


@register_model
def convnext_small(num_classes: int = 1000, *, weights=None, **kwargs) -> ConvNeXt:
    """ConvNeXt-S: 50.22M params, 8.68 GMACs at 224."""
    return _create("convnext_small", num_classes, weights, kwargs)


@register_model
def convnext_base(num_classes: int = 1000, *, weights=None, **kwargs) -> ConvNeXt:
    """ConvNeXt-B: 88.59M params, 15.36 GMACs at 224."""
    return _create("convnext_base", num_classes, weights, kwargs)


@register_model
def convnext_large(num_classes: int = 1000, *, weights=None, **kwargs) -> ConvNeXt:
    """ConvNeXt-L: 197.77M params, 34.36 GMACs at 224."""
    return _create("convnext_large", num_classes, weights, kwargs)


@register_model
def convnext_xlarge(num_classes: int = 1000, *, weights=None, **kwargs) -> ConvNeXt:
    """ConvNeXt-XL: 350.20M params, 60.92 GMACs at 224."""
    return _create("convnext_xlarge", num_classes, weights, kwargs)
