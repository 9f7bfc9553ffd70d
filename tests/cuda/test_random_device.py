"""Random draws from keys on the device (kernels/cuda/random.py, lucid/_cuda_impls_random.py)
against NumPy's Philox and lucid.random's own CPU draws: the same words, the same values
(normals within a few ulp: the device's log/sqrt/cos/sin), dropout / drop_path masks,
values and gradients equal to the CPU's for the same key, and no device->host copy."""
import numpy as np
import pytest
from numba import cuda

import lucid
import lucid.nn.functional as F
from lucid import random as R
from lucid._sample_shard import sample_shard
from lucid.kernels.cuda import random as KR

from _count import device_to_host_copies
from _twin import assert_close, assert_equal, runs_kernels

SEEDS = [0, 123456789, 2**64 - 1]
U64 = np.uint64


def _philox(k64, k1, n, start=0):
    """NumPy's raw words start .. start + n of Philox(key=[k64, k1]): the oracle."""
    return np.random.Philox(key=np.array([k64, k1], U64)).random_raw(start + n)[start:]


# ------------------------------------------------------------- kernels (also PTX-checked)

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("domain, data", [(0, 0), (1, 7), (2, 0), (2, 2**32 - 1)])
@pytest.mark.parametrize("n, start", [(1, 0), (3, 0), (4, 0), (9, 0), (6, 5), (5, 4)])
def test_words_equal_numpy_philox(seed, domain, data, n, start):
    k1 = (domain << 32) | data
    out = cuda.to_device(np.zeros(n, U64))
    KR.words(cuda.to_device(R.key(seed)), k1, start, out)
    assert_equal(out.copy_to_host(), _philox(seed, k1, n, start))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_and_normal_kernels_equal_cpu(dtype):
    key = R.key(42)
    u = cuda.to_device(np.full(7, np.nan, dtype))
    KR.uniform(cuda.to_device(key), 2 << 32, 0, -1.5, 4.0, u)
    assert_equal(u.copy_to_host(), R.uniform(key, (7,), dtype, -1.5, 2.5))
    z = cuda.to_device(np.full(9, np.nan, dtype))
    KR.normal(cuda.to_device(key), 2 << 32, z)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    assert_close(z.copy_to_host(), R.normal(key, (9,), dtype), **tol)


def test_integer_kernels_equal_cpu():
    key = R.key(7)
    kd = cuda.to_device(key)
    b = cuda.to_device(np.zeros(10, np.bool_))
    KR.bernoulli(kd, 2 << 32, 0, 0.4, b)
    assert_equal(b.copy_to_host(), R.bernoulli(key, 0.4, (10,)))
    r = cuda.to_device(np.zeros(10, np.int64))
    KR.randint(kd, 2 << 32, -3, 11, r)
    assert_equal(r.copy_to_host(), R.randint(key, (10,), -3, 8))
    ks = cuda.to_device(np.zeros((3, 2), np.uint32))
    KR.keys(kd, 0, ks)
    assert_equal(ks.copy_to_host(), R.split(key, 3))


# ------------------------------------------------------------- lucid.random on device keys

def _dev(x):
    return lucid.device_put(x, "cuda")


def _eq(got, want):
    assert isinstance(got, lucid.DeviceArray)
    host = lucid.device_get(got)
    assert host.dtype == want.dtype and host.shape == want.shape
    np.testing.assert_array_equal(host, want)


@runs_kernels
@pytest.mark.parametrize("seed", SEEDS[1:])
def test_device_draws_equal_cpu_without_host_copies(seed):
    k = R.key(seed)
    kd = _dev(k)
    draws = [lambda k: R.bits(k, (2, 3)), lambda k: R.split(k, 3), lambda k: R.fold_in(k, 99),
             lambda k: R.uniform(k, (5,), np.float32),
             lambda k: R.uniform(k, (2, 3), np.float64, -2.0, 3.0),
             lambda k: R.uniform(k, (3,), np.float64, np.float32(0.1), np.float32(0.7)),
             lambda k: R.bernoulli(k, 0.25, (3, 3)), lambda k: R.bernoulli(k, 1.0, (2,)),
             lambda k: R.randint(k, (7,), -4, 9), lambda k: R.uniform(k, (0, 3))]
    with device_to_host_copies() as seen:
        got = [draw(kd) for draw in draws]
    assert seen == []
    for g, draw in zip(got, draws):
        _eq(g, draw(k))


