"""Classification metrics over NumPy arrays (not differentiable; call them on values, not
on traced arrays inside ``lucid.grad``).

Ties are broken as a stable descending sort would: among equal logits the lower class
index ranks first, so ``top_k_accuracy(..., k=1)`` equals ``accuracy`` (which uses argmax).
"""
from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "top_k_accuracy", "correct_top_k"]


def _check(logits, labels, name: str):
    """Validate ``logits`` (N, C) float and ``labels`` (N,) int in [0, C) or (N, C) targets."""
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.dtype.kind not in "fiu":
        raise ValueError(f"lucid.metrics.{name}: expected logits of shape (batch, classes) with a "
                         f"real dtype, got shape {logits.shape} and dtype {logits.dtype}")
    n, c = logits.shape
    if n == 0 or c == 0:
        raise ValueError(f"lucid.metrics.{name}: got empty logits of shape {logits.shape}")
    if np.isnan(logits).any():
        raise ValueError(f"lucid.metrics.{name}: the logits contain NaN (did training diverge?)")
    labels = np.asarray(labels)
    if labels.shape == (n, c) and labels.dtype.kind == "f":
        labels = np.argmax(labels, axis=1)  # one-hot / smoothed / mixed targets
    if labels.shape != (n,):
        raise ValueError(f"lucid.metrics.{name}: expected labels of shape ({n},) (or one-hot "
                         f"({n}, {c})) for logits of shape {logits.shape}, got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"lucid.metrics.{name}: labels must be integers, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= c:
        raise ValueError(f"lucid.metrics.{name}: labels must be in [0, {c}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    return logits, labels.astype(np.int64)


def correct_top_k(logits, labels, k: int = 1) -> np.ndarray:
    """Per example: whether the true class is among the ``k`` highest logits (bool, (N,))."""
    logits, labels = _check(logits, labels, "correct_top_k")
    return _correct(logits, labels, _check_k(k, logits.shape[1], "correct_top_k"))


def _check_k(k, classes: int, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"lucid.metrics.{name}: k must be an int, got {type(k).__name__}")
    if not 1 <= k <= classes:
        raise ValueError(f"lucid.metrics.{name}: k must be in [1, {classes}] (the number of "
                         f"classes), got {k}")
    return int(k)


def _correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    true = logits[np.arange(len(labels)), labels][:, None]
    before = np.arange(logits.shape[1])[None, :] < labels[:, None]
    rank = np.sum((logits > true) | ((logits == true) & before), axis=1)
    return rank < k


def accuracy(logits, labels) -> float:
    """Fraction of examples whose highest logit is the true class.

    Args:
      logits: (N, C) scores.
      labels: (N,) integer classes, or (N, C) float targets (their argmax is used).
    Returns:
      a float in [0, 1].
    """
    logits, labels = _check(logits, labels, "accuracy")
    return float(np.mean(_correct(logits, labels, 1)))


def top_k_accuracy(logits, labels, k: int = 5) -> float:
    """Fraction of examples whose true class is among the ``k`` highest logits.

    Args:
      logits: (N, C) scores.
      labels: (N,) integer classes, or (N, C) float targets (their argmax is used).
      k: how many top classes count, 1 <= k <= C.
    Returns:
      a float in [0, 1].
    """
    logits, labels = _check(logits, labels, "top_k_accuracy")
    return float(np.mean(_correct(logits, labels, _check_k(k, logits.shape[1], "top_k_accuracy"))))
