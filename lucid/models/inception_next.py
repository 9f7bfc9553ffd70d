"""InceptionNeXt (Yu et al. 2023), numerically identical to timm's ``MetaNeXt``.

Functional form::

    cfg = InceptionNeXtConfig(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768),
                              token_mixers=functools.partial(nn.InceptionDWConv2d))
    params, state = init(lucid.random.key(0), cfg)    # state: BatchNorm running statistics
    logits = apply(params, x, state=state)             # eval: running statistics
    logits, state = apply(params, x, state=state, train=True, key=k, config=cfg)

Convention (both families): ``apply`` returns the logits when ``train`` is False and
``(logits, new_state)`` when it is True (new running statistics: momentum 0.1,
unbiased batch variance, ``num_batches_tracked + 1``, as PyTorch). ``params`` and
``state`` are nested dicts whose "."-joined paths are timm's state-dict keys. Without
``state`` the initial statistics (mean 0, variance 1) are used; without ``config`` the
architecture is read off the parameter shapes (built-in mixers and head only) and the
dropout / drop-path rates are 0.

``token_mixers`` and ``head_fn`` take timm's Module classes (or ``functools.partial``s of
them): ``nn.Identity``, ``nn.InceptionDWConv2d`` and ``nn.MlpHead`` are mapped to their pure
functions (``inception_mixer_apply``, ``mlp_head_apply``), so ``apply`` is a function of
arrays and the static config alone. Any other ``lucid.nn.Module`` class (built like timm's,
``token_mixer(dim)`` / ``head_fn(dims[-1], num_classes, pool_type="avg",
drop_rate=drop_rate)``, once per config) is run through that Module's own functional
``_call`` on its slice of the params and state. The documented class default mixer is
``nn.Identity``, while the ``inception_next_*`` factories use ``nn.InceptionDWConv2d``.

The file reads like timm's: blocks (``*_specs`` and pure ``*_apply`` functions over a
block's slice of the trees), the model (``specs``, ``init``, ``apply``,
``forward_features``, ``forward_head``), the Module facade (whose sub-modules run the same
block functions), the variants. The config dataclass lives in ``_inception_config``.

Internally the activations are channels-last (NHWC); the public boundary is NCHW.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .. import numpy as lnp
from .. import random as _random
from .._core import name_scope
from ..nn import functional as F
from ..nn._blocks import InceptionDWConv2d, _MLPHead, inception_mixer_apply, mlp_head_apply
from ..nn._layers import Identity, batch_norm_forward
from ..nn._spec import ParamSpec, materialize
from ..nn._tree_util import has_leaves, subtree
from . import _common as C
from ._inception_config import (InceptionNeXtConfig, _built, _Part, _part_specs, _parts,
                                config_from_params)
from ._registry import register_model

__all__ = ["InceptionNeXtConfig", "InceptionNeXt", "init", "apply", "forward_features",
           "forward_head", "config_from_params", "specs",
           "VARIANTS", "_MLPHead"]

_WHERE = "lucid.models.inception_next"


# ---- blocks: parameter specs and pure functions (NHWC activations) -------------------------
def _bn(c):
    return {"weight": ParamSpec((c,), "ones"), "bias": ParamSpec((c,)),
            "running_mean": ParamSpec((c,), trainable=False),
            "running_var": ParamSpec((c,), "ones", trainable=False),
            "num_batches_tracked": ParamSpec((), trainable=False, dtype="int64")}


def _conv(cin, cout, k):
    return {"weight": ParamSpec((cout, cin, k, k), "trunc_normal", 0.02),
            "bias": ParamSpec((cout,))}


def _put(tree: dict, name, value):
    if has_leaves(value):
        tree[name] = value


def stem_specs(cfg):
    return [_conv(cfg.in_chans, cfg.dims[0], 4), _bn(cfg.dims[0])]


def stem_apply(p, s, x, train):
    """4x4 stride-4 patchify conv -> BatchNorm; returns ``(x, new_state)``."""
    x = F.conv2d(x, p[0]["weight"], p[0]["bias"], stride=4, data_format="NHWC")
    x, bn_state = batch_norm_forward(p[1], s[1], x, train=train, axis=-1)
    return x, [{}, bn_state]


def downsample_specs(cfg, i):
    return [_bn(cfg.dims[i - 1]), _conv(cfg.dims[i - 1], cfg.dims[i], 2)]


def downsample_apply(p, s, x, train):
    """BatchNorm -> 2x2 stride-2 conv, between stages; returns ``(x, new_state)``."""
    x, bn_state = batch_norm_forward(p[0], s[0], x, train=train, axis=-1)
    return F.conv2d(x, p[1]["weight"], p[1]["bias"], stride=2, data_format="NHWC"), [bn_state, {}]


def mixer_apply(part: _Part, p, s, x, train, key):
    """A token mixer by its pure function (built-in classes) or its Module's ``_call``."""
    if part.kind == "identity":
        return x, s
    if part.kind == "inception":
        return inception_mixer_apply(p, x, part.cfg, data_format="NHWC"), s
    y, new_state = part.cfg._call(p, s, x, train, key, "NHWC")
    if tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"{_WHERE}: the token mixer {type(part.cfg).__name__} changed the shape "
                         f"{tuple(x.shape)} to {tuple(y.shape)} (NHWC)")
    return y, new_state


