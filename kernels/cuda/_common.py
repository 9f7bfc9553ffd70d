"""Shared launch rules and device helpers for the CUDA kernels.

Every kernel module here defines the same public names as its ``kernels/cpu`` twin, as
plain Python *launchers* with the CPU argument conventions (outputs preallocated by the
caller and passed in); each launcher starts one or more ``@cuda.jit`` kernels.

- Grid-stride loops everywhere: a launch uses at most :data:`MAX_BLOCKS` blocks and each
  thread walks the index space with stride ``gridsize``, so the launch size is a tuning
  choice, not a correctness one. Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)
  runs every simulated thread as a Python thread (~120 us each), so under the simulator
  launches are tiny (a few blocks of 8 threads) and the same loops do the work.
- Deterministic reductions, no float atomics: every reduced value is owned by one block
  (:data:`RB` threads) that strides over its inputs in a fixed pattern and combines the
  per-thread partials with a fixed shared-memory tree (:func:`block_sum`). Sums over the
  rows of a channels-last array use (CW columns x RL row lanes) blocks instead, so a
  warp reads CW adjacent channels (:func:`column_sum`). Results are the same run to run
  (they depend on RB, CW, fixed per build: 128 and 32 on a GPU, 8 and 4 in the
  simulator). Accumulation is float64, as on the CPU.
- Launchers refuse host (NumPy) arrays: Numba would silently copy them to the device and
  back, a hidden host round trip; :func:`launch` names the offending argument.
"""
import math

import numba
import numpy as np
from numba import cuda

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)
if SIMULATOR:
    from ._simfix import install as _install_simulator_fix
    _install_simulator_fix()
else:
    # Small launches (tiny layers, per-channel vectors) are expected, not a mistake: numba's
    # "grid size will likely result in GPU under-utilization" warning would fire on each.
    from numba.cuda.core import config as _cuda_config
    _cuda_config.CUDA_LOW_OCCUPANCY_WARNINGS = 0

THREADS = 8 if SIMULATOR else 256     # threads per block, elementwise kernels
MAX_BLOCKS = 2 if SIMULATOR else 2048  # blocks per launch (grid-stride loops do the rest)
RB = 8 if SIMULATOR else 128           # threads per block of a reduction (a power of 2)
# Column reductions (sums over rows of a (rows, C) array, C contiguous) use 2-d blocks:
# CW adjacent columns (threadIdx.x: coalesced reads) x RL row lanes (threadIdx.y).
CW = 4 if SIMULATOR else 32
RL = RB // CW


def elementwise_grid(n):
    """(blocks, threads) for a grid-stride launch over n items."""
    blocks = max(1, min(MAX_BLOCKS, (int(n) + THREADS - 1) // THREADS))
    return blocks, THREADS


def reduction_grid(n_outputs):
    """(blocks, RB) for a launch with one block per reduced output (grid-stride over outputs)."""
    return max(1, min(MAX_BLOCKS, int(n_outputs))), RB


def column_groups(cols):
    """How many CW-wide column groups cover ``cols`` columns."""
    return (int(cols) + CW - 1) // CW


def _check_args(kernel, args):
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            name = getattr(kernel, "__name__", "kernel").lstrip("_")
            raise TypeError(f"lucid.kernels.cuda: {name} got a host numpy array {a.shape} "
                            f"{a.dtype} as argument {i}; CUDA kernels take device arrays "
                            f"(numba.cuda device arrays, e.g. lucid.device_put(x, 'cuda'))")


def start(kernel, blocks, threads, args):
    """The one place a kernel is started (``kernel[blocks, threads](*args)``), after refusing
    host arrays; a tool can replace it (e.g. to compile every kernel to PTX without a GPU)."""
    _check_args(kernel, args)
    kernel[blocks, threads](*args)


def launch(kernel, n, *args):
    """Start ``kernel`` over n items with a grid-stride grid."""
    start(kernel, *elementwise_grid(n), args)


def launch_reduce(kernel, n_outputs, *args):
    """Start ``kernel`` with one RB-thread block per reduced output (grid-stride over them)."""
    start(kernel, *reduction_grid(n_outputs), args)


def launch_columns(kernel, n_groups, *args):
    """Start ``kernel`` with one (CW, RL) block per group of CW columns (grid-stride)."""
    start(kernel, max(1, min(MAX_BLOCKS, int(n_groups))), (CW, RL), args)


def flat(kernel):
    """A launcher for a kernel over flat arrays whose first argument sets the item count."""
    def launcher(*args):
        launch(kernel, args[0].size, *args)
    launcher.__name__ = launcher.__qualname__ = kernel.__name__.lstrip("_")
    launcher.__doc__ = kernel.__doc__
    return launcher


@cuda.jit(device=True, inline=True)
def block_sum(v, buf):
    """The sum over the block's RB threads of ``v``, in a fixed tree order (float64).

    ``buf`` is a shared float64 array of RB entries; every thread of the block must call
    this (it synchronises). The result is returned to every thread.
    """
    t = cuda.threadIdx.x
    buf[t] = v
    cuda.syncthreads()
    s = RB // 2
    while s > 0:
        if t < s:
            buf[t] += buf[t + s]
        cuda.syncthreads()
        s //= 2
    total = buf[0]
    cuda.syncthreads()  # buf may be reused right after
    return total


@cuda.jit(device=True, inline=True)
def column_sum(v, buf):
    """The sum over a (CW, RL) block's row lanes of ``v``, per column lane, in a fixed tree
    (float64). ``buf`` is a shared (RL, CW) float64 array; every thread must call this."""
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    buf[ty, tx] = v
    cuda.syncthreads()
    s = RL // 2
    while s > 0:
        if ty < s:
            buf[ty, tx] += buf[ty + s, tx]
        cuda.syncthreads()
        s //= 2
    total = buf[0, tx]
    cuda.syncthreads()
    return total


@cuda.jit(device=True, inline=True)
def block_max(v, buf):
    """The maximum over the block's threads of ``v`` (NaN wins), like :func:`block_sum`."""
    t = cuda.threadIdx.x
    buf[t] = v
    cuda.syncthreads()
    s = RB // 2
    while s > 0:
        if t < s:
            a = buf[t]
            b = buf[t + s]
            if a == a and (b > a or b != b):
                buf[t] = b
        cuda.syncthreads()
        s //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


@cuda.jit(device=True, inline=True)
def div(a, b):
    """a / b with IEEE results for b == 0 (the simulator's Python floats would raise)."""
    if b == 0:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


@cuda.jit(device=True, inline=True)
def safe_exp(v):
    """exp(v), inf past float64's range instead of the simulator's OverflowError."""
    if v > 709.0:
        return math.inf
    return math.exp(v)
