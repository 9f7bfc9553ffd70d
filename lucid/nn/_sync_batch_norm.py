"""``sync_batch_norm``: training-mode BatchNorm whose statistics span every data-parallel rank.

With data parallelism each rank holds a shard of the global batch. Plain BatchNorm
normalises each shard with its own mean and variance (PyTorch DDP's default); this op
normalises with the statistics of the whole global batch, in the forward *and* the
backward (whose per-channel sums ``sum(g)`` and ``sum(g * (x - mean))`` are global too),
so N ranks compute what one process computes on the global batch.

The cross-rank sum is a function ``reduce_sum(float64 array) -> float64 array`` (e.g.
``lucid.distributed.allreduce(a, op="sum")``): one call in the forward (counts, sums and
squared deviations packed together) and one in the backward. The gradients of ``weight``
and ``bias`` stay local (this shard's sums): the data-parallel gradient all-reduce adds
them up like every other parameter gradient.

Models do not call this directly: ``batch_norm_forward`` (the BatchNorm layers) uses it in
training mode inside :func:`use_sync_batch_norm` (``lucid train --sync-bn``).
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from .._core import Primitive, aval, bind
from ._norm import (_channel_view, _channels, _check_batch_norm, _kernel, _scale_shift,
                    _store_param_grads, batch_stats_input_grad)
from ._validate import check_real, where

__all__ = ["sync_batch_norm", "use_sync_batch_norm", "active_reduce_sum"]

_local = threading.local()


@contextlib.contextmanager
def use_sync_batch_norm(reduce_sum):
    """Within this context, BatchNorm layers in training mode use :func:`sync_batch_norm`.

    Args:
      reduce_sum: ``f(float64 array) -> float64 array``, the elementwise sum over ranks.
    """
    if not callable(reduce_sum):
        raise TypeError(f"use_sync_batch_norm: reduce_sum must be callable, got "
                        f"{type(reduce_sum).__name__}")
    previous = getattr(_local, "reduce_sum", None)
    _local.reduce_sum = reduce_sum
    try:
        yield
    finally:
        _local.reduce_sum = previous


def active_reduce_sum():
    """The ``reduce_sum`` of the enclosing :func:`use_sync_batch_norm`, or None."""
    return getattr(_local, "reduce_sum", None)


def _global_stats(xv, channels, layout, reduce_sum):
    """(global count, mean, biased variance) from this shard's count, mean and variance."""
    n = xv.size // channels
    mean, var = np.empty(channels), np.empty(channels)
    _kernel("batch_norm_stats", layout)(xv, mean, var)
    # one reduction: counts, sums and squared deviations about the local mean (float64);
    # sum_r M2_r + n_r mean_r^2 - N mean^2 is the global M2 (Chan et al.'s combination)
    packed = np.concatenate([[float(n)], n * mean, n * (var + mean * mean)])
    total = np.asarray(reduce_sum(packed), np.float64)
    count = total[0]
    if count < 2:
        raise ValueError(f"{where('sync_batch_norm')}: train mode needs more than 1 value per "
                         f"channel over all ranks, got {int(count)}")
    g_mean = total[1:1 + channels] / count
    g_var = np.maximum(total[1 + channels:] / count - g_mean * g_mean, 0.0)
    return count, g_mean, g_var


# (x, w, b) -> (y, global mean, global biased variance, global count): the statistics are
# results the VJP and the running-statistics update read. The impls communicate (every rank
# runs them in the same order), so under lucid.jit the program holds the collective as one
# of its equations, executed in program order.
sync_batch_norm_p = Primitive("nn.functional.sync_batch_norm", multiple_results=True)
sync_batch_norm_p.saves = ((0, 1), (1, 2, 3))


@sync_batch_norm_p.def_abstract
def _sync_abstract(x, w, b, *, eps, layout, reduce_sum):
    c = (_channels(x, layout),)
    return (aval(x.shape, x.dtype), aval(c, np.float64), aval(c, np.float64),
            aval((), np.float64))


@sync_batch_norm_p.def_impl
def _sync_impl(x, w, b, *, out, eps, layout, reduce_sum):
    y, mean, var, count = out
    xv = _channel_view(x, layout)
    count[...], mean[...], var[...] = _global_stats(xv, mean.shape[0], layout, reduce_sum)
    scale, shift = _scale_shift(mean, 1.0 / np.sqrt(var + eps), w, b, x.dtype)
    _kernel("batch_norm_fwd", layout)(xv, scale, shift, y.reshape(xv.shape))


