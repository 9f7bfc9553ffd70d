"""Fusion rewrites of traced programs (filled in as the primitives land)."""
from __future__ import annotations

from ._program import Program

__all__ = ["fuse"]


def fuse(program: Program) -> Program:
    return program
