"""Convolution, normalisation, softmax, pooling, reduction and InceptionNeXt-mixer CUDA
kernels against their CPU twins on the simulator (float32, float64), tiny shapes."""
import numpy as np
import pytest

from _twin import Out, rand, twin

DTYPES = [np.float32, np.float64]
F64 = np.float64


@pytest.fixture
def rng():
    return np.random.default_rng(1)


# (kh, kw, stride, pad): ConvNeXt's 7x7 (the CPU's 7-wide row path), a strided 3x3, and
# padding wider than the kernel (the mirrored adjoint padding goes negative).
DEPTHWISE = [(7, 7, 1, 3), (3, 3, 2, 1), (3, 3, 1, 4)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kh, kw, s, p", DEPTHWISE)
def test_depthwise(rng, dtype, kh, kw, s, p):
    N, H, W, C = 1, 6, 7, 5   # C > the simulator's 4-column reduction groups
    Ho, Wo = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw) // s + 1
    x, w, b = rand(rng, (N, H, W, C), dtype), rand(rng, (kh, kw, C), dtype), rand(rng, C, dtype)
    g = rand(rng, (N, Ho, Wo, C), dtype)
    twin("conv", "depthwise_fwd", x, w, b, s, s, p, p, Out((N, Ho, Wo, C), dtype), dtype=dtype)
    twin("conv", "depthwise_bwd_x", g, w, s, s, p, p, Out(x.shape, dtype), dtype=dtype)
    twin("conv", "depthwise_bwd_w", g, x, s, s, p, p, Out(w.shape, dtype), Out(C, dtype),
         dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_patch_and_im2col(rng, dtype):
    N, H, W, C = 2, 5, 6, 4
    x = rand(rng, (N, H, W, C), dtype)
    Ho, Wo = H // 2, W // 2   # H = 5: the last row fills no patch
    cols = twin("conv", "space_to_depth", x, 2, 2, Ho, Wo, Out((N * Ho * Wo, C * 4), dtype),
                dtype=dtype)[-1]
    twin("conv", "depth_to_space", cols, 2, 2, Ho, Wo, Out(x.shape, dtype), dtype=dtype)
    G, kh, kw, s, p = 2, 3, 3, 2, 1
    Ho, Wo = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw) // s + 1
    cols = twin("conv", "im2col", x, kh, kw, s, s, p, p, Ho, Wo,
                Out((G, N * Ho * Wo, kh * kw * C // G), dtype), dtype=dtype)[-1]
    twin("conv", "col2im", cols, kh, kw, s, s, p, p, Ho, Wo, Out(x.shape, dtype), dtype=dtype)
    y, b = rand(rng, (13, 5), dtype), rand(rng, 5, dtype)
    twin("conv", "bias_add", y, b, dtype=dtype)
    twin("conv", "bias_grad", y, Out(5, dtype), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(rng, dtype):
    R, C = 6, 19
    x, w, b = rand(rng, (R, C), dtype) * 2 + 1, rand(rng, C, dtype), rand(rng, C, dtype)
    _, _, _, _, _, mean, rstd = twin("norm", "layer_norm_fwd", x, w, b, 1e-6, Out((R, C), dtype),
                                     Out(R, F64), Out(R, F64), dtype=dtype)
    twin("norm", "layer_norm_bwd", rand(rng, (R, C), dtype), x, w, mean, rstd, Out((R, C), dtype),
         Out(C, dtype), Out(C, dtype), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout, shape", [("last", (14, 5)), ("mid", (3, 4, 6))])
def test_batch_norm(rng, dtype, layout, shape):
    x, g = rand(rng, shape, dtype) + 0.5, rand(rng, shape, dtype)
    C = shape[1]
    mean = twin("norm", f"batch_norm_stats_{layout}", x, Out(C, F64), Out(C, F64), dtype=dtype)[1]
    scale, shift = rand(rng, C, dtype), rand(rng, C, dtype)
    twin("norm", f"batch_norm_fwd_{layout}", x, scale, shift, Out(shape, dtype), dtype=dtype)
    twin("norm", f"batch_norm_bwd_sums_{layout}", g, x, mean, Out(C, F64), Out(C, F64), dtype=dtype)
    a, bx, c0 = rand(rng, C, F64), rand(rng, C, F64), rand(rng, C, F64)
    twin("norm", f"batch_norm_bwd_x_{layout}", g, x, a, bx, c0, Out(shape, dtype), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_and_cross_entropy(rng, dtype):
    R, K = 5, 11
    x, g = rand(rng, (R, K), dtype) * 3, rand(rng, (R, K), dtype)
    for fwd, bwd in (("softmax_fwd", "softmax_bwd"), ("log_softmax_fwd", "log_softmax_bwd")):
        y = twin("softmax", fwd, x, Out((R, K), dtype), dtype=dtype)[1]
        twin("softmax", bwd, g, y, Out((R, K), dtype), dtype=dtype)
    labels = rng.integers(0, K, R)
    gr = rand(rng, R, dtype)
    for smoothing in (0.0, 0.1):
        lse = twin("softmax", "cross_entropy_fwd", x, labels, smoothing, Out(R, F64), Out(R, F64),
                   dtype=dtype)[-1]
        twin("softmax", "cross_entropy_bwd", gr, x, labels, lse, smoothing, Out((R, K), dtype),
             dtype=dtype)
        t = rng.random((R, K)).astype(dtype)
        t /= t.sum(1, keepdims=True)
        lse = twin("softmax", "cross_entropy_soft_fwd", x, t, smoothing, Out(R, F64), Out(R, F64),
                   dtype=dtype)[-1]
        twin("softmax", "cross_entropy_soft_bwd", gr, x, t, lse, smoothing, Out((R, K), dtype),
             Out((R, K), dtype), dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling(rng, dtype):
    P, H, W = 3, 7, 5
    x = rand(rng, (P, H, W), dtype)
    twin("pool", "adaptive_avg_pool2d_fwd", x, Out((P, 3, 2), dtype), dtype=dtype)
    twin("pool", "adaptive_avg_pool2d_bwd", rand(rng, (P, 3, 2), dtype), Out((P, H, W), dtype),
         dtype=dtype)
    twin("pool", "global_avg_pool_fwd", x.reshape(P, -1), Out(P, dtype), dtype=dtype)
    twin("pool", "global_avg_pool_bwd", rand(rng, P, dtype), Out((P, H * W), dtype), dtype=dtype)
    xn = rand(rng, (2, 9, 4), dtype)
    twin("pool", "global_avg_pool_nhwc_fwd", xn, Out((2, 4), dtype), dtype=dtype)
    twin("pool", "global_avg_pool_nhwc_bwd", rand(rng, (2, 4), dtype), Out((2, 9, 4), dtype),
         dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 9, 3), (1, 23, 1), (4, 1, 5)])
def test_reductions(rng, dtype, shape):
    A, R, C = shape
    x, y = rand(rng, shape, dtype), rand(rng, shape, dtype)
    twin("reduce", "sum_fwd", x, 3, 0.5, Out((A, C), dtype), dtype=dtype)
    twin("reduce", "sum_prod_fwd", x, y, 3, Out((A, C), dtype), dtype=dtype)
    twin("reduce", "sum_bwd", rand(rng, (A, C), dtype), 0.25, Out(shape, dtype), dtype=dtype)
    x[:, 0] = 5.0   # ties: the max's cotangent is split evenly among them
    x[:, -1] = 5.0
    m = twin("reduce", "max_fwd", x, 2, Out((A, C), dtype), dtype=dtype)[-1]
    twin("reduce", "max_bwd", x, m, rand(rng, (A, C), dtype), Out(shape, dtype), dtype=dtype)


def _tiled(w, W):
    """(gc, 1, kh, kw) depthwise weight -> the (kh, kw, W * gc) row tiles the kernels take."""
    return np.ascontiguousarray(np.tile(w[:, 0].transpose(1, 2, 0), (1, 1, W)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_inception_mixer(rng, dtype):
    N, H, W, gc, c_id = 2, 5, 6, 2, 3
    C = c_id + 3 * gc
    x = rand(rng, (N, H, W, C), dtype)
    xb = twin("inception", "gather_branches", x, c_id, gc, Out((3, N, H, W * gc), dtype),
              dtype=dtype)[-1]
    ws = [_tiled(rand(rng, (gc, 1) + k, dtype), W) for k in ((3, 3), (1, 5), (5, 1))]
    bs = [np.tile(rand(rng, gc, dtype), W) for _ in range(3)]
    twin("inception", "mixer_fwd", x, xb, c_id, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2],
         Out(x.shape, dtype), dtype=dtype)
    gb = rand(rng, (3, N, H, W * gc), dtype)
    chunks = 3
    parts = [Out((chunks,) + w.shape, dtype, zero=True) for w in ws]
    twin("inception", "mixer_bwd_w", gb, xb, gc, *parts, Out((chunks, 3, W * gc), dtype, zero=True),
         dtype=dtype)
