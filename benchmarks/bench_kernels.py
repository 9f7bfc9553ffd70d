"""asv microbenchmarks: one forward and one backward per kernel family, at ConvNeXt-T shapes.

Every case goes through the public operation (``lucid.nn.functional`` or
``lucid.numpy``), so it measures what a model pays: validation, the kernel, and the
BLAS call where there is one. The backward is the VJP of all float inputs, timed by
calling the ``lucid.vjp`` pullback again on a tape recorded in ``setup``.

Activations are NHWC (channels last), as inside lucid's models; stage-1 sizes of
ConvNeXt-T at batch 16 and 224x224 (16x56x56x96, MLP width 384).
Compilation (or loading cached kernels) happens in ``setup``, never in a timed call.
An operation that does not exist in this version of lucid is skipped.
"""
from __future__ import annotations

import lucid  # noqa: F401  (before NumPy: see benchmarks/__init__.py)
import numpy as np

N, H, W, C = 16, 56, 56, 96
_cache: dict = {}


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def _op(module: str, name: str):
    """``lucid.<module>.<name>``, or skip the benchmark when this version lacks it."""
    import importlib
    try:
        return getattr(importlib.import_module(f"lucid.{module}"), name)
    except (ImportError, AttributeError) as e:
        raise NotImplementedError(f"lucid.{module}.{name} is not available: {e}") from e


def _conv(stride, padding, groups):
    conv2d = _op("nn.functional", "conv2d")
    return lambda x, w, b: conv2d(x, w, b, stride=stride, padding=padding, groups=groups,
                                  data_format="NHWC")


def _case_arrays(name):
    """(function of the arrays, the arrays): the arrays are what the backward differentiates."""
    act = _rand(N, H, W, C)
    if name == "conv_dw7x7":
        return _conv(1, 3, C), (act, _rand(C, 1, 7, 7, seed=1) * 0.1, _rand(C, seed=2))
    if name == "conv_patchify_stem":
        return _conv(4, 0, 1), (_rand(N, 224, 224, 3), _rand(C, 3, 4, 4, seed=1) * 0.1,
                                _rand(C, seed=2))
    if name == "conv_downsample_2x2":
        return _conv(2, 0, 1), (act, _rand(2 * C, C, 2, 2, seed=1) * 0.1, _rand(2 * C, seed=2))
    if name == "linear_fc1":
        return _op("nn.functional", "linear"), (act, _rand(4 * C, C, seed=1) * 0.1,
                                                _rand(4 * C, seed=2))
    if name == "linear_fc2":
        return _op("nn.functional", "linear"), (_rand(N, H, W, 4 * C), _rand(C, 4 * C, seed=1)
                                                * 0.05, _rand(C, seed=2))
    if name == "layer_norm":
        ln = _op("nn.functional", "layer_norm")
        return (lambda x, w, b: ln(x, w, b, eps=1e-6, axis=-1)), (act, _rand(C, seed=1),
                                                                   _rand(C, seed=2))
    if name == "gelu":
        return _op("nn.functional", "gelu"), (_rand(N, H, W, 4 * C),)
    if name == "bias_gelu":
        return _op("nn.functional", "bias_gelu"), (_rand(N, H, W, 4 * C), _rand(4 * C, seed=1))
    if name in ("batch_norm_train", "batch_norm_eval"):
        return _batch_norm(name.endswith("train")), (act, _rand(C, seed=1), _rand(C, seed=2))
    if name == "bias_scale_residual":  # fc2's bias + layer scale + residual add
        return _op("nn.functional", "scale_residual"), (act, _rand(N, H, W, C, seed=1),
                                                        _rand(C, seed=2), _rand(C, seed=3))
    if name == "inception_mixer":  # InceptionNeXt-T stage 1: gc = 12, 3x3 + 1x11 + 11x1
        mixer = _op("nn.functional", "inception_dwconv2d")
        ws = [_rand(12, 1, kh, kw, seed=s) * 0.1 for s, (kh, kw) in
              enumerate([(3, 3), (1, 11), (11, 1)], start=1)]
        return (lambda x, a, b, c: mixer(x, a, None, b, None, c, None, data_format="NHWC")), \
            (act, *ws)
    return _small_case(name, act)


def _batch_norm(train):
    bn = _op("nn.functional", "batch_norm")
    rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
    if train:
        return lambda x, w, b: bn(x, rm, rv, w, b, train=True, axis=-1)[0]
    return lambda x, w, b: bn(x, rm, rv, w, b, train=False, axis=-1)


def _small_case(name, act):
    if name == "softmax":
        return _op("nn.functional", "softmax"), (_rand(N, 1000),)
    if name == "cross_entropy":
        ce, labels = _op("nn.functional", "cross_entropy"), np.arange(N, dtype=np.int64) * 7
        return (lambda logits: ce(logits, labels)), (_rand(N, 1000),)
    if name == "add":
        return _op("numpy", "add"), (act, _rand(N, H, W, C, seed=1))
    if name == "mul_channel_scale":  # layer scale: x * gamma[C]
        return _op("numpy", "multiply"), (act, _rand(C, seed=1))
    if name == "sum_all":
        return _op("numpy", "sum"), (act,)
    if name == "sum_over_nhw":  # the bias-gradient reduction
        total = _op("numpy", "sum")
        return (lambda x: total(x, axis=(0, 1, 2))), (act,)
    if name == "global_avg_pool":
        pool = _op("nn.functional", "global_avg_pool")
        return (lambda x: pool(x, data_format="NHWC")), (_rand(N, 7, 7, 8 * C),)
    raise ValueError(f"unknown benchmark case {name!r}")


CASES = ["conv_dw7x7", "conv_patchify_stem", "conv_downsample_2x2", "linear_fc1", "linear_fc2",
         "layer_norm", "gelu", "bias_gelu", "bias_scale_residual", "inception_mixer",
         "batch_norm_train", "batch_norm_eval", "softmax",
         "cross_entropy", "add", "mul_channel_scale", "sum_all", "sum_over_nhw",
         "global_avg_pool"]


def prepare(name):
    """``(forward, backward)`` zero-argument callables for case ``name``, both already run once."""
    if name in _cache:
        return _cache[name]
    fn, arrays = _case_arrays(name)
    forward = lambda: fn(*arrays)  # noqa: E731
    out = forward()
    _, pullback = lucid.vjp(fn, *arrays)
    cotangent = np.ones(np.shape(out), np.float32)
    backward = lambda: pullback(cotangent)  # noqa: E731
    backward()
    _cache.clear()  # one case's arrays at a time
    _cache[name] = (forward, backward)
    return forward, backward


class TimeKernels:
    """Forward and backward of one operation per kernel family (float32, NHWC)."""
    params = [CASES]
    param_names = ["op"]
    number = 1
    rounds = 1
    repeat = (3, 20, 10.0)  # min samples, max samples, seconds per benchmark
    warmup_time = 0.0       # setup already ran both directions once
    timeout = 300

    def setup(self, op):
        self.forward, self.backward = prepare(op)

    def time_forward(self, op):
        self.forward()

    def time_backward(self, op):
        self.backward()
