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

``token_mixers`` and ``head_fn`` take Module classes (or callables returning a Module),
built as ``token_mixer(dim)`` and ``head_fn(dims[-1], num_classes, pool_type="avg",
drop_rate=drop_rate)`` like timm; the documented class default mixer is
``nn.Identity``, while the ``inception_next_*`` factories use ``nn.InceptionDWConv2d``.

Internally the activations are channels-last (NHWC); the public boundary is NCHW.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import numpy as lnp
from .. import random as _random
from ..nn import functional as F
from ..nn._blocks import InceptionDWConv2d, MlpHead, _MLPHead
from ..nn._layers import Identity, batch_norm_forward
from ..nn._module import Module
from ..nn._spec import ParamSpec, materialize
from ..nn._tree_util import has_leaves, subtree
from . import _common as C
from ._layer_info import inception_next_info
from ._registry import register_model

__all__ = ["InceptionNeXtConfig", "InceptionNeXt", "init", "apply", "config_from_params", "specs",
           "VARIANTS", "_MLPHead"]

_WHERE = "lucid.models.inception_next"


@dataclass(frozen=True)
class InceptionNeXtConfig:
    """Every constructor option of InceptionNeXt (timm's MetaNeXt names).

    Attributes:
      num_classes: classifier outputs.
      depths, dims: blocks and channels per stage.
      token_mixers: Module class (or callable) called as ``token_mixer(dim)``, or one per stage.
      mlp_ratios: MLP expansion per stage (hidden = int(ratio * dim)), or one for all.
      head_fn: Module class called as
        ``head_fn(dims[-1], num_classes, pool_type="avg", drop_rate=drop_rate)``.
      drop_rate: dropout in the head (training only).
      drop_path_rate: stochastic depth, linear over all blocks up to this rate (training only).
      ls_init_value: initial layer scale gamma; None (or 0): no layer scale.
      in_chans: input channels.
    """

    num_classes: int = 1000
    depths: tuple = (3, 3, 9, 3)
    dims: tuple = (96, 192, 384, 768)
    token_mixers: Any = Identity
    mlp_ratios: Any = (4, 4, 4, 3)
    head_fn: Any = MlpHead
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    ls_init_value: float | None = 1e-6
    in_chans: int = 3

    def __post_init__(self):
        where = "lucid.models.InceptionNeXtConfig"
        depths = C.check_int_seq(self.depths, "depths", where)
        dims = C.check_int_seq(self.dims, "dims", where)
        n = len(depths)
        if len(dims) != n:
            raise ValueError(f"{where}: depths and dims need the same length, got {depths} and "
                             f"{dims}")
        ratios, mixers = self.mlp_ratios, self.token_mixers
        ratios = ratios if isinstance(ratios, (list, tuple)) else (ratios,) * n
        mixers = mixers if isinstance(mixers, (list, tuple)) else (mixers,) * n
        if len(ratios) != n or any(isinstance(r, bool) or not isinstance(r, (int, float))
                                   or not 0 < r < float("inf") for r in ratios):
            raise ValueError(f"{where}: mlp_ratios must be a positive number or one per stage, "
                             f"got {self.mlp_ratios!r}")
        if len(mixers) != n or not all(callable(m) for m in mixers) or not callable(self.head_fn):
            raise TypeError(f"{where}: token_mixers (one, or one per stage) and head_fn must be "
                            "lucid.nn.Module classes or callables returning a Module")
        C.check_int_seq([self.in_chans], "in_chans", where)
        C.check_int_seq([self.num_classes], "num_classes", where, minimum=0)
        for name in ("drop_rate", "drop_path_rate"):
            C.check_rate(getattr(self, name), name, where)
        for name, value in (("depths", depths), ("dims", dims), ("mlp_ratios", tuple(ratios)),
                            ("token_mixers", tuple(mixers))):
            object.__setattr__(self, name, value)
        C.check_finite(self.ls_init_value, "ls_init_value", where, optional=True)
        if self.ls_init_value == 0:
            object.__setattr__(self, "ls_init_value", None)
        _modules(self)  # build the mixers and the head now, so bad classes fail here

    @property
    def min_input_size(self) -> int:
        return 4 * 2 ** (len(self.dims) - 1)


@functools.lru_cache(maxsize=64)
def _modules(cfg: InceptionNeXtConfig):
    """The per-stage token-mixer Modules and the head Module of a config (built once)."""
    where = "lucid.models.InceptionNeXtConfig"
    mixers = tuple(make(dim) for make, dim in zip(cfg.token_mixers, cfg.dims))
    head = cfg.head_fn(cfg.dims[-1], cfg.num_classes, pool_type="avg", drop_rate=cfg.drop_rate)
    for what, m in [("token_mixers", m) for m in mixers] + [("head_fn", head)]:
        if not isinstance(m, Module):
            raise TypeError(f"{where}: {what} must build a lucid.nn.Module, got {type(m).__name__}")
    return mixers, head


