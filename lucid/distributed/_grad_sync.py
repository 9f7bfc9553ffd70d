"""Bucketed gradient all-reduce overlapped with the backward pass (as PyTorch DDP and Horovod).

The parameter leaves (``lucid.tree.leaves`` order) are cut into a few buckets of about
``bucket_bytes`` each, one dtype per bucket; each bucket owns one flat buffer. During the
backward, ``lucid._autodiff.grad_ready_hook`` reports each parameter's gradient as soon as
it is final; the gradient is copied into its bucket, and a bucket whose leaves are all in
starts a non-blocking ``Iallreduce`` (sum) at once, while the backward goes on with the
earlier layers. :meth:`GradSync.finish` waits for the buckets just before the optimizer
update and returns the summed gradients.

MPI requires every rank to start its collectives in the same order. Buckets therefore
start in one fixed order: on the first step nothing overlaps; the order in which rank 0's
backward completed the buckets is broadcast and kept, and from then on a bucket starts
when it and every bucket before it in that order is complete (a rank whose backward
completes buckets in another order only loses overlap, never deadlocks).
"""
from __future__ import annotations

import contextlib
import time

import numpy as np

from .. import tree as _tree
from .._autodiff import grad_ready_hook
from . import _comm

__all__ = ["GradSync"]


class _Bucket:
    __slots__ = ("dtype", "leaves", "buffer", "missing", "request")

    def __init__(self, dtype, leaves, size):
        self.dtype, self.leaves = dtype, leaves
        self.buffer = np.empty(size, dtype)
        self.missing, self.request = set(), None


def _plan(params, bucket_bytes):
    """(buckets, where): ``where[i] = (bucket, offset)`` of leaf i, buckets cut in leaf order."""
    leaves = _tree.leaves(params)
    buckets, where, current, size = [], [], None, 0
    for i, leaf in enumerate(leaves):
        a = np.asarray(leaf)
        if a.dtype.kind != "f":
            raise TypeError(f"lucid.distributed.GradSync: parameter leaf {i} has dtype {a.dtype}; "
                            "gradients exist for floating parameters only")
        if current is None or current[0] != a.dtype or size * a.itemsize >= bucket_bytes:
            current = (a.dtype, [])
            buckets.append(current)
            size = 0
        current[1].append(i)
        where.append((len(buckets) - 1, size))
        size += a.size
    out = []
    for dtype, ids in buckets:
        out.append(_Bucket(dtype, ids, sum(np.asarray(leaves[i]).size for i in ids)))
    return out, where, [np.shape(l) for l in leaves], _tree.structure(params)


