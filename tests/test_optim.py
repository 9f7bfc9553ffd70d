"""lucid.optim (kernels, update formulas, schedules, transforms, states) and lucid.metrics."""
import math

import numpy as np
import pytest

import lucid
import lucid.optim as optim
from lucid import metrics
from lucid.kernels.cpu import optim as K

DTYPES = [np.float32, np.float64]
SHAPES = [(1,), (7,), (3, 5), (2, 3, 4, 5)]


def _run(opt, params, grads_seq):
    state = opt.init(params)
    for g in grads_seq:
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
    return params, state


def _tol(dtype):
    return dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


# ---- kernels against NumPy oracles ----

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("wd", [0.0, 0.1])
@pytest.mark.parametrize("nesterov", [False, True])
def test_adam_update_kernel(shape, dtype, wd, nesterov):
    rng = np.random.default_rng(0)
    g, p, mu = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    nu = rng.random(shape).astype(dtype)
    b1, b2, eps, eps_root, bc1, bc2, scale = 0.9, 0.99, 1e-8, 1e-9, 0.19, 0.0199, -0.01
    bc1n = 1 - (1 - bc1) * b1
    outs = [np.empty(shape, dtype) for _ in range(3)]
    K.adam_update(*(a.reshape(-1) for a in (g, p, mu, nu)), b1, b2, eps, eps_root, bc1, bc2,
                  bc1n, nesterov, scale, wd, *(o.reshape(-1) for o in outs))
    g64, p64, mu64, nu64 = (a.astype(np.float64) for a in (g, p, mu, nu))
    m = b1 * mu64 + (1 - b1) * g64
    v = b2 * nu64 + (1 - b2) * g64 ** 2
    m_hat = b1 * m / bc1n + (1 - b1) * g64 / bc1 if nesterov else m / bc1
    u = scale * (m_hat / (np.sqrt(v / bc2 + eps_root) + eps) + wd * p64)
    for got, want in zip(outs, (m, v, u)):
        np.testing.assert_allclose(got, want.astype(dtype), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_kernels(shape, dtype, nesterov):
    rng = np.random.default_rng(1)
    g, p, buf = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    u = np.empty(shape, dtype)
    K.sgd_update(g.reshape(-1), p.reshape(-1), 0.01, -0.1, u.reshape(-1))
    np.testing.assert_allclose(u, -0.1 * (g + 0.01 * p), **_tol(dtype))
    buf_out, u = np.empty(shape, dtype), np.empty(shape, dtype)
    K.sgd_momentum_update(g.reshape(-1), p.reshape(-1), buf.reshape(-1), 0.9, nesterov, 0.01,
                          -0.1, buf_out.reshape(-1), u.reshape(-1))
    d = g.astype(np.float64) + 0.01 * p
    b = 0.9 * buf + d
    np.testing.assert_allclose(buf_out, b, **_tol(dtype))
    np.testing.assert_allclose(u, -0.1 * (d + 0.9 * b if nesterov else b), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [0, 1, 17, 1000])
def test_sum_squares_kernel(size, dtype):
    x = np.random.default_rng(2).standard_normal(size).astype(dtype)
    out = np.zeros(1, np.float64)
    K.sum_squares(x, out)
    np.testing.assert_allclose(out[0], np.sum(x.astype(np.float64) ** 2), rtol=1e-12)


# ---- optimizer formulas against hand-computed values ----

def test_sgd_plain():
    p = {"w": np.array([1.0, 2.0], np.float32)}
    g = {"w": np.array([0.5, -1.0], np.float32)}
    out, state = _run(optim.sgd(0.1), p, [g, g])
    np.testing.assert_allclose(out["w"], [0.9, 2.2], rtol=1e-6)
    assert state.momentum is None and state.count == 2


def test_sgd_momentum_and_nesterov():
    p = {"w": np.array([1.0], np.float64)}
    g1, g2 = {"w": np.array([1.0])}, {"w": np.array([2.0])}
    out, state = _run(optim.sgd(0.1, momentum=0.9), p, [g1, g2])
    # buf1 = 1, p1 = 1 - 0.1 = 0.9; buf2 = 0.9 + 2 = 2.9, p2 = 0.9 - 0.29 = 0.61
    np.testing.assert_allclose(out["w"], [0.61])
    np.testing.assert_allclose(state.momentum["w"], [2.9])
    out, _ = _run(optim.sgd(0.1, momentum=0.9, nesterov=True), p, [g1, g2])
    # step 1: -0.1 * (1 + 0.9 * 1) = -0.19; step 2: -0.1 * (2 + 0.9 * 2.9) = -0.461
    np.testing.assert_allclose(out["w"], [1.0 - 0.19 - 0.461])


def test_sgd_weight_decay_masked():
    p = {"w": np.ones((2, 2)), "b": np.ones(2)}
    g = {"w": np.zeros((2, 2)), "b": np.zeros(2)}
    out, _ = _run(optim.sgd(0.5, weight_decay=0.1), p, [g])
    np.testing.assert_allclose(out["w"], 1 - 0.5 * 0.1)  # coupled L2 on the 2-D weight
    np.testing.assert_allclose(out["b"], 1.0)            # bias skipped by timm's rule
    out, _ = _run(optim.sgd(0.5, weight_decay=0.1, mask=None), p, [g])
    np.testing.assert_allclose(out["b"], 1 - 0.5 * 0.1)


def _adam_oracle(p, grads, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    m = v = 0.0
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * ((m / (1 - b1 ** t)) / (math.sqrt(v / (1 - b2 ** t)) + eps) + wd * p)
    return p


def test_adam_bias_correction_three_steps():
    gs = [1.0, -2.0, 0.5]
    p0 = {"w": np.array([0.3])}
    out, state = _run(optim.adam(0.1), p0, [{"w": np.array([g])} for g in gs])
    np.testing.assert_allclose(out["w"], [_adam_oracle(0.3, gs, 0.1)], rtol=1e-12)
    # first step: bias correction makes m_hat = g and v_hat = g**2, so the step is lr * sign(g)
    first, _ = _run(optim.adam(0.1), p0, [{"w": np.array([1.0])}])
    np.testing.assert_allclose(first["w"], [0.3 - 0.1 / (1 + 1e-8)], rtol=1e-12)
    np.testing.assert_allclose(state.mu["w"], [0.1 * 0.81 * 1 - 0.2 * 0.9 + 0.05], rtol=1e-12)
    assert state.count.dtype == np.int64 and state.count.shape == () and state.count == 3


def test_adamw_decoupled_decay_with_mask():
    p = {"conv": np.full((2, 2), 2.0), "gamma": np.full(2, 2.0), "bias": np.full(2, 2.0)}
    gs = [0.5, -1.0, 0.25]
    grads = [{k: np.full_like(v, g) for k, v in p.items()} for g in gs]
    out, _ = _run(optim.adamw(0.01, weight_decay=0.1), p, grads)
    np.testing.assert_allclose(out["conv"], _adam_oracle(2.0, gs, 0.01, wd=0.1), rtol=1e-12)
    for k in ("gamma", "bias"):  # ndim <= 1: no decay
        np.testing.assert_allclose(out[k], _adam_oracle(2.0, gs, 0.01), rtol=1e-12)
    tree_mask = {"conv": False, "gamma": True, "bias": False}
    out, _ = _run(optim.adamw(0.01, weight_decay=0.1, mask=tree_mask), p, grads)
    np.testing.assert_allclose(out["gamma"], _adam_oracle(2.0, gs, 0.01, wd=0.1), rtol=1e-12)
    np.testing.assert_allclose(out["conv"], _adam_oracle(2.0, gs, 0.01), rtol=1e-12)
    out, _ = _run(optim.adamw(0.01, weight_decay=0.1, mask=None), p, grads)
    np.testing.assert_allclose(out["bias"], _adam_oracle(2.0, gs, 0.01, wd=0.1), rtol=1e-12)


def test_adamw_equals_its_chain_with_schedule():
    rng = np.random.default_rng(3)
    p = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in p.items()} for _ in range(4)]
    sched = optim.warmup_cosine_decay_schedule(0.0, 1e-2, 2, 10)
    fused, _ = _run(optim.adamw(sched, weight_decay=0.05), p, grads)
    chained, _ = _run(optim.chain(
        optim.scale_by_adam(), optim.add_decayed_weights(0.05, optim.default_weight_decay_mask),
        optim.scale_by_learning_rate(sched)), p, grads)
    for k in p:
        np.testing.assert_allclose(fused[k], chained[k], rtol=1e-12, atol=1e-15)


