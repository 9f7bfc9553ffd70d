"""2-D convolution kernels over channels-last (NHWC) device arrays (the CUDA twin of
``kernels/cpu/conv.py``, same geometry convention: output pixel (oh, ow) reads input
pixel (oh*sh - pt + i, ow*sw - pl + j) for tap (i, j); taps outside read zero).

Every kernel is written in gather form, one output element per grid-stride item, so no
two threads write one element: the input gradients sum the taps that reach their input
pixel. Weight and bias gradients are reductions: one block per weight element, fixed
tree (see ``_common``). GEMMs are the caller's, through ``gemm.py``.
"""
from numba import cuda, float64

from ._common import CW, RL, column_groups, column_sum, launch, launch_columns
from .linear import column_sums


@cuda.jit(device=True, inline=True)
def _nhwc(q, a):
    """Flat index q of a 4-d (N, H, W, C) array -> (n, h, w, c)."""
    C = a.shape[3]
    W = a.shape[2]
    H = a.shape[1]
    c = q % C
    t = q // C
    w = t % W
    t //= W
    return t // H, t % H, w, c


@cuda.jit
def _depthwise_fwd(x, w, b, sh, sw, pt, pl, out):
    H, W = x.shape[1], x.shape[2]
    kh, kw = w.shape[0], w.shape[1]
    for q in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n, oh, ow, c = _nhwc(q, out)
        s = 0.0
        for i in range(kh):
            ih = oh * sh - pt + i
            if 0 <= ih < H:
                for j in range(kw):
                    iw = ow * sw - pl + j
                    if 0 <= iw < W:
                        s += x[n, ih, iw, c] * w[i, j, c]
        out[n, oh, ow, c] = b[c] + s


