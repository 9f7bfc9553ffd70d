"""2-D convolution kernels over channels-last (NHWC) arrays.

Geometry convention shared by every kernel: output pixel ``(oh, ow)`` reads input
pixel ``(oh * sh - pt + i, ow * sw - pl + j)`` for tap ``(i, j)``; taps that fall
outside the input read zero (implicit zero padding). The caller validates shapes
and preallocates ``out``; GEMMs are done by the caller with BLAS.

Kernels:
  depthwise_fwd / depthwise_bwd_x / depthwise_bwd_w -- groups == C_in == C_out.
  space_to_depth / depth_to_space -- patch rearrangement for kernel == stride convs.
  im2col / col2im -- the general (any groups, stride, padding) path.

Every inner loop runs over contiguous channels so LLVM vectorises it, and every
parallel loop owns the rows it writes (no write races, no atomics).
"""
import numba
import numpy as np

from ._common import jit, pjit


@jit
def _taps_range(j, pl, sw, W, Wo):
    """The output columns ``[lo, hi)`` whose tap ``j`` lands inside an input row of width W."""
    lo = max(0, -((j - pl) // sw))          # ceil((pl - j) / sw)
    hi = min(Wo, (W - 1 + pl - j) // sw + 1)
    return lo, hi


@jit
def _correlate_row(xrow, wrow, orow, sw, pl):
    """orow[ow, :] += sum_j xrow[ow * sw - pl + j, :] * wrow[j, :] (one input row, all taps)."""
    W, C = xrow.shape
    Wo = orow.shape[0]
    for j in range(wrow.shape[0]):
        lo, hi = _taps_range(j, pl, sw, W, Wo)
        for ow in range(lo, hi):
            iw = ow * sw - pl + j
            for c in range(C):
                orow[ow, c] += xrow[iw, c] * wrow[j, c]


@jit
def _scatter_row(grow, wrow, gxrow, sw, pl):
    """gxrow[ow * sw - pl + j, :] += grow[ow, :] * wrow[j, :]: the transpose of _correlate_row."""
    W, C = gxrow.shape
    Wo = grow.shape[0]
    for j in range(wrow.shape[0]):
        lo, hi = _taps_range(j, pl, sw, W, Wo)
        for ow in range(lo, hi):
            iw = ow * sw - pl + j
            for c in range(C):
                gxrow[iw, c] += grow[ow, c] * wrow[j, c]


@jit
def _correlate_row_w(grow, xrow, gwrow, sw, pl):
    """gwrow[j, :] += sum_ow grow[ow, :] * xrow[ow * sw - pl + j, :]."""
    W, C = xrow.shape
    Wo = grow.shape[0]
    for j in range(gwrow.shape[0]):
        lo, hi = _taps_range(j, pl, sw, W, Wo)
        for ow in range(lo, hi):
            iw = ow * sw - pl + j
            for c in range(C):
                gwrow[j, c] += grow[ow, c] * xrow[iw, c]


@pjit
def depthwise_fwd(x, w, b, sh, sw, pt, pl, out):
    """Depthwise conv: x (N, H, W, C), w (kh, kw, C), b (C,) -> out (N, Ho, Wo, C)."""
    N, H = x.shape[0], x.shape[1]
    Ho, Wo, C = out.shape[1], out.shape[2], out.shape[3]
    kh = w.shape[0]
    for r in numba.prange(N * Ho):
        n, oh = r // Ho, r % Ho
        orow = out[n, oh]
        for ow in range(Wo):
            for c in range(C):
                orow[ow, c] = b[c]
        for i in range(kh):
            ih = oh * sh - pt + i
            if 0 <= ih < H:
                _correlate_row(x[n, ih], w[i], orow, sw, pl)


@pjit
def depthwise_bwd_x(g, w, sh, sw, pt, pl, gx):
    """Gradient w.r.t. x: g (N, Ho, Wo, C), w (kh, kw, C) -> gx (N, H, W, C).

    Parallel over input rows; each row gathers from the output rows that read it.
    """
    N, H, W, C = gx.shape
    Ho = g.shape[1]
    kh = w.shape[0]
    for r in numba.prange(N * H):
        n, ih = r // H, r % H
        gxrow = gx[n, ih]
        for iw in range(W):
            for c in range(C):
                gxrow[iw, c] = 0.0
        for i in range(kh):
            t = ih + pt - i
            if t >= 0 and t % sh == 0 and t // sh < Ho:
                _scatter_row(g[n, t // sh], w[i], gxrow, sw, pl)


@pjit
def depthwise_bwd_w(g, x, sh, sw, pt, pl, gw, gb):
    """Gradients w.r.t. w and b: g (N, Ho, Wo, C), x (N, H, W, C) -> gw (kh, kw, C), gb (C,).

    Output rows are split into a fixed number of chunks (independent of the thread
    count, so results are reproducible); each chunk sums into its own partial.
    """
    N, H = x.shape[0], x.shape[1]
    Ho, Wo, C = g.shape[1], g.shape[2], g.shape[3]
    kh, kw = gw.shape[0], gw.shape[1]
    rows = N * Ho
    chunks = max(1, min(rows, 16))
    part_w = np.zeros((chunks, kh, kw, C), gw.dtype)
    part_b = np.zeros((chunks, C), gb.dtype)
    for k in numba.prange(chunks):
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            n, oh = r // Ho, r % Ho
            grow = g[n, oh]
            for ow in range(Wo):
                for c in range(C):
                    part_b[k, c] += grow[ow, c]
            for i in range(kh):
                ih = oh * sh - pt + i
                if 0 <= ih < H:
                    _correlate_row_w(grow, x[n, ih], part_w[k, i], sw, pl)
    gw[...] = 0.0
    gb[...] = 0.0
    for k in range(chunks):
        gw += part_w[k]
        gb += part_b[k]


@pjit
def space_to_depth(x, kh, kw, Ho, Wo, cols):
    """Non-overlapping kh x kw patches: x (N, H, W, C) -> cols (N*Ho*Wo, kh*kw*C).

    Row m = (n, oh, ow) holds x[n, oh*kh + i, ow*kw + j, c] at column (i*kw + j)*C + c;
    trailing rows/columns that do not fill a patch are skipped.
    """
    N, C = x.shape[0], x.shape[3]
    for r in numba.prange(N * Ho):
        n, oh = r // Ho, r % Ho
        for ow in range(Wo):
            dst = cols[r * Wo + ow]
            for i in range(kh):
                src = x[n, oh * kh + i]
                for j in range(kw):
                    base = (i * kw + j) * C
                    for c in range(C):
                        dst[base + c] = src[ow * kw + j, c]


@pjit
def depth_to_space(cols, kh, kw, Ho, Wo, gx):
    """The transpose of space_to_depth: cols (N*Ho*Wo, kh*kw*C) -> gx (N, H, W, C).

    Input pixels that no patch covers get zero.
    """
    N, H, W, C = gx.shape
    for r in numba.prange(N * H):
        n, ih = r // H, r % H
        oh, i = ih // kh, ih % kh
        for iw in range(W):
            ow, j = iw // kw, iw % kw
            if oh < Ho and ow < Wo:
                src = cols[(n * Ho + oh) * Wo + ow]
                base = (i * kw + j) * C
                for c in range(C):
                    gx[n, ih, iw, c] = src[base + c]
            else:
                for c in range(C):
                    gx[n, ih, iw, c] = 0.0


@pjit
def im2col(x, kh, kw, sh, sw, pt, pl, Ho, Wo, cols):
    """Patches per group: x (N, H, W, G*Cg) -> cols (G, N*Ho*Wo, kh*kw*Cg), zero outside x.

    cols[g, (n*Ho + oh)*Wo + ow, (i*kw + j)*Cg + c] = x[n, oh*sh - pt + i, ow*sw - pl + j, g*Cg + c]
    """
    N, H, W, C = x.shape
    G = cols.shape[0]
    Cg = C // G
    for r in numba.prange(N * Ho):
        n, oh = r // Ho, r % Ho
        for ow in range(Wo):
            m = r * Wo + ow
            for i in range(kh):
                ih = oh * sh - pt + i
                for j in range(kw):
                    iw = ow * sw - pl + j
                    base = (i * kw + j) * Cg
                    inside = 0 <= ih < H and 0 <= iw < W
                    for grp in range(G):
                        dst = cols[grp, m]
                        if inside:
                            for c in range(Cg):
                                dst[base + c] = x[n, ih, iw, grp * Cg + c]
                        else:
                            for c in range(Cg):
                                dst[base + c] = 0.0


@pjit
def col2im(cols, kh, kw, sh, sw, pt, pl, Ho, Wo, gx):
    """The transpose of im2col: cols (G, N*Ho*Wo, kh*kw*Cg) -> gx (N, H, W, G*Cg).

    Parallel over input rows; each row gathers every patch entry that came from it.
    """
    N, H, W, C = gx.shape
    G = cols.shape[0]
    Cg = C // G
    for r in numba.prange(N * H):
        n, ih = r // H, r % H
        for iw in range(W):
            for c in range(C):
                gx[n, ih, iw, c] = 0.0
        for i in range(kh):
            t = ih + pt - i
            if t < 0 or t % sh != 0 or t // sh >= Ho:
                continue
            mrow = (n * Ho + t // sh) * Wo
            for j in range(kw):
                lo, hi = _taps_range(j, pl, sw, W, Wo)
                base = (i * kw + j) * Cg
                for ow in range(lo, hi):
                    iw = ow * sw - pl + j
                    for grp in range(G):
                        src = cols[grp, mrow + ow]
                        for c in range(Cg):
                            gx[n, ih, iw, grp * Cg + c] += src[base + c]
