"""``dropout`` (inverted, elementwise) and ``drop_path`` (stochastic depth, per sample), as timm.

Masks come from ``lucid.random.bernoulli(key, keep, shape)``, drawn inside the forward
primitive from the key (an input array) and returned with the result for the VJP to
read, so a result is a deterministic function of the key, traced or not. Kept values
are scaled by 1 / keep, computed in x's dtype as PyTorch does (``noise.div_(keep)``).
"""
import numpy as np

from .. import random as _random
from .._autodiff import Tracer
from .._sample_shard import draw_per_sample
from .._backend import kernels
from .._core import Primitive, aval, bind
from ._validate import check_real, contiguous, float_array, where

K = kernels("dropout")


def _scale(dtype, keep):
    return np.dtype(dtype).type(1) / np.dtype(dtype).type(keep)


def _mask_shape(x, per_sample):
    return (x.shape[0],) if per_sample else tuple(x.shape)


def _rows(a):
    """``a`` as (N, rest): drop_path scales whole samples."""
    a = contiguous(a)
    return a.reshape(a.shape[0], a.size // a.shape[0] if a.shape[0] else 0)


def _apply_mask(x, mask, keep, per_sample, out):
    """out = x * mask / keep: elementwise (dropout) or per sample (drop_path)."""
    if per_sample:
        K.drop_path_fwd(_rows(x), mask, _scale(x.dtype, keep), out.reshape(_rows(x).shape))
    else:
        K.dropout_fwd(contiguous(x).reshape(-1), mask.reshape(-1), _scale(x.dtype, keep),
                      out.reshape(-1))


def _masking_primitive(name: str, per_sample: bool):
    """``name(x, key) -> (y, mask)``: the mask is drawn from the key in the forward and is
    the residual the VJP reads (never redrawn), so a traced program stays deterministic.
    Returns the primitive and its backward ``name_bwd(g, mask) -> g * mask / keep``."""
    prim = Primitive(f"nn.functional.{name}", multiple_results=True)
    bwd = Primitive(f"nn.functional.{name}_bwd")
    prim.saves = ((), (1,))

    @prim.def_abstract
    def _abstract(x, key, *, keep):
        return aval(x.shape, x.dtype), aval(_mask_shape(x, per_sample), np.bool_)

    @prim.def_impl
    def _impl(x, key, *, out, keep):
        y, mask = out
        # per sample (axis 0): under data parallelism each rank draws its rows of the global
        # mask (read when the step runs, so a compiled program serves every rank)
        mask[...] = draw_per_sample(lambda shape: _random.bernoulli(key, keep, shape),
                                    mask.shape, name)
        _apply_mask(x, mask, keep, per_sample, y)

    @prim.def_vjp
    def _vjp(cts, x, key, *, results, needs, keep):
        return bind(bwd, cts[0], results[1], keep=keep), None

    bwd.def_abstract(lambda g, mask, *, keep: aval(g.shape, g.dtype))

    @bwd.def_impl
    def _bwd_impl(g, mask, *, out, keep):
        _apply_mask(g, mask, keep, per_sample, out[0])

    return prim, bwd


dropout_p, dropout_bwd_p = _masking_primitive("dropout", per_sample=False)
drop_path_p, drop_path_bwd_p = _masking_primitive("drop_path", per_sample=True)


def _is_key(key):
    if isinstance(key, Tracer):
        return key.dtype == np.uint32 and tuple(key.shape) == (2,)
    return _random.is_key(key)


def _check(x, rate, key, train, op):
    """Validated (x, keep probability or None for the identity)."""
    x = float_array(x, op, "x")
    rate = check_real(rate, op, "rate", low=0.0, high=1.0, high_open=True)
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"{where(op)}: train must be a bool, got {train!r}")
    if not train or rate == 0.0:
        return x, None
    if not _is_key(key):
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
    return bind(dropout_p, x, key, keep=keep)[0]


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
    return bind(drop_path_p, x, key, keep=keep)[0]
