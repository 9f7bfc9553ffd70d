"""Broadcasting binary elementwise kernels (the CUDA twin of ``kernels/cpu/binary.py``).

Forward kernels take 4-d contiguous operands whose dims are 1 (broadcast) or equal to
``out``'s (the caller collapses NumPy broadcasting to this form); each output element
is one grid-stride item that reads its operands at the clamped index. Backward kernels
take flat arrays already broadcast to the output shape.
"""
import math

from numba import cuda

from ._common import div, flat, launch


@cuda.jit(device=True, inline=True)
def _at(a, i0, i1, i2, i3):
    """a[i0, i1, i2, i3] with size-1 dims broadcasting (index 0)."""
    return a[min(i0, a.shape[0] - 1), min(i1, a.shape[1] - 1),
             min(i2, a.shape[2] - 1), min(i3, a.shape[3] - 1)]


@cuda.jit(device=True, inline=True)
def _unravel(i, out):
    n3 = out.shape[3]
    n2 = out.shape[2]
    n1 = out.shape[1]
    i3 = i % n3
    t = i // n3
    i2 = t % n2
    t //= n2
    return t // n1, t % n1, i2, i3


@cuda.jit(device=True, inline=True)
def _apply(op, a, b):
    if op == 0:
        return a + b
    if op == 1:
        return a - b
    if op == 2:
        return a * b
    if op == 3:
        return div(a, b)
    if op == 4:
        return a ** b
    if op == 5:
        return a if (a >= b or a != a) else b   # NaN propagates, as np.maximum
    return a if (a <= b or a != a) else b       # minimum


@cuda.jit
def _binary_fwd(op, x, y, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        i0, i1, i2, i3 = _unravel(i, out)
        out[i0, i1, i2, i3] = _apply(op, _at(x, i0, i1, i2, i3), _at(y, i0, i1, i2, i3))


@cuda.jit
def _where_fwd(c, x, y, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        i0, i1, i2, i3 = _unravel(i, out)
        if _at(c, i0, i1, i2, i3):
            out[i0, i1, i2, i3] = _at(x, i0, i1, i2, i3)
        else:
            out[i0, i1, i2, i3] = _at(y, i0, i1, i2, i3)


def _forward(op):
    def launcher(x, y, out):
        launch(_binary_fwd, out.size, op, x, y, out)
    return launcher


add_fwd = _forward(0)
subtract_fwd = _forward(1)
multiply_fwd = _forward(2)
divide_fwd = _forward(3)
power_fwd = _forward(4)
maximum_fwd = _forward(5)
minimum_fwd = _forward(6)
for _f, _n in ((add_fwd, "add_fwd"), (subtract_fwd, "subtract_fwd"), (multiply_fwd, "multiply_fwd"),
               (divide_fwd, "divide_fwd"), (power_fwd, "power_fwd"), (maximum_fwd, "maximum_fwd"),
               (minimum_fwd, "minimum_fwd")):
    _f.__name__ = _f.__qualname__ = _n


def where_fwd(c, x, y, out):
    """out = x where c else y, all 4-d with broadcast dims of size 1."""
    launch(_where_fwd, out.size, c, x, y, out)


# ---- backward kernels on flat arrays already broadcast to the output shape ----

@cuda.jit
def _divide_bwd_y(gx, out, res):
    for i in range(cuda.grid(1), gx.size, cuda.gridsize(1)):
        res[i] = -gx[i] * out[i]


@cuda.jit
def _power_bwd(g, x, y, out, gx, gy):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        a = x[i]
        b = y[i]
        gx[i] = g[i] * b * a ** (b - 1)   # JAX's rule: no special case (nan at 0 ** 0)
        if a == 0:
            gy[i] = 0.0
        elif a > 0:
            gy[i] = g[i] * out[i] * math.log(a)
        else:
            gy[i] = math.nan


@cuda.jit
def _maximum_bwd(g, x, y, gx, gy):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        a = x[i]
        b = y[i]
        w = 1.0 if a > b else (0.5 if a == b else 0.0)
        gx[i] = g[i] * w
        gy[i] = g[i] * (1.0 - w)


@cuda.jit
def _where_bwd(c, g, gx, gy):
    for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
        if c[i]:
            gx[i] = g[i]
            gy[i] = 0.0
        else:
            gx[i] = 0.0
            gy[i] = g[i]


divide_bwd_y = flat(_divide_bwd_y)
power_bwd = flat(_power_bwd)
maximum_bwd = flat(_maximum_bwd)


def where_bwd(c, g, gx, gy):
    """gx = g where c else 0; gy = the rest."""
    launch(_where_bwd, g.size, c, g, gx, gy)
