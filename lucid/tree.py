"""Pytrees: nested dicts, lists and tuples of arrays, with ``jax.tree_util`` semantics.

A pytree node is a ``dict`` (children in sorted key order; a ``defaultdict`` too, rebuilt
with its ``default_factory``), an ``OrderedDict`` (children in insertion order), a
``list`` or a ``tuple`` (including namedtuples). ``None`` is a node with no children
(an empty subtree). Anything else is a leaf. ``is_leaf`` is offered every subtree,
``None`` included.

This is lucid's one pytree walker: the optimizers (``None`` as a leaf, through
``is_leaf``) and the state-dict helpers of ``lucid.nn`` (``key_order="insertion"``:
timm's order, the order a model builds its dicts in) use it too.

    >>> leaves, treedef = flatten({"b": [1, 2], "a": None, "c": 3})
    >>> leaves
    [1, 2, 3]
    >>> unflatten(treedef, [10, 20, 30])
    {'a': None, 'b': [10, 20], 'c': 30}
"""
from __future__ import annotations

import collections
from typing import Any, Callable

__all__ = ["PyTreeDef", "flatten", "unflatten", "leaves", "structure", "map",
           "flatten_with_path", "flatten_up_to", "path_str", "all_equal_structure"]

_builtin_map = map


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


_KEY_ORDERS = ("sorted", "insertion")


def _dict_keys(node, key_order):
    """JAX's child order: OrderedDict by insertion, other dicts by sorted key (or all by
    insertion with ``key_order="insertion"``)."""
    if key_order == "insertion" or isinstance(node, collections.OrderedDict):
        return tuple(node)
    try:
        return tuple(sorted(node))
    except TypeError as e:
        raise TypeError(f"lucid.tree: dict keys must be sortable, got {list(node)!r}") from e


def _children(node, key_order="sorted"):
    """(kind, aux, [(key, child), ...]) for a pytree node, or None for a leaf."""
    if node is None:
        return ("none", None, [])
    if isinstance(node, dict):
        keys = _dict_keys(node, key_order)
        factory = node.default_factory if isinstance(node, collections.defaultdict) else None
        return ("dict", (type(node), keys, factory), [(k, node[k]) for k in keys])
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
            cls, keys, factory = self.aux
            if issubclass(cls, collections.defaultdict):
                return cls(factory, zip(keys, built))
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


def _flatten(tree, is_leaf, key_order, path, out_leaves, out_paths):
    node = None if is_leaf is not None and is_leaf(tree) else _children(tree, key_order)
    if node is None:
        out_leaves.append(tree)
        out_paths.append(path)
        return _LEAF
    kind, aux, items = node
    children = [_flatten(c, is_leaf, key_order, path + (k,), out_leaves, out_paths)
                for k, c in items]
    return PyTreeDef(kind, aux, children)


def _walk(tree, is_leaf, key_order):
    if key_order not in _KEY_ORDERS:
        raise ValueError(f"lucid.tree: key_order must be 'sorted' or 'insertion', "
                         f"got {key_order!r}")
    leaves_, paths = [], []
    treedef = _flatten(tree, is_leaf, key_order, (), leaves_, paths)
    return leaves_, paths, treedef


def flatten(tree, is_leaf: Callable[[Any], bool] | None = None, *, key_order: str = "sorted"):
    """Flatten a pytree.

    Args:
      tree: a nested structure of dicts, lists, tuples and leaves.
      is_leaf: optional predicate, offered every subtree (``None`` included); a subtree
        for which it returns True is a leaf.
      key_order: ``"sorted"`` (JAX: plain dicts by sorted key, OrderedDict by insertion)
        or ``"insertion"`` (every dict by insertion: lucid's state-dict order).
    Returns:
      ``(leaves, treedef)``.
    """
    leaves_, _, treedef = _walk(tree, is_leaf, key_order)
    return leaves_, treedef


def flatten_with_path(tree, is_leaf=None, *, key_order: str = "sorted"):
    """Like :func:`flatten` but each leaf comes with its path (a tuple of dict keys / indices).

    Returns:
      ``([(path, leaf), ...], treedef)``. ``path_str(path)`` joins a path with ".",
      which for lucid's model parameters is the timm state-dict key.
    """
    leaves_, paths, treedef = _walk(tree, is_leaf, key_order)
    return list(zip(paths, leaves_)), treedef


def path_str(path, sep: str = ".") -> str:
    """Join a pytree path into a string key, e.g. ``("stages", 0, "gamma") -> "stages.0.gamma"``."""
    return sep.join(str(p) for p in path)


