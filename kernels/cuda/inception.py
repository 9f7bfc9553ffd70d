"""InceptionNeXt's token mixer (the CUDA twin of ``kernels/cpu/inception.py``, same
arguments: branch weights tiled along the row as (kh, kw, W * gc), biases as (W * gc,)).

Channels split as (c_id, gc, gc, gc): identity, a square k x k depthwise conv, a 1 x kb
band and a kb x 1 band, each stride 1 with 'same' padding. Every output element is one
grid-stride item. The input gradient is the caller's (the same mixer on the output
gradient with flipped kernels); the weight gradient kernel fills the caller's per-chunk
partials, each partial element owned by one thread that walks its chunk's rows in order.
"""
from numba import cuda

from ._common import launch


@cuda.jit
def _gather_branches(a, c_id, gc, out):
    """out (3, N, H, W * gc) = the three branch channel groups of a (N, H, W, C)."""
    L = out.shape[3]
    H = out.shape[2]
    N = out.shape[1]
    for q in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        l = q % L
        h = (q // L) % H
        n = (q // (L * H)) % N
        b = q // (L * H * N)
        out[b, n, h, l] = a[n, h, l // gc, c_id + b * gc + l % gc]


@cuda.jit(device=True, inline=True)
def _branch(xb, n, oh, ow, cc, gc, wt, bt):
    """Bias + the branch conv of gathered rows xb (N, H, W * gc) at (oh, ow, channel cc)."""
    H = xb.shape[1]
    kh, kw = wt.shape[0], wt.shape[1]
    W = wt.shape[2] // gc
    ph = (kh - 1) // 2
    pw = (kw - 1) // 2
    l = ow * gc + cc
    s = 0.0
    for i in range(kh):
        ih = oh - ph + i
        if 0 <= ih < H:
            for j in range(kw):
                iw = ow - pw + j
                if 0 <= iw < W:
                    s += xb[n, ih, iw * gc + cc] * wt[i, j, l]
    return bt[l] + s


@cuda.jit
def _mixer_fwd(x, xb, c_id, wt_hw, bt_hw, wt_w, bt_w, wt_h, bt_h, out):
    C = out.shape[3]
    W = out.shape[2]
    H = out.shape[1]
    gc = wt_hw.shape[2] // W
    for q in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ch = q % C
        ow = (q // C) % W
        oh = (q // (C * W)) % H
        n = q // (C * W * H)
        if ch < c_id:
            out[n, oh, ow, ch] = x[n, oh, ow, ch]
        else:
            b = (ch - c_id) // gc
            cc = (ch - c_id) % gc
            if b == 0:
                out[n, oh, ow, ch] = _branch(xb[0], n, oh, ow, cc, gc, wt_hw, bt_hw)
            elif b == 1:
                out[n, oh, ow, ch] = _branch(xb[1], n, oh, ow, cc, gc, wt_w, bt_w)
            else:
                out[n, oh, ow, ch] = _branch(xb[2], n, oh, ow, cc, gc, wt_h, bt_h)


@cuda.jit
def _branch_grad(gb, xb, gc, p):
    """p[k, i, j, l] += sum over the rows of chunk k of g[n, oh, l] * x[n, ih, l + shift]."""
    N, H, L = xb.shape[0], xb.shape[1], xb.shape[2]
    chunks, kh, kw = p.shape[0], p.shape[1], p.shape[2]
    W = L // gc
    ph = (kh - 1) // 2
    pw = (kw - 1) // 2
    rows = N * H
    for q in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        l = q % L
        j = (q // L) % kw
        i = (q // (L * kw)) % kh
        k = q // (L * kw * kh)
        iw = l // gc - pw + j
        if 0 <= iw < W:
            s = 0.0
            for r in range(k * rows // chunks, (k + 1) * rows // chunks):
                n = r // H
                ih = r % H - ph + i
                if 0 <= ih < H:
                    s += gb[n, r % H, l] * xb[n, ih, iw * gc + l % gc]
            p[k, i, j, l] += s


@cuda.jit
def _bias_grad_partials(gb, p_b):
    """p_b[k, b, l] += sum over the rows of chunk k of gb[b, n, h, l]."""
    N, H, L = gb.shape[1], gb.shape[2], gb.shape[3]
    chunks = p_b.shape[0]
    rows = N * H
    for q in range(cuda.grid(1), p_b.size, cuda.gridsize(1)):
        l = q % L
        b = (q // L) % 3
        k = q // (L * 3)
        s = 0.0
        for r in range(k * rows // chunks, (k + 1) * rows // chunks):
            s += gb[b, r // H, r % H, l]
        p_b[k, b, l] += s


def gather_branches(a, c_id, gc, out):
    """out (3, N, H, W * gc) = the three branch channel groups of a (N, H, W, C)."""
    launch(_gather_branches, out.size, a, c_id, gc, out)


def mixer_fwd(x, xb, c_id, wt_hw, bt_hw, wt_w, bt_w, wt_h, bt_h, out):
    """out = concat(x[..., :c_id], conv_hw, conv_w, conv_h) for x, out (N, H, W, C)."""
    launch(_mixer_fwd, out.size, x, xb, c_id, wt_hw, bt_hw, wt_w, bt_w, wt_h, bt_h, out)


def mixer_bwd_w(gb, xb, gc, p_hw, p_w, p_h, p_b):
    """Per-chunk partial sums (zero-filled by the caller, which sums chunks and pixels) of
    the branches' weight and bias gradients, tiled along the row."""
    launch(_branch_grad, p_hw.size, gb[0], xb[0], gc, p_hw)
    launch(_branch_grad, p_w.size, gb[1], xb[1], gc, p_w)
    launch(_branch_grad, p_h.size, gb[2], xb[2], gc, p_h)
    launch(_bias_grad_partials, p_b.size, gb, p_b)
