"""The memory plan of a program and the executor that replays it.

Planning (once per compiled signature, before anything runs):

1. *Storage roots.* A view equation (reshape, transpose, ...) shares its input's memory,
   so every variable maps to the root variable that owns its storage; a root lives until
   the last use of any of its views.
2. *Classes.* Roots of program inputs and constants are external (the caller's arrays).
   Roots of program outputs get fresh memory per call (results must not alias the next
   call's buffers) unless a donated input of the same shape and dtype is dead by then, in
   which case the output is written into that input's array. Every other root lives in
   one arena.
3. *Arena offsets.* Walking the equations in order, each equation's new roots get the
   best-fitting free range of the arena (64-byte aligned) and roots whose last use is
   this equation are freed afterwards (never before: an impl reads its inputs while it
   writes its outputs). The arena size is the program's working memory, known before it
   runs (``Plan.arena_bytes``).

The executor keeps one arena per thread, carved into views once, so a call allocates
nothing but its outputs.
"""
from __future__ import annotations

import bisect
import threading

import numpy as np

from ._core import allocate, aval, on_device
from ._device import on_backend
from ._program import Program, Var

__all__ = ["Plan", "plan_memory", "Executable", "ALIGN"]

ALIGN = 64


class Plan:
    """Where each variable lives. ``offsets``: arena root -> byte offset; ``fresh``: roots
    allocated per call; ``donate``: root -> index of the donated input leaf it reuses;
    ``root``: var -> root var; ``live``: root -> (first step, last step)."""

    def __init__(self):
        self.root: dict = {}
        self.live: dict = {}
        self.offsets: dict = {}
        self.fresh: set = set()
        self.donate: dict = {}
        self.arena_bytes = 0

    def check(self) -> None:
        """Raise AssertionError if two arena roots that are live at the same time overlap."""
        items = sorted(self.offsets.items(), key=lambda kv: kv[1])
        for i, (a, off_a) in enumerate(items):
            end_a = off_a + _nbytes(a)
            for b, off_b in items[i + 1:]:
                if off_b >= end_a:
                    break
                (fa, la), (fb, lb) = self.live[a], self.live[b]
                if fa <= lb and fb <= la:
                    raise AssertionError(f"lucid plan: {a} and {b} share arena bytes "
                                         f"[{off_b}, {end_a}) while both are live")


def _nbytes(v: Var) -> int:
    return max(v.aval.nbytes, 1)


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def plan_memory(program: Program, donated=frozenset(), inplace=True) -> Plan:
    plan = Plan()
    external = set(program.inputs) | set(program.consts)
    for v in external:
        plan.root[v] = v
        plan.live[v] = (-1, -1)
    for i, e in enumerate(program.eqns):
        for v in e.inputs:
            if isinstance(v, Var):
                r = plan.root[v]
                plan.live[r] = (plan.live[r][0], i)
        for k, v in enumerate(e.outputs):
            r = plan.root[e.inputs[0]] if e.prim.view and k == 0 else v
            plan.root[v] = r
            if r is v:
                plan.live[v] = (i, i)
    end = len(program.eqns)
    out_roots = {plan.root[v] for v in program.outputs if isinstance(v, Var)}
    for r in out_roots:
        plan.live[r] = (plan.live[r][0], end)
        if r not in external:
            plan.fresh.add(r)
    _assign_donations(program, plan, donated, inplace)
    _assign_offsets(program, plan, external)
    return plan


def _assign_donations(program, plan, donated, inplace):
    """Write an output into a donated input's array when that input is dead by then."""
    free = [program.inputs[i] for i in sorted(donated)]
    defined_by = {v: i for i, e in enumerate(program.eqns) for v in e.outputs}
    for r in sorted(plan.fresh, key=lambda v: plan.live[v][0]):
        step = defined_by.get(r)
        for j, src in enumerate(free):
            if src is None or src.aval[:2] != r.aval[:2] or plan.root[src] is not src:
                continue
            last = plan.live[src][1]
            in_place_ok = (inplace and last == step and getattr(program.eqns[step].prim,
                                                                  "inplace_ok", False))
            if src in plan.fresh or not (last < step or in_place_ok):
                continue
            plan.donate[r] = program.inputs.index(src)
            plan.fresh.discard(r)
            free[j] = None
            break


def _assign_offsets(program, plan, external):
    arena = _Arena()
    by_last: dict = {}
    for r, (first, last) in plan.live.items():
        if r not in external and r not in plan.fresh and r not in plan.donate:
            by_last.setdefault(last, []).append(r)
    for i, e in enumerate(program.eqns):
        for v in e.outputs:
            if plan.root[v] is v and v in plan.live and v not in external \
                    and v not in plan.fresh and v not in plan.donate:
                plan.offsets[v] = arena.take(_aligned(_nbytes(v)))
        for r in by_last.get(i, ()):
            arena.give(plan.offsets[r], _aligned(_nbytes(r)))
    plan.arena_bytes = arena.size


