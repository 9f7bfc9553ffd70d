"""The training step in the functional style, evaluation, and a resumable training loop.

The step is pure: it takes the parameters, the BatchNorm state, the optimizer state,
a batch and a key, and returns new ones. Gradients are taken w.r.t. the parameters
only (``argnums=0``), so BatchNorm running statistics never receive a gradient or
weight decay; they come back through ``has_aux``::

    def loss_fn(params, state, x, y, key):
        logits, new_state = apply(params, x, state=state, train=True, key=key)
        return F.cross_entropy(logits, y, label_smoothing=0.1), (logits, new_state)

    grad_fn = lucid.value_and_grad(loss_fn, has_aux=True)
    (loss, (logits, state)), grads = grad_fn(params, state, x, y, key)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = lucid.optim.apply_updates(params, updates)
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Callable, NamedTuple

import numpy as np

from . import numpy as lnp
from . import random as lrandom
from ._autodiff import value_and_grad
from ._device import device_get, put_like
from ._jit import jit as _jit
from .optim._jit_step import optimizer_step
from .metrics import accuracy
from .nn import functional as F

__all__ = ["TrainState", "make_train_step", "evaluate", "NonFiniteLossError", "step_key"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite."""


class TrainState(NamedTuple):
    """Everything a step updates: parameters, BatchNorm state, optimizer state, step count."""
    params: object
    state: object
    opt_state: object
    step: int


def step_key(base_key, step: int):
    """The key of training step ``step``: a pure function of the run's key and the step."""
    return lrandom.fold_in(base_key, int(step) % (1 << 32))


def make_train_step(apply_fn: Callable, optimizer, *, label_smoothing: float = 0.0,
                    grad_sync=None, jit: bool = True, donate: bool = True):
    """Build ``train_step(ts, x, y, key) -> (ts, loss, accuracy)``.

    Compiled: with ``jit`` (the default) the step is one ``lucid.jit`` program: forward,
    loss, backward and the optimizer update (:func:`lucid.optim.optimizer_step`), traced
    once per batch shape; with ``donate`` the new parameters and optimizer state are
    written into the buffers of the old ones (the ``ts`` passed in must not be used
    afterwards, as with ``donate_argnums`` in JAX). ``jit=False`` runs the same step
    eagerly, primitive by primitive.

    Data parallelism: with ``grad_sync`` (a :class:`lucid.distributed.GradSync`) each rank
    passes its shard of the global batch; the rank's mean loss is weighted by
    ``local / global`` batch size (:meth:`~lucid.distributed.GradSync.loss_scale`), the
    backward runs inside :meth:`~lucid.distributed.GradSync.overlap` (each finished
    gradient bucket starts its all-reduce while the backward goes on) and
    :meth:`~lucid.distributed.GradSync.finish` waits for the summed gradients between the
    gradient and the update. Every rank then applies the same update to the same parameters.
    Under ``jit`` the all-reduce stays an effect *outside* the arithmetic of the program:
    the gradient program is compiled with the grad-ready hook as host callbacks in program
    order (each bucket's ``Iallreduce`` starts when its last gradient is written),
    ``finish`` runs between the compiled gradient program and the compiled update, and the
    program itself needs no MPI. A model whose forward needs a collective (``--sync-bn``)
    runs eagerly.

    Args:
      apply_fn: a model's ``apply(params, x, *, state, train, key)``; with ``train=True``
        it returns ``(logits, new_state)``.
      optimizer: a ``lucid.optim`` gradient transformation.
      label_smoothing: passed to ``cross_entropy``.
      grad_sync: None (a single process) or an object with ``loss_scale(n)``,
        ``overlap()`` (a context manager) and ``finish(grads) -> grads``.
      jit: compile the step with ``lucid.jit``.
      donate: with ``jit``, update the parameters and optimizer state in place.
    Returns:
      ``train_step``; its ``loss`` is this rank's mean loss (unweighted) and ``accuracy``
      this rank's accuracy.
    """
    def loss_fn(params, state, x, y, key, scale):
        logits, new_state = apply_fn(params, x, state=state, train=True, key=key)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        if scale != 1.0:  # this shard's share of the global-batch mean
            loss = lnp.multiply(loss, np.asarray(scale, loss.dtype))
        return loss, (logits, new_state)

    grad_fn = value_and_grad(loss_fn, has_aux=True)
    if grad_sync is None:
        return _single_process_step(grad_fn, optimizer, jit, donate)
    return _data_parallel_step(grad_fn, optimizer, grad_sync, jit)


