"""Pytrees: nested dicts, lists and tuples of arrays, with JAX semantics.

A pytree node is a ``dict`` (children in sorted key order), a ``list`` or a
``tuple`` (including namedtuples). ``None`` is a node with no children (an empty
subtree). Anything else is a leaf.

    >>> leaves, treedef = flatten({"b": [1, 2], "a": None, "c": 3})
    >>> leaves
    [1, 2, 3]
    >>> unflatten(treedef, [10, 20, 30])
    {'a': None, 'b': [10, 20], 'c': 30}
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["PyTreeDef", "flatten", "unflatten", "leaves", "structure", "map",
           "flatten_with_path", "path_str", "all_equal_structure"]

_builtin_map = map


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _children(node):
    """(kind, aux, [(key, child), ...]) for a pytree node, or None for a leaf."""
    if node is None:
        return ("none", None, [])
    if isinstance(node, dict):
        try:
            keys = sorted(node)
        except TypeError as e:
            raise TypeError(f"lucid.tree: dict keys must be sortable, got {list(node)!r}") from e
        return ("dict", (type(node), tuple(keys)), [(k, node[k]) for k in keys])
    if isinstance(node, list):
        return ("list", len(node), list(enumerate(node)))
    if isinstance(node, tuple):
        return ("tuple", type(node), list(enumerate(node)))
    return None


class PyTreeDef:
    """The structure of a pytree: what ``flatten`` strips and ``unflatten`` puts back."""

    __slots__ = ("kind", "aux", "children", "num_leaves")

    def __init__(self, kind, aux, children):
        self.kind, self.aux, self.children = kind, aux, tuple(children)
        self.num_leaves = 1 if kind == "leaf" else sum(c.num_leaves for c in self.children)

    def unflatten(self, leaves):
        leaves = list(leaves)
        if len(leaves) != self.num_leaves:
            raise ValueError(f"lucid.tree.unflatten: the tree structure has {self.num_leaves} leaves, "
                             f"got {len(leaves)}")
        it = iter(leaves)
        return self._build(it)

    def _build(self, it):
        if self.kind == "leaf":
            return next(it)
        if self.kind == "none":
            return None
        built = [c._build(it) for c in self.children]
        if self.kind == "dict":
            cls, keys = self.aux
            return cls(zip(keys, built))
        if self.kind == "list":
            return built
        cls = self.aux
        return cls(*built) if _is_namedtuple_type(cls) else cls(built)

    def __eq__(self, other):
        return (isinstance(other, PyTreeDef) and self.kind == other.kind
                and self.aux == other.aux and self.children == other.children)

    def __hash__(self):
        return hash((self.kind, str(self.aux), self.children))

    def __repr__(self):
        return f"PyTreeDef({self._repr()})"

    def _repr(self):
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = [c._repr() for c in self.children]
        if self.kind == "dict":
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(self.aux[1], inner)) + "}"
        if self.kind == "list":
            return "[" + ", ".join(inner) + "]"
        return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"


def _is_namedtuple_type(cls) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


_LEAF = PyTreeDef("leaf", None, ())


def _flatten(tree, is_leaf, path, out_leaves, out_paths):
    if is_leaf is not None and tree is not None and is_leaf(tree):
        out_leaves.append(tree)
        out_paths.append(path)
        return _LEAF
    node = _children(tree)
    if node is None:
        out_leaves.append(tree)
        out_paths.append(path)
        return _LEAF
    kind, aux, items = node
    children = [_flatten(c, is_leaf, path + (k,), out_leaves, out_paths) for k, c in items]
    return PyTreeDef(kind, aux, children)


def flatten(tree, is_leaf: Callable[[Any], bool] | None = None):
    """Flatten a pytree.

    Args:
      tree: a nested structure of dicts, lists, tuples and leaves.
      is_leaf: optional predicate; a subtree for which it returns True is a leaf.
    Returns:
      ``(leaves, treedef)``.
    """
    leaves_, paths = [], []
    treedef = _flatten(tree, is_leaf, (), leaves_, paths)
    return leaves_, treedef


def flatten_with_path(tree, is_leaf=None):
    """Like :func:`flatten` but each leaf comes with its path (a tuple of dict keys / indices).

    Returns:
      ``([(path, leaf), ...], treedef)``. ``path_str(path)`` joins a path with ".",
      which for lucid's model parameters is the timm state-dict key.
    """
    leaves_, paths = [], []
    treedef = _flatten(tree, is_leaf, (), leaves_, paths)
    return list(zip(paths, leaves_)), treedef


def path_str(path, sep: str = ".") -> str:
    """Join a pytree path into a string key, e.g. ``("stages", 0, "gamma") -> "stages.0.gamma"``."""
    return sep.join(str(p) for p in path)


def unflatten(treedef: PyTreeDef, leaves_):
    """Rebuild a pytree from its structure and a list of leaves."""
    if not isinstance(treedef, PyTreeDef):
        raise TypeError(f"lucid.tree.unflatten: expected a PyTreeDef, got {type(treedef).__name__}")
    return treedef.unflatten(leaves_)


def leaves(tree, is_leaf=None) -> list:
    """The leaves of a pytree, in flatten order."""
    return flatten(tree, is_leaf)[0]


def structure(tree, is_leaf=None) -> PyTreeDef:
    """The structure (PyTreeDef) of a pytree."""
    return flatten(tree, is_leaf)[1]


def map(f: Callable, tree, *rest, is_leaf=None):
    """Apply ``f`` leaf-wise over one or more pytrees of the same structure.

    Args:
      f: called as ``f(leaf, *leaves_of_rest)``.
      tree: the first pytree; its structure is the result's.
      *rest: further pytrees whose structure must equal ``tree``'s.
    Returns:
      a pytree shaped like ``tree`` holding the results.
    """
    leaves_, treedef = flatten(tree, is_leaf)
    others = []
    for i, r in enumerate(rest):
        r_leaves, r_def = flatten(r, is_leaf)
        if r_def != treedef:
            raise ValueError(f"lucid.tree.map: tree {i + 1} has structure {r_def}, "
                             f"expected {treedef}")
        others.append(r_leaves)
    return treedef.unflatten([f(*xs) for xs in zip(leaves_, *others)])


def all_equal_structure(*trees) -> bool:
    """True when every tree has the same structure."""
    defs = [structure(t) for t in trees]
    return all(d == defs[0] for d in defs)
