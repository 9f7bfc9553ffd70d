"""Training checkpoints: params, state, optimizer state, step, key, config and data position.

A checkpoint is one ``.safetensors`` file. Pytrees are stored flat under prefixes
(``params/stages.0.blocks.0.gamma``, ``state/...``, ``opt/<index>``) and everything
that is not an array (config, step, epoch, batch position, run metadata) goes into
the safetensors metadata as JSON. The optimizer state is restored into the structure
``optimizer.init(params)`` builds, so its treedef never needs pickling.

Writes are atomic (temporary file, fsync, rename): an interrupted save leaves the
previous checkpoint readable, a failed one (disk full, read-only directory) raises an
``OSError`` naming the file and keeps it too, and temporary files of killed saves are
removed by the next save (:mod:`lucid._atomic`). Reading goes through
:func:`lucid.io.read_safetensors` (regular files only, bounded memory); a truncated,
tampered or inconsistent checkpoint raises :class:`CheckpointError` (a ValueError)
naming the file and what was wrong.
"""
from __future__ import annotations

import json
import os

import numpy as np

from . import tree
from .io import atomic_write, read_safetensors

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError"]

_FORMAT = "lucid-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not fit the run it is loaded into."""


def _c_array(leaf) -> np.ndarray:
    # not np.ascontiguousarray: it turns 0-d arrays (step counts) into shape (1,)
    return np.array(leaf, order="C", copy=True)


def _flat(prefix: str, t) -> dict[str, np.ndarray]:
    out = {}
    for path, leaf in tree.flatten_with_path(t)[0]:
        out[f"{prefix}/{tree.path_str(path)}"] = _c_array(leaf)
    return out


def save_checkpoint(path, *, params, state, opt_state, meta: dict) -> None:
    """Atomically write a training checkpoint.

    Args:
      path: the ``.safetensors`` file to write.
      params, state: the model's parameter and BatchNorm-state pytrees.
      opt_state: the optimizer state pytree (leaves stored in flatten order).
      meta: JSON-serialisable run information (config, step, epoch, batch, key, ...).
    """
    from safetensors.numpy import save as st_save

    tensors = _flat("params", params)
    tensors.update(_flat("state", state))
    for i, leaf in enumerate(tree.leaves(opt_state)):
        tensors[f"opt/{i}"] = _c_array(leaf)
    blob = st_save(tensors, metadata={"format": _FORMAT, "meta": json.dumps(meta)})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_write(path) as f:  # OSError naming path on failure; the old file stays
        f.write(blob)


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns:
      ``(flat_params, flat_state, opt_leaves, meta)``: flat dicts keyed by timm key,
      the optimizer-state leaves in flatten order, and the metadata dict.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!s} does not exist")
    try:
        arrays, header = read_safetensors(str(path))
    except (ValueError, OSError) as e:
        raise CheckpointError(f"checkpoint {path!s} is not a readable lucid checkpoint "
                              f"(truncated or not safetensors): {e}") from e
    if header.get("format") != _FORMAT:
        raise CheckpointError(f"{path!s} is a safetensors file but not a lucid training checkpoint "
                              f"(format {header.get('format')!r}); for plain weights use --weights")
    meta = _meta(path, header.get("meta"))
    split = {"params": {}, "state": {}, "opt": {}}
    for k, v in arrays.items():
        prefix, _, name = k.partition("/")
        if prefix not in split or not name:
            raise CheckpointError(f"checkpoint {path!s} has an unexpected entry {k!r}; expected "
                                  "'params/...', 'state/...' or 'opt/<index>'")
        split[prefix][name] = v
    n_opt = len(split["opt"])
    if set(split["opt"]) != {str(i) for i in range(n_opt)}:
        raise CheckpointError(f"checkpoint {path!s}: optimizer entries must be opt/0 .. "
                              f"opt/{n_opt - 1}, got {sorted(split['opt'])[:5]}")
    opt = [split["opt"][str(i)] for i in range(n_opt)]
    return split["params"], split["state"], opt, meta


_META_INTS = ("step", "epoch", "batch")


def _meta(path, text) -> dict:
    """The run metadata, checked: a JSON object with a ``config`` object and
    non-negative integer ``step``, ``epoch`` and ``batch`` where present."""
    try:
        meta = json.loads(text) if isinstance(text, str) else None
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path!s}: its metadata is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or not isinstance(meta.get("config", {}), dict):
        raise CheckpointError(f"checkpoint {path!s}: expected metadata with a 'config' object, "
                              f"got {type(meta).__name__}")
    for key in _META_INTS:
        v = meta.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise CheckpointError(f"checkpoint {path!s}: metadata {key!r} must be a "
                                  f"non-negative int, got {v!r}")
    return meta


def restore_tree(template, flat: dict, what: str):
    """Fill ``template``'s structure with arrays from ``flat`` (keys = joined paths)."""
    pairs, treedef = tree.flatten_with_path(template)
    leaves = []
    for path, leaf in pairs:
        key = tree.path_str(path)
        if key not in flat:
            raise CheckpointError(f"checkpoint is missing {what} entry {key!r}: it was written "
                                  "for a different model configuration")
        value = flat[key]
        if np.shape(value) != np.shape(leaf):
            raise CheckpointError(f"checkpoint {what} entry {key!r} has shape {np.shape(value)}, "
                                  f"the model expects {np.shape(leaf)}")
        if np.asarray(value).dtype != np.asarray(leaf).dtype:
            raise CheckpointError(f"checkpoint {what} entry {key!r} has dtype "
                                  f"{np.asarray(value).dtype}, the model expects "
                                  f"{np.asarray(leaf).dtype}")
        leaves.append(value)
    extra = sorted(set(flat) - {tree.path_str(p) for p, _ in pairs})
    if extra:
        raise CheckpointError(f"checkpoint has {what} entries the model does not have: "
                              f"{extra[:5]}: it was written for a different model configuration")
    return treedef.unflatten(leaves)


def restore_leaves(template, leaves: list, what: str):
    """Fill ``template``'s structure with ``leaves`` in flatten order (optimizer state)."""
    t_leaves, treedef = tree.flatten(template)
    if len(t_leaves) != len(leaves):
        raise CheckpointError(f"checkpoint {what} has {len(leaves)} arrays, the optimizer expects "
                              f"{len(t_leaves)}: was it written with another optimizer?")
    out = []
    for t, v in zip(t_leaves, leaves):
        if np.shape(t) != np.shape(v):
            raise CheckpointError(f"checkpoint {what} array has shape {np.shape(v)}, "
                                  f"expected {np.shape(t)}")
        out.append(np.asarray(v, dtype=np.asarray(t).dtype).reshape(np.shape(t)))
    return treedef.unflatten(out)
