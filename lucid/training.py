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


def make_train_step(apply_fn: Callable, optimizer, *, label_smoothing: float = 0.0):
    """Build ``train_step(ts, x, y, key) -> (ts, loss, accuracy)``.

    Args:
      apply_fn: a model's ``apply(params, x, *, state, train, key)``; with ``train=True``
        it returns ``(logits, new_state)``.
      optimizer: a ``lucid.optim`` gradient transformation.
      label_smoothing: passed to ``cross_entropy``.
    """
    def loss_fn(params, state, x, y, key):
        logits, new_state = apply_fn(params, x, state=state, train=True, key=key)
        loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        return loss, (logits, new_state)

    grad_fn = value_and_grad(loss_fn, has_aux=True)

    def train_step(ts: TrainState, x, y, key):
        (loss, (logits, new_state)), grads = grad_fn(ts.params, ts.state, x, y, key)
        loss = float(loss)
        if not math.isfinite(loss):
            raise NonFiniteLossError(f"the loss became {loss} at step {ts.step}")
        updates, opt_state = optimizer.update(grads, ts.opt_state, ts.params)
        params = apply_updates(ts.params, updates)
        return TrainState(params, new_state, opt_state, ts.step + 1), loss, accuracy(logits, y)

    return train_step


def evaluate(apply_fn: Callable, params, state, batches) -> dict:
    """Mean loss and accuracy over ``batches`` in eval mode (BatchNorm running statistics).

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
    if count == 0:
        raise ValueError("lucid.training.evaluate: got no batches to evaluate")
    return {"loss": total_loss / count, "accuracy": correct / count, "count": count}


def global_norm(t) -> float:
    """The L2 norm of all leaves of a pytree (for logging)."""
    from .tree import leaves
    return float(np.sqrt(sum(float(np.sum(np.square(l, dtype=np.float64)))
                             for l in leaves(t) if l is not None)))
