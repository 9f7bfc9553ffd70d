"""timm's pretrained configurations, loading timm checkpoints for fine-tuning, and
``pretrained=True`` through the local Hugging Face cache.

Each variant's ``pretrained_cfg`` is the one of timm's default pretrained tag for that
architecture (the first tag timm lists for it): the Hugging Face repository
(``hf_hub_id``), input size, mean/std, crop_pct, interpolation and classifier key.
"""
from __future__ import annotations

import logging
import os

_LOG = logging.getLogger("lucid.models")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's hub repositories hold


def _cfg(variant, tag, classifier, **overrides) -> dict:
    """timm's ``_cfg`` for these families, for one variant's default tag."""
    return {"architecture": variant, "tag": tag, "hf_hub_id": f"timm/{variant}.{tag}",
            "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
            "crop_pct": 0.875, "interpolation": "bicubic", "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD, "first_conv": "stem.0", "classifier": classifier, **overrides}


def _convnext(variant, tag, **kw):
    return _cfg(variant, tag, "head.fc", test_input_size=(3, 288, 288), **kw)


# timm/models/convnext.py and inception_next.py default_cfgs (timm 1.0): the first tag of each
# architecture is its default.
PRETRAINED_CFGS = {
    "convnext_atto": _convnext("convnext_atto", "d2_in1k", test_crop_pct=0.95),
    "convnext_femto": _convnext("convnext_femto", "d1_in1k", test_crop_pct=0.95),
    "convnext_pico": _convnext("convnext_pico", "d1_in1k", test_crop_pct=0.95),
    "convnext_nano": _convnext("convnext_nano", "in12k_ft_in1k", crop_pct=0.95, test_crop_pct=1.0),
    "convnext_tiny": _convnext("convnext_tiny", "in12k_ft_in1k", crop_pct=0.95, test_crop_pct=1.0),
    "convnext_small": _convnext("convnext_small", "in12k_ft_in1k", crop_pct=0.95,
                                test_crop_pct=1.0),
    "convnext_base": _convnext("convnext_base", "fb_in22k_ft_in1k", test_crop_pct=1.0),
    "convnext_large": _convnext("convnext_large", "fb_in22k_ft_in1k", test_crop_pct=1.0),
    "convnext_xlarge": _convnext("convnext_xlarge", "fb_in22k_ft_in1k", test_crop_pct=1.0),
    "inception_next_atto": _cfg("inception_next_atto", "sail_in1k", "head.fc2"),
    "inception_next_tiny": _cfg("inception_next_tiny", "sail_in1k", "head.fc2"),
    "inception_next_small": _cfg("inception_next_small", "sail_in1k", "head.fc2"),
    "inception_next_base": _cfg("inception_next_base", "sail_in1k", "head.fc2", crop_pct=0.95),
}


def hub_checkpoint(variant: str) -> str:
    """The local path of timm's checkpoint for ``variant`` from the Hugging Face cache,
    downloading it when it is not cached (unless ``HF_HUB_OFFLINE=1``).

    Raises:
      ImportError: huggingface_hub is not installed.
      FileNotFoundError: not cached and not downloadable; the message names the file.
    """
    where = f"lucid.models.{variant}(pretrained=True)"
    try:
        import huggingface_hub as hub
        from huggingface_hub import constants
    except ImportError:
        raise ImportError(f"{where} reads timm's weights from the Hugging Face hub through the "
                          "huggingface_hub package: pip install huggingface_hub (or pass "
                          "weights=PATH to a file you have)") from None
    repo = PRETRAINED_CFGS[variant]["hf_hub_id"]
    for name in HUB_FILES:
        path = hub.try_to_load_from_cache(repo, name)
        if isinstance(path, str):
            return path
    wanted = f"{HUB_FILES[0]} of {repo} (https://huggingface.co/{repo})"
    if constants.HF_HUB_OFFLINE:
        raise FileNotFoundError(f"{where}: {wanted} is not in the Hugging Face cache "
                                f"{constants.HF_HUB_CACHE} and HF_HUB_OFFLINE=1 forbids "
                                "downloading it; download it once online, or pass weights=PATH")
    try:
        return hub.hf_hub_download(repo, HUB_FILES[0])
    except Exception as e:  # noqa: BLE001 - network, HTTP and cache errors all mean "not here"
        raise FileNotFoundError(f"{where}: {wanted} is not in the Hugging Face cache "
                                f"{constants.HF_HUB_CACHE} and could not be downloaded "
                                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                                "; pass weights=PATH to a local copy") from None


def load_pretrained(model, weights) -> None:
    """Load a timm checkpoint (path or flat state dict) into ``model`` for fine-tuning.

    Everything is loaded except a classifier whose shape does not fit the model (e.g. 1000
    ImageNet classes into a 10-class model, or any classifier into ``num_classes=0``): that
    one keeps its fresh initialisation, and a log message (logger "lucid.models", level
    INFO, like timm's) says so. Any other missing, unexpected or mis-shaped key raises.
    """
    from .. import io
    state_dict = io.load(weights) if isinstance(weights, (str, os.PathLike)) else dict(weights)
    prefix = model._classifier + "."
    own = {k: v.shape for k, v in model.state_dict().items() if k.startswith(prefix)}
    theirs = {k: v for k, v in state_dict.items() if k.startswith(prefix)}
    fits = set(own) == set(theirs) and all(
        tuple(theirs[k].shape) == tuple(own[k]) for k in own)
    if not theirs or fits:
        model.load_state_dict(state_dict, strict=True)
        return
    own_classifier = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    others = {k: v for k, v in state_dict.items() if not k.startswith(prefix)}
    try:
        model.load_state_dict({**others, **own_classifier}, strict=True)
    except ValueError:  # more than the classifier differs: report every mismatch
        model.load_state_dict(state_dict, strict=True)
        raise
    w = theirs.get(prefix + "weight")
    got = f"{w.shape[0]} classes" if w is not None else "a different shape"
    _LOG.info("%s: classifier %s of %s (%s) not loaded; re-initialised for %d classes",
              type(model).__name__, model._classifier, _source(weights), got,
              model.config.num_classes)


def _source(weights) -> str:
    return os.fspath(weights) if isinstance(weights, (str, os.PathLike)) else "the state dict"
