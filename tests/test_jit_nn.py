"""Shape rules of the nn primitives (conv2d, inception mixer, norms, activations, fused ops,
dropout): what ``lucid.jit`` reads instead of running kernels, and jit against eager.

Each case runs a public function forward and through ``lucid.grad`` while recording every
``bind`` of the module under test, then checks for each recorded forward and backward
primitive that

* its shape rule, fed only the arguments' abstract values, gives the shapes and dtypes
  the eager call produced;
* the public results have the shapes an independent formula gives (the convolution's
  output size, each gradient shaped like its input), so the rule is not only compared
  with itself (eager allocates its outputs from the rule);
* its impl writes every output in full: run into outputs pre-filled with two different
  garbage values it gives bitwise the same results (under jit outputs are reused buffers).
"""
import numpy as np
import pytest

import lucid
from lucid import _core
from lucid._autodiff import GradTracer
from lucid.nn import _activation, _conv, _dropout, _fused, _inception, _norm
from lucid.nn import functional as F

DTYPES = [np.float32, np.float64]


def _randn(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _concrete(a):
    return a.primal if isinstance(a, GradTracer) else a


class Recorder:
    """Replaces ``module.bind``: records (primitive, args, params, results) of each call."""

    def __init__(self, monkeypatch, *modules):
        self.calls = []
        for m in modules:
            monkeypatch.setattr(m, "bind", self.bind)

    def bind(self, prim, *args, **params):
        out = _core.bind(prim, *args, **params)
        self.calls.append((prim, args, params, out if prim.multiple_results else (out,)))
        return out


def _fill(a, which):
    a[...] = (np.nan if which else -7.5) if a.dtype.kind == "f" else bool(which)


def _check_call(prim, args, params, results):
    in_avals = [_core.aval_of(a) for a in args]
    want = [(tuple(r.shape), np.dtype(r.dtype)) for r in results]
    got = [(a.shape, a.dtype) for a in prim.out_avals(in_avals, params)]
    assert got == want, f"{prim.name}: shape rule {got}, eager {want}"
    concrete = [_concrete(a) for a in args]
    runs = []
    for which in (0, 1):
        outs = tuple(_core.allocate(a) for a in prim.out_avals(in_avals, params))
        for o in outs:
            _fill(o, which)
        prim.impls["cpu"](*concrete, out=outs, **params)
        runs.append(outs)
    for a, b in zip(*runs):
        assert a.tobytes() == b.tobytes(), f"{prim.name}: impl leaves part of an output unwritten"


def run_and_check(rec, f, args, diff, expected_out_shape):
    """Forward and gradient of ``f`` (w.r.t. args[i] for i in diff) under the recorder;
    returns the names of the primitives checked."""
    out = f(*args)
    y = out[0] if isinstance(out, tuple) else out
    assert tuple(y.shape) == tuple(expected_out_shape)
    assert y.dtype == args[0].dtype

    def loss(*d):
        full = list(args)
        for i, v in zip(diff, d):
            full[i] = v
        o = f(*full)
        o = o[0] if isinstance(o, tuple) else o
        return lucid.numpy.sum(o * _randn(o.shape, o.dtype, seed=1))

    grads = lucid.grad(loss, argnums=tuple(range(len(diff))))(*[args[i] for i in diff])
    for i, g in zip(diff, grads):
        assert g.shape == args[i].shape and g.dtype == args[i].dtype
    for prim, a, params, results in rec.calls:
        _check_call(prim, a, params, results)
    return {prim.name for prim, *_ in rec.calls}


# ----------------------------------------------------------------------------- conv2d

CONV_CASES = {  # C, O, groups, (kh, kw), stride, padding, (H, W), path
    "depthwise": (4, 4, 4, (3, 3), 1, 1, (6, 7), "depthwise"),
    "depthwise_s2": (4, 4, 4, (3, 3), 2, 1, (9, 8), "depthwise"),
    "pointwise": (6, 5, 1, (1, 1), 1, 0, (4, 5), "pointwise"),
    "patchify": (3, 8, 1, (4, 4), 4, 0, (17, 13), "patchify"),
    "general": (4, 6, 2, (3, 3), 2, ((1, 0), (2, 1)), (9, 8), "general"),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_shape_rules(monkeypatch, case, dtype, fmt, bias):
    C, O, G, (kh, kw), s, p, (H, W), path = CONV_CASES[case]
    rec = Recorder(monkeypatch, _conv)
    x = _randn((2, C, H, W) if fmt == "NCHW" else (2, H, W, C), dtype)
    w, b = _randn((O, C // G, kh, kw), dtype, 1), (_randn((O,), dtype, 2) if bias else None)
    (pt, pb), (pl, pr) = p if isinstance(p, tuple) else ((p, p), (p, p))
    Ho, Wo = (H + pt + pb - kh) // s + 1, (W + pl + pr - kw) // s + 1
    want = (2, O, Ho, Wo) if fmt == "NCHW" else (2, Ho, Wo, O)
    f = lambda x, w, b: F.conv2d(x, w, b, s, p, G, data_format=fmt)  # noqa: E731
    names = run_and_check(rec, f, [x, w, b], [0, 1, 2] if bias else [0, 1], want)
    assert names == {"nn.functional.conv2d", "nn.functional.conv2d_bwd"}
    assert rec.calls[0][2]["path"] == path


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv2d_backward_computes_only_wanted_gradients(monkeypatch, case):
    """The input image of a stem conv is not differentiated: no input gradient is made."""
    C, O, G, (kh, kw), s, p, (H, W), _ = CONV_CASES[case]
    rec = Recorder(monkeypatch, _conv)
    x, w = _randn((2, H, W, C), np.float32), _randn((O, C // G, kh, kw), np.float32, 1)
    full = lucid.grad(lambda x, w: lucid.numpy.sum(
        F.conv2d(x, w, None, s, p, G, data_format="NHWC")), argnums=(0, 1))(x, w)[1]
    only_w = lucid.grad(lambda w: lucid.numpy.sum(
        F.conv2d(x, w, None, s, p, G, data_format="NHWC")))(w)
    bwd = [c for c in rec.calls if c[0] is _conv.conv2d_bwd_p]
    assert [c[2]["wants"] for c in bwd] == [(True, True, False), (False, True, False)]
    assert [len(c[3]) for c in bwd] == [2, 1]
    np.testing.assert_array_equal(only_w, full)
    for prim, a, params, results in rec.calls:
        _check_call(prim, a, params, results)


# ----------------------------------------------------------------------------- inception

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
@pytest.mark.parametrize("bias", [True, False])
def test_inception_shape_rules(monkeypatch, dtype, fmt, bias):
    rec = Recorder(monkeypatch, _inception)
    C, gc, H, W = 11, 3, 5, 7
    x = _randn((2, C, H, W) if fmt == "NCHW" else (2, H, W, C), dtype)
    ws = [_randn((gc, 1) + k, dtype, i) for i, k in enumerate([(3, 3), (1, 5), (5, 1)])]
    bs = [_randn((gc,), dtype, 5 + i) if bias else None for i in range(3)]
    args = [x, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2]]
    f = lambda *a: F.inception_dwconv2d(*a, data_format=fmt)  # noqa: E731
    names = run_and_check(rec, f, args, [i for i, a in enumerate(args) if a is not None],
                          x.shape)
    assert names == {"nn.functional.inception_dwconv2d", "nn.functional.inception_dwconv2d_bwd"}


# ----------------------------------------------------------------------------- norms

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_shape_rules(monkeypatch, dtype, axis, affine):
    rec = Recorder(monkeypatch, _norm)
    x = _randn((3, 6, 5, 4), dtype)
    C = x.shape[axis]
    w, b = (_randn((C,), dtype, 1), _randn((C,), dtype, 2)) if affine else (None, None)
    f = lambda x, w, b: F.layer_norm(x, w, b, axis=axis)  # noqa: E731
    names = run_and_check(rec, f, [x, w, b], [0, 1, 2] if affine else [0], x.shape)
    assert names == {"nn.functional.layer_norm", "nn.functional.layer_norm_bwd"}
    _, mean, rstd = rec.calls[0][3]
    assert mean.shape == rstd.shape == (x.size // C,)
    assert mean.dtype == rstd.dtype == np.float64  # saved in float64, as before


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("mode", ["eval", "train", "untracked"])
def test_batch_norm_shape_rules(monkeypatch, dtype, axis, mode):
    rec = Recorder(monkeypatch, _norm)
    x = _randn((4, 3, 5, 2), dtype)
    C = x.shape[axis]
    w, b = _randn((C,), dtype, 1), _randn((C,), dtype, 2)
    rm, rv = (None, None) if mode == "untracked" else (_randn((C,), dtype, 3),
                                                        np.abs(_randn((C,), dtype, 4)) + 0.5)
    f = lambda x, w, b: F.batch_norm(x, rm, rv, w, b, train=mode != "eval",  # noqa: E731
                                     axis=axis)
    names = run_and_check(rec, f, [x, w, b], [0, 1, 2], x.shape)
    expected = {"eval": {"nn.functional.batch_norm", "nn.functional.batch_norm_bwd"},
                "train": {"nn.functional.batch_norm_train", "nn.functional.batch_norm_train_bwd",
                          "nn.functional.batch_norm_running_stats"},
                "untracked": {"nn.functional.batch_norm_train",
                              "nn.functional.batch_norm_train_bwd"}}
    assert names == expected[mode]
    if mode != "eval":
        _, mean, var = rec.calls[0][3]
        assert mean.shape == var.shape == (C,) and mean.dtype == var.dtype == np.float64
    if mode == "train":
        y, new_rm, new_rv = f(x, w, b)
        assert new_rm.shape == new_rv.shape == (C,) and new_rm.dtype == new_rv.dtype == dtype


# ----------------------------------------------------------------------------- elementwise

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("shape", [(3, 5, 7), (4,), ()])
def test_activation_shape_rules(monkeypatch, dtype, name, shape):
    rec = Recorder(monkeypatch, _activation)
    x = _randn(shape, dtype)
    f = {"relu": F.relu, "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, "tanh")}[name]
    names = run_and_check(rec, f, [x], [0], shape)
    assert names == {f"nn.functional.{name}", f"nn.functional.{name}_bwd"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5, 7), (7,)])
def test_bias_gelu_shape_rules(monkeypatch, dtype, shape):
    rec = Recorder(monkeypatch, _activation)
    h, b = _randn(shape, dtype), _randn(shape[-1:], dtype, 1)
    names = run_and_check(rec, F.bias_gelu, [h, b], [0, 1], shape)
    assert names == {"nn.functional.bias_gelu", "nn.functional.bias_gelu_bwd"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 5, 8), (8,)])
def test_scale_residual_shape_rules(monkeypatch, dtype, bias, shape):
    rec = Recorder(monkeypatch, _fused)
    x, y, gamma = _randn(shape, dtype), _randn(shape, dtype, 1), _randn(shape[-1:], dtype, 2)
    args = [x, y, gamma] + ([_randn(shape[-1:], dtype, 3)] if bias else [])
    names = run_and_check(rec, F.scale_residual, args, list(range(len(args))), shape)
    stem = "bias_scale_residual" if bias else "scale_residual"
    assert names == {f"nn.functional.{stem}", f"nn.functional.{stem}_bwd"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["dropout", "drop_path"])
@pytest.mark.parametrize("shape", [(4, 3, 5), (6,)])
def test_dropout_shape_rules(monkeypatch, dtype, name, shape):
    rec = Recorder(monkeypatch, _dropout)
    x, key = _randn(shape, dtype), lucid.random.key(7)
    f = lambda x: getattr(F, name)(x, 0.4, key)  # noqa: E731
    names = run_and_check(rec, f, [x], [0], shape)
    assert names == {f"nn.functional.{name}", f"nn.functional.{name}_bwd"}
    mask = rec.calls[0][3][1]  # the forward's second result
    assert mask.dtype == np.bool_ and mask.shape == (shape if name == "dropout" else shape[:1])


# ----------------------------------------------------------------------------- jit vs eager

def _jit_vs_eager(fn, args, argnums):
    """jit(fn) and jit(grad of a weighted sum of fn's first output) give eager's bits, on
    the first call and on a replay (whose buffers still hold the first call's values)."""
    want_y = fn(*args)
    y0 = want_y[0] if isinstance(want_y, tuple) else want_y
    w = _randn(y0.shape, y0.dtype, seed=3)

    def loss(*a):
        o = fn(*a)
        return lucid.numpy.sum((o[0] if isinstance(o, tuple) else o) * w)

    grad = lucid.grad(loss, argnums=argnums)
    want_g = grad(*args)
    jf, jg = lucid.jit(fn), lucid.jit(grad)
    for _ in range(2):
        got_y = jf(*args)
        for g, e in zip(got_y if isinstance(got_y, tuple) else (got_y,),
                        want_y if isinstance(want_y, tuple) else (want_y,)):
            np.testing.assert_array_equal(g, e, strict=True)
        for g, e in zip(jg(*args), want_g):
            np.testing.assert_array_equal(g, e, strict=True)


@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_jit_conv2d_matches_eager(case, dtype, fmt):
    C, O, G, (kh, kw), s, p, (H, W), _ = CONV_CASES[case]
    x = _randn((2, C, H, W) if fmt == "NCHW" else (2, H, W, C), dtype)
    w, b = _randn((O, C // G, kh, kw), dtype, 1), _randn((O,), dtype, 2)
    _jit_vs_eager(lambda x, w, b: F.conv2d(x, w, b, s, p, G, data_format=fmt), [x, w, b],
                  (0, 1, 2))
    _jit_vs_eager(lambda w: F.conv2d(x, w, None, s, p, G, data_format=fmt), [w], (0,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", ["NCHW", "NHWC"])
def test_jit_inception_matches_eager(dtype, fmt):
    C, gc, H, W = 11, 3, 5, 7
    x = _randn((2, C, H, W) if fmt == "NCHW" else (2, H, W, C), dtype)
    ws = [_randn((gc, 1) + k, dtype, i) for i, k in enumerate([(3, 3), (1, 5), (5, 1)])]
    bs = [_randn((gc,), dtype, 5 + i) for i in range(3)]
    args = [x, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2]]
    _jit_vs_eager(lambda *a: F.inception_dwconv2d(*a, data_format=fmt), args,
                  tuple(range(7)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 1])
def test_jit_norms_match_eager(dtype, axis):
    x = _randn((4, 6, 5, 3), dtype)
    C = x.shape[axis]
    w, b = _randn((C,), dtype, 1), _randn((C,), dtype, 2)
    rm, rv = _randn((C,), dtype, 3), np.abs(_randn((C,), dtype, 4)) + 0.5
    _jit_vs_eager(lambda x, w, b: F.layer_norm(x, w, b, axis=axis), [x, w, b], (0, 1, 2))
    _jit_vs_eager(lambda x: F.layer_norm(x, axis=axis), [x], (0,))
    _jit_vs_eager(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, axis=axis), [x, w, b],
                  (0, 1, 2))
    # train mode returns (y, new running mean, new running var): all three compared
    _jit_vs_eager(lambda x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, train=True,
                                                       momentum=0.3, axis=axis),
                  [x, w, b, rm, rv], (0, 1, 2))
    _jit_vs_eager(lambda x: F.batch_norm(x, None, None, train=True, axis=axis)[0], [x], (0,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_jit_activations_and_fused_match_eager(dtype):
    x, y = _randn((3, 5, 8), dtype) * 2, _randn((3, 5, 8), dtype, 1)
    gamma, b = _randn((8,), dtype, 2), _randn((8,), dtype, 3)
    for f in (F.relu, F.gelu, lambda x: F.gelu(x, "tanh")):
        _jit_vs_eager(f, [x], (0,))
    _jit_vs_eager(F.bias_gelu, [x, b], (0, 1))
    _jit_vs_eager(F.scale_residual, [x, y, gamma], (0, 1, 2))
    _jit_vs_eager(F.scale_residual, [x, y, gamma, b], (0, 1, 2, 3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["dropout", "drop_path"])
def test_jit_dropout_matches_eager_with_a_traced_key(dtype, name):
    """The key is a jit argument: each call draws its mask from the key it is given, and
    the gradient reads the forward's mask."""
    x = _randn((6, 4, 5), dtype)
    fn = lambda x, key: getattr(F, name)(x, 0.4, key)  # noqa: E731
    for seed in (1, 2):
        _jit_vs_eager(fn, [x, lucid.random.key(seed)], (0,))
    jf = lucid.jit(fn)
    a, b = jf(x, lucid.random.key(1)), jf(x, lucid.random.key(2))
    assert not np.array_equal(a, b)  # a new key, a new mask (no mask baked into the program)
