"""CUDA impls of the nn layers and losses not in _cuda_impls (batch norm in train mode, softmax, fused ops, the InceptionNeXt mixer, pools).

Registered by :func:`lucid._cuda_impls.install` (through ``Primitive.def_impl(fn,
backend="cuda")``); see that module for the conventions (DeviceArray in, preallocated
DeviceArray ``out``, no host round trip).

Each impl mirrors its CPU impl's inputs, params and outputs exactly: a primitive's
signature is not always the device body's (``_cuda_layers``). Batch norm is the case in
point: ``batch_norm_train`` returns (y, batch mean, batch *variance*) and leaves the
running statistics to ``batch_norm_running_stats``; its backward takes the variance, not
an inverse standard deviation, and no bias, yet writes the bias gradient (``sum g``)
whether or not there is a bias. The batch-norm impls therefore call the kernels directly
and write into ``out``, rather than adapting the body's (y, new_rm, new_rv, mean, invstd).
The sync-BN primitives are not registered: their statistics go through a host callable
(an MPI all-reduce), so on the device they raise "no cuda kernels".
"""
from __future__ import annotations

import numpy as np

F64 = np.float64


def _c(a):
    """The raw C-contiguous numba array of a DeviceArray input (None stays None)."""
    if a is None:
        return None
    if not a.is_c_contiguous():
        raise ValueError(f"lucid (cuda): expected a C-contiguous device array, got a strided "
                         f"view of shape {a.shape}")
    return a.raw


# ----------------------------------------------------------------------------- batch norm

def _bn(name, layout):
    from .kernels.cuda import norm as KN
    return getattr(KN, f"{name}_{layout}")


def _invstd_scale(mean64, var64, w, eps, dtype):
    """(1/sqrt(var + eps) float64, invstd * w in ``dtype``) as the CPU's ``_scale_shift``."""
    from . import _cuda_layers as L
    invstd, scale, _ = L._affine(mean64, var64, w, None, eps, dtype)
    return invstd, scale


def _batch_norm_train(x, w, b, *, out, eps, layout):
    from . import _cuda_layers as L
    y, mean, var = (o.raw for o in out)
    xv = L._channel_view(_c(x), layout)
    _bn("batch_norm_stats", layout)(xv, mean, var)
    _, scale, shift = L._affine(mean, var, _c(w), _c(b), eps, x.dtype)
    _bn("batch_norm_fwd", layout)(xv, scale, shift, y.reshape(*xv.shape))


