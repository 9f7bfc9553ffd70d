"""Broadcasting comparisons and logical ops into bool arrays (what the CPU backend does
with NumPy's ufuncs, ``np.less(x, y, out=...)``): the 4-d broadcasting form of
``binary.py`` (size-1 dims broadcast), any operand dtypes, a bool output; and the integer
counters' ``x + value`` (``np.add(x, value, out=...)``)."""
from numba import cuda

from ._common import launch
from .binary import _at, _unravel

# the NumPy ufunc names, in the order of the kernel's op codes
OPS = ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
       "logical_and", "logical_or", "logical_xor")


@cuda.jit(device=True, inline=True)
def _compare(op, a, b):
    if op == 0:
        return a < b
    if op == 1:
        return a <= b
    if op == 2:
        return a > b
    if op == 3:
        return a >= b
    if op == 4:
        return a == b
    if op == 5:
        return a != b
    if op == 6:
        return a != 0 and b != 0
    if op == 7:
        return a != 0 or b != 0
    return (a != 0) != (b != 0)


@cuda.jit
def _compare_fwd(op, x, y, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        i0, i1, i2, i3 = _unravel(i, out)
        out[i0, i1, i2, i3] = _compare(op, _at(x, i0, i1, i2, i3), _at(y, i0, i1, i2, i3))


def compare(ufunc, x, y, out):
    """out = np.<ufunc>(x, y) for 4-d operands whose dims are 1 or out's (``ufunc`` one of
    :data:`OPS`)."""
    if ufunc not in OPS:
        raise ValueError(f"compare: expected one of {OPS}, got {ufunc!r}")
    launch(_compare_fwd, out.size, OPS.index(ufunc), x, y, out)


@cuda.jit
def _add_int(x, value, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = x[i] + value


def add_int(x, value, out):
    """out = x + value for flat integer arrays (counters: BatchNorm's num_batches_tracked,
    step counts), in x's integer type."""
    launch(_add_int, x.size, x, value, out)
