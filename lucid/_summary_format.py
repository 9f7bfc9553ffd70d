"""Text forms of a ``lucid.summary``: the layer table and the mermaid flowchart."""
from __future__ import annotations

__all__ = ["table", "mermaid"]


def _shape_str(shape, sep=", "):
    return "?" if shape is None else "(" + sep.join(str(s) for s in shape) + ")"


def _fmt_macs(macs):
    return "?" if macs is None else f"{macs:,}"


def table(model, root, shape, depth) -> str:
    """The rows down to ``depth`` with output shapes, params and MACs, and the totals."""
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
    """The layers of a group, in execution order (the order of the traced program)."""
    return info.children or [info]


def _node(node_id, text):
    return f'{node_id}["{text}"]'


def _dims(shape):
    return _shape_str(shape, "x").strip("()")


def mermaid(root, shape) -> str:
    """A ``flowchart TD``: stem -> stages (downsample, one block's layers, residual) -> head."""
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
