"""lucid.jit on both model families: forward (eval and train), gradients, and whole training
steps over several steps equal eager lucid (same kernels: bit-identical, or within float
summation order where fusion changes it); the fusion passes on plain-op programs."""
import numpy as np
import pytest

import lucid
import lucid.numpy as lnp
import lucid.nn.functional as F
from lucid.models import convnext, inception_next
from lucid.training import TrainState, make_train_step

SMALL = dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), num_classes=5)


def family(name):
    if name == "convnext":
        return convnext, convnext.ConvNeXtConfig(**SMALL, drop_path_rate=0.1)
    return inception_next, inception_next.InceptionNeXtConfig(
        **SMALL, drop_path_rate=0.1, token_mixers=lucid.nn.InceptionDWConv2d)


@pytest.fixture(params=["convnext", "inception_next"])
def model(request):
    mod, cfg = family(request.param)
    params, state = mod.init(lucid.random.key(1), cfg)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    return mod, cfg, params, state, x


def test_forward_eval_and_train_match_eager(model):
    mod, cfg, params, state, x = model
    fwd = lucid.jit(lambda p, s, x: mod.apply(p, x, state=s, config=cfg))
    want = mod.apply(params, x, state=state, config=cfg)
    # eval: BatchNorm folded into its neighbours changes roundings (InceptionNeXt)
    np.testing.assert_allclose(fwd(params, state, x), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    key = lucid.random.key(3)
    train = lucid.jit(lambda p, s, x, k: mod.apply(p, x, state=s, train=True, key=k, config=cfg))
    got_logits, got_state = train(params, state, x, key)
    want_logits, want_state = mod.apply(params, x, state=state, train=True, key=key, config=cfg)
    np.testing.assert_array_equal(got_logits, want_logits)
    for a, b in zip(lucid.tree.leaves(got_state), lucid.tree.leaves(want_state)):
        np.testing.assert_array_equal(a, b)


def test_gradients_match_eager(model):
    mod, cfg, params, state, x = model
    y = np.array([1, 3])
    key = lucid.random.key(4)

    def loss(p, s, x, y, k):
        logits, new_s = mod.apply(p, x, state=s, train=True, key=k, config=cfg)
        return F.cross_entropy(logits, y, label_smoothing=0.1), new_s

    vg = lucid.value_and_grad(loss, has_aux=True)
    (l1, _), g1 = lucid.jit(vg)(params, state, x, y, key)
    (l2, _), g2 = vg(params, state, x, y, key)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    for (path, a), b in zip(lucid.tree.flatten_with_path(g1)[0], lucid.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7, err_msg=lucid.tree.path_str(path))


@pytest.mark.parametrize("name", ["convnext", "inception_next"])
def test_training_steps_jit_equal_eager(name):
    mod, cfg = family(name)
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((3, 4, 3, 32, 32)).astype(np.float32)
    ys = rng.integers(0, 5, (3, 4))
    opt = lucid.optim.adamw(1e-3)
    apply = lambda p, x, **kw: mod.apply(p, x, config=cfg, **kw)  # noqa: E731
    results = []
    for use_jit in (True, False):
        params, state = mod.init(lucid.random.key(2), cfg)
        ts = TrainState(params, state, opt.init(params), 0)
        step = make_train_step(apply, opt, label_smoothing=0.1, jit=use_jit)
        losses = []
        for i in range(3):
            ts, loss, _ = step(ts, xs[i], ys[i], lucid.random.key(10 + i))
            losses.append(loss)
        results.append((losses, ts))
    (lj, tj), (le, te) = results
    np.testing.assert_allclose(lj, le, rtol=1e-5)
    for a, b in zip(lucid.tree.leaves(tj.params), lucid.tree.leaves(te.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(lucid.tree.leaves(tj.state), lucid.tree.leaves(te.state)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_jit_of_a_module_reads_its_current_parameters():
    model = lucid.models.convnext_atto(num_classes=3)
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    compiled = lucid.jit(model)
    np.testing.assert_array_equal(compiled(x), model(x))
    model.params = lucid.tree.map(lambda a: a * 0.5, model.params)   # new params, no retrace
    np.testing.assert_array_equal(compiled(x), model(x))
    assert compiled._compiled.trace_count == 1


def _mlp(x, w1, b1, w2, b2, gamma):
    h = F.gelu(F.linear(x, w1, b1))
    return x + F.linear(h, w2, b2) * gamma


def test_fusion_finds_bias_gelu_and_layer_scale_residual():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 8)).astype(np.float32)
    w1, b1 = rng.standard_normal((16, 8)).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    w2, b2 = rng.standard_normal((8, 16)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    gamma = rng.standard_normal(8).astype(np.float32)
    jf = lucid.jit(_mlp)
    low = jf.lower(x, w1, b1, w2, b2, gamma)
    names = [e.prim.name for e in low.program.eqns]
    assert "nn.functional.bias_gelu" in names and "nn.functional.bias_scale_residual" in names
    assert "nn.functional.gelu" not in names and "multiply" not in names
    assert len(low.program.eqns) < len(low.traced.eqns)
    ref = x + (np.asarray(F.gelu(x @ w1.T + b1)) @ w2.T + b2) * gamma   # NumPy GEMMs
    np.testing.assert_allclose(jf(x, w1, b1, w2, b2, gamma), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jf(x, w1, b1, w2, b2, gamma), _mlp(x, w1, b1, w2, b2, gamma),
                               rtol=1e-6, atol=1e-6)


def test_fusion_reaches_the_backward_of_a_training_program():
    rng = np.random.default_rng(3)
    args = [rng.standard_normal(s).astype(np.float32) for s in [(6, 8), (16, 8), (16,), (8, 16), (8,), (8,)]]

    def loss(w1, b1, w2, b2, gamma, x):
        return lnp.sum(_mlp(x, w1, b1, w2, b2, gamma) ** 2)

    grad = lucid.grad(loss, argnums=(0, 1, 2, 3, 4))
    jg = lucid.jit(grad)
    names = [e.prim.name for e in jg.lower(*args[1:], args[0]).program.eqns]
    assert "nn.functional.bias_gelu_bwd" in names and "nn.functional.gelu_bwd" not in names
    for a, b in zip(jg(*args[1:], args[0]), grad(*args[1:], args[0])):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-5)


def test_fusion_keeps_an_intermediate_something_else_reads():
    rng = np.random.default_rng(4)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(4, 8), (8, 8), (8,)])

    def f(x, w, b):
        h = F.linear(x, w, b)
        return F.gelu(h), h        # h is an output: the bias add must stay in the linear
    outs = lucid.jit(f)(x, w, b)
    want = f(x, w, b)
    for a, c in zip(outs, want):
        np.testing.assert_array_equal(a, c)


