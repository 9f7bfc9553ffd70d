"""Average pooling: ``adaptive_avg_pool2d`` (PyTorch's windows) and ``global_avg_pool``."""
import numpy as np

from .._backend import kernels
from .._core import Primitive, aval, bind
from .._limits import MAX_INDEX, check_alloc
from ._validate import check_ndim, contiguous, float_array, where

K = kernels("pool")
_FORMATS = ("NCHW", "NHWC")


def _nc(shape, nhwc):
    return (shape[0], shape[3]) if nhwc else (shape[0], shape[1])


global_avg_pool_p = Primitive("nn.functional.global_avg_pool")
global_avg_pool_p.saves = ((), ())  # the VJP reads only x's shape
global_avg_pool_bwd_p = Primitive("nn.functional.global_avg_pool_bwd")


@global_avg_pool_p.def_abstract
def _global_avg_pool_abstract(x, *, nhwc, keepdims):
    n, c = _nc(x.shape, nhwc)
    return aval(((n, 1, 1, c) if nhwc else (n, c, 1, 1)) if keepdims else (n, c), x.dtype)


@global_avg_pool_p.def_impl
def _global_avg_pool_impl(x, *, out, nhwc, keepdims):
    x = contiguous(x)
    n, c = _nc(x.shape, nhwc)
    if nhwc:
        K.global_avg_pool_nhwc_fwd(x.reshape(n, x.shape[1] * x.shape[2], c), out[0].reshape(n, c))
    else:
        K.global_avg_pool_fwd(x.reshape(n * c, x.shape[2] * x.shape[3]), out[0].reshape(-1))


@global_avg_pool_p.def_vjp
def _global_avg_pool_vjp(cts, x, *, results, needs, nhwc, keepdims):
    return (bind(global_avg_pool_bwd_p, cts[0], shape=x.shape, nhwc=nhwc),)


global_avg_pool_bwd_p.def_abstract(lambda g, *, shape, nhwc: aval(shape, g.dtype))


@global_avg_pool_bwd_p.def_impl
def _global_avg_pool_bwd_impl(g, *, out, shape, nhwc):
    n, c = _nc(shape, nhwc)
    g2 = contiguous(g).reshape(n, c)
    if nhwc:
        K.global_avg_pool_nhwc_bwd(g2, out[0].reshape(n, shape[1] * shape[2], c))
    else:
        K.global_avg_pool_bwd(g2.reshape(-1), out[0].reshape(n * c, shape[2] * shape[3]))


adaptive_avg_pool2d_p = Primitive("nn.functional.adaptive_avg_pool2d")
adaptive_avg_pool2d_p.saves = ((), ())
adaptive_avg_pool2d_bwd_p = Primitive("nn.functional.adaptive_avg_pool2d_bwd")


@adaptive_avg_pool2d_p.def_abstract
def _adaptive_avg_pool2d_abstract(x, *, out_hw, nhwc):
    n, c = _nc(x.shape, nhwc)
    return aval((n,) + out_hw + (c,) if nhwc else (n, c) + out_hw, x.dtype)


@adaptive_avg_pool2d_p.def_impl
def _adaptive_avg_pool2d_impl(x, *, out, out_hw, nhwc):
    # the kernel works on (N*C, H, W) planes: NHWC goes through a channels-first copy
    xc = np.ascontiguousarray(np.moveaxis(x, -1, 1)) if nhwc else contiguous(x)
    n, c, h, w = xc.shape
    if not nhwc:
        K.adaptive_avg_pool2d_fwd(xc.reshape(n * c, h, w), out[0].reshape((n * c,) + out_hw))
        return
    y = np.empty((n * c,) + out_hw, x.dtype)
    K.adaptive_avg_pool2d_fwd(xc.reshape(n * c, h, w), y)
    np.copyto(out[0], np.moveaxis(y.reshape((n, c) + out_hw), 1, -1))


@adaptive_avg_pool2d_p.def_vjp
def _adaptive_avg_pool2d_vjp(cts, x, *, results, needs, out_hw, nhwc):
    return (bind(adaptive_avg_pool2d_bwd_p, cts[0], shape=x.shape, nhwc=nhwc),)


adaptive_avg_pool2d_bwd_p.def_abstract(lambda g, *, shape, nhwc: aval(shape, g.dtype))


