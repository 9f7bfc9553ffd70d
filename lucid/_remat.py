"""Rematerialisation: recompute cheap elementwise values in the backward instead of keeping
them alive from the forward.

In a training program the MLP's activation ``a = bias_gelu(h, b)`` (4x the channels, the
widest tensor of a ConvNeXt/MetaNeXt block) is read by fc2 in the forward and by fc2's
weight gradient near the end of the backward, while ``h`` itself stays alive until
``bias_gelu_bwd``. Keeping ``a`` costs a 4C-wide buffer per block for the whole step;
recomputing it from ``h`` just before its late reader costs one elementwise pass. The pass
does this when every input of the producing equation is alive at the late reader anyway
(so nothing else's lifetime grows), and the recomputation gives the same bits. The same
holds for LayerNorm's output, read by fc1 and by fc1's weight gradient while LayerNorm's
input waits for ``layer_norm_bwd``.
"""
from __future__ import annotations

from ._program import Eqn, Program, Var

__all__ = ["rematerialize", "REMAT_PRIMITIVES"]

REMAT_PRIMITIVES = frozenset({"nn.functional.bias_gelu", "nn.functional.gelu",
                              "nn.functional.layer_norm"})
MIN_GAP = 8   # equations between the forward and the late reader worth a recomputation


def _last_use(program):
    last = {}
    for i, e in enumerate(program.eqns):
        for v in e.inputs:
            if isinstance(v, Var):
                last[v] = i
    for v in program.outputs:
        if isinstance(v, Var):
            last[v] = len(program.eqns)
    return last


def rematerialize(program: Program) -> Program:
    readers: dict = {}
    for i, e in enumerate(program.eqns):
        for v in e.inputs:
            if isinstance(v, Var):
                readers.setdefault(v, []).append(i)
    outputs = {v for v in program.outputs if isinstance(v, Var)}
    external = set(program.inputs) | set(program.consts)   # not in the arena: free to read
    last = _last_use(program)
    inserts: dict = {}     # equation index -> recomputations to place before it
    renames: dict = {}     # (equation index, var) -> the recomputed var it reads instead
    for i, e in enumerate(program.eqns):
        if e.prim.name not in REMAT_PRIMITIVES:
            continue
        v = e.outputs[0]          # the activation (layer_norm's mean/rstd come along)
        rs = readers.get(v, [])
        if v in outputs or len(rs) < 2 or rs[-1] - rs[-2] < MIN_GAP:
            continue
        late = rs[-1]
        if not all(u in external or last.get(u, -1) >= late
                   for u in e.inputs if isinstance(u, Var)):
            continue   # recomputing would keep an input alive longer than it lives now
        fresh = tuple(Var(o.aval) for o in e.outputs)
        inserts.setdefault(late, []).append(Eqn(e.prim, e.inputs, fresh, dict(e.params),
                                                e.scope))
        renames[(late, v)] = fresh[0]
    if not inserts:
        return program
    eqns = []
    for i, e in enumerate(program.eqns):
        eqns.extend(inserts.get(i, ()))
        if any((i, v) in renames for v in e.inputs):
            e = Eqn(e.prim, tuple(renames.get((i, v), v) for v in e.inputs), e.outputs,
                    e.params, e.scope)
        eqns.append(e)
    return Program(program.inputs, eqns, program.outputs, program.consts)