def test_batch_norm_folds_into_neighbouring_layers_in_inference():
    mod, cfg = family("inception_next")
    params, state = mod.init(lucid.random.key(6), cfg)
    rng = np.random.default_rng(8)   # non-trivial running statistics and affine parameters
    state = lucid.tree.map(lambda a: (rng.random(a.shape) + 0.5).astype(a.dtype)
                           if a.dtype.kind == "f" else a, state)
    params = lucid.tree.map(lambda a: a + 0.1 * rng.standard_normal(a.shape).astype(a.dtype),
                            params)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    fwd = lucid.jit(lambda p, s, x: mod.apply(p, x, state=s, config=cfg))
    names = [e.prim.name for e in fwd.lower(params, state, x).program.eqns]
    traced = [e.prim.name for e in fwd.lower(params, state, x).traced.eqns]
    assert traced.count("nn.functional.batch_norm") >= 5
    # folded where the activation outweighs the weight (here: all but the last stage's)
    assert names.count("nn.functional.batch_norm") < traced.count("nn.functional.batch_norm")
    assert "fold_batch_norm" in names
    want = mod.apply(params, x, state=state, config=cfg)
    got = fwd(params, state, x)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * np.abs(want).max())


def test_training_program_recomputes_the_mlp_activation_instead_of_keeping_it():
    from lucid._passes import dce
    from lucid._fusion import fuse
    from lucid._plan import plan_memory
    mod, cfg = family("convnext")
    params, _ = mod.init(lucid.random.key(0), cfg)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = np.array([0, 1, 2, 3])

    def loss(p, x, y):
        return F.cross_entropy(mod.apply(p, x, config=cfg), y)

    jg = lucid.jit(lucid.grad(loss))
    low = jg.lower(params, x, y)
    names = [e.prim.name for e in low.program.eqns]
    assert names.count("nn.functional.bias_gelu") == 2 * 4     # forward + recomputed, 4 blocks
    kept = plan_memory(dce(fuse(dce(low.traced), fold_batch_norm=True)))
    assert low.peak_bytes < kept.arena_bytes                  # the plan got smaller
    low.executable.plan.check()
    for a, b in zip(lucid.tree.leaves(jg(params, x, y)), lucid.tree.leaves(lucid.grad(loss)(params, x, y))):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7)
