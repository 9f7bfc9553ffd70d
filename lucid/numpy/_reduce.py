"""Reductions over axes: ``sum``, ``mean``, ``max`` (primitives); ``min``, ``var`` (composed).

The reduced axes are brought into the middle of an (A, R, C) view: directly when
they form one contiguous block (trailing, leading or middle), otherwise by a
transpose that moves them last. See ``kernels/cpu/reduce.py``.
"""
import math

import numpy as np

from .._autodiff import primitive
from .._backend import kernels
from ._binary import multiply, subtract
from ._broadcast import from_layout, n_chunks, reduce_layout, to_layout
from ._core import as_float_array, contig, err, normalize_axes
from ._unary import negative, square

K = kernels("reduce")


def _out_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if d in axes else n for d, n in enumerate(shape))
    return tuple(n for d, n in enumerate(shape) if d not in axes)


def _prepare(x, axis, keepdims, opname):
    x = as_float_array(x, opname)
    if not isinstance(keepdims, (bool, np.bool_)):
        raise TypeError(err(opname, f"keepdims must be a bool, got {keepdims!r}"))
    return x, normalize_axes(axis, x.ndim, opname), bool(keepdims)


@primitive(name="sum")
def _sum(x, *, axes, keepdims, mean):
    perm, (A, R, C) = reduce_layout(x.shape, axes)
    scale = (1.0 / R if R else math.nan) if mean else 1.0
    out = np.empty((A, C), x.dtype)
    K.sum_fwd(to_layout(x, perm, (A, R, C)), n_chunks(A, R, C), scale, out)

    def vjp(g):
        gx = np.empty((A, R, C), g.dtype)
        K.sum_bwd(contig(g).reshape(A, C), scale, gx)
        return (from_layout(gx, x.shape, perm),)
    return out.reshape(_out_shape(x.shape, axes, keepdims)), vjp


@primitive(name="max")
def _max(x, *, axes, keepdims):
    perm, (A, R, C) = reduce_layout(x.shape, axes)
    xv = to_layout(x, perm, (A, R, C))
    out = np.empty((A, C), x.dtype)
    K.max_fwd(xv, n_chunks(A, R, C), out)

    def vjp(g):
        gx = np.empty((A, R, C), g.dtype)
        K.max_bwd(xv, out, contig(g).reshape(A, C), gx)
        return (from_layout(gx, x.shape, perm),)
    return out.reshape(_out_shape(x.shape, axes, keepdims)), vjp


def sum(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """Sum over ``axis`` (None = all, int, negative, or tuple), accumulated in float64.

    Returns:
      an array of ``x``'s dtype; 0-d for a full reduction.
    """
    x, axes, keepdims = _prepare(x, axis, keepdims, "sum")
    return _sum(x, axes=axes, keepdims=keepdims, mean=False)


def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over ``axis`` (None = all, int, negative, or tuple)."""
    x, axes, keepdims = _prepare(x, axis, keepdims, "mean")
    return _sum(x, axes=axes, keepdims=keepdims, mean=True)


def max(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """Maximum over ``axis``; NaN propagates.

    The gradient goes to the positions equal to the maximum, split evenly among
    ties (as JAX does).
    """
    x, axes, keepdims = _prepare(x, axis, keepdims, "max")
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(err("max", f"cannot reduce a zero-size axis of shape {x.shape} "
                                    "(the maximum has no identity)"))
    return _max(x, axes=axes, keepdims=keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name
    """Minimum over ``axis`` (``-max(-x)``): NaN propagates, ties split the gradient."""
    x, axes, keepdims = _prepare(x, axis, keepdims, "min")
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(err("min", f"cannot reduce a zero-size axis of shape {x.shape} "
                                    "(the minimum has no identity)"))
    return negative(_max(negative(x), axes=axes, keepdims=keepdims))


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance over ``axis``: ``mean((x - mean(x))**2) * n / (n - ddof)`` (two-pass)."""
    x, axes, keepdims = _prepare(x, axis, keepdims, "var")
    if isinstance(ddof, (bool, np.bool_)) or not isinstance(ddof, (int, np.integer)) or ddof < 0:
        raise ValueError(err("var", f"ddof must be a non-negative int, got {ddof!r}"))
    centered = subtract(x, _sum(x, axes=axes, keepdims=True, mean=True))
    v = _sum(square(centered), axes=axes, keepdims=keepdims, mean=True)
    if ddof:
        n = math.prod(x.shape[a] for a in axes)
        v = multiply(v, n / (n - ddof) if n > ddof else math.inf)
    return v


amax, amin = max, min
