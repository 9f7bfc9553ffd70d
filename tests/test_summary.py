"""lucid.summary: layer tables and flowcharts read from the traced program, whose totals equal
timm's counts."""
import numpy as np
import pytest

import lucid.models as models
import lucid.nn as nn
from lucid._summary import summary

# timm 1.0.31: params and GMACs at 224x224 (FlopCounterMode / 2, convs + matmuls only)
REFERENCE = {
    "convnext_atto": (3_695_520, 0.547), "convnext_tiny": (28_589_128, 4.456),
    "convnext_small": (50_223_688, 8.684), "convnext_base": (88_591_464, 15.355),
    "convnext_large": (197_767_336, 34.361), "convnext_xlarge": (350_196_968, 60.921),
    "inception_next_atto": (4_156_520, 0.503), "inception_next_tiny": (28_055_680, 4.189),
    "inception_next_small": (49_374_016, 8.356), "inception_next_base": (86_672_136, 14.841),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_totals_equal_timm(name):
    model = models.create_model(name)
    s = summary(model, (1, 3, 224, 224))
    params, gmacs = REFERENCE[name]
    assert s.total_params == params == model.num_parameters()
    assert round(s.total_macs / 1e9, 3) == gmacs
    assert f"Total params: {params:,}" in s.text and f"({gmacs:.3f} G)" in s.text


def test_per_op_split_and_scaling():
    rows = [r for _, r in summary("convnext_tiny", (3, 224, 224)).root.walk() if not r.children]
    conv = sum(r.macs for r in rows if r.kind == "Conv2d")
    linear = sum(r.macs for r in rows if r.kind == "Linear")
    assert round(conv / 1e9, 3) == 0.293 and round(linear / 1e9, 3) == 4.163
    root = summary("inception_next_tiny", (3, 224, 224)).root
    incep = [r for _, r in root.walk() if not r.children]
    assert round(sum(r.macs for r in incep if r.name.startswith("head")) / 1e6, 2) == 4.07
    atto = models.convnext_atto()
    head = 320 * 1000
    at224, at160 = (summary(atto, (1, 3, s, s)).total_macs - head for s in (224, 160))
    assert at160 * 224 ** 2 == at224 * 160 ** 2  # every spatial size divides exactly here


def test_table_rows_shapes_and_depth():
    model = models.ConvNeXt(num_classes=10, depths=[1, 1, 2, 1], dims=[8, 12, 16, 24])
    s = summary(model, (2, 3, 122, 138), depth=3)
    shapes = {r.name: r.out_shape for _, r in s.root.walk()}
    assert shapes["stem.0"] == (2, 8, 30, 34) and shapes["stages.1"] == (2, 12, 15, 17)
    assert shapes["stages.2"] == (2, 16, 7, 8) and shapes["stages.3"] == (2, 24, 3, 4)
    assert shapes["stages.2.blocks.1.mlp.fc1"] == (2, 64, 7, 8) and shapes["head.fc"] == (2, 10)
    assert "stages.2.blocks.1.mlp.fc1 (Linear 16->64)" in s.text
    shallow = summary(model, (2, 3, 122, 138), depth=1).text
    assert "stages.2.blocks.1" not in shallow and "stages.2 (ConvNeXtStage)" in shallow
    assert str(s) == repr(s) == s.text


def test_mermaid_flowchart():
    text = summary(models.inception_next_atto(), (1, 3, 224, 224), format="mermaid").text
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert sum(line.strip().startswith("subgraph") for line in lines) == 4
    assert 'subgraph S3["stages.2: 6 x MetaNeXtBlock, 1x160x14x14"]' in text
    assert "stem<br/>Conv2d 4x4, s4 → BatchNorm2d" in text
    assert "InceptionDWConv2d id 40 + 3x40 ch" in text
    assert "head<br/>AdaptiveAvgPool2d → Linear 320->960 → GELU → LayerNorm" in text
    assert lines[-1] == "    head --> output" and text.count(" -. residual .-> ") == 4
    convnext_text = summary("convnext_tiny", (3, 224, 224), format="mermaid").text
    assert "Conv2d 7x7 dw" in convnext_text and "LayerScale" in convnext_text


def test_generic_modules():
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.GELU(),
                        nn.AdaptiveAvgPool2d(1, flatten=True), nn.Linear(8, 4))
    s = summary(seq, (2, 3, 10, 10))
    assert s.total_params == seq.num_parameters() == 3 * 8 * 9 + 8 + 16 + 36
    assert s.total_macs == 2 * 8 * 100 * 27 + 2 * 8 * 4 and s.root.out_shape == (2, 4)

    class Custom(nn.Module):   # a user module: traced like any other, no description needed
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 5)

        def forward(self, x):
            return self.fc(x)

    known = summary(nn.Sequential(Custom(), nn.GELU()), (1, 2, 4, 3), depth=2)
    rows = {r.name: r for _, r in known.root.walk()}
    assert known.total_params == 20 and known.total_macs == 2 * 4 * 3 * 5
    assert rows["0.fc"].kind == "Linear" and rows["0.fc"].out_shape == (1, 2, 4, 5)
    assert rows["0"].kind == "Custom" and rows["1"].kind == "GELU"
    assert "0.fc (Linear 3->5)" in known.text


@pytest.mark.parametrize("args, error, match", [
    ((models.convnext_atto(), (1, 4, 224, 224)), ValueError, "takes 3 input channels"),
    ((models.convnext_atto(), (1, 3, 16, 224)), ValueError, "needs H, W >= 32"),
    ((models.convnext_atto(), (224, 224)), ValueError, r"input_shape must be \(N, C, H, W\)"),
    ((models.convnext_atto(), (1, 3, 0, 224)), ValueError, "positive ints"),
    ((np.zeros(3), (1, 3, 224, 224)), TypeError, "model must be a lucid.nn.Module"),
    (("convnext_tinyy", (1, 3, 224, 224)), ValueError, "did you mean convnext_tiny"),
])
def test_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        summary(*args)
    with pytest.raises(ValueError, match="format must be 'table' or 'mermaid'"):
        summary(models.convnext_atto(), (3, 224, 224), format="dot")
    with pytest.raises(ValueError, match="depth must be a positive int"):
        summary(models.convnext_atto(), (3, 224, 224), depth=0)
