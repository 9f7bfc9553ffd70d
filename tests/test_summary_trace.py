"""lucid.summary on models nothing describes but their code: custom configurations and
user-defined token mixers, against MACs and shapes computed here by hand; and that it
traces without allocating the parameters."""
import tracemalloc

import numpy as np
import pytest

import lucid
import lucid.models as models
import lucid.nn as nn
from lucid._core import Primitive, aval, bind
from lucid._summary import _Rules, summary


def _convnext_oracle(n, h, w, depths, dims, classes, k=7):
    """MACs of a ConvNeXt by its definition: patchify 4x4/4, downsample 2x2/2, per block a
    kxk depthwise conv and the two MLP matrices (ratio 4), the classifier."""
    h, w = h // 4, w // 4
    macs = n * dims[0] * h * w * 3 * 16
    for i, (d, c) in enumerate(zip(depths, dims)):
        if i:
            h, w = h // 2, w // 2
            macs += n * c * h * w * dims[i - 1] * 4
        macs += d * n * h * w * (c * k * k + 2 * c * 4 * c)
    return macs + n * dims[-1] * classes


def test_custom_convnext_config():
    depths, dims = (1, 1, 1, 1), (8, 16, 24, 32)
    model = models.ConvNeXt(num_classes=7, depths=depths, dims=dims)
    s = summary(model, (2, 3, 64, 96), depth=3)
    assert s.total_macs == _convnext_oracle(2, 64, 96, depths, dims, 7)
    assert s.total_params == model.num_parameters()
    rows = {r.name: r for _, r in s.root.walk()}
    assert [c.name for c in s.root.children] == ["stem", "stages.0", "stages.1", "stages.2",
                                                 "stages.3", "head"]
    block = "stages.2.blocks.0."
    assert [c.name.replace(block, "") for c in rows["stages.2.blocks.0"].children] == \
        ["conv_dw", "norm", "mlp.fc1", "mlp.act", "mlp.fc2", "gamma"]   # as they run
    fc1 = rows["stages.2.blocks.0.mlp.fc1"]
    assert (fc1.kind, fc1.detail, fc1.out_shape) == ("Linear", "24->96", (2, 96, 4, 6))
    assert fc1.params == 24 * 96 + 96 and fc1.macs == 2 * 4 * 6 * 24 * 96
    dw = rows["stages.2.blocks.0.conv_dw"]
    assert (dw.kind, dw.detail, dw.params) == ("Conv2d", "7x7 dw", 24 * 49 + 24)
    assert rows["stages.3.downsample.1"].detail == "2x2, s2"
    assert rows["stages.3.downsample.1"].out_shape == (2, 32, 2, 3)
    assert rows["stages.2.blocks.0.mlp.act"].kind == "GELU"
    assert rows["stages.2.blocks.0.gamma"].kind == "LayerScale"
    assert rows["head.global_pool"].out_shape == (2, 32) and s.root.out_shape == (2, 7)


class DWGelu(nn.Module):
    """A user-defined token mixer: a 5x5 depthwise conv, then GELU (NCHW inside)."""

    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.conv(x))


def test_user_defined_token_mixer():
    depths, dims, ratios = (1, 2, 1, 1), (8, 16, 24, 32), (4, 4, 4, 3)
    model = models.InceptionNeXt(num_classes=5, depths=depths, dims=dims, token_mixers=DWGelu)
    s = summary(model, (1, 3, 64, 64), depth=4)
    expected, h = 1 * 8 * 16 * 16 * 3 * 16, 16    # stem at 1/4 resolution
    for i, (d, c) in enumerate(zip(depths, dims)):
        if i:
            h //= 2
            expected += c * h * h * dims[i - 1] * 4
        expected += d * h * h * (c * 25 + 2 * c * int(ratios[i] * c))
    expected += 32 * 96 + 96 * 5                  # MlpHead: fc1 (ratio 3), fc2
    assert s.total_macs == expected and s.total_params == model.num_parameters()
    rows = {r.name: r for _, r in s.root.walk()}
    mixer = rows["stages.1.blocks.1.token_mixer"]
    assert mixer.kind == "DWGelu" and mixer.out_shape == (1, 16, 8, 8)
    assert [(c.name.rsplit(".", 1)[-1], c.kind) for c in mixer.children] == \
        [("conv", "Conv2d"), ("act", "GELU")]
    conv = mixer.children[0]
    assert (conv.detail, conv.params, conv.macs) == ("5x5 dw", 16 * 25 + 16, 16 * 8 * 8 * 25)
    assert rows["stages.1.blocks.1.mlp.fc1"].kind == "Conv2d"   # timm's 1x1-conv MLP
    text = summary(model, (1, 3, 64, 64), format="mermaid").text
    assert 'S2_0["DWGelu"]' in text and "head<br/>AdaptiveAvgPool2d → Linear 32->96" in text


def test_no_parameter_is_allocated():
    model = models.convnext_base()
    summary(models.convnext_atto(), (1, 3, 224, 224))   # imports and caches warm
    tracemalloc.start()
    try:
        s = summary(model, (1, 3, 224, 224))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    param_bytes = model.num_parameters() * 4
    assert s.total_params == 88_591_464 and param_bytes > 350e6
    assert peak < param_bytes / 50, peak    # ~1 MB of program against 354 MB of weights
    assert model.__dict__.get("_params") is None


def test_rules_cover_the_fused_program():
    """The program lucid.jit runs (bias+GELU, bias+layer-scale+residual fused) counts the
    same MACs as the traced one the summary reads."""
    model = models.convnext_atto()
    lowered = lucid.jit(model).lower(np.zeros((1, 3, 64, 64), np.float32))
    names = {e.prim.name for e in lowered.program.eqns}
    assert {"nn.functional.bias_gelu", "nn.functional.bias_scale_residual"} <= names
    assert sum(_Rules.macs(e) for e in lowered.program.eqns) == \
        summary(model, (1, 3, 64, 64)).total_macs == _convnext_oracle(
            1, 64, 64, (2, 2, 6, 2), (40, 80, 160, 320), 1000)


_mystery_p = Primitive("my_conv_like")
_mystery_p.def_abstract(lambda x: aval(x.shape, x.dtype))


class Mystery(nn.Module):
    def forward(self, x):
        return bind(_mystery_p, x)


def test_unknown_contraction_is_not_counted_as_zero():
    s = summary(nn.Sequential(nn.Conv2d(3, 4, 1), Mystery()), (1, 3, 8, 8))
    assert s.total_macs is None and "Total MACs: ?" in s.text
    assert s.total_params == 16 and s.root.out_shape == (1, 4, 8, 8)


def test_forward_that_fails_to_trace():
    bad = nn.Sequential(nn.Linear(3, 3))   # Linear over W = 8 of an NCHW input
    with pytest.raises(ValueError, match=r"tracing Sequential's forward on an input of shape "
                                         r"\(1, 3, 8, 8\) failed: .*input features"):
        summary(bad, (1, 3, 8, 8))
