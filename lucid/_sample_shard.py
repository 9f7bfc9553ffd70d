"""Per-sample random draws that do not depend on how a batch is split across processes.

Data-parallel training splits each global batch of ``total`` samples across ranks; rank
``r`` computes samples ``[offset, offset + n)``. Every per-sample draw (a drop-path mask,
a dropout mask, a crop offset, a flip) is made for the whole global batch from the same
key and then sliced to the rank's rows, so rank ``r`` gets exactly the values a single
process gets for those samples. Drawing the global batch costs ``total`` random numbers
per sample-level draw (``total * features`` for dropout): small next to the step.

Outside :func:`sample_shard` (a single process) the draw is the plain ``(n, ...)`` draw,
so single-process results are unchanged.
"""
from __future__ import annotations

import contextlib
import threading

__all__ = ["sample_shard", "current_shard", "draw_per_sample", "sample_offset", "shard_bounds"]

_local = threading.local()


def shard_bounds(total: int, index: int, count: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of shard ``index`` of ``count`` over ``total`` samples.

    The split is as even as possible: the first ``total % count`` shards get one sample
    more (``numpy.array_split``'s rule), so an uneven last batch is split deterministically.
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard_bounds: need 0 <= index < count, got index {index}, count {count}")
    q, rem = divmod(int(total), int(count))
    lo = index * q + min(index, rem)
    return lo, lo + q + (1 if index < rem else 0)


@contextlib.contextmanager
def sample_shard(offset: int, total: int):
    """Within this context, per-sample draws are those of rows ``offset:offset+n`` of a
    global batch of ``total`` samples (``n`` = the leading axis of the drawn array).

    Args:
      offset: the global index of this process's first sample in the batch.
      total: the global batch size.
    """
    offset, total = int(offset), int(total)
    if not 0 <= offset < total:
        raise ValueError(f"sample_shard: need 0 <= offset < total, got offset {offset}, "
                         f"total {total}")
    previous = getattr(_local, "shard", None)
    _local.shard = (offset, total)
    try:
        yield
    finally:
        _local.shard = previous


def current_shard():
    """``(offset, total)`` of the active :func:`sample_shard`, or None."""
    return getattr(_local, "shard", None)


def draw_per_sample(draw, shape: tuple, where: str):
    """``draw(shape)`` for a single process; inside :func:`sample_shard`, the rows of this
    shard of ``draw((total,) + shape[1:])``.

    Args:
      draw: a function of a shape returning an array of that shape (keyed, deterministic).
      shape: the local shape; axis 0 is the sample axis.
      where: the calling function, for the error message.
    """
    shard = current_shard()
    if shard is None:
        return draw(tuple(shape))
    n = int(shape[0])
    offset = sample_offset(n, where)
    return draw((shard[1],) + tuple(shape[1:]))[offset:offset + n]


def sample_offset(n: int, where: str) -> int:
    """The global row of this shard's first sample (0 outside :func:`sample_shard`), after
    checking that ``n`` local samples fit in the shard. A draw whose values are a function
    of the element's flat index (lucid.random's) can start there instead of drawing the
    global batch and slicing it (the device draws do).

    Args:
      n: the local batch size (axis 0 of the drawn array).
      where: the calling function, for the error message.
    """
    shard = current_shard()
    if shard is None:
        return 0
    offset, total = shard
    if offset + int(n) > total:
        raise ValueError(f"{where}: the batch axis has {n} samples but the active sample_shard "
                         f"covers rows {offset}..{total - 1} of {total}; per-sample draws inside "
                         "sample_shard need the local batch on axis 0")
    return offset
