"""lucid.set_num_threads caps Numba's pool and the BLAS behind np.matmul (threadpoolctl)."""
import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import lucid


def _blas_threads():
    return {p["internal_api"]: p["num_threads"] for p in threadpool_info()
            if p["user_api"] == "blas"}


def test_set_num_threads_sets_numba_and_blas():
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    before_numba, before_blas = numba.get_num_threads(), max(_blas_threads().values())
    try:
        lucid.set_num_threads(1)
        assert numba.get_num_threads() == 1
        assert _blas_threads() and set(_blas_threads().values()) == {1}
    finally:
        lucid.set_num_threads(max(before_numba, before_blas))
    with pytest.raises(ValueError, match="positive int"):
        lucid.set_num_threads(0)
