"""IEEE-754 helpers for kernels: Numba's default error model raises ZeroDivisionError
on float division by zero, where NumPy (and lucid) return inf/nan."""
import math

import numba


@numba.njit(inline="always")
def div(a, b):
    """a / b with IEEE results for b == 0 (+-inf, or nan for 0/0 and nan/0)."""
    if b == 0:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b
