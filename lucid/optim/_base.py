"""The optimizer protocol (Optax's ``GradientTransformation``) and the pytree plumbing under it.

A gradient transformation is a pair of pure functions::

    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = apply_updates(params, updates)

Trees are walked with ``None`` treated as a *leaf* (``lucid.tree`` treats it as an
empty subtree): ``lucid.grad`` returns ``None`` for a leaf it does not differentiate,
and such a leaf must line up with its parameter instead of shifting every leaf after
it. A ``None`` gradient means "no update": its update is ``None`` and its state is kept.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np

from .. import tree as _tree
from ..tree import path_str
from . import _leaf
from ._leaf import is_device

__all__ = ["GradientTransformation", "EmptyState", "apply_updates", "chain", "identity",
           "global_norm"]

_FLOAT = (np.float32, np.float64)


class GradientTransformation(NamedTuple):
    """An optimizer or one step of one: ``init(params) -> state`` and
    ``update(updates, state, params=None) -> (updates, state)``."""

    init: Callable[[Any], Any]
    update: Callable[..., tuple]


class EmptyState(NamedTuple):
    """The state of a transformation that keeps none."""


def _is_none(x) -> bool:
    return x is None


def flatten_none(tree):
    """Flatten ``tree`` with ``None`` as a leaf; returns ``(leaves, treedef, paths)``.

    The walk is :func:`lucid.tree.flatten_with_path` (dicts by sorted key, OrderedDict by
    insertion): an optimizer state's leaf order is the checkpoint's ``opt/<index>`` order.
    """
    pairs, treedef = _tree.flatten_with_path(tree, is_leaf=_is_none)
    return [leaf for _, leaf in pairs], treedef, [path for path, _ in pairs]


def flatten_up_to(treedef, tree, where: str) -> list:
    """The leaves of ``tree`` at the leaf positions of ``treedef``.

    A ``None`` where ``treedef`` has a whole subtree stands for ``None`` at each of its
    leaves; dicts match by keys and lists/tuples by length. Any other structural
    difference raises ``ValueError`` mentioning ``where``.
    """
    out = _tree.flatten_up_to(treedef, tree, where=where, lenient=True, none_fills=True)
    if not any(isinstance(leaf, (dict, list, tuple)) for leaf in out):
        return out
    for path, leaf in zip(_paths(treedef), out):
        if isinstance(leaf, (dict, list, tuple)):
            raise ValueError(f"{where}: at {describe_path(path)} expected an array or None, got "
                             f"a {type(leaf).__name__} (the tree does not match the parameters)")
    return out


def _paths(treedef):
    return [p for p, _ in _tree.flatten_with_path(treedef.unflatten([0] * treedef.num_leaves))[0]]


def describe_path(path) -> str:
    """A leaf's path for error messages, e.g. ``'stages.0.gamma'``."""
    return f"'{path_str(path)}'" if path else "the root"


def c_array(a, dtype=None):
    """``a`` as a C-contiguous array (copied only if needed), keeping its shape: unlike
    ``np.ascontiguousarray``, which turns a 0-d array into shape (1,) and so broke every
    transform on scalar parameters (a 0-d update no longer matched its parameter).
    A device array stays on its device (cast there by a kernel when ``dtype`` differs)."""
    if is_device(a):
        return _leaf.as_dtype(a, a.dtype if dtype is None else dtype)
    return np.asarray(a, dtype=dtype, order="C")


def is_float_array(x) -> bool:
    """A float32/float64 array, on the host or a device."""
    return (isinstance(x, np.ndarray) or is_device(x)) and x.dtype.type in _FLOAT


def zeros_like_params(params):
    """A tree of float zeros shaped like each float leaf of ``params`` (None elsewhere), each
    on its leaf's device."""
    leaves, treedef, _ = flatten_none(params)
    return treedef.unflatten([_leaf.zeros_like(p) if is_float_array(p) else None
                              for p in leaves])


def as_update(name: str, path, g, like):
    """Check one gradient/update leaf against ``like`` (its parameter or state array) and
    return it C-contiguous in ``like``'s dtype (the parameter's dtype always wins), on the
    device both live on (a clear error when they live on different devices)."""
    if not isinstance(g, np.ndarray) and not is_device(g):
        try:
            g = np.asarray(g)
        except TypeError as e:
            raise TypeError(f"{name}: the update at {describe_path(path)} is not an array: "
                            f"{e}") from e
    if g.dtype.type not in _FLOAT:
        raise TypeError(f"{name}: the update at {describe_path(path)} must be float32 or "
                        f"float64, got dtype {g.dtype}")
    if not is_float_array(like):
        what = "None" if like is None else f"a {type(like).__name__}"
        raise ValueError(f"{name}: got an update at {describe_path(path)} for a parameter or "
                         f"state that is {what}, not a float array (state made by init for other "
                         "params?)")
    if g.shape != like.shape:
        raise ValueError(f"{name}: the update at {describe_path(path)} has shape {g.shape}, but "
                         f"the parameter/state there has shape {like.shape}")
    _leaf.check_same_place(name, describe_path(path), g, like)
    return c_array(g, like.dtype)


