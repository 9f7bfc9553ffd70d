"""Analytic layer descriptions of the model families, for ``lucid.summary``.

Shapes, parameter counts and MACs come from the configuration alone (timm's MAC
convention: convolutions and matrix products); the trees mirror the state-dict keys.
"""
from __future__ import annotations

from ..nn._info import LayerInfo, channel_linear_info, conv2d_info, linear_info, op_info

__all__ = ["convnext_info", "inception_next_info"]


def _convnext_block(cfg, name, shape, k, mlp_kind):
    n, c, h, w = shape
    rows = [conv2d_info(f"{name}.conv_dw", shape, c, c, k, padding=(k - 1) // 2, groups=c,
                        bias=cfg.conv_bias),
            op_info(f"{name}.norm", "LayerNorm", shape, 2 * c),
            channel_linear_info(f"{name}.mlp.fc1", shape, c, 4 * c, kind=mlp_kind),
            op_info(f"{name}.mlp.act", "GELU", (n, 4 * c, h, w)),
            channel_linear_info(f"{name}.mlp.fc2", (n, 4 * c, h, w), 4 * c, c, kind=mlp_kind)]
    if cfg.ls_init_value is not None:
        rows.insert(0, op_info(f"{name}.gamma", "LayerScale", shape, c))
    info = LayerInfo.group(name, "ConvNeXtBlock", rows, detail=f"{k}x{k} dw, mlp x4")
    info.out_shape = shape
    return info


def convnext_info(cfg, input_shape) -> LayerInfo:
    """Analytic per-layer shapes, parameters and MACs for an NCHW input shape."""
    n = input_shape[0]
    mlp_kind = "Conv2d" if cfg.conv_mlp else "Linear"
    stem0 = conv2d_info("stem.0", input_shape, cfg.in_chans, cfg.dims[0], cfg.patch_size,
                        cfg.patch_size, bias=cfg.conv_bias)
    stem1 = op_info("stem.1", "LayerNorm2d", stem0.out_shape, 2 * cfg.dims[0])
    rows = [LayerInfo.group("stem", "Stem", [stem0, stem1])]
    shape = stem0.out_shape
    for i, (depth, c) in enumerate(zip(cfg.depths, cfg.dims)):
        parts = []
        if i > 0:
            cin = cfg.dims[i - 1]
            ds1 = conv2d_info(f"stages.{i}.downsample.1", shape, cin, c, 2, 2, bias=cfg.conv_bias)
            parts.append(LayerInfo.group(f"stages.{i}.downsample", "Downsample", [
                op_info(f"stages.{i}.downsample.0", "LayerNorm2d", shape, 2 * cin), ds1]))
            shape = ds1.out_shape
        parts += [_convnext_block(cfg, f"stages.{i}.blocks.{j}", shape, cfg.kernel(i), mlp_kind)
                  for j in range(depth)]
        rows.append(LayerInfo.group(f"stages.{i}", "ConvNeXtStage", parts))
    c = cfg.dims[-1]
    head = [op_info("head.global_pool", "AdaptiveAvgPool2d", (n, c, 1, 1)),
            op_info("head.norm", "LayerNorm2d", (n, c, 1, 1), 2 * c)]
    head.append(linear_info("head.fc", (n, c), c, cfg.num_classes) if cfg.num_classes
                else op_info("head.flatten", "Flatten", (n, c)))
    rows.append(LayerInfo.group("head", "NormClassifierHead", head))
    return LayerInfo.group("", "ConvNeXt", rows)


def _metanext_block(cfg, name, shape, mixer, ratio):
    n, c, h, w = shape
    hidden = int(ratio * c)
    mixer_row = mixer.layer_info(shape, f"{name}.token_mixer")
    rows = [mixer_row,
            op_info(f"{name}.norm", "BatchNorm2d", shape, 2 * c),
            channel_linear_info(f"{name}.mlp.fc1", shape, c, hidden, kind="Conv2d"),
            op_info(f"{name}.mlp.act", "GELU", (n, hidden, h, w)),
            channel_linear_info(f"{name}.mlp.fc2", (n, hidden, h, w), hidden, c, kind="Conv2d")]
    if cfg.ls_init_value is not None:
        rows.insert(0, op_info(f"{name}.gamma", "LayerScale", shape, c))
    info = LayerInfo.group(name, "MetaNeXtBlock", rows,
                           detail=f"{type(mixer).__name__}, mlp x{ratio:g}")
    info.out_shape = shape
    return info


def inception_next_info(cfg, input_shape, mixers, head) -> LayerInfo:
    """Analytic per-layer shapes, parameters and MACs of InceptionNeXt (its mixer/head Modules)."""
    stem0 = conv2d_info("stem.0", input_shape, cfg.in_chans, cfg.dims[0], 4, 4)
    stem1 = op_info("stem.1", "BatchNorm2d", stem0.out_shape, 2 * cfg.dims[0])
    rows = [LayerInfo.group("stem", "Stem", [stem0, stem1])]
    shape = stem0.out_shape
    for i, (depth, c) in enumerate(zip(cfg.depths, cfg.dims)):
        parts = []
        if i > 0:
            cin = cfg.dims[i - 1]
            ds1 = conv2d_info(f"stages.{i}.downsample.1", shape, cin, c, 2, 2)
            parts.append(LayerInfo.group(f"stages.{i}.downsample", "Downsample", [
                op_info(f"stages.{i}.downsample.0", "BatchNorm2d", shape, 2 * cin), ds1]))
            shape = ds1.out_shape
        parts += [_metanext_block(cfg, f"stages.{i}.blocks.{j}", shape, mixers[i],
                                  cfg.mlp_ratios[i]) for j in range(depth)]
        rows.append(LayerInfo.group(f"stages.{i}", "MetaNeXtStage", parts))
    head_row = head.layer_info(shape, "head")
    head_row.name = "head"
    rows.append(head_row)
    return LayerInfo.group("", "InceptionNeXt", rows)
