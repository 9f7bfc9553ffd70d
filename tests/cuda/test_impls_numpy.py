"""lucid.numpy on device arrays (``lucid/_cuda_impls_numpy.py``) against the same code on
the CPU: every primitive's values and its ``lucid.vjp`` gradients, float32 and float64,
with no device->host copy inside the computation (tests/cuda/_count.py)."""
import contextlib

import numpy as np
import pytest

import lucid
import lucid.numpy as lnp
from lucid.numpy._binary import add_int

from _count import device_to_host_copies
from _ptx import ENABLED as PTX_ONLY
from _twin import assert_close, assert_equal, runs_kernels

DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True, scope="module")
def _device_in_ptx_mode():
    """In PTX mode there is no (simulated) GPU: stand a host-backed cuda:0 in for it, so
    the same lucid code runs and every kernel it starts is compiled instead."""
    if not PTX_ONLY:
        yield
        return
    from numba import cuda
    from lucid import _device as D
    from _ptx import HostStandIn

    class _Shim:
        gpus = {0: contextlib.nullcontext()}

        def __getattr__(self, name):
            return getattr(cuda, name)

    if not hasattr(HostStandIn, "copy_to_device"):   # _cuda_impls._into's device copy
        HostStandIn.copy_to_device = lambda self, src, *a, **k: np.copyto(self, src)
    saved = D.devices, D._to_device, D._cuda
    D.devices = lambda platform=None: [D.CPU, D.Device("cuda", 0)]
    D._to_device = lambda x, device: (D._install_impls(), D.DeviceArray(
        np.array(x, order="C").view(HostStandIn), device))[1]   # (0-d stays 0-d)
    D._cuda = lambda: _Shim()
    yield
    D.devices, D._to_device, D._cuda = saved


def _tol(dtype):
    return dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


