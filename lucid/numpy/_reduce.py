"""Reductions over axes: ``sum``, ``mean``, ``max`` (primitives); ``min``, ``var`` (composed).

The reduced axes are brought into the middle of an (A, R, C) view: directly when
they form one contiguous block (trailing, leading or middle), otherwise by a
transpose that moves them last. See ``kernels/cpu/reduce.py``.
"""
import math

import numpy as np

from .._core import Primitive, aval, bind
from .._backend import kernels
from ._binary import multiply, subtract
from ._broadcast import n_chunks, reduce_layout, to_layout
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


def _scale(R, mean):
    return (1.0 / R if R else math.nan) if mean else 1.0


sum_p = Primitive("sum")
sum_p.saves = ((), ())  # the VJP reads only x's shape
max_p = Primitive("max")
max_p.saves = ((0,), (0,))
sum_bwd_p = Primitive("sum_bwd")
max_bwd_p = Primitive("max_bwd")


@sum_p.def_abstract
def _sum_abstract(x, *, axes, keepdims, mean):
    return aval(_out_shape(x.shape, axes, keepdims), x.dtype)


@sum_p.def_impl
def _sum_impl(x, *, out, axes, keepdims, mean):
    perm, (A, R, C) = reduce_layout(x.shape, axes)
    K.sum_fwd(to_layout(x, perm, (A, R, C)), n_chunks(A, R, C), _scale(R, mean),
              out[0].reshape(A, C))


@sum_p.def_vjp
def _sum_vjp(cts, x, *, results, needs, axes, keepdims, mean):
    return (bind(sum_bwd_p, cts[0], shape=x.shape, axes=axes, mean=mean),)


@max_p.def_abstract
def _max_abstract(x, *, axes, keepdims):
    return aval(_out_shape(x.shape, axes, keepdims), x.dtype)


@max_p.def_impl
def _max_impl(x, *, out, axes, keepdims):
    perm, (A, R, C) = reduce_layout(x.shape, axes)
    K.max_fwd(to_layout(x, perm, (A, R, C)), n_chunks(A, R, C), out[0].reshape(A, C))


@max_p.def_vjp
def _max_vjp(cts, x, *, results, needs, axes, keepdims):
    return (bind(max_bwd_p, cts[0], x, results[0], axes=axes),)


@sum_bwd_p.def_abstract
def _sum_bwd_abstract(g, *, shape, axes, mean):
    return aval(shape, g.dtype)


@sum_bwd_p.def_impl
def _sum_bwd_impl(g, *, out, shape, axes, mean):
    """The cotangent of sum/mean: ``g`` spread over the reduced axes (times 1/R for mean)."""
    perm, (A, R, C) = reduce_layout(shape, axes)
    gx = out[0].reshape(A, R, C) if perm is None else np.empty((A, R, C), g.dtype)
    K.sum_bwd(contig(g).reshape(A, C), _scale(R, mean), gx)
    if perm is not None:
        _from_layout_into(out[0], gx, perm)


@max_bwd_p.def_abstract
def _max_bwd_abstract(g, x, y, *, axes):
    return aval(x.shape, g.dtype)


@max_bwd_p.def_impl
def _max_bwd_impl(g, x, y, *, out, axes):
    """The cotangent of max: ``g`` split evenly among the positions equal to the maximum."""
    perm, (A, R, C) = reduce_layout(x.shape, axes)
    gx = out[0].reshape(A, R, C) if perm is None else np.empty((A, R, C), g.dtype)
    K.max_bwd(to_layout(x, perm, (A, R, C)), contig(y).reshape(A, C),
              contig(g).reshape(A, C), gx)
    if perm is not None:
        _from_layout_into(out[0], gx, perm)


def _from_layout_into(out, a, perm):
    """Write the (A, R, 1) array ``a`` of transposed layout ``perm`` back into ``out``."""
    moved = a.reshape([out.shape[p] for p in perm])
    np.copyto(out, np.transpose(moved, np.argsort(perm)))


def _sum(x, *, axes, keepdims, mean):
    return bind(sum_p, x, axes=axes, keepdims=keepdims, mean=mean)


def _max(x, *, axes, keepdims):
    return bind(max_p, x, axes=axes, keepdims=keepdims)


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