def check_state(name: str, state, cls):
    if not isinstance(state, cls):
        raise TypeError(f"{name}: expected a {cls.__name__} state (from this optimizer's init), "
                        f"got {type(state).__name__}")


def next_count(count):
    """The step count after one more update, where ``count`` lives."""
    return _leaf.next_count(count)


def new_count(params=None):
    """A zero step count: on the device of ``params``' first device leaf, else the host."""
    return _leaf.new_count(flatten_none(params)[0] if params is not None else ())


def check_scalar(name: str, arg: str, value, lo=None, hi=None, lo_open=False, hi_open=False):
    """A finite real number within bounds, or ``ValueError``/``TypeError`` naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                      np.floating)):
        raise TypeError(f"{name}: {arg} must be a real number, got {type(value).__name__}")
    v = float(value)
    bad = (not math.isfinite(v) or (lo is not None and (v <= lo if lo_open else v < lo))
           or (hi is not None and (v >= hi if hi_open else v > hi)))
    if bad:
        span = (f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, "
                f"{hi if hi is not None else 'inf'}{')' if hi_open or hi is None else ']'}")
        raise ValueError(f"{name}: {arg} must be in {span}, got {value!r}")
    return v


def check_learning_rate(name: str, learning_rate):
    """A float learning rate or a schedule (callable step -> learning rate)."""
    if callable(learning_rate):
        return learning_rate
    return check_scalar(name, "learning_rate", learning_rate, lo=0.0)


def learning_rate_at(name: str, learning_rate, count) -> float:
    """The learning rate for the update number ``count`` (Optax: schedules see 0 first)."""
    if not callable(learning_rate):
        return learning_rate
    lr = learning_rate(int(count))
    try:
        lr = float(lr)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: the learning-rate schedule returned {lr!r} at step "
                        f"{int(count)}, not a number") from e
    if not math.isfinite(lr):
        raise ValueError(f"{name}: the learning-rate schedule returned {lr} at step {int(count)}")
    return lr


def apply_updates(params, updates):
    """``params + updates`` leaf by leaf, keeping each parameter's dtype.

    Leaves whose update is ``None`` (and non-float leaves) are returned unchanged.
    """
    leaves, treedef, paths = flatten_none(params)
    ups = flatten_up_to(treedef, updates, "lucid.optim.apply_updates")
    out = []
    for p, u, path in zip(leaves, ups, paths):
        if u is None:
            out.append(p)
            continue
        u = as_update("lucid.optim.apply_updates", path, u, p)
        out.append(_leaf.plus(p, u))
    return treedef.unflatten(out)


def identity() -> GradientTransformation:
    """The transformation that leaves updates unchanged."""
    return GradientTransformation(lambda params: EmptyState(),
                                  lambda updates, state, params=None: (updates, state))


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply transformations in sequence; the state is a tuple with one state per transform."""
    for i, t in enumerate(transforms):
        if not (isinstance(t, tuple) and len(t) == 2 and callable(t[0]) and callable(t[1])):
            raise TypeError(f"lucid.optim.chain: argument {i} is not a GradientTransformation "
                            f"(an (init, update) pair), got {type(t).__name__}")

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None):
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise ValueError(f"lucid.optim.chain: expected a state tuple of {len(transforms)} "
                             f"states (from this chain's init), got {type(state).__name__}")
        new_state = []
        for t, s in zip(transforms, state):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def global_norm(tree) -> float:
    """The L2 norm of all float leaves of ``tree`` together (None leaves are skipped).

    For device leaves the norm is computed on the device and read back once (8 bytes);
    ``clip_by_global_norm`` keeps it on the device instead.
    """
    from .._backend import kernels
    leaves = [leaf for leaf in flatten_none(tree)[0] if leaf is not None]
    if any(is_device(leaf) for leaf in leaves):
        return float(_leaf.device_norm("lucid.optim.global_norm", leaves).copy_to_host()[0])
    total, buf = 0.0, np.zeros(1, np.float64)
    for leaf in leaves:
        leaf = c_array(leaf)
        if leaf.dtype.type not in _FLOAT:
            raise TypeError(f"lucid.optim.global_norm: leaves must be float32/float64 arrays, "
                            f"got dtype {leaf.dtype}")
        kernels("optim").sum_squares(leaf.reshape(-1), buf)
        total += buf[0]
    return math.sqrt(total)
