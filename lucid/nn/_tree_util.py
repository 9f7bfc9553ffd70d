"""Ordered walks over parameter trees, shared by the Module facade and the models.

``lucid.tree`` flattens plain dicts in sorted key order (JAX semantics). State dicts
want timm's order instead (the order the model builds its dicts in), so these helpers
flatten with ``lucid.tree``'s ``key_order="insertion"`` (the same walker: None is an
empty subtree, lists and tuples by index) and join paths with ``lucid.tree.path_str``.
:func:`merged_leaves` zips two trees (params and state) by key, which no single-tree
walk can do.
"""
from __future__ import annotations

import numpy as np

from .. import tree as _tree
from .._autodiff import Tracer


def is_array(x) -> bool:
    """True for a leaf array: a NumPy array, a NumPy scalar or a Tracer."""
    return isinstance(x, (np.ndarray, np.generic, Tracer))


def _key(prefix: str, path) -> str:
    """``prefix`` (ending in "." unless empty) joined with a path, as the old walk did."""
    return prefix + _tree.path_str(path) if path else prefix[:-1]


def named_leaves(tree, prefix: str = "") -> list:
    """``[(key, leaf), ...]`` in insertion order; keys are "."-joined paths."""
    pairs, _ = _tree.flatten_with_path(tree, key_order="insertion")
    return [(_key(prefix, path), leaf) for path, leaf in pairs]


def merged_leaves(params, state, prefix: str = "") -> list:
    """``[(key, leaf, is_param), ...]`` over params and state together, in model order.

    At every dict the params' keys come first, then the state's own keys, so a
    BatchNorm gives weight, bias, running_mean, running_var, num_batches_tracked (timm's order).
    """
    out: list = []
    _merge(params, state, prefix, out)
    return out


def _merge(p, s, prefix, out):
    if isinstance(p, dict) or isinstance(s, dict):
        p = p if isinstance(p, dict) else {}
        s = s if isinstance(s, dict) else {}
        for k in list(p) + [k for k in s if k not in p]:
            _merge(p.get(k), s.get(k), f"{prefix}{k}.", out)
    elif isinstance(p, (list, tuple)) or isinstance(s, (list, tuple)):
        p = p if isinstance(p, (list, tuple)) else []
        s = s if isinstance(s, (list, tuple)) else []
        for i in range(max(len(p), len(s))):
            _merge(p[i] if i < len(p) else None, s[i] if i < len(s) else None,
                   f"{prefix}{i}.", out)
    elif p is not None:
        out.append((prefix[:-1], p, True))
    elif s is not None:
        out.append((prefix[:-1], s, False))


def map_with_key(fn, tree, prefix: str = ""):
    """Rebuild ``tree`` with every leaf replaced by ``fn(key, leaf)`` (same containers,
    dict insertion order kept)."""
    pairs, treedef = _tree.flatten_with_path(tree, key_order="insertion")
    return treedef.unflatten([fn(_key(prefix, path), leaf) for path, leaf in pairs])


def has_leaves(tree) -> bool:
    """True when the tree holds at least one leaf."""
    return bool(_tree.leaves(tree, key_order="insertion"))


def subtree(tree, name: str):
    """The child ``name`` of a dict (by key) or a list (by index); ``{}`` when absent."""
    if isinstance(tree, dict):
        return tree.get(name, {})
    if isinstance(tree, (list, tuple)):
        i = int(name)
        return tree[i] if i < len(tree) else {}
    return {}


def unflatten_keys(flat: dict):
    """Nested dicts/lists from "."-joined keys; all-digit levels become lists (gaps -> ``{}``)."""
    root: dict = {}
    for key, value in flat.items():
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"lucid: key {key!r} nests under a leaf")
        node[parts[-1]] = value
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    node = {k: _lists(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node.get(str(i), {}) for i in range(max(int(k) for k in node) + 1)]
    return node