@adaptive_avg_pool2d_bwd_p.def_impl
def _adaptive_avg_pool2d_bwd_impl(g, *, out, shape, nhwc):
    n, c = _nc(shape, nhwc)
    h, w = (shape[1], shape[2]) if nhwc else shape[2:]
    g4 = np.moveaxis(g, -1, 1) if nhwc else g
    g_planes = np.ascontiguousarray(g4).reshape((n * c,) + g4.shape[2:])
    if not nhwc:
        K.adaptive_avg_pool2d_bwd(g_planes, out[0].reshape(n * c, h, w))
        return
    dx = np.empty((n * c, h, w), g.dtype)
    K.adaptive_avg_pool2d_bwd(g_planes, dx)
    np.copyto(out[0], np.moveaxis(dx.reshape(n, c, h, w), 1, -1))


def _global_avg_pool(x, *, nhwc, keepdims):
    return bind(global_avg_pool_p, x, nhwc=nhwc, keepdims=keepdims)


def _adaptive_avg_pool2d(x, *, out_hw, nhwc):
    return bind(adaptive_avg_pool2d_p, x, out_hw=out_hw, nhwc=nhwc)


def _check_image(x, op, data_format):
    if data_format not in _FORMATS:
        raise ValueError(f"{where(op)}: data_format must be 'NCHW' or 'NHWC', got {data_format!r}")
    x = float_array(x, op, "x")
    check_ndim(x, op, "x", (4,), f"{data_format}")
    h, w = (x.shape[1], x.shape[2]) if data_format == "NHWC" else (x.shape[2], x.shape[3])
    if h == 0 or w == 0:
        raise ValueError(f"{where(op)}: cannot average over an empty spatial size, got x of shape "
                         f"{tuple(x.shape)} ({data_format})")
    return x, (h, w)


def global_avg_pool(x, *, data_format: str = "NCHW", keepdims: bool = False):
    """Mean over the spatial axes (H, W).

    Args:
      x: float32/float64 array, (N, C, H, W) or (N, H, W, C) with ``data_format="NHWC"``.
      data_format: ``"NCHW"`` or ``"NHWC"``.
      keepdims: keep H and W as size-1 axes.
    Returns:
      (N, C), or (N, C, 1, 1) / (N, 1, 1, C) with ``keepdims``.
    """
    x, _ = _check_image(x, "global_avg_pool", data_format)
    return _global_avg_pool(x, nhwc=data_format == "NHWC", keepdims=bool(keepdims))


def _output_size(output_size, hw):
    op = "adaptive_avg_pool2d"
    pair = isinstance(output_size, (tuple, list))
    sizes = output_size if pair else (output_size, output_size)
    if len(sizes) != 2:
        raise ValueError(f"{where(op)}: output_size must be an int or a pair (oh, ow), "
                         f"got {output_size!r}")
    out = []
    for s, full in zip(sizes, hw):
        if s is None:  # PyTorch: None keeps the input's size along that axis
            s = full
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"{where(op)}: output_size entries must be positive ints (or None), "
                             f"got {output_size!r}")
        out.append(int(s))
    return tuple(out)


def adaptive_avg_pool2d(x, output_size, *, data_format: str = "NCHW"):
    """Average pooling to a fixed output size, as ``F.adaptive_avg_pool2d``.

    Output cell (i, j) averages input rows floor(i*H/oh) .. ceil((i+1)*H/oh) - 1 and
    the matching columns (windows may overlap when H is not a multiple of oh).

    Args:
      x: float32/float64 array, (N, C, H, W) or (N, H, W, C) with ``data_format="NHWC"``.
      output_size: an int or a pair (oh, ow); an entry of None keeps the input size.
      data_format: ``"NCHW"`` or ``"NHWC"``.
    Returns:
      (N, C, oh, ow) or (N, oh, ow, C).
    """
    x, hw = _check_image(x, "adaptive_avg_pool2d", data_format)
    out_hw = _output_size(output_size, hw)
    # The kernel computes window bounds as i * H // oh in int64: keep both below 2**31.
    if max(out_hw) > MAX_INDEX or max(hw) > MAX_INDEX:
        raise ValueError(f"{where('adaptive_avg_pool2d')}: output_size and the input's "
                         f"spatial size must be at most 2**31 - 1, got {out_hw} and {hw}")
    n, c = x.shape[0], x.shape[3] if data_format == "NHWC" else x.shape[1]
    check_alloc(where("adaptive_avg_pool2d"), (n, c) + out_hw, x.dtype)
    nhwc = data_format == "NHWC"
    if out_hw == (1, 1):  # the global mean has a faster, row-parallel kernel
        return _global_avg_pool(x, nhwc=nhwc, keepdims=True)
    return _adaptive_avg_pool2d(x, out_hw=out_hw, nhwc=nhwc)
