"""``lucid.jit``: trace a function once per signature into a :class:`Program`, plan it, replay it.

Semantics follow ``jax.jit``: the cache key is the pytree structure of the dynamic
arguments, their abstract values (shape, dtype, weak type) and the values of the static
arguments; a miss traces the Python function with abstract tracers (its Python side
effects run then, and only then), optimises the program (``lucid._passes``) and plans
its memory (``lucid._plan``); a hit replays the plan. Inside a transform that is already
tracing (``grad`` of a jitted function, ``jit`` inside ``jit``) the function is inlined.
"""
from __future__ import annotations

import functools
import threading

import numpy as np

from . import tree as _tree
from ._core import (Aval, Primitive, Trace, Tracer, _state, aval, aval_of, backend_of, bind,
                    current_scope, on_device)
from ._device import on_backend
from ._program import Eqn, Program, Var

__all__ = ["jit", "Jitted", "Lowered", "host_callback", "make_program"]


class JitTracer(Tracer):
    """An abstract array inside ``lucid.jit``: a program variable, no value."""

    __slots__ = ("var",)

    def __init__(self, trace, var):
        self.trace, self.var, self.aval = trace, var, var.aval


class JitTrace(Trace):
    kind = "jit"

    def __init__(self):
        super().__init__()
        self.eqns: list = []
        self.consts: dict = {}        # Var -> array
        self._const_vars: dict = {}   # id(array) -> (array, Var)

    def new_input(self, a: Aval) -> JitTracer:
        return JitTracer(self, Var(a))

    def var_of(self, x):
        if x is None:
            return None
        if isinstance(x, JitTracer):
            if x.trace is not self:
                raise RuntimeError("lucid.jit: a traced array from another jit trace was used")
            return x.var
        if isinstance(x, Tracer):
            raise TypeError(
                f"lucid.jit: a value traced by an enclosing lucid.{x.trace.kind} reached a "
                "compiled function through a closure; pass it as an argument instead")
        return self._constant(x)

    def _constant(self, x):
        hit = self._const_vars.get(id(x))
        if hit is not None and hit[0] is x:
            return hit[1]
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
        var = Var(aval(arr.shape, arr.dtype))
        self.consts[var] = arr
        self._const_vars[id(x)] = (x, var)   # keeps x alive, so its id stays unique
        return var

    def process(self, prim: Primitive, args, params):
        if prim.legacy is not None:
            raise NotImplementedError(f"lucid.jit: {prim.name} is an old-style primitive without "
                                      "a shape rule; it cannot be traced yet")
        in_vars = tuple(self.var_of(a) for a in args)
        out_avals = prim.out_avals([None if v is None else v.aval for v in in_vars], params)
        out_vars = tuple(Var(a) for a in out_avals)
        self.eqns.append(Eqn(prim, in_vars, out_vars, dict(params), current_scope()))
        outs = tuple(JitTracer(self, v) for v in out_vars)
        return outs if prim.multiple_results else outs[0]


# ----------------------------------------------------------------------------- effects

callback_p = Primitive("host_callback", multiple_results=True)
callback_p.effect = True
callback_p.def_abstract(lambda *xs, fn, args: ())


@callback_p.def_impl
def _callback_impl(*xs, out, fn, args):
    fn(*args, *xs)


callback_p.def_impl(_callback_impl, backend="cuda")
callback_p.def_vjp(lambda cts, *xs, **_: (None,) * len(xs))


def host_callback(fn, *arrays, args=()):
    """Call ``fn(*args, *arrays)`` on concrete arrays: at once when eager, in program order
    when compiled by ``lucid.jit`` (an effect: never removed as dead code). ``fn`` must
    copy what it keeps (arrays may be reused buffers after it returns)."""
    return bind(callback_p, *arrays, fn=fn, args=tuple(args))


# ----------------------------------------------------------------------------- tracing