# ---- parameters ---------------------------------------------------------------------------
def _bn(c):
    return {"weight": ParamSpec((c,), "ones"), "bias": ParamSpec((c,)),
            "running_mean": ParamSpec((c,), trainable=False),
            "running_var": ParamSpec((c,), "ones", trainable=False),
            "num_batches_tracked": ParamSpec((), trainable=False, dtype="int64")}


def _conv(cin, cout, k):
    return {"weight": ParamSpec((cout, cin, k, k), "trunc_normal", 0.02),
            "bias": ParamSpec((cout,))}


def _module_spec(m: Module):
    return m if m._custom_init() else m.specs()


def specs(cfg: InceptionNeXtConfig) -> dict:
    """The parameter/buffer spec tree (timm's keys, order, shapes and initialisation)."""
    mixers, head = _modules(cfg)
    stages = []
    for i, (depth, c) in enumerate(zip(cfg.depths, cfg.dims)):
        cin = cfg.dims[i - 1]
        stage = {} if i == 0 else {"downsample": [_bn(cin), _conv(cin, c, 2)]}
        hidden = int(cfg.mlp_ratios[i] * c)
        block = {}
        if cfg.ls_init_value is not None:
            block["gamma"] = ParamSpec((c,), "full", cfg.ls_init_value)
        block.update(token_mixer=_module_spec(mixers[i]), norm=_bn(c),
                     mlp={"fc1": _conv(c, hidden, 1), "fc2": _conv(hidden, c, 1)})
        stage["blocks"] = [block] * depth  # materialize builds each entry separately
        stages.append(stage)
    return {"stem": [_conv(cfg.in_chans, cfg.dims[0], 4), _bn(cfg.dims[0])], "stages": stages,
            "head": _module_spec(head)}


def init(key, config: InceptionNeXtConfig, dtype=np.float32):
    """Fresh ``(params, state)``: timm's initialisation, BN running statistics 0 / 1."""
    if not isinstance(config, InceptionNeXtConfig):
        raise TypeError(f"{_WHERE}.init: config must be an InceptionNeXtConfig, got "
                        f"{type(config).__name__}")
    return materialize(specs(config), key, dtype)


class _CustomPart(Exception):
    """A token mixer or head whose class cannot be read off the parameter keys."""


def _mixer_from_params(p, c):
    if not p:
        return Identity
    if set(p) != {"dwconv_hw", "dwconv_w", "dwconv_h"}:
        raise _CustomPart(f"token_mixer with keys {sorted(p)}")
    gc = p["dwconv_hw"]["weight"].shape[0]
    return functools.partial(InceptionDWConv2d,
                             square_kernel_size=p["dwconv_hw"]["weight"].shape[2],
                             band_kernel_size=p["dwconv_w"]["weight"].shape[3],
                             branch_ratio=C.int_ratio(gc, c))


def config_from_params(params) -> InceptionNeXtConfig:
    """The architecture of an InceptionNeXt parameter tree (built-in mixers/head; zero rates)."""
    where = f"{_WHERE}.apply"
    try:
        stages, head = params["stages"], params["head"]
        blocks0 = [s["blocks"][0] for s in stages]
        dims = tuple(b["norm"]["weight"].shape[0] for b in blocks0)
        if set(head) - {"fc1", "norm", "fc2"}:
            raise _CustomPart(f"head with keys {sorted(head)}")
        hidden = head["fc1"]["weight"].shape[0]
        return InceptionNeXtConfig(
            num_classes=head["fc2"]["weight"].shape[0] if "fc2" in head else 0,
            depths=tuple(len(s["blocks"]) for s in stages), dims=dims,
            token_mixers=tuple(_mixer_from_params(b.get("token_mixer", {}), c)
                               for b, c in zip(blocks0, dims)),
            mlp_ratios=tuple(C.int_ratio(b["mlp"]["fc1"]["weight"].shape[0], c)
                             for b, c in zip(blocks0, dims)),
            head_fn=functools.partial(MlpHead, mlp_ratio=C.int_ratio(hidden, dims[-1])),
            ls_init_value=1e-6 if "gamma" in blocks0[0] else None,
            in_chans=params["stem"][0]["weight"].shape[1])
    except _CustomPart as e:
        raise ValueError(f"{where}: params has a custom {e}, whose class cannot be read off the "
                         "keys; pass config= (or use the model object's .apply)") from None
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise ValueError(f"{where}: params is not an InceptionNeXt parameter tree (missing or "
                         f"malformed entry {e}); use init() or "
                         "lucid.models.from_state_dict()") from e


# ---- forward ------------------------------------------------------------------------------
def _put(tree: dict, name, value):
    if has_leaves(value):
        tree[name] = value


