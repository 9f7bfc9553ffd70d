"""2-D convolution kernels over channels-last (NHWC) arrays.

Geometry convention shared by every kernel: output pixel ``(oh, ow)`` reads input
pixel ``(oh * sh - pt + i, ow * sw - pl + j)`` for tap ``(i, j)``; taps that fall
outside the input read zero (implicit zero padding). The caller validates shapes
and preallocates ``out``; GEMMs are done by the caller with BLAS.

Kernels:
  depthwise_fwd / depthwise_bwd_x / depthwise_bwd_w -- groups == C_in == C_out.
  space_to_depth / depth_to_space -- patch rearrangement for kernel == stride convs.
  im2col / col2im -- the general (any groups, stride, padding) path.
  bias_add / bias_grad -- the bias of the GEMM paths, on (N*Ho*Wo, O) rows.

Every inner loop runs over contiguous channels so LLVM vectorises it, and every
parallel loop owns the rows it writes (no write races, no atomics).

Memory safety (Numba does not bounds-check; audited for issue 10). Preconditions, all
guaranteed by ``lucid.nn.functional.conv2d``: arrays C-contiguous with the shapes in
each docstring (channel counts agree, groups divide C and O, ``out``/``cols``/``gx``
sized from the same geometry); strides >= 1, and strides and paddings at most
``2**31 - 1`` so no index expression (``oh * sh - pt + i`` and the like, bounded by the
padded extent) overflows int64. Paddings may exceed the kernel (every tap of an output
may fall outside the input) and may be negative in the internal stride-1 adjoint
(``kw - 1 - pad``). Under these preconditions every index is in bounds because:
``_taps_range`` returns exactly the outputs whose tap lands inside the row (ceil/floor
divisions, so also for W = 0); ``_row7`` clamps its 4-output blocks to [max(pl, 0), Wo)
and to ``W - 7 + pl`` and leaves the edges to the checked ``_row_taps``; depthwise rows
take only the kernel rows ``[max(0, -h), min(kh, H - h))``; ``depthwise_bwd_x`` counts
its remaining taps instead of adding multiples of the stride; im2col / col2im test
every row and column; space_to_depth relies on Ho * kh <= H (Ho = H // kh).
tests/test_fuzz_kernels.py fuzzes these against a NumPy oracle, once with
NUMBA_BOUNDSCHECK=1.
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


# The depthwise row helpers below add the taps of 1, 2 or 4 kernel rows at once: one
# pass over the destination row per group of rows instead of per row saves loads and
# stores (the destination is read and written once per group). With scatter=False
# they correlate, dst[ow] += src[ow*sw - pl + j] * w[j]; with scatter=True they apply
# the transpose, dst[ow*sw - pl + j] += src[ow] * w[j] (the gradient w.r.t. x).

@jit
def _taps1(s0, w0, dst, sw, pl, scatter):
    """dst += the kw taps of one (source row, weight row) pair."""
    W, Wo = (dst.shape[0], s0.shape[0]) if scatter else (s0.shape[0], dst.shape[0])
    C = dst.shape[1]
    for j in range(w0.shape[0]):
        lo, hi = _taps_range(j, pl, sw, W, Wo)
        a0 = w0[j]
        for ow in range(lo, hi):
            iw = ow * sw - pl + j
            si, di = (ow, iw) if scatter else (iw, ow)
            x0, d = s0[si], dst[di]
            for c in range(C):
                d[c] = d[c] + x0[c] * a0[c]


@jit
def _taps2(s0, s1, w0, w1, dst, sw, pl, scatter):
    """dst += the kw taps of two (source row, weight row) pairs."""
    W, Wo = (dst.shape[0], s0.shape[0]) if scatter else (s0.shape[0], dst.shape[0])
    C = dst.shape[1]
    for j in range(w0.shape[0]):
        lo, hi = _taps_range(j, pl, sw, W, Wo)
        a0, a1 = w0[j], w1[j]
        for ow in range(lo, hi):
            iw = ow * sw - pl + j
            si, di = (ow, iw) if scatter else (iw, ow)
            x0, x1, d = s0[si], s1[si], dst[di]
            for c in range(C):
                d[c] = d[c] + x0[c] * a0[c] + x1[c] * a1[c]


@jit
def _taps4(s0, s1, s2, s3, w0, w1, w2, w3, dst, sw, pl, scatter):
    """dst += the kw taps of four (source row, weight row) pairs."""
    W, Wo = (dst.shape[0], s0.shape[0]) if scatter else (s0.shape[0], dst.shape[0])
    C = dst.shape[1]
    for j in range(w0.shape[0]):
        lo, hi = _taps_range(j, pl, sw, W, Wo)
        a0, a1, a2, a3 = w0[j], w1[j], w2[j], w3[j]
        for ow in range(lo, hi):
            iw = ow * sw - pl + j
            si, di = (ow, iw) if scatter else (iw, ow)
            x0, x1, x2, x3, d = s0[si], s1[si], s2[si], s3[si], dst[di]
            for c in range(C):
                d[c] = d[c] + x0[c] * a0[c] + x1[c] * a1[c] + x2[c] * a2[c] + x3[c] * a3[c]


# Stride-1, 7-wide depthwise rows (ConvNeXt's 7x7): four adjacent outputs per pass share
# the ten input pixels their taps read, so each pass loads 10 inputs and 7 weights and
# updates 4 outputs with 28 FMAs (the taps helpers above: 10 loads per 4 FMAs) -- 1.5-1.7x
# faster at ConvNeXt-T's shapes. Wider blocks or two kernel rows per pass measured slower
# (LLVM stops vectorising). Sums run in tap order within each kernel row.
# Inner loops index from 0 over slices: an index Numba cannot prove non-negative
# (``base + c``) gets its negative-index wraparound branch, which stops vectorisation.

@jit
def _row7_block(xrow, wrow, orow, b, ow):
    """orow[ow + k] += sum_j xrow[b + k + j] * wrow[j] for k < 4 (all taps inside)."""
    for c in range(orow.shape[1]):
        a0, a1, a2, a3, a4 = xrow[b, c], xrow[b + 1, c], xrow[b + 2, c], xrow[b + 3, c], xrow[b + 4, c]
        a5, a6, a7, a8, a9 = xrow[b + 5, c], xrow[b + 6, c], xrow[b + 7, c], xrow[b + 8, c], xrow[b + 9, c]
        k0, k1, k2, k3 = wrow[0, c], wrow[1, c], wrow[2, c], wrow[3, c]
        k4, k5, k6 = wrow[4, c], wrow[5, c], wrow[6, c]
        orow[ow, c] += a0 * k0 + a1 * k1 + a2 * k2 + a3 * k3 + a4 * k4 + a5 * k5 + a6 * k6
        orow[ow + 1, c] += a1 * k0 + a2 * k1 + a3 * k2 + a4 * k3 + a5 * k4 + a6 * k5 + a7 * k6
        orow[ow + 2, c] += a2 * k0 + a3 * k1 + a4 * k2 + a5 * k3 + a6 * k4 + a7 * k5 + a8 * k6
        orow[ow + 3, c] += a3 * k0 + a4 * k1 + a5 * k2 + a6 * k3 + a7 * k4 + a8 * k5 + a9 * k6


@jit
def _row7_w_block(grow, xrow, gwrow, b, ow):
    """gwrow[j] += sum_k grow[ow + k] * xrow[b + k + j] for k < 4, j < 7 (all taps inside)."""
    for c in range(gwrow.shape[1]):
        g0, g1, g2, g3 = grow[ow, c], grow[ow + 1, c], grow[ow + 2, c], grow[ow + 3, c]
        a0, a1, a2, a3, a4 = xrow[b, c], xrow[b + 1, c], xrow[b + 2, c], xrow[b + 3, c], xrow[b + 4, c]
        a5, a6, a7, a8, a9 = xrow[b + 5, c], xrow[b + 6, c], xrow[b + 7, c], xrow[b + 8, c], xrow[b + 9, c]
        gwrow[0, c] += g0 * a0 + g1 * a1 + g2 * a2 + g3 * a3
        gwrow[1, c] += g0 * a1 + g1 * a2 + g2 * a3 + g3 * a4
        gwrow[2, c] += g0 * a2 + g1 * a3 + g2 * a4 + g3 * a5
        gwrow[3, c] += g0 * a3 + g1 * a4 + g2 * a5 + g3 * a6
        gwrow[4, c] += g0 * a4 + g1 * a5 + g2 * a6 + g3 * a7
        gwrow[5, c] += g0 * a5 + g1 * a6 + g2 * a7 + g3 * a8
        gwrow[6, c] += g0 * a6 + g1 * a7 + g2 * a8 + g3 * a9


@jit
def _row_taps(xrow, other, acc, pl, ow, wgrad):
    """Output ``ow`` of :func:`_row7` alone, over the taps that land inside the row."""
    W = xrow.shape[0]
    for j in range(7):
        iw = ow - pl + j
        if 0 <= iw < W:
            for c in range(acc.shape[1]):
                if wgrad:
                    acc[j, c] += other[ow, c] * xrow[iw, c]
                else:
                    acc[ow, c] += xrow[iw, c] * other[j, c]


@jit
def _row7(xrow, other, acc, pl, wgrad):
    """One kernel row of a stride-1, 7-wide depthwise conv. Forward (``wgrad`` False):
    acc (an output row) += xrow correlated with the weight row ``other``. Weight gradient
    (``wgrad`` True): acc (a weight-gradient row) += the output-gradient row ``other``
    correlated with xrow. Interior outputs go four at a time, the edges one by one."""
    W, Wo = xrow.shape[0], (other.shape[0] if wgrad else acc.shape[0])
    # [lo, hi): outputs whose 7 taps are all inside. pl < 0 (the flipped-kernel adjoint of a
    # conv padded wider than its kernel) must not start the blocks before output 0.
    lo = min(max(pl, 0), Wo)
    hi = max(lo, min(Wo, W - 7 + pl + 1))
    ow = lo
    while ow + 4 <= hi:
        if wgrad:
            _row7_w_block(other, xrow, acc, ow - pl, ow)
        else:
            _row7_block(xrow, other, acc, ow - pl, ow)
        ow += 4
    for o in range(Wo):
        if o < lo or o >= ow:              # the left edge, the tail and the right edge
            _row_taps(xrow, other, acc, pl, o, wgrad)


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
        h = oh * sh - pt                       # input row of tap i is h + i
        i, end = max(0, -h), min(kh, H - h)    # the taps that land inside x
        if sw == 1 and w.shape[1] == 7:
            for k in range(i, end):
                _row7(x[n, h + k], w[k], orow, pl, False)
            continue
        while i + 4 <= end:
            _taps4(x[n, h + i], x[n, h + i + 1], x[n, h + i + 2], x[n, h + i + 3],
                   w[i], w[i + 1], w[i + 2], w[i + 3], orow, sw, pl, False)
            i += 4
        if i + 2 <= end:
            _taps2(x[n, h + i], x[n, h + i + 1], w[i], w[i + 1], orow, sw, pl, False)
            i += 2
        if i < end:
            _taps1(x[n, h + i], w[i], orow, sw, pl, False)


@pjit
def depthwise_bwd_x(g, w, sh, sw, pt, pl, gx):
    """Gradient w.r.t. x: g (N, Ho, Wo, C), w (kh, kw, C) -> gx (N, H, W, C).

    Parallel over input rows; row ih gathers output row (ih + pt - i) / sh through tap
    i, for the taps i where that is a whole number inside [0, Ho).
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
        t = ih + pt
        i = max(0, t - (Ho - 1) * sh)
        i += (t - i) % sh                      # first tap with a whole output row
        last = min(kh - 1, t)
        # Taps left: counted, never tested as ``i + 3 * sh <= last`` (that sum overflows
        # int64 for a huge stride and wrapped negative: reads before g and past w).
        left = (last - i) // sh + 1 if i <= last else 0
        while left >= 4:
            o = (t - i) // sh                  # taps i, i+sh, ... read rows o, o-1, ...
            _taps4(g[n, o], g[n, o - 1], g[n, o - 2], g[n, o - 3],
                   w[i], w[i + sh], w[i + 2 * sh], w[i + 3 * sh], gxrow, sw, pl, True)
            i += 4 * sh
            left -= 4
        if left >= 2:
            o = (t - i) // sh
            _taps2(g[n, o], g[n, o - 1], w[i], w[i + sh], gxrow, sw, pl, True)
            i += 2 * sh
            left -= 2
        if left == 1:
            _taps1(g[n, (t - i) // sh], w[i], gxrow, sw, pl, True)


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
                    if sw == 1 and kw == 7:
                        _row7(x[n, ih], grow, part_w[k, i], pl, True)
                    else:
                        _correlate_row_w(grow, x[n, ih], part_w[k, i], sw, pl)
    gw[...] = 0.0
    gb[...] = 0.0
    for k in range(chunks):
        gw += part_w[k]
        gb += part_b[k]


@pjit
def space_to_depth(x, kh, kw, Ho, Wo, cols):
    """Non-overlapping kh x kw patches: x (N, H, W, C) -> cols (N*Ho*Wo, C*kh*kw).

    Row m = (n, oh, ow) holds x[n, oh*kh + i, ow*kw + j, c] at column (c*kh + i)*kw + j,
    the order of an OIHW weight's flattened (C, kh, kw), so the weight needs no copy;
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
                    pix = src[ow * kw + j]
                    off = i * kw + j
                    for c in range(C):
                        dst[c * kh * kw + off] = pix[c]


@pjit
def depth_to_space(cols, kh, kw, Ho, Wo, gx):
    """The transpose of space_to_depth: cols (N*Ho*Wo, C*kh*kw) -> gx (N, H, W, C).

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
                off = i * kw + j
                for c in range(C):
                    gx[n, ih, iw, c] = src[c * kh * kw + off]
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
                    for grp in range(G):  # slices: see the note above _row7_block
                        dst = cols[grp, m, base:base + Cg]
                        if inside:
                            src = x[n, ih, iw, grp * Cg:grp * Cg + Cg]
                            for c in range(Cg):
                                dst[c] = src[c]
                        else:
                            for c in range(Cg):
                                dst[c] = 0.0


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
                        src = cols[grp, mrow + ow, base:base + Cg]
                        dst = gx[n, ih, iw, grp * Cg:grp * Cg + Cg]
                        for c in range(Cg):
                            dst[c] += src[c]


@pjit
def bias_add(y, b):
    """y[m, :] += b in place, for the GEMM paths' (N*Ho*Wo, O) output."""
    M, O = y.shape
    for m in numba.prange(M):
        for o in range(O):
            y[m, o] += b[o]


@pjit
def bias_grad(g, gb):
    """gb = g.sum(axis=0) for g (M, O), summed in a fixed number of row chunks."""
    M, O = g.shape
    chunks = max(1, min(M, 16))
    part = np.zeros((chunks, O), gb.dtype)
    for k in numba.prange(chunks):
        for m in range(k * M // chunks, (k + 1) * M // chunks):
            for o in range(O):
                part[k, o] += g[m, o]
    gb[...] = 0.0
    for k in range(chunks):
        gb += part[k]
