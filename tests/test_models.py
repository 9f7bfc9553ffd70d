"""ConvNeXt / InceptionNeXt: configs, parameter counts, keys, train/eval, checkpoints, registry.

Numerics against timm are in test_parity.py; the models here are tiny except the
documentation's examples.
"""
import functools

import numpy as np
import pytest

import lucid
import lucid.io
import lucid.models as models
import lucid.nn as nn
import lucid.numpy as lnp
from lucid.models import convnext, inception_next
from lucid.models.inception_next import _MLPHead
from lucid.nn._spec import materialize
from lucid.nn._tree_util import named_leaves
from gradcheck import check_vjp

TINY = dict(depths=[1, 1, 1, 1], dims=[8, 12, 16, 24])
X = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)


def randomized(model, seed=0):
    """The model with every parameter replaced by N(0, 0.3^2) (timm's init hides the blocks)."""
    rng = np.random.default_rng(seed)
    model.params = lucid.tree.map(lambda a: (0.3 * rng.standard_normal(a.shape)).astype(a.dtype),
                                  model.params)
    return model


# ---- documentation examples, verbatim ---------------------------------------------------
def test_documentation_examples():
    from lucid.models import InceptionNeXt

    model = models.ConvNeXt(num_classes=1000); input_ = lucid.random.randn(1, 3, 224, 224)
    output = model(input_); print(output.shape)   # (1, 1000)
    assert output.shape == (1, 1000) and output.dtype == np.float32 and np.isfinite(output).all()
    model = models.ConvNeXt(num_classes=10, depths=[2, 2, 6, 2], dims=[64, 128, 256, 512], drop_path=0.1, layer_scale_init=1e-5)
    assert model.num_parameters() == 8_537_802
    assert model.config.drop_path_rate == 0.1 and model.config.ls_init_value == 1e-5
    model_tiny = InceptionNeXt(num_classes=1000, depths=[3, 3, 9, 3], dims=[96, 192, 384, 768])
    assert model_tiny.config.token_mixers == (nn.Identity,) * 4
    assert model_tiny.config.head_fn is _MLPHead


# ---- parameter counts and keys (shapes only, nothing allocated) -------------------------
PARAMS = {
    "convnext_atto": 3_695_520, "convnext_tiny": 28_589_128, "convnext_small": 50_223_688,
    "convnext_base": 88_591_464, "convnext_large": 197_767_336, "convnext_xlarge": 350_196_968,
    "inception_next_atto": 4_156_520, "inception_next_tiny": 28_055_680,
    "inception_next_small": 49_374_016, "inception_next_base": 86_672_136,
    # timm's counts for the other conv-MLP variants
    "convnext_femto": 5_217_784, "convnext_pico": 9_045_672, "convnext_nano": 15_593_560,
}
BUFFER_ELEMENTS = {"inception_next_atto": 4_336, "inception_next_tiny": 14_806,
                   "inception_next_small": 28_648, "inception_next_base": 38_184}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_equal_timm(name):
    model = models.create_model(name)
    assert model.num_parameters() == PARAMS[name]
    assert model.__dict__["_params"] is None  # counted from the specs, not built


@pytest.mark.parametrize("name", sorted(BUFFER_ELEMENTS))
def test_batchnorm_buffer_sizes_equal_timm(name):
    state = materialize(models.create_model(name).specs(), None, abstract=True)[1]
    assert sum(int(np.size(v)) for _, v in named_leaves(state)) == BUFFER_ELEMENTS[name]


def test_convnext_atto_state_dict_keys_and_shapes():
    p, s = materialize(convnext.specs(models.convnext_atto().config), None, abstract=True)
    keys = named_leaves(p)
    assert s == {} and len(keys) == 128
    shapes = dict(keys)
    assert [k for k, _ in keys[:5]] == ["stem.0.weight", "stem.0.bias", "stem.1.weight",
                                        "stem.1.bias", "stages.0.blocks.0.gamma"]
    assert shapes["stages.0.blocks.0.mlp.fc1.weight"].shape == (160, 40, 1, 1)
    assert shapes["stages.3.blocks.1.mlp.fc2.weight"].shape == (320, 1280, 1, 1)
    assert shapes["stages.1.downsample.1.weight"].shape == (80, 40, 2, 2)
    assert "stages.0.downsample.0.weight" not in shapes
    assert shapes["head.fc.weight"].shape == (1000, 320)