def unflatten(treedef: PyTreeDef, leaves_):
    """Rebuild a pytree from its structure and a list of leaves."""
    if not isinstance(treedef, PyTreeDef):
        raise TypeError(f"lucid.tree.unflatten: expected a PyTreeDef, got {type(treedef).__name__}")
    return treedef.unflatten(leaves_)


def leaves(tree, is_leaf=None, *, key_order: str = "sorted") -> list:
    """The leaves of a pytree, in flatten order."""
    return flatten(tree, is_leaf, key_order=key_order)[0]


def structure(tree, is_leaf=None) -> PyTreeDef:
    """The structure (PyTreeDef) of a pytree."""
    return flatten(tree, is_leaf)[1]


def map(f: Callable, tree, *rest, is_leaf=None):
    """Apply ``f`` leaf-wise over one or more pytrees, as ``jax.tree_util.tree_map``.

    Args:
      f: called as ``f(leaf, *subtrees_of_rest)``.
      tree: the first pytree; its structure is the result's.
      *rest: further pytrees that have ``tree``'s structure as a prefix: where ``tree``
        has a leaf they may hold a whole subtree, which ``f`` receives as is.
      is_leaf: as in :func:`flatten`, applied to ``tree``.
    Returns:
      a pytree shaped like ``tree`` holding the results.
    """
    leaves_, treedef = flatten(tree, is_leaf)
    others = [flatten_up_to(treedef, r, where=f"lucid.tree.map: tree {i + 1}")
              for i, r in enumerate(rest)]
    return treedef.unflatten([f(*xs) for xs in zip(leaves_, *others)])


def flatten_up_to(treedef: PyTreeDef, tree, *, where: str = "lucid.tree.flatten_up_to",
                  lenient: bool = False, none_fills: bool = False) -> list:
    """The subtrees of ``tree`` at the leaf positions of ``treedef`` (JAX's
    ``treedef.flatten_up_to``): ``tree`` must have ``treedef`` as a prefix.

    Args:
      treedef: the prefix structure.
      tree: a pytree at least as deep as ``treedef``.
      where: the caller's name, for the error message.
      lenient: accept any dict for a dict node and a list for a tuple node (and back),
        matching dicts by keys and sequences by length (the optimizers' rule).
      none_fills: a ``None`` where ``treedef`` has a subtree stands for ``None`` at each
        of its leaves (a "no update" gradient).
    Returns:
      a list of ``treedef.num_leaves`` subtrees.
    Raises:
      ValueError: naming the path where the structures differ.
    """
    out: list = []
    _up_to(treedef, tree, out, (), (where, lenient, none_fills))
    return out


def _up_to(treedef, tree, out, path, opts):
    where, lenient, none_fills = opts
    if treedef.kind == "leaf":
        out.append(tree)
        return
    if tree is None and none_fills:
        out.extend([None] * treedef.num_leaves)
        return
    node = _children(tree)
    if node is None or not _same_node(treedef, node, tree, lenient):
        at = f"'{path_str(path)}'" if path else "the root"
        raise ValueError(f"{where}: at {at} expected {_describe(treedef)}, got "
                         f"{_describe_value(tree)} (the tree structure does not match)")
    if treedef.kind == "dict":
        items = zip(treedef.aux[1], treedef.children)
    else:
        items = enumerate(treedef.children)
    for k, child in items:
        _up_to(child, tree[k], out, path + (k,), opts)


def _same_node(treedef, node, tree, lenient) -> bool:
    kind, aux, _ = node
    if treedef.kind == "dict":
        return kind == "dict" and set(tree) == set(treedef.aux[1]) and (
            lenient or (aux[0], aux[2]) == (treedef.aux[0], treedef.aux[2]))
    if treedef.kind in ("list", "tuple") and lenient:
        return kind in ("list", "tuple") and len(tree) == len(treedef.children)
    return kind == treedef.kind and aux == treedef.aux and (
        kind != "tuple" or len(tree) == len(treedef.children))


def _describe(treedef) -> str:
    if treedef.kind == "dict":
        return f"a {treedef.aux[0].__name__} with keys {list(treedef.aux[1])}"
    if treedef.kind == "none":
        return "None"
    name = "list" if treedef.kind == "list" else treedef.aux.__name__
    return f"a {name} of length {len(treedef.children)}"


def _describe_value(tree) -> str:
    if isinstance(tree, dict):
        return f"a {type(tree).__name__} with keys {list(tree)}"
    if isinstance(tree, (list, tuple)):
        return f"a {type(tree).__name__} of length {len(tree)}"
    return "None" if tree is None else f"a leaf ({type(tree).__name__})"


def all_equal_structure(*trees) -> bool:
    """True when every tree has the same structure."""
    defs = [structure(t) for t in trees]
    return all(d == defs[0] for d in defs)
