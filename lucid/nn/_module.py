"""The Module facade: objects that hold parameters, over lucid's functional core.

A :class:`Module` is a thin object around a pure function. Its constructor records
hyperparameters; its parameters live in one pytree (``.params``, a nested dict whose
"."-joined paths are the state-dict keys) and its buffers (BatchNorm running statistics)
in another (``.state``). Both are created lazily, on first use, so building a module is
free and the functional pair is always available::

    params, state = module.init(key)                      # fresh pytrees
    y = module.apply(params, x)                           # inference, pure
    y, new_state = module.apply(params, x, state=state, train=True, key=k)
    y = module(x)                                         # the same with the held pytrees

Modules are in eval mode when built (``apply``/``__call__`` need no key); ``train()``
switches the held module to training.

Writing a module. Either compose submodules and write ``forward`` like PyTorch::

    class Mixer(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        def forward(self, x):             # NCHW; self.conv's parameters are params["conv"]
            return self.conv(x)

During ``apply`` the parameters are *bound*: calling a registered submodule inside
``forward`` runs it on its slice of the params/state trees (``self.ctx`` exposes the
bound params, state, train flag, key and layout). Parameters of a module's own are
declared by overriding ``specs()`` (or ``init``). Such a class works as a ``token_mixers=``
or ``head_fn=`` argument of the models.
"""
from __future__ import annotations

import collections
import threading

import numpy as np

from .. import random as _random
from .._autodiff import Tracer
from .._core import name_scope
from ._spec import count_params, materialize
from ._tree_util import has_leaves, map_with_key, merged_leaves, named_leaves, subtree

# Lazy parameter initialisation is rare and must happen once per module, whichever thread
# gets there first (an RLock: init may build sub-modules' parameters).
_LAZY_INIT = threading.RLock()

__all__ = ["Module", "Context", "IncompatibleKeys"]

_FORMATS = ("NCHW", "NHWC")
IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
_local = threading.local()


def _stack() -> list:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def _ndim(x) -> int:
    return x.ndim if hasattr(x, "ndim") else np.ndim(x)


def _in_params_dtype(x, params):
    """NumPy input cast to the parameters' float dtype (tracers, parameter-free modules: as is)."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        return x
    for _, leaf in named_leaves(params):
        if getattr(leaf, "dtype", None) is not None and np.dtype(leaf.dtype).kind == "f":
            return x if x.dtype == leaf.dtype else x.astype(leaf.dtype)
    return x


def _host_or_device(v):
    """A device array as it is (no hidden copy to the host), anything else as an ndarray."""
    from .._device import DeviceArray
    return v if isinstance(v, DeviceArray) else np.asarray(v)


class Context:
    """What a module's ``forward`` sees during ``apply`` (``self.ctx``).

    Attributes:
      params, state: this module's slice of the parameter / state trees.
      train: training mode (dropout, drop path and batch statistics are active).
      key: this call's random key, or None.
      data_format: "NCHW" or "NHWC", the layout of image arrays in this call.
    """

    __slots__ = ("module", "params", "state", "train", "key", "data_format", "new_state",
                 "child_states", "calls")

    def __init__(self, module, params, state, train, key, data_format):
        self.module, self.params, self.state = module, params, state
        self.train, self.key, self.data_format = train, key, data_format
        self.new_state, self.child_states, self.calls = None, {}, 0

    @property
    def channel_axis(self) -> int:
        return 1 if self.data_format == "NCHW" else -1

    def set_state(self, new_state) -> None:
        """Record this module's updated state (e.g. new running statistics)."""
        self.new_state = new_state

    def next_key(self):
        """A fresh key derived from this call's key (None when there is none)."""
        self.calls += 1
        return None if self.key is None else _random.fold_in(self.key, self.calls)

    def call_child(self, name, child, x):
        with name_scope(name):   # the child's module path, on its traced equations
            y, ns = child._call(subtree(self.params, name), subtree(self.state, name), x,
                                self.train, self.next_key(), self.data_format)
        if has_leaves(ns):
            self.child_states[name] = ns
        return y

    def result_state(self):
        if self.new_state is not None:
            return self.new_state
        if not self.child_states:
            return self.state
        if isinstance(self.state, (list, tuple)):
            merged = list(self.state)
            for name, ns in self.child_states.items():
                merged[int(name)] = ns
            return merged
        return {**(self.state or {}), **self.child_states}


