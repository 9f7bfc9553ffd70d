"""The CUDA backend's primitive implementations, registered through the core's interface
(``Primitive.def_impl(fn, backend="cuda")`` and ``register_allocator("cuda", ...)``).

Each impl takes :class:`lucid.DeviceArray` inputs and writes the preallocated
``DeviceArray`` outputs it is given, by calling the device bodies in ``_cuda_ops``,
``_cuda_layers`` and ``_cuda_arrays`` (the CPU primitives' kernel calls with their NumPy
plumbing done on the device). The forward bodies of the hot ops (conv2d, linear, the
activations, the broadcasting binary ops, transpose, and in ``_cuda_impls_nn`` the fused
GEMM epilogues) write into ``out`` directly; the others return their own arrays, which
are copied device to device into ``out`` (one extra pass, never through the host).

Registered here: the ops a ConvNeXt or InceptionNeXt forward runs eagerly (add,
multiply, transpose, gelu, conv2d, layer_norm, linear, eval batch_norm, global_avg_pool),
cross_entropy, and the backward primitives of conv2d, layer_norm, linear (x, w, bias),
gelu, global_avg_pool and sum_to_shape; every other family has its own module
(``_cuda_impls_numpy``, ``_nn``, ``_optim``, ``_random``), installed from :func:`install`,
which is idempotent (``lucid.device_put(..., "cuda")`` calls it).
"""
from __future__ import annotations

_installed = False


def _raw(a):
    return None if a is None else a.raw


def _into(out, res):
    """Copy the device array ``res`` into the DeviceArray ``out`` (device to device)."""
    out.raw.copy_to_device(res.reshape(tuple(out.shape)))


def _conv2d(x, w, b, *, out, geo, channels_last, path):
    from . import _cuda_ops as ops
    ops.conv2d_fwd(x.raw, w.raw, _raw(b), geo, path, channels_last, out[0].raw)


def _layer_norm(x, w, b, *, out, eps, axis):
    from . import _cuda_layers as L
    for o, r in zip(out, L.layer_norm_fwd(x.raw, _raw(w), _raw(b), eps, axis)):
        _into(o, r)


def _linear(x, w, b, *, out):
    from . import _cuda_ops as ops
    ops.linear_fwd(x.raw, w.raw, _raw(b), out[0].raw)


def _batch_norm_eval(x, rm, rv, w, b, *, out, eps, layout):
    from . import _cuda_layers as L
    _into(out[0], L.batch_norm_eval_fwd(x.raw, rm.raw, rv.raw, _raw(w), _raw(b), eps, layout))


def _global_avg_pool(x, *, out, nhwc, keepdims):
    from . import _cuda_layers as L
    _into(out[0], L.global_avg_pool_fwd(x.raw, nhwc))


def _activation(name):
    def impl(x, *, out):
        from . import _cuda_layers as L
        L.activation_fwd(name, x.raw, out[0].raw)
    return impl


def _binary(name):
    def impl(x, y, *, out, shape):
        from . import _cuda_arrays as A
        A.binary(name, _operand(x, out[0]), _operand(y, out[0]), shape, out[0].dtype,
                 out[0].raw)
    return impl


def _operand(v, like):
    """A device operand: DeviceArrays as they are; Python/NumPy scalars (which go wherever
    the arrays are) as a 0-d device array of the output's dtype."""
    from ._device import DeviceArray
    if isinstance(v, DeviceArray):
        return v.raw
    from . import _cuda_ops as ops
    from .kernels.cuda import memory as KM
    s = ops.empty((), like.dtype)
    KM.fill(s.reshape(1), float(v))
    return s


def _transpose(x, *, out, axes):
    from .kernels.cuda import memory as KM
    if out[0].size:
        KM.permute_copy(x.raw, tuple(axes), out[0].raw)


def _allocate(a):
    from ._device import DeviceArray, as_device
    from . import _cuda_ops as ops
    return DeviceArray(ops.empty(a.shape, a.dtype), as_device("cuda"))


def install() -> None:
    """Register the CUDA allocator and impls (once)."""
    global _installed
    if _installed:
        return
    from ._core import register_allocator
    from .nn import _activation as nn_act, _conv as nn_conv, _linear as nn_linear
    from .nn import _norm as nn_norm, _pool as nn_pool
    from .numpy import _binary as np_binary, _shape as np_shape
    register_allocator("cuda", _allocate)
    table = [(nn_conv.conv2d_p, _conv2d), (nn_norm.layer_norm_p, _layer_norm),
             (nn_linear.linear_p, _linear), (nn_norm.batch_norm_eval_p, _batch_norm_eval),
             (nn_pool.global_avg_pool_p, _global_avg_pool), (np_shape.transpose_p, _transpose),
             (np_binary.add_p, _binary("add")), (np_binary.multiply_p, _binary("multiply")),
             (nn_act.gelu_p, _activation("gelu"))]
    for prim, impl in table:
        prim.def_impl(impl, backend="cuda")
    _install_backward()
    # the other families, one module each: lucid.numpy's primitives, the nn layers and
    # losses, the optimizers' compiled step, and random draws (keys on the device)
    from . import _cuda_impls_nn, _cuda_impls_numpy, _cuda_impls_optim, _cuda_impls_random
    for module in (_cuda_impls_numpy, _cuda_impls_nn, _cuda_impls_optim, _cuda_impls_random):
        module.install()
    _installed = True