def _compare(got, want, tol):
    got, want = lucid.tree.leaves(got), lucid.tree.leaves(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(w, np.ndarray):
            assert isinstance(g, lucid.DeviceArray), type(g)
            assert g.shape == w.shape and g.dtype == w.dtype, (g, w.shape, w.dtype)
            assert_close(lucid.device_get(g), w, **tol)
        else:
            assert g == w


def check(f, *args, dtype=np.float64, grad=True, seed=0):
    """``f(*args)`` and (with ``grad``) its vjp with a random cotangent, on the CPU and on
    the device: equal values, device results, and no device->host copy on the device."""
    tol = _tol(dtype)
    dev_args = lucid.device_put(args, "cuda")
    if not grad:
        want = f(*args)
        with device_to_host_copies() as seen:
            got = f(*dev_args)
        assert seen == []
        _compare(got, want, tol)
        return want
    want, vjp_fn = lucid.vjp(f, *args)
    rng = np.random.default_rng(seed)
    cts = lucid.tree.map(lambda o: rng.standard_normal(o.shape).astype(o.dtype), want)
    want_grads = vjp_fn(cts)
    dev_cts = lucid.device_put(cts, "cuda")
    with device_to_host_copies() as seen:
        got, dev_vjp = lucid.vjp(f, *dev_args)
        got_grads = dev_vjp(dev_cts)
    assert seen == []
    _compare(got, want, tol)
    _compare(got_grads, want_grads, tol)
    return want


def _x(shape, dtype, seed=0, lo=None):
    rng = np.random.default_rng(seed)
    if lo is not None:
        return (lo + 2 * rng.random(shape)).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------- elementwise

UNARY = ["abs", "exp", "log", "sqrt", "tanh", "erf", "square", "negative"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", UNARY)
def test_unary_values_and_gradients(name, dtype):
    x = _x((3, 5), dtype, lo=0.1 if name in ("log", "sqrt") else None)
    if name == "abs":
        x[0, :2] = 0   # abs's gradient at 0 is +g (JAX)
    check(getattr(lnp, name), x, dtype=dtype)


BINARY = ["subtract", "divide", "power", "maximum", "minimum"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", BINARY)
def test_binary_broadcasting_values_and_gradients(name, dtype):
    x = _x((2, 3, 4), dtype, lo=0.5 if name == "power" else None)
    y = _x((3, 1), dtype, seed=1, lo=0.5 if name in ("power", "divide") else None)
    if name in ("maximum", "minimum"):   # ties split the gradient evenly
        x, y = np.round(x), np.round(y)
    check(getattr(lnp, name), x, y, dtype=dtype)
    check(lambda a: getattr(lnp, name)(a, 2.0), x, dtype=dtype)     # a weak Python scalar
    check(lambda b: getattr(lnp, name)(1.5, b), y, dtype=dtype)


def test_binary_of_more_than_four_interleaved_broadcast_dims():
    x, y = _x((2, 1, 3, 1, 2, 1), np.float64), _x((1, 2, 1, 3, 1, 2), np.float64, seed=1)
    check(lnp.subtract, x, y)
    check(lnp.maximum, x, y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_where_and_clip(dtype):
    x, y = _x((3, 4), dtype), _x((4,), dtype, seed=1)
    check(lambda a, b: lnp.where(lnp.greater(a, b), a, b), x, y, dtype=dtype)
    check(lambda a: lnp.where(a > 0, a, 0.0), x, dtype=dtype)
    check(lambda a: lnp.clip(a, -0.5, 0.5), x, dtype=dtype)
    c = np.array([[1, 0, 2, 0]] * 3, np.int64)      # an eager condition, not bool
    check(lambda c, a, b: lnp.where(c, a, b), c, x, y, dtype=dtype, grad=False)
    check(lambda c, a, b: lnp.where(c, a, b), c != 0, x, y, dtype=dtype, grad=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nn_activations_built_as_flat_primitives(dtype):
    import lucid.nn.functional as F
    x = _x((3, 4), dtype)
    x[0, 0] = 0
    check(F.relu, x, dtype=dtype)
    check(lambda a: F.gelu(a, approximate="tanh"), x, dtype=dtype)


@pytest.mark.parametrize("name", ["less", "less_equal", "greater", "greater_equal", "equal",
                                  "not_equal", "logical_and", "logical_or", "logical_xor"])
def test_comparisons(name):
    x, y = np.round(_x((2, 3, 4), np.float32)), np.round(_x((3, 1), np.float32, seed=1))
    op = getattr(lnp, name)
    check(op, x, y, grad=False)
    check(lambda a: op(a, 0.0), x, grad=False)
    check(op, x > 0, y > 0, grad=False)
    check(lambda k: op(k, 2), np.array([0, 2, 5, 2]), grad=False)   # integer labels


def test_logical_not_and_add_int():
    check(lnp.logical_not, np.array([[True, False], [False, False]]), grad=False)
    for dtype in (np.int64, np.int32):
        out = check(lambda n: add_int(n, 3), np.array([1, -2, 7], dtype), grad=False)
        assert out.dtype == dtype


def test_astype_both_ways():
    check(lambda a: lnp.astype(a, np.float64) * 3.0, _x((2, 3), np.float32), dtype=np.float32)
    check(lambda a: lnp.astype(a, np.float32), _x((2, 3), np.float64), dtype=np.float32)


# ----------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("dtype", DTYPES)
def test_reshape_transpose_broadcast_to(dtype):
    x = _x((2, 3, 4), dtype)
    check(lambda a: lnp.reshape(a, (4, -1)) * 2.0, x, dtype=dtype)
    check(lambda a: lnp.transpose(a, (2, 0, 1)), x, dtype=dtype)
    check(lambda a: lnp.broadcast_to(a[:, :1], (5, 2, 3, 4)), x, dtype=dtype)
    check(lambda a: lnp.squeeze(lnp.expand_dims(a, (0, 2)), 0), x, dtype=dtype)
    check(lambda a: lnp.ravel(a), x, dtype=dtype)


@runs_kernels
def test_reshape_is_a_device_view():
    xd = lucid.device_put(_x((2, 6), np.float32), "cuda")
    y = lnp.reshape(xd, (3, 4))
    assert isinstance(y, lucid.DeviceArray) and y.shape == (3, 4)
    assert y.__cuda_array_interface__["data"][0] == xd.__cuda_array_interface__["data"][0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_concatenate_stack_split(dtype):
    a, b, c = _x((2, 3, 2), dtype), _x((2, 1, 2), dtype, 1), _x((2, 4, 2), dtype, 2)
    check(lambda a, b, c: lnp.concatenate([a, b, c], axis=1), a, b, c, dtype=dtype)
    check(lambda a, b: lnp.concatenate([a, b], axis=None), a, b, dtype=dtype)
    check(lambda a, c: lnp.stack([a[:, :2], c[:, 1:3]], axis=-1), a, c, dtype=dtype)
    check(lambda c: lnp.split(c, 2, axis=1), c, dtype=dtype)
    check(lambda c: lnp.split(c, [1, 3], axis=1)[0::2], c, dtype=dtype)  # a piece unused
    check(lambda c: lnp.split(c, [3, 1], axis=1), c, dtype=dtype)        # overlapping pieces


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad_and_its_backward(dtype):
    x = _x((2, 3, 2), dtype)
    check(lambda a: lnp.pad(a, ((0, 1), (2, 0), (1, 1)), constant_values=-1.5), x, dtype=dtype)
    check(lambda a: lnp.pad(a, 1), x, dtype=dtype)


# ----------------------------------------------------------------------------- reductions

AXES = [None, 0, -1, (0, 2), (1,)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", AXES)
def test_sum_mean_max_min_var(axis, dtype):
    x = _x((3, 4, 5), dtype)
    x[1, 2, :2] = x[1, 2, 3]   # ties in max/min: the gradient is split among them
    for keepdims in (False, True):
        check(lambda a: lnp.sum(a, axis, keepdims), x, dtype=dtype)
        check(lambda a: lnp.max(a, axis, keepdims), x, dtype=dtype)
    check(lambda a: lnp.mean(a, axis), x, dtype=dtype)
    check(lambda a: lnp.min(a, axis), x, dtype=dtype)
    check(lambda a: lnp.var(a, axis, ddof=1), x, dtype=dtype)


def test_reductions_of_empty_and_zero_d_arrays():
    check(lambda a: lnp.sum(a, 0), np.zeros((0, 3)))
    check(lambda a: lnp.sum(a) * 2.0, np.float64(1.5) * np.ones(()))


# ----------------------------------------------------------------------------- indexing

BASIC = [(1, slice(None), 2), (slice(None, None, -2), Ellipsis), (Ellipsis, None, 1),
         (slice(1, 3), None, slice(4, 0, -3)), (-1,), (slice(None), 1, slice(1, None))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index", BASIC, ids=range(len(BASIC)))
def test_basic_indexing(index, dtype):
    check(lambda a: lnp.getitem(a, index), _x((3, 4, 5), dtype), dtype=dtype)


I = np.array
ADVANCED = [(I([2, 0, 2]),), (slice(None), I([[1, 1], [3, 0]])),
            (I([0, 2]), slice(1, 3), I([4, 1])),      # arrays apart: their dims go first
            (I([0, 2]), I([[1], [3]])), (1, I([0, -1, 0])), (Ellipsis, I([1, 1]), None),
            (I([[True, False, True, True], [False] * 4, [True] * 4]),)]


@pytest.mark.parametrize("index", ADVANCED, ids=range(len(ADVANCED)))
def test_advanced_indexing_and_its_scatter_add(index):
    check(lambda a: lnp.getitem(a, index), _x((3, 4, 5), np.float64))


def test_take_and_device_index_arrays():
    x = _x((4, 5), np.float64)
    check(lambda a: lnp.take(a, I([3, 0, 3]), axis=1), x)
    check(lambda a: lnp.take(a, I([[7, 19], [0, 7]])), x)
    check(lambda a, k: lnp.getitem(a, (k, slice(None, 2))), x, I([1, 3, 1]))  # k on device
    xd, kd = lucid.device_put((x, I([2, -1, 7])), "cuda")   # out of bounds: clamped (JAX)
    assert_equal(lucid.device_get(lnp.take(xd, kd, axis=1)), x[:, [2, 4, 4]])


def test_device_index_errors_name_what_is_wrong():
    xd, md = lucid.device_put((np.ones((2, 3)), I([True, False])), "cuda")
    with pytest.raises(TypeError, match="must hold integers.*bool"):
        lnp.getitem(xd, md)
    with pytest.raises(IndexError, match="out of bounds"):
        lnp.getitem(xd, I([0, 2]))   # a host index is still checked
    nine = lucid.device_put(np.ones((1,) * 9), "cuda")
    with pytest.raises(NotImplementedError, match="9 index arrays.*handles 8"):
        lnp.getitem(nine, (I([0]),) * 9)


# ----------------------------------------------------------------------------- matmul

MATMUL = [((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2)),
          ((4,), (4, 3)), ((2, 3, 4), (4,)), ((4,), (4,))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sa, sb", MATMUL, ids=range(len(MATMUL)))
def test_matmul_values_and_gradients(sa, sb, dtype):
    check(lnp.matmul, _x(sa, dtype), _x(sb, dtype, 1), dtype=dtype)


def test_dot_and_a_product_with_itself():
    a, b = _x((2, 3), np.float64), _x((4, 3, 2), np.float64, 1)
    check(lnp.dot, a, b)
    check(lambda a: lnp.matmul(a, lnp.transpose(a)), a)


# ----------------------------------------------------------------------------- the rest

def test_stop_gradient_is_a_view_without_gradient():
    x = _x((2, 3), np.float64)
    check(lambda a: a * lucid.stop_gradient(a), x)


def test_creation_like_device_arrays_stays_on_the_device():
    x = _x((2, 3), np.float32)
    check(lambda a: (lnp.zeros_like(a), lnp.ones_like(a, np.float64), lnp.full_like(a, 2.5)),
          x, grad=False)
    check(lambda a: a * lnp.full_like(a, 3.0), x, dtype=np.float32)   # under grad, too
    xd = lucid.device_put(x, "cuda")
    assert lnp.asarray(xd) is xd
    y = lnp.array(xd, np.float64)
    assert isinstance(y, lucid.DeviceArray) and y.dtype == np.float64
    assert_close(lucid.device_get(y), x.astype(np.float64))


@runs_kernels
def test_host_scalars_go_to_the_device_host_arrays_do_not():
    xd = lucid.device_put(np.ones((2, 3), np.float32), "cuda")
    y = lnp.multiply(xd, np.float32(2))            # a NumPy scalar: goes with the arrays
    assert isinstance(y, lucid.DeviceArray)
    assert_equal(lucid.device_get(y), np.full((2, 3), 2, np.float32))
    with pytest.raises(ValueError, match="two devices"):
        lnp.add(xd, np.ones(3, np.float32))


def test_a_small_mlp_loss_written_in_lucid_numpy():
    """matmul, tanh, max, exp, log, sum, a gather of the labels and an L2 term, together."""
    rng = np.random.default_rng(0)
    p = {"w1": _x((5, 8), np.float32), "b1": np.zeros(8, np.float32), "w2": _x((8, 3), np.float32, 1)}

    def loss(p, x, y):
        z = lnp.matmul(lnp.tanh(lnp.matmul(x, p["w1"]) + p["b1"]), p["w2"])
        z = z - lnp.max(z, axis=1, keepdims=True)
        nll = lnp.log(lnp.sum(lnp.exp(z), axis=1)) - z[lnp.arange(6), y]
        return lnp.mean(nll) + 1e-3 * sum(lnp.sum(lnp.square(v)) for v in p.values())

    check(loss, p, _x((6, 5), np.float32, 2), rng.integers(0, 3, 6), dtype=np.float32)