def block_specs(cfg, i):
    c = cfg.dims[i]
    hidden = int(cfg.mlp_ratios[i] * c)
    block = {}
    if cfg.ls_init_value is not None:
        block["gamma"] = ParamSpec((c,), "full", cfg.ls_init_value)
    block.update(token_mixer=_part_specs(_parts(cfg)[0][i]), norm=_bn(c),
                 mlp={"fc1": _conv(c, hidden, 1), "fc2": _conv(hidden, c, 1)})
    return block


def block_apply(p, s, x, mixer: _Part, rate, key, train):
    """mixer -> BN -> fc1 -> GELU -> fc2 -> gamma, plus the residual (timm's MetaNeXtBlock);
    returns ``(x, new_state)``."""
    with name_scope("token_mixer"):
        y, mixer_state = mixer_apply(mixer, p.get("token_mixer", {}), s.get("token_mixer", {}),
                                     x, train, C.sub_key(key, 0))
    y, norm_state = batch_norm_forward(p["norm"], s.get("norm"), y, train=train, axis=-1)
    y = C.mlp_residual(p, x, y, rate, C.sub_key(key, 1) if train and rate > 0.0 else None, train)
    new_state = {}
    _put(new_state, "token_mixer", mixer_state)
    _put(new_state, "norm", norm_state)
    return y, new_state


def stage_specs(cfg, i):
    stage = {} if i == 0 else {"downsample": downsample_specs(cfg, i)}
    stage["blocks"] = [block_specs(cfg, i)] * cfg.depths[i]  # materialize builds each separately
    return stage


def stage_apply(p, s, x, cfg, i, train, key, first_block=None):
    """One stage: (BN -> 2x2/2 conv downsample unless i == 0) then its blocks.

    Block j gets the drop-path rate and key of global block ``first_block + j`` (the
    stage's place in the model by default; 0 for a stage run on its own)."""
    first = sum(cfg.depths[:i]) if first_block is None else first_block
    rates = C.drop_path_rates(cfg.drop_path_rate, cfg.depths)[sum(cfg.depths[:i]):]
    mixer = _parts(cfg)[0][i]
    new_state = {}
    if i > 0:
        x, new_state["downsample"] = downsample_apply(p["downsample"], s["downsample"], x, train)
    new_state["blocks"] = []
    for j, block in enumerate(p["blocks"]):
        with name_scope(f"blocks.{j}"):
            x, block_state = block_apply(block, s["blocks"][j], x, mixer, rates[j],
                                         C.sub_key(key, first + j), train)
        new_state["blocks"].append(block_state)
    return x, new_state


