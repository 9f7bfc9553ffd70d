"""The lucid.nn Module facade: layers against NumPy oracles, binding, state dicts, errors."""
import math

import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.numpy as lnp
from lucid.nn._tree_util import named_leaves
from gradcheck import check_vjp

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def conv_oracle(x, w, b, stride, padding, groups):
    """Direct NCHW convolution in float64."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(ho):
            for j in range(wo):
                patch = xp[:, g * cg:(g + 1) * cg, i * sh:i * sh + kh, j * sw:j * sw + kw]
                out[:, oc, i, j] = np.sum(patch * w[oc], axis=(1, 2, 3))
    return out + (0 if b is None else b[None, :, None, None])


def ln_oracle(x, w, b, eps, axis):
    x = x.astype(np.float64)
    mu, var = x.mean(axis, keepdims=True), x.var(axis, keepdims=True)
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x - mu) / np.sqrt(var + eps) * w.reshape(shape) + b.reshape(shape)


def randomized(module):
    module.params = lucid.tree.map(lambda a: rand(*a.shape, dtype=a.dtype), module.params)
    return module


# ---- layers against oracles --------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cin, cout, k, stride, padding, groups", [
    (3, 4, 3, 1, 1, 1), (4, 4, (1, 5), 1, (0, 2), 4), (6, 4, 2, 2, 0, 2)])
def test_conv2d(dtype, cin, cout, k, stride, padding, groups):
    conv = randomized(nn.Conv2d(cin, cout, k, stride=stride, padding=padding, groups=groups))
    x = rand(2, cin, 7, 9, dtype=dtype)
    conv.params = lucid.tree.map(lambda a: a.astype(dtype), conv.params)
    p = conv.params
    ref = conv_oracle(x, p["weight"], p["bias"], conv.stride, conv.padding, groups)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.allclose(conv(x), ref, rtol=tol, atol=tol)
    nhwc = conv.apply(p, x.transpose(0, 2, 3, 1), data_format="NHWC")
    assert np.allclose(nhwc.transpose(0, 3, 1, 2), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_norms_activation_pool(dtype):
    x = rand(2, 5, 3, 4, dtype=dtype)
    lin = randomized(nn.Linear(4, 6))
    p = lucid.tree.map(lambda a: a.astype(dtype), lin.params)
    assert np.allclose(lin.apply(p, x), x @ p["weight"].T + p["bias"], atol=1e-5)
    ln = randomized(nn.LayerNorm(4))
    ref = ln_oracle(x, ln.params["weight"], ln.params["bias"], 1e-5, -1)
    assert np.allclose(ln(x.astype(np.float32)), ref, atol=1e-4)
    ln2 = randomized(nn.LayerNorm2d(5))
    assert ln2.eps == 1e-6
    assert np.allclose(ln2(x.astype(np.float32)),
                       ln_oracle(x, ln2.params["weight"], ln2.params["bias"], 1e-6, 1), atol=1e-4)
    erf = np.vectorize(math.erf)
    assert np.allclose(nn.GELU()(x), 0.5 * x * (1 + erf(x / math.sqrt(2))), atol=1e-6)
    assert np.allclose(nn.AdaptiveAvgPool2d(1)(x), x.mean((2, 3), keepdims=True), atol=1e-6)
    assert np.allclose(nn.AdaptiveAvgPool2d(1, flatten=True)(x), x.mean((2, 3)), atol=1e-6)
    assert np.array_equal(nn.Flatten()(x), x.reshape(2, -1))
    assert nn.Identity(3, foo=1)(x) is x


def test_batchnorm2d_eval_train_and_state():
    bn = randomized(nn.BatchNorm2d(3))
    bn.state = {"running_mean": rand(3), "running_var": np.abs(rand(3)) + 0.5,
                "num_batches_tracked": np.array(5, np.int64)}
    x = rand(4, 3, 5, 5)
    w, b = bn.params["weight"], bn.params["bias"]
    s = bn.state
    shape = (1, 3, 1, 1)
    ref = (x - s["running_mean"].reshape(shape)) / np.sqrt(s["running_var"].reshape(shape) + 1e-5)
    assert np.allclose(bn(x), ref * w.reshape(shape) + b.reshape(shape), atol=1e-5)
    y, new = bn.apply(bn.params, x, train=True)
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
    expect = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-5)
    assert np.allclose(y, expect * w.reshape(shape) + b.reshape(shape), atol=1e-4)
    assert np.allclose(new["running_mean"], 0.9 * s["running_mean"] + 0.1 * mean, atol=1e-6)
    unbiased = x.var((0, 2, 3), ddof=1)
    assert np.allclose(new["running_var"], 0.9 * s["running_var"] + 0.1 * unbiased, atol=1e-6)
    assert int(new["num_batches_tracked"]) == 6
    held = bn.state["running_mean"]
    bn.train()(x)
    assert bn.state["running_mean"] is held and np.allclose(held, new["running_mean"])
    with pytest.raises(ValueError, match="lucid.nn.BatchNorm2d: missing running statistics"):
        bn.apply(bn.params, x, state={})


def test_dropout_and_drop_path():
    x = rand(8, 4, 3, 3)
    for layer in (nn.Dropout(0.5), nn.DropPath(0.5)):
        assert layer(x) is x  # eval
        layer.train()
        with pytest.raises(TypeError, match=f"lucid.nn.{type(layer).__name__}: training .* key"):
            layer(x)
        a, b = layer(x, key=lucid.random.key(0)), layer(x, key=lucid.random.key(0))
        assert np.array_equal(a, b) and not np.array_equal(a, layer(x, key=lucid.random.key(1)))
        kept = a != 0
        assert np.allclose(a[kept], 2 * x[kept])
    per_sample = nn.DropPath(0.5).train()(x, key=lucid.random.key(3))
    assert all(np.all(s == 0) or np.allclose(s, 2 * xs) for s, xs in zip(per_sample, x))
    assert nn.Dropout(0.0).train()(x) is x


# ---- composition, binding and layouts ------------------------------------------------------
class Residual(nn.Module):
    """A user module written PyTorch-style (NCHW only)."""

    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm = nn.BatchNorm2d(dim)
        self.act = nn.GELU()

    def forward(self, x):
        assert self.ctx.data_format == "NCHW"
        return lnp.add(x, self.act(self.norm(self.conv(x))))


def test_user_module_binds_submodule_parameters():
    block = randomized(Residual(3))
    assert [k for k, _ in block.named_parameters()] == [
        "conv.weight", "conv.bias", "norm.weight", "norm.bias"]
    assert list(block.state_dict())[-3:] == ["norm.running_mean", "norm.running_var",
                                             "norm.num_batches_tracked"]
    x = rand(2, 3, 6, 6)
    p = block.params
    assert block.conv.params is p["conv"] and block.norm.state is block.state["norm"]
    y = block(x)
    assert np.allclose(y, x + block.act(block.norm(block.conv(x))), atol=1e-6)
    conv = conv_oracle(x, p["conv"]["weight"], p["conv"]["bias"], (1, 1), (1, 1), 1)
    bn = nn.BatchNorm2d(3)
    bn.params = p["norm"]
    assert np.allclose(y, x + nn.GELU()(bn(conv.astype(np.float32))), atol=1e-4)
    y_train, new_state = block.apply(p, x, state=block.state, train=True)
    assert int(new_state["norm"]["num_batches_tracked"]) == 1 and not np.allclose(y_train, y)
    nhwc = block.apply(p, x.transpose(0, 2, 3, 1), data_format="NHWC")  # converted for it
    assert np.allclose(nhwc.transpose(0, 3, 1, 2), y, atol=1e-6)


def test_sequential_keys_state_and_gradients():
    seq = randomized(nn.Sequential(nn.Conv2d(2, 4, 2, stride=2), nn.BatchNorm2d(4), nn.GELU(),
                                   nn.AdaptiveAvgPool2d(1, flatten=True), nn.Linear(4, 3)))
    assert len(seq) == 5 and isinstance(seq[1], nn.BatchNorm2d)
    assert list(seq.state_dict())[:7] == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked"]
    assert seq.num_parameters() == 2 * 4 * 4 + 4 + 8 + 12 + 3
    x = rand(3, 2, 6, 6, dtype=np.float64)
    p64 = lucid.tree.map(lambda a: a.astype(np.float64), seq.params)
    s64 = lucid.tree.map(lambda a: a.astype(np.float64) if a.dtype.kind == "f" else a, seq.state)
    leaves, treedef = lucid.tree.flatten(p64)
    check_vjp(lambda xx, *ls: seq.apply(treedef.unflatten(list(ls)), xx, state=s64, train=True)[0],
              [x, *leaves])
    _, new_state = seq.apply(p64, x, state=s64, train=True)
    assert isinstance(new_state, list) and int(new_state[1]["num_batches_tracked"]) == 1
    grads = lucid.grad(lambda p: lnp.sum(seq.apply(p, x.astype(np.float32))))(seq.params)
    assert [k for k, g in named_leaves(grads) if not np.any(g)] == []


def test_forward_and_ctx_misuse():
    class NoForward(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="define forward"):
        NoForward()(rand(1, 2))
    with pytest.raises(RuntimeError, match="only available inside forward"):
        Residual(2).ctx


def test_lazy_parameters_and_reset():
    seq = nn.Sequential(nn.Linear(1000, 1000), nn.GELU())
    assert seq.num_parameters() == 1_001_000 and seq.__dict__["_params"] is None
    seq.reset_parameters(lucid.random.key(0))
    first = seq.params[0]["weight"].copy()
    seq.reset_parameters(lucid.random.key(0))
    assert np.array_equal(first, seq.params[0]["weight"])
    assert seq.train() is seq and seq[0].training and seq.eval() is seq and not seq[1].training


def test_inception_dw_conv_mixer_and_mlp_head():
    mixer = randomized(nn.InceptionDWConv2d(16, band_kernel_size=5, branch_ratio=0.25))
    assert mixer.split_indexes == (4, 4, 4, 4)
    assert dict(mixer.named_parameters())["dwconv_w.weight"].shape == (4, 1, 1, 5)
    x = rand(2, 16, 6, 7)
    y = mixer(x)
    assert y.shape == x.shape and np.array_equal(y[:, :4], x[:, :4])  # identity channels first
    p = mixer.params["dwconv_h"]
    ref = conv_oracle(x[:, 12:], p["weight"], p["bias"], (1, 1), (2, 0), 4)
    assert np.allclose(y[:, 12:], ref, atol=1e-5)
    head = nn.MlpHead(16, 5)
    assert [k for k, _ in head.named_parameters()] == [
        "fc1.weight", "fc1.bias", "norm.weight", "norm.bias", "fc2.weight", "fc2.bias"]
    assert head.params["fc1"]["weight"].shape == (48, 16) and nn._MLPHead is nn.MlpHead
    assert head(x).shape == (2, 5)
    assert nn.MlpHead(16, 0)(x).shape == (2, 48)


# ---- state dicts ---------------------------------------------------------------------------
def test_load_state_dict_reports_and_reshapes():
    seq = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm2d(6))
    sd = {k: v.copy() for k, v in seq.state_dict().items()}
    sd["0.weight"] = rand(6, 4, 1, 1)  # a 1x1-conv shaped weight loads into a Linear
    del sd["1.num_batches_tracked"]    # optional
    target = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm2d(6))
    result = target.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert np.array_equal(target.params[0]["weight"], sd["0.weight"].reshape(6, 4))
    assert int(target.state[1]["num_batches_tracked"]) == 0
    bad = dict(sd, extra=np.zeros(1), **{"0.bias": np.zeros(5)})
    del bad["1.weight"]
    with pytest.raises(ValueError, match=r"lucid.nn.Sequential.load_state_dict: .*1 missing "
                       r"key\(s\): 1.weight; 1 unexpected key\(s\): extra; 1 mis-shaped "
                       r"key\(s\): 0.bias: expected \(6,\), got \(5,\)"):
        target.load_state_dict(bad)
    loose = dict(sd, extra=np.zeros(1))
    del loose["1.weight"]
    result = target.load_state_dict(loose, strict=False)
    assert result == (["1.weight"], ["extra"])
    with pytest.raises(TypeError, match="expected a dict"):
        target.load_state_dict([("0.weight", sd["0.weight"])])
    with pytest.raises(TypeError, match="'0.bias' has dtype <U1"):
        target.load_state_dict(dict(sd, **{"0.bias": np.array(list("abcdef"))}))


# ---- constructor validation ----------------------------------------------------------------
@pytest.mark.parametrize("build, match", [
    (lambda: nn.Conv2d(4, 6, 3, groups=4), "groups=4 must divide"),
    (lambda: nn.Conv2d(4, 6, 0), "kernel_size must be an int >= 1"),
    (lambda: nn.Conv2d(4, 6, 3, padding=-1), "padding must be an int >= 0"),
    (lambda: nn.Linear(0, 3), "in_features must be a positive int"),
    (lambda: nn.GELU("fast"), "approximate must be"),
    (lambda: nn.Dropout(1.0), r"p must be a float in \[0, 1\)"),
    (lambda: nn.AdaptiveAvgPool2d(2), "only output_size=1"),
    (lambda: nn.InceptionDWConv2d(16, band_kernel_size=4), "band_kernel_size must be odd"),
    (lambda: nn.InceptionDWConv2d(4, branch_ratio=0.125), "gives no channel per branch"),
    (lambda: nn.InceptionDWConv2d(16, branch_ratio=0.5), r"branch_ratio must be in \(0, 1/3\]"),
    (lambda: nn.MlpHead(16, 5, pool_type="max"), "pool_type must be 'avg'"),
    (lambda: nn.Sequential(nn.GELU(), "relu"), "argument 1 is str"),
])
def test_bad_constructor_arguments(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_modules_compute_in_their_parameters_dtype():
    conv = nn.Conv2d(3, 4, 3)
    x64 = rand(1, 3, 5, 5, dtype=np.float64)
    y = conv(x64)
    assert y.dtype == np.float32 and np.array_equal(y, conv(x64.astype(np.float32)))
    p64 = lucid.tree.map(lambda a: a.astype(np.float64), conv.params)
    assert conv.apply(p64, x64.astype(np.float32)).dtype == np.float64
    assert nn.Linear(3, 2)(np.ones((2, 3), np.int64)).dtype == np.float32


def test_bad_call_arguments():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="data_format must be one of"):
        conv.apply(conv.params, rand(1, 3, 5, 5), data_format="CHW")
    with pytest.raises(TypeError, match="key must be a lucid random key"):
        conv(rand(1, 3, 5, 5), key=0)
    with pytest.raises(ValueError, match="lucid.nn.functional.conv2d"):
        conv(rand(1, 2, 5, 5))
    with pytest.raises(ValueError, match="lucid.nn.InceptionDWConv2d: expected a 4-D NCHW input "
                                         "with 16 channels"):
        nn.InceptionDWConv2d(16)(rand(1, 8, 5, 5))
