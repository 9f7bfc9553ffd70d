"""Optax edge semantics (issue 10, section 5): 0-d parameters through every transform,
``exponential_decay`` and Adam/AdamW with ``nesterov=True`` against hand-written NumPy
versions of Optax's formulas (optax/_src/schedule.py, transform.py scale_by_adam)."""
import math

import numpy as np
import pytest

import lucid.optim as O


def _params():
    return {"scale": np.array(2.0, np.float32), "w": np.arange(4, dtype=np.float32).reshape(2, 2),
            "b": np.array([0.5, -1.0], np.float32)}


def _grads(step):
    rng = np.random.default_rng(step)
    return {k: rng.standard_normal(np.shape(v)).astype(np.float32) for k, v in _params().items()}


TRANSFORMS = {
    "sgd": lambda: O.sgd(0.1),
    "sgd_momentum_wd": lambda: O.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=0.01,
                                     mask=None),
    "adam": lambda: O.adam(0.1),
    "nadam": lambda: O.adam(0.1, nesterov=True),
    "adamw_all": lambda: O.adamw(0.1, weight_decay=0.1, mask=None),
    "chain": lambda: O.chain(O.clip_by_global_norm(0.5), O.scale_by_adam(nesterov=True),
                             O.add_decayed_weights(0.1), O.trace(0.9, nesterov=True),
                             O.scale_by_schedule(O.exponential_decay(0.1, 2, 0.5)),
                             O.scale_by_learning_rate(1.0), O.scale(2.0), O.identity()),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_zero_d_parameters_through_every_transform(name):
    """np.ascontiguousarray made () into (1,): a 0-d leaf must stay 0-d in updates, states
    and new parameters, and get the same numbers as when stored as shape (1,)."""
    opt = TRANSFORMS[name]()
    params = _params()
    as_1d = dict(params, scale=params["scale"].reshape(1))
    state, state_1d = opt.init(params), opt.init(as_1d)
    for step in range(3):
        g = _grads(step)
        updates, state = opt.update(g, state, params)
        updates_1d, state_1d = opt.update(dict(g, scale=g["scale"].reshape(1)), state_1d, as_1d)
        assert updates["scale"].shape == ()
        params, as_1d = O.apply_updates(params, updates), O.apply_updates(as_1d, updates_1d)
        assert params["scale"].shape == () and params["scale"].dtype == np.float32
        np.testing.assert_array_equal(params["scale"].reshape(1), as_1d["scale"])


def _optax_exponential_decay(init, steps, rate, begin=0, staircase=False, end=None):
    def schedule(count):
        dec = count - begin
        p = dec / steps
        if staircase:
            p = np.floor(p)
        value = init if dec <= 0 else init * np.power(rate, p)
        if end is not None:
            value = (np.maximum if rate < 1 else np.minimum)(value, end)
        return float(value)
    return schedule


@pytest.mark.parametrize("kw", [
    dict(init_value=0.5, transition_steps=3, decay_rate=0.5),
    dict(init_value=0.5, transition_steps=3, decay_rate=0.5, transition_begin=4, staircase=True),
    dict(init_value=1.0, transition_steps=2, decay_rate=0.1, end_value=0.05),
    dict(init_value=1.0, transition_steps=5, decay_rate=2.0, end_value=3.0, staircase=True),
])
def test_exponential_decay_matches_optax_formula(kw):
    ours = O.exponential_decay(**kw)
    ref = _optax_exponential_decay(kw["init_value"], kw["transition_steps"], kw["decay_rate"],
                                   kw.get("transition_begin", 0), kw.get("staircase", False),
                                   kw.get("end_value"))
    for step in range(0, 30):
        assert math.isclose(ours(step), ref(step), rel_tol=1e-14), step


@pytest.mark.parametrize("kw, match", [
    (dict(transition_steps=0), "transition_steps must be >= 1"),
    (dict(decay_rate=0.0), "decay_rate must be in"),
    (dict(decay_rate=float("nan")), "decay_rate must be in"),
    (dict(init_value=float("inf")), "init_value must be in"),
    (dict(transition_begin=-1), "transition_begin must be >= 0"),
    (dict(end_value=float("nan")), "end_value must be in"),
])
def test_exponential_decay_refuses_bad_arguments(kw, match):
    args = dict(init_value=1.0, transition_steps=2, decay_rate=0.5)
    args.update(kw)
    with pytest.raises(ValueError, match="lucid.optim.exponential_decay: " + match):
        O.exponential_decay(**args)


def _optax_nadam(params, grads_seq, lr, b1, b2, eps, wd=0.0, mask=None):
    """optax.adamw(lr, b1, b2, eps, weight_decay=wd, mask, nesterov=True) in float64."""
    mu = {k: np.zeros_like(v, np.float64) for k, v in params.items()}
    nu = {k: np.zeros_like(v, np.float64) for k, v in params.items()}
    p = {k: v.astype(np.float64) for k, v in params.items()}
    for t, grads in enumerate(grads_seq, start=1):
        for k in p:
            g = grads[k].astype(np.float64)
            mu[k] = b1 * mu[k] + (1 - b1) * g
            nu[k] = b2 * nu[k] + (1 - b2) * g * g
            m_hat = b1 * (mu[k] / (1 - b1 ** (t + 1))) + (1 - b1) * (g / (1 - b1 ** t))
            v_hat = nu[k] / (1 - b2 ** t)
            u = m_hat / (np.sqrt(v_hat) + eps)
            if wd and (mask is None or mask[k]):
                u = u + wd * p[k]
            p[k] = p[k] - lr * u
    return p


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adam_nesterov_matches_optax_nadam(wd):
    params, grads = _params(), [_grads(s) for s in range(4)]
    opt = (O.adamw(0.01, b1=0.8, b2=0.95, eps=1e-6, weight_decay=wd, nesterov=True) if wd
           else O.adam(0.01, b1=0.8, b2=0.95, eps=1e-6, nesterov=True))
    state, p = opt.init(params), params
    for g in grads:
        u, state = opt.update(g, state, p)
        p = O.apply_updates(p, u)
    mask = {k: np.ndim(v) > 1 for k, v in params.items()}  # lucid's default (timm) mask
    want = _optax_nadam(params, grads, 0.01, 0.8, 0.95, 1e-6, wd, mask)
    for k in p:
        np.testing.assert_allclose(p[k], want[k], rtol=2e-6, atol=1e-7)
    plain = O.adam(0.01, b1=0.8, b2=0.95, eps=1e-6)
    u_plain, _ = plain.update(grads[0], plain.init(params), params)
    u_nest, _ = O.adam(0.01, b1=0.8, b2=0.95, eps=1e-6, nesterov=True).update(
        grads[0], plain.init(params), params)
    assert not np.allclose(u_plain["w"], u_nest["w"])  # the flag changes the step


def test_scale_by_adam_nesterov_and_bad_flag():
    params, g = _params(), _grads(0)
    tx = O.scale_by_adam(b1=0.8, b2=0.95, eps=1e-6, nesterov=True)
    u, _ = tx.update(g, tx.init(params), params)
    g64 = g["w"].astype(np.float64)
    m_hat = 0.8 * (0.2 * g64 / (1 - 0.8 ** 2)) + 0.2 * g64 / 0.2
    want = m_hat / (np.sqrt(0.05 * g64 ** 2 / 0.05) + 1e-6)
    np.testing.assert_allclose(u["w"], want, rtol=1e-6)
    with pytest.raises(TypeError, match="nesterov must be a bool"):
        O.adam(0.1, nesterov="yes")
