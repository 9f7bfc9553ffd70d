"""Leaf layers of the Module facade: thin objects over ``lucid.nn.functional``.

Weights keep PyTorch's shapes (OIHW convs, (out, in) linears) and timm's initialisation
(trunc_normal std .02 for conv / linear weights, zero biases, unit norms). Image layers
take NCHW from ``__call__`` and also run channels-last inside models (``data_format``).
"""
from __future__ import annotations

import numpy as np

from . import functional as F
from ._module import Module, check_positive_int
from ._spec import ParamSpec
from .._core import Tracer, on_device
from ..numpy._binary import add_int
from ._sync_batch_norm import active_reduce_sum, sync_batch_norm

__all__ = ["Identity", "Conv2d", "Linear", "LayerNorm", "LayerNorm2d", "BatchNorm2d", "GELU",
           "Dropout", "DropPath", "AdaptiveAvgPool2d", "Flatten", "batch_norm_forward"]


def _pair(value, what, where, minimum):
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                             or v < minimum for v in pair):
        raise ValueError(f"lucid.nn.{where}: {what} must be an int >= {minimum} or a pair of them, "
                         f"got {value!r}")
    return int(pair[0]), int(pair[1])


def _scalar_or_pair(pair):
    return pair[0] if pair[0] == pair[1] else pair


def _check_rate(rate, what, where):
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) \
            or not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"lucid.nn.{where}: {what} must be a float in [0, 1), got {rate!r}")
    return float(rate)


def _weight(shape):
    return ParamSpec(shape, "trunc_normal", 0.02)


class Identity(Module):
    """Returns its input. Accepts and ignores any constructor arguments (like PyTorch's)."""

    native_nhwc = True

    def __init__(self, *args, **kwargs):
        super().__init__()

    def _run(self, params, state, x, *, train, key, data_format):
        return x, state


class Conv2d(Module):
    """2-D convolution, weight (out, in/groups, kh, kw).

    Args:
      in_channels, out_channels: channel counts.
      kernel_size, stride, padding: ints or (h, w) pairs; zero padding.
      groups: channel groups (``groups == in_channels`` is depthwise).
      bias: whether to add a bias.
    """

    native_nhwc = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1,
                 bias=True):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels", "Conv2d")
        self.out_channels = check_positive_int(out_channels, "out_channels", "Conv2d")
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = _pair(stride, "stride", "Conv2d", 1)
        self.padding = _pair(padding, "padding", "Conv2d", 0)
        self.groups = check_positive_int(groups, "groups", "Conv2d")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"lucid.nn.Conv2d: groups={groups} must divide in_channels="
                             f"{in_channels} and out_channels={out_channels}")
        self.bias = bool(bias)

    def specs(self):
        spec = {"weight": _weight((self.out_channels, self.in_channels // self.groups)
                                  + self.kernel_size)}
        if self.bias:
            spec["bias"] = ParamSpec((self.out_channels,))
        return spec

    def _run(self, params, state, x, *, train, key, data_format):
        y = F.conv2d(x, params["weight"], params.get("bias"), stride=_scalar_or_pair(self.stride),
                     padding=_scalar_or_pair(self.padding), groups=self.groups,
                     data_format=data_format)
        return y, state

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}")


class Linear(Module):
    """``y = x @ W.T + b`` over the last axis; weight (out_features, in_features)."""

    native_nhwc = True

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features", "Linear")
        self.out_features = check_positive_int(out_features, "out_features", "Linear")
        self.bias = bool(bias)

    def specs(self):
        spec = {"weight": _weight((self.out_features, self.in_features))}
        if self.bias:
            spec["bias"] = ParamSpec((self.out_features,))
        return spec

    def _run(self, params, state, x, *, train, key, data_format):
        return F.linear(x, params["weight"], params.get("bias")), state

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias}"


class LayerNorm(Module):
    """LayerNorm over the last axis (biased variance, affine); PyTorch's default eps 1e-5."""

    native_nhwc = True
    _channels_first = False

    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)) and len(normalized_shape) == 1:
            normalized_shape = normalized_shape[0]
        where = type(self).__name__
        self.normalized_shape = check_positive_int(normalized_shape, "normalized_shape", where)
        if not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"lucid.nn.{where}: eps must be a positive float, got {eps!r}")
        self.eps = float(eps)

    def specs(self):
        return {"weight": ParamSpec((self.normalized_shape,), "ones"),
                "bias": ParamSpec((self.normalized_shape,))}

    def _run(self, params, state, x, *, train, key, data_format):
        axis = 1 if (self._channels_first and data_format == "NCHW") else -1
        return F.layer_norm(x, params["weight"], params["bias"], self.eps, axis=axis), state

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class LayerNorm2d(LayerNorm):
    """LayerNorm over the channels of an image at each pixel (timm's); eps 1e-6."""

    _channels_first = True

    def __init__(self, num_channels, eps=1e-6):
        super().__init__(num_channels, eps)


