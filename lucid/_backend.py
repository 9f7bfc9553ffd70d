"""The one seam between lucid and its kernels: which backend folder the kernels come from.

``kernels/cpu/<family>.py`` and ``kernels/cuda/<family>.py`` define the same kernel
names; primitives ask for a family here and never import a backend directly.
The backend is chosen once, from ``LUCID_BACKEND`` (``cpu`` by default), or with
:func:`set_backend` before the first kernel is used.

Kernel modules are imported on first use, so ``import lucid`` does not pay for
``import numba`` (~0.6 s) until a kernel actually runs.
"""
from __future__ import annotations

import importlib
import os

__all__ = ["kernels", "backend", "set_backend", "BACKENDS", "set_num_threads"]

BACKENDS = ("cpu", "cuda")
_backend = os.environ.get("LUCID_BACKEND", "cpu")
_loaded: dict[str, object] = {}


def backend() -> str:
    """The name of the active kernel backend."""
    return _backend


def set_backend(name: str) -> None:
    """Choose the kernel backend (``"cpu"`` or ``"cuda"``) before any kernel has run."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"lucid.set_backend: expected one of {BACKENDS}, got {name!r}")
    if _loaded and name != _backend:
        raise RuntimeError(f"lucid.set_backend: kernels of backend {_backend!r} are already in use; "
                           "set LUCID_BACKEND before the first kernel runs")
    _backend = name


class _LazyKernels:
    """Stands for ``lucid.kernels.<backend>.<family>`` and imports it on first attribute access."""

    __slots__ = ("_family", "_module")

    def __init__(self, family: str):
        self._family = family
        self._module = None

    def __getattr__(self, name):
        module = self._module
        if module is None:
            module = self._module = _import(self._family)
        return getattr(module, name)


def _import(family: str):
    if _backend not in BACKENDS:
        raise ValueError(f"LUCID_BACKEND must be one of {BACKENDS}, got {_backend!r}")
    _configure_threads()
    module = importlib.import_module(f"lucid.kernels.{_backend}.{family}")
    _loaded[family] = module
    return module


def kernels(family: str) -> _LazyKernels:
    """The kernel module ``family`` (e.g. ``"conv"``) of the active backend, imported lazily."""
    return _LazyKernels(family)


_threads_done = False


def _configure_threads() -> None:
    global _threads_done
    if _threads_done:
        return
    _threads_done = True
    if _backend == "cpu":  # sets the OpenMP spin policy before Numba starts its threads
        importlib.import_module("lucid.kernels.cpu._common")
    n = os.environ.get("LUCID_NUM_THREADS")
    if n:
        set_num_threads(int(n))


def set_num_threads(n: int) -> None:
    """Set the thread count of both Numba's parallel kernels and the BLAS behind ``np.matmul``.

    This is the one place lucid controls threads (also read from ``LUCID_NUM_THREADS``).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"lucid.set_num_threads: expected a positive int, got {n!r}")
    if _backend == "cpu":
        importlib.import_module("lucid.kernels.cpu._common")
    import numba
    from threadpoolctl import threadpool_limits
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    threadpool_limits(n, user_api="blas")