def _block(p, s, x, mixer, rate, key, train):
    """mixer -> BN -> fc1 -> GELU -> fc2 -> gamma, plus the residual (timm's MetaNeXtBlock)."""
    y, mixer_state = mixer._call(p.get("token_mixer", {}), s.get("token_mixer", {}), x, train,
                                 C.sub_key(key, 0), "NHWC")
    if tuple(y.shape) != tuple(x.shape):
        raise ValueError(f"{_WHERE}: the token mixer {type(mixer).__name__} changed the shape "
                         f"{tuple(x.shape)} to {tuple(y.shape)} (NHWC)")
    y, norm_state = batch_norm_forward(p["norm"], s.get("norm"), y, train=train, axis=-1)
    y = C.mlp_residual(p, x, y, rate, C.sub_key(key, 1) if train and rate > 0.0 else None, train)
    new_state = {}
    _put(new_state, "token_mixer", mixer_state)
    _put(new_state, "norm", norm_state)
    return y, new_state


def _stage(p, s, x, i, cfg, mixer, first_block, train, key):
    """One stage: (BN -> 2x2/2 conv downsample unless i == 0) then its blocks."""
    rates = C.drop_path_rates(cfg.drop_path_rate, cfg.depths)
    new_state = {}
    if i > 0:
        ds = p["downsample"]
        x, bn_state = batch_norm_forward(ds[0], s["downsample"][0], x, train=train, axis=-1)
        x = F.conv2d(x, ds[1]["weight"], ds[1]["bias"], stride=2, data_format="NHWC")
        new_state["downsample"] = [bn_state, {}]
    new_state["blocks"] = []
    for j, block in enumerate(p["blocks"]):
        g = first_block + j  # global block index: drop-path rate and key
        x, block_state = _block(block, s["blocks"][j], x, mixer, rates[g], C.sub_key(key, g), train)
        new_state["blocks"].append(block_state)
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
    mixers, head = _modules(cfg)
    x = lnp.transpose(x, (0, 2, 3, 1))
    stem, stem_state = params["stem"], state["stem"]
    x = F.conv2d(x, stem[0]["weight"], stem[0]["bias"], stride=4, data_format="NHWC")
    x, bn_state = batch_norm_forward(stem[1], stem_state[1], x, train=train, axis=-1)
    new_state = {"stem": [{}, bn_state], "stages": []}
    first = 0
    for i, stage in enumerate(params["stages"]):
        x, stage_state = _stage(stage, state["stages"][i], x, i, cfg, mixers[i], first, train, key)
        new_state["stages"].append(stage_state)
        first += cfg.depths[i]
    logits, head_state = head._call(params.get("head", {}), subtree(state, "head"), x, train,
                                    C.sub_key(key, first), "NHWC")
    _put(new_state, "head", head_state)
    return (logits, new_state) if train else logits


def _checked(params, x, state, train, key, config):
    """Validate everything before any kernel runs; returns (config, state, x)."""
    where = f"{_WHERE}.apply"
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
    x = C.check_input(x, cfg.in_chans, cfg.min_input_size, dtype, where)
    return cfg, C.cast_state(state, dtype), x


def initial_state(cfg: InceptionNeXtConfig) -> dict:
    """The state ``init`` returns (running mean 0, variance 1, no batches tracked)."""
    return materialize(specs(cfg), _random.key(0), state_only=True)[1]


# ---- object form --------------------------------------------------------------------------
class InceptionNeXt(C.FamilyModel):
    """InceptionNeXt (timm's MetaNeXt) as a Module; ``.config``, ``.init``, ``.apply`` give the
    functional form.

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
    _info = staticmethod(lambda cfg, in_shape: inception_next_info(cfg, in_shape, *_modules(cfg)))

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


def _create(variant, num_classes, weights, kwargs) -> InceptionNeXt:
    model = InceptionNeXt(**{**VARIANTS[variant], "num_classes": num_classes, **kwargs})
    return C.load_weights(model, weights)


@register_model
def inception_next_atto(num_classes: int = 1000, *, weights=None, **kwargs) -> InceptionNeXt:
    """InceptionNeXt-Atto: 4.16M params, 0.50 GMACs (band kernel 9, branch ratio 0.25)."""
    return _create("inception_next_atto", num_classes, weights, kwargs)


@register_model
def inception_next_tiny(num_classes: int = 1000, *, weights=None, **kwargs) -> InceptionNeXt:
    """InceptionNeXt-T: 28.06M params, 4.19 GMACs at 224."""
    return _create("inception_next_tiny", num_classes, weights, kwargs)


@register_model
def inception_next_small(num_classes: int = 1000, *, weights=None, **kwargs) -> InceptionNeXt:
    """InceptionNeXt-S: 49.37M params, 8.36 GMACs at 224."""
    return _create("inception_next_small", num_classes, weights, kwargs)


@register_model
def inception_next_base(num_classes: int = 1000, *, weights=None, **kwargs) -> InceptionNeXt:
    """InceptionNeXt-B: 86.67M params, 14.84 GMACs at 224."""
    return _create("inception_next_base", num_classes, weights, kwargs)