class GradSync:
    """Sums the gradients of all ranks, overlapping the communication with the backward.

    Use through ``lucid.training.make_train_step(..., grad_sync=GradSync(params))``, which
    scales each rank's loss by ``local batch / global batch`` (so summed gradients are those
    of the global-batch mean) and calls :meth:`overlap` around the gradient computation
    and :meth:`finish` before the optimizer update.

    Args:
      params: the parameter pytree (only its structure, shapes and dtypes are used).
      bucket_bytes: the target size of one bucket (the last leaf may overshoot it).
    """

    def __init__(self, params, *, bucket_bytes: int = 16 << 20):
        if not isinstance(bucket_bytes, (int, np.integer)) or bucket_bytes < 1:
            raise ValueError(f"GradSync: bucket_bytes must be a positive int, got {bucket_bytes!r}")
        self.buckets, self._where, self._shapes, self._treedef = _plan(params, bucket_bytes)
        self._comm = None
        if _comm.world_size() > 1:
            self._comm = _comm.comm().Dup()  # gradients never interleave with other collectives
        self._order = None      # the fixed start order, known after the first step
        self._completed = []    # the completion order seen on this step
        self._next = 0          # index into _order of the next bucket to start
        self.wait_seconds = 0.0  # time finish() spent waiting on the last step
        self.backward_end = 0.0  # time.time() when the last step's finish() began
        self.overlapped = False  # whether the last step started buckets during the backward

    # ---- per step ----------------------------------------------------------------------
    def loss_scale(self, local_count: int) -> float:
        """``local_count / global_count``: the weight of this rank's mean loss (the global
        count is summed over ranks, so uneven shards weigh what they hold)."""
        if self._comm is None:
            return 1.0
        from mpi4py import MPI
        counts = np.array([int(local_count)], np.int64)
        self._comm.Allreduce(MPI.IN_PLACE, counts, op=MPI.SUM)
        return float(local_count) / float(counts[0])

    @contextlib.contextmanager
    def overlap(self):
        """Within: each final parameter gradient goes into its bucket; full buckets start."""
        for b in self.buckets:
            b.missing, b.request = set(b.leaves), None
        self._completed, self._next = [], 0
        if self._comm is None:
            yield
            return
        with grad_ready_hook(self._on_ready):
            yield

    def _on_ready(self, position, index, grad):
        if position != 0:  # only the parameters (argnums=0) are synchronised
            return
        b_id, offset = self._where[index]
        bucket = self.buckets[b_id]
        if index not in bucket.missing:
            return
        bucket.buffer[offset:offset + np.size(grad)] = np.ravel(grad)
        bucket.missing.discard(index)
        if not bucket.missing:
            self._completed.append(b_id)
            self._start_ready()
        self._progress()

    def _start_ready(self):
        """Start, in the fixed order, every bucket whose predecessors have started."""
        if self._order is None:
            return
        while self._next < len(self._order):
            bucket = self.buckets[self._order[self._next]]
            if bucket.missing:
                return
            self._start(bucket)
            self._next += 1

    def _start(self, bucket):
        from mpi4py import MPI
        bucket.request = self._comm.Iallreduce(MPI.IN_PLACE, bucket.buffer, op=MPI.SUM)

    def _progress(self):
        # Open MPI progresses non-blocking collectives only inside MPI calls: poke it
        active = [b.request for b in self.buckets if b.request is not None]
        if active:
            from mpi4py import MPI
            MPI.Request.Testall(active)

    def finish(self, grads):
        """Wait for every bucket and return the gradients summed over ranks.

        Args:
          grads: this rank's gradient pytree (fills any leaf the hook did not report).
        Returns:
          a pytree like ``grads`` whose leaves are views into the bucket buffers (valid
          until the next step's :meth:`overlap`).
        """
        if self._comm is None:
            return grads
        self.backward_end = time.time()  # wall clock: comparable across ranks on one host
        leaves = _tree.leaves(grads)
        for b_id, bucket in enumerate(self.buckets):
            for i in sorted(bucket.missing):  # not reported by the hook (e.g. no hook seam)
                offset = self._where[i][1]
                bucket.buffer[offset:offset + np.size(leaves[i])] = np.ravel(leaves[i])
            if bucket.missing:
                bucket.missing.clear()
                self._completed.append(b_id)
        self.overlapped = self._order is not None and self._next > 0
        if self._order is None:
            self._order = self._agree_on_order()
        t0 = time.perf_counter()
        self._start_ready()
        from mpi4py import MPI
        MPI.Request.Waitall([b.request for b in self.buckets])
        self.wait_seconds = time.perf_counter() - t0
        return self._unflatten()

    def _agree_on_order(self):
        order = self._comm.bcast(list(self._completed), root=0)
        if sorted(order) != list(range(len(self.buckets))):
            raise RuntimeError(f"GradSync: rank 0 reported bucket order {order}, expected a "
                               f"permutation of {len(self.buckets)} buckets")
        return order

    def _unflatten(self):
        out = []
        for i, shape in enumerate(self._shapes):
            b_id, offset = self._where[i]
            size = int(np.prod(shape, dtype=np.int64))
            out.append(self.buckets[b_id].buffer[offset:offset + size].reshape(shape))
        return self._treedef.unflatten(out)
