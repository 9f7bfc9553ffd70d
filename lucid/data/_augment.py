"""Batch augmentation, vectorised over the batch and deterministic given a key.

Augmentations work on the raw NCHW batch (uint8 or float, before normalisation), so the
zero padding of a random crop is black, as in torchvision's ``RandomCrop(padding=4)``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import random as _random
from .._sample_shard import draw_per_sample

__all__ = ["random_crop", "random_flip", "RandomCropFlip"]


def _check_batch(x, fn: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"lucid.data.{fn}: expected an (N, C, H, W) array, got {got}")
    return x


def random_crop(key, x: np.ndarray, padding: int = 4) -> np.ndarray:
    """Zero-pad each image by ``padding`` pixels on every side and crop back to (H, W) at a
    random offset per image.

    Args:
      key: a lucid.random key.
      x: (N, C, H, W) batch.
      padding: pixels of zero padding (>= 0).
    Returns:
      a new array shaped and typed like ``x``.
    """
    x = _check_batch(x, "random_crop")
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"lucid.data.random_crop: padding must be an int >= 0, got {padding!r}")
    n, c, h, w = x.shape
    k_rows, k_cols = _random.split(key)
    # per-sample draws: under data parallelism each rank takes its rows of the global draw
    dy = draw_per_sample(lambda s: _random.randint(k_rows, s, 0, 2 * padding + 1), (n,), "random_crop")
    dx = draw_per_sample(lambda s: _random.randint(k_cols, s, 0, 2 * padding + 1), (n,), "random_crop")
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), x.dtype)
    padded[:, :, padding:padding + h, padding:padding + w] = x
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # (n, c, 2p+1, 2p+1, h, w)
    return np.ascontiguousarray(windows[np.arange(n), :, dy, dx])


def random_flip(key, x: np.ndarray, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right with probability ``p``.

    Args:
      key: a lucid.random key.
      x: (N, C, H, W) batch.
      p: flip probability in [0, 1].
    Returns:
      a new array shaped and typed like ``x``.
    """
    x = _check_batch(x, "random_flip")
    flip = draw_per_sample(lambda s: _random.bernoulli(key, p, s), (x.shape[0],), "random_flip")
    return np.where(flip[:, None, None, None], x[..., ::-1], x)


@dataclasses.dataclass(frozen=True)
class RandomCropFlip:
    """The standard small-image augmentation: random crop with zero padding, then a random
    horizontal flip. Pass an instance as ``augment=`` to :func:`lucid.data.batches`.

    Attributes:
      padding: zero padding of the crop (0 disables cropping).
      flip: whether to flip horizontally with probability 0.5.
    """

    padding: int = 4
    flip: bool = True

    def __post_init__(self):
        if (isinstance(self.padding, bool) or not isinstance(self.padding, (int, np.integer))
                or self.padding < 0):
            raise ValueError(f"lucid.data.RandomCropFlip: padding must be an int >= 0, got "
                             f"{self.padding!r}")

    def __call__(self, key, x: np.ndarray) -> np.ndarray:
        k_crop, k_flip = _random.split(key)
        if self.padding:
            x = random_crop(k_crop, x, self.padding)
        if self.flip:
            x = random_flip(k_flip, x)
        return x