class _Arena:
    """A best-fit allocator of byte ranges over a growing arena, coalescing on free."""

    def __init__(self):
        self.free: list = []   # sorted [(offset, size)]
        self.size = 0

    def take(self, n: int) -> int:
        best = None
        for k, (off, size) in enumerate(self.free):
            if size >= n and (best is None or size < self.free[best][1]):
                best = k
        if best is None:
            if self.free and self.free[-1][0] + self.free[-1][1] == self.size:
                off = self.free.pop()[0]   # extend the free tail
            else:
                off = self.size
            self.size = off + n
            return off
        off, size = self.free.pop(best)
        if size > n:
            bisect.insort(self.free, (off + n, size - n))
        return off

    def give(self, off: int, n: int) -> None:
        k = bisect.bisect(self.free, (off, n))
        self.free.insert(k, (off, n))
        merged = []
        for o, s in self.free:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((o, s))
        self.free = merged


# ----------------------------------------------------------------------------- executor

class Executable:
    """A planned program, ready to run on concrete input arrays."""

    def __init__(self, program: Program, donated=frozenset(), backend: str = "cpu"):
        self.program, self.backend = program, backend
        self.plan = plan_memory(program, donated)
        self.slot: dict = {}
        for v in list(program.inputs) + list(program.consts):
            self._slot(v)
        self.steps = [self._step(e) for e in program.eqns]
        self.outputs = [self._slot(v) if isinstance(v, Var) else v for v in program.outputs]
        # constants live where the program runs (moved once, when the program is built)
        self.const_slots = [(self.slot[v], on_backend(a, backend))
                            for v, a in program.consts.items()]
        self.const_of = dict(self.const_slots)   # a constant output is returned as a copy
        self.fresh = [(self.slot[r], r.aval) for r in self.plan.fresh]
        self.donate = [(self.slot[r], i) for r, i in self.plan.donate.items()]
        self._local = threading.local()

    def _slot(self, v):
        if v not in self.slot:
            self.slot[v] = len(self.slot)
        return self.slot[v]

    def _step(self, e):
        impl = e.prim.impls.get(self.backend)
        if impl is None:
            raise NotImplementedError(f"lucid.jit: {e.prim.name} has no {self.backend} kernels")
        ins = tuple(None if v is None else self._slot(v) for v in e.inputs)
        outs = tuple(self._slot(v) for v in e.outputs)
        return impl, ins, outs, e.params, e.prim.view

    def _arena_views(self):
        """This thread's arena, carved into one view per arena root (made once)."""
        views = getattr(self._local, "views", None)
        if views is None:
            arena = allocate(aval((max(self.plan.arena_bytes, 1),), np.uint8), self.backend)
            views = [(self.slot[r], _carve(arena, off, r.aval))
                     for r, off in self.plan.offsets.items()]
            self._local.arena, self._local.views = arena, views
        return views

    def run(self, arrays):
        env = [None] * len(self.slot)
        for i, a in enumerate(arrays):
            env[i] = a
        for s, a in self.const_slots:
            env[s] = a
        for s, view in self._arena_views():
            env[s] = view
        for s, av in self.fresh:
            env[s] = allocate(av, self.backend)
        if self.donate:
            shared = _shared_with_others(arrays, {i for _, i in self.donate})
            for s, i in self.donate:
                av = self.program.inputs[i].aval
                env[s] = (allocate(av, self.backend) if i in shared
                          else _donated_buffer(arrays[i], av, self.backend))
        for impl, ins, outs, params, view in self.steps:
            args = [None if k is None else env[k] for k in ins]
            if view:
                env[outs[0]] = impl(*args, **params)
            else:
                impl(*args, out=tuple(env[k] for k in outs), **params)
        return [self._result(env, o) for o in self.outputs]

    def _result(self, env, o):
        if not isinstance(o, int):
            return o.value  # a static (non-array) output
        if o in self.const_of:  # a copy, so the caller cannot change the program's constant
            const = self.const_of[o]
            return const.copy() if on_device(const) else np.array(const)
        return env[o]


def _carve(arena, off, a):
    n = max(a.nbytes, 0)
    return arena[off:off + n].view(a.dtype).reshape(a.shape)


def _root(a):
    if on_device(a):  # a device array: the start of its allocation
        return ("device", a.allocation_id())
    while getattr(a, "base", None) is not None:
        a = a.base
    return id(a)


def _shared_with_others(arrays, donated) -> set:
    """Donated inputs whose memory another input also uses (the same array passed twice,
    or views of one buffer): writing into them would change what the program reads."""
    roots: dict = {}
    for i, a in enumerate(arrays):
        roots.setdefault(_root(a), []).append(i)
    return {i for i in donated if len(roots[_root(arrays[i])]) > 1}


def _donated_buffer(arr, a, backend):
    """The donated input array itself when it can be written, else a fresh buffer."""
    if isinstance(arr, np.ndarray) and not (arr.flags.c_contiguous and arr.flags.writeable):
        return allocate(a, backend)
    if on_device(arr) and not arr.is_c_contiguous():
        return allocate(a, backend)
    return arr
