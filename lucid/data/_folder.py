"""User images in a class-per-folder tree: ``root/class_name/*.png|jpg|jpeg`` (Pillow)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._dataset import Dataset

__all__ = ["load_image_folder", "read_image", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def load_image_folder(root, image_size: int | None = None) -> Dataset:
    """Load ``root/<class_name>/<image>`` files as a dataset; classes are the sorted folder names.

    Args:
      root: the folder holding one sub-folder per class (hidden folders are ignored).
      image_size: None to require that all images have the same size, or an int: each
        image is resized (shorter side, bilinear) and centre-cropped to image_size².
    Returns:
      a :class:`Dataset` of uint8 RGB images (grey/RGBA/palette images are converted).
    Raises:
      FileNotFoundError: ``root`` does not exist.
      ValueError: no class folders, a class folder without images, an unreadable image
        (the message names the file), or images of different sizes without image_size.
    """
    name = "lucid.data.load_image_folder"
    root = Path(os.fspath(root))
    if not root.exists():
        raise FileNotFoundError(f"{name}: the folder '{root}' does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{name}: '{root}' is a file, expected a folder with one "
                                 "sub-folder of images per class")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"{name}: '{root}' has no class folders; expected "
                         f"'{root}/<class_name>/<image>.png' (extensions {IMAGE_EXTENSIONS})")
    files, labels = [], []
    for label, d in enumerate(class_dirs):
        found = sorted(f for f in d.iterdir()
                       if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if not found:
            raise ValueError(f"{name}: the class folder '{d}' has no images "
                             f"({', '.join(IMAGE_EXTENSIONS)}); remove it or add images")
        files += found
        labels += [label] * len(found)
    images = [read_image(f, image_size) for f in files]
    first = images[0].shape
    for f, img in zip(files, images):
        if img.shape != first:
            raise ValueError(f"{name}: '{f}' is {img.shape[2]}x{img.shape[1]} but "
                             f"'{files[0]}' is {first[2]}x{first[1]}; pass image_size= to "
                             "resize all images to one size")
    return Dataset(np.stack(images), np.asarray(labels, np.int64),
                   tuple(d.name for d in class_dirs))


def read_image(path, image_size: int | None = None) -> np.ndarray:
    """Read one image file as uint8 RGB (3, H, W), optionally resized (shorter side, bilinear)
    and centre-cropped to ``image_size`` x ``image_size``.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: Pillow cannot read it (the message names the file).
    """
    from PIL import Image

    if image_size is not None and (isinstance(image_size, bool) or not isinstance(
            image_size, (int, np.integer)) or not 1 <= image_size <= 8192):
        raise ValueError(f"lucid.data.read_image: image_size must be None or an int in "
                         f"[1, 8192], got {image_size!r}")
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"lucid.data.read_image: the image '{path}' does not exist")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"lucid.data.read_image: cannot read the image '{path}' "
                         f"({type(e).__name__}: {e}); is it a valid PNG/JPEG file?") from None
    if image_size is not None:
        im = _resize_center_crop(im, int(image_size))
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


def _resize_center_crop(im, size: int):
    from PIL import Image

    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))
