"""lucid's Numba kernels (installed as ``lucid.kernels``; the folder is ``kernels/``).

Pure numeric code: imports numpy, numba and math only, never lucid. One folder per
backend (``cpu/``, ``cuda/``) with the same module and kernel names; ``lucid._backend``
picks the folder. Conventions: inputs are C-contiguous float32/float64 arrays
validated by the caller; outputs are preallocated by the caller and passed as
``out`` (so buffers can be reused); every kernel is ``cache=True`` and compiled lazily
on first call.
"""
