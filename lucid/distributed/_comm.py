"""The process group: MPI through mpi4py when launched by ``mpiexec``, else one process.

``init()`` looks at the launcher's environment variables *before* importing mpi4py, so a
plain ``python``/``lucid`` process never loads MPI (and does not need it installed).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys

import numpy as np

from .. import tree as _tree

__all__ = ["init", "is_initialized", "rank", "world_size", "is_main", "allreduce", "broadcast",
           "barrier", "abort", "check_same", "launch_env", "comm", "threads_per_rank"]

# Set by the launchers lucid knows: Open MPI (OMPI_*), PMIx-based launchers (Open MPI 5,
# srun --mpi=pmix), MPICH/Intel MPI hydra (PMI_*), MVAPICH (MV2_*).
_LAUNCH_VARS = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK",
                "MV2_COMM_WORLD_SIZE")
_state = {"initialized": False, "comm": None, "rank": 0, "size": 1}


def launch_env() -> dict:
    """The MPI launcher variables present in this process's environment (empty: not launched)."""
    return {k: os.environ[k] for k in _LAUNCH_VARS if k in os.environ}


def init() -> int:
    """Join the process group (idempotent); returns the world size.

    Under an MPI launcher (``mpiexec -n N ...``) this imports mpi4py, which initialises
    MPI; a plain process is a group of one and imports nothing.

    Raises:
      RuntimeError: an MPI launch was detected but mpi4py is not installed.
    """
    if _state["initialized"]:
        return _state["size"]
    found = launch_env()
    if found:
        try:
            import mpi4py
            mpi4py.rc.thread_level = "funneled"   # only the main thread calls MPI
            from mpi4py import MPI
        except ImportError as e:
            names = ", ".join(f"{k}={v}" for k, v in found.items())
            raise RuntimeError(f"lucid.distributed: this process was started by an MPI launcher "
                               f"({names}) but mpi4py cannot be imported ({e}); install it with "
                               "pip install 'lucid[mpi]' (mpi4py and an MPI library) in the "
                               "environment every rank runs") from None
        world = MPI.COMM_WORLD
        _state.update(comm=world, rank=world.Get_rank(), size=world.Get_size())
    _state["initialized"] = True
    return _state["size"]


def threads_per_rank() -> int:
    """A thread count for this rank that does not oversubscribe its host.

    If the launcher bound the rank to some cores (``--bind-to core|socket``), all of them;
    otherwise the host's cores divided by the ranks on this host.
    """
    cores = os.cpu_count() or 1
    mine = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    if mine < cores or world_size() == 1:
        return max(1, mine)
    from mpi4py import MPI
    local = _state["comm"].Split_type(MPI.COMM_TYPE_SHARED)
    here = local.Get_size()
    local.Free()
    return max(1, cores // here)


def is_initialized() -> bool:
    """Whether :func:`init` has run (no MPI is imported by asking)."""
    return _state["initialized"]


def comm():
    """The mpi4py communicator of the group, or None in a single process."""
    init()
    return _state["comm"]


def rank() -> int:
    """This process's index in the group (0 in a single process)."""
    init()
    return _state["rank"]


def world_size() -> int:
    """The number of processes in the group (1 in a single process)."""
    return init()


def is_main() -> bool:
    """True on rank 0, the process that writes checkpoints and logs."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank has reached this call."""
    if world_size() > 1:
        _state["comm"].Barrier()


def _signature(leaves, treedef) -> int:
    text = repr((str(treedef), [(np.shape(v), np.asarray(v).dtype.str) for v in leaves]))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=7).digest(), "little")


def _check_structure(leaves, treedef, fn: str) -> None:
    """Raise on every rank unless every rank passed the same tree structure, shapes and dtypes."""
    from mpi4py import MPI
    sig = _signature(leaves, treedef)
    both = np.array([sig, -sig], np.int64)
    _state["comm"].Allreduce(MPI.IN_PLACE, both, op=MPI.MAX)
    if both[0] != sig or -both[1] != sig:
        raise ValueError(f"lucid.distributed.{fn}: the ranks passed different pytrees (structure, "
                         "shapes or dtypes differ); every rank must pass the same structure")


def _leaf_arrays(tree, fn: str, op: str | None):
    leaves, treedef = _tree.flatten(tree)
    arrays = []
    for i, leaf in enumerate(leaves):
        a = np.asarray(leaf)
        if a.dtype.kind not in "fiuc":
            raise TypeError(f"lucid.distributed.{fn}: leaf {i} has dtype {a.dtype}; expected "
                            "numeric arrays or scalars (float, int, complex)")
        if op == "mean" and a.dtype.kind not in "fc":
            raise TypeError(f"lucid.distributed.{fn}: op='mean' needs floating leaves, leaf {i} "
                            f"has dtype {a.dtype}; use op='sum' for integer leaves")
        arrays.append(a)
    return leaves, arrays, treedef


def _rebuild(leaves, flat_by_dtype, arrays, treedef):
    """Unpack per-dtype flat buffers into a tree shaped like the input (scalars stay scalars)."""
    cursor = {dt: 0 for dt in flat_by_dtype}
    out = []
    for leaf, a in zip(leaves, arrays):
        start = cursor[a.dtype]
        cursor[a.dtype] = start + a.size
        value = flat_by_dtype[a.dtype][start:start + a.size].reshape(a.shape)
        if isinstance(leaf, np.ndarray):
            out.append(value)
        elif isinstance(leaf, np.generic):
            out.append(value[()])
        else:  # a Python number
            out.append(type(leaf)(value[()]))
    return treedef.unflatten(out)


