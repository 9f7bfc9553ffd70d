"""The converted primitives as data: shape rules, impls into given outputs, VJP rules.

Every primitive application during a forward and its ``lucid.grad`` is recorded (a spy
on ``lucid._core.evaluate``) and checked three ways:

* its shape rule, ``prim.out_avals(input avals, params)``, gives exactly the shapes and
  dtypes the eager run produced (for view primitives the impl does not even see it);
* its impl run again into outputs pre-filled with garbage (NaN) writes the same bits:
  it writes every output element (under ``lucid.jit`` outputs are reused buffers);
* it did not write into its inputs.

The forward's shape/dtype is also checked against the NumPy oracle.
"""
import numpy as np
import pytest

import lucid
import lucid.numpy as lnp
import lucid.nn.functional as F
from lucid import _core
from lucid._core import aval_of

RNG = np.random.default_rng(0)
DTYPES = [np.float32, np.float64]


def rand(shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.fixture
def spy(monkeypatch):
    calls = []
    real = _core.evaluate

    def evaluate(prim, args, params):
        out = real(prim, args, params)
        calls.append((prim, args, params, out))
        return out

    monkeypatch.setattr(_core, "evaluate", evaluate)
    return calls


def _garbage(a):
    return np.full(a.shape, np.nan if a.dtype.kind == "f" else 7, a.dtype)


def check_call(prim, args, params, out):
    outs = out if prim.multiple_results else (out,)
    got = tuple((tuple(o.shape), np.dtype(o.dtype)) for o in outs)
    rule = tuple((a.shape, np.dtype(a.dtype))
                 for a in prim.out_avals([aval_of(a) for a in args], params))
    assert rule == got, f"{prim.name}{params}: shape rule {rule}, eager {got}"
    if prim.view:
        return
    before = [None if a is None else np.array(a, copy=True) for a in args]
    again = tuple(_garbage(o) for o in outs)
    prim.impls["cpu"](*args, out=again, **params)
    for o, a in zip(outs, again):
        assert np.asarray(o).tobytes() == a.tobytes(), f"{prim.name}: not every output written"
    for a, b in zip(args, before):
        if a is not None:
            assert np.asarray(a).tobytes() == b.tobytes(), f"{prim.name} wrote into an input"


def run_checked(spy, fn, args, argnums, expected_prims):
    """fn(*args) and grad of sum(fn * w); check every primitive called; return both."""
    y = fn(*args)
    w = rand(np.shape(y), np.asarray(y).dtype)
    grads = lucid.grad(lambda *a: lnp.sum(lnp.multiply(fn(*a), w)), argnums=argnums)(*args)
    for prim, a, params, out in spy:
        check_call(prim, a, params, out)
    seen = {prim.name for prim, *_ in spy}
    assert set(expected_prims) <= seen, f"{set(expected_prims) - seen} never ran"
    grads = grads if isinstance(grads, tuple) else (grads,)
    for i, g in zip(argnums if isinstance(argnums, tuple) else (argnums,), grads):
        assert g.shape == np.shape(args[i]) and g.dtype == np.asarray(args[i]).dtype
    return y


def _case(name, fn, oracle, shapes, argnums=0, prims=None):
    return pytest.param(fn, oracle, shapes, argnums, prims or (name, name + "_bwd"), id=name)


X3 = [(4, 6, 5)]
NUMPY_CASES = [
    _case("astype", lambda a: lnp.astype(a, np.float64) if a.dtype == np.float32
          else lnp.astype(a, np.float32),
          lambda a: a.astype(np.float64 if a.dtype == np.float32 else np.float32), X3,
          prims=("astype",)),
    _case("sum", lambda a: lnp.sum(a, (0, 2)), lambda a: a.sum((0, 2)), X3),
    _case("sum", lambda a: lnp.mean(a, 1, keepdims=True), lambda a: a.mean(1, keepdims=True),
          X3),
    _case("sum", lambda a: lnp.sum(a), lambda a: a.sum(), X3),
    _case("max", lambda a: lnp.max(a, 1), lambda a: a.max(1), X3),
    _case("max", lambda a: lnp.max(a, (0, 2), keepdims=True),
          lambda a: a.max((0, 2), keepdims=True), X3),
    _case("reshape", lambda a: lnp.reshape(a, (6, -1)), lambda a: a.reshape(6, -1), X3,
          prims=("reshape",)),
    _case("transpose", lambda a: lnp.transpose(a, (2, 0, 1)),
          lambda a: a.transpose(2, 0, 1), X3, prims=("transpose",)),
    _case("broadcast_to", lambda a: lnp.broadcast_to(a, (3, 4, 6, 5)),
          lambda a: np.broadcast_to(a, (3, 4, 6, 5)), X3, prims=("broadcast_to", "sum_to_shape")),
    _case("concatenate", lambda a, b: lnp.concatenate([a, b, a], axis=1),
          lambda a, b: np.concatenate([a, b, a], 1), [(4, 6, 5), (4, 2, 5)], (0, 1),
          prims=("concatenate", "split")),
    _case("split", lambda a: lnp.split(a, [1, 4], axis=1)[1],
          lambda a: np.split(a, [1, 4], axis=1)[1], X3),
    _case("split", lambda a: lnp.split(a, [4, 1], axis=1)[0] * lnp.split(a, [4, 1], 1)[2][:, :4],
          lambda a: np.split(a, [4, 1], 1)[0] * np.split(a, [4, 1], 1)[2][:, :4], X3),
    _case("pad", lambda a: lnp.pad(a, ((1, 0), (0, 2), (1, 1)), constant_values=0.5),
          lambda a: np.pad(a, ((1, 0), (0, 2), (1, 1)), constant_values=0.5), X3),
    _case("getitem", lambda a: a[1:3, None, ::-2, 4], lambda a: a[1:3, None, ::-2, 4], X3),
    _case("getitem", lambda a: a[[0, 3, 0], ..., [1, 1, 4]],
          lambda a: a[[0, 3, 0], ..., [1, 1, 4]], X3),
    _case("getitem", lambda a: a[:, np.array([[5], [0]]), 2],
          lambda a: a[:, np.array([[5], [0]]), 2], X3),
    _case("getitem", lambda a: a[np.arange(24).reshape(4, 6) % 3 == 0],
          lambda a: a[np.arange(24).reshape(4, 6) % 3 == 0], X3),
    _case("matmul", lnp.matmul, np.matmul, [(2, 1, 3, 4), (5, 4, 2)], (0, 1),
          prims=("matmul", "matmul_bwd_a", "matmul_bwd_b")),
    _case("matmul", lnp.matmul, np.matmul, [(2, 3, 4), (4, 5)], (0, 1),
          prims=("matmul", "matmul_bwd_a", "matmul_bwd_b")),
    _case("matmul", lnp.matmul, np.matmul, [(4,), (3, 4, 2)], 1,
          prims=("matmul", "matmul_bwd_b")),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn, oracle, shapes, argnums, prims", NUMPY_CASES)
def test_numpy_primitive_rules(spy, fn, oracle, shapes, argnums, prims, dtype):
    args = [rand(s, dtype) for s in shapes]
    args[0].reshape(-1)[:3] = args[0].reshape(-1)[3]  # ties for max
    y = run_checked(spy, fn, args, argnums, prims)
    ref = oracle(*args)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    exact = oracle(*[a.astype(np.float64) for a in args])  # lucid sums in float64
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, exact, rtol=tol, atol=tol)


def _np_log_softmax(x, axis):
    x64 = x.astype(np.float64)
    m = x64.max(axis, keepdims=True)
    return x64 - m - np.log(np.exp(x64 - m).sum(axis, keepdims=True))


def _np_cross_entropy(x, t, s, reduction):
    logp = _np_log_softmax(x, 1)
    q = np.eye(x.shape[1])[t] if t.dtype.kind in "iu" else t.astype(np.float64)
    q = (1 - s) * q + s / x.shape[1]
    loss = -(q * logp).sum(1)
    out = {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]
    return np.asarray(out, x.dtype)


LABELS = RNG.integers(0, 5, 6)
PROBS = RNG.random((6, 5))
NN_CASES = [
    _case("nn.functional.linear", F.linear, lambda x, w, b: x @ w.T + b,
          [(5, 7, 16), (12, 16), (12,)], (0, 1, 2),
          prims=("nn.functional.linear", "nn.functional.linear_bwd_x",
                 "nn.functional.linear_bwd_w", "nn.functional.linear_bwd_b")),
    _case("nn.functional.linear", lambda x, w: F.linear(x, w.reshape(12, 16, 1, 1)),
          lambda x, w: x @ w.T, [(3, 16), (12, 16)], (0, 1),
          prims=("nn.functional.linear", "nn.functional.linear_bwd_x",
                 "nn.functional.linear_bwd_w")),
    _case("nn.functional.global_avg_pool", F.global_avg_pool, lambda x: x.mean((2, 3)),
          [(2, 3, 7, 9)]),
    _case("nn.functional.global_avg_pool",
          lambda x: F.global_avg_pool(x, data_format="NHWC", keepdims=True),
          lambda x: x.mean((1, 2), keepdims=True), [(2, 7, 9, 3)]),
    _case("nn.functional.adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
          lambda x: x.reshape(2, 3, 3, 2, 2, 4).mean((3, 5)), [(2, 3, 6, 8)]),
    _case("nn.functional.adaptive_avg_pool2d",
          lambda x: F.adaptive_avg_pool2d(x, (3, 2), data_format="NHWC"),
          lambda x: x.reshape(2, 3, 2, 2, 4, 3).mean((2, 4)), [(2, 6, 8, 3)]),
    _case("nn.functional.softmax", lambda x: F.softmax(x, 1),
          lambda x: np.exp(_np_log_softmax(x, 1)).astype(x.dtype), [(4, 6, 5)]),
    _case("nn.functional.softmax", F.softmax,
          lambda x: np.exp(_np_log_softmax(x, -1)).astype(x.dtype), [(4, 6, 5)]),
    _case("nn.functional.log_softmax", lambda x: F.log_softmax(x, 0),
          lambda x: _np_log_softmax(x, 0).astype(x.dtype), [(4, 6, 5)]),
    _case("nn.functional.cross_entropy", lambda x: F.cross_entropy(x, LABELS, 0.1),
          lambda x: _np_cross_entropy(x, LABELS, 0.1, "mean"), [(6, 5)]),
    _case("nn.functional.cross_entropy",
          lambda x: F.cross_entropy(x, LABELS, reduction="none"),
          lambda x: _np_cross_entropy(x, LABELS, 0.0, "none"), [(6, 5)]),
    _case("nn.functional.cross_entropy",
          lambda x, t: F.cross_entropy(x, t, 0.2, reduction="sum"),
          lambda x, t: _np_cross_entropy(x, t, 0.2, "sum"), [(6, 5), (6, 5)], (0, 1),
          prims=("nn.functional.cross_entropy", "nn.functional.cross_entropy_soft_bwd")),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn, oracle, shapes, argnums, prims", NN_CASES)
def test_nn_primitive_rules(spy, fn, oracle, shapes, argnums, prims, dtype):
    args = [rand(s, dtype) for s in shapes]
    y = run_checked(spy, fn, args, argnums, prims)
    ref = oracle(*args)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    exact = oracle(*[a.astype(np.float64) for a in args])
    tol = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, exact, rtol=tol, atol=tol)


INDEXES = [  # (index, shape of the indexed array)
    ((0, slice(None), [0, 1]), (3, 4, 5)), (([0, 1], None, [0, 1]), (3, 4, 5)),
    ((Ellipsis, [0, 1], None, [0, 1]), (3, 2, 4, 5)), ((slice(None), [0, 1], ..., [0, 1]),
                                                       (3, 4, 5)),
    ((None, [[0], [2]], slice(1, None, 2), -1), (3, 4, 5)),
    ((np.ones((3, 4), bool), 1), (3, 4, 5)), ((Ellipsis, np.array([True, False, True, False,
                                                                   True])), (3, 4, 5)),
    ((slice(None, None, -3), 2, None), (3, 4, 5)), ((), (3, 4)), ((Ellipsis,), (2,)),
    (([], slice(None)), (3, 4)), ((1, [2, 0], [[1], [3]]), (2, 3, 4)),
]


@pytest.mark.parametrize("index, shape", INDEXES, ids=str)
def test_getitem_shape_rule_follows_numpy(index, shape):
    """The shape rule alone (no data) against NumPy's indexing, incl. where the index
    arrays' broadcast shape goes (first when a slice, None or Ellipsis separates them)."""
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    from lucid.numpy._indexing import _normalize_index, getitem_p
    parts, arrays = _normalize_index(index, shape)
    (rule,) = getitem_p.out_avals([aval_of(x)] + [aval_of(a) for a in arrays], {"index": parts})
    assert rule.shape == x[index].shape
    np.testing.assert_array_equal(lnp.getitem(x, index), x[index])


def test_traced_bool_mask_is_a_clear_error_and_concrete_masks_work():
    x = rand((3, 4))
    with pytest.raises(TypeError, match="boolean mask that is a traced array.*shape would "
                                        "depend on its values"):
        lucid.grad(lambda a: lnp.sum(a[a > 0]))(x)
    g = lucid.grad(lambda a: lnp.sum(a[x > 0] ** 2))(x)  # a concrete mask
    np.testing.assert_allclose(g, np.where(x > 0, 2 * x, 0), rtol=1e-14)
    with pytest.raises(IndexError, match="getitem: boolean index of shape"):
        lnp.getitem(x, np.ones(4, bool))


def test_split_with_decreasing_indices_sums_the_overlap():
    x = rand((6, 2))
    g = lucid.grad(lambda a: sum(lnp.sum(p * (i + 1)) for i, p in
                                 enumerate(lnp.split(a, [4, 1]))))(x)
    ref = np.zeros_like(x)
    for i, sl in enumerate([slice(0, 4), slice(4, 1), slice(1, 6)]):
        ref[sl] += i + 1
    np.testing.assert_array_equal(g, ref)


# ---------------------------------------------------------------- lucid.jit vs eager

def _jit_vs_eager(fn, args, argnums):
    """jit(fn) and jit(grad) give eager's bits, on the first call and on a replay (whose
    buffers hold the previous call's values)."""
    y = np.asarray(fn(*args))
    w = rand(y.shape, y.dtype)

    def loss(*a):
        return lnp.sum(lnp.multiply(fn(*a), w))
    grad = lucid.grad(loss, argnums=argnums)
    want = grad(*args)
    jf, jg = lucid.jit(fn), lucid.jit(grad)
    for _ in range(2):
        np.testing.assert_array_equal(jf(*args), y, strict=True)
        got = jg(*args)
        for g, e in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            np.testing.assert_array_equal(g, e, strict=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn, oracle, shapes, argnums, prims", NUMPY_CASES + NN_CASES)
def test_jit_matches_eager(fn, oracle, shapes, argnums, prims, dtype):
    args = [rand(s, dtype) for s in shapes]
    args[0].reshape(-1)[:3] = args[0].reshape(-1)[3]  # ties for max
    _jit_vs_eager(fn, args, argnums)


def test_jit_traced_integer_indices_and_labels():
    x = rand((6, 5))
    idx, labels = np.array([4, 0, 4, 2]), RNG.integers(0, 5, 6)

    def f(a, i, t):
        return lnp.sum(a[i, 1:] * 2.0) + F.cross_entropy(a, t) + lnp.sum(lnp.take(a, i, axis=1))
    jf = lucid.jit(lucid.value_and_grad(f))
    for i, t in [(idx, labels), (idx[::-1].copy(), labels[::-1].copy())]:
        got, want = jf(x, i, t), lucid.value_and_grad(f)(x, i, t)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    with pytest.raises(IndexError, match="getitem"):  # traced values: checked when run
        jf(x, np.array([0, 6, 1, 1]), labels)
    with pytest.raises(ValueError, match="labels must be in"):
        jf(x, idx, np.array([0, 1, 2, 3, 4, 5]))


def test_jit_masks_concrete_work_traced_are_a_clear_error():
    x = rand((3, 4))
    np.testing.assert_array_equal(lucid.jit(lambda a: a[x > 0])(x), x[x > 0])
    with pytest.raises(TypeError, match="boolean mask that is a traced array"):
        lucid.jit(lambda a: a[a > 0])(x)
