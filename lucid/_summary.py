"""``lucid.summary``: a model's layers with output shapes, parameters and MACs, or a flowchart.

Everything is computed analytically from the model's configuration (``Module.layer_info``);
the model is not run and its parameters are not built. MACs follow timm's convention:
convolutions and matrix products only.
"""
from __future__ import annotations

import numpy as np

__all__ = ["summary", "ModelSummary"]

_WHERE = "lucid.summary"


class ModelSummary:
    """The result of :func:`summary`; ``str()`` / ``repr()`` give the text.

    Attributes:
      text: the table or the mermaid flowchart.
      total_params: trainable parameters (equals ``model.num_parameters()``).
      total_macs: multiply-accumulates for the input shape (None if a layer's are unknown).
      root: the :class:`lucid.nn.LayerInfo` tree.
    """

    def __init__(self, text, root):
        self.text, self.root = text, root
        self.total_params, self.total_macs = root.params, root.macs

    def __str__(self):
        return self.text

    __repr__ = __str__


def _shape_str(shape, sep=", "):
    return "?" if shape is None else "(" + sep.join(str(s) for s in shape) + ")"


def _check_input_shape(shape):
    ok = isinstance(shape, (tuple, list)) and len(shape) in (3, 4) and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape)
    if not ok:
        raise ValueError(f"{_WHERE}: input_shape must be (N, C, H, W) or (C, H, W) with positive "
                         f"ints, got {shape!r}")
    return (1,) + tuple(int(s) for s in shape) if len(shape) == 3 else tuple(int(s) for s in shape)


def _check_against_model(model, shape):
    cfg = getattr(model, "config", None)
    if cfg is None:
        return
    name = type(model).__name__
    if shape[1] != cfg.in_chans:
        raise ValueError(f"{_WHERE}: {name} takes {cfg.in_chans} input channels, got input_shape "
                         f"{shape}")
    if min(shape[2:]) < cfg.min_input_size:
        raise ValueError(f"{_WHERE}: {name} needs H, W >= {cfg.min_input_size}, got input_shape "
                         f"{shape}")


def summary(model, input_shape, format: str = "table", depth: int = 2) -> ModelSummary:
    """Describe a model layer by layer.

    Args:
      model: a lucid.nn.Module (e.g. ``lucid.models.convnext_tiny()``) or a registered name.
      input_shape: NCHW input shape, (N, C, H, W) or (C, H, W) (batch 1).
      format: "table" (layers, output shapes, params, MACs) or "mermaid" (a ``flowchart TD``:
        stem -> stages with their block structure -> head).
      depth: deepest level of the table (1: stem/stages/head, 2: blocks, 3: their layers).
    Returns:
      a :class:`ModelSummary`; its totals equal ``model.num_parameters()`` and timm's MACs.
    """
    from .nn import Module
    if isinstance(model, str):
        from .models import create_model
        model = create_model(model)
    if not isinstance(model, Module):
        raise TypeError(f"{_WHERE}: model must be a lucid.nn.Module or a model name, got "
                        f"{type(model).__name__}")
    if format not in ("table", "mermaid"):
        raise ValueError(f"{_WHERE}: format must be 'table' or 'mermaid', got {format!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"{_WHERE}: depth must be a positive int, got {depth!r}")
    shape = _check_input_shape(input_shape)
    _check_against_model(model, shape)
    root = model.layer_info(shape)
    text = _table(model, root, shape, depth) if format == "table" else _mermaid(root, shape)
    return ModelSummary(text, root)


def _fmt_macs(macs):
    return "?" if macs is None else f"{macs:,}"


def _table(model, root, shape, depth):
    rows = [("Layer (type)", "Output shape", "Params", "MACs")]
    for level, info in root.walk():
        if 1 <= level <= depth:
            kind = info.kind + (f" {info.detail}" if info.detail and level == depth else "")
            rows.append(("  " * (level - 1) + f"{info.name} ({kind})", _shape_str(info.out_shape),
                         f"{info.params:,}" if info.params else "-",
                         _fmt_macs(info.macs) if info.macs else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = "=" * (sum(widths) + 6)
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    body = [fmt(rows[0]), line.replace("=", "-")] + [fmt(r) for r in rows[1:]]
    macs = "?" if root.macs is None else f"{root.macs:,} ({root.macs / 1e9:.3f} G)"
    foot = [f"Model: {type(model).__name__}   input: {_shape_str(shape)}   output: "
            f"{_shape_str(root.out_shape)}",
            f"Total params: {root.params:,} ({root.params / 1e6:.2f} M)",
            f"Total MACs: {macs}   (convolutions and matrix products, timm's convention)"]
    return "\n".join([line] + body + [line] + foot + [line])


# ---- mermaid ------------------------------------------------------------------------------
def _label(info):
    text = info.kind + (f" {info.detail}" if info.detail else "")
    return text.replace('"', "'")


def _chain(info):
    """The leaf layers of a group in execution order (layer scale last, as it runs)."""
    parts = info.children or [info]
    return sorted(parts, key=lambda c: c.kind == "LayerScale")


def _node(node_id, text):
    return f'{node_id}["{text}"]'


def _dims(shape):
    return _shape_str(shape, "x").strip("()")


def _mermaid(root, shape):
    lines = ["flowchart TD", f'    input[/"input {_dims(shape)}"/]']
    prev = "input"
    for s, top in enumerate(root.children):
        blocks = [c for c in top.children if c.children and ".blocks." in c.name]
        if not blocks:  # stem or head: one node listing its layers
            layers = " → ".join(_label(c) for c in _chain(top))
            nid = top.name.replace(".", "_") or f"n{s}"
            lines.append("    " + _node(nid, f"{top.name}<br/>{layers}<br/>{_dims(top.out_shape)}"))
            lines.append(f"    {prev} --> {nid}")
            prev = nid
            continue
        sid = f"S{s}"
        lines += [f'    subgraph {sid}["{top.name}: {len(blocks)} x {blocks[0].kind}, '
                  f'{_dims(top.out_shape)}"]', "        direction TB"]
        seq = []
        for c in top.children[:top.children.index(blocks[0])]:  # the downsample, if any
            seq.append(f"{sid}_ds")
            lines.append("        " + _node(seq[-1], "downsample<br/>" +
                                            " → ".join(_label(x) for x in _chain(c))))
        block_in = seq[-1] if seq else prev
        for i, layer in enumerate(_chain(blocks[0])):
            seq.append(f"{sid}_{i}")
            lines.append("        " + _node(seq[-1], _label(layer)))
        lines.append(f'        {sid}_add(("+"))')
        seq.append(f"{sid}_add")
        lines += ["        " + " --> ".join(seq), "    end", f"    {prev} --> {seq[0]}",
                  f"    {block_in} -. residual .-> {sid}_add"]
        prev = f"{sid}_add"
    lines.append(f'    output[/"output {_dims(root.out_shape)}"/]')
    lines.append(f"    {prev} --> output")
    return "\n".join(lines)
