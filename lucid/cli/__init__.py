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
import sys

__all__ = ["main", "UserError"]


class UserError(Exception):
    """An error caused by the command line or the user's files: printed as one line."""


def _parser() -> argparse.ArgumentParser:
    from . import _commands, _train

    p = argparse.ArgumentParser(prog="lucid", description="lucid: functional deep learning on "
                                "CPUs with timm-exact ConvNeXt and InceptionNeXt.")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for Numba kernels and BLAS (default: all cores)")
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
    try:
        if args.threads is not None:
            from .._backend import set_num_threads
            set_num_threads(args.threads)
        return int(args.run(args) or 0)
    except UserError as e:
        print(f"lucid: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nlucid: interrupted; the last complete checkpoint (if any) is intact", file=sys.stderr)
        return 130
