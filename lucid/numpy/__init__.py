"""Differentiable array operations with NumPy names (``import lucid.numpy as lnp``).

Every function accepts ndarrays, Python scalars/lists and traced arrays; float data
is float32 (default) or float64. See ``_core`` for the dtype rules.
"""
from . import _tracer_methods  # noqa: F401 - attaches operators/methods to Tracer
from ._binary import (add, clip, divide, equal, greater, greater_equal, less, less_equal,
                      logical_and, logical_not, logical_or, logical_xor, maximum, minimum,
                      multiply, not_equal, power, subtract, true_divide, where)
from ._core import astype
from ._creation import (arange, array, asarray, bool_, e, eye, float32, float64, full,
                        full_like, inf, int32, int64, nan, ndarray, ones, ones_like, pi, zeros,
                        zeros_like)
from ._indexing import getitem, take
from ._linalg import dot, matmul
from ._reduce import amax, amin, max, mean, min, sum, var
from ._shape import (broadcast_to, concatenate, expand_dims, moveaxis, pad, ravel, reshape,
                     split, squeeze, stack, swapaxes, transpose)
from ._unary import abs, absolute, erf, exp, log, negative, sqrt, square, tanh

__all__ = [
    # elementwise
    "add", "subtract", "multiply", "divide", "true_divide", "power", "maximum", "minimum",
    "where", "clip", "negative", "exp", "log", "sqrt", "tanh", "erf", "abs", "absolute",
    "square",
    # comparisons (bool ndarrays, no gradient)
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "logical_and", "logical_or", "logical_xor", "logical_not",
    # reductions
    "sum", "mean", "max", "min", "amax", "amin", "var",
    # shapes and indexing
    "reshape", "ravel", "transpose", "moveaxis", "swapaxes", "broadcast_to", "expand_dims",
    "squeeze", "concatenate", "stack", "split", "pad", "getitem", "take",
    # linear algebra
    "matmul", "dot",
    # dtypes and creation (no gradient)
    "astype", "asarray", "array", "zeros", "ones", "zeros_like", "ones_like", "full",
    "full_like", "arange", "eye", "float32", "float64", "int32", "int64", "bool_", "ndarray",
    "pi", "e", "inf", "nan",
]