def _pack(arrays) -> dict:
    by_dtype = {}
    for a in arrays:
        by_dtype.setdefault(a.dtype, []).append(a.reshape(-1))
    return {dt: np.concatenate(parts) for dt, parts in by_dtype.items()}


def allreduce(tree, op: str = "mean"):
    """Elementwise sum or mean of a pytree over all ranks; every rank gets the result.

    Leaves are packed into one buffer per dtype (one collective per dtype, in a fixed
    dtype order), so a tree of many small arrays costs a few messages.

    Args:
      tree: a pytree of numeric arrays or scalars (mixed dtypes allowed), with the same
        structure, shapes and dtypes on every rank.
      op: ``"mean"`` (floating leaves only) or ``"sum"``.
    Returns:
      a new pytree of the same structure, shapes and dtypes.
    """
    if op not in ("mean", "sum"):
        raise ValueError(f"lucid.distributed.allreduce: op must be 'mean' or 'sum', got {op!r}")
    leaves, arrays, treedef = _leaf_arrays(tree, "allreduce", op)
    flat = _pack(arrays)
    size = world_size()
    if size > 1:
        from mpi4py import MPI
        _check_structure(leaves, treedef, "allreduce")
        for dt in sorted(flat, key=lambda d: d.str):
            _state["comm"].Allreduce(MPI.IN_PLACE, flat[dt], op=MPI.SUM)
            if op == "mean":
                flat[dt] /= flat[dt].dtype.type(size)
    return _rebuild(leaves, flat, arrays, treedef)


def broadcast(tree, root: int = 0):
    """Every rank gets rank ``root``'s values of ``tree`` (same structure on every rank).

    Args:
      tree: a pytree of numeric arrays or scalars.
      root: the rank whose values are sent.
    Returns:
      a new pytree of the same structure, shapes and dtypes holding ``root``'s values.
    """
    size = world_size()
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < size:
        raise ValueError(f"lucid.distributed.broadcast: root must be a rank in [0, {size}), "
                         f"got {root!r}")
    leaves, arrays, treedef = _leaf_arrays(tree, "broadcast", None)
    flat = _pack(arrays)
    if size > 1:
        _check_structure(leaves, treedef, "broadcast")
        for dt in sorted(flat, key=lambda d: d.str):
            _state["comm"].Bcast(flat[dt], root=int(root))
    return _rebuild(leaves, flat, arrays, treedef)


def tree_digest(tree) -> str:
    """A hash of a pytree's structure and values (bitwise)."""
    h = hashlib.blake2b(digest_size=16)
    leaves, treedef = _tree.flatten(tree)
    h.update(str(treedef).encode())
    for leaf in leaves:
        a = np.ascontiguousarray(leaf)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    return h.hexdigest()


def check_same(tree, what: str) -> None:
    """Raise on every rank unless ``tree`` is bitwise identical on all ranks.

    Args:
      tree: e.g. the parameters, or ``{"config": ..., "params": ...}``.
      what: what the tree is, for the message.
    """
    if world_size() == 1:
        return
    digests = _state["comm"].allgather(tree_digest(tree))
    if len(set(digests)) > 1:
        groups = {}
        for r, d in enumerate(digests):
            groups.setdefault(d, []).append(r)
        ranks = "; ".join(f"ranks {v} have {k[:12]}" for k, v in groups.items())
        raise RuntimeError(f"lucid.distributed: the {what} differ across ranks ({ranks}); the "
                           "ranks were started with different settings, code or checkpoint "
                           "files, or diverged")


def abort(message: str, status: int = 1) -> None:
    """Print ``message`` (one line) on stderr and stop every rank (``MPI_Abort``).

    In a single process this exits with ``status``.
    """
    print(message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    if _state["comm"] is not None and _state["size"] > 1:
        _state["comm"].Abort(status)
    raise SystemExit(status)


@contextlib.contextmanager
def abort_on_error(prefix: str = "lucid", passthrough: tuple = ()):
    """Turn an exception on any rank into a one-line error and ``MPI_Abort`` of all ranks.

    Without this, a rank that dies leaves the others waiting in their next collective.
    In a single process (or before :func:`init`) exceptions propagate unchanged.

    Args:
      prefix: the start of the error line.
      passthrough: exception types to re-raise unchanged (the caller handles them, and
        must then stop the other ranks itself, e.g. with :func:`abort`).
    """
    try:
        yield
    except BaseException as e:  # noqa: BLE001 - any failure must stop the other ranks
        if isinstance(e, passthrough) or (isinstance(e, SystemExit) and not e.code):
            raise
        if not (_state["initialized"] and _state["size"] > 1):
            raise
        kind = "interrupted" if isinstance(e, KeyboardInterrupt) else type(e).__name__
        text = " ".join(str(e).split()) or kind
        abort(f"{prefix}: error on rank {_state['rank']} of {_state['size']}: {kind}: {text}; "
              "stopping all ranks", 130 if isinstance(e, KeyboardInterrupt) else 1)
