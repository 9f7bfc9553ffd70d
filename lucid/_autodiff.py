"""Reverse-mode differentiation: ``vjp``, ``grad``, ``value_and_grad`` over primitives.

``grad`` is a transformation interpreted by :class:`GradTrace`: each primitive applied
to a traced value is evaluated on the underlying values (arrays when eager, abstract
values inside ``lucid.jit``) and recorded as a tape node holding the primitive, its
static parameters and the values its VJP rule reads. The backward pass walks the tape
in reverse creation order and calls each primitive's VJP rule, which binds other
primitives, so under ``jit`` the whole backward is recorded into the program too.

Only first-order reverse mode is supported: the backward primitives (``<op>_bwd``)
have no VJP rule of their own, and differentiating one raises a clear error.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

from . import _buffers
from ._backend import kernels
from ._core import Primitive, Trace, Tracer, aval_of, bind, inside, on_device
from . import tree as _tree

__all__ = ["Tracer", "primitive", "vjp", "grad", "value_and_grad", "stop_gradient",
           "is_tracer", "needs_grad", "grad_ready_hook"]

_FLOAT = (np.float32, np.float64)
_ids = itertools.count()  # creation order of tape nodes = a topological order


class _Node:
    """One recorded primitive application (or a differentiated input when ``prim`` is None)."""

    __slots__ = ("id", "prim", "params", "inputs", "results", "needs", "parents", "avals",
                 "closure")

    def __init__(self, prim, params, inputs, results, needs, parents, avals, closure=None):
        self.id = next(_ids)
        self.prim, self.params, self.inputs, self.results = prim, params, inputs, results
        self.needs, self.parents, self.avals, self.closure = needs, parents, avals, closure


class GradTracer(Tracer):
    """A value being differentiated: its primal value and the tape node that made it."""

    __slots__ = ("primal", "node", "index")

    def __init__(self, trace, primal, node, index):
        self.trace, self.primal, self.node, self.index = trace, primal, node, index
        self.aval = aval_of(primal)

    @property
    def value(self):
        raise TypeError(
            "lucid: the raw value of a traced array is not available inside grad/vjp: a NumPy "
            "computation on it would silently drop the gradient. Use lucid.numpy on the "
            "traced array itself (or lucid.stop_gradient for a deliberate constant).")


class GradTrace(Trace):
    kind = "grad"

    def process(self, prim, args, params):
        primals, parents, needs = [], [], []
        for a in args:
            mine = isinstance(a, GradTracer) and a.trace is self
            primals.append(a.primal if mine else a)
            parents.append((a.node, a.index) if mine else None)
            needs.append(mine)
        if prim.legacy is not None:
            return self._process_legacy(prim, primals, parents, needs, params)
        if prim.vjp is None:
            raise NotImplementedError(
                f"lucid: {prim.name} has no VJP rule (it is a backward or non-differentiable "
                "primitive); higher-order derivatives are not supported")
        out = bind(prim, *primals, **params)
        outs = out if prim.multiple_results else (out,)
        inputs, results = _saved(prim, primals, outs)
        node = _Node(prim, params, inputs, results, tuple(needs), tuple(parents),
                     tuple(aval_of(o) for o in outs))
        boxed = tuple(GradTracer(self, o, node, i) for i, o in enumerate(outs))
        return boxed if prim.multiple_results else boxed[0]

    def _process_legacy(self, prim, primals, parents, needs, params):
        for p in primals:
            if isinstance(p, GradTracer):
                raise NotImplementedError(f"lucid: {prim.name} does not support nested "
                                          "transforms (higher-order derivatives)")
            if isinstance(p, Tracer):
                raise NotImplementedError(f"lucid.jit: {prim.name} is not yet a traceable "
                                          "primitive (no shape rule); call it outside jit")
        out, closure = prim.legacy(*primals, **params)
        multi = isinstance(out, tuple)
        outs = out if multi else (out,)
        node = _Node(prim, multi, None, None, tuple(needs), tuple(parents),
                     tuple(aval_of(o) for o in outs), closure)
        boxed = tuple(GradTracer(self, o, node, i) for i, o in enumerate(outs))
        return boxed if multi else boxed[0]


def _saved(prim, inputs, outs):
    """The inputs and results the VJP rule reads; the others are replaced by their abstract
    values (shape and dtype only), so their memory is freed as early as eager code frees it."""
    if prim.saves is None:
        return tuple(inputs), tuple(outs)
    keep_in, keep_out = prim.saves
    return (tuple(a if i in keep_in else aval_of(a) for i, a in enumerate(inputs)),
            tuple(o if i in keep_out else aval_of(o) for i, o in enumerate(outs)))


def is_tracer(x) -> bool:
    """True when ``x`` is a traced array inside a transform (grad, vjp or jit)."""
    return isinstance(x, Tracer)


def needs_grad(x) -> bool:
    """True when ``x`` is being differentiated by an enclosing ``grad``/``vjp``."""
    return isinstance(x, GradTracer)


def primitive(fn=None, *, name: str | None = None):
    """Register an old-style primitive: ``fn(*arrays, **static) -> (out, vjp_closure)``.

    Such a primitive runs eagerly and under ``grad``, but has no shape rule, so
    ``lucid.jit`` cannot trace it; new primitives are :class:`lucid._core.Primitive`
    objects (shape rule, impl into given outputs, VJP rule of primitive calls).
    """
    if fn is None:
        return functools.partial(primitive, name=name)
    prim = Primitive(name or fn.__name__)
    prim.legacy = fn

    @functools.wraps(fn)
    def op(*args, **kwargs):
        return bind(prim, *args, **kwargs)

    op.primitive = prim
    return op


stop_gradient_p = Primitive("stop_gradient", view=True)
stop_gradient_p.def_abstract(lambda x: x)
stop_gradient_p.def_impl(lambda x: x)
stop_gradient_p.def_vjp(lambda cts, x, **_: (None,))


def stop_gradient(x):
    """The identity whose gradient is zero."""
    return bind(stop_gradient_p, x)


# ----------------------------------------------------------------------------- backward

def _backward(roots, free, on_final=None):
    """Run the tape backwards from ``roots`` = [(node, index, cotangent)]; return {node: [ct...]}.

    With ``free`` each node drops the values it saved once run, which keeps a training
    step's peak memory down; the tape can then be used only once. ``on_final(input_node,
    cotangent_or_None)`` is called for each differentiated input as soon as every node
    that reads it has run (what lets a data-parallel run start the all-reduce of early
    gradients while the rest of the backward goes on).
    """
    cts: dict = {}
    for node, index, ct in roots:
        _accumulate(cts, node, index, ct)
    nodes, last_reader = _reachable(roots)
    pending = sorted(last_reader.items(), key=lambda kv: kv[1])  # pop() = highest reader id
    for node in nodes:
        while on_final is not None and pending and pending[-1][1] > node.id:
            done = pending.pop()[0]
            on_final(done, cts.get(done, [None])[0])
        if node.prim is None or node not in cts:
            continue  # a differentiated input (kept in cts) or a node no cotangent reached
        slot = cts.pop(node)
        in_cts = _run_rule(node, slot)
        if free:
            node.inputs = node.results = node.closure = None
            node.prim = _CONSUMED
        _propagate(node, in_cts, cts)
    if on_final is not None:
        for done, _ in reversed(pending):
            on_final(done, cts.get(done, [None])[0])
    return cts


_CONSUMED = Primitive("consumed")


def _reachable(roots):
    """Tape nodes reachable from the roots, newest first, and for each differentiated
    input the smallest id among the nodes reading it."""
    nodes, stack, seen, last_reader = [], [r[0] for r in roots], set(), {}
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        nodes.append(n)
        for p in n.parents:
            if p is not None:
                stack.append(p[0])
                if p[0].prim is None:
                    last_reader[p[0]] = min(last_reader.get(p[0], n.id), n.id)
    nodes.sort(key=lambda n: n.id, reverse=True)
    return nodes, last_reader


def _run_rule(node, slot):
    if node.prim is _CONSUMED:
        raise RuntimeError("lucid.vjp: this tape was already consumed by a one-shot backward")
    if node.closure is not None:  # old-style primitive: its closure holds what it needs
        return node.closure(tuple(slot) if node.params else slot[0])
    return node.prim.vjp(tuple(slot), *node.inputs, results=node.results, needs=node.needs,
                         **node.params)


def _propagate(node, in_cts, cts):
    if len(in_cts) != len(node.parents):
        raise RuntimeError(f"lucid internal error: VJP of {node.prim.name} returned "
                           f"{len(in_cts)} cotangents for {len(node.parents)} inputs")
    for parent, ct in zip(node.parents, in_cts):
        if parent is None or ct is None:
            continue
        pnode, pindex = parent
        if tuple(ct.shape) != pnode.avals[pindex].shape:
            raise RuntimeError(f"lucid internal error: VJP of {node.prim.name} returned a "
                               f"cotangent of shape {ct.shape} for an input of shape "
                               f"{pnode.avals[pindex].shape}")
        _accumulate(cts, pnode, pindex, ct)


def _accumulate(cts, node, index, ct):
    slot = cts.get(node)
    if slot is None:
        slot = cts[node] = [None] * len(node.avals)
    slot[index] = ct if slot[index] is None else add_cotangents(slot[index], ct)


def add_cotangents(a, b):
    """a + b for two cotangents of one value (every residual connection meets one). A big
    sum runs in the parallel add kernel into a pooled buffer: NumPy's add is one thread
    into fresh memory, whose page faults cost more than the add (18 sums of up to 19 MB
    in a ConvNeXt-T training step at batch 16: 28 ms -> 9 ms)."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape
            and a.dtype == b.dtype and a.dtype.type in _FLOAT and a.nbytes >= _buffers.MIN_BYTES
            and a.flags.c_contiguous and b.flags.c_contiguous):
        out = _buffers.empty(a.shape, a.dtype)
        flat = (1, 1, 1, a.size)
        kernels("binary").add_fwd(a.reshape(flat), b.reshape(flat), out.reshape(flat))
        return out
    if isinstance(a, Tracer) or isinstance(b, Tracer) or on_device(a):
        from .numpy import add
        return add(a, b)
    return a + b