def test_convnext_tiny_uses_linear_mlp_shapes():
    cfg = models.convnext_tiny().config
    shapes = dict(named_leaves(materialize(convnext.specs(cfg), None, abstract=True)[0]))
    assert shapes["stages.2.blocks.8.mlp.fc1.weight"].shape == (1536, 384)
    assert shapes["stages.0.blocks.0.conv_dw.weight"].shape == (96, 1, 7, 7)


def test_inception_next_atto_keys_order_and_mixer_shapes():
    model = models.inception_next_atto()
    sd = model.state_dict()
    keys = list(sd)
    assert keys[:7] == ["stem.0.weight", "stem.0.bias", "stem.1.weight", "stem.1.bias",
                        "stem.1.running_mean", "stem.1.running_var", "stem.1.num_batches_tracked"]
    assert keys[-6:] == ["head.fc1.weight", "head.fc1.bias", "head.norm.weight", "head.norm.bias",
                         "head.fc2.weight", "head.fc2.bias"]
    assert sd["stages.1.blocks.1.token_mixer.dwconv_w.weight"].shape == (20, 1, 1, 9)
    assert sd["stages.1.blocks.1.token_mixer.dwconv_h.weight"].shape == (20, 1, 9, 1)
    assert sd["stages.3.blocks.0.mlp.fc1.weight"].shape == (960, 320, 1, 1)  # last stage ratio 3
    nbt = sd["stem.1.num_batches_tracked"]
    assert nbt.dtype == np.int64 and nbt.shape == () and int(nbt) == 0
    assert all(not k.endswith(("running_mean", "running_var", "tracked"))
               for k, _ in model.named_parameters())


def test_inception_next_tiny_mixer_split():
    shapes = dict(models.inception_next_tiny(num_classes=3, depths=[1, 1, 1, 1]).named_parameters())
    assert [shapes[f"stages.{i}.blocks.0.token_mixer.dwconv_hw.weight"].shape[0]
            for i in range(4)] == [12, 24, 48, 96]
    assert shapes["stages.0.blocks.0.token_mixer.dwconv_w.weight"].shape == (12, 1, 1, 11)


def test_init_follows_timm():
    cfg = convnext.ConvNeXtConfig(**TINY, num_classes=5)
    params, state = convnext.init(lucid.random.key(0), cfg)
    again, _ = convnext.init(lucid.random.key(0), cfg)
    other, _ = convnext.init(lucid.random.key(1), cfg)
    w = params["stages"][3]["blocks"][0]["mlp"]["fc1"]["weight"]
    assert np.array_equal(w, again["stages"][3]["blocks"][0]["mlp"]["fc1"]["weight"])
    assert not np.array_equal(w, other["stages"][3]["blocks"][0]["mlp"]["fc1"]["weight"])
    assert w.dtype == np.float32 and abs(w.std() - 0.02) < 0.003 and np.abs(w).max() <= 2
    block = params["stages"][0]["blocks"][0]
    assert np.all(block["gamma"] == np.float32(1e-6)) and not block["conv_dw"]["bias"].any()
    assert np.all(block["norm"]["weight"] == 1) and not block["norm"]["bias"].any()
    assert state == {}
    atto_cfg = models.inception_next_atto(**TINY).config
    _, bn_state = inception_next.init(lucid.random.key(0), atto_cfg)
    bn = bn_state["stages"][1]["downsample"][0]
    assert not bn["running_mean"].any() and np.all(bn["running_var"] == 1)
    p64, _ = convnext.init(lucid.random.key(0), cfg, dtype=np.float64)
    assert all(v.dtype == np.float64 for _, v in named_leaves(p64))


