"""Fused ops (F.scale_residual, F.bias_gelu through F) and the pjit grain-size dispatch."""
import numpy as np
import pytest

import lucid
import lucid.nn.functional as F
from lucid.kernels.cpu import _common, fused
from tests.gradcheck import check_vjp

DTYPES = [np.float32, np.float64]
# (rows, channels): below and above the parallel grain (32768 elements).
SHAPES = [(1, 1), (3, 5), (64, 16), (300, 128)]


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_scale_residual_kernels_match_numpy(shape, dtype):
    rng = np.random.default_rng(0)
    x, y, g = (_rand(rng, shape, dtype) for _ in range(3))
    gamma = _rand(rng, shape[-1:], dtype)
    out = np.empty_like(x)
    fused.scale_residual_fwd(x, y, gamma, out)
    np.testing.assert_array_equal(out, x + y * gamma)   # the same two roundings
    gy, gg = np.empty_like(y), np.empty_like(gamma)
    fused.scale_residual_bwd(g, y, gamma, gy, gg)
    np.testing.assert_array_equal(gy, g * gamma)
    want = (g.astype(np.float64) * y.astype(np.float64)).sum(axis=0)
    np.testing.assert_allclose(gg, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_residual_equals_unfused(dtype):
    rng = np.random.default_rng(1)
    x, y = _rand(rng, (2, 3, 4, 8), dtype), _rand(rng, (2, 3, 4, 8), dtype)
    gamma = _rand(rng, (8,), dtype)
    out = F.scale_residual(x, y, gamma)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_array_equal(out, lucid.numpy.add(x, lucid.numpy.multiply(y, gamma)))


def test_scale_residual_vjp():
    rng = np.random.default_rng(2)
    args = (rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 5)), rng.standard_normal(5))
    check_vjp(F.scale_residual, args)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_bias_scale_residual_kernels_match_numpy(shape, dtype):
    rng = np.random.default_rng(5)
    x, y, g = (_rand(rng, shape, dtype) for _ in range(3))
    gamma, b = _rand(rng, shape[-1:], dtype), _rand(rng, shape[-1:], dtype)
    out = np.empty_like(x)
    fused.bias_scale_residual_fwd(x, y, b, gamma, out)
    np.testing.assert_array_equal(out, x + (y + b) * gamma)   # the same three roundings
    gy, gg, gb = np.empty_like(y), np.empty_like(gamma), np.empty_like(b)
    fused.bias_scale_residual_bwd(g, y, b, gamma, gy, gg, gb)
    np.testing.assert_array_equal(gy, g * gamma)
    tol = dict(rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    g64 = g.astype(np.float64)
    np.testing.assert_allclose(gg, (g64 * (y + b).astype(np.float64)).sum(axis=0), **tol)
    np.testing.assert_allclose(gb, (g * gamma).astype(np.float64).sum(axis=0), **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_residual_with_bias_equals_unfused(dtype):
    rng = np.random.default_rng(6)
    x, y = _rand(rng, (2, 3, 4, 8), dtype), _rand(rng, (2, 3, 4, 8), dtype)
    gamma, b = _rand(rng, (8,), dtype), _rand(rng, (8,), dtype)
    out = F.scale_residual(x, y, gamma, b)
    lnp = lucid.numpy
    np.testing.assert_array_equal(out, lnp.add(x, lnp.multiply(lnp.add(y, b), gamma)))
    args = tuple(rng.standard_normal(s) for s in [(2, 3, 5), (2, 3, 5), (5,), (5,)])
    check_vjp(F.scale_residual, args)


def test_scale_residual_rejects_bad_bias():
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"scale_residual: b must have shape \(4,\)"):
        F.scale_residual(x, x, np.zeros(4, np.float32), np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="scale_residual: all arrays must share one dtype"):
        F.scale_residual(x, x, np.zeros(4, np.float32), np.zeros(4, np.float64))


def test_bias_gelu_is_in_F_and_matches_unfused():
    rng = np.random.default_rng(3)
    h, b = _rand(rng, (4, 6), np.float32), _rand(rng, (6,), np.float32)
    np.testing.assert_array_equal(F.bias_gelu(h, b), F.gelu(F.linear(h, np.eye(6, dtype=np.float32), b)))
    check_vjp(F.bias_gelu, (rng.standard_normal((3, 4)), rng.standard_normal(4)))


def test_scale_residual_rejects_shape_mismatch():
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="scale_residual: x and y must have the same shape"):
        F.scale_residual(x, np.zeros((2, 3), np.float32), np.zeros(4, np.float32))


def test_scale_residual_rejects_bad_gamma():
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"scale_residual: gamma must have shape \(4,\)"):
        F.scale_residual(x, x, np.zeros(3, np.float32))


def test_scale_residual_rejects_mixed_dtypes():
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(TypeError, match="scale_residual: all arrays must share one dtype"):
        F.scale_residual(x, x.astype(np.float64), np.zeros(4, np.float32))


def test_scale_residual_rejects_int():
    x = np.zeros((2, 4), np.int64)
    with pytest.raises(TypeError, match="scale_residual: x must be a float32 or float64 array"):
        F.scale_residual(x, x, np.zeros(4, np.float32))


def test_pjit_builds_a_serial_twin_with_its_own_cache_name():
    k = fused.scale_residual_fwd
    assert isinstance(k, _common.GrainDispatcher)
    assert k.parallel.targetoptions.get("parallel") is True
    assert not k.serial.targetoptions.get("parallel")
    assert k.serial.py_func.__qualname__ == k.parallel.py_func.__qualname__ + "_serial"


@pytest.mark.parametrize("variant", ["serial", "parallel"])
def test_pjit_variants_agree(variant):
    rng = np.random.default_rng(4)
    x, y = _rand(rng, (7, 3), np.float64), _rand(rng, (7, 3), np.float64)
    gamma = _rand(rng, (3,), np.float64)
    out = np.empty_like(x)
    getattr(fused.scale_residual_fwd, variant)(x, y, gamma, out)
    np.testing.assert_array_equal(out, x + y * gamma)


def test_pjit_picks_the_variant_by_work_size(monkeypatch):
    calls = []
    k = _common.GrainDispatcher(fused.scale_residual_fwd.py_func, grain=10)
    monkeypatch.setattr(k, "_serial", lambda *a: calls.append("serial"))
    monkeypatch.setattr(k, "_parallel", lambda *a: calls.append("parallel"))
    small, big = np.zeros((3, 3)), np.zeros((4, 3))
    k(small, small, np.zeros(3), small)
    k(big, big, np.zeros(3), big)
    assert calls == ["serial", "parallel"]


@pytest.mark.parametrize("given, want", [({}, "1000"), ({"GOMP_SPINCOUNT": "7"}, "7"),
                                         ({"OMP_WAIT_POLICY": "ACTIVE"}, "unset")])
def test_kernels_shorten_openmp_spinning_unless_the_user_chose(given, want):
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(given)
    code = ("import os, lucid.kernels.cpu._common; "
            "print(os.environ.get('GOMP_SPINCOUNT', 'unset'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == want
