"""Datasets and mini-batches for training image classifiers.

* :func:`load_synthetic` — the embedded default data (shapes and patterns, no download).
* :func:`load_image_folder` — ``root/class_name/*.png|jpg|jpeg`` read with Pillow.
* :func:`load_npz` — ``x`` (NCHW or NHWC, uint8 or float) and ``y`` (int) arrays.
* :func:`batches` — shuffled (by key), augmented, normalised float32 NCHW batches.

A :class:`Dataset` keeps its images raw (uint8, or float32) plus per-channel statistics;
normalisation happens per batch, so a dataset costs a quarter of the float memory.
"""
from ._augment import RandomCropFlip, random_crop, random_flip
from ._dataset import Dataset, channel_stats, train_test_split
from ._folder import IMAGE_EXTENSIONS, load_image_folder, read_image
from ._loader import Batches, batches, normalize, num_batches
from ._npz import load_npz
from ._synthetic import SYNTHETIC_CLASSES, load_synthetic

__all__ = [
    "Dataset", "channel_stats", "load_synthetic", "SYNTHETIC_CLASSES", "load_image_folder",
    "IMAGE_EXTENSIONS", "read_image", "load_npz", "batches", "Batches", "num_batches", "normalize",
    "random_crop", "random_flip", "RandomCropFlip", "train_test_split",
]