@sync_batch_norm_p.def_vjp
def _sync_vjp(cts, x, w, b, *, results, needs, eps, layout, reduce_sum):
    if cts[0] is None:  # only the running statistics were used: they carry no gradient
        return None, None, None
    _, mean, var, count = results
    dx, dw, db = bind(sync_batch_norm_bwd_p, cts[0], x, w, mean, var, count, eps=eps,
                      layout=layout, reduce_sum=reduce_sum)
    return dx, (None if w is None else dw), (None if b is None else db)


sync_batch_norm_bwd_p = Primitive("nn.functional.sync_batch_norm_bwd", multiple_results=True)
sync_batch_norm_bwd_p.def_abstract(
    lambda g, x, w, mean, var, count, *, eps, layout, reduce_sum: (
        aval(x.shape, x.dtype), aval(mean.shape, x.dtype), aval(mean.shape, x.dtype)))


@sync_batch_norm_bwd_p.def_impl
def _sync_bwd_impl(g, x, w, mean, var, count, *, out, eps, layout, reduce_sum):
    dx, dw, db = out
    channels = mean.shape[0]
    xv, gv = _channel_view(x, layout), _channel_view(g, layout)
    invstd = 1.0 / np.sqrt(var + eps)
    sum_g, sum_gxc = np.empty(channels), np.empty(channels)
    _kernel("batch_norm_bwd_sums", layout)(gv, xv, mean, sum_g, sum_gxc)
    total = np.asarray(reduce_sum(np.concatenate([sum_g, sum_gxc])), np.float64)
    all_g, all_gxc = total[:channels], total[channels:]
    batch_stats_input_grad(gv, xv, w, mean, invstd, all_g, all_gxc, float(count), layout, dx)
    # weight/bias gradients from this shard only: the gradient all-reduce sums them
    _store_param_grads(dw, db, sum_g, sum_gxc, invstd)


sync_running_stats_p = Primitive("nn.functional.sync_batch_norm_running_stats",
                                 multiple_results=True)
sync_running_stats_p.def_abstract(
    lambda rm, rv, mean, var, count, *, momentum: (aval(rm.shape, rm.dtype),
                                                   aval(rv.shape, rv.dtype)))
sync_running_stats_p.def_vjp(lambda cts, *args, **_: (None,) * 5)  # not differentiated


@sync_running_stats_p.def_impl
def _sync_running_stats_impl(rm, rv, mean, var, count, *, out, momentum):
    n = float(count)
    out[0][...] = (1.0 - momentum) * rm + momentum * mean
    out[1][...] = (1.0 - momentum) * rv + momentum * var * (n / (n - 1))


def sync_batch_norm(x, running_mean, running_var, weight=None, bias=None, *, reduce_sum,
                    momentum: float = 0.1, eps: float = 1e-5, axis: int = 1):
    """Training-mode batch normalisation with statistics over all ranks' shards.

    Args:
      x: this rank's float32/float64 shard, (N, C, ...) (``axis=1``) or (..., C) (``axis=-1``).
      running_mean, running_var: arrays of shape (C,) (the same on every rank).
      weight, bias: optional arrays of shape (C,).
      reduce_sum: ``f(float64 array) -> float64 array``, the elementwise sum over ranks
        (every rank must call the op: it communicates in the forward and the backward).
      momentum, eps, axis: as :func:`lucid.nn.functional.batch_norm`.
    Returns:
      ``(y, new_running_mean, new_running_var)``: ``y`` normalised with the global batch's
      mean and biased variance; running statistics updated with the global unbiased variance.
    """
    op = "sync_batch_norm"
    if not callable(reduce_sum):
        raise TypeError(f"{where(op)}: reduce_sum must be callable, got {type(reduce_sum).__name__}")
    x, rm, rv, w, b, axis = _check_batch_norm(x, running_mean, running_var, weight, bias,
                                              True, axis)
    if rm is None:
        raise ValueError(f"{where(op)}: needs running_mean and running_var")
    eps = check_real(eps, op, "eps", low=0.0)
    momentum = check_real(momentum, op, "momentum", low=0.0, high=1.0)
    layout = "last" if axis == x.ndim - 1 else "mid"
    y, mean, var, count = bind(sync_batch_norm_p, x, w, b, eps=eps, layout=layout,
                               reduce_sum=reduce_sum)
    new_rm, new_rv = bind(sync_running_stats_p, rm, rv, mean, var, count, momentum=momentum)
    return y, new_rm, new_rv
