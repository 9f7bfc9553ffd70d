"""Operators and array methods on DeviceArrays run on the device (through lucid.numpy),
equal to NumPy on the host arrays, with no device->host copy; NumPy ufuncs without a
lucid twin and host/device mixes raise instead of copying silently."""
import numpy as np
import pytest

import lucid

from _count import device_to_host_copies  # noqa: E402
from _twin import runs_kernels  # noqa: E402

pytestmark = runs_kernels


def test_operators_and_methods_on_device_arrays_equal_numpy():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    xd, wd = lucid.device_put((x, w), "cuda")
    cases = {
        "arith": (lambda a: ((a + 1) * a - 2) / 3 + 2.0 ** a, lambda a: ((a + 1) * a - 2) / 3 + 2.0 ** a),
        "neg_abs": (lambda a: abs(-a), lambda a: abs(-a)),
        "compare": (lambda a: a > 0, lambda a: a > 0),
        "transpose_sum": (lambda a: a.T.sum(0), lambda a: a.T.sum(0)),
        "mean_max": (lambda a: a.mean() + a.max(1), lambda a: a.mean() + a.max(1)),
        "ufunc": (np.exp, np.exp),
    }
    with device_to_host_copies() as seen:
        got = {k: f(xd) for k, (f, _) in cases.items()}
        got["matmul"] = xd @ wd
    assert seen == []
    for k, (_, ref) in cases.items():
        assert isinstance(got[k], lucid.DeviceArray), k
        np.testing.assert_allclose(lucid.device_get(got[k]), ref(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lucid.device_get(got["matmul"]), x @ w, rtol=1e-5, atol=1e-5)


def test_numpy_without_a_device_twin_and_mixing_raise():
    x = np.ones((2, 2), np.float32)
    xd = lucid.device_put(x, "cuda")
    with pytest.raises(TypeError, match="np.sin of a lucid.DeviceArray.*lucid.numpy"):
        np.sin(xd)
    with pytest.raises(ValueError, match="two devices"):
        x + xd
