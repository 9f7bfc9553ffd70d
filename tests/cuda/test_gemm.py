"""The CUDA backend's GEMM (the Numba tiled fallback under the simulator) against
np.matmul, with its transposed and batched variants, and its shape errors."""
import numpy as np
import pytest
from numba import cuda

from lucid.kernels.cpu import gemm as cpu_gemm
from lucid.kernels.cuda import gemm

from _twin import assert_close, runs_kernels

CASES = [  # (a shape, b shape, trans_a, trans_b)
    ((5, 7), (7, 6), False, False),      # sizes not multiples of the tile
    ((9, 4), (3, 4), False, True),       # x @ w.T (linear's forward)
    ((4, 6), (4, 5), True, False),       # g.T @ x (the weight gradient)
    ((2, 3, 5), (2, 5, 4), False, False),
    ((2, 3, 5), (5, 4), False, False),   # a 2-d b broadcasts over the batch
    ((1, 5, 3), (3, 2, 5), True, True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa, sb, ta, tb", CASES)
def test_matmul_matches_numpy(sa, sb, ta, tb, dtype):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    want = np.matmul(a.swapaxes(-1, -2) if ta else a, b.swapaxes(-1, -2) if tb else b)
    out = cuda.device_array(want.shape, dtype)
    gemm.matmul(cuda.to_device(a), cuda.to_device(b), out, trans_a=ta, trans_b=tb)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(out.copy_to_host(), want, rtol=tol, atol=tol)
    host_out = np.empty_like(want)
    cpu_gemm.matmul(a, b, host_out, trans_a=ta, trans_b=tb)
    np.testing.assert_allclose(host_out, want, rtol=tol, atol=tol)


@runs_kernels
def test_backend_is_the_tiled_fallback_on_the_simulator():
    assert gemm.backend_name() == "numba-tiled"


@runs_kernels
def test_shape_mismatch_is_refused():
    a, b = cuda.device_array((3, 4), np.float32), cuda.device_array((5, 2), np.float32)
    with pytest.raises(ValueError, match="inner sizes"):
        gemm.matmul(a, b, cuda.device_array((3, 2), np.float32))
    with pytest.raises(TypeError, match="host numpy array"):
        gemm.matmul(np.ones((3, 4), np.float32), b, cuda.device_array((3, 2), np.float32))
