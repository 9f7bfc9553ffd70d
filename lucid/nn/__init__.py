"""Neural-network layers: ``lucid.nn.functional`` (pure functions) and the Module facade.

The facade classes hold parameters as pytrees whose "."-joined paths are timm's
state-dict keys; see :class:`lucid.nn.Module` for the object / functional duality.
"""
from . import functional
from ._blocks import InceptionDWConv2d, MlpHead, Sequential, _MLPHead
from ._layers import (GELU, AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, DropPath, Flatten,
                      Identity, LayerNorm, LayerNorm2d, Linear)
from ._module import Context, IncompatibleKeys, Module
from ._spec import ParamSpec

__all__ = [
    "functional", "Module", "Context", "ParamSpec", "IncompatibleKeys",
    "Identity", "Conv2d", "Linear", "LayerNorm", "LayerNorm2d", "BatchNorm2d", "GELU",
    "Dropout", "DropPath", "AdaptiveAvgPool2d", "Flatten", "Sequential",
    "InceptionDWConv2d", "MlpHead", "_MLPHead",
]
