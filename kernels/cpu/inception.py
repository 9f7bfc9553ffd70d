"""InceptionNeXt's token mixer in one pass over channels-last (NHWC) rows.

The mixer splits C channels into ``(c_id, gc, gc, gc)``: identity, a square k x k
depthwise conv, a 1 x kb band and a kb x 1 band, each stride 1 with 'same' padding
((k - 1) // 2 on both sides, odd k), and concatenates the results. Done as split ->
three convs -> concatenate, it copies every activation twice; here each output row is
written once, the identity channels copied and the branches computed in place.

Weights come as (kh, kw, gc) (an OIHW depthwise weight transposed), biases as (gc,).
The input gradient is the same mixer run on the output gradient with every kernel
flipped (the adjoint of a stride-1 correlation with symmetric padding), so only the
weight gradient needs its own kernel.
"""
import numba
import numpy as np

from ._common import jit, pjit


@jit
def _branch_row(x, n, oh, c0, w, b, orow):
    """orow[:, c0:c0+gc] = b + x's channels c0:c0+gc correlated with w, output row oh."""
    H, W = x.shape[1], x.shape[2]
    kh, kw, gc = w.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    for ow in range(W):
        for c in range(gc):
            orow[ow, c0 + c] = b[c]
    for i in range(kh):
        ih = oh - ph + i
        if 0 <= ih < H:
            xrow = x[n, ih]
            for j in range(kw):
                wj = w[i, j]
                for ow in range(max(0, pw - j), min(W, W + pw - j)):
                    iw = ow - pw + j
                    for c in range(gc):
                        orow[ow, c0 + c] += xrow[iw, c0 + c] * wj[c]


@pjit
def mixer_fwd(x, c_id, w_hw, b_hw, w_w, b_w, w_h, b_h, out):
    """out = concat(x[..., :c_id], conv_hw, conv_w, conv_h) for x, out (N, H, W, C)."""
    N, H, W = x.shape[0], x.shape[1], x.shape[2]
    gc = w_hw.shape[2]
    for r in numba.prange(N * H):
        n = r // H
        oh = r % H
        orow = out[n, oh]
        xrow = x[n, oh]
        for ow in range(W):
            for c in range(c_id):
                orow[ow, c] = xrow[ow, c]
        _branch_row(x, n, oh, c_id, w_hw, b_hw, orow)
        _branch_row(x, n, oh, c_id + gc, w_w, b_w, orow)
        _branch_row(x, n, oh, c_id + 2 * gc, w_h, b_h, orow)


@jit
def _branch_grad_row(g, x, n, oh, c0, gw, gb):
    """gw (kh, kw, gc) and gb (gc,) += the contributions of output-gradient row oh."""
    H, W = x.shape[1], x.shape[2]
    kh, kw, gc = gw.shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    grow = g[n, oh]
    for ow in range(W):
        for c in range(gc):
            gb[c] += grow[ow, c0 + c]
    for i in range(kh):
        ih = oh - ph + i
        if 0 <= ih < H:
            xrow = x[n, ih]
            for j in range(kw):
                gwj = gw[i, j]
                for ow in range(max(0, pw - j), min(W, W + pw - j)):
                    iw = ow - pw + j
                    for c in range(gc):
                        gwj[c] += grow[ow, c0 + c] * xrow[iw, c0 + c]


@pjit
def mixer_bwd_w(g, x, c_id, gw_hw, gb_hw, gw_w, gb_w, gw_h, gb_h):
    """The three branches' weight and bias gradients from g and x (N, H, W, C).

    Rows are split into a fixed number of chunks (not one per thread, so the result is
    the same whatever the thread count), each summing into its own partials.
    """
    N, H = x.shape[0], x.shape[1]
    gc = gw_hw.shape[2]
    rows = N * H
    chunks = max(1, min(rows, 16))
    p_hw = np.zeros((chunks,) + gw_hw.shape, gw_hw.dtype)
    p_w = np.zeros((chunks,) + gw_w.shape, gw_w.dtype)
    p_h = np.zeros((chunks,) + gw_h.shape, gw_h.dtype)
    p_b = np.zeros((chunks, 3, gc), gb_hw.dtype)
    for k in numba.prange(chunks):
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            n = r // H
            oh = r % H
            _branch_grad_row(g, x, n, oh, c_id, p_hw[k], p_b[k, 0])
            _branch_grad_row(g, x, n, oh, c_id + gc, p_w[k], p_b[k, 1])
            _branch_grad_row(g, x, n, oh, c_id + 2 * gc, p_h[k], p_b[k, 2])
    gw_hw[...] = p_hw.sum(axis=0)
    gw_w[...] = p_w.sum(axis=0)
    gw_h[...] = p_h.sum(axis=0)
    gb_hw[...] = p_b[:, 0].sum(axis=0)
    gb_w[...] = p_b[:, 1].sum(axis=0)
    gb_h[...] = p_b[:, 2].sum(axis=0)
