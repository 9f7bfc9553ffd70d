"""The in-memory labelled image dataset every loader returns."""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import random as _random

__all__ = ["Dataset", "channel_stats", "train_test_split"]


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Labelled images held in memory, *not* normalised (normalisation happens per batch).

    Attributes:
      x: (N, C, H, W) pixels: uint8 in 0..255 (images; read as ``x / 255``) or float32
        (used as is).
      y: (N,) int64 labels in ``[0, len(classes))``.
      classes: the class names, index = label.
      mean, std: (C,) float32 per-channel statistics of ``x`` in the same units (``x / 255``
        for uint8), used by :func:`lucid.data.batches` to normalise; computed from ``x`` when
        not given. Evaluate held-out data with the *training* set's statistics.
    """

    x: np.ndarray
    y: np.ndarray
    classes: tuple
    mean: np.ndarray = None
    std: np.ndarray = None

    def __post_init__(self):
        x, y = self.x, self.y
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype not in (np.uint8, np.float32):
            got = (f"shape {x.shape} and dtype {x.dtype}" if isinstance(x, np.ndarray)
                   else type(x).__name__)
            raise ValueError("lucid.data.Dataset: x must be an (N, C, H, W) uint8 or float32 "
                             f"array, got {got}")
        if not isinstance(y, np.ndarray) or y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
            got = (f"shape {y.shape} and dtype {y.dtype}" if isinstance(y, np.ndarray)
                   else type(y).__name__)
            raise ValueError(f"lucid.data.Dataset: y must be ({x.shape[0]},) integer labels, "
                             f"got {got}")
        classes = tuple(str(c) for c in self.classes)
        if not classes:
            raise ValueError("lucid.data.Dataset: classes must name at least one class")
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise ValueError(f"lucid.data.Dataset: labels must be in [0, {len(classes)}) for "
                             f"{len(classes)} classes, got values in [{y.min()}, {y.max()}]")
        mean, std = self.mean, self.std
        if mean is None or std is None:
            mean, std = channel_stats(x)
        mean = _check_stat(mean, x.shape[1], "mean")
        std = _check_stat(std, x.shape[1], "std")
        if (std <= 0).any():
            raise ValueError(f"lucid.data.Dataset: std must be positive, got {std}")
        object.__setattr__(self, "x", np.ascontiguousarray(x))
        object.__setattr__(self, "y", y.astype(np.int64, copy=False))
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        return (f"Dataset(n={len(self)}, image_shape={self.image_shape}, dtype={self.x.dtype}, "
                f"classes={len(self.classes)})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple:
        """(C, H, W)."""
        return tuple(self.x.shape[1:])

    def subset(self, indices) -> "Dataset":
        """The examples at ``indices`` (same classes and statistics)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < -len(self) or idx.max() >= len(self))):
            raise ValueError(f"lucid.data.Dataset.subset: indices must be 1-D and in range for "
                             f"{len(self)} examples")
        return Dataset(self.x[idx], self.y[idx], self.classes, self.mean, self.std)

    def with_stats(self, mean, std) -> "Dataset":
        """The same data normalised with other statistics (e.g. the training set's)."""
        return Dataset(self.x, self.y, self.classes, mean, std)


def _check_stat(v, channels: int, what: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    if v.shape != (channels,) or not np.isfinite(v).all():
        raise ValueError(f"lucid.data.Dataset: {what} must be {channels} finite per-channel "
                         f"values, got {v.tolist()}")
    return v


def channel_stats(x: np.ndarray):
    """Per-channel mean and std of NCHW ``x`` (uint8 read as ``x / 255``), float32 (C,) each.

    A constant channel gets std 1 so normalising never divides by zero.
    """
    c = x.shape[1]
    mean, std = np.zeros(c), np.ones(c)
    if x.shape[0] == 0:
        return mean.astype(np.float32), std.astype(np.float32)
    for ch in range(c):
        if x.dtype == np.uint8:  # exact, without a float copy: a 256-bin histogram
            hist = np.bincount(x[:, ch].reshape(-1), minlength=256).astype(np.float64)
            v = np.arange(256) / 255.0
            n = hist.sum()
            m = hist @ v / n
            var = hist @ (v - m) ** 2 / n
        else:
            plane = x[:, ch].astype(np.float64)
            m, var = plane.mean(), plane.var()
        mean[ch] = m
        std[ch] = np.sqrt(var) if var > 1e-12 else 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def train_test_split(dataset: Dataset, test_fraction: float, *, key):
    """Split a dataset at random into ``(train, test)``; both keep the dataset's statistics.

    Args:
      dataset: the examples to split.
      test_fraction: fraction in (0, 1) for the test part (each part gets at least one example).
      key: a lucid.random key (the same key gives the same split).
    Returns:
      ``(train, test)`` datasets, each in the original order.
    """
    n = len(dataset)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"lucid.data.train_test_split: test_fraction must be in (0, 1), got "
                         f"{test_fraction!r}")
    n_test = int(round(n * float(test_fraction)))
    if n_test < 1 or n_test >= n:
        raise ValueError(f"lucid.data.train_test_split: {n} examples are too few to split with "
                         f"test_fraction={test_fraction}")
    order = _random.permutation(key, n)
    return dataset.subset(np.sort(order[n_test:])), dataset.subset(np.sort(order[:n_test]))
