"""Stochastic gradient descent with (Nesterov) momentum, fused into one Numba pass per leaf."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._base import (GradientTransformation, as_update, c_array, check_learning_rate, check_scalar,
                    check_state, learning_rate_at, new_count, next_count,
                    zeros_like_params)
from ._leaf import empty_like, flat, is_device, kernels_of
from ._transforms import (default_weight_decay_mask, leaves_of, state_array,
                          weight_decay_mask_leaves)

__all__ = ["SgdState", "sgd"]


class SgdState(NamedTuple):
    """SGD's state: the update count (int64 0-d) and the momentum buffers (None without
    momentum)."""

    count: np.ndarray
    momentum: Any


def sgd(learning_rate, momentum: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0, mask=default_weight_decay_mask) -> GradientTransformation:
    """SGD as ``torch.optim.SGD`` (no dampening) / ``optax.sgd``.

    ``d = g + weight_decay * p`` (coupled decay, on the leaves selected by ``mask``);
    ``buf = momentum * buf + d``; the step is ``-lr * buf``, or ``-lr * (d + momentum * buf)``
    with ``nesterov``.

    Args:
      learning_rate: a float or a schedule (callable step -> learning rate).
      momentum: momentum factor in [0, 1); 0 keeps no buffers.
      nesterov: use Nesterov momentum (needs ``momentum > 0``).
      weight_decay: L2 penalty added to the gradient.
      mask: which leaves decay (see :func:`lucid.optim.adamw`); default timm's rule.
    Returns:
      a GradientTransformation whose state is ``SgdState(count, momentum)``.
    """
    name = "lucid.optim.sgd"
    learning_rate = check_learning_rate(name, learning_rate)
    momentum = check_scalar(name, "momentum", momentum, lo=0.0, hi=1.0, hi_open=True)
    wd = check_scalar(name, "weight_decay", weight_decay, lo=0.0)
    if not isinstance(nesterov, (bool, np.bool_)):
        raise TypeError(f"{name}: nesterov must be a bool, got {type(nesterov).__name__}")
    if nesterov and momentum == 0.0:
        raise ValueError(f"{name}: nesterov=True needs momentum > 0")

    def init(params):
        return SgdState(new_count(params), zeros_like_params(params) if momentum else None)

    def update(grads, state, params=None):
        check_state(name, state, SgdState)
        if params is None and wd != 0.0:
            raise ValueError(f"{name}: weight decay needs the parameters: call "
                             "update(grads, state, params)")
        bufs_tree = state.momentum if momentum else None
        treedef, paths, ref, ups, (bufs,) = leaves_of(name, grads, params, bufs_tree)
        decay = (weight_decay_mask_leaves(name, mask, params, treedef) if wd != 0.0
                 else [False] * len(ups))
        lr = learning_rate_at(name, learning_rate, state.count)
        out, new_bufs = [], []
        for path, g, p, buf, d in zip(paths, ups, ref, bufs, decay):
            if g is not None:
                like = p if params is not None else (buf if momentum else
                                                     g if is_device(g) else np.asarray(g))
                g, buf = _sgd_leaf(name, path, g, like, buf, wd if d else 0.0, -lr,
                                   momentum, bool(nesterov))
            out.append(g)
            new_bufs.append(buf)
        new_momentum = treedef.unflatten(new_bufs) if momentum else None
        return treedef.unflatten(out), SgdState(next_count(state.count), new_momentum)

    return GradientTransformation(init, update)


def _sgd_leaf(name, path, g, p, buf, wd, scale, momentum, nesterov):
    g = as_update(name, path, g, p)
    p_flat = flat(c_array(p, g.dtype)) if wd != 0.0 else flat(g)
    u_out, K = empty_like(g), kernels_of(g)
    if not momentum:
        K.sgd_update(flat(g), p_flat, wd, scale, flat(u_out))
        return u_out, buf
    buf = state_array(name, path, buf, g)
    buf_out = empty_like(buf)
    K.sgd_momentum_update(flat(g), p_flat, flat(buf), momentum, nesterov, wd, scale,
                          flat(buf_out), flat(u_out))
    return u_out, buf_out
