"""jax.tree_util semantics of lucid.tree (issue 10, section 5) and the one-walker rule:
the optimizers and the state-dict helpers go through lucid.tree, with their orders kept
(checkpoint compatibility)."""
from collections import OrderedDict, defaultdict, namedtuple

import numpy as np
import pytest

import lucid.optim as O
from lucid import tree
from lucid.nn._tree_util import map_with_key, named_leaves
from lucid.optim._base import flatten_none, flatten_up_to

Point = namedtuple("Point", "x y")


def test_ordered_dict_keeps_insertion_order():
    od = OrderedDict([("z", 1), ("a", 2), ("m", 3)])
    leaves, treedef = tree.flatten(od)
    assert leaves == [1, 2, 3]                       # JAX: OrderedDict in insertion order
    assert list(tree.unflatten(treedef, [4, 5, 6]).items()) == [("z", 4), ("a", 5), ("m", 6)]
    assert tree.leaves({"z": 1, "a": 2, "m": 3}) == [2, 3, 1]   # plain dict: sorted
    assert tree.structure(od) != tree.structure(OrderedDict([("a", 2), ("z", 1), ("m", 3)]))


def test_defaultdict_is_a_node_rebuilt_with_its_factory():
    dd = defaultdict(list, {"b": 1, "a": 2})
    leaves, treedef = tree.flatten(dd)
    assert leaves == [2, 1]                          # JAX: defaultdict keys sorted
    out = tree.map(lambda x: x * 10, dd)
    assert type(out) is defaultdict and out.default_factory is list
    assert dict(out) == {"a": 20, "b": 10}
    out["new"].append(1)                             # the factory survives the round trip
    assert tree.structure(dd) != tree.structure(defaultdict(dict, {"b": 1, "a": 2}))


def test_is_leaf_is_offered_none():
    seen = []
    leaves = tree.leaves({"a": None, "b": [1, None]}, is_leaf=lambda x: seen.append(x) or x is None)
    assert leaves == [None, 1, None]
    assert None in seen
    assert tree.leaves({"a": None, "b": [1, None]}) == [1]


def test_map_accepts_later_trees_with_the_first_as_prefix():
    first = {"a": 1, "b": [2, 3]}
    second = {"a": {"deep": np.ones(2)}, "b": [(4, 5), None]}
    got = tree.map(lambda x, y: (x, y), first, second)
    assert got["a"][1] is second["a"] and got["b"][0] == (2, (4, 5)) and got["b"][1] == (3, None)
    with pytest.raises(ValueError, match=r"tree 1: at 'b' expected a list of length 2"):
        tree.map(lambda x, y: x, first, {"a": 1, "b": [1]})
    with pytest.raises(ValueError, match=r"at the root expected a dict with keys"):
        tree.map(lambda x, y: x, first, [1, 2])
    with pytest.raises(ValueError, match="structure"):
        tree.map(lambda x, y: x, (1, 2), Point(1, 2))   # a namedtuple is another node type
    with pytest.raises(ValueError, match="expected None"):
        tree.map(lambda x, y: x, {"a": None, "b": 1}, {"a": 3, "b": 1})


def test_plain_dict_orders_are_unchanged_for_checkpoints():
    """lucid.checkpoint stores optimizer leaves as opt/<i> in lucid.tree order (sorted keys)
    and state dicts in insertion (timm) order: both must stay what they were."""
    params = {"stem": {"weight": np.ones((2, 2)), "bias": np.ones(2)},
              "head": {"weight": np.ones((1, 2)), "bias": np.ones(1)},
              "scale": np.ones(())}
    keys = [tree.path_str(p) for p, _ in tree.flatten_with_path(params)[0]]
    assert keys == ["head.bias", "head.weight", "scale", "stem.bias", "stem.weight"]
    assert [k for k, _ in named_leaves(params)] == ["stem.weight", "stem.bias", "head.weight",
                                                      "head.bias", "scale"]
    assert [k for k, _ in named_leaves(params, "m.")][0] == "m.stem.weight"
    state = O.adam(0.1).init(params)
    mu_keys = [tree.path_str(p) for p, _ in tree.flatten_with_path(state.mu)[0]]
    assert mu_keys == keys
    leaves, _, paths = flatten_none({"b": None, "a": 1})
    assert leaves == [1, None] and paths == [("a",), ("b",)]


def test_map_with_key_keeps_containers_and_order():
    t = OrderedDict([("z", (np.ones(1), None)), ("a", [np.zeros(1)])])
    out = map_with_key(lambda k, v: k, t, "p.")
    assert out == OrderedDict([("z", ("p.z.0", None)), ("a", ["p.a.0"])])


def test_optimizer_up_to_rule_none_fills_and_errors():
    _, treedef, _ = flatten_none({"a": {"x": 1, "y": 2}, "b": 3})
    assert flatten_up_to(treedef, {"a": None, "b": 4}, "t") == [None, None, 4]
    assert flatten_up_to(treedef, {"a": {"x": 5, "y": 6}, "b": 7}, "t") == [5, 6, 7]
    with pytest.raises(ValueError, match=r"t: at 'a\.x' expected an array or None"):
        flatten_up_to(treedef, {"a": {"x": [1], "y": 6}, "b": 7}, "t")
    with pytest.raises(ValueError, match=r"t: at 'a' expected a dict with keys \['x', 'y'\]"):
        flatten_up_to(treedef, {"a": {"x": 1}, "b": 7}, "t")


def test_optimizer_over_ordered_and_default_dicts():
    params = OrderedDict([("w", np.ones((2, 2), np.float32)), ("b", np.zeros(2, np.float32))])
    grads = OrderedDict([("w", np.full((2, 2), 0.5, np.float32)), ("b", np.ones(2, np.float32))])
    opt = O.sgd(0.1)
    updates, _ = opt.update(grads, opt.init(params), params)
    assert type(updates) is OrderedDict and list(updates) == ["w", "b"]
    np.testing.assert_allclose(O.apply_updates(params, updates)["b"], -0.1)
    dd = defaultdict(dict, params)
    updates, _ = opt.update(defaultdict(dict, grads), opt.init(dd), dd)
    assert type(updates) is defaultdict
