#!/usr/bin/env python
"""Where lucid's time goes: a per-primitive breakdown of a model's forward and training step.

Usage (from the repository root)::

    python benchmarks/profile_lucid.py                         # convnext_tiny, batch 16
    python benchmarks/profile_lucid.py --model inception_next_tiny --batch 1 --cprofile
    python benchmarks/profile_lucid.py --jit --only train      # the jitted program, per equation

Eager (default): every primitive of the loaded ``lucid`` modules is instrumented in place:
the kernels of a :class:`lucid._core.Primitive` (``impls``, which a backward rule also
calls: direction "op") and the forward and VJP closure of an old-style ``@primitive``
(directions "fwd" and "bwd"), each timed with its input shapes. ``--jit``: the functions
are compiled by ``lucid.jit`` and each step of the planned program is timed (direction
"jit"; fused primitives included). Times are *self* times (a primitive called inside
another is not counted twice); "outside primitives" is the rest of the call: validation,
pytree and tape bookkeeping, gradient accumulation, output allocation. After
``--warmup`` untimed calls, ``--repeats`` calls are profiled and reported per call.
``--cprofile`` adds Python's cProfile of one call, sorted by own time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OpTimer:
    """Self-time per (direction, primitive, input shapes), with nesting handled by a stack."""

    def __init__(self):
        self.stats = defaultdict(lambda: [0, 0.0])  # key -> [calls, seconds]
        self._stack = []  # time spent in nested primitives, one slot per open call
        self.enabled = False

    def timed(self, key, fn, *args):
        if not self.enabled:
            return fn(*args)
        self._stack.append(0.0)
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            total = time.perf_counter() - t0
            nested = self._stack.pop()
            if self._stack:
                self._stack[-1] += total
            entry = self.stats[key]
            entry[0] += 1
            entry[1] += total - nested


def _shapes(args) -> str:
    return " ".join("x".join(map(str, a.shape)) if hasattr(a, "shape") else "-" for a in args)


def _wrap_legacy(fn, opname, timer):
    """An old-style primitive's ``fn -> (out, vjp)``, both halves timed."""
    def forward(*args, **kwargs):
        shapes = _shapes(args)
        out, vjp = timer.timed(("fwd", opname, shapes), lambda: fn(*args, **kwargs))
        return out, lambda g: timer.timed(("bwd", opname, shapes), vjp, g)
    forward.profiled = True
    return forward


def _wrap_impl(impl, opname, timer, direction="op", shapes=None):
    """A kernel ``impl(*args, **params)`` timed under (direction, opname, input shapes)."""
    def timed_impl(*args, **params):
        key = (direction, opname, _shapes(args) if shapes is None else shapes)
        return timer.timed(key, lambda: impl(*args, **params))
    timed_impl.profiled = True
    return timed_impl


def _loaded_primitives() -> list:
    """Every Primitive reachable from the loaded lucid modules' globals (as an object, or
    as the ``.primitive`` of an old-style op)."""
    from lucid._core import Primitive
    found = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("lucid") or module is None:
            continue
        for obj in list(vars(module).values()):
            prim = obj if isinstance(obj, Primitive) else getattr(obj, "primitive", None)
            if isinstance(prim, Primitive):
                found[id(prim)] = prim
    return list(found.values())


def instrument(timer: OpTimer) -> int:
    """Swap every loaded primitive's kernels for timed ones; returns how many primitives."""
    prims = _loaded_primitives()
    for prim in prims:
        if prim.legacy is not None and not getattr(prim.legacy, "profiled", False):
            prim.legacy = _wrap_legacy(prim.legacy, prim.name, timer)
        for backend, impl in list(prim.impls.items()):
            if not getattr(impl, "profiled", False):
                prim.impls[backend] = _wrap_impl(impl, prim.name, timer)
    return len(prims)


