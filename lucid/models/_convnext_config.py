"""ConvNeXt's configuration: its dataclass (timm's option names and defaults) and the
configuration read off a parameter tree."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _common as C

__all__ = ["ConvNeXtConfig", "config_from_params"]

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
