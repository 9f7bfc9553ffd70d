"""Average pooling: ``adaptive_avg_pool2d`` (PyTorch's windows) and ``global_avg_pool``."""
import numpy as np

from .._autodiff import primitive
from .._backend import kernels
from .._limits import MAX_INDEX, check_alloc
from ._validate import check_ndim, contiguous, float_array, where

K = kernels("pool")
_FORMATS = ("NCHW", "NHWC")


@primitive(name="nn.functional.global_avg_pool")
def _global_avg_pool(x, *, nhwc, keepdims):
    x = contiguous(x)
    n, c = (x.shape[0], x.shape[3]) if nhwc else x.shape[:2]
    out = np.empty((n, c), x.dtype)
    if nhwc:
        xv = x.reshape(n, x.shape[1] * x.shape[2], c)
        K.global_avg_pool_nhwc_fwd(xv, out)
    else:
        xv = x.reshape(n * c, x.shape[2] * x.shape[3])
        K.global_avg_pool_fwd(xv, out.reshape(-1))
    kept = (n, 1, 1, c) if nhwc else (n, c, 1, 1)

    def vjp(g):
        g2 = contiguous(g).reshape(n, c)
        dx = np.empty_like(xv)
        if nhwc:
            K.global_avg_pool_nhwc_bwd(g2, dx)
        else:
            K.global_avg_pool_bwd(g2.reshape(-1), dx)
        return (dx.reshape(x.shape),)

    return (out.reshape(kept) if keepdims else out), vjp


@primitive(name="nn.functional.adaptive_avg_pool2d")
def _adaptive_avg_pool2d(x, *, out_hw, nhwc):
    xc = np.ascontiguousarray(np.moveaxis(x, -1, 1)) if nhwc else contiguous(x)
    n, c, h, w = xc.shape
    planes = xc.reshape(n * c, h, w)
    out = np.empty((n * c,) + out_hw, x.dtype)
    K.adaptive_avg_pool2d_fwd(planes, out)

    def vjp(g):
        g4 = np.moveaxis(g, -1, 1) if nhwc else g
        dx = np.empty_like(planes)
        K.adaptive_avg_pool2d_bwd(np.ascontiguousarray(g4).reshape(out.shape), dx)
        dx = dx.reshape(n, c, h, w)
        return (np.ascontiguousarray(np.moveaxis(dx, 1, -1)) if nhwc else dx,)

    y = out.reshape((n, c) + out_hw)
    return (np.ascontiguousarray(np.moveaxis(y, 1, -1)) if nhwc else y), vjp


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
