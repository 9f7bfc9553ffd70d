"""Group a traced forward program into the layer rows of ``lucid.summary``.

Each equation of the program belongs to one row:

* an equation that reads a parameter (or a value computed from parameters alone) belongs
  to that parameter's layer: its "."-joined pytree path minus the leaf name ("weight",
  "bias", BatchNorm buffers) is timm's module path, e.g. ``stages.1.blocks.0.mlp.fc1``;
  a parameter with another leaf name (a layer scale ``gamma``) is a row of its own; an
  equation reading parameters of several layers (the Inception mixer's three convs)
  belongs to their common prefix;
* any other equation (GELU, residual adds, pooling) belongs to the name scope it was
  recorded in (``lucid._core.name_scope``; the model functions and ``Module`` calls set
  one per stem / stage / block / head / child module).

Rows nest by path prefix; a parameter counts in the row of the first layer that uses it.
Shapes are shown NCHW: 4-d values are followed from the NCHW input through the
programs' transposes and channels-last convolutions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ._program import Program, Var

__all__ = ["LayerInfo", "build_rows"]

# leaf names that are a layer's own tensors: the row is the path without them
_LAYER_LEAVES = frozenset({"weight", "bias", "running_mean", "running_var",
                           "num_batches_tracked"})
_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


@dataclass
class LayerInfo:
    """One row of a summary; a group row's params / MACs include its children's.

    Attributes:
      name: the module path ("stages.1.blocks.0.mlp.fc1"; "" for the model).
      kind: the layer type ("Conv2d", "LayerNorm", "ConvNeXtBlock", ...).
      out_shape: the output shape (NCHW for images), or None when the row computes nothing.
      params: trainable parameters.
      macs: multiply-accumulates, or None when a primitive's count is unknown.
      children: sub-rows, in execution order.
      detail: a short description ("7x7 dw, s2", "96->384").
    """

    name: str
    kind: str
    out_shape: tuple | None
    params: int
    macs: int | None
    children: list = field(default_factory=list)
    detail: str = ""

    def walk(self, depth: int = 0):
        """Yield ``(depth, row)`` for this row and its descendants, depth first."""
        yield depth, self
        for c in self.children:
            yield from c.walk(depth + 1)


def _owner(path: str) -> str:
    head, _, leaf = path.rpartition(".")
    return head if leaf in _LAYER_LEAVES else path


def _common_prefix(paths) -> str:
    split = [p.split(".") if p else [] for p in paths]
    out = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        out.append(parts[0])
    return ".".join(out)


def _parent(path: str, rows) -> str:
    parts = path.split(".")
    for n in range(len(parts) - 1, 0, -1):
        cand = ".".join(parts[:n])
        if cand in rows:
            return cand
    return ""


def layouts(program: Program, x: Var) -> dict:
    """``{var: "NCHW" | "NHWC"}`` for the 4-d values whose layout follows from the input."""
    lay = {x: "NCHW"} if x.aval.ndim == 4 else {}
    for e in program.eqns:
        known = next((lay[v] for v in e.inputs if isinstance(v, Var) and v in lay), None)
        if e.prim.name == "transpose":
            axes = tuple(e.params.get("axes", ()))
            out = {("NCHW", _TO_NHWC): "NHWC", ("NHWC", _TO_NCHW): "NCHW"}.get((known, axes))
        elif "channels_last" in e.params or "nhwc" in e.params:
            out = "NHWC" if e.params.get("channels_last", e.params.get("nhwc")) else "NCHW"
        else:
            out = known
        if out is not None:
            lay.update((v, out) for v in e.outputs if v.aval.ndim == 4)
    return lay


def shown_shape(var: Var, lay: dict) -> tuple:
    s = var.aval.shape
    return (s[0], s[3], s[1], s[2]) if lay.get(var) == "NHWC" else tuple(s)


class _Row:
    __slots__ = ("eqns", "prep", "params", "first", "last")

    def __init__(self):
        self.eqns, self.prep, self.params = [], [], 0   # prep: equations on parameters only
        self.first = self.last = None                  # activation equations, subtree-wide


def _attribute(program: Program, leaf_paths: dict):
    """Each equation's row. Returns ``(rows, reads, placed, owner)``: row path -> _Row,
    eqn index -> whether it reads a parameter, leaf var -> the row of the first equation
    that uses it on activations, var -> the layer path of parameters (and values computed
    from parameters alone)."""
    owner = {v: _owner(p) for v, p in leaf_paths.items()}
    sources = {v: (v,) for v in leaf_paths}
    placed, rows, reads = {}, {}, {}
    for i, e in enumerate(program.eqns):
        ins = [v for v in e.inputs if isinstance(v, Var)]
        pin = [v for v in ins if v in owner]
        act = [v for v in ins if v not in owner and v not in program.consts]
        path = _common_prefix(sorted({owner[v] for v in pin})) if pin else e.scope
        row = rows.setdefault(path, _Row())
        reads[i] = bool(pin)
        if pin and not act:   # e.g. a reshaped weight: still the layer's parameter
            row.prep.append(i)
            for v in e.outputs:
                owner[v], sources[v] = path, tuple(s for p in pin for s in sources[p])
            continue
        row.eqns.append(i)
        for v in pin:
            for leaf in sources[v]:
                placed.setdefault(leaf, path)
    return rows, reads, placed, owner


def build_rows(program: Program, leaf_paths: dict, sizes: dict, modules: dict, rules,
               root_kind: str, x: Var, y: Var) -> LayerInfo:
    """The LayerInfo tree of a traced forward.

    Args:
      program: the program of ``model(x)`` (its first output is the model's output ``y``).
      leaf_paths: input var -> "."-joined pytree path of each parameter / state leaf.
      sizes: input var -> its trainable size (0 for buffers).
      modules: module path -> class name (the facade's named modules).
      rules: ``macs(eqn)``, ``kind(eqn, reads_param)``, ``detail(eqn)`` (lucid._summary).
      root_kind, x, y: the model's class name, input and output variables.
    """
    rows, reads, placed, owner = _attribute(program, leaf_paths)
    for v in leaf_paths:
        path = placed.get(v, owner[v])
        rows.setdefault(path, _Row()).params += sizes[v]
    for path in modules:
        rows.setdefault(path, _Row())
    rows.setdefault("", _Row())
    parents = {p: _parent(p, rows) for p in rows if p}
    _span(rows, parents)
    lay = layouts(program, x)
    infos = {p: _info(p, r, program, reads, modules, rules, lay) for p, r in rows.items()}
    order = sorted((p for p in rows if p), key=lambda p: (rows[p].first is None,
                                                          rows[p].first or 0, p))
    for p in order:
        infos[parents[p]].children.append(infos[p])
    root = infos[""]
    root.kind, root.out_shape = root_kind, shown_shape(y, lay) if isinstance(y, Var) else None
    _total(root)
    _prune(root)
    return root


def _span(rows, parents):
    """Give each row the first and last activation equation of its subtree."""
    for p in sorted(rows, key=lambda p: -len(p.split("."))):
        r = rows[p]
        if r.eqns:
            r.first = min(r.eqns) if r.first is None else min(r.first, min(r.eqns))
            r.last = max(r.eqns) if r.last is None else max(r.last, max(r.eqns))
        if p and r.first is not None:
            up = rows[parents[p]]
            up.first = r.first if up.first is None else min(up.first, r.first)
            up.last = r.last if up.last is None else max(up.last, r.last)


def _info(path, row, program, reads, modules, rules, lay) -> LayerInfo:
    eqns = [program.eqns[i] for i in row.eqns]
    macs = [rules.macs(program.eqns[i]) for i in row.eqns + row.prep]
    kind = modules.get(path) or next(
        (k for i in row.eqns if (k := rules.kind(program.eqns[i], reads[i]))), None) or (
        eqns[0].prim.name.rsplit(".", 1)[-1] if eqns else "?")
    detail = next((d for e in eqns if (d := rules.detail(e))), "")
    out = None if row.last is None else shown_shape(program.eqns[row.last].outputs[0], lay)
    return LayerInfo(path, kind, out, row.params,
                     None if any(m is None for m in macs) else sum(macs), detail=detail)


def _total(info: LayerInfo):
    for c in info.children:
        _total(c)
        info.params += c.params
        info.macs = None if info.macs is None or c.macs is None else info.macs + c.macs


def _prune(info: LayerInfo):
    """Drop rows with no parameters and no computation (an eval-mode Dropout, Identity)."""
    for c in info.children:
        _prune(c)
    info.children = [c for c in info.children if c.params or c.out_shape is not None or c.children]