def test_sgd_equals_its_chain():
    rng = np.random.default_rng(4)
    p = {"w": rng.standard_normal((3, 2))}
    grads = [{"w": rng.standard_normal((3, 2))} for _ in range(3)]
    fused, _ = _run(optim.sgd(0.1, momentum=0.8, nesterov=True), p, grads)
    chained, _ = _run(optim.chain(optim.trace(0.8, nesterov=True), optim.scale(-0.1)), p, grads)
    np.testing.assert_allclose(fused["w"], chained["w"], rtol=1e-12)


def test_clip_by_global_norm():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert optim.global_norm(g) == pytest.approx(5.0)
    clip = optim.clip_by_global_norm(1.0)
    out, _ = clip.update(g, clip.init(g))
    np.testing.assert_allclose(out["a"], [0.6, 0.0])
    np.testing.assert_allclose(out["b"], [[0.8]])
    out, _ = optim.clip_by_global_norm(10.0).update(g, optim.EmptyState())
    np.testing.assert_array_equal(out["a"], g["a"])


def test_chain_clip_then_scale():
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.scale(-2.0))
    p = {"a": np.zeros(2), "b": np.zeros((1, 1))}
    out, state = _run(opt, p, [{"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}])
    np.testing.assert_allclose(out["a"], [-1.2, 0.0])
    np.testing.assert_allclose(out["b"], [[-1.6]])
    assert isinstance(state, tuple) and len(state) == 2


# ---- schedules ----

def test_warmup_cosine_decay_schedule_edges():
    s = optim.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=4, decay_steps=14,
                                           end_value=0.1)
    assert s(0) == 0.0                      # Optax: the first update uses init_value
    assert s(2) == pytest.approx(0.5)
    assert s(4) == pytest.approx(1.0)       # end of warm-up = peak
    assert s(9) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the 10 cosine steps
    assert s(14) == pytest.approx(0.1)
    assert s(1000) == pytest.approx(0.1)
    assert optim.warmup_cosine_decay_schedule(0.2, 1.0, 0, 10)(0) == pytest.approx(1.0)


def test_other_schedules():
    assert optim.constant_schedule(0.3)(123) == 0.3
    cos = optim.cosine_decay_schedule(2.0, 10, alpha=0.5)
    assert cos(0) == pytest.approx(2.0) and cos(5) == pytest.approx(1.5)
    assert cos(10) == pytest.approx(1.0) and cos(20) == pytest.approx(1.0)
    lin = optim.linear_schedule(1.0, 0.0, 4, transition_begin=2)
    assert [lin(i) for i in (0, 2, 3, 6, 9)] == pytest.approx([1.0, 1.0, 0.75, 0.0, 0.0])
    pw = optim.piecewise_constant_schedule(1.0, {3: 0.5, 6: 0.1})
    assert [pw(i) for i in (0, 2, 3, 5, 6, 99)] == pytest.approx([1, 1, 0.5, 0.5, 0.05, 0.05])
    st = optim.step_schedule(1.0, 3, gamma=0.5)
    assert [st(i) for i in (0, 2, 3, 5, 6)] == pytest.approx([1, 1, 0.5, 0.5, 0.25])


def test_schedule_drives_optimizer_steps():
    p = {"w": np.zeros(1)}
    g = {"w": np.ones(1)}
    out, _ = _run(optim.sgd(optim.piecewise_constant_schedule(1.0, {1: 0.1})), p, [g, g, g])
    np.testing.assert_allclose(out["w"], [-1.0 - 0.1 - 0.1])


# ---- None gradients, dtypes, state pytrees ----

def test_none_gradient_leaves_are_skipped():
    p = {"w": np.ones((2, 2), np.float32), "frozen": np.ones(3, np.float32),
         "steps": np.array(5), "nothing": None}
    g = {"w": np.ones((2, 2), np.float32), "frozen": None, "steps": None, "nothing": None}
    for opt in (optim.sgd(0.1, momentum=0.9, weight_decay=0.1), optim.adam(0.1),
                optim.adamw(0.1, weight_decay=0.1, mask=None),
                optim.chain(optim.clip_by_global_norm(1.0), optim.scale_by_adam(),
                            optim.scale(-0.1))):
        out, state = _run(opt, p, [g, g])
        np.testing.assert_array_equal(out["frozen"], p["frozen"])
        assert out["steps"] is p["steps"] and out["nothing"] is None
        assert not np.allclose(out["w"], 1.0)
    _, state = _run(optim.adam(0.1), p, [g])
    np.testing.assert_array_equal(state.mu["frozen"], 0.0)  # kept, not updated
    assert state.mu["steps"] is None


@pytest.mark.parametrize("grad_dtype", DTYPES)
def test_param_dtype_is_kept(grad_dtype):
    p = {"w": np.ones((2, 3), np.float32)}
    g = {"w": np.full((2, 3), 0.5, grad_dtype)}
    for opt in (optim.sgd(0.1, momentum=0.9), optim.adamw(0.1), optim.chain(
            optim.clip_by_global_norm(0.1), optim.scale_by_adam(), optim.scale(-1e-3))):
        out, state = _run(opt, p, [g])
        assert out["w"].dtype == np.float32
        assert all(leaf.dtype in (np.float32, np.int64) for leaf in lucid.tree.leaves(state))
    out, _ = _run(optim.adam(0.1), {"w": np.ones(2)}, [{"w": np.ones(2)}])
    assert out["w"].dtype == np.float64


def test_state_checkpoint_round_trip():
    p = {"w": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)}
    g = {"w": np.full((2, 2), 0.3, np.float32), "b": np.ones(2, np.float32)}
    opt = optim.adamw(optim.cosine_decay_schedule(0.1, 10))
    state = opt.init(p)
    _, state = opt.update(g, state, p)
    saved = {lucid.tree.path_str(k): np.array(v) for k, v in
             lucid.tree.flatten_with_path(state)[0]}
    restored = lucid.tree.unflatten(lucid.tree.structure(opt.init(p)), list(saved.values()))
    u1, s1 = opt.update(g, state, p)
    u2, s2 = opt.update(g, restored, p)
    np.testing.assert_array_equal(u1["w"], u2["w"])
    assert int(s2.count) == 2


def test_gradients_from_lucid_vjp():
    import lucid.numpy as lnp

    params = {"w": np.array([0.5, -1.0], np.float32), "n": np.array(3)}
    _, pullback = lucid.vjp(lambda q: lnp.exp(q["w"]), params)
    (grads,) = pullback(np.ones(2, np.float32))
    assert grads["n"] is None  # lucid gives None for the integer leaf
    out, _ = _run(optim.adamw(0.1), params, [grads])
    np.testing.assert_allclose(out["w"], params["w"] - 0.1, rtol=1e-6)
    assert out["n"] is params["n"]


# ---- bad input ----

@pytest.mark.parametrize("make, match", [
    (lambda: optim.sgd(-0.1), "learning_rate"),
    (lambda: optim.sgd(0.1, momentum=1.0), "momentum"),
    (lambda: optim.sgd(0.1, nesterov=True), "nesterov"),
    (lambda: optim.adam(0.1, b1=1.0), "b1"),
    (lambda: optim.adam(0.1, b2=-0.1), "b2"),
    (lambda: optim.adamw(0.1, eps=float("nan")), "eps"),
    (lambda: optim.adamw(0.1, weight_decay=-1.0), "weight_decay"),
    (lambda: optim.clip_by_global_norm(0.0), "max_norm"),
    (lambda: optim.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10), "decay_steps"),
    (lambda: optim.cosine_decay_schedule(1.0, 0), "decay_steps"),
    (lambda: optim.step_schedule(1.0, 0), "step_size"),
    (lambda: optim.piecewise_constant_schedule(1.0, {2: -1.0}), "scale"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_types():
    with pytest.raises(TypeError, match="learning_rate"):
        optim.adam("0.1")
    with pytest.raises(TypeError, match="nesterov"):
        optim.sgd(0.1, momentum=0.9, nesterov="yes")
    with pytest.raises(TypeError, match="chain: argument 1"):
        optim.chain(optim.scale(1.0), 3)


def test_bad_update_inputs():
    p = {"w": np.ones((2, 2), np.float32), "b": np.ones(2, np.float32)}
    opt = optim.adamw(0.1)
    state = opt.init(p)
    with pytest.raises(ValueError, match=r"adamw.*keys"):
        opt.update({"w": np.ones((2, 2))}, state, p)
    with pytest.raises(ValueError, match=r"adamw.*'b'.*shape \(3,\)"):
        opt.update({"w": np.ones((2, 2)), "b": np.ones(3)}, state, p)
    with pytest.raises(TypeError, match=r"adamw.*float32 or float64.*int64"):
        opt.update({"w": np.ones((2, 2), np.int64), "b": np.ones(2)}, state, p)
    with pytest.raises(TypeError, match="ScaleByAdamState"):
        opt.update(p, optim.sgd(0.1).init(p), p)
    with pytest.raises(ValueError, match="needs the parameters"):
        opt.update(p, state)
    other = opt.init({"w": np.ones((3, 3), np.float32), "b": np.ones(2, np.float32)})
    with pytest.raises(ValueError, match=r"state at 'w'.*shape"):
        opt.update(p, other, p)
    with pytest.raises(ValueError, match="not a float array"):
        optim.apply_updates({"n": np.array(1)}, {"n": np.array(1.0)})
    with pytest.raises(ValueError, match="mask"):
        optim.adamw(0.1, mask={"w": True}).update(p, state, p)
    nan_sched = optim.sgd(lambda step: float("nan"))
    with pytest.raises(ValueError, match="schedule returned nan"):
        nan_sched.update(p, nan_sched.init(p), p)


# ---- metrics ----

def test_accuracy_and_top_k():
    logits = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])
    labels = np.array([1, 1, 0, 1])
    assert metrics.accuracy(logits, labels) == pytest.approx(0.25)
    # last row: label 1 ties with class 0, which ranks first (lower index), so it is third
    assert metrics.top_k_accuracy(logits, labels, k=2) == pytest.approx(0.5)
    assert metrics.top_k_accuracy(logits, labels, k=3) == 1.0
    np.testing.assert_array_equal(metrics.correct_top_k(logits, labels, 2), [1, 1, 0, 0])
    onehot = np.eye(3)[labels]
    assert metrics.accuracy(logits, onehot) == pytest.approx(0.25)


def test_ties_rank_like_argmax():
    logits = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    labels = np.array([0, 1])
    assert metrics.accuracy(logits, labels) == 0.5  # argmax picks the first of equal logits
    assert metrics.top_k_accuracy(logits, labels, k=1) == 0.5
    assert metrics.top_k_accuracy(logits, labels, k=2) == 1.0


@pytest.mark.parametrize("logits, labels, k, match", [
    (np.zeros(3), np.zeros(3, int), 1, "shape \\(batch, classes\\)"),
    (np.zeros((2, 3)), np.zeros(3, int), 1, "labels of shape \\(2,\\)"),
    (np.zeros((2, 3)), np.array([0, 3]), 1, "in \\[0, 3\\)"),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), 1, "integers"),
    (np.array([[np.nan, 0.0]]), np.array([0]), 1, "NaN"),
    (np.zeros((0, 3)), np.zeros(0, int), 1, "empty"),
    (np.zeros((2, 3)), np.array([0, 1]), 4, "k must be in \\[1, 3\\]"),
])
def test_metric_errors(logits, labels, k, match):
    with pytest.raises(ValueError, match=match):
        metrics.top_k_accuracy(logits, labels, k=k)
