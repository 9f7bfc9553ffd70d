"""``Module.load_state_dict``: flat timm-keyed dicts into a module's params and state."""
from __future__ import annotations

import collections.abc

import numpy as np

from .. import random as _random
from ._spec import materialize
from ._tree_util import map_with_key, merged_leaves

_OPTIONAL_SUFFIX = "num_batches_tracked"  # unused at inference; timm checkpoints may lack it
_MAX_LISTED = 20


def interchangeable(got: tuple, want: tuple) -> bool:
    """True for a linear weight ``(O, I)`` against a 1x1-conv weight ``(O, I, 1, 1)`` or back."""
    if len(got) == 2 and len(want) == 4:
        got, want = want, got
    return len(got) == 4 and len(want) == 2 and got[2:] == (1, 1) and got[:2] == tuple(want)


def _template(module, need_values: bool):
    """The module's (params, state): the held ones, or memory-less stand-ins from its specs."""
    if module.__dict__.get("_params") is not None or need_values:
        return module.params, module.state
    return materialize(module.specs(), _random.key(0), abstract=True)


def _listing(items) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... and {more} more" if more > 0 else "")


def _convert(key, value, leaf, where):
    try:
        arr = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - re-raised with the key named
        raise TypeError(f"{where}: the value for {key!r} is not an array "
                        f"({type(value).__name__})") from e
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{where}: the value for {key!r} has dtype {arr.dtype}; expected a "
                        "numeric array")
    want = tuple(leaf.shape)
    if arr.shape != want:
        if not interchangeable(arr.shape, want):
            return None
        arr = arr.reshape(want)
    return np.array(arr, dtype=leaf.dtype, order="C", copy=True)


def load_into(module, state_dict, strict: bool):
    """Implementation of :meth:`lucid.nn.Module.load_state_dict`."""
    from ._module import IncompatibleKeys
    cls = type(module)
    public = "lucid.models" if cls.__module__.startswith("lucid.models") else \
        "lucid.nn" if cls.__module__.startswith("lucid.nn") else cls.__module__
    where = f"{public}.{cls.__name__}.load_state_dict"
    if not isinstance(state_dict, collections.abc.Mapping):
        raise TypeError(f"{where}: expected a dict of timm key -> array (e.g. from lucid.io.load), "
                        f"got {type(state_dict).__name__}")
    entries = {k: leaf for k, leaf, _ in merged_leaves(*_template(module, False))}
    missing = [k for k in entries if k not in state_dict and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = [k for k in state_dict if k not in entries]
    if not strict and missing:  # the missing entries keep their current (initialised) values
        entries = {k: leaf for k, leaf, _ in merged_leaves(*_template(module, True))}
    loaded, misshaped = {}, []
    for k, leaf in entries.items():
        if k in state_dict:
            arr = _convert(k, state_dict[k], leaf, where)
            if arr is None:
                got = np.shape(state_dict[k])
                misshaped.append(f"{k}: expected {tuple(leaf.shape)}, got {got}")
            else:
                loaded[k] = arr
    if misshaped or (strict and (missing or unexpected)):
        raise ValueError(_report(where, missing, unexpected, misshaped))
    params, state = _template(module, False)

    def pick(k, leaf):
        if k in loaded:
            return loaded[k]
        return leaf if leaf.flags.writeable else np.array(leaf)  # stand-in -> real array

    module._hold(map_with_key(pick, params), map_with_key(pick, state))
    return IncompatibleKeys(missing, unexpected)


def _report(where, missing, unexpected, misshaped) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if misshaped:
        parts.append(f"{len(misshaped)} mis-shaped key(s): {_listing(misshaped)}")
    return f"{where}: the state dict does not match the model; " + "; ".join(parts)