# ----------------------------------------------------------------------------- vjp

def _unbox(x, trace):
    if isinstance(x, GradTracer) and x.trace is trace:
        return x.primal
    return x


def _as_primal(leaf, fname):
    """Python and NumPy float scalars are differentiable inputs (as in JAX)."""
    if isinstance(leaf, np.floating):  # before float: np.float64 is a float subclass
        return np.asarray(leaf) if leaf.dtype.type in _FLOAT else leaf
    if isinstance(leaf, float):
        return np.asarray(leaf, np.float32)  # weak, as in JAX: float32
    return leaf


def _is_differentiable(leaf) -> bool:
    if isinstance(leaf, Tracer) or on_device(leaf):
        return np.dtype(leaf.dtype).type in _FLOAT
    return isinstance(leaf, np.ndarray) and leaf.dtype.type in _FLOAT


def vjp(f, *primals, has_aux: bool = False):
    """Evaluate ``f(*primals)`` and return its vector-Jacobian product function.

    Args:
      f: a function of pytrees of arrays built from lucid operations.
      *primals: the arguments; float32/float64 array leaves (and Python/NumPy float
        scalars) are differentiated, every other leaf (integer arrays, keys, None) is
        passed through.
      has_aux: ``f`` returns ``(out, aux)``; ``aux`` is returned as is, not differentiated.
    Returns:
      ``(out, vjp_fn)`` or ``(out, vjp_fn, aux)``. ``vjp_fn(cotangent)`` takes a pytree
      shaped like ``out`` and returns a tuple with one pytree per primal, shaped like it
      (``None`` at non-differentiable leaves).
    """
    if not callable(f):
        raise TypeError(f"lucid.vjp: expected a callable, got {type(f).__name__}")
    trace = GradTrace()
    where: dict = {}  # input node -> (primal position, leaf index)
    try:
        boxed = [_tree.map(_boxer(trace, pos, where), p) for pos, p in enumerate(primals)]
        result = _fused_call(f, boxed) if inside("jit") else f(*boxed)
    finally:
        trace.close()
    if has_aux:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError("lucid.vjp: with has_aux=True the function must return a pair "
                            f"(output, aux), got {type(result).__name__}")
        result, aux = result
        aux = _tree.map(lambda x: _unbox(x, trace), aux)
    out_leaves, out_def = _tree.flatten(result)
    out = out_def.unflatten([_unbox(x, trace) for x in out_leaves])
    vjp_fn = functools.partial(_pullback, boxed, out_leaves, out_def, trace, where)
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _fused_call(f, boxed):
    """``f(*boxed)`` under lucid.jit: trace ``f`` into a program, run the fusion passes on
    it, then replay it on the differentiated values, so the grad transform (and the
    backward it emits) sees the fused primitives. Eager grad calls ``f`` directly."""
    from ._fusion import fuse
    from ._jit import replay, trace_subprogram
    leaves, arg_def = _tree.flatten(tuple(boxed))
    program, out_def, values = trace_subprogram(f, leaves, arg_def.unflatten)
    return out_def.unflatten(replay(fuse(program), values))


