"""lucid.optim on device pytrees: every optimizer and transform run for a few steps on the
CPU and on the (simulated) CUDA device from the same start give the same parameters and
states (float32 and float64), with no device->host copy except the one step-count read a
learning-rate schedule needs; the compiled step primitive ``optimizer_step`` on the
device; and the device-only optim kernels against NumPy (these also run in PTX mode)."""
import numpy as np
import pytest
from numba import cuda

import lucid
import lucid.optim as optim
from lucid.kernels.cuda import optim as KO

from _count import device_to_host_copies
from _twin import assert_close, runs_kernels

DTYPES = [np.float32, np.float64]


def _tol(dtype):
    return dict(rtol=2e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)


def _schedule():
    return optim.warmup_cosine_decay_schedule(0.0, 0.1, 1, 5)


# (name, optimizer factory, schedules evaluated per step: device->host count reads)
OPTIMIZERS = [
    ("sgd", lambda: optim.sgd(0.1), 0),
    ("sgd_momentum_wd", lambda: optim.sgd(0.1, momentum=0.9, weight_decay=0.05), 0),
    ("sgd_nesterov_schedule", lambda: optim.sgd(_schedule(), momentum=0.9, nesterov=True), 1),
    ("adam", lambda: optim.adam(1e-2), 0),
    ("adam_nesterov", lambda: optim.adam(1e-2, nesterov=True), 0),
    ("adamw_mask_none", lambda: optim.adamw(1e-2, weight_decay=0.1, mask=None), 0),
    ("adamw_nesterov_schedule", lambda: optim.adamw(_schedule(), nesterov=True), 1),
    ("chain_clip_decay_adam_schedule", lambda: optim.chain(
        optim.clip_by_global_norm(0.5), optim.add_decayed_weights(0.1),
        optim.scale_by_adam(), optim.scale_by_schedule(_schedule())), 1),
    ("chain_clip_off_trace_scale", lambda: optim.chain(
        optim.clip_by_global_norm(1e6), optim.trace(0.8, nesterov=True), optim.scale(-0.1)), 0),
    ("lr_schedule_identity", lambda: optim.chain(
        optim.identity(), optim.scale_by_learning_rate(_schedule())), 1),
]


def _params(dtype):
    rng = np.random.default_rng(0)
    return {"w": rng.standard_normal((3, 4)).astype(dtype),
            "b": rng.standard_normal(4).astype(dtype),
            "s": np.asarray(rng.standard_normal(), dtype)}   # a 0-d parameter


def _grads(params, step):
    rng = np.random.default_rng(100 + step)
    return {k: rng.standard_normal(params[k].shape).astype(params[k].dtype)
            for k in sorted(params)}   # (device_put rebuilds dicts in sorted key order)


def _run(opt, params, state, steps, put=lambda t: t):
    for step in range(steps):
        updates, state = opt.update(put(_grads(params, step)), state, params)
        params = optim.apply_updates(params, updates)
    return params, state


def _assert_trees_close(got, want, dtype):
    got_leaves, got_def = lucid.tree.flatten(got)
    want_leaves, want_def = lucid.tree.flatten(want)
    assert got_def == want_def
    for g, w in zip(got_leaves, want_leaves):
        assert isinstance(g, lucid.DeviceArray), type(g)
        host = lucid.device_get(g)
        assert host.dtype == w.dtype and host.shape == w.shape
        assert_close(host, w, **_tol(dtype))


@runs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, make, reads", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_on_device_equals_cpu(name, make, reads, dtype):
    opt, params, steps = make(), _params(dtype), 2
    want = _run(opt, params, opt.init(params), steps)
    put = lambda t: lucid.device_put(t, "cuda")   # noqa: E731
    # float32 runs a state that device_put moved; float64 one that init made on the device
    dev_params = put(params)
    state = put(opt.init(params)) if dtype == np.float32 else opt.init(dev_params)
    grads = [put(_grads(params, s)) for s in range(steps)]
    before = lucid.transfer_counts()["device_to_host"]
    with device_to_host_copies() as seen:
        got = _run(opt, dev_params, state, steps, put=lambda _, it=iter(grads): next(it))
    # a schedule reads the 0-d step count once per step; nothing else leaves the device
    assert seen == [()] * (reads * steps)
    assert lucid.transfer_counts()["device_to_host"] - before == reads * steps
    _assert_trees_close(got, want, dtype)


@runs_kernels
def test_clip_by_global_norm_clips_on_the_device_as_on_the_cpu():
    params = _params(np.float64)
    grads = _grads(params, 0)
    norm = optim.global_norm(grads)
    for max_norm in (0.25 * norm, 4.0 * norm):   # clipped, and left alone
        opt = optim.clip_by_global_norm(max_norm)
        want, _ = opt.update(grads, opt.init(params))
        with device_to_host_copies() as seen:
            got, _ = opt.update(lucid.device_put(grads, "cuda"), optim.EmptyState())
        assert seen == []
        _assert_trees_close(got, want, np.float64)
    assert optim.global_norm(lucid.device_put(grads, "cuda")) == pytest.approx(norm, rel=1e-14)


@runs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_step_primitive_on_device(dtype):
    from lucid._core import bind
    from lucid.optim._jit_step import optimizer_step_p
    opt = optim.adamw(1e-2, weight_decay=0.1, nesterov=True)
    params = _params(dtype)
    state, grads = opt.init(params), _grads(params, 0)
    trees = (grads, state, params)
    flat = [lucid.tree.flatten(t) for t in trees]
    kwargs = dict(optimizer=opt, defs=tuple(d for _, d in flat),
                  counts=tuple(len(ls) for ls, _ in flat))
    want = bind(optimizer_step_p, *[x for ls, _ in flat for x in ls], **kwargs)
    dev_leaves = lucid.device_put([x for ls, _ in flat for x in ls], "cuda")
    with device_to_host_copies() as seen:
        got = bind(optimizer_step_p, *dev_leaves, **kwargs)
    assert seen == []
    assert len(got) == len(want)
    _assert_trees_close(list(got), list(want), dtype)


