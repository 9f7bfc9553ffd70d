"""Devices and device arrays, JAX-style: ``devices``, ``device_put``, ``device_get``.

Host arrays are plain ``numpy.ndarray``s on the ``cpu`` device. A CUDA array is a
:class:`DeviceArray`, a thin wrapper over a numba.cuda device array (the CUDA backend's
allocator) that knows its :class:`Device` and exposes ``__cuda_array_interface__`` so
CuPy, PyTorch and others can take it without a copy.

numba.cuda is imported on first use only: ``import lucid`` never needs ``numba-cuda``,
and without it (or without a GPU) :func:`devices` lists ``cpu`` alone. Under Numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``) one simulated device is listed.

Every copy between host and device is counted (:func:`transfer_counts`), so tests can
check that a model's forward and backward never silently round-trip through the host.
"""
from __future__ import annotations

import importlib.util
import threading

import numpy as np

from . import tree as _tree

__all__ = ["Device", "DeviceArray", "devices", "device_put", "device_get", "device_of",
           "check_same_device", "transfer_counts", "tree_device", "put_like", "on_backend",
           "block_until_ready"]


class Device:
    """A place arrays live: ``cpu`` or ``cuda:<id>``. Compare with ``==``; hashable."""

    __slots__ = ("platform", "id")

    def __init__(self, platform: str, id: int = 0):
        self.platform, self.id = platform, int(id)

    def __eq__(self, other):
        return isinstance(other, Device) and (self.platform, self.id) == (other.platform, other.id)

    def __hash__(self):
        return hash((self.platform, self.id))

    def __repr__(self):
        return "cpu" if self.platform == "cpu" else f"{self.platform}:{self.id}"


CPU = Device("cpu")
_lock = threading.Lock()
_counts = {"host_to_device": 0, "device_to_host": 0}
_cuda_module = None


def _cuda():
    """numba.cuda from the numba-cuda package, or None when it is not installed."""
    global _cuda_module
    if _cuda_module is None:
        if importlib.util.find_spec("numba_cuda") is None:
            return None
        import numba
        from numba import cuda
        if not numba.config.ENABLE_CUDASIM:  # the backend's caching allocator, before any context
            from .kernels.cuda import allocator
            allocator.install()
        _cuda_module = cuda
    return _cuda_module


def _cuda_count() -> int:
    cuda = _cuda()
    if cuda is None:
        return 0
    try:
        return len(cuda.gpus) if cuda.is_available() else 0
    except Exception:  # a broken driver install: no usable GPU, as without one
        return 0


def devices(platform: str | None = None) -> list[Device]:
    """Every device lucid can use: ``cpu`` first, then each CUDA device.

    Args:
      platform: ``"cpu"`` or ``"cuda"`` to list only that kind; None for all.
    Returns:
      A list of :class:`Device`.
    """
    found = [CPU] + [Device("cuda", i) for i in range(_cuda_count())]
    if platform is None:
        return found
    if platform not in ("cpu", "cuda"):
        raise ValueError(f"lucid.devices: platform must be 'cpu', 'cuda' or None, got {platform!r}")
    return [d for d in found if d.platform == platform]