def _leaf_aval(leaf, where):
    if isinstance(leaf, np.ndarray):
        return aval(leaf.shape, leaf.dtype)
    if isinstance(leaf, (bool, np.bool_)):
        return aval((), np.bool_, weak=isinstance(leaf, bool))
    if isinstance(leaf, (int, np.integer)):
        return aval((), np.int64 if isinstance(leaf, int) else leaf.dtype, isinstance(leaf, int))
    if isinstance(leaf, (float, np.floating)):
        weak = isinstance(leaf, float)
        return aval((), np.float32 if weak else leaf.dtype, weak)
    if on_device(leaf):
        return aval(leaf.shape, leaf.dtype)
    raise TypeError(f"lucid.jit: argument {where} is a {type(leaf).__name__}, not an array; "
                    "mark it static (static_argnums / static_argnames) if it is configuration")


def _as_array(leaf, a: Aval, backend: str):
    """An argument leaf as the program's input: arrays as they are; a scalar (a Python or
    NumPy number, or a 0-d host array among device arrays) as an array where it runs."""
    if on_device(leaf) or (isinstance(leaf, np.ndarray) and (backend == "cpu" or leaf.ndim)):
        return leaf
    return on_backend(np.asarray(leaf, a.dtype), backend)


def make_program(fun, avals, unflatten):
    """Trace ``fun(*unflatten(inputs))`` with one abstract input per aval in ``avals``
    (``unflatten`` rebuilds the positional arguments from the flat tracers); returns
    (Program, output treedef)."""
    trace = JitTrace()
    try:
        tracers = [trace.new_input(a) for a in avals]
        outputs, out_def = _trace_outputs(trace, fun(*unflatten(tracers)))
    finally:
        trace.close()
    program = Program([t.var for t in tracers], trace.eqns, outputs, trace.consts)
    return program, out_def


def _trace_outputs(trace, out):
    """The program outputs of a traced result, and its treedef."""
    out_leaves, out_def = _tree.flatten(out)
    return [_output_var(trace, leaf) for leaf in out_leaves], out_def


def _output_var(trace, leaf):
    if isinstance(leaf, Tracer) or isinstance(leaf, np.ndarray):
        return trace.var_of(leaf)
    if isinstance(leaf, (int, float, bool, np.number, np.bool_)):
        return trace.var_of(np.asarray(leaf))
    return _Static(leaf)


class _Static:
    """A non-array output (a string, a Python object) returned as is on every call."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"static({self.value!r})"


# ----------------------------------------------------------------------------- jit

def jit(fun=None, *, static_argnums=(), static_argnames=(), donate_argnums=()):
    """Compile ``fun`` into a planned program, traced once per signature (``jax.jit``).

    Args:
      fun: a function of pytrees of arrays built from lucid operations, or a lucid.nn
        Module (its forward is compiled and reads the module's current parameters and
        state at each call, like ``torch.compile(model)``).
      static_argnums, static_argnames: arguments that are configuration, not data: their
        (hashable) values are part of the cache key and Python can branch on them.
      donate_argnums: positional arguments whose buffers the program may reuse for its
        outputs (e.g. params and optimizer state in a training step): after the call their
        contents are overwritten and the outputs may be those very arrays.
    Returns:
      a :class:`Jitted` callable with ``.lower(*args)`` to print the program and its plan.

    Python side effects in ``fun`` run when it is traced, not at each call. ``float()``,
    ``bool()``, ``if`` and ``math.*`` on a traced array raise a ConcretizationError.
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames, donate_argnums=donate_argnums)
    from .nn._module import Module
    if isinstance(fun, Module):
        from ._jit_module import JittedModule
        return JittedModule(fun)
    if not callable(fun):
        raise TypeError(f"lucid.jit: expected a callable, got {type(fun).__name__}")
    return Jitted(fun, _int_tuple(static_argnums, "static_argnums"),
                  _name_tuple(static_argnames), _int_tuple(donate_argnums, "donate_argnums"))


