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

import math
from typing import Callable, NamedTuple

import numpy as np

from . import numpy as lnp
from . import random as lrandom
from ._autodiff import value_and_grad
from .metrics import accuracy
from .nn import functional as F
from .optim import apply_updates

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
                    grad_sync=None):
    """Build ``train_step(ts, x, y, key) -> (ts, loss, accuracy)``.

    Data parallelism: with ``grad_sync`` (a :class:`lucid.distributed.GradSync`) each rank
    passes its shard of the global batch; the rank's mean loss is weighted by
    ``local / global`` batch size (:meth:`~lucid.distributed.GradSync.loss_scale`), the
    backward runs inside :meth:`~lucid.distributed.GradSync.overlap` (each finished
    gradient bucket starts its all-reduce while the backward goes on) and
    :meth:`~lucid.distributed.GradSync.finish` waits for the summed gradients between the
    gradient and the update. Every rank then applies the same update to the same parameters.

    With ``lucid.jit`` (planned) the all-reduce stays an effect *outside* the compiled
    program rather than a primitive of it: the program executor calls the same
    ``grad_ready_hook`` when it has written a parameter's final gradient, the bucket's
    ``Iallreduce`` starts from there, and ``finish`` is called between the compiled
    gradient program and the (compiled or not) update. The compiled program needs no MPI
    and stays the same for every world size.

    Args:
      apply_fn: a model's ``apply(params, x, *, state, train, key)``; with ``train=True``
        it returns ``(logits, new_state)``.
      optimizer: a ``lucid.optim`` gradient transformation.
      label_smoothing: passed to ``cross_entropy``.
      grad_sync: None (a single process) or an object with ``loss_scale(n)``,
        ``overlap()`` (a context manager) and ``finish(grads) -> grads``.
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

    def train_step(ts: TrainState, x, y, key):
        if grad_sync is None:
            (loss, (logits, new_state)), grads = grad_fn(ts.params, ts.state, x, y, key, 1.0)
            scale = 1.0
        else:
            scale = grad_sync.loss_scale(len(y))
            with grad_sync.overlap():
                (loss, (logits, new_state)), grads = grad_fn(ts.params, ts.state, x, y, key,
                                                             scale)
        loss = float(loss) / scale
        if not math.isfinite(loss):
            raise NonFiniteLossError(f"the loss became {loss} at step {ts.step}")
        if grad_sync is not None:
            grads = grad_sync.finish(grads)
        updates, opt_state = optimizer.update(grads, ts.opt_state, ts.params)
        params = apply_updates(ts.params, updates)
        return TrainState(params, new_state, opt_state, ts.step + 1), loss, accuracy(logits, y)

    return train_step


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
        logits = apply_fn(params, x, state=state, train=False)
        n = len(y)
        total_loss += float(F.cross_entropy(logits, y)) * n
        correct += accuracy(logits, y) * n
        count += n
    if sharded:
        from . import distributed
        sums = distributed.allreduce({"loss": total_loss, "correct": correct, "count": count},
                                     op="sum")
        total_loss, correct, count = sums["loss"], sums["correct"], sums["count"]
    if count == 0:
        raise ValueError("lucid.training.evaluate: got no batches to evaluate")
    return {"loss": total_loss / count, "accuracy": correct / count, "count": count}


def global_norm(t) -> float:
    """The L2 norm of all leaves of a pytree (for logging)."""
    from .tree import leaves
    return float(np.sqrt(sum(float(np.sum(np.square(l, dtype=np.float64)))
                             for l in leaves(t) if l is not None)))