def as_device(device) -> Device:
    """A :class:`Device` from ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"gpu"`` or a Device."""
    if isinstance(device, Device):
        wanted = device
    elif isinstance(device, str):
        name, _, index = device.strip().lower().partition(":")
        name = "cuda" if name == "gpu" else name
        if name not in ("cpu", "cuda") or (index and not index.isdigit()):
            raise ValueError(f"lucid: expected a device 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        wanted = Device(name, int(index or 0))
    else:
        raise TypeError(f"lucid: expected a device (a lucid.Device or a string such as 'cuda'), "
                        f"got {type(device).__name__}")
    if wanted == CPU:   # always there: no need to load numba.cuda and ask the driver
        return wanted
    if wanted not in devices():
        why = ("numba-cuda is not installed (pip install -e '.[cuda]')" if _cuda() is None
               else "no such CUDA device is visible")
        raise RuntimeError(f"lucid: device {wanted} is not available: {why}; available: {devices()}")
    return wanted


def _count(kind: str) -> None:
    with _lock:
        _counts[kind] += 1


def transfer_counts() -> dict:
    """How many host->device and device->host copies lucid has made so far (a copy)."""
    with _lock:
        return dict(_counts)


class DeviceArray:
    """An array in a CUDA device's memory (wraps a numba.cuda device array).

    Attributes: ``shape``, ``dtype``, ``ndim``, ``size``, ``nbytes``, ``device``, and
    ``raw`` (the numba.cuda array the kernels take). ``numpy.asarray(x)`` copies it to the
    host (as :func:`device_get`, and counted like it).
    """

    __slots__ = ("raw", "device")
    __array_priority__ = 1000
    __lucid_backend__ = "cuda"   # the core dispatches a primitive to its "cuda" impl

    def __init__(self, raw, device: Device):
        self.raw, self.device = raw, device

    shape = property(lambda self: tuple(self.raw.shape))
    dtype = property(lambda self: np.dtype(self.raw.dtype))
    ndim = property(lambda self: len(self.raw.shape))
    size = property(lambda self: int(np.prod(self.raw.shape, dtype=np.int64)))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self.shape[0]

    def __repr__(self):
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device={self.device})"

    @property
    def __cuda_array_interface__(self):
        raw = self.raw
        if hasattr(type(raw), "__cuda_array_interface__"):
            return raw.__cuda_array_interface__
        # The simulator's arrays live in host memory and have no interface: describe that
        # memory with the same fields, so code written for the protocol runs unchanged.
        host = raw._ary
        return {"shape": host.shape, "typestr": host.dtype.str, "version": 3,
                "data": (host.ctypes.data, False),
                "strides": None if host.flags.c_contiguous else host.strides}

    def is_c_contiguous(self) -> bool:
        return bool(self.raw.is_c_contiguous())

    def reshape(self, *shape):
        """A view with a new shape (C-contiguous arrays only: no hidden device copy)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if not self.is_c_contiguous():
            raise ValueError(f"DeviceArray.reshape: only C-contiguous arrays reshape as views; "
                             f"this one {self.shape} is not")
        return DeviceArray(self.raw.reshape(tuple(shape)), self.device)

    def block_until_ready(self) -> "DeviceArray":
        """Wait until every kernel queued on this array's device has finished (kernel
        launches are asynchronous; JAX's ``block_until_ready``). Returns the array."""
        cuda = _cuda()
        with cuda.gpus[self.device.id]:
            cuda.synchronize()
        return self

    def view(self, dtype) -> "DeviceArray":
        """The same bytes read as another dtype (NumPy's ``ndarray.view``; no copy)."""
        return DeviceArray(self.raw.view(np.dtype(dtype)), self.device)

    def copy(self) -> "DeviceArray":
        """A new device array with the same values (device to device, no host copy)."""
        cuda = _cuda()
        with cuda.gpus[self.device.id]:
            out = cuda.device_array(self.shape, self.dtype)
        out.copy_to_device(self.raw)
        return DeviceArray(out, self.device)

    def allocation_id(self):
        """Identifies the allocation this array's memory belongs to (views share it)."""
        data = getattr(self.raw, "gpu_data", None)
        if data is not None:   # numba's MemoryPointer: views keep their allocation's owner
            return id(data.owner)
        host = self.raw._ary    # the simulator keeps device memory in a NumPy array
        while host.base is not None:
            host = host.base
        return id(host)

    def __getitem__(self, index):
        part = self.raw[index]
        if hasattr(part, "shape") and hasattr(part, "copy_to_host"):
            return DeviceArray(part, self.device)
        _count("device_to_host")  # an element read is a (tiny) device->host copy
        return part

    def copy_to_host(self) -> np.ndarray:
        """A host copy (counted as a device->host transfer)."""
        _count("device_to_host")
        return self.raw.copy_to_host()

    def __array__(self, dtype=None, copy=None):
        host = self.copy_to_host()
        return host if dtype is None else host.astype(dtype, copy=False)

    def __float__(self):
        return float(self.copy_to_host())

    def __int__(self):
        return int(self.copy_to_host())


def _is_host_array(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic))


def _to_device(x, device: Device) -> DeviceArray:
    cuda = _cuda()
    _install_impls()
    host = np.asarray(x)
    if not host.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
        host = np.ascontiguousarray(host)
    with cuda.gpus[device.id]:
        raw = cuda.to_device(host)
    _count("host_to_device")
    return DeviceArray(raw, device)


