"""Checks and small helpers shared by the model families (no architecture here)."""
from __future__ import annotations

import functools

import numpy as np

from .. import numpy as lnp
from .. import random as _random
from .._autodiff import Tracer
from .._core import name_scope, on_device
from ..nn import functional as F
from ..nn._module import Module
from ..nn._spec import count_params, materialize
from ..nn._state_dict import interchangeable
from ..nn._tree_util import named_leaves

_MAX_LISTED = 12


def check_int_seq(value, what: str, where: str, *, minimum: int = 1) -> tuple:
    """A tuple of ints >= minimum from a list/tuple (ValueError otherwise)."""
    if isinstance(value, (int, np.integer)) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{where}: {what} must be a non-empty list of ints, got {value!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum
           for v in value):
        raise ValueError(f"{where}: every entry of {what} must be an int >= {minimum}, "
                         f"got {value!r}")
    return tuple(int(v) for v in value)


def check_rate(value, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{where}: {what} must be a float in [0, 1), got {value!r}")
    return float(value)


def check_finite(value, what: str, where: str, *, optional: bool = False,
                 positive: bool = False):
    """``value`` as a finite float (``None`` passes when ``optional``), else ValueError:
    a NaN or infinite layer scale or eps would silently poison every output."""
    if optional and value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not np.isfinite(float(value)) or (positive and not float(value) > 0):
        kind = "a positive finite float" if positive else "a finite float"
        raise ValueError(f"{where}: {what} must be {kind}{' or None' if optional else ''}, "
                         f"got {value!r}")
    return float(value)


def drop_path_rates(rate: float, depths) -> list:
    """Per-block drop-path rates, linear from 0 to ``rate`` over all blocks (timm)."""
    return [float(r) for r in np.linspace(0.0, rate, sum(depths))]


def check_key(key, train: bool, needs_key: bool, where: str, rates: str):
    if key is not None and not _random.is_key(key):
        raise TypeError(f"{where}: key must be a lucid random key (lucid.random.key(seed)), got "
                        f"{type(key).__name__}")
    if train and needs_key and key is None:
        raise TypeError(f"{where}: training with {rates} needs a random key: pass "
                        "key=lucid.random.key(seed) (model(x, key=k) for a Module)")


def sub_key(key, i: int):
    return None if key is None else _random.fold_in(key, i)


def check_input(x, in_chans: int, min_size: int, dtype, where: str):
    """Validate an NCHW image batch; non-float32/64 or mismatched arrays are cast to ``dtype``."""
    if not isinstance(x, (np.ndarray, Tracer)) and not on_device(x):
        try:
            x = np.asarray(x)
        except Exception as e:  # noqa: BLE001 - re-raised with context
            raise TypeError(f"{where}: expected an NCHW array, got {type(x).__name__}") from e
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected a float32/float64 NCHW array, got dtype {x.dtype}")
    if x.ndim != 4 or x.shape[1] != in_chans:
        raise ValueError(f"{where}: expected an NCHW input of shape (N, {in_chans}, H, W), "
                         f"got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    if n < 1 or h < min_size or w < min_size:
        raise ValueError(f"{where}: input of shape {tuple(x.shape)} is too small; need N >= 1 and "
                         f"H, W >= {min_size}")
    if x.dtype != dtype:
        if not isinstance(x, np.ndarray):   # a tracer or a device array: no silent cast
            raise TypeError(f"{where}: input has dtype {x.dtype} but the parameters are "
                            f"{np.dtype(dtype)}; cast one of them")
        x = x.astype(dtype)
    return x


def params_dtype(params, where: str):
    leaves = named_leaves(params)
    if not leaves:
        raise ValueError(f"{where}: params is empty")
    return np.dtype(leaves[0][1].dtype)


@functools.lru_cache(maxsize=64)
def expected_shapes(specs_fn, config) -> tuple:
    """``(param shapes, state shapes)`` as ``{key: shape}`` dicts, from the model's specs."""
    p, s = materialize(specs_fn(config), _random.key(0), abstract=True)
    return ({k: tuple(v.shape) for k, v in named_leaves(p)},
            {k: tuple(v.shape) for k, v in named_leaves(s)})


def _listing(items) -> str:
    return ", ".join(items[:_MAX_LISTED]) + (
        f", ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def check_tree(tree, expected: dict, what: str, where: str, *, optional_suffix: str = ""):
    """Raise ValueError unless ``tree`` has exactly the expected keys and shapes."""
    if not isinstance(tree, (dict, list)):
        raise TypeError(f"{where}: {what} must be a nested dict/list pytree, got "
                        f"{type(tree).__name__}")
    got = {k: tuple(np.shape(v)) if not hasattr(v, "shape") else tuple(v.shape)
           for k, v in named_leaves(tree)}
    missing = [k for k in expected if k not in got
               and not (optional_suffix and k.endswith(optional_suffix))]
    unexpected = [k for k in got if k not in expected]
    wrong = [f"{k}: expected {expected[k]}, got {got[k]}" for k in expected
             if k in got and got[k] != expected[k] and not interchangeable(got[k], expected[k])]
    if missing or unexpected or wrong:
        parts = [f"missing {_listing(missing)}" if missing else "",
                 f"unexpected {_listing(unexpected)}" if unexpected else "",
                 f"mis-shaped {_listing(wrong)}" if wrong else ""]
        raise ValueError(f"{where}: {what} do not match the model configuration: "
                         + "; ".join(p for p in parts if p))


def int_ratio(count: int, base: int) -> float:
    """A ratio r with ``int(r * base) == count`` (to rebuild a config from weight shapes)."""
    r = count / base
    return r if int(r * base) == count else (count + 0.5) / base


def pop_alias(overrides: dict, name: str, alias: str, value, default, where: str):
    """Resolve a documented argument and its timm-named alias given as an override."""
    if alias in overrides:
        other = overrides.pop(alias)
        if value != default and other != value:
            raise TypeError(f"{where}: got both {name}={value!r} and {alias}={other!r}")
        return other
    return value


def finish_variant(model, variant: str, weights, pretrained: bool):
    """Give a variant's model timm's ``pretrained_cfg`` and load its weights, if any:
    ``weights=PATH`` (a timm state dict file) or ``pretrained=True`` (timm's checkpoint from
    the Hugging Face cache). A classifier of another size stays freshly initialised."""
    from ._pretrained import PRETRAINED_CFGS, hub_checkpoint, load_pretrained
    model.pretrained_cfg = dict(PRETRAINED_CFGS[variant])
    if weights is not None and pretrained:
        raise TypeError(f"lucid.models.{variant}: pass weights=PATH or pretrained=True, not both")
    if pretrained:
        weights = hub_checkpoint(variant)
    if weights is not None:
        load_pretrained(model, weights)
    return model


_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def from_state_dict(state_dict) -> tuple:
    """``(params, state)`` pytrees from a flat timm state dict (e.g. ``lucid.io.load(path)``).

    Keys are split on "." (numeric parts become list indices); BatchNorm buffers
    (running_mean, running_var, num_batches_tracked) go to ``state``. The arrays are used
    as they are (no copy); ``apply`` accepts both MLP weight shapes.
    """
    from ..nn._tree_util import unflatten_keys
    if not hasattr(state_dict, "items"):
        raise TypeError("lucid.models.from_state_dict: expected a dict of key -> array, got "
                        f"{type(state_dict).__name__}")
    params = {k: v for k, v in state_dict.items() if not k.endswith(_BUFFER_SUFFIXES)}
    state = {k: v for k, v in state_dict.items() if k.endswith(_BUFFER_SUFFIXES)}
    return unflatten_keys(params), unflatten_keys(state)


def cast_state(state, dtype):
    """BatchNorm statistics in the parameters' float dtype (like PyTorch's ``model.double()``)."""
    from ..nn._tree_util import map_with_key

    def cast(_, leaf):
        if isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f" and leaf.dtype != dtype:
            return leaf.astype(dtype)
        return leaf
    return map_with_key(cast, state)


def mlp_residual(p, x, y, rate: float, key, train: bool):
    """``x + drop_path(gamma * fc2(gelu(fc1(y))))``: the MLP half of a ConvNeXt /
    MetaNeXt block, NHWC (linears over the last axis).

    Written with plain ops, as timm writes it. Under ``lucid.jit`` the fusion passes
    (lucid/_fusion.py) run fc1's bias with the GELU as one pass (``bias_gelu``) and, without
    drop path, fc2's bias, the layer scale and the residual add as another
    (``bias_scale_residual``), with the same roundings; eager runs them op by op.
    """
    fc1, fc2 = p["mlp"]["fc1"], p["mlp"]["fc2"]
    y = F.linear(y, fc1["weight"], fc1.get("bias"))
    with name_scope("mlp"), name_scope("act"):   # timm's module path of the GELU
        y = F.gelu(y)
    y = F.linear(y, fc2["weight"], fc2.get("bias"))   # 1x1 conv == linear
    if "gamma" in p:
        y = lnp.multiply(y, p["gamma"])  # channels-last: broadcasts over the last axis
    if train and rate > 0.0:
        with name_scope("drop_path"):
            y = F.drop_path(y, rate, key, train=True)
    return lnp.add(x, y)


def to_nhwc(x, data_format):
    return lnp.transpose(x, (0, 2, 3, 1)) if data_format == "NCHW" else x


def from_nhwc(y, data_format):
    ndim = y.ndim if hasattr(y, "ndim") else np.ndim(y)
    return lnp.transpose(y, (0, 3, 1, 2)) if data_format == "NCHW" and ndim == 4 else y


class Piece(Module):
    """A sub-module of a model family: one functional piece (stem, stage, block, head) run on
    its slice of the parameter / state trees.

    ``specs_fn()`` gives the piece's parameter specs and ``fn(params, state, x, train, key)``
    its pure NHWC function returning ``(y, new_state)``. Built by the family's facade, so
    ``model.stages[1].blocks[0](x)`` runs exactly what ``apply`` runs for that block.
    """

    native_nhwc = True

    def __init__(self, kind: str, specs_fn, fn, **children):
        super().__init__()
        self.__dict__["kind"], self.__dict__["_specs_fn"], self.__dict__["_fn"] = kind, specs_fn, fn
        for name, child in children.items():
            if child is not None:
                setattr(self, name, child)

    def specs(self):
        return self._specs_fn()

    def _run(self, params, state, x, *, train, key, data_format):
        y, new_state = self._fn(params, state, to_nhwc(x, data_format), train, key)
        return from_nhwc(y, data_format), new_state

    def __new__(cls, kind: str | None = None, *args, **kwargs):
        if kind is None:  # copy.copy / deepcopy of a piece
            return super().__new__(cls)
        # one subclass per kind, so type(model.stem).__name__ is "Stem" as in timm
        sub = _PIECE_CLASSES.get(kind)
        if sub is None:
            sub = _PIECE_CLASSES[kind] = type(kind, (Piece,), {"__module__": cls.__module__})
        return super().__new__(sub)


_PIECE_CLASSES: dict = {}


class FamilyModel(Module):
    """The facade shared by the model families: a config plus the family's functional form.

    A family's class sets ``_specs``, ``_init``, ``_apply`` (its module-level functions),
    ``_features``/``_head`` (``forward_features``/``forward_head``), ``_classifier`` (the classifier's key prefix, timm's
    ``pretrained_cfg["classifier"]``) and ``_build`` (the sub-modules of a config). Calling
    the model runs ``_apply``; the sub-modules (``stem``, ``stages``, ``head``) wrap the same
    functions piece by piece, for ``children()``/``named_modules()`` and for running one piece.
    """

    _specs = _init = _apply = _features = _head = _build = None
    _classifier = ""
    pretrained_cfg: dict = {}

    @classmethod
    def from_config(cls, config):
        model = cls.__new__(cls)
        Module.__init__(model)
        model.config = config
        return model

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "config":  # the sub-modules follow the configuration
            for child, module in type(self)._build(value).items():
                super().__setattr__(child, module)
                module._set_root(self)
            if self.__dict__.get("_params") is not None:
                self._hold(self._params, self.__dict__.get("_state"))

    def __getstate__(self):
        """Copies and pickles carry the config and trees; the sub-modules are rebuilt."""
        kids = self.__dict__.get("_children", {})
        state = {k: v for k, v in self.__dict__.items() if k not in kids}
        state["_children"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.config = state["config"]  # rebuilds the sub-modules and hands them their slices
        self.train(self.training)

    def specs(self):
        return type(self)._specs(self.config)

    def init(self, key):
        return type(self)._init(key, self.config)

    @property
    def default_cfg(self) -> dict:
        """timm's alias of ``pretrained_cfg``."""
        return self.pretrained_cfg

    def apply(self, params, x, *, state=None, train: bool = False, key=None):
        """The family's ``apply`` with this model's config; ``state`` defaults to ``.state``."""
        state = self._default_state() if state is None else state
        return type(self)._apply(params, x, state=state, train=train, key=key, config=self.config)

    def _run(self, params, state, x, *, train, key, data_format):
        out = type(self)._apply(params, x, state=state, train=train, key=key, config=self.config)
        return out if train else (out, state)

    def _held_call(self, fn, x, key, **kw):
        """Run a functional piece on the held params/state in the current mode (as __call__)."""
        train = self.training
        out = fn(self.params, x, state=self.state, train=train, key=key, config=self.config, **kw)
        if not train:
            return out
        self._store_state(out[1])
        return out[0]

    def forward_features(self, x, *, key=None):
        """The NCHW feature map before the head (timm's ``forward_features``)."""
        return self._held_call(type(self)._features, x, key)

    def forward_head(self, x, *, pre_logits: bool = False, key=None):
        """The head on an NCHW feature map; ``pre_logits`` stops before the classifier."""
        return self._held_call(type(self)._head, x, key, pre_logits=pre_logits)

    def get_classifier(self):
        """The head's classifier parameters (timm's ``get_classifier``; {} without one)."""
        node = self.params
        for part in self._classifier.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node

    def reset_classifier(self, num_classes: int, *, key=None):
        """A new classifier with ``num_classes`` outputs (0: none), freshly initialised; every
        other parameter and buffer is kept (timm's ``reset_classifier``)."""
        import dataclasses
        C_ = check_int_seq([num_classes], "num_classes", f"{type(self).__name__}.reset_classifier",
                           minimum=0)[0]
        params, state = self.params, self.state
        self.config = dataclasses.replace(self.config, num_classes=C_)
        fresh_p, fresh_s = self.init(_random._next_global() if key is None else key)
        self._hold(keep_matching(fresh_p, params), keep_matching(fresh_s, state))
        return self

    def num_parameters(self) -> int:
        if self.__dict__.get("_params") is None:
            return count_params(self.specs())  # without allocating the parameters
        return super().num_parameters()

    def extra_repr(self):
        return repr(self.config)

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


def keep_matching(fresh, old):
    """``fresh`` with every leaf replaced by ``old``'s at the same key when the shapes agree."""
    from ..nn._tree_util import map_with_key
    old_leaves = dict(named_leaves(old))

    def pick(key, leaf):
        prev = old_leaves.get(key)
        return prev if prev is not None and tuple(np.shape(prev)) == tuple(np.shape(leaf)) else leaf
    return map_with_key(pick, fresh)