@cuda.jit
def _depthwise_bwd_x(g, w, sh, sw, pt, pl, gx):
    Ho, Wo = g.shape[1], g.shape[2]
    kh, kw = w.shape[0], w.shape[1]
    for q in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        n, ih, iw, c = _nhwc(q, gx)
        s = 0.0
        for i in range(kh):
            t = ih + pt - i
            if t >= 0 and t % sh == 0 and t // sh < Ho:
                for j in range(kw):
                    u = iw + pl - j
                    if u >= 0 and u % sw == 0 and u // sw < Wo:
                        s += g[n, t // sh, u // sw, c] * w[i, j, c]
        gx[n, ih, iw, c] = s


@cuda.jit
def _depthwise_bwd_w(g, x, sh, sw, pt, pl, gw):
    """gw[i, j, c] = sum over output pixels of g * the input pixel tap (i, j) read: one block
    per (tap, CW channels), row lanes over the pixels (coalesced along c), fixed tree."""
    buf = cuda.shared.array((RL, CW), float64)
    N, H, W = x.shape[0], x.shape[1], x.shape[2]
    Ho, Wo, C = g.shape[1], g.shape[2], g.shape[3]
    kw = gw.shape[1]
    groups = (C + CW - 1) // CW
    count = N * Ho * Wo
    for q in range(cuda.blockIdx.x, gw.shape[0] * kw * groups, cuda.gridDim.x):
        c = (q % groups) * CW + cuda.threadIdx.x
        j = (q // groups) % kw
        i = q // (groups * kw)
        s = 0.0
        if c < C:
            for p in range(cuda.threadIdx.y, count, RL):
                ow = p % Wo
                oh = (p // Wo) % Ho
                n = p // (Wo * Ho)
                ih = oh * sh - pt + i
                iw = ow * sw - pl + j
                if 0 <= ih < H and 0 <= iw < W:
                    s += g[n, oh, ow, c] * x[n, ih, iw, c]
        total = column_sum(s, buf)
        if cuda.threadIdx.y == 0 and c < C:
            gw[i, j, c] = total


def depthwise_fwd(x, w, b, sh, sw, pt, pl, out):
    """Depthwise conv: x (N, H, W, C), w (kh, kw, C), b (C,) -> out (N, Ho, Wo, C)."""
    launch(_depthwise_fwd, out.size, x, w, b, sh, sw, pt, pl, out)


def depthwise_bwd_x(g, w, sh, sw, pt, pl, gx):
    """Gradient w.r.t. x: g (N, Ho, Wo, C), w (kh, kw, C) -> gx (N, H, W, C)."""
    launch(_depthwise_bwd_x, gx.size, g, w, sh, sw, pt, pl, gx)


def depthwise_bwd_w(g, x, sh, sw, pt, pl, gw, gb):
    """Gradients w.r.t. w and b: g (N, Ho, Wo, C), x (N, H, W, C) -> gw (kh, kw, C), gb (C,)."""
    groups = column_groups(g.shape[3])
    launch_columns(_depthwise_bwd_w, gw.shape[0] * gw.shape[1] * groups, g, x, sh, sw, pt, pl, gw)
    C = g.shape[3]
    column_sums(g.reshape(g.size // C, C), gb)


@cuda.jit
def _space_to_depth(x, kh, kw, Ho, Wo, cols):
    K = cols.shape[1]
    for q in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        m = q // K
        k = q % K
        j = k % kw
        i = (k // kw) % kh
        c = k // (kw * kh)
        ow = m % Wo
        oh = (m // Wo) % Ho
        n = m // (Wo * Ho)
        cols[m, k] = x[n, oh * kh + i, ow * kw + j, c]


@cuda.jit
def _depth_to_space(cols, kh, kw, Ho, Wo, gx):
    for q in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        n, ih, iw, c = _nhwc(q, gx)
        oh = ih // kh
        ow = iw // kw
        if oh < Ho and ow < Wo:
            gx[n, ih, iw, c] = cols[(n * Ho + oh) * Wo + ow, (c * kh + ih % kh) * kw + iw % kw]
        else:
            gx[n, ih, iw, c] = 0.0


def space_to_depth(x, kh, kw, Ho, Wo, cols):
    """Non-overlapping kh x kw patches: x (N, H, W, C) -> cols (N*Ho*Wo, C*kh*kw),
    column (c*kh + i)*kw + j (OIHW order)."""
    launch(_space_to_depth, cols.size, x, kh, kw, Ho, Wo, cols)


def depth_to_space(cols, kh, kw, Ho, Wo, gx):
    """The transpose of space_to_depth; input pixels no patch covers get zero."""
    launch(_depth_to_space, gx.size, cols, kh, kw, Ho, Wo, gx)


@cuda.jit
def _im2col(x, kh, kw, sh, sw, pt, pl, Ho, Wo, cols):
    H, W = x.shape[1], x.shape[2]
    M, K = cols.shape[1], cols.shape[2]
    Cg = K // (kh * kw)
    for q in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        k = q % K
        m = (q // K) % M
        grp = q // (K * M)
        c = k % Cg
        j = (k // Cg) % kw
        i = k // (Cg * kw)
        ow = m % Wo
        oh = (m // Wo) % Ho
        n = m // (Wo * Ho)
        ih = oh * sh - pt + i
        iw = ow * sw - pl + j
        if 0 <= ih < H and 0 <= iw < W:
            cols[grp, m, k] = x[n, ih, iw, grp * Cg + c]
        else:
            cols[grp, m, k] = 0.0


@cuda.jit
def _col2im(cols, kh, kw, sh, sw, pt, pl, Ho, Wo, gx):
    Cg = gx.shape[3] // cols.shape[0]
    for q in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        n, ih, iw, ch = _nhwc(q, gx)
        grp = ch // Cg
        c = ch % Cg
        s = 0.0
        for i in range(kh):
            t = ih + pt - i
            if t >= 0 and t % sh == 0 and t // sh < Ho:
                for j in range(kw):
                    u = iw + pl - j
                    if u >= 0 and u % sw == 0 and u // sw < Wo:
                        s += cols[grp, (n * Ho + t // sh) * Wo + u // sw, (i * kw + j) * Cg + c]
        gx[n, ih, iw, ch] = s


def im2col(x, kh, kw, sh, sw, pt, pl, Ho, Wo, cols):
    """Patches per group: x (N, H, W, G*Cg) -> cols (G, N*Ho*Wo, kh*kw*Cg), zero outside x."""
    launch(_im2col, cols.size, x, kh, kw, sh, sw, pt, pl, Ho, Wo, cols)


def col2im(cols, kh, kw, sh, sw, pt, pl, Ho, Wo, gx):
    """The transpose of im2col: cols (G, N*Ho*Wo, kh*kw*Cg) -> gx (N, H, W, G*Cg)."""
    launch(_col2im, gx.size, cols, kh, kw, sh, sw, pt, pl, Ho, Wo, gx)


@cuda.jit
def _bias_add_inplace(y, b):
    O = y.shape[1]
    for q in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        y[q // O, q % O] += b[q % O]


def bias_add(y, b):
    """y[m, :] += b in place, for the GEMM paths' (N*Ho*Wo, O) output."""
    launch(_bias_add_inplace, y.size, y, b)


def bias_grad(g, gb):
    """gb = g.sum(axis=0) for g (M, O) (float64, deterministic)."""
    column_sums(g, gb)