def head_specs(cfg):
    return _part_specs(_parts(cfg)[1])


def head_apply(p, s, x, cfg, train, key, pre_logits=False):
    """The head (name scope "head") by its pure function (MlpHead) or its Module's ``_call``."""
    head = _parts(cfg)[1]
    with name_scope("head"):
        if head.kind == "mlp_head":
            return mlp_head_apply(p, x, head.cfg, train=train, key=key, data_format="NHWC",
                                  pre_logits=pre_logits), s
        if pre_logits:
            raise ValueError(f"{_WHERE}.forward_head: pre_logits needs the built-in head "
                             f"(MlpHead), not {type(head.cfg).__name__}")
        return head.cfg._call(p, s, x, train, key, "NHWC")


# ---- model --------------------------------------------------------------------------------
def specs(cfg: InceptionNeXtConfig) -> dict:
    """The parameter/buffer spec tree (timm's keys, order, shapes and initialisation)."""
    return {"stem": stem_specs(cfg), "stages": [stage_specs(cfg, i) for i in range(len(cfg.dims))],
            "head": head_specs(cfg)}


def init(key, config: InceptionNeXtConfig, dtype=np.float32):
    """Fresh ``(params, state)``: timm's initialisation, BN running statistics 0 / 1."""
    if not isinstance(config, InceptionNeXtConfig):
        raise TypeError(f"{_WHERE}.init: config must be an InceptionNeXtConfig, got "
                        f"{type(config).__name__}")
    return materialize(specs(config), key, dtype)


def _features(params, state, x, cfg, train, key):
    """NHWC images -> NHWC feature map; returns ``(x, new_state)`` (without the head's)."""
    with name_scope("stem"):
        x, stem_state = stem_apply(params["stem"], state["stem"], x, train)
    new_state = {"stem": stem_state, "stages": []}
    for i, stage in enumerate(params["stages"]):
        with name_scope(f"stages.{i}"):
            x, stage_state = stage_apply(stage, state["stages"][i], x, cfg, i, train, key)
        new_state["stages"].append(stage_state)
    return x, new_state


def apply(params, x, *, state=None, train: bool = False, key=None,
          config: InceptionNeXtConfig = None):
    """Run InceptionNeXt.

    Args:
      params: the parameter tree (from ``init`` or a timm state dict).
      x: NCHW images (N, in_chans, H, W), H, W >= 32 for four stages.
      state: BatchNorm running statistics (from ``init``); None: the initial ones (0 / 1).
      train: training mode: batch statistics, drop path and dropout.
      key: random key, required when training with a drop-path or dropout rate > 0.
      config: the architecture and rates; default: read off ``params`` with zero rates.
    Returns:
      logits (N, num_classes), or ``(logits, new_state)`` when ``train``.
    """
    cfg, state, x = _checked(params, x, state, train, key, config)
    x, new_state = _features(params, state, lnp.transpose(x, (0, 2, 3, 1)), cfg, train, key)
    logits, head_state = head_apply(params.get("head", {}), subtree(state, "head"), x, cfg, train,
                                    C.sub_key(key, sum(cfg.depths)))
    _put(new_state, "head", head_state)
    return (logits, new_state) if train else logits


def forward_features(params, x, *, state=None, train: bool = False, key=None,
                     config: InceptionNeXtConfig = None):
    """The NCHW feature map before the head (timm's ``forward_features``); same arguments and
    return convention as :func:`apply` (the new state carries the head's unchanged)."""
    cfg, state, x = _checked(params, x, state, train, key, config, "forward_features")
    x, new_state = _features(params, state, lnp.transpose(x, (0, 2, 3, 1)), cfg, train, key)
    _put(new_state, "head", subtree(state, "head"))
    feats = lnp.transpose(x, (0, 3, 1, 2))
    return (feats, new_state) if train else feats


