"""Device-side bodies of lucid.numpy's array primitives on the CUDA backend (raw
numba.cuda arrays): broadcasting elementwise ops, sums/means/maxima over axes, and the
"unbroadcast" sums their VJPs need. The shape logic is the CPU's
(``lucid/numpy/_broadcast.py``: the same collapse to 4-d broadcasting operands and to
(A, R, C) reduction views); only the data movement differs.
"""
from __future__ import annotations

import math

from ._cuda_ops import empty, permuted
from .kernels.cuda import binary as KB
from .kernels.cuda import elementwise as KE
from .kernels.cuda import memory as KM
from .kernels.cuda import reduce as KR
from .numpy._broadcast import _broadcast_axes, _collapse, reduce_layout

BINARY = ("add", "subtract", "multiply", "divide", "power", "maximum", "minimum")
UNARY = ("negative", "exp", "log", "sqrt", "tanh", "erf", "abs", "square")


def _four_d(out_shape, operands):
    """(out 4-d shape, operands viewed as 4-d broadcasting arrays), or None past 4 dims."""
    dims = _collapse(out_shape, [tuple(o.shape) for o in operands])
    if len(dims) > 4:
        return None
    dims = [[1, (False,) * len(operands)]] * (4 - len(dims)) + dims
    out4 = tuple(s for s, _ in dims)
    return out4, [o.reshape(tuple(s if f[i] else 1 for s, f in dims))
                  for i, o in enumerate(operands)]


def materialize(a, shape, scale=1.0):
    """``a`` (times ``scale``) broadcast to ``shape``, C-contiguous (a reshaped view of ``a``
    when only size-1 dims differ and scale is 1)."""
    shape = tuple(shape)
    if a.size == math.prod(shape) and scale == 1.0:
        return a.reshape(shape)
    out = empty(shape, a.dtype)
    if out.size:
        KM.broadcast(a, float(scale), out)
    return out


def binary(name, x, y, out_shape, dtype, out=None):
    """``name`` in :data:`BINARY` over the broadcast of x and y -> a new array (or ``out``)."""
    out = empty(out_shape, dtype) if out is None else out
    if out.size == 0:
        return out
    four = _four_d(tuple(out_shape), [x, y])
    if four is None:
        n = out.size
        out4, ops = (1, 1, 1, n), [materialize(o, out_shape).reshape((1, 1, 1, n)) for o in (x, y)]
    else:
        out4, ops = four
    getattr(KB, f"{name}_fwd")(*ops, out.reshape(out4))
    return out


def where(cond, x, y, out_shape, dtype):
    """cond ? x : y over the broadcast of the three -> a new array."""
    out = empty(out_shape, dtype)
    if out.size == 0:
        return out
    four = _four_d(tuple(out_shape), [cond, x, y])
    if four is None:
        n = out.size
        out4, ops = (1, 1, 1, n), [materialize(o, out_shape).reshape((1, 1, 1, n))
                                   for o in (cond, x, y)]
    else:
        out4, ops = four
    KB.where_fwd(*ops, out.reshape(out4))
    return out


def unary(name, x, bwd=False, *args):
    """``name``'s forward (x) or backward (g, saved) over flat arrays -> a new array."""
    arrays = (x,) + args
    out = empty(x.shape, x.dtype)
    kernel = getattr(KE, f"{name}_{'bwd' if bwd else 'fwd'}")
    kernel(*(a.reshape(a.size) for a in arrays), out.reshape(out.size))
    return out


def _layout(x, axes):
    """x as its (A, R, C) reduction view, and how to undo it."""
    perm, arc = reduce_layout(tuple(x.shape), tuple(axes))
    xv = x if perm is None else permuted(x, perm)
    return xv.reshape(arc), perm, arc


def reduce_sum(x, axes, scale=1.0):
    """scale * the sum over ``axes`` (kept dims in order) -> shape without those axes."""
    xv, _, (A, R, C) = _layout(x, axes)
    out = empty((A, C), x.dtype)
    KR.sum_fwd(xv, 1, float(scale), out)
    return out.reshape(tuple(n for d, n in enumerate(x.shape) if d not in axes))


def reduce_max(x, axes):
    """The maximum over ``axes`` (R >= 1; NaN propagates)."""
    xv, _, (A, R, C) = _layout(x, axes)
    out = empty((A, C), x.dtype)
    KR.max_fwd(xv, 1, out)
    return out.reshape(tuple(n for d, n in enumerate(x.shape) if d not in axes))


def sum_to_shape(g, shape):
    """Sum ``g`` over the axes along which an array of ``shape`` was broadcast to it."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    return reduce_sum(g, _broadcast_axes(tuple(g.shape), shape)).reshape(shape)


def sum_product_to_shape(g, x, shape):
    """``sum_to_shape(g * x, shape)`` for same-shape g and x, in one pass."""
    axes = _broadcast_axes(tuple(g.shape), tuple(shape))
    gv, _, (A, R, C) = _layout(g, axes)
    xv, _, _ = _layout(x, axes)
    out = empty((A, C), g.dtype)
    KR.sum_prod_fwd(gv, xv, 1, out)
    return out.reshape(tuple(shape))


def spread(g, x_shape, axes, scale=1.0):
    """The cotangent of a sum/mean over ``axes``: scale * g broadcast back to ``x_shape``."""
    kept = tuple(1 if d in axes else n for d, n in enumerate(x_shape))
    return materialize(g.reshape(kept), x_shape, scale)
