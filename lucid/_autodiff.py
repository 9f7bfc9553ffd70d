"""Reverse-mode differentiation: primitives, tracing, ``vjp``, ``grad`` and ``value_and_grad``.

A *primitive* is a function over raw NumPy arrays that returns its output together
with a VJP closure (micrograd style: the forward and the backward read together)::

    @primitive
    def exp(x):
        y = K.exp_fwd(x)
        return y, lambda g: (K.exp_bwd(g, y),)

Outside a transform a primitive just runs its forward kernel. Inside ``vjp`` the
differentiable inputs are wrapped in :class:`Tracer` objects; a primitive that sees a
tracer unwraps its arguments, runs the forward and records a tape node holding the
closure. The backward pass walks the tape in reverse creation order and frees each
node's saved arrays as soon as its closure has run.

Only first-order reverse mode is supported (the backward kernels are Numba code,
not primitives): calling a transform inside another raises a clear error.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import threading

import numpy as np

from . import _buffers
from ._backend import kernels
from . import tree as _tree

__all__ = ["Tracer", "primitive", "vjp", "grad", "value_and_grad", "stop_gradient", "is_tracer"]

_FLOAT = (np.float32, np.float64)
_active = None            # the trace being recorded, or None
_ids = itertools.count()  # creation order of tape nodes = a topological order


class _Trace:
    __slots__ = ("live",)

    def __init__(self):
        self.live = True


class _Node:
    """One recorded primitive application (or a differentiated input when ``vjp`` is None)."""

    __slots__ = ("id", "vjp", "parents", "shapes", "name", "multi")

    def __init__(self, vjp_fn, parents, shapes, name, multi=False):
        self.id = next(_ids)
        self.vjp, self.parents, self.shapes, self.name = vjp_fn, parents, shapes, name
        self.multi = multi  # the primitive returned a tuple: its VJP gets a tuple


class Tracer:
    """A traced array inside a lucid transform. Use lucid's operations on it, not NumPy's."""

    __slots__ = ("value", "node", "index", "trace")
    __array_priority__ = 1000

    def __init__(self, value, node, index, trace):
        self.value, self.node, self.index, self.trace = value, node, index, trace

    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)

    def __len__(self):
        return len(self.value)

    def __repr__(self):
        return f"Tracer(shape={self.value.shape}, dtype={self.value.dtype})"

    # Python-level conversions are allowed (as under jax.grad without jit); they carry no gradient.
    def __float__(self):
        return float(self.value)

    def __int__(self):
        return int(self.value)

    def __bool__(self):
        return bool(self.value)

    def __array__(self, *args, **kwargs):
        raise TypeError(_numpy_error("np.asarray / np.array"))

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(_numpy_error(f"np.{func.__name__}", func.__name__))

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = _UFUNC_OPS.get(ufunc.__name__)
        if method == "__call__" and not kwargs and op is not None:
            from . import numpy as lnp  # `ndarray * tracer` lands here: route it to lucid
            return getattr(lnp, op)(*inputs)
        raise TypeError(_numpy_error(f"np.{ufunc.__name__}", ufunc.__name__))


_UFUNC_OPS = {"add": "add", "subtract": "subtract", "multiply": "multiply",
              "true_divide": "divide", "divide": "divide", "power": "power",
              "negative": "negative", "matmul": "matmul", "maximum": "maximum",
              "minimum": "minimum",
              # `ndarray < tracer` reaches the ufunc before Tracer.__gt__ can answer
              "less": "less", "less_equal": "less_equal", "greater": "greater",
              "greater_equal": "greater_equal", "equal": "equal", "not_equal": "not_equal"}


def _numpy_error(what: str, name: str | None = None) -> str:
    hint = f" Use lucid.numpy.{name} instead." if name else " Use lucid.numpy functions instead."
    return (f"{what} was called on a traced array inside a lucid transform (grad/vjp); NumPy "
            f"cannot see the tape, so the gradient would be silently lost.{hint}")


def is_tracer(x) -> bool:
    """True when ``x`` is a traced array inside a transform."""
    return isinstance(x, Tracer)


def _check_live(t: Tracer, opname: str):
    if not t.trace.live:
        raise RuntimeError(f"lucid.{opname}: got a traced array that escaped its transform "
                           "(a Tracer stored outside the function being differentiated)")


def primitive(fn=None, *, name: str | None = None):
    """Register a differentiable primitive.

    ``fn(*arrays, **static)`` receives raw NumPy arrays (positional) and static
    options (keyword) and returns ``(out, vjp)``: ``out`` is an array or a tuple of
    arrays; ``vjp(g)`` gets the output cotangent (a tuple, with ``None`` for unused
    outputs, when ``out`` is a tuple) and returns one cotangent (or ``None``) per
    positional argument.
    """
    if fn is None:
        return functools.partial(primitive, name=name)
    opname = name or fn.__name__

    @functools.wraps(fn)
    def op(*args, **kwargs):
        trace = _active
        if trace is None:
            for a in args:
                if isinstance(a, Tracer):
                    _check_live(a, opname)
            return fn(*args, **kwargs)[0]
        raw, parents, traced = [], [], False
        for a in args:
            if isinstance(a, Tracer):
                _check_live(a, opname)
                raw.append(a.value)
                parents.append((a.node, a.index))
                traced = True
            else:
                raw.append(a)
                parents.append(None)
        if not traced:
            return fn(*raw, **kwargs)[0]
        out, vjp_fn = fn(*raw, **kwargs)
        multi = isinstance(out, tuple)
        outs = out if multi else (out,)
        node = _Node(vjp_fn, tuple(parents), tuple(o.shape for o in outs), opname, multi)
        boxed = tuple(Tracer(o, node, i, trace) for i, o in enumerate(outs))
        return boxed if multi else boxed[0]

    op.primitive = fn
    return op


@primitive
def stop_gradient(x):
    """The identity whose gradient is zero."""
    return x, lambda g: (None,)


def _is_differentiable(leaf) -> bool:
    return isinstance(leaf, np.ndarray) and leaf.dtype.type in _FLOAT


def _backward(roots, free, on_final=None):
    """Run the tape backwards from ``roots`` = [(node, index, cotangent)]; return {node: [ct...]}.

    With ``free`` each node drops its closure (and the arrays it saved) once run, which
    keeps a training step's peak memory down; the tape can then be used only once.
    ``on_final(input_node, cotangent_or_None)`` is called for each differentiated input
    as soon as every node that reads it has run (what lets a data-parallel run start the
    all-reduce of early gradients while the rest of the backward goes on).
    """
    cts: dict[_Node, list] = {}
    for node, index, ct in roots:
        _accumulate(cts, node, index, ct)
    nodes, stack, seen = [], [r[0] for r in roots], set()
    last_reader: dict[_Node, int] = {}  # input node -> smallest id among the nodes reading it
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        nodes.append(n)
        for p in n.parents:
            if p is not None:
                stack.append(p[0])
                if p[0].name == "input":
                    last_reader[p[0]] = min(last_reader.get(p[0], n.id), n.id)
    nodes.sort(key=lambda n: n.id, reverse=True)
    pending = sorted(last_reader.items(), key=lambda kv: kv[1])  # pop() = highest reader id
    for node in nodes:
        if on_final is not None:
            while pending and pending[-1][1] > node.id:
                done = pending.pop()[0]
                on_final(done, cts.get(done, [None])[0])
        if node.name == "input" or node not in cts:
            continue  # a differentiated input (kept in cts) or a node no cotangent reached
        if node.vjp is None:
            raise RuntimeError("lucid.vjp: this tape was already consumed by a one-shot backward")
        slot = cts.pop(node)
        in_cts = node.vjp(tuple(slot) if node.multi else slot[0])
        if free:
            node.vjp = None
        _propagate(node, in_cts, cts)
    if on_final is not None:
        for done, _ in reversed(pending):
            on_final(done, cts.get(done, [None])[0])
    return cts


def _propagate(node, in_cts, cts):
    if len(in_cts) != len(node.parents):
        raise RuntimeError(f"lucid internal error: VJP of {node.name} returned {len(in_cts)} "
                           f"cotangents for {len(node.parents)} inputs")
    for parent, ct in zip(node.parents, in_cts):
        if parent is None or ct is None:
            continue
        pnode, pindex = parent
        if ct.shape != pnode.shapes[pindex]:
            raise RuntimeError(f"lucid internal error: VJP of {node.name} returned a cotangent of "
                               f"shape {ct.shape} for an input of shape {pnode.shapes[pindex]}")
        _accumulate(cts, pnode, pindex, ct)


def _accumulate(cts, node, index, ct):
    slot = cts.get(node)
    if slot is None:
        slot = cts[node] = [None] * len(node.shapes)
    slot[index] = ct if slot[index] is None else _add(slot[index], ct)


def _add(a, b):
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
    return a + b


def _unbox(x, trace):
    if isinstance(x, Tracer):
        if x.trace is not trace:
            _check_live(x, "vjp")
        return x.value
    return x


def vjp(f, *primals, has_aux: bool = False):
    """Evaluate ``f(*primals)`` and return its vector-Jacobian product function.

    Args:
      f: a function of pytrees of arrays built from lucid operations.
      *primals: the arguments; float32/float64 array leaves are differentiated, every
        other leaf (integer arrays, keys, Python scalars, None) is passed through.
      has_aux: ``f`` returns ``(out, aux)``; ``aux`` is returned as is, not differentiated.
    Returns:
      ``(out, vjp_fn)`` or ``(out, vjp_fn, aux)``. ``vjp_fn(cotangent)`` takes a pytree
      shaped like ``out`` and returns a tuple with one pytree per primal, shaped like it
      (``None`` at non-differentiable leaves).
    """
    global _active
    if not callable(f):
        raise TypeError(f"lucid.vjp: expected a callable, got {type(f).__name__}")
    if _active is not None:
        raise NotImplementedError("lucid.vjp: nested transforms (grad of grad, or a transform "
                                  "inside a function being differentiated) are not supported")
    trace = _Trace()
    where: dict[_Node, tuple[int, int]] = {}  # input node -> (primal position, leaf index)

    def boxer(pos):
        count = itertools.count()

        def box(leaf):
            index = next(count)
            if isinstance(leaf, Tracer):
                _check_live(leaf, "vjp")
            if not _is_differentiable(leaf):
                return leaf
            node = _Node(None, (), (leaf.shape,), "input")
            where[node] = (pos, index)
            return Tracer(leaf, node, 0, trace)
        return box

    boxed = [_tree.map(boxer(pos), p) for pos, p in enumerate(primals)]
    _active = trace
    try:
        result = f(*boxed)
    finally:
        _active = None
        trace.live = False
    if has_aux:
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError("lucid.vjp: with has_aux=True the function must return a pair "
                            f"(output, aux), got {type(result).__name__}")
        result, aux = result
        aux = _tree.map(lambda x: _unbox(x, trace), aux)
    out_leaves, out_def = _tree.flatten(result)
    out_values = [_unbox(x, trace) for x in out_leaves]
    out = out_def.unflatten(out_values)
    vjp_fn = functools.partial(_pullback, boxed, out_leaves, out_def, trace, where)
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _pullback(boxed, out_leaves, out_def, trace, where, cotangent, *, _free=False):
    ct_leaves, ct_def = _tree.flatten(cotangent)
    if ct_def != out_def:
        raise ValueError(f"lucid.vjp: cotangent structure {ct_def} does not match the output "
                         f"structure {out_def}")
    roots = []
    for o, c in zip(out_leaves, ct_leaves):
        if not isinstance(o, Tracer) or o.trace is not trace:
            continue  # an output that does not depend on the inputs
        c = np.asarray(c, dtype=o.dtype)
        if c.shape != o.shape:
            raise ValueError(f"lucid.vjp: cotangent shape {c.shape} does not match output "
                             f"shape {o.shape}")
        roots.append((o.node, o.index, c))
    hook = getattr(_hooks, "grad_ready", None)
    on_final = None
    if hook is not None:
        reported = set()

        def on_final(node, ct):
            reported.add(node)
            shape, dtype = node.shapes[0], _dtype_of(boxed, where[node])
            hook(*where[node], np.zeros(shape, dtype) if ct is None else ct.astype(dtype, copy=False))
    cts = _backward(roots, _free, on_final)
    if hook is not None:  # inputs no output depends on: zero gradients, reported last
        for node in where.keys() - reported:
            on_final(node, None)

    def grad_of(leaf):
        if not isinstance(leaf, Tracer):
            return None
        slot = cts.get(leaf.node)
        g = slot[0] if slot is not None else None
        return np.zeros_like(leaf.value) if g is None else g.astype(leaf.dtype, copy=False)

    return tuple(_tree.map(grad_of, b, is_leaf=lambda x: isinstance(x, Tracer)) for b in boxed)


def _dtype_of(boxed, position):
    pos, index = position
    return _tree.leaves(boxed[pos], is_leaf=lambda x: isinstance(x, Tracer))[index].dtype


_hooks = threading.local()


@contextlib.contextmanager
def grad_ready_hook(fn):
    """Within this context, every ``vjp``/``grad`` backward pass on this thread calls
    ``fn(argument_position, leaf_index, gradient)`` once per differentiated leaf, as soon as
    that leaf's gradient is final (before the rest of the backward has run).

    ``argument_position`` counts the differentiated arguments (0 for ``argnums=0``);
    ``leaf_index`` is the leaf's position in ``lucid.tree.leaves`` of that argument. The
    gradient array must not be modified in place by ``fn``. This is the seam that
    ``lucid.distributed`` uses to overlap its gradient all-reduce with the backward.
    """
    previous = getattr(_hooks, "grad_ready", None)
    _hooks.grad_ready = fn
    try:
        yield
    finally:
        _hooks.grad_ready = previous


def _check_argnums(argnums, fname):
    if isinstance(argnums, (bool, np.bool_)):
        raise TypeError(f"lucid.{fname}: argnums must be an int or a tuple of ints, got {argnums!r}")
    if isinstance(argnums, (int, np.integer)):
        return (int(argnums),), True
    if isinstance(argnums, (tuple, list)) and argnums and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in argnums):
        return tuple(int(a) for a in argnums), False
    raise TypeError(f"lucid.{fname}: argnums must be an int or a non-empty tuple of ints, "
                    f"got {argnums!r}")


def value_and_grad(f, argnums=0, has_aux: bool = False):
    """Create a function returning ``f``'s value and its gradient w.r.t. ``argnums``.

    Args:
      f: a function returning a scalar (0-d float array), or ``(scalar, aux)`` with has_aux.
      argnums: which positional argument(s) to differentiate (int or tuple of ints).
      has_aux: whether ``f`` returns ``(value, aux)``.
    Returns:
      a function returning ``(value, grads)`` or ``((value, aux), grads)``; ``grads`` is
      shaped like the argument (a tuple of such when ``argnums`` is a tuple).
    """
    nums, single = _check_argnums(argnums, "value_and_grad")
    if not callable(f):
        raise TypeError(f"lucid.value_and_grad: expected a callable, got {type(f).__name__}")

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        for a in nums:
            if not -len(args) <= a < len(args):
                raise ValueError(f"lucid.grad: argnums={argnums} is out of range for a call with "
                                 f"{len(args)} positional argument(s)")
        idx = [a % len(args) for a in nums]

        def partial_f(*diff):
            full = list(args)
            for i, d in zip(idx, diff):
                full[i] = d
            return f(*full, **kwargs)

        res = vjp(partial_f, *[args[i] for i in idx], has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        value = _check_scalar(out)
        grads = vjp_fn(np.ones_like(value), _free=True)
        value_out = (value, res[2]) if has_aux else value
        return value_out, (grads[0] if single else grads)

    return wrapped


def _check_scalar(out):
    if isinstance(out, (float, int)) and not isinstance(out, bool):
        out = np.asarray(out, np.float32)
    if not (isinstance(out, np.ndarray) and out.shape == () and out.dtype.type in _FLOAT):
        got = (f"array of shape {out.shape} and dtype {out.dtype}" if isinstance(out, np.ndarray)
               else type(out).__name__)
        raise TypeError(f"lucid.grad: the function must return a scalar float (a 0-d float32/"
                        f"float64 array, e.g. from lucid.numpy.mean), got {got}")
    return out


def grad(f, argnums=0, has_aux: bool = False):
    """Create a function returning the gradient of scalar ``f`` w.r.t. ``argnums``.

    Returns:
      ``grads`` or ``(grads, aux)`` with has_aux (JAX semantics).
    """
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        value, grads = vg(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return wrapped
