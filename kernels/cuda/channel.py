"""Per-channel vector math of batch norm and per-row weights of the losses, on the
device (CUDA only: the CPU primitives do these few-element computations in NumPy; here
they must not round-trip through the host). Arithmetic in float64, stored in each
output's dtype, as NumPy computes them on the CPU side."""
import math

from numba import cuda

from ._common import launch


@cuda.jit
def _bn_affine(mean, var, w, b, eps, has_w, has_b, invstd, scale, shift):
    for c in range(cuda.grid(1), mean.size, cuda.gridsize(1)):
        inv = 1.0 / math.sqrt(var[c] + eps)
        s = inv * w[c] if has_w else inv
        invstd[c] = inv
        scale[c] = s
        shift[c] = b[c] - mean[c] * s if has_b else -mean[c] * s


@cuda.jit
def _bn_running(rm, rv, mean, var, momentum, unbias, new_rm, new_rv):
    for c in range(cuda.grid(1), rm.size, cuda.gridsize(1)):
        new_rm[c] = (1.0 - momentum) * rm[c] + momentum * mean[c]
        new_rv[c] = (1.0 - momentum) * rv[c] + momentum * var[c] * unbias


@cuda.jit
def _bn_bwd_coeffs(invstd, w, has_w, sum_g, sum_gxc, mean, count, a, bx, c0):
    for c in range(cuda.grid(1), invstd.size, cuda.gridsize(1)):
        inv = invstd[c]
        ac = inv * w[c] if has_w else inv
        bc = -ac * inv * inv * sum_gxc[c] / count
        a[c] = ac
        bx[c] = bc
        c0[c] = -bc * mean[c] - ac * sum_g[c] / count


@cuda.jit
def _bn_param_grads(sum_g, sum_gxc, invstd, dw, db):
    for c in range(cuda.grid(1), sum_g.size, cuda.gridsize(1)):
        dw[c] = sum_gxc[c] * invstd[c]
        db[c] = sum_g[c]


@cuda.jit
def _scaled_scalar(src, scale, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[0] * scale


def bn_affine(mean, var, w, b, eps, has_w, has_b, invstd, scale, shift):
    """invstd = 1/sqrt(var + eps); scale = invstd * w (or invstd); shift = b - mean * scale
    (or -mean * scale). w, b are read only when has_w / has_b."""
    launch(_bn_affine, mean.size, mean, var, w, b, eps, has_w, has_b, invstd, scale, shift)


def bn_running(rm, rv, mean, var, momentum, unbias, new_rm, new_rv):
    """new = (1 - momentum) * running + momentum * batch statistic (var times unbias)."""
    launch(_bn_running, rm.size, rm, rv, mean, var, momentum, unbias, new_rm, new_rv)


def bn_bwd_coeffs(invstd, w, has_w, sum_g, sum_gxc, mean, count, a, bx, c0):
    """The per-channel terms of dx = a * g + bx * x + c0 (train-mode batch norm)."""
    launch(_bn_bwd_coeffs, invstd.size, invstd, w, has_w, sum_g, sum_gxc, mean, count, a, bx, c0)


def bn_param_grads(sum_g, sum_gxc, invstd, dw, db):
    """dw = sum_gxc * invstd, db = sum_g (cast to the parameters' dtype)."""
    launch(_bn_param_grads, sum_g.size, sum_g, sum_gxc, invstd, dw, db)


def scaled_scalar(src, scale, out):
    """out[:] = src[0] * scale (a reduced loss's cotangent spread over rows, on device)."""
    launch(_scaled_scalar, out.size, src.reshape(src.size), scale, out.reshape(out.size))
