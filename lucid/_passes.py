"""Program-to-program passes run by ``lucid.jit`` before planning.

* :func:`dce` drops equations whose outputs nothing reads (the residuals a forward
  computes for a backward that is not taken, the cotangents of constants), keeping
  effects (host callbacks).
* fusion passes (``lucid._fusion``) rewrite memory-bound chains into fused primitives;
* :func:`lucid._remat.rematerialize` recomputes cheap activations late instead of keeping them.
"""
from __future__ import annotations

from ._program import Program, Var

__all__ = ["optimize", "dce"]


def dce(program: Program) -> Program:
    live = {v for v in program.outputs if isinstance(v, Var)}
    kept = []
    for e in reversed(program.eqns):
        if e.effectful or any(v in live for v in e.outputs):
            kept.append(e)
            live.update(v for v in e.inputs if isinstance(v, Var))
    kept.reverse()
    consts = {v: a for v, a in program.consts.items() if v in live}
    return Program(program.inputs, kept, program.outputs, consts)


def optimize(program: Program) -> Program:
    """DCE, the fusion rewrites, DCE of what they made dead, then rematerialisation of
    cheap activations a backward would otherwise keep alive (lucid/_remat.py)."""
    from ._fusion import fuse
    from ._remat import rematerialize
    return rematerialize(dce(fuse(dce(program), fold_batch_norm=True)))
