#!/usr/bin/env python
"""Where lucid's time goes: a per-primitive breakdown of a model's forward and training step.

Usage (from the repository root)::

    python benchmarks/profile_lucid.py                         # convnext_tiny, batch 16
    python benchmarks/profile_lucid.py --model inception_next_tiny --batch 1 --cprofile

Every ``@primitive`` in the loaded ``lucid`` modules is instrumented in place (its
forward function is swapped inside the primitive's closure), so each forward and each
VJP closure is timed with its input shapes. Times are *self* times (a primitive called
inside another is not counted twice); "outside primitives" is the rest of the step:
validation, pytree and tape bookkeeping, gradient accumulation of shared inputs. After
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


def _wrap_forward(fn, opname, timer):
    def forward(*args, **kwargs):
        shapes = _shapes(args)
        out, vjp = timer.timed(("fwd", opname, shapes), lambda: fn(*args, **kwargs))
        return out, lambda g: timer.timed(("bwd", opname, shapes), vjp, g)
    forward.profiled = True
    return forward


def instrument(timer: OpTimer) -> int:
    """Swap every loaded primitive's forward for a timed one; returns how many."""
    seen = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("lucid") or module is None:
            continue
        for op in list(vars(module).values()):
            if id(op) in seen or not callable(op) or not hasattr(op, "primitive"):
                continue
            code, closure = getattr(op, "__code__", None), getattr(op, "__closure__", None)
            if code is None or closure is None:
                continue
            cells = dict(zip(code.co_freevars, closure))
            if "fn" not in cells or "opname" not in cells:
                continue
            seen.add(id(op))
            fn = cells["fn"].cell_contents
            if not getattr(fn, "profiled", False):
                cells["fn"].cell_contents = _wrap_forward(fn, cells["opname"].cell_contents,
                                                         timer)
    return len(seen)


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
    for direction in ("fwd", "bwd"):
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
    args = p.parse_args(argv)
    for var in ("LUCID_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy loads its BLAS
    sys.path.insert(0, _REPO)
    import lucid
    from benchmarks import build_model, forward_fn, make_batch, train_step_fn
    lucid.set_num_threads(args.threads)
    model = build_model(args.model)
    x, y = make_batch(args.batch)
    calls = {"forward": (lambda f: lambda: f(x))(forward_fn(model)),
             "train": (lambda s: lambda: s(x, y))(train_step_fn(model))}
    timer = OpTimer()
    for kind in args.only.split(","):
        calls[kind]()  # import (and compile) every module the call needs, then instrument
        n = instrument(timer)
        profile(calls[kind], f"{args.model} {kind} batch {args.batch} ({n} primitives "
                f"instrumented, {args.threads} threads)", args, timer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