def _int_tuple(v, what):
    items = (v,) if isinstance(v, int) else tuple(v)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise TypeError(f"lucid.jit: {what} must be an int or a tuple of ints, got {v!r}")
    return items


def _name_tuple(v):
    items = (v,) if isinstance(v, str) else tuple(v)
    if not all(isinstance(i, str) for i in items):
        raise TypeError(f"lucid.jit: static_argnames must be a str or a tuple of str, got {v!r}")
    return items


class _Signature:
    """How one call splits into a cache key, dynamic leaves and the static values."""

    def __init__(self, jitted, args, kwargs):
        nargs = len(args)
        static_pos = {i % nargs for i in jitted.static_argnums if -nargs <= i < nargs}
        self.static = {i: args[i] for i in static_pos}
        self.static_kw = {k: v for k, v in kwargs.items() if k in jitted.static_argnames}
        dyn_args = tuple(a for i, a in enumerate(args) if i not in static_pos)
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in jitted.static_argnames}
        self.leaves, self.args_def = _tree.flatten((dyn_args, dyn_kwargs))
        self.avals = tuple(_leaf_aval(l, f"leaf {i}") for i, l in enumerate(self.leaves))
        self.nargs = nargs
        self.donated = _donated_leaves(jitted.donate_argnums, args, static_pos)
        from ._autodiff import active_grad_hook
        static_items = tuple(sorted(self.static.items())) + tuple(sorted(self.static_kw.items()))
        for name, value in static_items:
            _check_hashable(value, name)
        self.backend = backend_of(self.leaves)
        self.key = (self.args_def, self.avals, static_items, nargs, self.donated,
                    active_grad_hook(), self.backend)

    def rebuild(self, dyn_args, dyn_kwargs):
        it = iter(dyn_args)
        args = [self.static[i] if i in self.static else next(it) for i in range(self.nargs)]
        return args, {**dyn_kwargs, **self.static_kw}


def _check_hashable(value, name):
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"lucid.jit: static argument {name!r} must be hashable (it is part of the "
                        f"cache key), got a {type(value).__name__}; pass arrays as dynamic "
                        "arguments and lists as tuples") from None


def _donated_leaves(donate_argnums, args, static_pos) -> frozenset:
    """Indices (in the flattened dynamic leaves) of the leaves of donated arguments."""
    if not donate_argnums:
        return frozenset()
    nargs = len(args)
    donate = {i % nargs for i in donate_argnums if -nargs <= i < nargs}
    out, start = set(), 0
    for i, a in enumerate(args):
        if i in static_pos:
            continue
        n = len(_tree.leaves(a))
        if i in donate:
            out.update(range(start, start + n))
        start += n
    return frozenset(out)


class Jitted:
    """A compiled function: call it like the original; ``lower(*args)`` shows the program."""

    def __init__(self, fun, static_argnums, static_argnames, donate_argnums):
        self.fun = fun
        self.static_argnums, self.static_argnames = static_argnums, static_argnames
        self.donate_argnums = donate_argnums
        self._cache: dict = {}
        self._lock = threading.Lock()
        self.trace_count = 0
        functools.update_wrapper(self, fun)

    def __call__(self, *args, **kwargs):
        if _state.level > 0:  # already inside a transform on this thread: inline
            return self.fun(*args, **kwargs)
        sig = _Signature(self, args, kwargs)
        entry = self._entry(sig)
        arrays = [_as_array(l, a, sig.backend) for l, a in zip(sig.leaves, sig.avals)]
        return entry.out_def.unflatten(entry.executable.run(arrays))

    def lower(self, *args, **kwargs) -> "Lowered":
        """The optimised program and its memory plan for these arguments (compiles if new)."""
        sig = _Signature(self, args, kwargs)
        return Lowered(self._entry(sig))

    def _entry(self, sig):
        entry = self._cache.get(sig.key)
        if entry is None:
            with self._lock:  # two threads with one new signature trace it once
                entry = self._cache.get(sig.key)
                if entry is None:
                    entry = self._cache[sig.key] = self._compile(sig)
        return entry

    def _compile(self, sig):
        from ._passes import optimize
        from ._plan import Executable

        def flat_fun(dyn_args, dyn_kwargs):
            args, kwargs = sig.rebuild(dyn_args, dyn_kwargs)
            return self.fun(*args, **kwargs)

        program, out_def = make_program(flat_fun, sig.avals, sig.args_def.unflatten)
        self.trace_count += 1
        raw = program
        program = optimize(program)
        executable = Executable(program, donated=sig.donated, backend=sig.backend)
        return _Entry(raw, program, executable, out_def)

    def clear_cache(self):
        with self._lock:
            self._cache.clear()


