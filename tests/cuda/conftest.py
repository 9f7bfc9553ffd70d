"""The CUDA backend's tests run in their own pytest process: ``NUMBA_ENABLE_CUDASIM=1``
(Numba's CUDA simulator, no GPU needed; .ci/run sets it for that process only) or
``LUCID_TEST_CUDA=1`` on a machine with a GPU. The simulator must be chosen before numba
is first imported, so in the main test process (where it is not set) this folder is
skipped rather than run on whatever CUDA target numba would find.
"""
import os

_ENABLED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or os.environ.get("LUCID_TEST_CUDA") == "1"

if not _ENABLED:
    collect_ignore_glob = ["test_*.py"]
