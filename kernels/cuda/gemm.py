"""The CUDA backend's GEMM: ``matmul(a, b, out, trans_a=False, trans_b=False)``.

out = op(a) @ op(b), op transposing the last two axes when its flag is set (so
``a @ b.T`` needs no transposed copy). Operands are 2-d (M, K) or 3-d batched
(B, M, K); a batch of 1 (or a 2-d operand) broadcasts against the other's batch.

On a real GPU the product goes to cuBLAS through CuPy when CuPy is installed (zero-copy
views of the device arrays through ``__cuda_array_interface__``). Otherwise -- and
always under the simulator -- a Numba CUDA tiled GEMM runs: TILE x TILE thread blocks
stage tiles of both operands in shared memory; blocks stride over the output tiles.
Each output element sums its K products in ascending order in float64, so the fallback
is deterministic.
"""
from numba import cuda, float64

from . import _common
from ._common import MAX_BLOCKS, SIMULATOR, _check_args

TILE = 4 if SIMULATOR else 16

_cupy = None
_cupy_checked = False


def _cublas():
    """CuPy when it is importable and sees a GPU (never under the simulator), else None."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        if not SIMULATOR:
            try:
                import cupy
                if cupy.cuda.runtime.getDeviceCount() > 0:
                    _cupy = cupy
            except Exception:  # not installed, or no usable driver: the Numba GEMM runs
                _cupy = None
    return _cupy


def backend_name():
    """``"cublas"`` (through CuPy) or ``"numba-tiled"``: what :func:`matmul` will use."""
    return "cublas" if _cublas() is not None else "numba-tiled"


@cuda.jit
def _gemm_tiled(a, b, out, ta, tb):
    sa = cuda.shared.array((TILE, TILE), float64)
    sb = cuda.shared.array((TILE, TILE), float64)
    nb, M, N = out.shape
    K = a.shape[1] if ta else a.shape[2]
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    tiles_m = (M + TILE - 1) // TILE
    tiles_n = (N + TILE - 1) // TILE
    for tile in range(cuda.blockIdx.x, nb * tiles_m * tiles_n, cuda.gridDim.x):
        bi = tile // (tiles_m * tiles_n)
        rem = tile % (tiles_m * tiles_n)
        row = (rem // tiles_n) * TILE + ty
        col = (rem % tiles_n) * TILE + tx
        ba = min(bi, a.shape[0] - 1)
        bb = min(bi, b.shape[0] - 1)
        acc = 0.0
        for k0 in range(0, K, TILE):
            ka = k0 + tx
            if row < M and ka < K:
                sa[ty, tx] = a[ba, ka, row] if ta else a[ba, row, ka]
            else:
                sa[ty, tx] = 0.0
            kb = k0 + ty
            if kb < K and col < N:
                sb[ty, tx] = b[bb, col, kb] if tb else b[bb, kb, col]
            else:
                sb[ty, tx] = 0.0
            cuda.syncthreads()
            for kk in range(TILE):
                acc += sa[ty, kk] * sb[kk, tx]
            cuda.syncthreads()
        if row < M and col < N:
            out[bi, row, col] = acc


def _as3(x):
    return x.reshape((1,) + tuple(x.shape)) if len(x.shape) == 2 else x


def _check_shapes(a, b, out, trans_a, trans_b):
    # As tuples: the simulator's shape objects refuse negative indices.
    sa, sb, so = tuple(a.shape), tuple(b.shape), tuple(out.shape)
    if len(sa) not in (2, 3) or len(sb) not in (2, 3) or len(so) != max(len(sa), len(sb)):
        raise ValueError(f"gemm.matmul: expected 2-d or 3-d operands and an out of the larger "
                         f"rank, got a {sa}, b {sb}, out {so}")
    m, ka = (sa[-1], sa[-2]) if trans_a else (sa[-2], sa[-1])
    kb, n = (sb[-1], sb[-2]) if trans_b else (sb[-2], sb[-1])
    batch = max(sa[0] if len(sa) == 3 else 1, sb[0] if len(sb) == 3 else 1)
    want = (m, n) if len(so) == 2 else (batch, m, n)
    if ka != kb or so != want:
        raise ValueError(f"gemm.matmul: op(a) is {m}x{ka}, op(b) is {kb}x{n}: expected out "
                         f"{want} with equal inner sizes, got out {so}")


def matmul(a, b, out, trans_a=False, trans_b=False):
    """out = op(a) @ op(b) for device arrays; op transposes the last two axes if flagged."""
    _check_args(_gemm_tiled, (a, b, out))
    _check_shapes(a, b, out, trans_a, trans_b)
    cp = _cublas()
    if cp is not None:
        A, B = cp.asarray(a), cp.asarray(b)
        cp.matmul(A.swapaxes(-1, -2) if trans_a else A, B.swapaxes(-1, -2) if trans_b else B,
                  out=cp.asarray(out))
        return
    o3 = _as3(out)
    tiles = o3.shape[0] * (-(-o3.shape[1] // TILE)) * (-(-o3.shape[2] // TILE))
    blocks = max(1, min(MAX_BLOCKS, tiles))
    _common.start(_gemm_tiled, blocks, (TILE, TILE),
                  (_as3(a), _as3(b), o3, bool(trans_a), bool(trans_b)))
