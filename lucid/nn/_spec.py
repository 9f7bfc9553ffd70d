"""Parameter specifications: shapes and init rules, materialised into arrays on demand.

A module describes its parameters and buffers as a tree of :class:`ParamSpec` (and, for
submodules that only define ``init``, the submodule itself). From that one description
come ``init`` (random arrays), parameter counts and state-dict templates of huge models
without allocating anything.
"""
from __future__ import annotations

import itertools

import numpy as np

from .._limits import check_alloc
from .. import random as _random
from ._tree_util import has_leaves

_INITS = ("trunc_normal", "zeros", "ones", "full")


class ParamSpec:
    """One parameter (or buffer) to be created.

    Args:
      shape: the array shape.
      init: "trunc_normal" (std ``value``, truncated at +-2 absolute, timm's
        ``trunc_normal_``), "zeros", "ones" or "full" (filled with ``value``).
      value: the std for "trunc_normal", the fill value for "full".
      trainable: False for buffers (BatchNorm running statistics), which go to ``state``.
      dtype: a fixed dtype (e.g. "int64" for ``num_batches_tracked``); None means the
        model's float dtype.
    """

    __slots__ = ("shape", "init", "value", "trainable", "dtype")

    def __init__(self, shape, init: str = "zeros", value: float = 0.0, *, trainable: bool = True,
                 dtype=None):
        if init not in _INITS:
            raise ValueError(f"lucid.nn.ParamSpec: init must be one of {_INITS}, got {init!r}")
        self.shape = tuple(int(s) for s in shape)
        self.init, self.value, self.trainable, self.dtype = init, float(value), trainable, dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def make(self, key, dtype=np.float32) -> np.ndarray:
        """Create the array from a key (used by "trunc_normal" only)."""
        dt = np.dtype(self.dtype or dtype)
        if self.init == "trunc_normal":
            std = self.value
            z = _random.truncated_normal(key, -2.0 / std, 2.0 / std, self.shape, dt)
            z *= dt.type(std)
            return z
        fill = {"zeros": 0.0, "ones": 1.0, "full": self.value}[self.init]
        return np.full(self.shape, fill, dtype=dt)

    def abstract(self, dtype=np.float32) -> np.ndarray:
        """A zero-strided stand-in with the right shape and dtype (no memory)."""
        return np.broadcast_to(np.zeros((), np.dtype(self.dtype or dtype)), self.shape)

    def __repr__(self):
        kind = "param" if self.trainable else "buffer"
        return f"ParamSpec({self.shape}, {self.init!r}, {self.value}, {kind})"


def _module_type():
    from ._module import Module
    return Module


def materialize(spec, key, dtype=np.float32, *, abstract: bool = False, state_only: bool = False):
    """Turn a spec tree into ``(params, state)``.

    Every leaf gets its own key, ``fold_in(key, i)`` for the i-th leaf in tree order, so
    the arrays are a deterministic function of ``key``. Containers without leaves are
    dropped from dicts and kept as ``{}`` placeholders in lists (indices stay aligned).

    Args:
      spec: nested dicts / lists of ParamSpec and Module leaves.
      key: a lucid random key (ignored with ``abstract``).
      dtype: the float dtype of the parameters.
      abstract: give memory-less stand-ins (``ParamSpec.abstract``) instead of arrays.
      state_only: build the buffers only (the params come back empty).
    """
    counter = itertools.count()
    p, s = _materialize(spec, key, np.dtype(dtype), counter, (abstract, state_only))
    return (p if p is not None else {}), (s if s is not None else {})


def _materialize(spec, key, dtype, counter, mode):
    abstract, state_only = mode
    i = next(counter) if isinstance(spec, (ParamSpec, _module_type())) else None
    if isinstance(spec, ParamSpec):
        if state_only and spec.trainable:
            return None, None
        if abstract:
            arr = spec.abstract(dtype)
        else:  # only the random init needs a key (fold_in costs ~20 us a leaf)
            check_alloc("lucid.nn (model parameters)", spec.shape, dtype, "parameter")
            arr = spec.make(_random.fold_in(key, i) if spec.init == "trunc_normal" else None, dtype)
        return (arr, None) if spec.trainable else (None, arr)
    if isinstance(spec, _module_type()):
        p, s = spec.init(_random.key(0) if abstract else _random.fold_in(key, i))
        p = _cast_floats(p, dtype)
        return (p if has_leaves(p) else None), (s if has_leaves(s) else None)
    if isinstance(spec, dict):
        p, s = {}, {}
        for k, v in spec.items():
            pp, ss = _materialize(v, key, dtype, counter, mode)
            if pp is not None:
                p[k] = pp
            if ss is not None:
                s[k] = ss
        return (p or None), (s or None)
    if isinstance(spec, (list, tuple)):
        parts = [_materialize(v, key, dtype, counter, mode) for v in spec]
        ps = [pp if pp is not None else {} for pp, _ in parts]
        ss = [sv if sv is not None else {} for _, sv in parts]
        return (ps if any(pp is not None for pp, _ in parts) else None,
                ss if any(sv is not None for _, sv in parts) else None)
    raise TypeError(f"lucid.nn: a parameter spec tree may hold ParamSpec and Module leaves only, "
                    f"got {type(spec).__name__}")


def _cast_floats(tree, dtype):
    if isinstance(tree, dict):
        return {k: _cast_floats(v, dtype) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_cast_floats(v, dtype) for v in tree]
    if isinstance(tree, np.ndarray) and tree.dtype.kind == "f" and tree.dtype != dtype:
        return tree.astype(dtype)
    return tree


def count_params(spec) -> int:
    """Number of trainable scalars described by a spec tree (allocates nothing for ParamSpecs)."""
    if isinstance(spec, ParamSpec):
        return spec.size if spec.trainable else 0
    if isinstance(spec, dict):
        return sum(count_params(v) for v in spec.values())
    if isinstance(spec, (list, tuple)):
        return sum(count_params(v) for v in spec)
    if isinstance(spec, _module_type()):
        return spec.num_parameters()
    raise TypeError(f"lucid.nn: unexpected leaf {type(spec).__name__} in a spec tree")
