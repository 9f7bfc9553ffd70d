"""softmax, log_softmax, cross_entropy vs NumPy oracles (PyTorch's formulas), VJPs, bad inputs."""
import numpy as np
import pytest

import lucid
from lucid.kernels.cpu import softmax as KS
from lucid.nn import functional as F
from gradcheck import check_vjp

DTYPES = [np.float32, np.float64]


def _randn(shape, dtype=np.float64, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _tol(dtype):
    return dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


def log_softmax_ref(x, axis=-1):
    x = np.asarray(x, np.float64)
    if x.size == 0:
        return x
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


def cross_entropy_ref(logits, labels, smoothing=0.0, reduction="mean"):
    """PyTorch's F.cross_entropy written out: target = (1 - s) * onehot + s / K."""
    logp = log_softmax_ref(logits)
    n, k = logp.shape
    if labels.dtype.kind in "iu":
        target = np.zeros((n, k))
        target[np.arange(n), labels] = 1.0
    else:
        target = np.asarray(labels, np.float64)
    target = (1 - smoothing) * target + smoothing / k
    loss = -(target * logp).sum(1)
    mean = loss.mean() if n else np.nan  # PyTorch: the mean over an empty batch is NaN
    return {"mean": mean, "sum": loss.sum(), "none": loss}[reduction]


SHAPES = [((4, 7), -1), ((3, 5, 6), 1), ((2, 3, 4), 0), ((9,), 0), ((5, 1), -1), ((2, 0), -1)]


@pytest.mark.parametrize("shape,axis", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_and_log_softmax_match_oracle(shape, axis, dtype):
    x = _randn(shape, dtype, scale=3.0)
    ref = log_softmax_ref(x, axis)
    y, ly = F.softmax(x, axis=axis), F.log_softmax(x, axis=axis)
    assert y.dtype == ly.dtype == dtype and y.shape == ly.shape == shape
    np.testing.assert_allclose(y, np.exp(ref), **_tol(dtype))
    np.testing.assert_allclose(ly, ref, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_is_stable_for_huge_logits(dtype):
    x = np.array([[1000.0, 0.0, -1000.0], [-1e30, -1e30, -1e30]], dtype)
    np.testing.assert_allclose(F.softmax(x), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-7)
    np.testing.assert_allclose(F.log_softmax(x)[0], [0, -1000, -2000], rtol=1e-6)


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
@pytest.mark.parametrize("shape,axis", [((3, 5), -1), ((2, 4, 3), 1)])
def test_softmax_vjp(fn, shape, axis):
    check_vjp(lambda x: fn(x, axis=axis), [_randn(shape, scale=2.0)])


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_float32_grads_match_float64(fn):
    x, g = _randn((6, 9), scale=2.0), _randn((6, 9), seed=1)
    g64 = lucid.vjp(fn, x)[1](g)[0]
    g32 = lucid.vjp(fn, x.astype(np.float32))[1](g.astype(np.float32))[0]
    np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-6)


def test_softmax_bad_axis():
    with pytest.raises(ValueError, match="softmax: axis 3 is out of range"):
        F.softmax(np.ones((2, 3), np.float32), axis=3)


def test_log_softmax_scalar_rejected():
    with pytest.raises(ValueError, match="log_softmax: x must have at least 1 dimension"):
        F.log_softmax(np.float32(1.0))


# ---- cross entropy ----

@pytest.mark.parametrize("n,k", [(5, 4), (1, 10), (70, 3), (0, 3)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_int_labels(n, k, dtype, smoothing, reduction):
    x = _randn((n, k), dtype, scale=2.0)
    labels = np.random.default_rng(1).integers(0, k, n)
    loss = F.cross_entropy(x, labels, label_smoothing=smoothing, reduction=reduction)
    ref = cross_entropy_ref(x, labels, smoothing, reduction)
    assert loss.dtype == dtype and loss.shape == np.shape(ref)
    np.testing.assert_allclose(loss, ref, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_soft_labels(dtype, smoothing):
    x = _randn((6, 5), dtype, scale=2.0)
    t = np.random.default_rng(1).dirichlet(np.ones(5), 6).astype(dtype)
    ref = cross_entropy_ref(x, t, smoothing, "none")
    np.testing.assert_allclose(F.cross_entropy(x, t, smoothing, "none"), ref, **_tol(dtype))


def test_cross_entropy_grad_is_softmax_minus_target():
    x = _randn((4, 6), np.float32)
    labels = np.array([0, 5, 2, 2])
    g = lucid.grad(lambda x: F.cross_entropy(x, labels, label_smoothing=0.1))(x)
    target = np.full((4, 6), 0.1 / 6)
    target[np.arange(4), labels] += 0.9
    np.testing.assert_allclose(g, (np.exp(log_softmax_ref(x)) - target) / 4, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_vjp_int_labels(reduction, smoothing):
    labels = np.array([1, 0, 3, 3, 2])
    f = lambda x: F.cross_entropy(x, labels, smoothing, reduction)  # noqa: E731
    check_vjp(f, [_randn((5, 4), scale=2.0)])


def test_cross_entropy_vjp_soft_labels():
    t = np.random.default_rng(1).dirichlet(np.ones(4), 3)
    check_vjp(lambda x, t: F.cross_entropy(x, t, 0.1), [_randn((3, 4)), t])


def test_cross_entropy_kernel_saves_logsumexp():
    x = _randn((3, 4), np.float32)
    loss, lse = np.empty(3), np.empty(3)
    KS.cross_entropy_fwd(x, np.array([0, 1, 3]), 0.0, loss, lse)
    np.testing.assert_allclose(lse, np.log(np.exp(x.astype(np.float64)).sum(1)), rtol=1e-6)


def test_cross_entropy_label_out_of_range():
    with pytest.raises(ValueError, match=r"cross_entropy: labels must be in \[0, 3\).*\[-1, 3\]"):
        F.cross_entropy(np.zeros((4, 3), np.float32), np.array([0, 3, -1, 2]))


def test_cross_entropy_label_shape():
    with pytest.raises(ValueError, match="cross_entropy: integer labels must have shape \\(4,\\)"):
        F.cross_entropy(np.zeros((4, 3), np.float32), np.array([0, 1]))


def test_cross_entropy_soft_label_shape():
    with pytest.raises(ValueError, match="cross_entropy: float labels .* must have the logits"):
        F.cross_entropy(np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32))


def test_cross_entropy_bool_labels():
    with pytest.raises(TypeError, match="cross_entropy: labels must be integer class indices"):
        F.cross_entropy(np.zeros((2, 3), np.float32), np.array([True, False]))


def test_cross_entropy_logits_rank():
    with pytest.raises(ValueError, match="cross_entropy: logits must be 2-D"):
        F.cross_entropy(np.zeros(3, np.float32), np.array([0]))


def test_cross_entropy_bad_reduction():
    with pytest.raises(ValueError, match="cross_entropy: reduction must be"):
        F.cross_entropy(np.zeros((2, 3), np.float32), np.array([0, 1]), reduction="avg")


def test_cross_entropy_bad_smoothing():
    with pytest.raises(ValueError, match="cross_entropy: label_smoothing must be in"):
        F.cross_entropy(np.zeros((2, 3), np.float32), np.array([0, 1]), label_smoothing=1.5)


def test_cross_entropy_mixed_dtypes():
    with pytest.raises(TypeError, match="cross_entropy: all arrays must share one dtype"):
        F.cross_entropy(np.zeros((2, 3), np.float32), np.full((2, 3), 1 / 3))
