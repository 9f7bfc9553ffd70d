"""Parity with timm: the committed fixtures (tests/fixtures/README.md) replayed through lucid.

Every fixture is loaded into the model object (load_state_dict of timm's flat keys), run in
float32, and compared scale-free per array: logits <= 2e-5, input gradient <= 5e-5, each
parameter gradient <= 1e-4; in training also the new BatchNorm running statistics.
"""
import functools
import json
import pathlib

import numpy as np
import pytest

import lucid
import lucid.io
import lucid.nn as nn
import lucid.numpy as lnp
from lucid import models
from lucid.models import convnext, inception_next
from lucid.nn._tree_util import named_leaves
from gradcheck import rel_err

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
CASES = sorted(p.stem for p in FIXTURES.glob("*.npz"))
LOGITS_TOL, INPUT_GRAD_TOL, PARAM_GRAD_TOL = 2e-5, 5e-5, 1e-4


@functools.lru_cache(maxsize=None)
def load_case(name):
    data = np.load(FIXTURES / f"{name}.npz")
    arrays = {k: data[k] for k in data.files}
    cfg = json.loads(str(arrays.pop("config_json")))
    rng = np.random.default_rng(cfg["input_seed"])
    x = rng.standard_normal(cfg["input_shape"]).astype(np.float32)
    return cfg, arrays, x


def section(arrays, prefix):
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def build_model(cfg):
    """The lucid model object for a fixture's timm constructor arguments."""
    kw = dict(cfg["constructor"])
    if cfg["family"] == "convnext":
        return models.ConvNeXt(**kw)
    tm = dict(kw.pop("token_mixers"))
    assert tm.pop("type") == "InceptionDWConv2d"
    return models.InceptionNeXt(token_mixers=functools.partial(nn.InceptionDWConv2d, **tm), **kw)


def loaded_model(name):
    cfg, arrays, x = load_case(name)
    model = build_model(cfg)
    model.load_state_dict({**section(arrays, "param/"), **section(arrays, "buffer/")})
    return cfg, arrays, x, model


def run_with_grads(model, x, cot, train):
    """(logits, new_state, param grads, input grad) of sum(logits * cotangent)."""
    def loss(p, xx):
        out = model.apply(p, xx, state=model.state, train=train)
        logits, new_state = out if train else (out, None)
        return lnp.sum(lnp.multiply(logits, cot)), (logits, new_state)

    (_, (logits, new_state)), (gp, gx) = lucid.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        model.params, x)
    return logits, new_state, gp, gx


def structurally_zero(key):
    """Gradients that are mathematically zero with training-mode BN (README of the fixtures)."""
    feeds_bn = key == "stem.0.bias" or (".token_mixer.dwconv_" in key and key.endswith(".bias"))
    return feeds_bn or (key.endswith("mlp.fc2.bias") and not key.startswith("stages.3."))


@pytest.mark.parametrize("name", CASES)
def test_fixture_parity(name):
    cfg, arrays, x, model = loaded_model(name)
    train = cfg["mode"] == "train"
    logits, new_state, gp, gx = run_with_grads(model, x, arrays["cotangent"], train)
    assert rel_err(logits, arrays["logits"]) <= LOGITS_TOL
    assert rel_err(gx, arrays["input_grad"]) <= INPUT_GRAD_TOL
    ref_grads = section(arrays, "grad/")
    ours = dict(named_leaves(gp))
    assert sorted(ours) == sorted(ref_grads)
    largest = max(np.abs(g).max() for g in ref_grads.values())
    for key, ref in ref_grads.items():
        if train and structurally_zero(key):
            assert np.abs(ref).max() <= 1e-5 * largest, key  # the fixture's premise
            assert np.abs(ours[key]).max() <= 1e-5 * largest, key
        else:
            assert rel_err(ours[key], ref) <= PARAM_GRAD_TOL, key
    if train:
        new_ref = section(arrays, "new_buffer/")
        got = dict(named_leaves(new_state))
        assert sorted(got) == sorted(new_ref)
        for key, ref in new_ref.items():
            if key.endswith("num_batches_tracked"):
                assert got[key].dtype == np.int64 and int(got[key]) == int(ref), key
            else:
                assert rel_err(got[key], ref) <= 1e-5, key


@pytest.mark.parametrize("name", ["convnext_odd", "inception_next_odd"])
def test_functional_apply_reads_architecture_from_timm_keys(name):
    """models.from_state_dict + <family>.apply without a config reproduces timm's logits."""
    _, arrays, x = load_case(name)
    flat = {**section(arrays, "param/"), **section(arrays, "buffer/")}
    params, state = models.from_state_dict(flat)
    family = convnext if name.startswith("convnext") else inception_next
    logits = family.apply(params, x, state=state or None)
    assert rel_err(logits, arrays["logits"]) <= LOGITS_TOL


def test_eval_leaves_running_statistics_untouched():
    _, arrays, x, model = loaded_model("inception_next_atto_mixer")
    before = {k: v.copy() for k, v in model.state_dict().items()}
    model.eval()(x)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_facade_train_step_updates_running_stats_in_place():
    cfg, arrays, x, model = loaded_model("inception_next_train")
    held = model.state["stem"][1]["running_mean"]
    logits = model.train()(x)  # drop rates are 0: no key needed
    assert rel_err(logits, arrays["logits"]) <= LOGITS_TOL
    assert model.state["stem"][1]["running_mean"] is held  # updated in place, as PyTorch does
    for key, ref in section(arrays, "new_buffer/").items():
        got = model.state_dict()[key]
        assert (int(got) == int(ref)) if key.endswith("tracked") else rel_err(got, ref) <= 1e-5


@pytest.mark.parametrize("ext", ["pth", "safetensors"])
def test_timm_checkpoint_files_reproduce_timm_logits(ext):
    """create_model(..., weights=timm checkpoint) gives timm's logits (conv-MLP weights)."""
    _, arrays, x = load_case("convnext_convmlp")
    path = FIXTURES / f"convnext_convmlp_state.{ext}"
    model = models.create_model("convnext_atto", num_classes=7, depths=[1, 1, 1, 1],
                                dims=[8, 12, 16, 24], weights=path)
    assert rel_err(model(x), arrays["logits"]) <= LOGITS_TOL


def test_conv_mlp_checkpoint_loads_into_linear_mlp_model():
    _, arrays, x = load_case("convnext_convmlp")
    model = models.ConvNeXt(num_classes=7, depths=[1, 1, 1, 1], dims=[8, 12, 16, 24])  # Linear MLP
    model.load_state_dict(lucid.io.load(FIXTURES / "convnext_convmlp_state.pth"))
    assert model.params["stages"][0]["blocks"][0]["mlp"]["fc1"]["weight"].shape == (32, 8)
    assert rel_err(model(x), arrays["logits"]) <= LOGITS_TOL


def test_inception_checkpoint_with_num_batches_tracked():
    _, arrays, x = load_case("inception_next_224")
    model = models.inception_next_tiny(num_classes=10, depths=[1, 1, 2, 1], dims=[8, 12, 16, 24],
                                       weights=FIXTURES / "inception_next_224_state.pth")
    assert int(model.state["stem"][1]["num_batches_tracked"]) > 0
    assert rel_err(model(x), arrays["logits"]) <= LOGITS_TOL