# ---- train vs eval -----------------------------------------------------------------------
def test_convnext_drop_path_depends_on_key_and_eval_is_deterministic():
    model = randomized(models.ConvNeXt(num_classes=4, **TINY, drop_path=0.5))
    eval_out = model(X)
    assert np.array_equal(eval_out, model(X))
    no_drop = models.ConvNeXt(num_classes=4, **TINY)
    no_drop.params = model.params
    assert np.array_equal(eval_out, no_drop(X))
    model.train()
    a, b = model(X, key=lucid.random.key(1)), model(X, key=lucid.random.key(1))
    c = model(X, key=lucid.random.key(2))
    assert np.array_equal(a, b) and not np.allclose(a, c) and not np.allclose(a, eval_out)
    logits, new_state = model.apply(model.params, X, train=True, key=lucid.random.key(1))
    assert np.array_equal(logits, a) and new_state == {}
    with pytest.raises(TypeError, match="needs a random key"):
        model(X)
    with pytest.raises(TypeError, match="lucid random key"):
        model(X, key=7)


def test_drop_path_rates_are_linear_over_all_blocks():
    rates = models._common.drop_path_rates(0.1, (2, 2, 6, 2))
    assert len(rates) == 12 and rates[0] == 0.0 and np.isclose(rates[-1], 0.1)
    assert np.allclose(np.diff(rates), 0.1 / 11)


def test_convnext_head_dropout_only_in_training():
    model = randomized(models.ConvNeXt(num_classes=4, **TINY, drop_rate=0.5))
    assert np.array_equal(model(X), model.apply(model.params, X))
    train_out, _ = model.apply(model.params, X, train=True, key=lucid.random.key(0))
    assert not np.allclose(train_out, model(X))


def test_inception_batchnorm_uses_batch_statistics_in_training():
    model = randomized(models.inception_next_atto(num_classes=4, **TINY))
    state0 = {k: v.copy() for k, v in model.state_dict().items()
              if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    eval_out = model(X)
    train_out, new_state = model.apply(model.params, X, state=model.state, train=True)
    assert not np.allclose(train_out, eval_out)
    new = dict(named_leaves(new_state))
    assert set(new) == set(state0)
    assert all(int(new[k]) == 1 for k in new if k.endswith("tracked"))
    assert not np.allclose(new["stem.1.running_mean"], state0["stem.1.running_mean"])
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in state0.items())  # pure
    again, _ = model.apply(model.params, X, state=new_state, train=True)
    assert np.allclose(again, train_out)  # batch statistics do not depend on the running ones


def test_every_parameter_gets_a_nonzero_gradient():
    for model in (models.ConvNeXt(num_classes=4, **TINY),
                  models.inception_next_atto(num_classes=4, **TINY)):
        model = randomized(model)
        grads = lucid.grad(lambda p: lnp.sum(lnp.square(model.apply(p, X))))(model.params)
        flat = named_leaves(grads)
        assert len(flat) == len(model.parameters())
        assert [k for k, g in flat if not np.any(g)] == []


@pytest.mark.parametrize("family", ["convnext", "inception_next"])
def test_float64_end_to_end_gradients(family):
    model = (models.ConvNeXt(num_classes=3, depths=[1, 1, 1, 1], dims=[6, 6, 8, 8], conv_mlp=True)
             if family == "convnext" else models.inception_next_atto(num_classes=3, **TINY))
    model = randomized(model)
    params64 = lucid.tree.map(lambda a: a.astype(np.float64), model.params)
    leaves, treedef = lucid.tree.flatten(params64)
    x = X[:1].astype(np.float64)
    out = model.apply(treedef.unflatten(leaves), x)
    assert out.dtype == np.float64
    check_vjp(lambda xx, *ls: model.apply(treedef.unflatten(list(ls)), xx), [x, *leaves],
              rtol=1e-6)


def test_input_is_cast_to_the_parameter_dtype():
    model = models.ConvNeXt(num_classes=4, **TINY)
    out64 = model(X.astype(np.float64))
    assert out64.dtype == np.float32 and np.array_equal(out64, model(X))
    assert model((X > 0).astype(np.uint8)).dtype == np.float32


