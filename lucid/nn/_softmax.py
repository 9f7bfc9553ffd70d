"""``softmax``, ``log_softmax`` and ``cross_entropy`` (fused log-softmax + NLL)."""
import numpy as np

from .._autodiff import Tracer, primitive
from .._backend import kernels
from ._validate import (axis_to_rows, check_axis, check_real, contiguous, float_array,
                        rows_to_axis, same_dtype, where)

K = kernels("softmax")


def _rowwise(kernel, *arrays):
    out = np.empty_like(arrays[0])
    if out.size:  # an empty axis has no row maximum to read
        kernel(*arrays, out)
    return out


@primitive(name="nn.functional.softmax")
def _softmax_p(x, *, axis):
    y2 = _rowwise(K.softmax_fwd, axis_to_rows(x, axis))
    return rows_to_axis(y2, x.shape, axis), lambda g: (
        rows_to_axis(_rowwise(K.softmax_bwd, axis_to_rows(g, axis), y2), x.shape, axis),)


@primitive(name="nn.functional.log_softmax")
def _log_softmax_p(x, *, axis):
    y2 = _rowwise(K.log_softmax_fwd, axis_to_rows(x, axis))
    return rows_to_axis(y2, x.shape, axis), lambda g: (
        rows_to_axis(_rowwise(K.log_softmax_bwd, axis_to_rows(g, axis), y2), x.shape, axis),)


def _check_softmax(x, axis, op):
    x = float_array(x, op, "x")
    if x.ndim < 1:
        raise ValueError(f"{where(op)}: x must have at least 1 dimension, got a scalar")
    return x, check_axis(axis, x.ndim, op)


def softmax(x, axis: int = -1):
    """exp(x) / sum(exp(x)) along ``axis`` (computed as exp(x - max) for stability).

    Args:
      x: float32/float64 array with at least 1 dimension.
      axis: the axis to normalise over.
    Returns:
      an array shaped like ``x`` whose slices along ``axis`` sum to 1.
    """
    x, axis = _check_softmax(x, axis, "softmax")
    return _softmax_p(x, axis=axis)


def log_softmax(x, axis: int = -1):
    """x - logsumexp(x) along ``axis``, numerically stable.

    Args:
      x: float32/float64 array with at least 1 dimension.
      axis: the axis to normalise over.
    Returns:
      an array shaped like ``x``.
    """
    x, axis = _check_softmax(x, axis, "log_softmax")
    return _log_softmax_p(x, axis=axis)


# ---- cross entropy ----

def _row_weights(g, n, reduction):
    """The per-row cotangent (float64, shape (N,)) for the reduced loss's cotangent ``g``."""
    if reduction == "none":
        return np.asarray(g, np.float64).reshape(n)
    scale = float(g) / max(n, 1) if reduction == "mean" else float(g)
    return np.full(n, scale)


@primitive(name="nn.functional.cross_entropy")
def _cross_entropy(x, t, *, smoothing, reduction):
    x = contiguous(x)
    n = x.shape[0]
    soft = t.dtype.kind == "f"
    t = contiguous(t)
    loss, lse = np.empty(n), np.empty(n)
    (K.cross_entropy_soft_fwd if soft else K.cross_entropy_fwd)(x, t, smoothing, loss, lse)
    if reduction == "none":
        out = loss.astype(x.dtype)
    else:
        total = loss.sum() if n or reduction == "sum" else np.nan  # mean of nothing is NaN
        out = np.asarray(total / n if reduction == "mean" and n else total, dtype=x.dtype)

    def vjp(g):
        gr = _row_weights(g, n, reduction)
        dx = np.empty_like(x)
        if not soft:
            K.cross_entropy_bwd(gr, x, t, lse, smoothing, dx)
            return dx, None
        dt = np.empty_like(t)
        K.cross_entropy_soft_bwd(gr, x, t, lse, smoothing, dx, dt)
        return dx, dt

    return out, vjp


def cross_entropy(logits, labels, label_smoothing: float = 0.0, reduction: str = "mean"):
    """Softmax cross-entropy, as ``torch.nn.functional.cross_entropy`` on (N, K) logits.

    Args:
      logits: float32/float64 array of shape (N, K).
      labels: integer class indices of shape (N,) with 0 <= label < K, or float
        class probabilities of shape (N, K) in the logits' dtype (differentiable).
      label_smoothing: in [0, 1]; the target becomes (1 - s) * target + s / K.
      reduction: ``"mean"`` (over N), ``"sum"`` or ``"none"`` (per-sample losses).
    Returns:
      a 0-d array (mean/sum) or an (N,) array (none), in the logits' dtype.
    """
    op = "cross_entropy"
    x = float_array(logits, op, "logits")
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{where(op)}: logits must be 2-D (N, K) with K >= 1, got shape "
                         f"{tuple(x.shape)}")
    smoothing = check_real(label_smoothing, op, "label_smoothing", low=0.0, high=1.0)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{where(op)}: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    t = _check_labels(labels, x)
    return _cross_entropy(x, t, smoothing=smoothing, reduction=reduction)


def _check_labels(labels, x):
    op = "cross_entropy"
    n, k = x.shape
    if isinstance(labels, Tracer) or (isinstance(labels, np.ndarray) and labels.dtype.kind == "f"):
        t = float_array(labels, op, "labels")
        if tuple(t.shape) != (n, k):
            raise ValueError(f"{where(op)}: float labels (class probabilities) must have the "
                             f"logits' shape {(n, k)}, got {tuple(t.shape)}")
        same_dtype(op, logits=x, labels=t)
        return t
    t = labels if isinstance(labels, np.ndarray) else np.asarray(labels)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{where(op)}: labels must be integer class indices or float "
                        f"probabilities, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"{where(op)}: integer labels must have shape ({n},) for logits of "
                         f"shape {(n, k)}, got {t.shape}")
    bad = t[(t < 0) | (t >= k)]
    if bad.size:
        raise ValueError(f"{where(op)}: labels must be in [0, {k}), got out-of-range values "
                         f"{np.unique(bad)[:10].tolist()}")
    return np.ascontiguousarray(t, dtype=np.int64)