def _batch_norm_train_bwd(g, x, w, mean, var, *, out, eps, layout):
    from . import _cuda_layers as L
    from ._cuda_ops import empty
    from .kernels.cuda import channel as KCh
    dx, dw, db = (o.raw for o in out)
    xv, gv = L._channel_view(_c(x), layout), L._channel_view(_c(g), layout)
    mean, C = _c(mean), mean.shape[0]
    invstd, _ = _invstd_scale(mean, _c(var), _c(w), eps, x.dtype)
    sum_g, sum_gxc = empty(C, F64), empty(C, F64)
    _bn("batch_norm_bwd_sums", layout)(gv, xv, mean, sum_g, sum_gxc)
    a, bx, c0 = empty(C, F64), empty(C, F64), empty(C, F64)
    KCh.bn_bwd_coeffs(invstd, invstd if w is None else _c(w), w is not None, sum_g, sum_gxc,
                      mean, float(x.size // C), a, bx, c0)
    _bn("batch_norm_bwd_x", layout)(gv, xv, a, bx, c0, dx.reshape(*xv.shape))
    KCh.bn_param_grads(sum_g, sum_gxc, invstd, dw, db)   # db = sum g, with or without a bias


def _batch_norm_eval_bwd(g, x, rm, rv, w, *, out, eps, layout):
    from . import _cuda_layers as L
    from ._cuda_ops import empty, zeros
    from .kernels.cuda import channel as KCh
    dx, dw, db = (o.raw for o in out)
    xv, gv = L._channel_view(_c(x), layout), L._channel_view(_c(g), layout)
    mean, C = L._as_f64(_c(rm)), rm.shape[0]
    invstd, scale = _invstd_scale(mean, L._as_f64(_c(rv)), _c(w), eps, x.dtype)
    _bn("batch_norm_fwd", layout)(gv, scale, zeros(C, x.dtype), dx.reshape(*xv.shape))
    sum_g, sum_gxc = empty(C, F64), empty(C, F64)
    _bn("batch_norm_bwd_sums", layout)(gv, xv, mean, sum_g, sum_gxc)
    KCh.bn_param_grads(sum_g, sum_gxc, invstd, dw, db)


def _batch_norm_running_stats(rm, rv, mean, var, *, out, momentum, count):
    from .kernels.cuda import channel as KCh
    KCh.bn_running(_c(rm), _c(rv), _c(mean), _c(var), float(momentum), count / (count - 1),
                   out[0].raw, out[1].raw)


def _fold_batch_norm(w, b, rm, rv, gamma, beta, *, out, eps, side):
    """BN's eval affine folded into the weight/bias of the layer beside it (lucid._fold_bn)."""
    from . import _cuda_arrays as A
    from . import _cuda_layers as L
    from ._cuda_ops import empty, zeros
    from .kernels.cuda import gemm, memory as KM
    wr, O = _c(w), w.shape[0]
    _, scale, shift = L._affine(L._as_f64(_c(rm)), L._as_f64(_c(rv)), _c(gamma), _c(beta), eps,
                                F64)
    scale_w = empty(scale.shape, w.dtype)
    KM.cast(scale, scale_w)
    b64 = zeros(O, F64) if b is None else L._as_f64(_c(b))
    if side == "out":   # BN after the layer: output channels (axis 0)
        wv = scale_w.reshape(*((O,) + (1,) * (w.ndim - 1)))
        b_out = A.binary("add", A.binary("multiply", b64, scale, (O,), F64), shift, (O,), F64)
    else:               # BN before the layer: input channels (axis 1)
        C = w.shape[1]
        wv = scale_w.reshape(*((1, C) + (1,) * (w.ndim - 2)))
        w_sum = A.reduce_sum(wr.reshape(O, C, w.size // (O * C)), (2,))   # in w's dtype
        shift_w = empty((C, 1), w.dtype)
        KM.cast(shift, shift_w.reshape(C))
        w_shift = empty((O, 1), w.dtype)
        gemm.matmul(w_sum, shift_w, w_shift)
        b_out = A.binary("add", b64, w_shift.reshape(O), (O,), F64)
    out[0].raw.copy_to_device(A.binary("multiply", wr, wv, tuple(w.shape), w.dtype))
    KM.cast(b_out, out[1].raw)


# ----------------------------------------------------------------------------- softmax, loss

def _normalizer(log):
    def impl(x, *, out, axis):
        from . import _cuda_layers as L
        from ._cuda_impls import _into
        if out[0].size:   # an empty axis has no row maximum to read (as the CPU's)
            _into(out[0], L.softmax_fwd(_c(x), axis, log))
    return impl


def _normalizer_bwd(log):
    def impl(g, y, *, out, axis):
        from . import _cuda_layers as L
        from ._cuda_impls import _into
        if out[0].size:
            _into(out[0], L.softmax_bwd(_c(g), _c(y), axis, log))
    return impl


def _cross_entropy_soft_bwd(g, x, t, lse, *, out, smoothing, reduction):
    from . import _cuda_layers as L
    from ._cuda_impls import _outs
    _outs(out, L.cross_entropy_bwd(_c(g), _c(x), _c(t), _c(lse), smoothing, reduction))


# ----------------------------------------------------------------------------- activations, fused

def _bias_gelu(h, b, *, out):
    from . import _cuda_layers as L
    from ._cuda_impls import _into
    L.bias_gelu_fwd(_c(h), _c(b), _c(out[0]))


def _bias_gelu_bwd(g, h, b, *, out):
    from . import _cuda_layers as L
    from ._cuda_impls import _outs
    _outs(out, L.bias_gelu_bwd(_c(g), _c(h), _c(b)))


def _scale_residual(x, y, gamma, *, out):
    from . import _cuda_layers as L
    from ._cuda_impls import _into
    L.scale_residual_fwd(_c(x), _c(y), _c(gamma), out=_c(out[0]))


def _bias_scale_residual(x, y, gamma, b, *, out):
    from . import _cuda_layers as L
    from ._cuda_impls import _into
    L.scale_residual_fwd(_c(x), _c(y), _c(gamma), _c(b), _c(out[0]))


def _scale_residual_bwd(g, y, gamma, *, out):
    from . import _cuda_layers as L
    from ._cuda_impls import _outs
    _outs(out, L.scale_residual_bwd(_c(g), _c(y), _c(gamma))[1:3])   # (gy, ggamma)


def _bias_scale_residual_bwd(g, y, gamma, b, *, out):
    from . import _cuda_layers as L
    from ._cuda_impls import _outs
    _outs(out, L.scale_residual_bwd(_c(g), _c(y), _c(gamma), _c(b))[1:])   # (gy, ggamma, gb)


# ----------------------------------------------------------------------------- inception mixer

def _inception(x, w_hw, b_hw, w_w, b_w, w_h, b_h, *, out, channels_last):
    from . import _cuda_ops as ops
    from ._cuda_impls import _into
    ws = [_c(w) for w in (w_hw, w_w, w_h)]
    _into(out[0], ops.inception_fwd(_c(x), ws, [_c(b) for b in (b_hw, b_w, b_h)],
                                    channels_last))


def _inception_bwd(g, x, w_hw, w_w, w_h, *, out, channels_last):
    """-> (gx, three weight gradients, three bias gradients): the primitive has no bias
    inputs but always writes their gradients, so the body is asked for all three."""
    from . import _cuda_ops as ops
    from ._cuda_impls import _outs
    ws = [_c(w) for w in (w_hw, w_w, w_h)]
    gx, gws, gbs = ops.inception_bwd(_c(g), _c(x), ws, ws, channels_last)   # ws: "has a bias"
    _outs(out, [gx] + list(gws) + list(gbs))


# ----------------------------------------------------------------------------- pooling

def _planes_nchw(a, nhwc):
    """(N*C, H, W) planes of an NCHW or NHWC array (NHWC through a channels-first copy)."""
    from ._cuda_ops import permuted
    a = permuted(a, (0, 3, 1, 2)) if nhwc else a
    n, c, h, w = a.shape
    return a.reshape(n * c, h, w), (n, c)


def _from_planes(planes, out, nc, nhwc):
    from ._cuda_ops import permuted
    n, c = nc
    h, w = planes.shape[1], planes.shape[2]
    nchw = planes.reshape(n, c, h, w)
    out.raw.copy_to_device(permuted(nchw, (0, 2, 3, 1)) if nhwc else nchw)


def _adaptive_avg_pool2d(x, *, out, out_hw, nhwc):
    from ._cuda_ops import empty
    from .kernels.cuda import pool as KP
    planes, nc = _planes_nchw(_c(x), nhwc)
    y = empty((planes.shape[0],) + tuple(out_hw), x.dtype)
    KP.adaptive_avg_pool2d_fwd(planes, y)
    _from_planes(y, out[0], nc, nhwc)


def _adaptive_avg_pool2d_bwd(g, *, out, shape, nhwc):
    from ._cuda_ops import empty
    from .kernels.cuda import pool as KP
    planes, nc = _planes_nchw(_c(g), nhwc)
    h, w = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
    dx = empty((planes.shape[0], h, w), g.dtype)
    KP.adaptive_avg_pool2d_bwd(planes, dx)
    _from_planes(dx, out[0], nc, nhwc)


def install() -> None:
    """Register this family's CUDA impls with the core."""
    from . import _cuda_impls as base, _fold_bn
    from .nn import _activation as act, _fused as fused, _inception as inc, _norm as norm
    from .nn import _pool as pool, _softmax as sm
    table = [
        (norm.batch_norm_train_p, _batch_norm_train),
        (norm.batch_norm_train_bwd_p, _batch_norm_train_bwd),
        (norm.batch_norm_eval_bwd_p, _batch_norm_eval_bwd),
        (norm.batch_norm_running_stats_p, _batch_norm_running_stats),
        (_fold_bn.fold_batch_norm_p, _fold_batch_norm),
        (sm.softmax_p, _normalizer(False)), (sm.softmax_bwd_p, _normalizer_bwd(False)),
        (sm.log_softmax_p, _normalizer(True)), (sm.log_softmax_bwd_p, _normalizer_bwd(True)),
        (sm.cross_entropy_soft_bwd_p, _cross_entropy_soft_bwd),
        (act.relu_p, base._activation("relu")), (act.relu_bwd_p, base._activation_bwd("relu")),
        (act.gelu_tanh_p, base._activation("gelu_tanh")),
        (act.gelu_tanh_bwd_p, base._activation_bwd("gelu_tanh")),
        (act.bias_gelu_p, _bias_gelu), (act.bias_gelu_bwd_p, _bias_gelu_bwd),
        (fused.scale_residual_p, _scale_residual),
        (fused.bias_scale_residual_p, _bias_scale_residual),
        (fused.scale_residual_bwd_p, _scale_residual_bwd),
        (fused.bias_scale_residual_bwd_p, _bias_scale_residual_bwd),
        (inc.inception_p, _inception), (inc.inception_bwd_p, _inception_bwd),
        (pool.adaptive_avg_pool2d_p, _adaptive_avg_pool2d),
        (pool.adaptive_avg_pool2d_bwd_p, _adaptive_avg_pool2d_bwd),
    ]
    for prim, impl in table:
        prim.def_impl(impl, backend="cuda")
