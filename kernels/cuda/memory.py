"""Device-side array plumbing the CUDA backend needs where the CPU backend calls NumPy:
filling, contiguous copies of permuted axes (``np.ascontiguousarray(x.transpose(p))``),
dtype casts, broadcasting copies, tiling along the last axis and kernel flips. Up to 6 dimensions; every output element is one grid-stride item.
"""
from numba import cuda, int64

from . import _common
from ._common import elementwise_grid, launch

MAX_NDIM = 6


@cuda.jit
def _fill(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


@cuda.jit
def _permute6(src, dst, perm):
    """dst[d0..d5] = src[s] with s[perm[k]] = d[k] (both 6-d, dst C-contiguous)."""
    d = cuda.local.array(6, int64)
    s = cuda.local.array(6, int64)
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        t = i
        for k in range(5, -1, -1):
            d[k] = t % dst.shape[k]
            t //= dst.shape[k]
        for k in range(6):
            s[perm[k]] = d[k]
        dst[d[0], d[1], d[2], d[3], d[4], d[5]] = src[s[0], s[1], s[2], s[3], s[4], s[5]]


@cuda.jit
def _cast(src, dst):
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        dst[i] = src[i]


@cuda.jit
def _tile_rows(src, dst):
    """dst (R, reps * n) = each row of src (R, n) repeated reps times."""
    n = src.shape[1]
    m = dst.shape[1]
    for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
        dst[i // m, i % m] = src[i // m, (i % m) % n]


@cuda.jit
def _broadcast6(src, scale, out):
    """out[o] = src[o clamped to src's size-1 dims] * scale, both 6-d."""
    o = cuda.local.array(6, int64)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        t = i
        for k in range(5, -1, -1):
            o[k] = t % out.shape[k]
            t //= out.shape[k]
        out[o[0], o[1], o[2], o[3], o[4], o[5]] = src[
            min(o[0], src.shape[0] - 1), min(o[1], src.shape[1] - 1),
            min(o[2], src.shape[2] - 1), min(o[3], src.shape[3] - 1),
            min(o[4], src.shape[4] - 1), min(o[5], src.shape[5] - 1)] * scale


@cuda.jit
def _flip2(src, dst):
    """dst[i, j, c] = src[kh - 1 - i, kw - 1 - j, c]."""
    kh, kw, C = src.shape
    for q in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        c = q % C
        j = (q // C) % kw
        i = q // (C * kw)
        dst[i, j, c] = src[kh - 1 - i, kw - 1 - j, c]


def fill(out, value):
    """out[...] = value (out C-contiguous)."""
    flat = out.reshape(out.size)
    launch(_fill, out.size, flat, value)


def permute_copy(src, perm, dst):
    """dst = src.transpose(perm), written C-contiguous; src C-contiguous, ndim <= 6."""
    nd = len(src.shape)
    if nd > MAX_NDIM or sorted(perm) != list(range(nd)):
        raise ValueError(f"memory.permute_copy: perm must order {nd} <= {MAX_NDIM} axes, got {perm}")
    want = tuple(src.shape[p] for p in perm)
    if tuple(dst.shape) != want:
        raise ValueError(f"memory.permute_copy: dst must have shape {want}, got {tuple(dst.shape)}")
    pad = MAX_NDIM - nd
    perm6 = tuple(range(pad)) + tuple(p + pad for p in perm)
    src6 = src.reshape((1,) * pad + tuple(src.shape))
    dst6 = dst.reshape((1,) * pad + want)
    _common.start(_permute6, *elementwise_grid(dst.size), (src6, dst6, perm6))


def cast(src, dst):
    """dst = src converted to dst's dtype (both C-contiguous, same size)."""
    launch(_cast, src.size, src.reshape(src.size), dst.reshape(dst.size))


def broadcast(src, scale, out):
    """out = src * scale broadcast to out's shape (NumPy rules, <= 6 dims; scale 1.0 copies
    exactly)."""
    nd = len(out.shape)
    if nd > MAX_NDIM or len(src.shape) > nd:
        raise ValueError(f"memory.broadcast: cannot broadcast {tuple(src.shape)} to "
                         f"{tuple(out.shape)} here (<= {MAX_NDIM} dims)")
    src6 = src.reshape((1,) * (MAX_NDIM - len(src.shape)) + tuple(src.shape))
    out6 = out.reshape((1,) * (MAX_NDIM - nd) + tuple(out.shape))
    launch(_broadcast6, out.size, src6, scale, out6)


def flip2(src, dst):
    """dst = src[::-1, ::-1] for (kh, kw, C) arrays (a kernel's taps reversed)."""
    launch(_flip2, src.size, src, dst)


def tile(src, reps, dst):
    """dst = np.tile(src, (1,) * (src.ndim - 1) + (reps,)): the last axis repeated reps
    times (src, dst C-contiguous)."""
    n = tuple(src.shape)[-1]   # (the simulator's shapes refuse negative indices)
    rows = src.size // n
    launch(_tile_rows, src.size * reps, src.reshape(rows, n), dst.reshape(rows, n * reps))
