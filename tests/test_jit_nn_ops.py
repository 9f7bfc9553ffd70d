"""lucid.jit against eager lucid for every lucid.nn.functional primitive: values and
gradients (w.r.t. every float argument), float32 and float64, first call and replay.
The same kernels run in both, so the results must be bitwise equal."""
import numpy as np
import pytest

import lucid
import lucid.numpy as lnp
import lucid.nn.functional as F

KEY = lucid.random.key(3)


def _r(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def cases(dtype):
    rng = np.random.default_rng(0)
    r = lambda *s: _r(rng, s, dtype)  # noqa: E731
    pos = lambda *s: (rng.random(s) + 0.5).astype(dtype)  # noqa: E731
    yield "conv_depthwise", lambda x, w, b: F.conv2d(x, w, b, padding=3, groups=4), (r(2, 4, 9, 9), r(4, 1, 7, 7), r(4))
    yield "conv_depthwise_s2_nhwc", lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=4, data_format="NHWC"), (r(2, 9, 9, 4), r(4, 1, 3, 3))
    yield "conv_pointwise", lambda x, w, b: F.conv2d(x, w, b), (r(2, 3, 5, 5), r(6, 3, 1, 1), r(6))
    yield "conv_patchify", lambda x, w, b: F.conv2d(x, w, b, stride=2), (r(2, 3, 8, 8), r(5, 3, 2, 2), r(5))
    yield "conv_general", lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=2), (r(2, 4, 7, 7), r(6, 2, 3, 3))
    yield "inception", lambda x, a, c, d, e, f, g: F.inception_dwconv2d(x, a, c, d, e, f, g, data_format="NHWC"), (
        r(2, 9, 9, 16), r(2, 1, 3, 3), r(2), r(2, 1, 1, 11), r(2), r(2, 1, 11, 1), r(2))
    yield "linear", lambda x, w, b: F.linear(x, w, b), (r(3, 4, 6), r(5, 6), r(5))
    yield "layer_norm", lambda x, w, b: F.layer_norm(x, w, b, axis=-1), (r(4, 3, 8), r(8), r(8))
    yield "layer_norm_2d", lambda x, w, b: F.layer_norm(x, w, b, axis=1), (r(2, 8, 3, 3), r(8), r(8))
    rv = pos(3)
    yield "batch_norm_eval", lambda x, w, b: F.batch_norm(x, np.zeros(3, dtype) + 0.1, rv, w, b), (r(4, 3, 5, 5), r(3), r(3))
    yield "batch_norm_train", lambda x, w, b: F.batch_norm(x, np.zeros(3, dtype), np.ones(3, dtype), w, b, train=True, axis=-1), (r(4, 5, 3), r(3), r(3))
    yield "relu", F.relu, (r(5, 7),)
    yield "gelu", F.gelu, (r(5, 7),)
    yield "gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), (r(5, 7),)
    yield "bias_gelu", F.bias_gelu, (r(5, 7), r(7))
    yield "scale_residual", F.scale_residual, (r(5, 7), r(5, 7), r(7))
    yield "bias_scale_residual", F.scale_residual, (r(5, 7), r(5, 7), r(7), r(7))
    yield "dropout", lambda x: F.dropout(x, 0.3, KEY), (r(6, 8),)
    yield "drop_path", lambda x: F.drop_path(x, 0.5, KEY), (r(6, 2, 3),)
    yield "global_avg_pool", lambda x: F.global_avg_pool(x), (r(2, 3, 4, 5),)
    yield "adaptive_avg_pool", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), (r(2, 3, 5, 7),)
    yield "softmax", lambda x: F.softmax(x, axis=-1), (r(4, 6),)
    yield "log_softmax", lambda x: F.log_softmax(x, axis=0), (r(4, 6),)
    yield "cross_entropy", lambda x: F.cross_entropy(x, np.array([0, 5, 2, 1]), label_smoothing=0.1), (r(4, 6),)
    yield "cross_entropy_soft", lambda x, t: F.cross_entropy(x, lnp.exp(t) / lnp.sum(lnp.exp(t), axis=-1, keepdims=True)), (r(4, 6), r(4, 6))


def _loss(fn):
    def loss(*args):
        out = fn(*args)
        leaves = [l for l in lucid.tree.leaves(out) if l.dtype.kind == "f"]
        return lnp.sum(lnp.stack([lnp.sum(l * l) for l in leaves]))
    return loss


ALL = [(d, name) for d in (np.float32, np.float64) for name, _, _ in cases(d)]


@pytest.mark.parametrize("dtype,name", ALL, ids=[f"{n}-{np.dtype(d).name}" for d, n in ALL])
def test_jit_equals_eager(dtype, name):
    fn, args = next((f, a) for n, f, a in cases(dtype) if n == name)
    jf = lucid.jit(fn)
    want = fn(*args)
    for _ in range(2):   # first call (traced) and replay (planned buffers reused)
        got = jf(*args)
        for g, w in zip(lucid.tree.leaves(got), lucid.tree.leaves(want)):
            np.testing.assert_array_equal(g, w)
    argnums = tuple(range(len(args)))
    grad = lucid.grad(_loss(fn), argnums=argnums)
    jgrad = lucid.jit(grad)
    want_g = grad(*args)
    for _ in range(2):
        for g, w in zip(jgrad(*args), want_g):
            np.testing.assert_array_equal(g, w)
