"""The datasets a command asks for: embedded synthetic shapes, an image folder, or an .npz."""
from __future__ import annotations

import os

from . import UserError


def load_datasets(cfg):
    """``(train, held_out)`` for a run configuration, with one-line errors for bad sources.

    Held-out batches must be normalised with the training set's statistics
    (``batches(..., mean=train.mean, std=train.std)``).
    """
    from .. import data
    src = cfg.data
    try:
        if src == "synthetic":
            train = data.load_synthetic("train", n=cfg.train_size, seed=cfg.seed, image_size=cfg.image_size)
            test = data.load_synthetic("test", n=cfg.test_size, seed=cfg.seed, image_size=cfg.image_size)
            return train, test
        if not os.path.exists(src):
            raise UserError(f"--data {src!r}: no such file or folder (use 'synthetic', an image "
                            "folder root/CLASS/*.png, or an .npz with x and y)")
        full = load_one(src, cfg.image_size)
    except (ValueError, OSError) as e:
        raise UserError(f"--data {src!r}: {e}") from None
    from .. import random as lrandom
    return data.train_test_split(full, 0.1, key=lrandom.fold_in(lrandom.key(cfg.seed), 7))


def load_one(src: str, image_size):
    """One dataset from an image folder or an .npz file."""
    from .. import data
    if os.path.isdir(src):
        return data.load_image_folder(src, image_size=image_size)
    if src.endswith(".npz"):
        return data.load_npz(src)
    raise UserError(f"--data {src!r}: expected a folder or an .npz file")