# ---- custom token mixers and heads --------------------------------------------------------
class ConvMixer(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x):  # NCHW: the model converts its channels-last activations
        return self.conv(x)


class LinearHead(nn.Module):
    def __init__(self, in_features, num_classes=1000, pool_type="avg", drop_rate=0.0):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1, flatten=True)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x):
        return self.fc(self.pool(x))


def test_user_defined_token_mixer_and_head_classes():
    model = randomized(models.InceptionNeXt(num_classes=5, **TINY, token_mixers=ConvMixer,
                                            head_fn=LinearHead))
    sd = model.state_dict()
    assert sd["stages.2.blocks.0.token_mixer.conv.weight"].shape == (16, 1, 3, 3)
    assert sd["head.fc.weight"].shape == (5, 24)
    out = model(X)
    assert out.shape == (2, 5)
    grads = lucid.grad(lambda p: lnp.sum(lnp.square(model.apply(p, X))))(model.params)
    assert all(np.any(g) for _, g in named_leaves(grads))
    with pytest.raises(ValueError, match="pass config="):
        inception_next.apply(model.params, X, state=model.state)
    same = inception_next.apply(model.params, X, state=model.state, config=model.config)
    assert np.array_equal(same, out)


def test_identity_token_mixer_has_no_parameters():
    model = models.InceptionNeXt(num_classes=5, **TINY)
    assert not any("token_mixer" in k for k in model.state_dict())
    per_stage = models.InceptionNeXt(num_classes=5, **TINY, token_mixers=[
        nn.Identity, nn.InceptionDWConv2d, nn.Identity, functools.partial(nn.InceptionDWConv2d,
                                                                          band_kernel_size=5)])
    keys = [k for k in per_stage.state_dict() if "token_mixer" in k]
    assert {k.split(".")[1] for k in keys} == {"1", "3"}
    sd = per_stage.state_dict()
    assert sd["stages.3.blocks.0.token_mixer.dwconv_h.weight"].shape == (3, 1, 5, 1)
    assert per_stage(X).shape == (2, 5)


# ---- functional form ---------------------------------------------------------------------
def test_functional_form_matches_the_object():
    model = randomized(models.inception_next_atto(num_classes=4, **TINY))
    assert np.array_equal(inception_next.apply(model.params, X, state=model.state), model(X))
    params, state = model.init(lucid.random.key(3))
    assert np.array_equal(model.apply(params, X, state=state),
                          inception_next.apply(params, X, state=state, config=model.config))
    assert np.array_equal(inception_next.apply(params, X),  # state=None: the initial statistics
                          inception_next.apply(params, X, state=state))
    clone = models.InceptionNeXt.from_config(model.config)
    assert clone.config is model.config and clone.num_parameters() == model.num_parameters()


# ---- checkpoints -------------------------------------------------------------------------
@pytest.mark.parametrize("ext", ["safetensors", "npz", "pth"])
def test_state_dict_round_trip_through_files(tmp_path, ext):
    model = randomized(models.inception_next_atto(num_classes=4, **TINY))
    model.train()(X)  # non-trivial running statistics and num_batches_tracked
    path = tmp_path / f"model.{ext}"
    lucid.io.save(path, model.state_dict())
    fresh = models.create_model("inception_next_atto", num_classes=4, **TINY, weights=path)
    a, b = model.state_dict(), fresh.state_dict()
    assert list(a) == list(b)
    assert all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)
    assert np.array_equal(model.eval()(X), fresh(X))


def test_loading_a_mismatched_or_broken_checkpoint(tmp_path):
    path = tmp_path / "other.safetensors"
    other = models.ConvNeXt(num_classes=3, depths=[1, 1, 2, 1], dims=TINY["dims"]).state_dict()
    del other["stem.0.bias"]
    lucid.io.save(path, other)
    with pytest.raises(ValueError, match=r"lucid.models.ConvNeXt.load_state_dict: .*1 missing key"
                       r".*stem.0.bias.*9 unexpected key.*stages.2.blocks.1.gamma.*2 mis-shaped "
                       r"key.*head.fc.weight: expected \(4, 24\), got \(3, 24\)"):
        models.create_model("convnext_atto", num_classes=4, **TINY, weights=path)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="broken.pth"):
        models.convnext_atto(weights=broken)