def _boxer(trace, pos, where):
    count = itertools.count()

    def box(leaf):
        index = next(count)
        leaf = _as_primal(leaf, "vjp")
        if not _is_differentiable(leaf):
            return leaf
        node = _Node(None, None, None, None, (), (), (aval_of(leaf),))
        where[node] = (pos, index)
        return GradTracer(trace, leaf, node, 0)
    return box


def _pullback(boxed, out_leaves, out_def, trace, where, cotangent, *, _free=False):
    ct_leaves, ct_def = _tree.flatten(cotangent)
    if ct_def != out_def:
        raise ValueError(f"lucid.vjp: cotangent structure {ct_def} does not match the output "
                         f"structure {out_def}")
    roots = []
    for o, c in zip(out_leaves, ct_leaves):
        if not (isinstance(o, GradTracer) and o.trace is trace):
            continue  # an output that does not depend on the inputs
        if not isinstance(c, Tracer) and not on_device(c):
            c = np.asarray(c, dtype=o.dtype)
        if tuple(c.shape) != o.shape:
            raise ValueError(f"lucid.vjp: cotangent shape {tuple(c.shape)} does not match output "
                             f"shape {o.shape}")
        roots.append((o.node, o.index, c))
    on_final, finish = _hook_reporter(boxed, where)
    cts = _backward(roots, _free, on_final)
    finish()

    def grad_of(leaf):
        if not isinstance(leaf, GradTracer):
            return None
        slot = cts.get(leaf.node)
        g = slot[0] if slot is not None else None
        return _zeros(leaf.primal) if g is None else _cast(g, leaf.dtype)

    return tuple(_tree.map(grad_of, b, is_leaf=lambda x: isinstance(x, Tracer)) for b in boxed)


def _zeros(like):
    """Zeros shaped like ``like`` (an array, or an abstract value inside jit)."""
    if isinstance(like, Tracer):
        from .numpy import zeros_like
        return zeros_like(like)
    if on_device(like):
        from ._device import zeros_on
        return zeros_on(like)
    return np.zeros(like.shape, like.dtype)


def _cast(g, dtype):
    if g.dtype == dtype:
        return g
    if isinstance(g, Tracer):
        from .numpy import astype
        return astype(g, dtype)
    return g.astype(dtype)


from ._grad_hooks import _hook_reporter, active_grad_hook, grad_ready_hook  # noqa: E402,F401
from ._grad import grad, value_and_grad  # noqa: E402
