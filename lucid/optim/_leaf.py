"""Where an optimizer leaf lives, and the few array operations the optimizers need, done
where it lives: NumPy on the host, ``lucid.kernels.cuda.optim`` kernels on a CUDA device.

A host leaf is a ``numpy.ndarray`` and runs the CPU kernels (``kernels("optim")``, the
backend seam); a :class:`lucid.DeviceArray` runs their CUDA twins on its ``.raw`` numba
array, with every new array (state zeros, updates, new parameters) allocated on its
device. Nothing here copies device data to the host.

The step count (an int64 0-d array in every counted state) lives with the state: on the
host for host parameters, a 0-d device array for device parameters (``init`` of device
parameters, or ``lucid.device_put`` of a host state). A device count is incremented by a
kernel, and Adam reads it inside its update kernel for the bias corrections, so a
constant learning rate never reads the count to the host. A learning-rate *schedule* is a
Python function of the step, so a device count is read once per step (8 bytes) where a
schedule is evaluated -- never per parameter.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .._backend import kernels
from .._device import DeviceArray

_HOST_KERNELS = kernels("optim")   # imported on first use (the backend seam)

__all__ = ["is_device", "kernels_of", "flat", "empty_like", "zeros_like", "new_count",
           "next_count", "check_same_place", "as_dtype", "scaled", "plus", "plus_scaled",
           "device_norm", "clipped"]


def is_device(x) -> bool:
    """True for a :class:`lucid.DeviceArray` (a CUDA leaf)."""
    return isinstance(x, DeviceArray)


def kernels_of(x):
    """The optimizer kernel module for where ``x`` lives: the CUDA kernels for a device
    leaf, else the CPU kernels chosen by the backend seam."""
    if is_device(x):
        from ..kernels.cuda import optim
        return optim
    return _HOST_KERNELS


def flat(x):
    """The 1-d view the kernels take: a numba.cuda array for a device leaf (C-contiguous,
    as lucid's device arrays are), a NumPy view for a host one."""
    if is_device(x):
        return x.raw.reshape(x.size)
    return x.reshape(-1)


def empty_like(x):
    """An uninitialised array shaped and typed like ``x`` where ``x`` lives."""
    if is_device(x):
        from .._cuda_ops import empty
        return DeviceArray(empty(x.shape, x.dtype), x.device)
    return np.empty_like(x)


def zeros_like(x):
    """Zeros shaped and typed like ``x`` where ``x`` lives."""
    if is_device(x):
        from .._device import zeros_on
        return zeros_on(x)
    return np.zeros(x.shape, x.dtype)


def new_count(leaves=()):
    """A zero step count (int64 0-d), on the device of the first device leaf, else the host."""
    for leaf in leaves:
        if is_device(leaf):
            from .._device import zeros_on
            return zeros_on(SimpleNamespace(shape=(), dtype=np.dtype(np.int64),
                                            device=leaf.device))
    return np.zeros((), dtype=np.int64)


def next_count(count):
    """``count + 1``, where ``count`` lives (a device count is incremented by a kernel)."""
    if is_device(count):
        out = empty_like(count)
        kernels_of(count).increment(count.raw, out.raw)
        return out
    return np.asarray(int(count) + 1, dtype=np.int64)


def check_same_place(name: str, where: str, a, b, what=("update", "parameter/state")) -> None:
    """Raise when ``a`` and ``b`` (two arrays of one leaf, called ``what``) live on
    different devices."""
    da = a.device if is_device(a) else "cpu"
    db = b.device if is_device(b) else "cpu"
    if da != db:
        raise ValueError(f"{name}: at {where} the {what[0]} lives on {da} but the {what[1]} "
                         f"on {db}; put parameters, gradients and optimizer state on one device "
                         "(lucid.device_put(tree, device))")


def scaled(u, factor: float):
    """``u * factor`` in u's dtype (NumPy rounds the Python float to it; so does this)."""
    if not is_device(u):
        return np.multiply(u, factor, out=np.empty_like(u))
    out = empty_like(u)
    kernels_of(u).scale(flat(u), u.dtype.type(factor), flat(out))
    return out


def plus(p, u):
    """``p + u`` in p's dtype (``u`` already has it)."""
    if not is_device(p):
        return np.add(p, u, out=np.empty_like(p))  # 0-d stays an array
    out = empty_like(p)
    kernels_of(p).add_scaled(flat(p), flat(u), p.dtype.type(1.0), flat(out))  # exact: 1 * u
    return out


def plus_scaled(u, p, a: float):
    """``u + a * p`` in u's dtype (``a`` rounded to it first, as NumPy does)."""
    if not is_device(u):
        return np.add(u, a * p, out=np.empty_like(u))
    out = empty_like(u)
    kernels_of(u).add_scaled(flat(u), flat(p), u.dtype.type(a), flat(out))
    return out


def as_dtype(x, dtype):
    """A C-contiguous device array ``x`` in ``dtype`` (cast on the device when it differs)."""
    if not x.is_c_contiguous():
        raise ValueError(f"lucid.optim: expected C-contiguous device arrays, got a strided "
                         f"{x.dtype}{x.shape} view (copy it first)")
    if np.dtype(dtype) == x.dtype:
        return x
    from .._cuda_ops import empty
    from ..kernels.cuda import memory
    out = DeviceArray(empty(x.shape, dtype), x.device)
    if x.size:
        memory.cast(flat(x), flat(out))
    return out


def device_norm(name: str, leaves) -> DeviceArray:
    """The global L2 norm of device ``leaves`` as a float64 (1,) device array: one
    sum-of-squares reduction per leaf into its own slot, then the slots added in leaf
    order (as the CPU's ``global_norm`` adds its per-leaf sums)."""
    from .._cuda_ops import empty, zeros
    device = next(leaf.device for leaf in leaves if is_device(leaf))
    sums = zeros((max(len(leaves), 1),), np.float64)
    for i, leaf in enumerate(leaves):
        if not is_device(leaf) or leaf.device != device:
            where = leaf.device if is_device(leaf) else "cpu"
            raise ValueError(f"{name}: leaf {i} lives on {where}, the others on {device}; put "
                             "the whole tree on one device (lucid.device_put)")
        if leaf.dtype.type not in (np.float32, np.float64):
            raise TypeError(f"{name}: leaves must be float32/float64 arrays, got dtype "
                            f"{leaf.dtype}")
        if leaf.size:
            kernels_of(leaf).sum_squares(flat(as_dtype(leaf, leaf.dtype)), sums[i:i + 1])
    norm = empty((1,), np.float64)
    kernels_of(leaves[0]).norm_of_sums(sums, norm)
    return DeviceArray(norm, device)


def clipped(u, norm: DeviceArray, max_norm: float, norm_in: dict):
    """``u`` scaled by ``max_norm / norm`` when ``norm >= max_norm`` (else a copy), decided
    on the device. ``norm_in`` caches the norm rounded to each dtype (one cast per dtype)."""
    if u.dtype not in norm_in:
        norm_in[u.dtype] = as_dtype(norm, u.dtype)
    out = empty_like(u)
    kernels_of(u).clip(flat(u), norm.raw, norm_in[u.dtype].raw, float(max_norm),
                       u.dtype.type(max_norm), flat(out))
    return out
