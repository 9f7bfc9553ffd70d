"""``dropout`` (inverted, elementwise) and ``drop_path`` (stochastic depth, per sample), as timm.

Masks come from ``lucid.random.bernoulli(key, keep, shape)``, so a result is a
deterministic function of the key. Kept values are scaled by 1 / keep, computed in
x's dtype as PyTorch does (``noise.div_(keep)``).
"""
import numpy as np

from .. import random as _random
from .._sample_shard import draw_per_sample
from .._autodiff import primitive
from .._backend import kernels
from ._validate import check_real, contiguous, float_array, where

K = kernels("dropout")


@primitive(name="nn.functional.dropout")
def _dropout(x, keep, scale):
    x = contiguous(x)
    out = np.empty_like(x)
    K.dropout_fwd(x.reshape(-1), keep.reshape(-1), scale, out.reshape(-1))

    def vjp(g):
        dx = np.empty_like(x)
        K.dropout_fwd(contiguous(g).reshape(-1), keep.reshape(-1), scale, dx.reshape(-1))
        return dx, None, None

    return out, vjp


@primitive(name="nn.functional.drop_path")
def _drop_path(x, keep, scale):
    x = contiguous(x)
    x2 = x.reshape(x.shape[0], x.size // x.shape[0] if x.shape[0] else 0)
    out = np.empty_like(x2)
    K.drop_path_fwd(x2, keep, scale, out)

    def vjp(g):
        dx = np.empty_like(x2)
        K.drop_path_fwd(contiguous(g).reshape(x2.shape), keep, scale, dx)
        return dx.reshape(x.shape), None, None

    return out.reshape(x.shape), vjp


def _check(x, rate, key, train, op):
    """Validated (x, keep probability or None for the identity)."""
    x = float_array(x, op, "x")
    rate = check_real(rate, op, "rate", low=0.0, high=1.0, high_open=True)
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"{where(op)}: train must be a bool, got {train!r}")
    if not train or rate == 0.0:
        return x, None
    if not _random.is_key(key):
        got = "None" if key is None else type(key).__name__
        raise TypeError(f"{where(op)}: a random key (lucid.random.key / split) is required when "
                        f"train=True and rate > 0, got {got}")
    return x, 1.0 - rate


def dropout(x, rate: float, key, *, train: bool = True):
    """Inverted dropout: zero each element with probability ``rate``, scale the rest by 1/(1-rate).

    Args:
      x: float32/float64 array of any shape.
      rate: drop probability in [0, 1).
      key: a lucid random key; may be None when ``train`` is False or ``rate`` is 0.
      train: when False the input is returned unchanged.
    Returns:
      an array shaped like ``x``.
    """
    x, keep = _check(x, rate, key, train, "dropout")
    if keep is None:
        return x
    # per sample (axis 0): under data parallelism each rank draws its rows of the global mask
    mask = draw_per_sample(lambda shape: _random.bernoulli(key, keep, shape), x.shape, "dropout")
    scale = x.dtype.type(1) / x.dtype.type(keep)
    return _dropout(x, mask, scale)


def drop_path(x, rate: float, key, *, train: bool = True):
    """Stochastic depth (timm ``drop_path``): zero whole samples (axis 0) with probability
    ``rate`` and scale kept samples by 1/(1-rate).

    Args:
      x: float32/float64 array of shape (N, ...), typically a residual branch's output.
      rate: drop probability in [0, 1).
      key: a lucid random key; may be None when ``train`` is False or ``rate`` is 0.
      train: when False the input is returned unchanged.
    Returns:
      an array shaped like ``x``.
    """
    x, keep = _check(x, rate, key, train, "drop_path")
    if x.ndim < 1:
        raise ValueError(f"{where('drop_path')}: x must have a batch axis, got a scalar")
    if keep is None:
        return x
    mask = draw_per_sample(lambda shape: _random.bernoulli(key, keep, shape), (x.shape[0],),
                           "drop_path")
    scale = x.dtype.type(1) / x.dtype.type(keep)
    return _drop_path(x, mask, scale)