class Module:
    """Base class of lucid's layers and models (see the module docstring)."""

    #: True when ``_run`` handles ``data_format="NHWC"`` itself; other modules get NCHW.
    native_nhwc = False

    def __init__(self):
        d = self.__dict__
        d.setdefault("_children", {})
        d.setdefault("_params", None)
        d.setdefault("_state", None)
        d.setdefault("training", False)

    def __setattr__(self, name, value):
        children = self.__dict__.setdefault("_children", {})
        children.pop(name, None)
        if isinstance(value, Module) and not name.startswith("_"):
            children[name] = value
        object.__setattr__(self, name, value)

    # ---- structure ---------------------------------------------------------------------
    def named_children(self) -> list:
        """``[(name, module), ...]`` of registered submodules, in assignment order."""
        return list(self.__dict__.get("_children", {}).items())

    def children(self) -> list:
        return [m for _, m in self.named_children()]

    def _child_name(self, child):
        for name, m in self.named_children():
            if m is child:
                return name
        return None

    def specs(self):
        """The parameter/buffer spec tree (default: one entry per submodule with parameters)."""
        return {name: (child if child._custom_init() else child.specs())
                for name, child in self.named_children()}

    def _custom_init(self) -> bool:
        cls = type(self)
        return cls.init is not Module.init and cls.specs is Module.specs

    # ---- functional form ---------------------------------------------------------------
    def init(self, key):
        """Fresh ``(params, state)`` pytrees from a random key (timm's initialisation)."""
        return materialize(self.specs(), key)

    def apply(self, params, x, *, state=None, train: bool = False, key=None,
              data_format: str = "NCHW"):
        """Run the module as a pure function.

        Args:
          params: the parameter pytree (as from ``init`` or ``.params``).
          x: the input (NCHW for image modules unless ``data_format="NHWC"``).
          state: buffers (BatchNorm running statistics); None uses the module's own ``.state``.
          train: training mode (dropout, drop path, batch statistics).
          key: random key, needed in training when a dropout / drop-path rate is > 0.
          data_format: layout of image inputs and outputs, "NCHW" or "NHWC".
        Returns:
          the output when ``train`` is False, else ``(output, new_state)``.

        A module computes in its parameters' dtype: NumPy inputs of another dtype are cast.
        """
        self._check_call_args(key, data_format, "apply")
        if state is None:
            state = self._default_state()
        x = _in_params_dtype(x, params)
        y, new_state = self._call(params, state, x, bool(train), key, data_format)
        return (y, new_state) if train else y

    def _check_call_args(self, key, data_format, method):
        if key is not None and not _random.is_key(key):
            raise TypeError(f"lucid.nn.{type(self).__name__}.{method}: key must be a lucid random "
                            f"key (lucid.random.key(seed)), got {type(key).__name__}")
        if data_format not in _FORMATS:
            raise ValueError(f"lucid.nn.{type(self).__name__}.{method}: data_format must be one "
                             f"of {_FORMATS}, got {data_format!r}")

    def _call(self, params, state, x, train, key, data_format):
        """Run ``_run``, converting the layout for modules that only speak NCHW."""
        if data_format == "NHWC" and not self.native_nhwc and _ndim(x) == 4:
            from .. import numpy as lnp
            y, ns = self._run(params, state, lnp.transpose(x, (0, 3, 1, 2)), train=train,
                              key=key, data_format="NCHW")
            return (lnp.transpose(y, (0, 2, 3, 1)) if _ndim(y) == 4 else y), ns
        return self._run(params, state, x, train=train, key=key, data_format=data_format)

    def _run(self, params, state, x, *, train, key, data_format):
        """The functional core: returns ``(y, new_state)``. Default: bind and call ``forward``."""
        ctx = Context(self, params, state, train, key, data_format)
        stack = _stack()
        stack.append(ctx)
        try:
            y = self.forward(x)
        finally:
            stack.pop()
        return y, ctx.result_state()

    def forward(self, x):
        """Override to compose submodules (runs with parameters bound, see ``ctx``)."""
        raise NotImplementedError(f"lucid.nn.{type(self).__name__}: define forward(self, x) (or "
                                  "_run) to make the module callable")

    @property
    def ctx(self) -> Context:
        """The bound call of this module (only inside ``forward``)."""
        stack = _stack()
        if not stack or stack[-1].module is not self:
            raise RuntimeError(f"lucid.nn.{type(self).__name__}.ctx is only available inside "
                               "forward() while the module is being applied")
        return stack[-1]

    def __call__(self, x, *, key=None):
        stack = _stack()
        if stack:
            name = stack[-1].module._child_name(self)
            if name is not None:  # a submodule called inside its parent's forward
                return stack[-1].call_child(name, self, x)
        self._check_call_args(key, "NCHW", "__call__")
        train = self.training
        x = _in_params_dtype(x, self.params)
        y, new_state = self._call(self.params, self.state, x, train, key, "NCHW")
        if train:
            self._store_state(new_state)
        return y

    # ---- held parameters ---------------------------------------------------------------
    def _held_by_root(self) -> bool:
        """A sub-module of a model gets its slice from the model (``_root``) before it would
        initialise parameters of its own; True when that gave it its trees."""
        root = self.__dict__.get("_root")
        if root is None or root is self:
            return False
        root.params  # noqa: B018 - holds the model's trees, which hands every sub-module its slice
        return self.__dict__.get("_params") is not None

    def _set_root(self, root) -> None:
        """Link this module and its descendants to the model holding their parameters (a
        plain reference: copy.deepcopy and pickle keep the links inside the copy)."""
        for _, m in self.named_modules():
            m.__dict__["_root"] = root

    def named_modules(self, prefix: str = "") -> list:
        """``[(dotted name, module), ...]``: this module (name ``prefix``) and every
        descendant, depth first in registration order (PyTorch's ``named_modules``)."""
        out = [(prefix, self)]
        for name, child in self.named_children():
            out += child.named_modules(f"{prefix}.{name}" if prefix else name)
        return out

    def modules(self) -> list:
        """This module and all its descendants (PyTorch's ``modules``)."""
        return [m for _, m in self.named_modules()]

    @property
    def params(self):
        """The held parameter pytree (initialised from the global random key on first use)."""
        if self.__dict__.get("_params") is None and not self._held_by_root():
            with _LAZY_INIT:  # two threads calling a fresh model must share one init
                if self.__dict__.get("_params") is None:
                    params, state = self.init(_random._next_global())
                    held = self.__dict__.get("_state")
                    self._hold(params, state if held is None else held)
        return self._params

    @params.setter
    def params(self, value):
        self._hold(value, self.__dict__.get("_state"))

    @property
    def state(self):
        """The held buffers (BatchNorm running statistics); ``{}`` for stateless modules."""
        if self.__dict__.get("_state") is None:
            if self.__dict__.get("_params") is None and self._held_by_root():
                return self._state
            if self.__dict__.get("_params") is None:
                with _LAZY_INIT:
                    if self.__dict__.get("_params") is None:
                        self.reset_parameters()  # builds both
            else:
                self._hold(self._params, self._default_state())
        return self._state

    @state.setter
    def state(self, value):
        self._hold(self.__dict__.get("_params"), value)

    def to(self, device):
        """Move the held params and state to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``
        or a :class:`lucid.Device`), as ``torch.nn.Module.to``; returns self.

        Inputs must then live on the same device (``lucid.device_put(x, device)``).
        """
        from .._device import device_put
        self._hold(device_put(self.params, device), device_put(self.state, device))
        return self

    @property
    def device(self):
        """The device of the held parameters (``cpu`` for a parameter-free module)."""
        from .._device import CPU, device_of
        for _, leaf in named_leaves(self.params):
            return device_of(leaf)
        return CPU

    def _hold(self, params, state):
        """Hold new trees and give each submodule its slice (so ``model.conv.params`` is
        ``model.params["conv"]``)."""
        self.__dict__["_params"], self.__dict__["_state"] = params, state
        for name, child in self.named_children():
            child._hold(None if params is None else subtree(params, name),
                        None if state is None else subtree(state, name))

    def reset_parameters(self, key=None):
        """Re-initialise the held params and state (from ``key`` or the global random key)."""
        if key is None:
            key = _random._next_global()
        self._hold(*self.init(key))
        return self

    def _default_state(self):
        """The held state, or (without building the params) the initial buffers."""
        if self.__dict__.get("_state") is not None:
            return self._state
        if self._custom_init():
            return self.init(_random.key(0))[1]
        return materialize(self.specs(), _random.key(0), state_only=True)[1]

    def _store_state(self, new_state):
        """Write new buffers into the held ones in place (as PyTorch updates buffers)."""
        unwrap = lambda _, v: v.value if isinstance(v, Tracer) else _host_or_device(v)  # noqa: E731
        new_state = map_with_key(unwrap, new_state)
        old = dict(named_leaves(self.state))
        new = named_leaves(new_state)
        if len(new) == len(old) and all(
                isinstance(old.get(k), np.ndarray) and old[k].shape == v.shape
                and old[k].flags.writeable for k, v in new):
            for k, v in new:
                np.copyto(old[k], v, casting="unsafe")
        else:
            self.state = new_state

    def train(self, mode: bool = True):
        """Set training mode (recursively); returns self."""
        self.__dict__["training"] = bool(mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        """Set inference mode (recursively); returns self."""
        return self.train(False)

    # ---- state dicts -------------------------------------------------------------------
    def _in_model_order(self, items: list) -> list:
        """``items`` ((key, ...) tuples) sorted like the specs, i.e. timm's state-dict order.

        The held trees may have been rebuilt in another order (``lucid.tree.map`` sorts dict
        keys), so the order comes from the specs, not from the dicts.
        """
        try:
            p, s = materialize(self.specs(), _random.key(0), abstract=True)
        except Exception:  # noqa: BLE001 - a module without usable specs keeps its own order
            return items
        rank = {k: i for i, (k, _, _) in enumerate(merged_leaves(p, s))}
        return sorted(items, key=lambda item: rank.get(item[0], len(rank)))

    def named_parameters(self) -> list:
        """``[(timm key, array), ...]`` of the trainable parameters, in model order."""
        return self._in_model_order(named_leaves(self.params))

    def parameters(self) -> list:
        """The parameter arrays, in model order."""
        return [v for _, v in self.named_parameters()]

    def num_parameters(self) -> int:
        """Number of trainable scalars (from the specs when the params are not built yet)."""
        if self.__dict__.get("_params") is not None:
            return int(sum(int(np.size(v)) for _, v in named_leaves(self._params)))
        return count_params(self.specs())

    def state_dict(self) -> dict:
        """Flat ``{timm key: numpy array}`` of parameters and buffers, in timm's order (host
        arrays, also for a model on a GPU)."""
        from .._device import device_get
        return {k: device_get(v)
                for k, v, _ in self._in_model_order(merged_leaves(self.params, self.state))}

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Load a flat state dict (timm keys), e.g. from ``lucid.io.load``.

        1x1-conv MLP weights ``(O, I, 1, 1)`` and linear weights ``(O, I)`` are accepted for
        each other; ``num_batches_tracked`` may be absent. Raises ValueError listing the
        missing, unexpected and mis-shaped keys (mis-shaped keys raise even with
        ``strict=False``). Returns the missing and unexpected keys.
        """
        from ._state_dict import load_into
        return load_into(self, state_dict, strict)

    def __repr__(self):
        kids = self.named_children()
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in kids]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def extra_repr(self) -> str:
        return ""


def check_positive_int(value, what: str, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"lucid.nn.{where}: {what} must be a positive int, got {value!r}")
    return int(value)