def _finish(ts, new, loss, logits, y, scale=1.0):
    params, state, opt_state = new
    loss = float(loss) / scale   # the step's one readout: the loss and the logits (for the log)
    if not math.isfinite(loss):
        raise NonFiniteLossError(f"the loss became {loss} at step {ts.step}")
    return TrainState(params, state, opt_state, ts.step + 1), loss, \
        accuracy(device_get(logits), y)


def _single_process_step(grad_fn, optimizer, use_jit, donate):
    def step(params, state, opt_state, x, y, key):
        (loss, (logits, new_state)), grads = grad_fn(params, state, x, y, key, 1.0)
        new_params, new_opt_state = optimizer_step(optimizer, grads, opt_state, params)
        return (new_params, new_state, new_opt_state), loss, logits

    if use_jit:
        step = _CompiledOrEager(step, donate_argnums=(0, 2) if donate else ())

    def train_step(ts: TrainState, x, y, key):
        # the batch and the key go where the parameters live (one host->device copy each)
        xd, yd, key = put_like((x, y, key), ts.params)
        new, loss, logits = step(ts.params, ts.state, ts.opt_state, xd, yd, key)
        return _finish(ts, new, loss, logits, y)

    return train_step


def _data_parallel_step(grad_fn, optimizer, grad_sync, use_jit):
    gradients = _CompiledOrEager(grad_fn, static_argnums=5) if use_jit else grad_fn
    update = functools.partial(optimizer_step, optimizer)
    if use_jit:
        update = _CompiledOrEager(update)

    def train_step(ts: TrainState, x, y, key):
        scale = grad_sync.loss_scale(len(y))
        with grad_sync.overlap():
            (loss, (logits, new_state)), grads = gradients(ts.params, ts.state, x, y, key,
                                                           scale)
        loss_value = float(loss) / scale
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(f"the loss became {loss_value} at step {ts.step}")
        grads = grad_sync.finish(grads)
        params, opt_state = update(grads, ts.opt_state, ts.params)
        return TrainState(params, new_state, opt_state, ts.step + 1), loss_value, \
            accuracy(logits, y)

    return train_step


class _CompiledOrEager:
    """``lucid.jit(fun)``, or ``fun`` itself once tracing met a primitive that cannot be
    traced (a model with a collective such as sync-BN, or a user primitive without a shape
    rule); a warning names it once."""

    def __init__(self, fun, **jit_kwargs):
        self.fun, self.compiled = fun, _jit(fun, **jit_kwargs)

    def __call__(self, *args):
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except NotImplementedError as e:
                if "cannot be traced" not in str(e):
                    raise
                warnings.warn(f"lucid.training: the step runs eagerly: {e}", RuntimeWarning)
                self.compiled = None
        return self.fun(*args)


def evaluate(apply_fn: Callable, params, state, batches, *, sharded: bool = False) -> dict:
    """Mean loss and accuracy over ``batches`` in eval mode (BatchNorm running statistics).

    Args:
      apply_fn, params, state: the model.
      batches: an iterable of ``(x, y)``.
      sharded: ``batches`` are this rank's shards (``lucid.data.batches(..., shard=...)``);
        the sums are added over all ranks (every rank must call) and every rank gets the
        result for the whole data.
    Returns:
      ``{"loss": float, "accuracy": float, "count": int}``.
    """
    total_loss, correct, count = 0.0, 0.0, 0
    for x, y in batches:
        xd, yd = put_like((x, y), params)  # the batch goes where the parameters live
        logits = apply_fn(params, xd, state=state, train=False)
        n = len(y)
        total_loss += float(F.cross_entropy(logits, yd)) * n
        correct += accuracy(device_get(logits), y) * n
        count += n
    if sharded:
        from . import distributed
        sums = distributed.allreduce({"loss": total_loss, "correct": correct, "count": count},
                                     op="sum")
        total_loss, correct, count = sums["loss"], sums["correct"], sums["count"]
    if count == 0:
        raise ValueError("lucid.training.evaluate: got no batches to evaluate")
    return {"loss": total_loss / count, "accuracy": correct / count, "count": count}

