"""``matmul`` and ``dot``: GEMMs through NumPy's BLAS (``np.matmul(..., out=...)``).

The primitive takes operands of rank >= 2 with broadcast batch dims; the public
``matmul`` turns 1-d operands into matrices around it, as NumPy does.
"""
import numpy as np

from .._core import Primitive, aval, bind
from ._binary import multiply
from ._broadcast import sum_to_shape
from ._core import broadcast_shapes, contig, convert, err, result_dtype
from ._shape import reshape, transpose


matmul_p = Primitive("matmul")
matmul_bwd_a_p = Primitive("matmul_bwd_a")  # g @ b^T (before summing a's broadcast dims)
matmul_bwd_b_p = Primitive("matmul_bwd_b")  # a^T @ g


@matmul_p.def_abstract
def _matmul_abstract(a, b, *, shape):
    return aval(shape, np.result_type(a.dtype, b.dtype))


@matmul_p.def_impl
def _matmul_impl(a, b, *, out, shape):
    np.matmul(a, b, out=out[0])


@matmul_p.def_vjp
def _matmul_vjp(cts, a, b, *, results, needs, shape):
    g = cts[0]
    ga = gb = None
    if needs[0]:  # g @ b^T summed over a's broadcast batch dims
        ga = sum_to_shape(bind(matmul_bwd_a_p, g, b), a.shape)
    if needs[1]:
        gb = bind(matmul_bwd_b_p, g, a, b_shape=b.shape)
        if b.ndim > 2:
            gb = sum_to_shape(gb, b.shape)
    return ga, gb


@matmul_bwd_a_p.def_abstract
def _matmul_bwd_a_abstract(g, b):
    return aval(g.shape[:-1] + (b.shape[-2],), g.dtype)


@matmul_bwd_a_p.def_impl
def _matmul_bwd_a_impl(g, b, *, out):
    np.matmul(contig(g), np.swapaxes(b, -1, -2), out=out[0])


@matmul_bwd_b_p.def_abstract
def _matmul_bwd_b_abstract(g, a, *, b_shape):
    K, N = b_shape[-2:]
    return aval((K, N) if len(b_shape) == 2 else g.shape[:-2] + (K, N), g.dtype)


@matmul_bwd_b_p.def_impl
def _matmul_bwd_b_impl(g, a, *, out, b_shape):
    """a^T @ g; for a 2-d (shared weight) b, one GEMM over all batch rows, no batched
    partials to sum afterwards."""
    K, N = b_shape[-2:]
    g = contig(g)
    if len(b_shape) == 2:
        np.matmul(a.reshape(-1, K).T, g.reshape(-1, N), out=out[0])
    else:
        np.matmul(np.swapaxes(a, -1, -2), g, out=out[0])


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
    out = bind(matmul_p, a2, b2, shape=shape)
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
