"""CPU kernels: Numba ``@njit(cache=True)``, multi-threaded with ``prange`` where it pays."""