# ---- registry ----------------------------------------------------------------------------
def test_registry():
    names = models.list_models()
    assert names == sorted(PARAMS)
    assert models.list_models("convnext_*") == sorted(n for n in PARAMS if n.startswith("convnext"))
    assert models.list_models("*_tiny") == ["convnext_tiny", "inception_next_tiny"]
    model = models.create_model("convnext_tiny", num_classes=10, drop_path=0.2)
    assert isinstance(model, models.ConvNeXt) and model.config.num_classes == 10
    assert model.config.drop_path_rate == 0.2 and model.config.dims == (96, 192, 384, 768)
    with pytest.raises(ValueError, match="unknown model 'convnext_tin'.*convnext_tiny"):
        models.create_model("convnext_tin")
    with pytest.raises(TypeError, match="unknown argument"):
        models.create_model("convnext_tiny", dropout=0.1)
    with pytest.raises(TypeError, match="got both"):
        models.ConvNeXt(drop_path=0.1, drop_path_rate=0.2)


# ---- bad inputs ------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["convnext", "inception_next"])
@pytest.mark.parametrize("x, match", [
    (np.zeros((3, 32, 32), np.float32), r"expected an NCHW input of shape \(N, 3, H, W\)"),
    (np.zeros((1, 4, 32, 32), np.float32), r"expected an NCHW input of shape \(N, 3, H, W\)"),
    (np.zeros((1, 3, 31, 64), np.float32), r"input of shape \(1, 3, 31, 64\) is too small"),
])
def test_bad_inputs_name_the_model(family, x, match):
    model = models.ConvNeXt(**TINY) if family == "convnext" else models.inception_next_atto(**TINY)
    with pytest.raises(ValueError, match=f"lucid.models.{family}.apply: {match}"):
        model(x)


def test_bad_input_dtype_and_params():
    model = models.ConvNeXt(num_classes=4, **TINY)
    with pytest.raises(TypeError, match="float32/float64"):
        model(X.astype(np.complex64))
    params = model.params
    broken = {**params, "head": {"norm": params["head"]["norm"]}}
    with pytest.raises(ValueError, match="missing head.fc.weight"):
        convnext.apply(broken, X, config=model.config)
    other = models.ConvNeXt(num_classes=5, **TINY)
    with pytest.raises(ValueError, match="mis-shaped head.fc.weight: expected \\(5, 24\\)"):
        other.apply(params, X)
    with pytest.raises(ValueError, match="not a ConvNeXt parameter tree"):
        convnext.apply({"stem": []}, X)
    with pytest.raises(ValueError, match="ConvNeXt has no state"):
        convnext.apply(params, X, state={"a": np.zeros(1)})
    incep = models.inception_next_atto(num_classes=4, **TINY)
    with pytest.raises(ValueError, match="state do not match.*missing stem.1.running_mean"):
        incep.apply(incep.params, X, state={"stem": [{}, {}]})


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(depths=[1, 1], dims=[8, 8, 8]), ValueError, "same length"),
    (dict(depths=[1, 0, 1, 1]), ValueError, "depths must be an int >= 1"),
    (dict(drop_path=1.5), ValueError, "drop_path_rate must be a float in"),
    (dict(kernel_sizes=6), ValueError, "kernel_sizes must be odd"),
    (dict(num_classes=-1), ValueError, "num_classes must be an int >= 0"),
])
def test_bad_convnext_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        models.ConvNeXt(**kwargs)


def test_bad_inception_config():
    with pytest.raises(TypeError, match="must build a lucid.nn.Module"):
        models.InceptionNeXt(token_mixers=lambda dim: None, **TINY)
    with pytest.raises(TypeError, match="token_mixers"):
        models.InceptionNeXt(token_mixers=[nn.Identity] * 3, **TINY)
    with pytest.raises(ValueError, match="mlp_ratios"):
        models.InceptionNeXt(mlp_ratios=[4, 4, -1, 3], **TINY)
