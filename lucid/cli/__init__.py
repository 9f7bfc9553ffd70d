"""The ``lucid`` command (also ``python -m lucid``).

    lucid train                      train a small ConvNeXt on the embedded dataset (the main job)
    lucid eval --weights CKPT        accuracy of a checkpoint on a dataset
    lucid predict IMG... --weights FILE [--model NAME]
    lucid summary NAME [--mermaid]   layer table (or flowchart) of a model
    lucid list [PATTERN]             registered models
    lucid bench NAME                 quick forward / training-step throughput

Every error prints one line ``lucid: error: ...`` and exits with status 2: command-line
mistakes, the user's files, and errors raised deep inside the library alike (``--debug``
or ``LUCID_DEBUG=1`` prints the traceback instead). Ctrl-C exits with 130 and leaves
the last complete checkpoint intact.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys

__all__ = ["main", "UserError"]


class UserError(Exception):
    """An error caused by the command line or the user's files: printed as one line."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" to every option's help unless the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default:" in text or action.default is argparse.SUPPRESS or action.required:
            return text
        if action.default is None:
            return text + " (default: none)" if action.option_strings else text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and every option's default in its help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"lucid: error: {message} (see `{self.prog} --help`)\n")


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    from . import _commands, _train

    p = _Parser(prog="lucid", description="lucid: functional deep learning on CPUs with "
                "timm-exact ConvNeXt and InceptionNeXt.")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads for Numba kernels and BLAS (default: all cores, or "
                   "LUCID_NUM_THREADS; under mpiexec the cores bound to the rank, or the "
                   "host's cores / ranks on the host)")
    p.add_argument("--debug", action="store_true", default=_env_debug(),
                   help="show the full traceback of an error (also LUCID_DEBUG=1)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _train.add_parser(sub)
    _commands.add_parsers(sub)
    for command in sub.choices.values():  # also accepted after the command
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the full traceback of an error (also LUCID_DEBUG=1)")
    return p


def _env_debug() -> bool:
    return os.environ.get("LUCID_DEBUG", "") not in ("", "0")


def describe(e: BaseException) -> str:
    """One line for an unexpected exception: its type and the first line of its message."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        where = f" writing {e.filename}" if e.filename else ""
        return f"no space left on the device{where}; free some space or choose another --out"
    if isinstance(e, MemoryError):
        return "out of memory; try a smaller --batch-size or model"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


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
        if args.debug:
            raise
        _stop_other_ranks(f"lucid: error: {e}", 2)
        print(f"lucid: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nlucid: interrupted; the last complete checkpoint (if any) is intact", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a deep error: one line, the traceback on request
        if args.debug:
            raise
        print(f"lucid: error: {describe(e)} (run with --debug for the traceback)", file=sys.stderr)
        return 2


def _stop_other_ranks(message: str, status: int) -> None:
    """Under ``mpiexec`` with several ranks, a user error on one rank aborts them all (the
    others would wait forever in their next collective); otherwise do nothing."""
    from .. import distributed
    if distributed.is_initialized() and distributed.world_size() > 1:
        distributed.abort(f"{message} (rank {distributed.rank()} of "
                          f"{distributed.world_size()}; stopping all ranks)", status)
