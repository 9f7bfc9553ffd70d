"""Operators and array methods on :class:`lucid.Tracer` and :class:`lucid.DeviceArray`,
so code written against ndarrays (``x @ w + b``, ``x.sum(-1)``, ``x[:, 0]``, ``x.T``) also
traces, and runs on the device where the arrays live.

Arithmetic goes through lucid.numpy (differentiable); comparisons return plain bool
arrays (not differentiable), as a boolean mask has no gradient. On a DeviceArray, NumPy
ufuncs with a lucid.numpy twin (``np.exp(x)``, ``ndarray + x``) run on the device too;
others raise instead of silently copying to the host.
"""
from .._autodiff import Tracer
from .._core import _UFUNC_OPS
from .._device import DeviceArray
from . import _binary, _core, _indexing, _linalg, _reduce, _shape, _unary


def _flip(op):
    return lambda self, other: op(other, self)


def _shape_args(args):
    """``f(2, 3)`` and ``f((2, 3))`` both mean the tuple (2, 3)."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _reshape(self, *shape):
    return _shape.reshape(self, _shape_args(shape))


def _transpose(self, *axes):
    return _shape.transpose(self, _shape_args(axes) if axes else None)


def _iter(self):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d traced array")
    return (self[i] for i in range(self.shape[0]))


_METHODS = {
    "__add__": _binary.add, "__radd__": _flip(_binary.add),
    "__sub__": _binary.subtract, "__rsub__": _flip(_binary.subtract),
    "__mul__": _binary.multiply, "__rmul__": _flip(_binary.multiply),
    "__truediv__": _binary.divide, "__rtruediv__": _flip(_binary.divide),
    "__pow__": _binary.power, "__rpow__": _flip(_binary.power),
    "__matmul__": _linalg.matmul, "__rmatmul__": _flip(_linalg.matmul),
    "__neg__": _unary.negative, "__pos__": lambda self: self, "__abs__": _unary.abs,
    "__lt__": _binary.less, "__le__": _binary.less_equal,
    "__gt__": _binary.greater, "__ge__": _binary.greater_equal,
    "__eq__": _binary.equal, "__ne__": _binary.not_equal,
    "__and__": _binary.logical_and, "__rand__": _flip(_binary.logical_and),
    "__or__": _binary.logical_or, "__ror__": _flip(_binary.logical_or),
    "__xor__": _binary.logical_xor, "__invert__": _binary.logical_not,
    "__getitem__": _indexing.getitem, "__iter__": _iter,
    "reshape": _reshape, "transpose": _transpose,
    "T": property(lambda self: _shape.transpose(self)),
    "ravel": _shape.ravel, "flatten": _shape.ravel, "squeeze": _shape.squeeze,
    "sum": _reduce.sum, "mean": _reduce.mean, "max": _reduce.max, "min": _reduce.min,
    "var": _reduce.var, "astype": _core.astype, "dot": _linalg.dot,
}

for _name, _method in _METHODS.items():
    setattr(Tracer, _name, _method)
# Defining __eq__ would make tracers unhashable; keep identity hashing (as before).
Tracer.__hash__ = object.__hash__

# A DeviceArray keeps its own __getitem__ / reshape / iteration (device views).
_DEVICE_OWN = {"__getitem__", "__iter__", "reshape"}
for _name, _method in _METHODS.items():
    if _name not in _DEVICE_OWN:
        setattr(DeviceArray, _name, _method)
DeviceArray.__hash__ = object.__hash__


def _device_array_ufunc(self, ufunc, method, *inputs, **kwargs):
    op = _UFUNC_OPS.get(ufunc.__name__)
    if method == "__call__" and not kwargs and op is not None:
        import lucid.numpy as lnp
        return getattr(lnp, op)(*inputs)
    extra = {"exp": "exp", "log": "log", "sqrt": "sqrt", "tanh": "tanh", "absolute": "abs",
             "square": "square"}.get(ufunc.__name__)
    if method == "__call__" and not kwargs and extra is not None:
        import lucid.numpy as lnp
        return getattr(lnp, extra)(*inputs)
    raise TypeError(f"np.{ufunc.__name__} of a lucid.DeviceArray: NumPy would copy it to the "
                    f"host; use lucid.numpy functions (they run on the device), or "
                    f"lucid.device_get(x) for a host copy")


DeviceArray.__array_ufunc__ = _device_array_ufunc