@runs_kernels
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-6), (np.float64, 1e-13)])
def test_device_normal_close_to_cpu(dtype, tol):
    k = R.key(5)
    got = R.normal(_dev(k), (3, 5), dtype)
    want = R.normal(k, (3, 5), dtype)
    host = lucid.device_get(got)
    assert host.dtype == want.dtype and host.shape == want.shape
    np.testing.assert_allclose(host, want, rtol=tol, atol=tol)


@runs_kernels
def test_device_keys_split_and_fold_in_chain():
    """Keys made on the device are keys: a row of a device split, folded in, then drawn."""
    k = R.key(11)
    kd = _dev(k)
    with device_to_host_copies() as seen:
        sub = R.split(kd, 4)[2]
        assert R.is_key(sub)
        got = R.uniform(R.fold_in(sub, 3), (6,), np.float64)
    assert seen == []
    _eq(got, R.uniform(R.fold_in(R.split(k, 4)[2], 3), (6,), np.float64))


@runs_kernels
def test_device_key_errors():
    kd = _dev(R.key(1))
    for draw, name in [(lambda: R.permutation(kd, 5), "permutation"),
                       (lambda: R.truncated_normal(kd, -1.0, 1.0, (3,)), "truncated_normal")]:
        with pytest.raises(NotImplementedError, match=name):
            draw()
    with pytest.raises(ValueError, match="p must be in"):
        R.bernoulli(kd, 1.5, (2,))
    with pytest.raises(ValueError, match="num must be a positive int"):
        R.split(kd, 0)
    with pytest.raises(ValueError, match="data must be an int"):
        R.fold_in(kd, -1)
    with pytest.raises(ValueError, match="minval < maxval"):
        R.randint(kd, (2,), 3, 3)
    with pytest.raises(TypeError, match="minval must be a Python or NumPy scalar"):
        R.uniform(kd, (2,), np.float32, np.zeros(2), 1.0)
    with pytest.raises(TypeError, match="dtype float32 and shape"):
        R.uniform(_dev(np.zeros(2, np.float32)), (2,))


# ------------------------------------------------------------- dropout / drop_path

@runs_kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", [F.dropout, F.drop_path])
def test_dropout_and_drop_path_values_and_gradients_equal_cpu(fn, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 2, 3)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    k = R.key(21)

    def f(x, key):
        return fn(x, 0.4, key)

    want, vjp_cpu = lucid.vjp(lambda x: f(x, k), x)
    xd, gd, kd = _dev((x, g, k))
    with device_to_host_copies() as seen:
        got, vjp_dev = lucid.vjp(lambda x: f(x, kd), xd)
        grad = vjp_dev(gd)[0]
    assert seen == []
    assert 0 < np.count_nonzero(want) < x.size     # the mask keeps some, drops some
    _eq(got, want)
    _eq(grad, vjp_cpu(g)[0])


@runs_kernels
@pytest.mark.parametrize("fn", [F.dropout, F.drop_path])
def test_masks_inside_sample_shard_are_rows_of_the_global_draw(fn):
    x = np.random.default_rng(4).standard_normal((7, 3)).astype(np.float32)
    k = R.key(8)
    xd, kd = _dev((x[2:5], k))
    with sample_shard(2, 7):
        got = fn(xd, 0.5, kd)
    _eq(got, fn(x, 0.5, k)[2:5])
    with sample_shard(5, 7), pytest.raises(ValueError, match="sample_shard"):
        fn(xd, 0.5, kd)


@runs_kernels
def test_dropout_refuses_a_strided_device_view():
    xd = _dev(np.ones((4, 6), np.float32))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        F.dropout(xd, 0.5, _dev(R.key(0)))
