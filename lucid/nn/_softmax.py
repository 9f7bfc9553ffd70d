"""``softmax``, ``log_softmax`` and ``cross_entropy`` (fused log-softmax + NLL)."""
import numpy as np

from .._backend import kernels
from .._core import Primitive, Tracer, aval, bind, on_device
from ._validate import (axis_to_rows, check_axis, check_real, contiguous, float_array,
                        same_dtype, where)

K = kernels("softmax")
_BACKWARD = {}   # name -> its "<name>_bwd" primitive (for backends registering impls)


def _rowwise_into(out, kernel, axis, *arrays):
    """``kernel(*rows, out_rows)`` over the rows along ``axis``, written into ``out``."""
    if not out.size:  # an empty axis has no row maximum to read
        return
    rows = [axis_to_rows(a, axis) for a in arrays]
    if axis == out.ndim - 1:
        kernel(*rows, out.reshape(rows[0].shape))
    else:
        y2 = np.empty_like(rows[0])
        kernel(*rows, y2)
        shape = out.shape
        moved = y2.reshape(shape[:axis] + shape[axis + 1:] + (shape[axis],))
        np.copyto(out, np.moveaxis(moved, -1, axis))


def _normalizer(name: str) -> Primitive:
    """softmax / log_softmax: a row kernel forward, a VJP reading the result y."""
    fwd = Primitive(f"nn.functional.{name}")
    bwd = Primitive(f"nn.functional.{name}_bwd")
    fwd.saves = ((), (0,))
    _BACKWARD[name] = bwd
    fwd.def_abstract(lambda x, *, axis: aval(x.shape, x.dtype))
    bwd.def_abstract(lambda g, y, *, axis: aval(y.shape, g.dtype))
    kernel_fwd, kernel_bwd = getattr(K, f"{name}_fwd"), getattr(K, f"{name}_bwd")

    @fwd.def_impl
    def _impl(x, *, out, axis):
        _rowwise_into(out[0], kernel_fwd, axis, x)

    @bwd.def_impl
    def _bwd_impl(g, y, *, out, axis):
        _rowwise_into(out[0], kernel_bwd, axis, g, y)

    fwd.def_vjp(lambda cts, x, *, results, needs, axis: (bind(bwd, cts[0], results[0],
                                                               axis=axis),))
    return fwd


softmax_p = _normalizer("softmax")
log_softmax_p = _normalizer("log_softmax")
softmax_bwd_p, log_softmax_bwd_p = _BACKWARD["softmax"], _BACKWARD["log_softmax"]


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
    return bind(softmax_p, x, axis=axis)


def log_softmax(x, axis: int = -1):
    """x - logsumexp(x) along ``axis``, numerically stable.

    Args:
      x: float32/float64 array with at least 1 dimension.
      axis: the axis to normalise over.
    Returns:
      an array shaped like ``x``.
    """
    x, axis = _check_softmax(x, axis, "log_softmax")
    return bind(log_softmax_p, x, axis=axis)


# ---- cross entropy ----

def _row_weights(g, n, reduction):
    """The per-row cotangent (float64, shape (N,)) for the reduced loss's cotangent ``g``."""
    if reduction == "none":
        return np.asarray(g, np.float64).reshape(n)
    scale = float(g) / max(n, 1) if reduction == "mean" else float(g)
    return np.full(n, scale)


# Results: the loss and, as a residual for the VJP, each row's log-sum-exp (float64).
cross_entropy_p = Primitive("nn.functional.cross_entropy", multiple_results=True)
cross_entropy_p.saves = ((0, 1), (1,))
cross_entropy_bwd_p = Primitive("nn.functional.cross_entropy_bwd")  # integer labels: dx
cross_entropy_soft_bwd_p = Primitive("nn.functional.cross_entropy_soft_bwd",
                                     multiple_results=True)         # probabilities: dx, dt


@cross_entropy_p.def_abstract
def _cross_entropy_abstract(x, t, *, smoothing, reduction):
    n = x.shape[0]
    return aval((n,) if reduction == "none" else (), x.dtype), aval((n,), np.float64)