def _install_impls():
    """Register the CUDA primitive impls with the core (where this lucid has one)."""
    try:
        from . import _core  # noqa: F401  (the primitives-as-data core)
    except ImportError:
        return
    from ._cuda_impls import install
    install()


def _put_leaf(x, device: Device):
    if isinstance(x, DeviceArray):
        if x.device == device:
            return x
        x = x.copy_to_host()
    elif not _is_host_array(x):
        return x  # None, Python scalars, strings: left as they are
    return x if device == CPU else _to_device(x, device)


def zeros_on(like) -> DeviceArray:
    """Zeros with ``like``'s shape and dtype on ``like``'s device (a DeviceArray)."""
    from ._cuda_ops import zeros
    with _cuda().gpus[like.device.id]:
        return DeviceArray(zeros(like.shape, like.dtype), like.device)


def device_put(tree, device="cuda"):
    """Copy every array leaf of ``tree`` to ``device`` (JAX's ``jax.device_put``).

    Args:
      tree: a pytree whose NumPy array / NumPy scalar / DeviceArray leaves are moved;
        other leaves (None, Python numbers, strings) are kept as they are.
      device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`Device`.
    Returns:
      The same structure with arrays on ``device`` (leaves already there are not copied).
    """
    target = as_device(device)
    return _tree.map(lambda x: _put_leaf(x, target), tree)


def device_get(tree):
    """Every DeviceArray leaf of ``tree`` copied to a host ``numpy.ndarray``.

    Args:
      tree: a pytree.
    Returns:
      The same structure with host arrays (host leaves are returned as they are).
    """
    return _tree.map(lambda x: x.copy_to_host() if isinstance(x, DeviceArray) else x, tree)


def device_of(x) -> Device:
    """The device ``x`` lives on: a DeviceArray's device, else ``cpu`` (NumPy arrays,
    Python and NumPy scalars). Traced values report their underlying array's device."""
    value = getattr(x, "value", x)  # a tracer wraps the array it stands for
    if isinstance(value, DeviceArray):
        return value.device
    return CPU


def tree_device(tree) -> Device:
    """The device of the first DeviceArray leaf of ``tree`` (``cpu`` when it has none)."""
    for leaf in _tree.leaves(tree):
        if isinstance(leaf, DeviceArray):
            return leaf.device
    return CPU


def block_until_ready(tree):
    """Wait for every DeviceArray leaf of ``tree`` to be computed; returns ``tree``."""
    for leaf in _tree.leaves(tree):
        if isinstance(leaf, DeviceArray):
            leaf.block_until_ready()
    return tree


def on_backend(x, backend: str):
    """A host array on ``backend`` ('cpu' or a device backend such as 'cuda'): moved to the
    device (a host->device copy) unless it is already there or the backend is the host."""
    if backend == "cpu" or isinstance(x, DeviceArray) or not _is_host_array(x):
        return x
    return device_put(x, backend)


def put_like(values, like):
    """``values`` on the device ``like``'s arrays live on (a batch follows the parameters);
    unchanged when they live on the host."""
    device = tree_device(like)
    return values if device == CPU else device_put(values, device)


def check_same_device(op_name: str, *arrays) -> Device:
    """The one device all array arguments live on; a clear error when they disagree.

    Python and NumPy scalars and None are skipped (they go wherever the arrays are).

    Args:
      op_name: the operation, for the error message.
      *arrays: the operation's inputs.
    Returns:
      The common :class:`Device` (``cpu`` when no argument is an array).
    """
    seen = {}
    for i, a in enumerate(arrays):
        value = getattr(a, "value", a)
        if isinstance(value, (DeviceArray, np.ndarray)):
            seen.setdefault(device_of(value), i)
    if len(seen) > 1:
        where = ", ".join(f"argument {i} on {d}" for d, i in seen.items())
        raise ValueError(f"{op_name}: inputs live on different devices ({where}); move them to "
                         f"one device first, e.g. lucid.device_put(x, 'cuda') or "
                         f"lucid.device_get(x)")
    return next(iter(seen), CPU)