@runs_kernels
@pytest.mark.parametrize("name, make, reads", [OPTIMIZERS[2], OPTIMIZERS[5]],
                         ids=[OPTIMIZERS[2][0], OPTIMIZERS[5][0]])
def test_jit_compiled_step_on_device_equals_cpu(name, make, reads):
    from lucid.optim._jit_step import optimizer_step
    opt, params = make(), _params(np.float32)
    step = lucid.jit(lambda g, s, p: optimizer_step(opt, g, s, p))
    want, got = (params, opt.init(params)), lucid.device_put((params, opt.init(params)), "cuda")
    for i in range(2):
        want = step(_grads(params, i), want[1], want[0])
        grads = lucid.device_put(_grads(params, i), "cuda")
        with device_to_host_copies() as seen:
            got = step(grads, got[1], got[0])
        assert seen == [()] * reads   # a schedule's step-count read, nothing else
    _assert_trees_close(got, want, np.float32)


@runs_kernels
def test_mixed_devices_raise_a_clear_error():
    params = _params(np.float32)
    opt = optim.adam(1e-2)
    dev_params = lucid.device_put(params, "cuda")
    with pytest.raises(ValueError, match="update lives on cuda:0 but the parameter/state on cpu"):
        opt.update(lucid.device_put(_grads(params, 0), "cuda"), opt.init(params), params)
    with pytest.raises(ValueError, match="parameter/update lives on cuda:0 but the optimizer st"):
        opt.update(lucid.device_put(_grads(params, 0), "cuda"), opt.init(params), dev_params)
    with pytest.raises(ValueError, match="update lives on cpu but the step count on cuda:0"):
        state = opt.init(params)
        opt.update(_grads(params, 0), state._replace(count=lucid.device_put(state.count)), params)
    with pytest.raises(ValueError, match="on one device"):
        optim.apply_updates(dev_params, _grads(params, 0))


@runs_kernels
def test_none_gradient_leaf_keeps_its_parameter_and_state_on_the_device():
    params = _params(np.float64)
    grads = dict(_grads(params, 0), b=None)
    opt = optim.adamw(1e-2, weight_decay=0.1, mask=None)
    want = _run_once(opt, params, grads)
    got = _run_once(opt, *lucid.device_put((params, grads), "cuda"))
    _assert_trees_close(got, want, np.float64)


def _run_once(opt, params, grads):
    updates, state = opt.update(grads, opt.init(params), params)
    assert updates["b"] is None
    return optim.apply_updates(params, updates), state


# ---------------------------------------------------------- device-only kernels vs NumPy

def _dev(*arrays):
    return [cuda.to_device(np.ascontiguousarray(a)) for a in arrays]


@pytest.mark.parametrize("dtype", DTYPES)
def test_device_only_optim_kernels(dtype):
    rng = np.random.default_rng(3)
    u, p = (rng.standard_normal(13).astype(dtype) for _ in range(2))
    du, dp, out = _dev(u, p, np.zeros(13, dtype))
    KO.scale(du, dtype(-0.3), out)
    assert_close(out.copy_to_host(), u * dtype(-0.3), rtol=0, atol=0)
    KO.add_scaled(du, dp, dtype(0.05), out)
    assert_close(out.copy_to_host(), u + 0.05 * p, **_tol(dtype))
    sums, norm = _dev(np.array([4.0, 0.0, 5.0]), np.zeros(1))
    KO.norm_of_sums(sums, norm)
    assert_close(norm.copy_to_host(), [3.0], rtol=0, atol=0)
    for bound in (2.0, 4.0):   # clipped (norm 3 >= 2), kept (3 < 4)
        norm_t = _dev(np.array([3.0], dtype))[0]
        KO.clip(du, norm, norm_t, bound, dtype(bound), out)
        want = (u / dtype(3.0)) * dtype(bound) if bound < 3.0 else u
        assert_close(out.copy_to_host(), want, rtol=0, atol=0)
    count, nxt = _dev(np.array(6, np.int64), np.zeros((), np.int64))
    KO.increment(count, nxt)
    assert_close(nxt.copy_to_host(), 7, rtol=0, atol=0)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update_counted_equals_cpu_adam_update(dtype, nesterov):
    from lucid.kernels.cpu import optim as cpu
    rng = np.random.default_rng(4)
    g, p, mu = (rng.standard_normal(11).astype(dtype) for _ in range(3))
    nu = np.abs(rng.standard_normal(11)).astype(dtype)
    t, b1, b2 = 3, 0.9, 0.999                  # count 2: the third update
    outs = [np.zeros(11, dtype) for _ in range(3)]
    cpu.adam_update(g, p, mu, nu, b1, b2, 1e-8, 0.0, 1 - b1 ** t, 1 - b2 ** t, 1 - b1 ** (t + 1),
                    nesterov, -1e-3, 0.05, *outs)
    dev = _dev(g, p, mu, nu, np.array(t - 1, np.int64), *(np.zeros(11, dtype),) * 3)
    KO.adam_update_counted(*dev[:5], b1, b2, 1e-8, 0.0, nesterov, -1e-3, 0.05, *dev[5:])
    for d, want in zip(dev[5:], outs):
        assert_close(d.copy_to_host(), want, **_tol(dtype))
