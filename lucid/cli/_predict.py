"""``lucid predict``: ImageNet-style preprocessing and top-k class names."""
from __future__ import annotations

import math
import os

import numpy as np

from . import UserError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
CROP_PCT = 0.875  # timm's default crop_pct: resize to 224/0.875 = 256, centre-crop 224
_FILTERS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "nearest": "NEAREST",
            "lanczos": "LANCZOS", "box": "BOX", "hamming": "HAMMING"}


def _resized_size(w: int, h: int, short: int) -> tuple:
    """torchvision's ``Resize(short)``: the short side to ``short``, the long one truncated."""
    if w <= h:
        return short, int(short * h / w)
    return int(short * w / h), short


def preprocess(path: str, size: int, crop_pct: float = CROP_PCT,
               mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation: str = "bicubic") -> np.ndarray:
    """Read an image as timm's eval transform does: resize the short side to
    ``floor(size / crop_pct)``, centre-crop ``size``, scale to [0, 1], normalise.

    Returns:
      float32 array (3, size, size), NCHW-ready.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            new = _resized_size(*im.size, math.floor(size / crop_pct))
            im = im.resize(new, getattr(Image, _FILTERS.get(interpolation, "BICUBIC")))
            left, top = int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))
            im = im.crop((left, top, left + size, top + size))
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise UserError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read image {path}: {e.__class__.__name__}: it is not an image "
                        "Pillow can open (png, jpg, ...)") from None
    return ((arr - mean) / std).transpose(2, 0, 1).copy()


def class_names(labels_path, weights_path, meta, n_classes: int):
    """Names from --labels, the training checkpoint, classes.json beside the weights, or ImageNet."""
    if labels_path:
        if not os.path.isfile(labels_path):
            raise UserError(f"labels file {labels_path} does not exist")
        with open(labels_path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    elif meta is not None:
        names = meta["classes"]
    elif n_classes == 1000:
        here = os.path.join(os.path.dirname(__file__), "imagenet_classes.txt")
        with open(here, encoding="utf-8") as f:
            names = [line.split(",")[0].strip() for line in f]
    else:
        names = [f"class {i}" for i in range(n_classes)]
    if len(names) != n_classes:
        raise UserError(f"{len(names)} class names for a model with {n_classes} classes")
    return names


def predict_images(model, meta, images, labels_path, weights_path, top: int):
    """Yield one line per image: its top-k classes with probabilities."""
    from ..nn import functional as F
    from ._commands import _num_classes
    n_classes = _num_classes(model)
    names = class_names(labels_path, weights_path, meta, n_classes)
    if meta is not None:  # a lucid-trained model: its own image size and normalisation
        size = meta["config"]["image_size"]
        mean = np.asarray(meta["normalize"]["mean"], np.float32)
        std = np.asarray(meta["normalize"]["std"], np.float32)
        batch = np.stack([preprocess(p, size, 1.0, mean, std) for p in images])
    else:  # timm's pretrained_cfg of the variant (timm's defaults for custom depths/dims)
        cfg = getattr(model, "pretrained_cfg", None) or {}
        size = int(cfg.get("input_size", (3, 224, 224))[-1])
        mean = np.asarray(cfg.get("mean", IMAGENET_MEAN), np.float32)
        std = np.asarray(cfg.get("std", IMAGENET_STD), np.float32)
        batch = np.stack([preprocess(p, size, cfg.get("crop_pct", CROP_PCT), mean, std,
                                     cfg.get("interpolation", "bicubic")) for p in images])
    model.eval()
    probs = np.asarray(F.softmax(model.apply(model.params, batch, state=model.state), axis=-1))
    k = min(top, n_classes)
    for path, p in zip(images, probs):
        idx = np.argsort(-p, kind="stable")[:k]
        ranked = ", ".join(f"{names[i]} {p[i]:.3f}" for i in idx)
        yield f"{path}: {ranked}"
