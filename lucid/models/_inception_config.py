"""InceptionNeXt's configuration: its dataclass, the token mixers and head it names resolved
to their functional forms, and the configuration read off a parameter tree."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ..nn._blocks import (InceptionDWConv2d, MlpHead, inception_mixer_config,
                          inception_mixer_specs, mlp_head_config, mlp_head_specs)
from ..nn._layers import GELU, Identity
from ..nn._module import Module
from . import _common as C

__all__ = ["InceptionNeXtConfig", "config_from_params"]

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
        _parts(self)  # resolve the mixers and the head now, so bad classes fail here

    @property
    def min_input_size(self) -> int:
        return 4 * 2 ** (len(self.dims) - 1)


@dataclass(frozen=True)
class _Part:
    """A token mixer or head resolved from the config: ``kind`` is "identity", "inception",
    "mlp_head" (the built-in classes, run by their pure functions) or "module" (any other
    Module class, run through its own functional ``_call`` on its slice of the trees)."""

    kind: str
    cfg: Any  # InceptionMixerConfig / MlpHeadConfig / the Module built from the user's class


def _unwrap(factory):
    """``(class, args, keywords)`` of a class or a ``functools.partial`` of one."""
    if isinstance(factory, functools.partial):
        return factory.func, factory.args, dict(factory.keywords)
    return factory, (), {}


def _resolve_mixer(factory, dim) -> _Part:
    cls, args, kw = _unwrap(factory)
    if cls is Identity:
        return _Part("identity", None)
    if cls is InceptionDWConv2d:
        return _Part("inception", inception_mixer_config(dim, *args, **kw))
    return _Part("module", _built(factory(dim), "token_mixers"))


def _resolve_head(factory, cfg) -> _Part:
    cls, args, kw = _unwrap(factory)
    kw.update(pool_type="avg", drop_rate=cfg.drop_rate)
    if cls is MlpHead and kw.get("act_layer", GELU) is GELU:
        return _Part("mlp_head", mlp_head_config(cfg.dims[-1], cfg.num_classes, *args, **kw))
    head = factory(cfg.dims[-1], cfg.num_classes, pool_type="avg", drop_rate=cfg.drop_rate)
    return _Part("module", _built(head, "head_fn"))


def _built(m, what):
    if not isinstance(m, Module):
        raise TypeError(f"lucid.models.InceptionNeXtConfig: {what} must build a lucid.nn.Module, "
                        f"got {type(m).__name__}")
    return m


@functools.lru_cache(maxsize=64)
def _parts(cfg: InceptionNeXtConfig):
    """The per-stage token mixers and the head of a config, resolved once."""
    return (tuple(_resolve_mixer(make, dim) for make, dim in zip(cfg.token_mixers, cfg.dims)),
            _resolve_head(cfg.head_fn, cfg))


def _part_specs(part: _Part):
    if part.kind == "identity":
        return {}
    if part.kind == "inception":
        return inception_mixer_specs(part.cfg)
    if part.kind == "mlp_head":
        return mlp_head_specs(part.cfg)
    m = part.cfg
    return m if m._custom_init() else m.specs()


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
