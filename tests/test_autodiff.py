"""lucid.grad / value_and_grad / vjp semantics (JAX's), and the Tracer's operators."""
from collections import namedtuple

import numpy as np
import pytest

import lucid
import lucid.numpy as lnp
from gradcheck import check_vjp


def rand(shape, seed=0):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape))


def sq(x):
    return lnp.sum(lnp.square(x))


# ---------------------------------------------------------------- argnums
def test_grad_default_argnum_is_zero():
    x, y = rand(3), rand(3, 1)
    np.testing.assert_allclose(lucid.grad(lambda a, b: lnp.sum(a * b))(x, y), y)


def test_argnums_tuple_and_negative():
    x, y = rand(3), rand(3, 1)
    f = lambda a, b: lnp.sum(a * a * b)  # noqa: E731
    gx, gy = lucid.grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, 2 * x * y)
    np.testing.assert_allclose(gy, x * x)
    np.testing.assert_allclose(lucid.grad(f, argnums=-1)(x, y), x * x)
    (g,) = lucid.grad(f, argnums=(-2,))(x, y)
    np.testing.assert_allclose(g, 2 * x * y)


def test_value_and_grad():
    x = rand((2, 3))
    value, g = lucid.value_and_grad(sq)(x)
    assert isinstance(value, np.ndarray) and value.shape == ()
    np.testing.assert_allclose(value, np.sum(x * x))
    np.testing.assert_allclose(g, 2 * x)


def test_has_aux_returns_aux_unboxed():
    def f(x):
        y = lnp.exp(x)
        return lnp.sum(y), {"y": y, "note": "hi", "n": 3}
    x = rand(4)
    g, aux = lucid.grad(f, has_aux=True)(x)
    np.testing.assert_allclose(g, np.exp(x))
    assert type(aux["y"]) is np.ndarray and aux["note"] == "hi" and aux["n"] == 3
    np.testing.assert_allclose(aux["y"], np.exp(x))
    (value, aux2), g2 = lucid.value_and_grad(f, has_aux=True)(x)
    np.testing.assert_allclose(value, np.exp(x).sum())
    assert type(aux2["y"]) is np.ndarray


def test_has_aux_requires_a_pair():
    with pytest.raises(TypeError, match="has_aux=True"):
        lucid.grad(lambda x: lnp.sum(x), has_aux=True)(rand(3))


# ---------------------------------------------------------------- pytrees
Pair = namedtuple("Pair", ["w", "b"])


def test_pytree_params_get_grads_of_identical_structure():
    params = {"layers": [Pair(rand((3, 2), 1), rand(2, 2)), Pair(rand((2, 1), 3), rand(1, 4))],
              "scale": (rand((), 5),), "skip": None}

    def loss(p, x):
        for layer in p["layers"]:
            x = lnp.tanh(x @ layer.w + layer.b)
        return lnp.sum(x * p["scale"][0])
    x = rand((5, 3), 6)
    grads = lucid.grad(loss)(params, x)
    assert lucid.tree.structure(grads) == lucid.tree.structure(params)
    assert isinstance(grads["layers"][0], Pair) and grads["skip"] is None
    for g, p in zip(lucid.tree.leaves(grads), lucid.tree.leaves(params)):
        assert g.shape == p.shape and g.dtype == p.dtype
    check_vjp(lambda w0: loss({**params, "layers": [Pair(w0, params["layers"][0].b),
                                                    params["layers"][1]]}, x),
              [params["layers"][0].w])


def test_non_differentiable_leaves_get_none():
    params = {"w": rand(3), "idx": np.arange(3), "key": lucid.random.key(0), "s": 2.0,
              "nothing": None, "f32": rand(3).astype(np.float32)}

    def f(p):
        return lnp.sum(p["w"] * p["s"] * lnp.astype(p["f32"], np.float64)) + float(p["idx"][0])
    g = lucid.grad(f)(params)
    assert g["idx"] is None and g["key"] is None and g["nothing"] is None
    np.testing.assert_allclose(g["w"], 2.0 * params["f32"], rtol=1e-7)
    assert g["f32"].dtype == np.float32
    # a Python float leaf is differentiable, as in JAX (a float32 0-d gradient)
    assert g["s"].shape == () and g["s"].dtype == np.float32
    np.testing.assert_allclose(g["s"], np.sum(params["w"] * params["f32"]), rtol=1e-6)


