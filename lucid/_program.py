"""A traced program: variables, equations, and their printed form (like ``jax.make_jaxpr``).

A :class:`Program` is what ``lucid.jit`` records from a function: its input variables,
a list of :class:`Eqn` (primitive, input variables, output variables, static params),
the constants it closed over, and its output variables. Transformations and the
planner read and rewrite programs; nothing in a program refers to Python closures.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ._core import Aval, Primitive

__all__ = ["Var", "Eqn", "Program"]


class Var:
    """A program variable: one array value with an abstract value (shape, dtype)."""

    __slots__ = ("id", "aval")
    _ids = itertools.count()

    def __init__(self, aval: Aval):
        self.id = next(Var._ids)
        self.aval = aval

    def __repr__(self):
        return f"Var({self.id}:{self.aval})"


@dataclass
class Eqn:
    """``outputs = prim(*inputs, **params)``; an input may be None (an absent optional)."""
    prim: Primitive
    inputs: tuple
    outputs: tuple
    params: dict
    scope: str = ""       # the name scope it was recorded in (lucid._core.name_scope)

    @property
    def effectful(self) -> bool:
        return getattr(self.prim, "effect", False)


@dataclass
class Program:
    inputs: list
    eqns: list
    outputs: list                      # a Var, or a Python value returned as is
    consts: dict = field(default_factory=dict)   # Var -> the array it stands for

    def vars_used(self):
        used = set()
        for e in self.eqns:
            used.update(v for v in e.inputs if isinstance(v, Var))
        used.update(v for v in self.outputs if isinstance(v, Var))
        return used

    def __str__(self):
        return _Printer(self).render()


class _Printer:
    """Names variables a, b, ..., z, ba, bb, ... in order of appearance."""

    def __init__(self, program: Program):
        self.program = program
        self.names: dict = {}

    def name(self, v) -> str:
        if v is None:
            return "_"
        if not isinstance(v, Var):
            return repr(v)
        if v not in self.names:
            self.names[v] = _letters(len(self.names))
        return self.names[v]

    def decl(self, v) -> str:
        return f"{self.name(v)}:{v.aval}"

    def render(self) -> str:
        p = self.program
        consts = " ".join(self.decl(v) for v in p.consts)
        inputs = " ".join(self.decl(v) for v in p.inputs)
        lines = [f"{{ lambda {consts} ; {inputs}. let"]
        for e in p.eqns:
            outs = " ".join(self.decl(v) for v in e.outputs)
            params = _params(e.params)
            ins = " ".join(self.name(v) for v in e.inputs)
            lines.append(f"    {outs} = {e.prim.name}{params} {ins}")
        outs = ", ".join(self.name(v) for v in p.outputs)
        lines.append(f"  in ({outs}{',' if len(p.outputs) == 1 else ''}) }}")
        return "\n".join(lines)


def _letters(i: int) -> str:
    s = ""
    while True:
        s = chr(ord("a") + i % 26) + s
        i //= 26
        if i == 0:
            return s


def _params(params: dict) -> str:
    if not params:
        return ""
    shown = []
    for k, v in params.items():
        if isinstance(v, np.dtype):
            v = v.name
        text = repr(v)
        if len(text) > 60:
            text = text[:57] + "..."
        shown.append(f"{k}={text}")
    return "[" + " ".join(shown) + "]"
