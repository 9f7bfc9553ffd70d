"""Primitives as data, the trace stack, and ``bind``.

A :class:`Primitive` is a name plus rules (JAX's ``core.Primitive``, kept small):

* ``abstract``: the shape/dtype rule, ``(*avals, **params) -> Aval | tuple[Aval]``. It
  runs without data, so a program can be traced, printed and planned before it runs.
* ``impl`` (one per backend): the forward, ``(*arrays, out=outputs, **params)``, writing
  into output arrays it is given (the caller or the planner owns the memory). A *view*
  primitive (reshape, transpose, ...) instead returns a view of its input.
* ``vjp``: the backward rule, ``(cts, *inputs, results=..., needs=..., **params)``
  returning one cotangent (or ``None``) per input. It is written with ``bind`` calls of
  other primitives (usually one ``<op>_bwd`` primitive holding the backward kernels), so
  under ``lucid.jit`` the backward is itself a program the planner sees.

``bind(prim, *args, **params)`` evaluates the primitive: with no traced argument it runs
the impl at once (eager); otherwise the innermost transform whose tracer is among the
arguments interprets it (``grad`` records a tape node, ``jit`` records an equation).
Traces are per thread, so transforms in two threads never see each other.
"""
from __future__ import annotations

import contextlib
import threading
from typing import NamedTuple

import numpy as np

from . import _buffers

__all__ = ["Aval", "Primitive", "Tracer", "bind", "aval_of", "on_device", "ConcretizationError"]


class Aval(NamedTuple):
    """An abstract value: what a shape rule knows of an array (``weak``: from a Python
    scalar, so it takes the dtype of the arrays it meets, as in JAX)."""
    shape: tuple
    dtype: np.dtype
    weak: bool = False

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self):
        return self.size * np.dtype(self.dtype).itemsize

    def __str__(self):
        return f"{_SHORT.get(np.dtype(self.dtype).name, np.dtype(self.dtype).name)}[{','.join(map(str, self.shape))}]"


_SHORT = {"float32": "f32", "float64": "f64", "int64": "i64", "int32": "i32", "uint32": "u32",
          "bool": "bool", "uint8": "u8", "int8": "i8"}


def aval(shape, dtype, weak=False) -> Aval:
    return Aval(tuple(int(s) for s in shape), np.dtype(dtype), weak)


def on_device(x) -> bool:
    """True for a device array (a :class:`lucid.DeviceArray`, which sets
    ``__lucid_backend__``): its values stay on its device, never read on the host."""
    return getattr(x, "__lucid_backend__", None) is not None


def aval_of(x) -> Aval | None:
    """The abstract value of an array, a tracer or a scalar (None for None)."""
    if x is None or isinstance(x, Aval):
        return x
    if isinstance(x, Tracer):
        return x.aval
    if on_device(x):  # a device array: no host copy
        return aval(x.shape, x.dtype)
    a = np.asarray(x)
    return aval(a.shape, a.dtype)


class ConcretizationError(TypeError):
    """A Python conversion (float, bool, int, if, math.*) was asked of a traced value."""


class Tracer:
    """A traced array inside a lucid transform (``grad``, ``vjp`` or ``jit``).

    It has a shape and a dtype but, under ``jit``, no value; use ``lucid.numpy`` and
    ``lucid.nn.functional`` on it, not NumPy or Python conversions.
    """

    __slots__ = ("trace", "aval")
    __array_priority__ = 1000

    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: len(self.aval.shape))
    size = property(lambda self: self.aval.size)

    def __len__(self):
        if not self.aval.shape:
            raise TypeError("len() of a 0-d traced array")
        return self.aval.shape[0]

    def __repr__(self):
        return f"Tracer({self.aval}, {self.trace.kind})"

    def _concrete(self, what, hint):
        raise ConcretizationError(
            f"lucid: {what} needs the value of a traced array {self.aval} inside "
            f"lucid.{self.trace.kind}, where values are abstract (or carry a gradient that "
            f"{what} would silently drop). {hint}")

    def __float__(self):
        self._concrete("float()", "Return the array and convert it outside the transform, or "
                       "keep computing with lucid.numpy.")

    def __int__(self):
        self._concrete("int()", "Pass the value as a static argument (jit's static_argnums) "
                       "or keep it an array.")

    __index__ = __int__

    def __complex__(self):
        self._concrete("complex()", "")

    def __bool__(self):
        self._concrete("bool() / an `if` or `while` on an array",
                       "Use lucid.numpy.where(cond, a, b) to choose by value, or make the "
                       "value static (jit's static_argnums).")

    def __array__(self, *args, **kwargs):
        raise TypeError(_numpy_error("np.asarray / np.array (or a math.* function)"))

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
    return (f"{what} was called on a traced array inside a lucid transform (grad/vjp/jit); "
            f"NumPy cannot see the trace, so the gradient or the compiled program would "
            f"silently lose it.{hint}")


# ----------------------------------------------------------------------------- primitives

