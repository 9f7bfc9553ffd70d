"""Fusion rewrites: memory-bound chains of a traced program become one fused primitive.

Model code says what it means with plain ops (``gelu(linear(x, w, b))``,
``x + gamma * y``); these rewrites find the chains and call the fused kernels, which
compute the same roundings in one pass over memory instead of one pass per op:

* ``gelu(linear(x, w, b))`` -> ``bias_gelu(linear(x, w), b)`` (the bias add joins the
  GELU pass over the MLP's widest activation);
* ``s + y * gamma`` -> ``scale_residual(s, y, gamma)`` (layer scale + residual add), and
  when ``y = linear(h, w, b)`` -> ``bias_scale_residual(s, linear(h, w), gamma, b)``;
* in inference, eval-mode BatchNorm folded into the conv or linear next to it
  (lucid/_fold_bn.py).

A chain is fused only when its intermediate values are read by nothing else (not by
another equation, not as a program output), so no value the program needs disappears.
Backward programs are rewritten too where the same shapes appear.
"""
from __future__ import annotations

from ._core import aval
from ._program import Eqn, Program, Var

__all__ = ["fuse", "FUSIONS"]


class _Uses:
    """Who reads each variable, and which equation defines it."""

    def __init__(self, program: Program):
        self.readers: dict = {}
        self.defined: dict = {}
        for i, e in enumerate(program.eqns):
            for v in e.inputs:
                if isinstance(v, Var):
                    self.readers.setdefault(v, []).append(i)
            for v in e.outputs:
                self.defined[v] = i
        self.outputs = {v for v in program.outputs if isinstance(v, Var)}

    def only_reader(self, v, i) -> bool:
        return v not in self.outputs and self.readers.get(v) == [i]

    def sole_producer(self, v, i, replaced=()):
        """The index of the equation defining ``v`` when equation ``i`` is its only reader
        and the definer is not rewritten yet (else None): only then can the two merge."""
        j = self.defined.get(v)
        if j is None or j in replaced or not self.only_reader(v, i):
            return None
        return j


def _prim(name):
    """The primitive registered under ``name`` (imported lazily: lucid.nn imports us)."""
    from .nn import _activation, _fused
    table = {
        "nn.functional.bias_gelu": _activation.bias_gelu_p,
        "nn.functional.scale_residual": _fused.scale_residual_p,
        "nn.functional.bias_scale_residual": _fused.bias_scale_residual_p,
    }
    return table[name]


def _linear_without_bias(e, out_var):
    """A copy of linear equation ``e`` with no bias, writing ``out_var``."""
    x, w, _ = e.inputs
    return Eqn(e.prim, (x, w, None), (out_var,), dict(e.params), e.scope)


def _fuse_bias_gelu(program, uses, i, e, replaced):
    """gelu(linear(x, w, b)) -> bias_gelu(linear(x, w), b)."""
    if e.prim.name != "nn.functional.gelu":
        return False
    (v,) = e.inputs
    j = uses.sole_producer(v, i, replaced)
    if j is None:
        return False
    lin = program.eqns[j]
    if lin.prim.name != "nn.functional.linear" or lin.inputs[2] is None:
        return False
    b = lin.inputs[2]
    if len(v.aval.shape) < 1 or b.aval.shape != (v.aval.shape[-1],):
        return False
    h = Var(aval(v.aval.shape, v.aval.dtype))
    replaced[j] = [_linear_without_bias(lin, h)]
    replaced[i] = [Eqn(_prim("nn.functional.bias_gelu"), (h, b), e.outputs, {}, e.scope)]
    return True


def _scaled_branch(program, uses, t, i):
    """If ``t = y * gamma`` (gamma over the last axis) read only by equation i: (y, gamma, j)."""
    j = uses.sole_producer(t, i)
    if j is None:
        return None
    mul = program.eqns[j]
    if mul.prim.name != "multiply" or len(t.aval.shape) < 1:
        return None
    a, b = mul.inputs
    for y, gamma in ((a, b), (b, a)):
        if (isinstance(y, Var) and isinstance(gamma, Var) and y.aval.shape == t.aval.shape
                and gamma.aval.shape == (t.aval.shape[-1],) and y.aval.dtype == t.aval.dtype
                and gamma.aval.dtype == t.aval.dtype):
            return y, gamma, j
    return None


def _fuse_scale_residual(program, uses, i, e, replaced):
    """s + y * gamma -> scale_residual(s, y, gamma) (+ the bias of a linear making y)."""
    if e.prim.name != "add":
        return False
    for s, t in (e.inputs, e.inputs[::-1]):
        out = e.outputs[0].aval
        if not (isinstance(s, Var) and isinstance(t, Var)) or s.aval.shape != out.shape \
                or s.aval.dtype != out.dtype:
            continue
        found = _scaled_branch(program, uses, t, i)
        if found is None or found[2] in replaced:
            continue
        y, gamma, j = found
        if s.aval.shape != y.aval.shape:
            continue
        k = uses.defined.get(y)
        lin = program.eqns[k] if k is not None and k not in replaced else None
        if (lin is not None and lin.prim.name == "nn.functional.linear" and lin.inputs[2] is not None
                and uses.only_reader(y, j) and lin.inputs[2].aval.shape == gamma.aval.shape):
            y2 = Var(aval(y.aval.shape, y.aval.dtype))
            replaced[k] = [_linear_without_bias(lin, y2)]
            fused = Eqn(_prim("nn.functional.bias_scale_residual"),
                        (s, y2, gamma, lin.inputs[2]), e.outputs, {}, e.scope)
        else:
            fused = Eqn(_prim("nn.functional.scale_residual"), (s, y, gamma), e.outputs, {},
                        e.scope)
        replaced[j] = []
        replaced[i] = [fused]
        return True
    return False


FUSIONS = (_fuse_bias_gelu, _fuse_scale_residual)


def fuse(program: Program, fold_batch_norm: bool = False) -> Program:
    """Apply every rewrite in :data:`FUSIONS` once over the program; with
    ``fold_batch_norm`` (whole programs, not the sub-programs a grad differentiates) also
    fold eval-mode BatchNorm into its neighbouring layer (lucid/_fold_bn.py)."""
    from ._fold_bn import FOLDS
    rules = FUSIONS + (FOLDS if fold_batch_norm else ())
    uses = _Uses(program)
    replaced: dict = {}   # equation index -> the equations that take its place
    for i, e in enumerate(program.eqns):
        if i in replaced:
            continue
        for rule in rules:
            if rule(program, uses, i, e, replaced):
                break
    if not replaced:
        return program
    eqns = []
    for i, e in enumerate(program.eqns):
        eqns.extend(replaced.get(i, [e]))
    return Program(program.inputs, eqns, program.outputs, program.consts)
