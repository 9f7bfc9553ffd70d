"""The ``lucid`` command (also ``python -m lucid``).

    lucid train                      train a small ConvNeXt on the embedded dataset (the main job)
    lucid eval --weights CKPT        accuracy of a checkpoint on a dataset
    lucid predict IMG... --model NAME --weights FILE
    lucid summary NAME [--mermaid]   layer table (or flowchart) of a model
    lucid list [PATTERN]             registered models
    lucid bench NAME                 quick forward / training-step throughput

User errors print one line ``lucid: error: ...`` saying what to do and exit with
status 2, without a traceback; Ctrl-C exits with 130 and leaves the last complete
checkpoint intact.
"""
from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main", "UserError"]


class UserError(Exception):
    """An error caused by the command line or the user's files: printed as one line."""


def _parser() -> argparse.ArgumentParser:
    from . import _commands, _train

    p = argparse.ArgumentParser(prog="lucid", description="lucid: functional deep learning on "
                                "CPUs with timm-exact ConvNeXt and InceptionNeXt.")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for Numba kernels and BLAS (default: all cores; under mpiexec "
                   "the cores bound to the rank, or the host's cores / ranks on the host)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _train.add_parser(sub)
    _commands.add_parsers(sub)
    return p


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from ..distributed import abort_on_error
    try:
        from .. import distributed
        if distributed.launch_env():  # under mpiexec: join now (a missing mpi4py is one line)
            try:
                distributed.init()
            except RuntimeError as e:
                raise UserError(str(e)) from None
            if args.threads is None and not os.environ.get("LUCID_NUM_THREADS"):
                # N ranks share the cores (an explicit --threads or LUCID_NUM_THREADS wins)
                args.threads = distributed.threads_per_rank()
        if args.threads is not None:
            from .._backend import set_num_threads
            set_num_threads(args.threads)
        with abort_on_error(passthrough=(UserError,)):  # under mpiexec: one line, then MPI_Abort stops every rank
            return int(args.run(args) or 0)
    except UserError as e:
        _stop_other_ranks(f"lucid: error: {e}", 2)
        print(f"lucid: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nlucid: interrupted; the last complete checkpoint (if any) is intact", file=sys.stderr)
        return 130


def _stop_other_ranks(message: str, status: int) -> None:
    """Under ``mpiexec`` with several ranks, a user error on one rank aborts them all (the
    others would wait forever in their next collective); otherwise do nothing."""
    from .. import distributed
    if distributed.is_initialized() and distributed.world_size() > 1:
        distributed.abort(f"{message} (rank {distributed.rank()} of "
                          f"{distributed.world_size()}; stopping all ranks)", status)
