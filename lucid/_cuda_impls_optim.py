"""CUDA impls of the optimizers' compiled update (optimizer_step) on device arrays.

Registered by :func:`lucid._cuda_impls.install` (through ``Primitive.def_impl(fn,
backend="cuda")``); see that module for the conventions (DeviceArray in, preallocated
DeviceArray ``out``, no host round trip).

The optimizers are device-aware (``lucid/optim/_leaf.py``): on DeviceArray leaves their
update runs the CUDA optim kernels and returns DeviceArrays. So the step's device impl is
the CPU one's body -- ``optimizer.update`` then ``apply_updates`` -- with each result
copied device to device into its ``out`` buffer (the CPU impl's ``dst[...] = src``).
"""
from __future__ import annotations


def _optimizer_step(*leaves, out, optimizer, defs, counts):
    from ._cuda_impls import _into
    from ._device import DeviceArray
    from .optim._jit_step import step_results
    for dst, src in step_results(leaves, out, optimizer, defs, counts):
        if not isinstance(src, DeviceArray):  # never a silent host->device copy
            raise ValueError(f"lucid.optim: the optimizer returned a host {src.dtype}"
                             f"{tuple(src.shape)} leaf for device inputs; a device step must "
                             "keep every parameter and state leaf on the device")
        _into(dst, src.raw)


def install() -> None:
    """Register this family's CUDA impls with the core."""
    from .optim._jit_step import optimizer_step_p
    table = [(optimizer_step_p, _optimizer_step)]
    for prim, impl in table:
        prim.def_impl(impl, backend="cuda")
