"""Models: ConvNeXt and InceptionNeXt, timm-exact, in functional and object form.

    import lucid.models as models
    model = models.create_model("convnext_tiny", num_classes=10)   # or models.convnext_tiny(...)
    logits = model(x)                                              # NCHW in, logits out
    params, state = models.convnext.init(key, model.config)       # the functional form
    logits = models.convnext.apply(params, x)

``list_models(pattern)`` lists the registered variants; ``from_state_dict(lucid.io.load(path))``
turns a timm checkpoint into the ``(params, state)`` pytrees of the functional form.
"""
from . import convnext, inception_next
from ._common import from_state_dict
from ._registry import create_model, list_models, register_model
from .convnext import (ConvNeXt, ConvNeXtConfig, convnext_atto, convnext_base, convnext_femto,
                       convnext_large, convnext_nano, convnext_pico, convnext_small, convnext_tiny,
                       convnext_xlarge)
from .inception_next import (InceptionNeXt, InceptionNeXtConfig, inception_next_atto,
                             inception_next_base, inception_next_small, inception_next_tiny)

__all__ = [
    "convnext", "inception_next", "from_state_dict", "create_model", "list_models",
    "register_model",
    "ConvNeXt", "ConvNeXtConfig", "InceptionNeXt", "InceptionNeXtConfig",
    "convnext_atto", "convnext_femto", "convnext_pico", "convnext_nano", "convnext_tiny",
    "convnext_small", "convnext_base", "convnext_large", "convnext_xlarge",
    "inception_next_atto", "inception_next_tiny", "inception_next_small", "inception_next_base",
]
