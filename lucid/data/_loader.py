"""Mini-batches: shuffling by key, augmentation, normalisation to float32 NCHW."""
from __future__ import annotations

import numpy as np

from .. import random as _random
from .._sample_shard import sample_shard, shard_bounds
from ._dataset import Dataset

__all__ = ["batches", "num_batches", "normalize", "Batches"]


def normalize(x: np.ndarray, mean, std) -> np.ndarray:
    """``(x - mean) / std`` per channel, as float32 NCHW; uint8 ``x`` is read as ``x / 255``.

    Args:
      x: (N, C, H, W) uint8 or float array.
      mean, std: (C,) statistics in the units of ``x / 255`` (uint8) or ``x`` (float).
    Returns:
      a new float32 array.
    """
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"lucid.data.normalize: expected an (N, C, H, W) array, got {got}")
    mean = np.asarray(mean, np.float32).reshape(-1)
    std = np.asarray(std, np.float32).reshape(-1)
    if mean.shape != (x.shape[1],) or std.shape != (x.shape[1],) or (std <= 0).any():
        raise ValueError(f"lucid.data.normalize: mean and std must have {x.shape[1]} values "
                         f"(one per channel, std > 0), got {mean.tolist()} and {std.tolist()}")
    unit = np.float32(1 / 255) if x.dtype == np.uint8 else np.float32(1)
    out = x.astype(np.float32)
    out *= (unit / std)[None, :, None, None]
    out -= (mean / std)[None, :, None, None]
    return out


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches an epoch over ``n`` examples has."""
    return n // batch_size if drop_last else -(-n // batch_size)


class Batches:
    """An epoch of ``(x, y)`` batches; iterate it (again: same batches) and take ``len``."""

    def __init__(self, dataset, batch_size, order, aug_key, augment, start_batch, mean, std,
                 shard=(0, 1)):
        self.dataset, self.batch_size, self.order = dataset, batch_size, order
        self.aug_key, self.augment, self.start_batch = aug_key, augment, start_batch
        self.mean, self.std, self.shard = mean, std, shard

    def __len__(self) -> int:
        return max(0, -(-len(self.order) // self.batch_size) - self.start_batch)

    def __iter__(self):
        ds, bs = self.dataset, self.batch_size
        for i in range(self.start_batch, -(-len(self.order) // bs)):
            idx = self.order[i * bs:(i + 1) * bs]
            lo, hi = shard_bounds(len(idx), *self.shard)
            if hi == lo:  # a last batch smaller than the shard count: nothing for this shard
                continue
            x = ds.x[idx[lo:hi]]
            if self.augment is not None:  # this shard's rows of the global batch's draws
                with sample_shard(lo, len(idx)):
                    x = self.augment(_random.fold_in(self.aug_key, i), x)
            yield normalize(x, self.mean, self.std), ds.y[idx[lo:hi]]


def batches(dataset: Dataset, batch_size: int, *, key=None, shuffle: bool = True,
            drop_last: bool = False, augment=None, start_batch: int = 0, mean=None,
            std=None, shard: tuple = (0, 1)) -> Batches:
    """One epoch of mini-batches ``(x, y)``: x float32 (B, C, H, W) normalised, y int64 (B,).

    Args:
      dataset: a :class:`Dataset`.
      batch_size: examples per batch (at most ``len(dataset)``).
      key: a lucid.random key; needed to shuffle or augment. Use a new key per epoch
        (e.g. ``lucid.random.fold_in(key, epoch)``); the same key gives the same batches.
      shuffle: visit the examples in ``lucid.random.permutation`` order, else in order.
      drop_last: drop the last batch when it is smaller than ``batch_size``.
      augment: None or a callable ``(key, raw_batch) -> raw_batch`` such as
        :class:`RandomCropFlip`; batch ``i`` gets the key ``fold_in(aug_key, i)``.
      start_batch: skip the first ``start_batch`` batches of the epoch (to resume mid-epoch);
        the remaining batches equal those of an uninterrupted epoch.
      mean, std: per-channel normalisation (default: the dataset's own statistics; pass
        the training set's for held-out data).
      shard: ``(index, count)``: yield only shard ``index`` of ``count`` of every batch
        (data parallelism: ``(rank, world_size)``). ``batch_size`` stays the global batch;
        each batch is split by ``lucid.distributed.shard_bounds`` (the first
        ``len(batch) % count`` shards get one sample more), and augmentation draws are the
        global batch's rows, so the shards together equal the unsharded batch.
    Returns:
      a :class:`Batches` iterable with ``len`` = the number of batches it yields.
    """
    _check_args(dataset, batch_size, key, shuffle, augment, start_batch)
    _check_shard(shard, batch_size)
    n = len(dataset)
    mean = dataset.mean if mean is None else mean
    std = dataset.std if std is None else std
    normalize(dataset.x[:0], mean, std)  # validate the statistics now, not at the first batch
    perm_key = aug_key = None
    if key is not None:
        perm_key, aug_key = _random.split(key)
    order = _random.permutation(perm_key, n) if shuffle else np.arange(n, dtype=np.int64)
    if drop_last:
        order = order[:num_batches(n, batch_size, True) * batch_size]
    total = num_batches(n, batch_size, drop_last)
    if start_batch > total:
        raise ValueError(f"lucid.data.batches: start_batch={start_batch} is past the end of the "
                         f"epoch ({total} batches)")
    return Batches(dataset, batch_size, order, aug_key, augment, start_batch, mean, std,
                   (int(shard[0]), int(shard[1])))


def _check_shard(shard, batch_size):
    ok = (isinstance(shard, tuple) and len(shard) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard))
    if not ok or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"lucid.data.batches: shard must be (index, count) with "
                         f"0 <= index < count, got {shard!r}")
    if shard[1] > batch_size:
        raise ValueError(f"lucid.data.batches: batch_size {batch_size} cannot be split across "
                         f"{shard[1]} shards (every shard needs at least one sample)")


def _check_args(dataset, batch_size, key, shuffle, augment, start_batch):
    if not isinstance(dataset, Dataset):
        raise TypeError(f"lucid.data.batches: expected a lucid.data.Dataset, got "
                        f"{type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("lucid.data.batches: the dataset is empty (0 examples)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"lucid.data.batches: batch_size must be a positive int, got "
                         f"{batch_size!r}")
    if batch_size > len(dataset):
        raise ValueError(f"lucid.data.batches: batch size {batch_size} is larger than the "
                         f"dataset ({len(dataset)} examples); use a batch size <= {len(dataset)}")
    if isinstance(start_batch, bool) or not isinstance(start_batch, (int, np.integer)) \
            or start_batch < 0:
        raise ValueError(f"lucid.data.batches: start_batch must be an int >= 0, got "
                         f"{start_batch!r}")
    if augment is not None and not callable(augment):
        raise TypeError(f"lucid.data.batches: augment must be None or a callable (key, x) -> x, "
                        f"got {type(augment).__name__}")
    if key is None and (shuffle or augment is not None):
        raise ValueError("lucid.data.batches: shuffle=True and augment need a key "
                         "(lucid.random.key(seed)); pass shuffle=False without augment for a "
                         "fixed order")
    if key is not None and not _random.is_key(key):
        raise TypeError("lucid.data.batches: key must be a lucid.random key (uint32 array of "
                        f"shape (2,)), got {type(key).__name__}")
