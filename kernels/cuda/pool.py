"""Average pooling (the CUDA twin of ``kernels/cpu/pool.py``): adaptive windows as
PyTorch, global means over NCHW planes or NHWC rows. Window sums are float64; the
backward kernels gather (each input element sums the windows that cover it), so no two
threads write one element."""
from numba import cuda, float64

from ._common import RB, block_sum, launch, launch_reduce


@cuda.jit(device=True, inline=True)
def _window(i, size, out_size):
    """PyTorch's adaptive window [floor(i*size/out), ceil((i+1)*size/out))."""
    return (i * size) // out_size, -((-(i + 1) * size) // out_size)


@cuda.jit
def _adaptive_fwd(x, out):
    h, w = x.shape[1], x.shape[2]
    oh, ow = out.shape[1], out.shape[2]
    for q in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        j = q % ow
        i = (q // ow) % oh
        p = q // (ow * oh)
        h0, h1 = _window(i, h, oh)
        w0, w1 = _window(j, w, ow)
        s = 0.0
        for y in range(h0, h1):
            for xx in range(w0, w1):
                s += x[p, y, xx]
        out[p, i, j] = s / ((h1 - h0) * (w1 - w0))


@cuda.jit
def _adaptive_bwd(g, out):
    h, w = out.shape[1], out.shape[2]
    oh, ow = g.shape[1], g.shape[2]
    for q in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        xx = q % w
        y = (q // w) % h
        p = q // (w * h)
        s = 0.0
        for i in range(oh):          # windows are monotone: could bound i; oh is small
            h0, h1 = _window(i, h, oh)
            if h0 <= y < h1:
                for j in range(ow):
                    w0, w1 = _window(j, w, ow)
                    if w0 <= xx < w1:
                        s += g[p, i, j] / ((h1 - h0) * (w1 - w0))
        out[p, y, xx] = s


@cuda.jit
def _global_fwd(x, out):
    """out[p, c] = mean over s of x[p, s, c], one block per output (x is (P, S, C))."""
    buf = cuda.shared.array(RB, float64)
    n, size, cols = x.shape
    for q in range(cuda.blockIdx.x, n * cols, cuda.gridDim.x):
        p = q // cols
        c = q % cols
        s = 0.0
        for k in range(cuda.threadIdx.x, size, RB):
            s += x[p, k, c]
        total = block_sum(s, buf)
        if cuda.threadIdx.x == 0:
            out[p, c] = total / size


@cuda.jit
def _global_bwd(g, out):
    """out[p, s, c] = g[p, c] / S."""
    n, size, cols = out.shape
    for q in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        c = q % cols
        p = q // (size * cols)
        out[p, (q // cols) % size, c] = g[p, c] / size


def adaptive_avg_pool2d_fwd(x, out):
    """x (P, H, W) planes -> out (P, OH, OW)."""
    launch(_adaptive_fwd, out.size, x, out)


def adaptive_avg_pool2d_bwd(g, out):
    """g (P, OH, OW) -> out (P, H, W): each window's cotangent spread evenly over it."""
    launch(_adaptive_bwd, out.size, g, out)


def global_avg_pool_fwd(x, out):
    """x (P, S) -> out (P,): the mean of each row."""
    launch_reduce(_global_fwd, x.shape[0], x.reshape(x.shape[0], x.shape[1], 1),
                  out.reshape(out.shape[0], 1))


def global_avg_pool_bwd(g, out):
    """g (P,) -> out (P, S) = g / S."""
    launch(_global_bwd, out.size, g.reshape(g.shape[0], 1),
           out.reshape(out.shape[0], out.shape[1], 1))


def global_avg_pool_nhwc_fwd(x, out):
    """x (N, S, C) -> out (N, C): the mean over S of each image's channel vectors."""
    launch_reduce(_global_fwd, x.shape[0] * x.shape[2], x, out)


def global_avg_pool_nhwc_bwd(g, out):
    """g (N, C) -> out (N, S, C) = g / S."""
    launch(_global_bwd, out.size, g, out)