class _Entry:
    __slots__ = ("traced", "program", "executable", "out_def")

    def __init__(self, traced, program, executable, out_def):
        self.traced, self.program, self.executable, self.out_def = traced, program, executable, out_def


class Lowered:
    """A compiled signature: ``str()`` prints the optimised program; ``.traced`` is the
    program as recorded (before fusion); ``.peak_bytes`` the planned working memory."""

    def __init__(self, entry):
        self.program = entry.program
        self.traced = entry.traced
        self.executable = entry.executable

    @property
    def peak_bytes(self) -> int:
        return self.executable.plan.arena_bytes

    def as_text(self) -> str:
        return str(self.program)

    def __str__(self):
        return self.as_text()


# ----------------------------------------------------------------------------- sub-programs

class _SubTrace(JitTrace):
    """Traces a function called inside another transform into a program of its own;
    tracers of the enclosing transforms it meets become extra (captured) inputs."""

    def __init__(self):
        super().__init__()
        self.captured: dict = {}   # id(outer tracer) -> (outer tracer, Var)

    def var_of(self, x):
        if isinstance(x, Tracer) and x.trace is not self:
            hit = self.captured.get(id(x))
            if hit is None:
                hit = self.captured[id(x)] = (x, Var(x.aval))
            return hit[1]
        return super().var_of(x)


def trace_subprogram(fun, arg_leaves, unflatten):
    """Trace ``fun(*unflatten(inputs))`` with one abstract input per array leaf of
    ``arg_leaves``; returns (program, output treedef, {input var: value}) where the values
    are ``arg_leaves`` and the captured outer tracers, for :func:`replay`."""
    trace = _SubTrace()
    try:  # arrays become abstract inputs; other leaves (ints, strings) are passed as they are
        args = [trace.new_input(aval_of(l)) if isinstance(l, (Tracer, np.ndarray)) else l
                for l in arg_leaves]
        outputs, out_def = _trace_outputs(trace, fun(*unflatten(args)))
    finally:
        trace.close()
    tracers = [(t, l) for t, l in zip(args, arg_leaves) if isinstance(t, JitTracer)]
    values = {t.var: l for t, l in tracers}
    values.update({var: x for x, var in trace.captured.values()})
    program = Program([t.var for t, _ in tracers] + [v for _, v in trace.captured.values()],
                      trace.eqns, outputs, trace.consts)
    return program, out_def, values


def replay(program: Program, values: dict):
    """Evaluate ``program`` by binding each equation on ``values`` (input var -> value):
    the transforms tracing those values see the program's (possibly fused) primitives."""
    from ._core import exact_scope
    env = dict(values)
    env.update(program.consts)
    for e in program.eqns:
        args = [None if v is None else env[v] for v in e.inputs]
        with exact_scope(e.scope):
            out = bind(e.prim, *args, **e.params)
        env.update(zip(e.outputs, out if e.prim.multiple_results else (out,)))
    return [env[v] if isinstance(v, Var) else v.value for v in program.outputs]