def forward_head(params, x, *, state=None, train: bool = False, key=None,
                 config: InceptionNeXtConfig = None, pre_logits: bool = False):
    """The head on an NCHW feature map (timm's ``forward_head``): logits, or the hidden
    features before the classifier with ``pre_logits=True``; convention of :func:`apply`."""
    cfg, state, x = _checked(params, x, state, train, key, config, "forward_head", True)
    y, head_state = head_apply(params.get("head", {}), subtree(state, "head"),
                               lnp.transpose(x, (0, 2, 3, 1)), cfg, train,
                               C.sub_key(key, sum(cfg.depths)), pre_logits)
    new_state = dict(state)
    _put(new_state, "head", head_state)
    return (y, new_state) if train else y


def _checked(params, x, state, train, key, config, fn="apply", head_input=False):
    """Validate everything before any kernel runs; returns (config, state, x).

    ``head_input``: x is a feature map for the head (dims[-1] channels) rather than images.
    """
    where = f"{_WHERE}.{fn}"
    cfg = config_from_params(params) if config is None else config
    if not isinstance(cfg, InceptionNeXtConfig):
        raise TypeError(f"{where}: config must be an InceptionNeXtConfig, got {type(cfg).__name__}")
    param_shapes, state_shapes = C.expected_shapes(specs, cfg)
    C.check_tree(params, param_shapes, "params", where)
    state = initial_state(cfg) if state is None else state
    C.check_tree(state, state_shapes, "state", where)
    C.check_key(key, train, cfg.drop_path_rate > 0 or cfg.drop_rate > 0, where,
                f"drop_path_rate={cfg.drop_path_rate}, drop_rate={cfg.drop_rate}")
    dtype = C.params_dtype(params, where)
    if head_input:
        x = C.check_input(x, cfg.dims[-1], 1, dtype, where)
    else:
        x = C.check_input(x, cfg.in_chans, cfg.min_input_size, dtype, where)
    return cfg, C.cast_state(state, dtype), x


def initial_state(cfg: InceptionNeXtConfig) -> dict:
    """The state ``init`` returns (running mean 0, variance 1, no batches tracked)."""
    return materialize(specs(cfg), _random.key(0), state_only=True)[1]


# ---- object form --------------------------------------------------------------------------
def _pieces(cfg: InceptionNeXtConfig) -> dict:
    """The sub-modules of the facade: each runs one of the functions above on its slice of
    the trees; the token mixers and the head are the Modules their classes build."""
    from ..nn import Sequential
    mixers = _parts(cfg)[0]
    rates = C.drop_path_rates(cfg.drop_path_rate, cfg.depths)

    def block(i, g):
        return C.Piece("MetaNeXtBlock", lambda: block_specs(cfg, i),
                       lambda p, s, x, train, key: block_apply(p, s, x, mixers[i], rates[g], key,
                                                               train),
                       token_mixer=_built(cfg.token_mixers[i](cfg.dims[i]), "token_mixers"))

    def stage(i):
        first = sum(cfg.depths[:i])
        down = None if i == 0 else C.Piece(
            "Downsample", lambda: downsample_specs(cfg, i),
            lambda p, s, x, train, key: downsample_apply(p, s, x, train))
        return C.Piece("MetaNeXtStage", lambda: stage_specs(cfg, i),
                       lambda p, s, x, train, key: stage_apply(p, s, x, cfg, i, train, key, 0),
                       downsample=down,
                       blocks=Sequential(*[block(i, first + j) for j in range(cfg.depths[i])]))

    head = cfg.head_fn(cfg.dims[-1], cfg.num_classes, pool_type="avg", drop_rate=cfg.drop_rate)
    return {"stem": C.Piece("Stem", lambda: stem_specs(cfg),
                            lambda p, s, x, train, key: stem_apply(p, s, x, train)),
            "stages": Sequential(*[stage(i) for i in range(len(cfg.dims))]),
            "head": _built(head, "head_fn")}