# ----------------------------------------------------------------------------- backward

def _outs(out, res):
    for o, r in zip(out, res):
        if r is not None:
            _into(o, r)


def _conv2d_bwd(g, x, w, *, out, geo, channels_last, path, wants):
    from . import _cuda_ops as ops
    # a bias of w's output channels stands in for b (not an input of the backward): its
    # presence asks for gb, its shape gives gb's
    bias_stand_in = ops.empty((w.shape[0],), w.dtype) if wants[2] else None
    res = ops.conv2d_bwd(g.raw, x.raw, w.raw, bias_stand_in, geo, path, channels_last)
    _outs(out, [r for r, want in zip(res, wants) if want])


def _layer_norm_bwd(g, x, w, mean, rstd, *, out, axis):
    from . import _cuda_layers as L
    dx, dw, db = L.layer_norm_bwd(g.raw, x.raw, _raw(w), mean.raw, mean.raw, rstd.raw, axis)
    _outs(out, (dx, dw, db))


def _linear_bwd_x(g, w, *, out):
    from . import _cuda_ops as ops
    from .kernels.cuda import gemm
    O = w.shape[0]
    w2, g2 = w.raw.reshape(O, w.size // O), ops.rows(g.raw)
    gemm.matmul(g2, w2, out[0].raw.reshape(g2.shape[0], w2.shape[1]))


def _linear_bwd_w(g, x, *, out, w_shape):
    from . import _cuda_ops as ops
    from .kernels.cuda import gemm
    gemm.matmul(ops.rows(g.raw), ops.rows(x.raw), out[0].raw.reshape(w_shape[0], w_shape[1]),
                trans_a=True)


def _bias_bwd(g, *, out):
    from . import _cuda_ops as ops
    from .kernels.cuda import linear
    linear.bias_add_bwd(ops.rows(g.raw), out[0].raw)


def _activation_bwd(name):
    def impl(g, saved, *, out):
        from . import _cuda_layers as L
        _into(out[0], L.activation_bwd(name, g.raw, saved.raw, saved.raw))
    return impl


def _global_avg_pool_bwd(g, *, out, shape, nhwc):
    from . import _cuda_layers as L
    _into(out[0], L.global_avg_pool_bwd(g.raw, tuple(shape), nhwc))


def _sum_to_shape(g, *, out, shape):
    from . import _cuda_arrays as A
    _into(out[0], A.sum_to_shape(g.raw, tuple(shape)))


def _sum_product(g, x, *, out, shape):
    from . import _cuda_arrays as A
    _into(out[0], A.sum_product_to_shape(g.raw, x.raw, tuple(shape)))


def _cross_entropy(x, t, *, out, smoothing, reduction):
    from . import _cuda_layers as L
    _outs(out, L.cross_entropy_fwd(x.raw, t.raw, smoothing, reduction))


def _cross_entropy_bwd(g, x, t, lse, *, out, smoothing, reduction):
    from . import _cuda_layers as L
    _outs(out, L.cross_entropy_bwd(g.raw, x.raw, t.raw, lse.raw, smoothing, reduction)[:1])


def _install_backward():
    from .nn import _activation as nn_act, _conv as nn_conv, _linear as nn_linear, _norm as nn_norm
    from .nn import _pool as nn_pool, _softmax as nn_softmax
    from .numpy import _binary as np_binary, _broadcast as np_broadcast
    table = [(np_binary.sum_product_p, _sum_product), (nn_conv.conv2d_bwd_p, _conv2d_bwd), (nn_norm.layer_norm_bwd_p, _layer_norm_bwd),
             (nn_linear.linear_bwd_x_p, _linear_bwd_x), (nn_linear.linear_bwd_w_p, _linear_bwd_w),
             (nn_linear.bias_bwd_p, _bias_bwd), (nn_pool.global_avg_pool_bwd_p, _global_avg_pool_bwd),
             (np_broadcast.sum_to_shape_p, _sum_to_shape),
             (nn_softmax.cross_entropy_p, _cross_entropy),
             (nn_softmax.cross_entropy_bwd_p, _cross_entropy_bwd),
             (nn_act.gelu_bwd_p, _activation_bwd("gelu"))]
    for prim, impl in table:
        prim.def_impl(impl, backend="cuda")