def test_value_used_twice_accumulates():
    x = rand(4)
    g = lucid.grad(lambda a: lnp.sum(a * a + lnp.exp(a) + a))(x)
    np.testing.assert_allclose(g, 2 * x + np.exp(x) + 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_big_cotangents_accumulate_in_the_parallel_kernel(dtype):
    # Over _buffers.MIN_BYTES the sum of two cotangents runs in the add kernel into a
    # pooled buffer; the pooled buffer must not be handed out again while the result lives.
    x = np.random.default_rng(0).standard_normal((1200, 1100)).astype(dtype)
    f = lambda x: lnp.sum(lnp.multiply(x, x)) + lnp.sum(lnp.tanh(x)) + lnp.sum(x)
    g1 = lucid.grad(f)(x)
    g2 = lucid.grad(f)(x + 1)
    assert g1.dtype == dtype and g1 is not g2
    np.testing.assert_allclose(g1, 2 * x + (1 - np.tanh(x) ** 2) + 1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g2, 2 * (x + 1) + (1 - np.tanh(x + 1) ** 2) + 1, rtol=1e-5, atol=1e-5)


def test_unused_input_gets_zeros():
    x, y = rand(3), rand((2, 2)).astype(np.float32)
    gx, gy = lucid.grad(lambda a, b: sq(a), argnums=(0, 1))(x, y)
    assert gy.dtype == np.float32
    np.testing.assert_array_equal(gy, np.zeros((2, 2)))
    g = lucid.grad(lambda a: lnp.asarray(1.0))(x)  # output independent of the input
    np.testing.assert_array_equal(g, np.zeros(3))


# ---------------------------------------------------------------- errors
def test_non_scalar_output_is_a_type_error():
    with pytest.raises(TypeError, match="scalar"):
        lucid.grad(lambda a: a * 2.0)(rand(3))


def test_argnums_out_of_range_is_a_value_error():
    with pytest.raises(ValueError, match="out of range"):
        lucid.grad(sq, argnums=1)(rand(3))
    with pytest.raises(ValueError, match="out of range"):
        lucid.grad(sq, argnums=-2)(rand(3))


@pytest.mark.parametrize("argnums", [1.0, "0", None, True, (0, 1.5), ()])
def test_argnums_wrong_type_is_a_type_error(argnums):
    with pytest.raises(TypeError, match="argnums"):
        lucid.grad(sq, argnums=argnums)


@pytest.mark.parametrize("raw, name", [(np.exp, "exp"), (np.sum, "sum"), (np.asarray, ""),
                                       (np.tanh, "tanh"), (np.mean, "mean")])
def test_raw_numpy_on_a_tracer_is_a_type_error_naming_lucid_numpy(raw, name):
    with pytest.raises(TypeError, match=f"lucid.numpy.{name}"):
        lucid.grad(lambda a: lnp.sum(raw(a)))(rand(3))


def test_escaped_tracer_is_an_error():
    leaked = []

    def f(a):
        leaked.append(a)
        return sq(a)
    lucid.grad(f)(rand(3))
    with pytest.raises(RuntimeError, match="escaped"):
        lnp.exp(leaked[0])
    with pytest.raises(RuntimeError, match="escaped"):
        lucid.grad(lambda a: lnp.sum(a * leaked[0]))(rand(3))
    with pytest.raises(RuntimeError, match="escaped"):
        leaked[0] < 0.0


def test_nested_grad_is_not_implemented():
    with pytest.raises(NotImplementedError, match="nested|higher-order"):
        lucid.grad(lambda a: lnp.sum(lucid.grad(sq)(a)))(rand(3))


def test_vjp_fn_can_be_called_twice():
    x = rand((2, 3))
    out, vjp_fn = lucid.vjp(lambda a: lnp.tanh(a) * a, x)
    ct = rand((2, 3), 1)
    (g1,), (g2,) = vjp_fn(ct), vjp_fn(ct)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_allclose(g1, ct * ((1 - np.tanh(x) ** 2) * x + np.tanh(x)))


def test_vjp_with_tuple_output_and_bad_cotangent():
    x = rand(3)
    out, vjp_fn = lucid.vjp(lambda a: (lnp.exp(a), lnp.sum(a)), x)
    (g,) = vjp_fn((np.ones(3), np.asarray(2.0)))
    np.testing.assert_allclose(g, np.exp(x) + 2.0)
    with pytest.raises(ValueError, match="structure"):
        vjp_fn(np.ones(3))
    with pytest.raises(ValueError, match="shape"):
        vjp_fn((np.ones(4), np.asarray(2.0)))


def test_stop_gradient():
    x = rand(3)
    g = lucid.grad(lambda a: lnp.sum(a * lucid.stop_gradient(a)))(x)
    np.testing.assert_allclose(g, x)


# ---------------------------------------------------------------- Tracer operators
def test_ndarray_times_tracer_routes_to_lucid():
    c, x = rand(3, 1), rand(3)
    cp = np.abs(c) + 0.5  # a positive base for c ** a

    def f(a):
        out = c * a + c / a - (c - a) + (c + a) + (c @ a) + cp ** a + np.maximum(c, a)
        assert lucid.is_tracer(out)
        return lnp.sum(out)
    g = lucid.grad(f)(x)
    ref = c - c / x ** 2 + 1 + 1 + 3 * c + cp ** x * np.log(cp) + (x > c)  # c @ a: 3 times
    np.testing.assert_allclose(g, ref, rtol=1e-12)


def test_tracer_operators_and_methods_match_numpy():
    x, w = rand((2, 3)), rand((3, 12), 1)

    def f(a):
        y = (a @ w).T.reshape(2, 4, 3).transpose(0, 2, 1)  # (2, 3, 4)
        y = 2.0 - (-y) / 3.0 + abs(y) ** 2 + 1 * y
        z = y[:, 1:, ::-1].sum(axis=1) + y.mean(-1, keepdims=True).max(axis=(1, 2)).reshape(2, 1)
        return (z.min() + z.var() + y.astype(np.float32).astype(np.float64).ravel()[3]) * 1.0

    def ref(a):
        y = (a @ w).T.reshape(2, 4, 3).transpose(0, 2, 1)
        y = 2.0 - (-y) / 3.0 + abs(y) ** 2 + 1 * y
        z = y[:, 1:, ::-1].sum(axis=1) + y.mean(-1, keepdims=True).max(axis=(1, 2)).reshape(2, 1)
        return z.min() + z.var() + y.astype(np.float32).astype(np.float64).ravel()[3]
    value, _ = lucid.value_and_grad(f)(x)
    np.testing.assert_allclose(value, ref(x), rtol=1e-6)
    check_vjp(lambda a: (a @ w).T[1:, :] * a.sum() - a.reshape((6,))[2], [x])


def test_tracer_comparisons_return_bool_arrays():
    x = rand(5)
    seen = {}

    def f(a):
        seen["lt"], seen["rge"], seen["eq"] = a < 0.0, x >= a, a == a
        for k in ("lt", "rge", "eq"):  # bool arrays of the traced values (no gradient)
            assert seen[k].dtype == bool and seen[k].shape == x.shape
        picked = lnp.where(seen["lt"], 10.0, 0.0) + lnp.where(seen["rge"] & seen["eq"], 1.0, 0.0)
        return lnp.sum(lnp.where(a > 0, a, 0.0)) + lnp.sum(picked * 0.0)
    g = lucid.grad(f)(x)
    np.testing.assert_array_equal(g, (x > 0).astype(float))
    seen_out = {}
    lucid.value_and_grad(lambda a: lnp.sum(lnp.where(a < 0.5, a, 2.0 * a)))(x)
    np.testing.assert_array_equal(
        lucid.grad(lambda a: lnp.sum(lnp.where(a < 0.5, a, 2.0 * a)))(x), np.where(x < 0.5, 1.0, 2.0))


def test_tracer_iteration_and_len():
    def f(a):
        first, second = a
        assert len(a) == 2
        return lnp.sum(first * second)
    x = rand((2, 3))
    g = lucid.grad(f)(x)
    np.testing.assert_allclose(g, x[::-1])


def test_grad_ready_hook_reports_each_leaf_once_when_final():
    """The seam lucid.distributed overlaps its all-reduce with: a leaf is reported as soon
    as no node left in the backward reads it (b before a here), with its final gradient."""
    from lucid._autodiff import grad_ready_hook
    p = {"a": np.ones(3, np.float32), "b": np.full(2, 2.0, np.float32),
         "c": np.zeros(1, np.float32), "n": np.arange(2)}
    calls = []

    def f(p):
        h = lnp.sum(p["a"] * 3.0)
        return lnp.sum(p["b"] * h)

    with grad_ready_hook(lambda pos, i, g: calls.append((pos, i, g.copy()))):
        grads = lucid.grad(f)(p)
    assert [c[:2] for c in calls] == [(0, 1), (0, 0), (0, 2)]   # b, a, then untouched c
    np.testing.assert_array_equal(calls[0][2], [9.0, 9.0])     # d/db = sum(3a) = 9
    np.testing.assert_array_equal(calls[1][2], [12.0] * 3)     # d/da = 3 * sum(b) = 12
    np.testing.assert_array_equal(calls[2][2], [0.0])
    np.testing.assert_array_equal(grads["a"], calls[1][2])


def test_python_and_numpy_float_scalars_are_differentiable():
    g = lucid.grad(lambda x: x * x)(3.0)                 # JAX: 6.0 (weak float32)
    assert g.shape == () and g.dtype == np.float32 and float(g) == 6.0
    g64 = lucid.grad(lambda x: x * x * x)(np.float64(2.0))
    assert g64.dtype == np.float64 and float(g64) == 12.0


def test_output_independent_of_argument_gives_zeros_of_its_dtype():
    x32, x64 = np.ones((2, 3), np.float32), np.ones(4, np.float64)
    g = lucid.grad(lambda a, b: lnp.sum(b * 2.0), argnums=(0, 1))(x32, x64)
    assert g[0].dtype == np.float32 and g[0].shape == (2, 3) and not g[0].any()
    np.testing.assert_array_equal(g[1], np.full(4, 2.0))
    g = lucid.grad(lambda a: lnp.sum(np.ones(3, np.float32)))(x32)   # constant output
    assert g.dtype == np.float32 and g.shape == (2, 3) and not g.any()


def test_repeated_argnums_repeat_the_gradient_as_jax():
    x = np.array([1.0, 2.0])
    g = lucid.grad(lambda a, b: lnp.sum(a * a * b), argnums=(0, 0, 1))(x, x)
    np.testing.assert_array_equal(g[0], 2 * x * x)
    np.testing.assert_array_equal(g[1], g[0])
    np.testing.assert_array_equal(g[2], x * x)


@pytest.mark.parametrize("bad", [3, np.arange(3), np.array([True, False]), np.int32(2)])
def test_integer_and_bool_arguments_to_grad_raise_like_jax(bad):
    with pytest.raises(TypeError, match="integer/bool"):
        lucid.grad(lambda a: lnp.sum(lnp.asarray(a, np.float32)))(bad)


def test_concretization_inside_grad_is_an_error_not_a_silent_zero():
    x = np.array([0.5, 2.0])
    with pytest.raises(lucid.ConcretizationError):
        lucid.grad(lambda v: v[0] * bool(v[1] > 1.0))(x)
    with pytest.raises(lucid.ConcretizationError):
        lucid.grad(lambda v: lnp.sum(v) * int(v[1]))(x)