@cross_entropy_p.def_impl
def _cross_entropy_impl(x, t, *, out, smoothing, reduction):
    x = contiguous(x)
    n, k = x.shape
    soft = t.dtype.kind == "f"
    t = contiguous(t) if soft else _hard_labels(t, k)
    loss = np.empty(n)
    (K.cross_entropy_soft_fwd if soft else K.cross_entropy_fwd)(x, t, smoothing, loss, out[1])
    if reduction == "none":
        out[0][...] = loss
    else:
        total = loss.sum() if n or reduction == "sum" else np.nan  # mean of nothing is NaN
        out[0][...] = total / n if reduction == "mean" and n else total


@cross_entropy_p.def_vjp
def _cross_entropy_vjp(cts, x, t, *, results, needs, smoothing, reduction):
    params = dict(smoothing=smoothing, reduction=reduction)
    if t.dtype.kind != "f":
        return bind(cross_entropy_bwd_p, cts[0], x, t, results[1], **params), None
    dx, dt = bind(cross_entropy_soft_bwd_p, cts[0], x, t, results[1], **params)
    return dx, (dt if needs[1] else None)


cross_entropy_bwd_p.def_abstract(lambda g, x, t, lse, **_: aval(x.shape, x.dtype))
cross_entropy_soft_bwd_p.def_abstract(lambda g, x, t, lse, **_: (aval(x.shape, x.dtype),
                                                                 aval(t.shape, t.dtype)))


@cross_entropy_bwd_p.def_impl
def _cross_entropy_bwd_impl(g, x, t, lse, *, out, smoothing, reduction):
    gr = _row_weights(g, x.shape[0], reduction)
    t = np.ascontiguousarray(t, dtype=np.int64)  # range-checked by the forward
    K.cross_entropy_bwd(gr, contiguous(x), t, lse, smoothing, out[0])


@cross_entropy_soft_bwd_p.def_impl
def _cross_entropy_soft_bwd_impl(g, x, t, lse, *, out, smoothing, reduction):
    gr = _row_weights(g, x.shape[0], reduction)
    K.cross_entropy_soft_bwd(gr, contiguous(x), contiguous(t), lse, smoothing, out[0], out[1])


def _hard_labels(t, k):
    """Integer labels as the kernels' int64, range-checked (the kernels do not bounds-check,
    and under lucid.jit the labels' values are only known here)."""
    t = np.ascontiguousarray(t, dtype=np.int64)
    bad = t[(t < 0) | (t >= k)]
    if bad.size:
        raise ValueError(f"{where('cross_entropy')}: labels must be in [0, {k}), got "
                         f"out-of-range values {np.unique(bad)[:10].tolist()}")
    return t


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
    return bind(cross_entropy_p, x, t, smoothing=smoothing, reduction=reduction)[0]


def _check_labels(labels, x):
    op = "cross_entropy"
    n, k = x.shape
    labels_on_device = on_device(labels)
    traced_int = ((isinstance(labels, Tracer) or labels_on_device)
                  and np.dtype(labels.dtype).kind in "iu")  # range-checked when run
    if not traced_int and (isinstance(labels, Tracer) or labels_on_device or (
            isinstance(labels, np.ndarray) and labels.dtype.kind == "f")):
        t = float_array(labels, op, "labels")
        if tuple(t.shape) != (n, k):
            raise ValueError(f"{where(op)}: float labels (class probabilities) must have the "
                             f"logits' shape {(n, k)}, got {tuple(t.shape)}")
        same_dtype(op, logits=x, labels=t)
        return t
    t = (labels if isinstance(labels, (np.ndarray, Tracer)) or labels_on_device
         else np.asarray(labels))
    if t.dtype.kind not in "iu":
        raise TypeError(f"{where(op)}: labels must be integer class indices or float "
                        f"probabilities, got dtype {t.dtype}")
    if tuple(t.shape) != (n,):
        raise ValueError(f"{where(op)}: integer labels must have shape ({n},) for logits of "
                         f"shape {(n, k)}, got {tuple(t.shape)}")
    return t if traced_int else _hard_labels(t, k)  # traced labels: checked when run
