"""The CUDA backend's tests run in their own pytest process: ``NUMBA_ENABLE_CUDASIM=1``
(Numba's CUDA simulator, no GPU needed; .ci/run sets it for that process only) or
``LUCID_TEST_CUDA=1`` on a machine with a GPU. The simulator must be chosen before numba
is first imported, so in the main test process (where it is not set) this folder is
skipped rather than run on whatever CUDA target numba would find.
"""
import os
import sys

_SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
_PTX = os.environ.get("LUCID_CUDA_PTX_CHECK") == "1" and not _SIM
_ENABLED = _SIM or _PTX or os.environ.get("LUCID_TEST_CUDA") == "1"

if not _ENABLED:
    collect_ignore_glob = ["test_*.py"]
elif _PTX:   # compile every kernel for sm_90 (tests/cuda/_ptx.py)
    collect_ignore_glob = ["test_device.py"]
    sys.path.insert(0, os.path.dirname(__file__))
    import _ptx
    _ptx.install()

    def pytest_terminal_summary(terminalreporter):
        terminalreporter.write_line(f"PTX check: {len(_ptx.compiled)} kernel specialisations "
                                    f"compiled for sm_{_ptx.CC[0]}{_ptx.CC[1]}")
else:
    # The simulator runs a block's threads as Python threads and a polling thread that
    # releases them at each syncthreads; with the default 5 ms GIL switch interval every
    # barrier costs ~5 ms. A short interval made a mixer backward 5.7x faster (20.3 s ->
    # 3.6 s, measured on the 2-core development machine under load).
    sys.setswitchinterval(5e-5)
