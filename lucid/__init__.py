"""lucid: a JIT-compiled functional deep-learning array library for CPUs.

Models are pure functions over explicit parameter pytrees; every operation is a
primitive with a Numba forward kernel and Numba backward kernel(s); ``grad``,
``value_and_grad`` and ``vjp`` compose them.
"""
import os as _os

# OpenBLAS's idle threads otherwise keep spinning after every GEMM and fight Numba's
# threads for the cores (measured ~20% on batch-16 ConvNeXt-T); it reads this only when
# numpy loads it, so it helps when lucid is imported before numpy (as the CLI does).
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
# The same for OpenMP pools (Numba's, and any other library's libgomp, e.g. PyTorch's,
# which reads it when it loads): with torch imported after lucid, lucid's ConvNeXt-T
# batch-1 forward measured 64 ms with a short spin against 97 ms with libgomp's default.
# kernels/cpu/_common.py sets it too, for direct kernel users; a user's setting wins.
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from . import io, numpy, random, tree  # noqa: E402
from . import nn, models, optim, data, metrics  # noqa: E402
from . import distributed  # noqa: E402  (imports MPI only under an MPI launcher, at init())
from ._autodiff import Tracer, grad, is_tracer, stop_gradient, value_and_grad, vjp
from ._core import ConcretizationError
from ._jit import jit
from ._backend import backend, set_backend, set_num_threads
from ._device import (Device, DeviceArray, block_until_ready, device_get, device_of,
                      device_put, devices, transfer_counts)
from ._summary import summary

tree_map = tree.map
tree_leaves = tree.leaves

__version__ = "0.1.0"

__all__ = [
    "numpy", "random", "tree", "tree_map", "tree_leaves", "io", "nn", "models", "optim", "data",
    "metrics", "summary", "distributed",
    "grad", "value_and_grad", "vjp", "jit", "stop_gradient", "is_tracer", "Tracer",
    "ConcretizationError",
    "backend", "set_backend", "set_num_threads",
    "Device", "DeviceArray", "devices", "device_put", "device_get", "device_of", "transfer_counts",
    "block_until_ready",
]
