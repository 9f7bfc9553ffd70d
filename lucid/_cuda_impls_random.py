"""CUDA impls of random draws from keys that live on the device (Philox on the device).

Registered by :func:`lucid._cuda_impls.install` (through ``Primitive.def_impl(fn,
backend="cuda")``); see that module for the conventions (DeviceArray in, preallocated
DeviceArray ``out``, no host round trip).
"""
from __future__ import annotations


def install() -> None:
    """Register this family's CUDA impls with the core."""
    table = []
    for prim, impl in table:
        prim.def_impl(impl, backend="cuda")
