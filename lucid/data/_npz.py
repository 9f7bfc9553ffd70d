"""User arrays in a ``.npz`` file: ``x`` images (NCHW or NHWC, uint8 or float), ``y`` labels."""
from __future__ import annotations

import os
import zipfile

import numpy as np

from .._safe_files import load_npz as read_npz
from ._dataset import Dataset

__all__ = ["load_npz"]

_NAME = "lucid.data.load_npz"


def load_npz(path, layout: str | None = None) -> Dataset:
    """Load images and labels from an ``.npz`` file (``np.savez(path, x=..., y=...)``).

    Args:
      path: the file. It must hold ``x``: (N, C, H, W) or (N, H, W, C) with C = 1 or 3
        (or (N, H, W) grey), uint8 pixels or floats; and ``y``: (N,) integer labels >= 0.
        An optional ``classes`` array of strings names the labels.
      layout: "NCHW" or "NHWC" to override the detection from the channel dimension
        (needed only when both dims 1 and 3 could be channels, e.g. (N, 3, 32, 3)).
    Returns:
      a :class:`Dataset` (uint8 stays uint8; other integer pixels in 0..255 become uint8;
      floats become float32 and are used as is).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{_NAME}: the file '{path}' does not exist")
    try:
        # lucid's bounded reader: regular files only, sizes checked before inflating
        arrays = read_npz(path)
        missing = [k for k in ("x", "y") if k not in arrays]
        if missing:
            raise ValueError(f"it has arrays {sorted(arrays)} but needs 'x' (images) and "
                             f"'y' (labels); missing {missing}")
        x, y = arrays["x"], arrays["y"]
        classes = arrays.get("classes")
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{_NAME}: cannot read '{path}': {e}") from None
    x = _images_nchw(x, layout, path)
    y = _labels(y, x.shape[0], path)
    if classes is None:
        classes = tuple(str(i) for i in range(int(y.max()) + 1))
    else:
        classes = tuple(str(c) for c in np.asarray(classes).reshape(-1))
        if int(y.max()) >= len(classes):
            raise ValueError(f"{_NAME}: '{path}' names {len(classes)} classes but has label "
                             f"{int(y.max())}")
    return Dataset(x, y, classes)


def _images_nchw(x: np.ndarray, layout, path) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]  # (N, H, W) grey
        layout = "NCHW"
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"{_NAME}: '{path}': x must be (N, C, H, W) or (N, H, W, C) with N > 0, "
                         f"got shape {x.shape}")
    if layout is None:
        nchw, nhwc = x.shape[1] in (1, 3), x.shape[3] in (1, 3)
        if nchw == nhwc:
            what = "ambiguous" if nchw else "not 1 or 3 in dim 1 (NCHW) or dim 3 (NHWC)"
            raise ValueError(f"{_NAME}: '{path}': cannot tell the channel dim of x with shape "
                             f"{x.shape} ({what}); pass layout='NCHW' or layout='NHWC'")
        layout = "NCHW" if nchw else "NHWC"
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"{_NAME}: layout must be 'NCHW', 'NHWC' or None, got {layout!r}")
    if layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(_pixels(x, path))


def _pixels(x: np.ndarray, path) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind in "iu":
        if x.min() < 0 or x.max() > 255:
            raise ValueError(f"{_NAME}: '{path}': integer pixels must be in 0..255, got values "
                             f"in [{x.min()}, {x.max()}]")
        return x.astype(np.uint8)
    if x.dtype.kind == "f":
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise ValueError(f"{_NAME}: '{path}': x contains NaN or infinite values")
        return x
    raise ValueError(f"{_NAME}: '{path}': x must be uint8, integer or float pixels, got dtype "
                     f"{x.dtype}")


def _labels(y: np.ndarray, n: int, path) -> np.ndarray:
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(f"{_NAME}: '{path}': y must be ({n},) integer labels (one per image), "
                         f"got shape {y.shape} and dtype {y.dtype}")
    if y.min() < 0:
        raise ValueError(f"{_NAME}: '{path}': labels must be >= 0, got {int(y.min())}")
    return y.astype(np.int64)
