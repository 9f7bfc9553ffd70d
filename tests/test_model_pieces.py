"""The model facades wrap the pure functions: real sub-modules, features/head, classifier reset."""
import numpy as np
import pytest

import lucid
import lucid.models as models
from lucid import nn
from lucid.models import convnext, inception_next
from lucid.nn._tree_util import named_leaves

X = lucid.random.normal(lucid.random.key(1), (2, 3, 32, 32))
SMALL = dict(depths=(1, 2, 1, 1), dims=(16, 16, 24, 32))


def _families():
    return [models.convnext_atto(num_classes=5, **SMALL),
            models.inception_next_atto(num_classes=5, **SMALL)]


@pytest.mark.parametrize("model", _families(), ids=["convnext", "inception_next"])
def test_children_compose_to_the_model(model):
    assert [n for n, _ in model.named_children()] == ["stem", "stages", "head"]
    names = dict(model.named_modules())
    assert names[""] is model and names["stages.1.blocks.1"] is model.stages[1].blocks[1]
    assert model.modules() == [m for _, m in model.named_modules()]
    # every leaf of every piece is the model's own array (a slice, not a copy)
    sd = model.state_dict()
    for key, leaf in named_leaves(model.stages[1].blocks[0].params):
        assert leaf is sd[f"stages.1.blocks.0.{key}"] or np.shares_memory(leaf, sd[f"stages.1.blocks.0.{key}"])
    h = model.stem(X)
    for stage in model.stages:
        h = stage(h)
    assert h.shape == (2, 32, 1, 1)
    np.testing.assert_array_equal(model.head(h), model(X))
    np.testing.assert_array_equal(model.forward_features(X), h)
    np.testing.assert_array_equal(model.forward_head(h), model(X))
    blocks = model.stem(X)
    for block in model.stages[0].blocks:
        blocks = block(blocks)
    np.testing.assert_array_equal(blocks, model.stages[0](model.stem(X)))


def test_sub_modules_hold_the_models_parameters_before_it_is_called():
    model = models.convnext_atto(num_classes=5, **SMALL)
    w = model.stages[2].blocks[0].params["conv_dw"]["weight"]   # first touch: via a sub-module
    assert w is model.params["stages"][2]["blocks"][0]["conv_dw"]["weight"]


def test_built_in_mixer_and_head_run_as_pure_functions(monkeypatch):
    model = models.inception_next_atto(num_classes=5, **SMALL)
    expected = model(X)

    def refuse(*args, **kwargs):
        raise AssertionError("the functional apply called a Module")
    monkeypatch.setattr(nn.InceptionDWConv2d, "_run", refuse)
    monkeypatch.setattr(nn.MlpHead, "_run", refuse)
    got = inception_next.apply(model.params, X, state=model.state, config=model.config)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("fam,make", [(convnext, models.convnext_atto),
                                      (inception_next, models.inception_next_atto)])
def test_functional_features_and_head(fam, make):
    model = make(num_classes=5, **SMALL)
    p, s = model.params, model.state
    feats = fam.forward_features(p, X, state=s)
    assert feats.shape == (2, 32, 1, 1)
    np.testing.assert_array_equal(fam.forward_head(p, feats, state=s), fam.apply(p, X, state=s))
    pre = fam.forward_head(p, feats, state=s, pre_logits=True)
    fc = model.get_classifier()
    np.testing.assert_allclose(np.asarray(pre) @ fc["weight"].T + fc["bias"],
                               fam.apply(p, X, state=s), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make,head", [(models.convnext_atto, "head.fc"),
                                       (models.inception_next_atto, "head.fc2")])
def test_reset_classifier_keeps_everything_else(make, head):
    model = make(num_classes=5, **SMALL)
    before = model.state_dict()
    model.reset_classifier(3)
    after = model.state_dict()
    assert after[f"{head}.weight"].shape[0] == 3 and model(X).shape == (2, 3)
    for k, v in before.items():
        if not k.startswith(head):
            assert np.array_equal(after[k], v), k
    model.reset_classifier(0)
    assert not any(k.startswith(head) for k in model.state_dict())
    assert model.config.num_classes == 0 and model.head is not None


def test_copies_and_pickles_keep_their_own_sub_modules():
    import copy
    import pickle
    model = models.inception_next_atto(num_classes=5, **SMALL)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        w = clone.stages[1].blocks[0].params["mlp"]["fc1"]["weight"]
        assert w is clone.params["stages"][1]["blocks"][0]["mlp"]["fc1"]["weight"]
        assert model.__dict__["_params"] is None      # the original was not touched
    model(X)
    clone = copy.deepcopy(model)
    np.testing.assert_array_equal(clone.stages[0](clone.stem(X)), model.stages[0](model.stem(X)))