class InceptionNeXt(C.FamilyModel):
    """InceptionNeXt (timm's MetaNeXt) as a Module; ``.config``, ``.init``, ``.apply`` give the
    functional form.

    Sub-modules as timm's: ``stem``, ``stages[i]`` (``downsample``, ``blocks[j]`` with its
    ``token_mixer``) and ``head``; each runs its piece of the functional form on its slice
    of ``params``/``state``.

    Args:
      num_classes: classifier outputs.
      depths, dims: blocks and channels per stage.
      token_mixers: Module class built as ``token_mixers(dim)`` (default: nn.Identity, as
        documented; the ``inception_next_*`` factories pass nn.InceptionDWConv2d), or one per stage.
      mlp_ratios: MLP expansion per stage.
      head_fn: head Module class, built as ``head_fn(dims[-1], num_classes, pool_type="avg",
        drop_rate=drop_rate)``; default: the MLP head (``_MLPHead``).
      drop_rate, drop_path_rate: head dropout and stochastic depth (training only).
      ls_init_value: initial layer scale.
      **overrides: ``in_chans``.
    """

    _specs, _init, _apply = staticmethod(specs), staticmethod(init), staticmethod(apply)
    _features, _head = staticmethod(forward_features), staticmethod(forward_head)
    _build = staticmethod(_pieces)
    _classifier = "head.fc2"

    def __init__(self, num_classes: int = 1000, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768),
                 token_mixers=Identity, mlp_ratios=(4, 4, 4, 3), head_fn=_MLPHead,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, ls_init_value: float = 1e-6,
                 **overrides) -> None:
        super().__init__()
        unknown = set(overrides) - {f.name for f in dataclasses.fields(InceptionNeXtConfig)}
        if unknown:
            raise TypeError(f"lucid.models.InceptionNeXt: unknown argument(s) {sorted(unknown)}")
        self.config = InceptionNeXtConfig(
            num_classes=num_classes, depths=depths, dims=dims, token_mixers=token_mixers,
            mlp_ratios=mlp_ratios, head_fn=head_fn, drop_rate=drop_rate,
            drop_path_rate=drop_path_rate, ls_init_value=ls_init_value, **overrides)


# ---- variants -----------------------------------------------------------------------------
def _mixer(band_kernel_size=11, branch_ratio=0.125):
    return functools.partial(InceptionDWConv2d, band_kernel_size=band_kernel_size,
                             branch_ratio=branch_ratio)


VARIANTS = {
    "inception_next_atto": dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320),
                                token_mixers=_mixer(9, 0.25)),
    "inception_next_tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768),
                                token_mixers=_mixer()),
    "inception_next_small": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768),
                                 token_mixers=_mixer()),
    "inception_next_base": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024),
                                token_mixers=_mixer()),
}


def _create(variant, num_classes, weights, pretrained, kwargs) -> InceptionNeXt:
    model = InceptionNeXt(**{**VARIANTS[variant], "num_classes": num_classes, **kwargs})
    return C.finish_variant(model, variant, weights, pretrained)


@register_model
def inception_next_atto(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> InceptionNeXt:
    """InceptionNeXt-Atto: 4.16M params, 0.50 GMACs (band kernel 9, branch ratio 0.25)."""
    return _create("inception_next_atto", num_classes, weights, pretrained, kwargs)


@register_model
def inception_next_tiny(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> InceptionNeXt:
    """InceptionNeXt-T: 28.06M params, 4.19 GMACs at 224."""
    return _create("inception_next_tiny", num_classes, weights, pretrained, kwargs)


@register_model
def inception_next_small(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> InceptionNeXt:
    """InceptionNeXt-S: 49.37M params, 8.36 GMACs at 224."""
    return _create("inception_next_small", num_classes, weights, pretrained, kwargs)


@register_model
def inception_next_base(num_classes: int = 1000, *, weights=None, pretrained: bool = False,
        **kwargs) -> InceptionNeXt:
    """InceptionNeXt-B: 86.67M params, 14.84 GMACs at 224."""
    return _create("inception_next_base", num_classes, weights, pretrained, kwargs)
