"""The model registry: ``create_model(name, **kw)`` and ``list_models(pattern)``."""
from __future__ import annotations

import difflib
import fnmatch

__all__ = ["register_model", "create_model", "list_models"]

_MODELS: dict = {}


def register_model(fn):
    """Register a variant factory under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str | None = None) -> list:
    """Sorted names of the registered models, optionally filtered by an fnmatch pattern."""
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError("lucid.models.list_models: pattern must be a str, got "
                        f"{type(pattern).__name__}")
    names = sorted(_MODELS)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def create_model(name: str, **kwargs):
    """Build a registered model.

    Args:
      name: e.g. "convnext_tiny" (see ``list_models()``).
      **kwargs: the factory's overrides (``num_classes``, ``drop_path``, ...);
        ``weights=PATH`` loads a timm checkpoint (.safetensors, .npz, .pth) and
        ``pretrained=True`` timm's own (``model.pretrained_cfg["hf_hub_id"]``) from the
        Hugging Face cache, downloading it when online (``HF_HUB_OFFLINE=1`` is honoured).
        With another ``num_classes`` than the checkpoint's, everything but the classifier
        is loaded and the classifier is initialised afresh (logged, as timm does).
    Returns:
      the model (a lucid.nn.Module).
    """
    if not isinstance(name, str):
        raise TypeError(f"lucid.models.create_model: name must be a str, got {type(name).__name__}")
    factory = _MODELS.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, list(_MODELS), n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(f"lucid.models.create_model: unknown model {name!r}; {hint}"
                         f"lucid.models.list_models() lists all {len(_MODELS)}")
    return factory(**kwargs)
