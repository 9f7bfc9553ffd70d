"""Size limits checked before allocating: a huge size is refused with a ValueError naming
the operation, instead of a ``MemoryError`` from deep inside NumPy, an overcommitted
allocation the kernel later kills, or an int64 overflow in a size product.

The cap is the machine's physical memory (``os.sysconf``), or ``LUCID_MAX_ALLOC_BYTES``
when set (tests use it to make the refusal cheap to reach).
"""
from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["max_alloc_bytes", "check_alloc", "format_bytes"]

# Above this, index arithmetic inside the Numba kernels (int64) could overflow.
MAX_INDEX = 2 ** 31 - 1


def max_alloc_bytes() -> int:
    """The most bytes one array may take: physical memory, or ``LUCID_MAX_ALLOC_BYTES``."""
    env = os.environ.get("LUCID_MAX_ALLOC_BYTES")
    if env:
        return int(env)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf: be generous, not wrong
        return 1 << 40


def format_bytes(n: int) -> str:
    """``n`` bytes as a short human string (``'3.6 TiB'``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def check_alloc(op: str, shape, dtype, what: str = "output") -> None:
    """Raise ValueError if an array of ``shape`` and ``dtype`` would not fit in memory.

    Args:
      op: the public name of the operation, for the message.
      shape: the shape about to be allocated (Python ints; the product is exact).
      dtype: its dtype.
      what: what the array is (``"output"``, ``"im2col buffer"``), for the message.
    """
    nbytes = math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize
    cap = max_alloc_bytes()
    if nbytes > cap:
        raise ValueError(f"{op}: the {what} of shape {tuple(int(s) for s in shape)} "
                         f"({np.dtype(dtype)}) would need {format_bytes(nbytes)}, more than "
                         f"the {format_bytes(cap)} of memory available")
