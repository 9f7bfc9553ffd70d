"""lucid.jit: tracing, caching and retracing, concretization errors, effects, donation,
composition with grad, and the memory plan (values checked against eager lucid and NumPy)."""
import math
import threading

import numpy as np
import pytest

import lucid
import lucid.numpy as lnp
from lucid._plan import plan_memory

rng = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def elementwise_chain(x, y):
    z = lnp.exp(x * 0.5) * y + 1.0
    w = lnp.where(z > 1.5, z, -z)
    return lnp.tanh(w) - lnp.square(x) / (lnp.abs(y) + 2.0)


def numpy_chain(x, y):
    z = np.exp(x * 0.5) * y + 1.0
    w = np.where(z > 1.5, z, -z)
    return np.tanh(w) - np.square(x) / (np.abs(y) + 2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jit_matches_eager_bitwise_and_numpy(dtype):
    x, y = rand(5, 7, dtype=dtype), rand(7, dtype=dtype)
    out = lucid.jit(elementwise_chain)(x, y)
    assert out.dtype == dtype and out.shape == (5, 7)
    np.testing.assert_array_equal(out, elementwise_chain(x, y))   # same kernels, same order
    np.testing.assert_allclose(out, numpy_chain(x, y), rtol=2e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jit_of_vjp_matches_eager_vjp(dtype):
    x, y, ct = rand(4, 6, dtype=dtype), rand(6, dtype=dtype), rand(4, 6, dtype=dtype)

    def pullback(x, y, ct):
        _, f_vjp = lucid.vjp(elementwise_chain, x, y)
        return f_vjp(ct)

    got = lucid.jit(pullback)(x, y, ct)
    want = pullback(x, y, ct)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # and against central finite differences of the NumPy oracle, along a direction
    t = rand(4, 6, dtype=np.float64)
    eps = 1e-6
    fd = (numpy_chain(x + eps * t, y) - numpy_chain(x - eps * t, y)) / (2 * eps)
    np.testing.assert_allclose(np.sum(got[0] * t), np.sum(fd * ct), rtol=1e-3)


def test_same_signature_does_not_retrace_new_shape_dtype_or_static_does():
    traces = []

    def f(x, scale):
        traces.append(x.shape)      # a Python side effect: runs at trace time only
        return x * scale

    jf = lucid.jit(f, static_argnums=1)
    x = rand(3)
    jf(x, 2.0)
    jf(rand(3), 2.0)
    assert jf.trace_count == 1 and traces == [(3,)]
    jf(rand(4), 2.0)                           # new shape
    jf(rand(4, dtype=np.float64), 2.0)         # new dtype
    np.testing.assert_array_equal(jf(x, 3.0), x * np.float32(3.0))   # new static value
    assert jf.trace_count == 4 and len(traces) == 4


def test_python_scalar_arguments_are_weak_and_do_not_retrace():
    jf = lucid.jit(lambda x, s: x * s + s)
    x = rand(3)
    a, b = jf(x, 2.0), jf(x, 5.0)
    assert a.dtype == np.float32 and jf.trace_count == 1
    np.testing.assert_allclose(b, x * 5.0 + 5.0, rtol=1e-6)


def test_static_argument_must_be_hashable():
    jf = lucid.jit(lambda x, cfg: x, static_argnums=1)
    with pytest.raises(TypeError, match="hashable"):
        jf(rand(2), [1, 2])


def test_non_array_dynamic_argument_is_refused_with_the_fix():
    with pytest.raises(TypeError, match="static_argnums"):
        lucid.jit(lambda x, name: x)(rand(2), "relu")


@pytest.mark.parametrize("bad", [
    lambda x: x * float(x[0]),
    lambda x: x if bool(lnp.sum(x * 1.0) > 0) else -x,
    lambda x: x * math.exp(x[0]),
    lambda x: x[: int(x[0])],
])
def test_concretization_errors_under_jit(bad):
    with pytest.raises((lucid.ConcretizationError, TypeError)) as info:
        lucid.jit(bad)(rand(4))
    msg = str(info.value)
    assert "lucid" in msg and ("static" in msg or "lucid.numpy" in msg or "where" in msg)


def test_if_on_traced_value_names_where_as_the_fix():
    def f(x):
        if x[0] > 0:
            return x
        return -x
    with pytest.raises(lucid.ConcretizationError, match="lucid.numpy.where"):
        lucid.jit(f)(rand(3))


def test_grad_traps_raise_instead_of_dropping_the_gradient():
    x = np.array([0.5, 1.5])
    with pytest.raises(lucid.ConcretizationError, match="float"):
        lucid.grad(lambda v: v[0] * float(v[1]))(x)
    with pytest.raises(TypeError):
        lucid.grad(lambda v: v[0] * math.exp(v[1]))(x)
    with pytest.raises(TypeError, match="raw value"):
        lucid.grad(lambda v: lnp.exp(v.value)[0])(x)


def test_donated_arguments_are_updated_in_place():
    def step(p, g):
        return {"w": p["w"] - 0.1 * g["w"], "b": p["b"] - 0.1 * g["b"]}

    jstep = lucid.jit(step, donate_argnums=0)
    p = {"w": rand(8, 8), "b": rand(8)}
    g = {"w": rand(8, 8), "b": rand(8)}
    expected = step(p, g)
    w_buffer = p["w"]
    low = jstep.lower(p, g)
    assert len(low.executable.plan.donate) == 2
    new = jstep(p, g)
    np.testing.assert_array_equal(new["w"], expected["w"])
    np.testing.assert_array_equal(new["b"], expected["b"])
    assert np.shares_memory(new["w"], w_buffer)      # written into the donated buffer


def test_results_never_alias_between_calls():
    jf = lucid.jit(lambda x: lnp.exp(x) + 1.0)
    a = jf(np.zeros(4, np.float32))
    b = jf(np.ones(4, np.float32))
    np.testing.assert_array_equal(a, np.full(4, 2.0, np.float32))   # not overwritten by b
    assert not np.shares_memory(a, b)


def test_plan_gives_live_values_disjoint_memory():
    x, y, ct = rand(16, 32), rand(32), rand(16, 32)

    def pullback(x, y, ct):
        return lucid.vjp(elementwise_chain, x, y)[1](ct)

    low = lucid.jit(pullback).lower(x, y, ct)
    plan = low.executable.plan
    plan.check()
    assert plan.offsets and low.peak_bytes > 0
    # the arena reuses memory: smaller than every intermediate side by side
    total = sum(v.aval.nbytes for v in plan.offsets)
    assert low.peak_bytes < total


def test_plan_checker_catches_overlapping_live_values():
    low = lucid.jit(elementwise_chain).lower(rand(16, 32), rand(32))
    plan = low.executable.plan
    items = list(plan.offsets)
    live_pairs = [(a, b) for a in items for b in items if a is not b
                  and plan.live[a][0] <= plan.live[b][1] and plan.live[b][0] <= plan.live[a][1]]
    assert live_pairs
    a, b = live_pairs[0]
    plan.offsets[b] = plan.offsets[a]     # corrupt: two live values on the same bytes
    with pytest.raises(AssertionError, match="share arena bytes"):
        plan.check()


def test_lower_prints_the_program():
    text = str(lucid.jit(elementwise_chain).lower(rand(2, 3), rand(3)))
    assert text.startswith("{ lambda") and "exp" in text and "where" in text
    assert "f32[2,3]" in text


def test_grad_of_jitted_function_inlines():
    x, y, ct = rand(3, 4), rand(4), rand(3, 4)
    jf = lucid.jit(elementwise_chain)
    got = lucid.vjp(jf, x, y)[1](ct)
    want = lucid.vjp(elementwise_chain, x, y)[1](ct)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)



def _run_in_threads(work, n):
    """Run ``work(i)`` for i in range(n), each in its own thread, and wait for all."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

def test_jit_from_two_threads_gives_each_its_own_results():
    jf = lucid.jit(lambda x: lnp.tanh(x) * 2.0)
    xs = [rand(64, 64) for _ in range(8)]
    results = [None] * 8

    def work(i):
        for _ in range(20):
            results[i] = jf(xs[i])

    _run_in_threads(work, 8)
    for x, r in zip(xs, results):
        np.testing.assert_array_equal(r, lnp.tanh(x) * 2.0)   # eager lucid, same kernels


def test_vjp_from_two_threads_does_not_interfere():
    errors, out = [], [None, None]

    def work(i):
        try:
            x = np.full(3, float(i + 1))
            for _ in range(50):
                _, f_vjp = lucid.vjp(lambda v: lnp.square(v), x)
                out[i] = f_vjp(np.ones(3))[0]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    _run_in_threads(work, 2)
    assert not errors, errors
    np.testing.assert_array_equal(out[0], [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(out[1], [4.0, 4.0, 4.0])


def test_escaped_tracer_is_refused():
    kept = []
    lucid.jit(lambda x: kept.append(x) or x)(rand(2))
    with pytest.raises(RuntimeError, match="escaped"):
        lnp.exp(kept[0])


def test_fresh_model_called_from_two_threads_initialises_once():
    model = lucid.models.convnext_atto(num_classes=3)
    x = np.random.default_rng(7).standard_normal((1, 3, 32, 32)).astype(np.float32)
    outs, barrier = [None, None], threading.Barrier(2)

    def work(i):
        barrier.wait()
        outs[i] = model(x)

    _run_in_threads(work, 2)
    np.testing.assert_array_equal(outs[0], outs[1])      # one set of parameters
    np.testing.assert_array_equal(outs[0], model(x))


def test_value_and_grad_from_two_threads_no_false_nesting_error():
    errors, results = [], [None, None]
    barrier = threading.Barrier(2)

    def work(i):
        try:
            barrier.wait()
            x = np.full(4, float(i + 1))
            for _ in range(30):
                results[i] = lucid.value_and_grad(lambda v: lnp.sum(lnp.square(v)))(x)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    _run_in_threads(work, 2)
    assert not errors, errors
    np.testing.assert_allclose(results[0][1], 2.0 * np.ones(4))
    np.testing.assert_allclose(results[1][1], 4.0 * np.ones(4))


def test_donated_argument_also_passed_undonated_is_not_overwritten_early():
    def f(p, q):
        return lnp.exp(p) * 0.0 + q * 2.0     # reads q after p's buffer could be reused

    jf = lucid.jit(f, donate_argnums=0)
    x = rand(64)
    want = f(x, x)
    got = jf(x, x.copy() if False else x)
    np.testing.assert_array_equal(got, want)
