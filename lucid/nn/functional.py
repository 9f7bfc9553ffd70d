"""Neural-network functions (``import lucid.nn.functional as F``), all differentiable.

Image functions take NCHW at the public boundary, as PyTorch and timm do, and
``data_format="NHWC"`` for channels-last arrays (the layout lucid's models use
internally, because it keeps channels contiguous for the kernels). Weights keep
PyTorch's shapes (OIHW convs, (out, in) linears) in both layouts.

Names are resolved lazily so ``import lucid`` stays cheap.
"""
import importlib

_WHERE = {
    "conv2d": "_conv",
    "linear": "_linear",
    "layer_norm": "_norm", "batch_norm": "_norm", "sync_batch_norm": "_sync_batch_norm",
    "gelu": "_activation", "relu": "_activation", "bias_gelu": "_activation",
    "scale_residual": "_fused", "inception_dwconv2d": "_inception",
    "softmax": "_softmax", "log_softmax": "_softmax", "cross_entropy": "_softmax",
    "adaptive_avg_pool2d": "_pool", "global_avg_pool": "_pool",
    "dropout": "_dropout", "drop_path": "_dropout",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lucid.nn.functional' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lucid.nn.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
