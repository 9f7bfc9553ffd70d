"""``matmul`` and ``dot``: GEMMs through NumPy's BLAS (``np.matmul(..., out=...)``).

The primitive takes operands of rank >= 2 with broadcast batch dims; the public
``matmul`` turns 1-d operands into matrices around it, as NumPy does.
"""
import numpy as np

from .._autodiff import Tracer, primitive
from ._binary import multiply
from ._broadcast import sum_to_shape
from ._core import broadcast_shapes, contig, convert, err, result_dtype
from ._shape import reshape, transpose


def _gemm(a, b, shape):
    out = np.empty(shape, np.result_type(a, b))
    np.matmul(a, b, out=out)
    return out


def _grad_a(g, a, b):
    """Cotangent of ``a`` in ``a @ b``: g @ b^T summed over a's broadcast batch dims."""
    full = _gemm(g, np.swapaxes(b, -1, -2), g.shape[:-1] + (b.shape[-2],))
    return sum_to_shape(full, a.shape)


def _grad_b(g, a, b):
    """Cotangent of ``b``: a^T @ g summed over b's broadcast batch dims."""
    K, N = b.shape[-2:]
    if b.ndim == 2:  # a shared weight: one GEMM over all batch rows, no batched partials
        return _gemm(a.reshape(-1, K).T, g.reshape(-1, N), (K, N))
    full = _gemm(np.swapaxes(a, -1, -2), g, g.shape[:-2] + (K, N))
    return sum_to_shape(full, b.shape)


@primitive(name="matmul")
def _matmul(a, b, *, shape, need):
    out = _gemm(a, b, shape)

    def vjp(g):
        g = contig(g)
        return (_grad_a(g, a, b) if need[0] else None, _grad_b(g, a, b) if need[1] else None)
    return out, vjp


def matmul(a, b):
    """Matrix product with NumPy semantics: batch dims broadcast, 1-d operands are vectors.

    Args:
      a: array of shape (..., M, K) or (K,).
      b: array of shape (..., K, N) or (K,).
    Returns:
      the product, shape broadcast(batch) + (M, N) with the vector dims dropped.
    """
    dtype = result_dtype("matmul", a, b)
    a, b = convert(a, dtype, "matmul"), convert(b, dtype, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(err("matmul", f"operands must be at least 1-d, got shapes {a.shape} "
                                       f"and {b.shape}; use multiply for scalars"))
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(err("matmul", f"contracted dims differ: shapes {a.shape} and {b.shape} "
                                       f"({a2.shape[-1]} != {b2.shape[-2]})"))
    batch = broadcast_shapes("matmul", a2.shape[:-2], b2.shape[:-2])
    shape = batch + (a2.shape[-2], b2.shape[-1])
    out = _matmul(a2, b2, shape=shape, need=(isinstance(a, Tracer), isinstance(b, Tracer)))
    final = batch + a.shape[-2:-1] + b.shape[-1:] if b.ndim > 1 else batch + a.shape[-2:-1]
    return reshape(out, final) if final != shape else out


def dot(a, b):
    """``np.dot``: a scalar product for 0-d operands, ``matmul`` for a 1-d/2-d ``b``, and
    otherwise a sum over the last axis of ``a`` and the second-to-last of ``b``."""
    dtype = result_dtype("dot", a, b)
    a, b = convert(a, dtype, "dot"), convert(b, dtype, "dot")
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    if b.ndim <= 2:
        return matmul(a, b)
    K = b.shape[-2]
    if a.shape[-1] != K:
        raise ValueError(err("dot", f"shapes {a.shape} and {b.shape} are not aligned "
                                    f"({a.shape[-1]} != {K})"))
    b_k_first = transpose(b, (b.ndim - 2,) + tuple(range(b.ndim - 2)) + (b.ndim - 1,))
    out = matmul(reshape(a, (-1, K)), reshape(b_k_first, (K, -1)))
    return reshape(out, a.shape[:-1] + b.shape[:-2] + b.shape[-1:])