class Primitive:
    """One operation as data: a name, a shape rule, forward impls per backend, a VJP rule.

    Args:
      name: printed in programs and error messages.
      multiple_results: ``bind`` returns a tuple of outputs.
      view: the impl returns a view of its first input instead of writing an output.
      saves: ``(input indices, result indices)`` the VJP rule reads; a tape keeps only
        these alive until the backward (None: all).
    """

    def __init__(self, name: str, *, multiple_results: bool = False, view: bool = False,
                 saves=None):
        self.name, self.multiple_results, self.view = name, multiple_results, view
        self.saves = saves
        # True when an output may be written into one of its (dead afterwards, same shape
        # and dtype) inputs: elementwise kernels that read position i before writing it.
        self.inplace_ok = False
        self.abstract = None
        self.impls: dict = {}
        self.vjp = None
        self.legacy = None  # an old-style (out, vjp-closure) function: eager and grad only

    def __repr__(self):
        return f"Primitive({self.name})"

    def def_abstract(self, fn):
        self.abstract = fn
        return fn

    def def_impl(self, fn=None, *, backend: str = "cpu"):
        if fn is None:
            return lambda f: self.def_impl(f, backend=backend)
        self.impls[backend] = fn
        return fn

    def def_vjp(self, fn):
        self.vjp = fn
        return fn

    def bind(self, *args, **params):
        return bind(self, *args, **params)

    def out_avals(self, in_avals, params) -> tuple:
        if self.abstract is None:
            raise NotImplementedError(f"lucid: primitive {self.name} has no shape rule yet, so it "
                                      "cannot be traced by lucid.jit")
        out = self.abstract(*in_avals, **params)
        return tuple(out) if self.multiple_results else (out,)


# ----------------------------------------------------------------------------- traces

class _TraceState(threading.local):
    def __init__(self):
        self.level = 0
        self.traces = []  # the transforms tracing on this thread, outermost first
        self.scope = ()   # the name scope stack (module / layer names), see name_scope


@contextlib.contextmanager
def name_scope(name: str):
    """Name the operations recorded inside (``lucid.jit`` keeps the scope on each equation;
    ``lucid.summary`` groups a model's program into layers by it). Scopes nest with ".";
    outside a transform this costs one tuple append."""
    old = _state.scope
    _state.scope = old + (str(name),)
    try:
        yield
    finally:
        _state.scope = old


def current_scope() -> str:
    return ".".join(_state.scope)


@contextlib.contextmanager
def exact_scope(scope: str):
    """Record under exactly ``scope`` (a dotted path), e.g. when replaying a program."""
    old = _state.scope
    _state.scope = tuple(scope.split(".")) if scope else ()
    try:
        yield
    finally:
        _state.scope = old


def inside(kind: str) -> bool:
    """True when a transform of this kind ("jit", "grad") is tracing on this thread."""
    return any(t.kind == kind for t in _state.traces)


_state = _TraceState()


class Trace:
    """Base of the transform interpreters. ``level`` orders nested transforms."""

    kind = "transform"

    def __init__(self):
        _state.level += 1
        _state.traces.append(self)
        self.level = _state.level
        self.live = True

    def close(self):
        self.live = False
        _state.level -= 1
        _state.traces.remove(self)

    def process(self, prim, args, params):  # pragma: no cover - abstract
        raise NotImplementedError


def _top_trace(args):
    top = None
    for a in args:
        if isinstance(a, Tracer):
            t = a.trace
            if not t.live:
                raise RuntimeError(
                    "lucid: got a traced array that escaped its transform (a Tracer stored "
                    "outside the function being differentiated or compiled)")
            if top is None or t.level > top.level:
                top = t
    return top


def bind(prim: Primitive, *args, **params):
    """Apply ``prim`` to ``args``: eagerly, or through the innermost transform tracing them."""
    trace = _top_trace(args)
    if trace is None:
        return evaluate(prim, args, params)
    return trace.process(prim, args, params)


def backend_of(args) -> str:
    """Where the arrays live ('cpu' or a device backend); mixing devices is an error."""
    found = None
    for a in args:
        dev = getattr(a, "__lucid_backend__", None)
        if dev is None:
            # a 0-d host array is a scalar (a weak Python number that ``convert`` made an
            # array): it goes wherever the arrays are, as Python and NumPy scalars do
            if isinstance(a, np.ndarray) and a.ndim:
                dev = "cpu"
            else:
                continue
        if found is None:
            found = dev
        elif dev != found:
            raise ValueError(f"lucid: an operation got arrays on two devices, {found} and {dev}; "
                             "move them to one device first (lucid.device_put)")
    return found or "cpu"


def evaluate(prim: Primitive, args, params):
    """Run the forward of ``prim`` on concrete arrays, allocating its outputs."""
    if prim.legacy is not None:
        return prim.legacy(*args, **params)[0]
    backend = backend_of(args)
    impl = prim.impls.get(backend)
    if impl is None:
        raise NotImplementedError(f"lucid: primitive {prim.name} has no {backend} kernels")
    if prim.view:
        return impl(*args, **params)
    avals = prim.out_avals([aval_of(a) for a in args], params)
    outs = tuple(allocate(a, backend) for a in avals)
    impl(*args, out=outs, **params)
    return outs if prim.multiple_results else outs[0]


_allocators = {"cpu": lambda a: _buffers.empty(a.shape, a.dtype)}


def allocate(a: Aval, backend: str = "cpu"):
    """A new uninitialised array for abstract value ``a`` on ``backend`` (its allocator)."""
    return _allocators[backend](a)


def register_allocator(backend: str, fn) -> None:
    """Let a device backend own its allocator: ``fn(aval) -> array``."""
    _allocators[backend] = fn
