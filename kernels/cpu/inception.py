"""InceptionNeXt's token mixer in one pass over channels-last (NHWC) rows.

The mixer splits C channels into ``(c_id, gc, gc, gc)``: identity, a square k x k
depthwise conv, a 1 x kb band and a kb x 1 band, each stride 1 with 'same' padding
((k - 1) // 2 on both sides, odd k), and concatenates the results. Done as split ->
three convs -> concatenate, it copies every activation twice; here each output row is
written once: the identity channels copied, the branches computed from a gathered copy
of their channels.

Branch rows are handled flat: a gathered row is (W * gc) contiguous values, so one
tap of a depthwise conv is one long loop ``acc[k] += src[k + shift] * w_tiled[k]`` over
the whole row, with the weights tiled W times along the row (``gc`` is only 12-96
channels; a loop over so few channels per pixel spends its time entering the loop).
The caller passes weights as (kh, kw, W * gc) tiles and biases as (W * gc,) tiles.
The input gradient is the same mixer run on the output gradient with every kernel
flipped (the adjoint of a stride-1 correlation with symmetric padding), so only the
weight gradient needs its own kernel.

Memory safety (audited for issue 10). Preconditions, guaranteed by
``F.inception_dwconv2d``: odd kernel sizes, 3 * gc <= C, biases and weights of gc
channels, tiles of exactly W * gc. For tap j (pw = (kw - 1) // 2), outputs
[max(0, pw - j), min(W, W + pw - j)) read inputs [max(0, j - pw), min(W, W + j - pw)),
both inside the row whatever kw is (a kernel wider than the image included), so the
slices in :func:`_tap` are never clipped or negative; kernel rows are tested against
[0, H). With W = 0 the tiles are empty and nothing is read (gc = 0 // 0 is 0 under
error_model="numpy").
"""
import numba
import numpy as np

from ._common import pjit


@pjit
def gather_branches(a, c_id, gc, out):
    """out (3, N, H, W * gc) = the three branch channel groups of a (N, H, W, C)."""
    N, H, W = a.shape[0], a.shape[1], a.shape[2]
    for r in numba.prange(N * H):
        n = r // H
        h = r % H
        src = a[n, h]
        for b in range(3):
            c0 = c_id + b * gc
            for w in range(W):
                d = out[b, n, h, w * gc:w * gc + gc]   # slices: see _tap
                s = src[w, c0:c0 + gc]
                for c in range(gc):
                    d[c] = s[c]


@numba.njit(inline="always")
def _tap(acc, src, wrow, lo, hi, shift):
    """acc[k] += src[k + shift] * wrow[k] for k in [lo, hi).

    Over slices with a loop index from 0: an index that might be negative (k + shift)
    makes Numba emit its wraparound branch, which stops LLVM vectorising (7x slower).
    """
    a = acc[lo:hi]
    s = src[lo + shift:hi + shift]
    w = wrow[lo:hi]
    for k in range(a.shape[0]):
        a[k] += s[k] * w[k]


@numba.njit(inline="always")
def _branch_row(xb, n, oh, gc, wt, bt, acc):
    """acc (W * gc) = bias + the branch conv of the gathered input xb (N, H, W * gc) at
    output row oh; wt (kh, kw, W * gc) and bt (W * gc) are the tiled weight and bias."""
    H = xb.shape[1]
    kh, kw, L = wt.shape
    W = L // gc
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    for k in range(L):
        acc[k] = bt[k]
    for i in range(kh):
        ih = oh - ph + i
        if 0 <= ih < H:
            for j in range(kw):
                lo, hi = max(0, pw - j), min(W, W + pw - j)  # outputs whose tap j is inside
                if lo < hi:
                    _tap(acc, xb[n, ih], wt[i, j], lo * gc, hi * gc, (j - pw) * gc)


@numba.njit(inline="always")
def _branch_into(xb, n, oh, gc, wt, bt, acc, orow, c0):
    """Branch output row oh (see :func:`_branch_row`) written to orow's channels c0:c0+gc."""
    _branch_row(xb, n, oh, gc, wt, bt, acc)
    for ow in range(orow.shape[0]):
        d = orow[ow, c0:c0 + gc]                 # slices: see _tap
        s = acc[ow * gc:ow * gc + gc]
        for c in range(gc):
            d[c] = s[c]


@pjit
def mixer_fwd(x, xb, c_id, wt_hw, bt_hw, wt_w, bt_w, wt_h, bt_h, out):
    """out = concat(x[..., :c_id], conv_hw, conv_w, conv_h) for x, out (N, H, W, C);
    xb (3, N, H, W * gc) holds x's branch channels (:func:`gather_branches`)."""
    N, H, W = x.shape[0], x.shape[1], x.shape[2]
    L = wt_hw.shape[2]
    gc = L // W
    for r in numba.prange(N * H):
        n = r // H
        oh = r % H
        orow = out[n, oh]
        xrow = x[n, oh]
        for ow in range(W):
            for c in range(c_id):
                orow[ow, c] = xrow[ow, c]
        acc = np.empty(L, x.dtype)
        _branch_into(xb[0], n, oh, gc, wt_hw, bt_hw, acc, orow, c_id)
        _branch_into(xb[1], n, oh, gc, wt_w, bt_w, acc, orow, c_id + gc)
        _branch_into(xb[2], n, oh, gc, wt_h, bt_h, acc, orow, c_id + 2 * gc)


@numba.njit(inline="always")
def _branch_grad_row(gb, xb, n, oh, gc, part_w, part_b):
    """part_w (kh, kw, W * gc) and part_b (W * gc) += the terms of output-gradient row oh
    (gb, xb: the gathered branch channels of g and x, (N, H, W * gc))."""
    H = xb.shape[1]
    kh, kw, L = part_w.shape
    W = L // gc
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    grow = gb[n, oh]
    for k in range(L):
        part_b[k] += grow[k]
    for i in range(kh):
        ih = oh - ph + i
        if 0 <= ih < H:
            src = xb[n, ih]
            for j in range(kw):
                lo, hi = max(0, pw - j), min(W, W + pw - j)
                if lo < hi:
                    _tap(part_w[i, j], src, grow, lo * gc, hi * gc, (j - pw) * gc)


@pjit
def mixer_bwd_w(gb, xb, gc, p_hw, p_w, p_h, p_b):
    """Per-chunk partial sums of the branches' weight and bias gradients, still tiled
    along the row: p_* (chunks, kh, kw, W * gc), p_b (chunks, 3, W * gc), zero-filled by
    the caller, which sums chunks and pixels. Rows go to a fixed number of chunks (not
    one per thread), so the result is the same whatever the thread count."""
    N, H = xb.shape[1], xb.shape[2]
    rows = N * H
    chunks = p_b.shape[0]
    for k in numba.prange(chunks):
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            n = r // H
            oh = r % H
            _branch_grad_row(gb[0], xb[0], n, oh, gc, p_hw[k], p_b[k, 0])
            _branch_grad_row(gb[1], xb[1], n, oh, gc, p_w[k], p_b[k, 1])
            _branch_grad_row(gb[2], xb[2], n, oh, gc, p_h[k], p_b[k, 2])