def instrument_program(lowered, timer: OpTimer) -> int:
    """Time each step of a jitted program (``Lowered``) in place; returns how many."""
    steps = lowered.executable.steps
    for i, (eqn, (impl, ins, outs, params, view)) in enumerate(zip(lowered.program.eqns,
                                                                      steps)):
        if not getattr(impl, "profiled", False):
            shapes = " ".join("x".join(map(str, v.aval.shape)) if v is not None else "-"
                              for v in eqn.inputs)
            steps[i] = (_wrap_impl(impl, eqn.prim.name, timer, "jit", shapes), ins, outs,
                        params, view)
    return len(steps)


def _table(stats, repeats, step_s, by_shape, top):
    rows = defaultdict(lambda: [0, 0.0])
    for (direction, op, shapes), (n, s) in stats.items():
        key = (direction, op, shapes if by_shape else "")
        rows[key][0] += n
        rows[key][1] += s
    ranked = sorted(rows.items(), key=lambda kv: -kv[1][1])[:top]
    shapes_head = "  [input shapes]" if by_shape else ""
    lines = [f"{'ms/step':>9} {'%':>6} {'calls':>6}  dir  op{shapes_head}"]
    for (direction, op, shapes), (n, s) in ranked:
        ms = 1e3 * s / repeats
        lines.append(f"{ms:9.1f} {100 * s / repeats / step_s:6.1f} {n // repeats:6d}  "
                     f"{direction}  {op}{'  [' + shapes + ']' if by_shape else ''}")
    return "\n".join(lines)


def profile(call, label, args, timer):
    for _ in range(args.warmup):
        call()
    from benchmarks import OtherLoad
    timer.stats.clear()
    timer.enabled = True
    load = OtherLoad()
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        call()
    step_s = (time.perf_counter() - t0) / args.repeats
    timer.enabled = False
    others = load.share()
    inside = sum(s for _, s in timer.stats.values()) / args.repeats
    print(f"\n=== {label}: {1e3 * step_s:.1f} ms per call (instrumented, mean of "
          f"{args.repeats}); primitives {1e3 * inside:.1f} ms, outside primitives "
          f"{1e3 * (step_s - inside):.1f} ms ({100 * (step_s - inside) / step_s:.1f}%); "
          f"other processes used {'?' if others is None else f'{100 * others:.0f}%'} "
          "of the machine meanwhile")
    for direction in sorted({k[0] for k in timer.stats}):
        s = sum(v[1] for k, v in timer.stats.items() if k[0] == direction) / args.repeats
        print(f"    {direction}: {1e3 * s:.1f} ms")
    print("\n-- by primitive --\n" + _table(timer.stats, args.repeats, step_s, False, args.top))
    print("\n-- by primitive and input shapes --\n"
          + _table(timer.stats, args.repeats, step_s, True, args.top))
    if args.cprofile:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.runcall(call)
        print(f"\n-- cProfile of one call ({label}), by own time --")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(args.top)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="convnext_tiny")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=25, help="rows per table")
    p.add_argument("--only", default="forward,train", help="forward, train or both")
    p.add_argument("--cprofile", action="store_true", help="add cProfile of one call")
    p.add_argument("--jit", action="store_true",
                   help="profile the lucid.jit-compiled functions, step by step")
    args = p.parse_args(argv)
    for var in ("LUCID_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy loads its BLAS
    sys.path.insert(0, _REPO)
    import lucid
    import benchmarks as B
    lucid.set_num_threads(args.threads)
    model = B.build_model(args.model)
    x, y = B.make_batch(args.batch)
    forward = (B.jit_forward_fn if args.jit else B.forward_fn)(model)
    step = (B.jit_train_step_fn if args.jit else B.train_step_fn)(model)
    calls = {"forward": lambda: forward(x), "train": lambda: step(x, y)}
    timer = OpTimer()
    for kind in args.only.split(","):
        calls[kind]()  # import (and compile) everything the call needs, then instrument
        if args.jit:
            low = forward.lower(x) if kind == "forward" else step.lower(x, y)
            n = f"{instrument_program(low, timer)} program steps"
        else:
            n = f"{instrument(timer)} primitives"
        profile(calls[kind], f"{args.model} {kind}{' (jit)' if args.jit else ''} batch "
                f"{args.batch} ({n} instrumented, {args.threads} threads)", args, timer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