def batch_norm_forward(params, state, x, *, train, axis, eps=1e-5, momentum=0.1,
                       where="BatchNorm2d"):
    """BatchNorm with PyTorch semantics; returns ``(y, new_state)``.

    Eval normalises with the running statistics; training with the batch statistics and
    returns running statistics updated with ``momentum`` (unbiased variance) and
    ``num_batches_tracked + 1``.
    """
    if not isinstance(state, dict) or "running_mean" not in state or "running_var" not in state:
        raise ValueError(f"lucid.nn.{where}: missing running statistics in the state (pass the "
                         "state returned by init, or the module's .state)")
    mean, var = state["running_mean"], state["running_var"]
    if not train:
        return F.batch_norm(x, mean, var, params["weight"], params["bias"], train=False,
                            eps=eps, axis=axis), state
    reduce_sum = active_reduce_sum()  # data parallel with --sync-bn: global batch statistics
    if reduce_sum is not None:
        y, new_mean, new_var = sync_batch_norm(x, mean, var, params["weight"], params["bias"],
                                               reduce_sum=reduce_sum, momentum=momentum, eps=eps,
                                               axis=axis)
    else:
        y, new_mean, new_var = F.batch_norm(x, mean, var, params["weight"], params["bias"],
                                            train=True, momentum=momentum, eps=eps, axis=axis)
    new_state = {"running_mean": new_mean, "running_var": new_var}
    if "num_batches_tracked" in state:
        new_state["num_batches_tracked"] = _counter_plus_one(state["num_batches_tracked"])
    return y, new_state


def _counter_plus_one(count):
    """``count + 1``; a traced or device counter goes to add_int as it is (np.asarray of a
    device counter would be a device->host copy per BatchNorm layer)."""
    if isinstance(count, Tracer) or on_device(count):
        return add_int(count, 1)
    return add_int(np.asarray(count, np.int64), 1)


class BatchNorm2d(Module):
    """BatchNorm over the channels of an image (PyTorch semantics, eps 1e-5, momentum 0.1)."""

    native_nhwc = True

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features = check_positive_int(num_features, "num_features", "BatchNorm2d")
        self.eps, self.momentum = float(eps), float(momentum)

    def specs(self):
        c = (self.num_features,)
        return {"weight": ParamSpec(c, "ones"), "bias": ParamSpec(c),
                "running_mean": ParamSpec(c, trainable=False),
                "running_var": ParamSpec(c, "ones", trainable=False),
                "num_batches_tracked": ParamSpec((), trainable=False, dtype="int64")}

    def _run(self, params, state, x, *, train, key, data_format):
        return batch_norm_forward(params, state, x, train=train, eps=self.eps,
                                  momentum=self.momentum, axis=1 if data_format == "NCHW" else -1)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class GELU(Module):
    """GELU activation; ``approximate="none"`` is the exact erf form (timm's)."""

    native_nhwc = True

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError("lucid.nn.GELU: approximate must be 'none' or 'tanh', got "
                             f"{approximate!r}")
        self.approximate = approximate

    def _run(self, params, state, x, *, train, key, data_format):
        return F.gelu(x, approximate=self.approximate), state


def _need_key(where, key):
    if key is None:
        raise TypeError(f"lucid.nn.{where}: training with a non-zero rate needs a random key: "
                        "call module(x, key=k) or apply(..., train=True, key=k)")


class Dropout(Module):
    """Elementwise dropout with rate ``p`` (training only; scaled by 1/(1-p))."""

    native_nhwc = True

    def __init__(self, p=0.5):
        super().__init__()
        self.p = _check_rate(p, "p", "Dropout")

    def _run(self, params, state, x, *, train, key, data_format):
        if not train or self.p == 0.0:
            return x, state
        _need_key("Dropout", key)
        return F.dropout(x, self.p, key, train=True), state


class DropPath(Module):
    """Stochastic depth: drops whole samples with rate ``drop_prob`` (training only)."""

    native_nhwc = True

    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = _check_rate(drop_prob, "drop_prob", "DropPath")

    def _run(self, params, state, x, *, train, key, data_format):
        if not train or self.drop_prob == 0.0:
            return x, state
        _need_key("DropPath", key)
        return F.drop_path(x, self.drop_prob, key, train=True), state


class AdaptiveAvgPool2d(Module):
    """Average pooling of an image to 1x1 (timm's global pooling).

    Args:
      output_size: 1 (or (1, 1)); the only size the models need.
      flatten: return (N, C) instead of a (N, C, 1, 1) map.
    """

    native_nhwc = True

    def __init__(self, output_size=1, flatten=False):
        super().__init__()
        if _pair(output_size, "output_size", "AdaptiveAvgPool2d", 1) != (1, 1):
            raise ValueError("lucid.nn.AdaptiveAvgPool2d: only output_size=1 is supported, got "
                             f"{output_size!r}")
        self.flatten = bool(flatten)

    def _run(self, params, state, x, *, train, key, data_format):
        return F.global_avg_pool(x, data_format=data_format, keepdims=not self.flatten), state


class Flatten(Module):
    """Flattens every axis after the batch axis (in NCHW order)."""

    def _run(self, params, state, x, *, train, key, data_format):
        from .. import numpy as lnp
        return lnp.reshape(x, (x.shape[0], -1)), state
