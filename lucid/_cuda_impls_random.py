"""CUDA impls of random draws from keys that live on the device (Philox on the device).

Registered by :func:`lucid._cuda_impls.install` (through ``Primitive.def_impl(fn,
backend="cuda")``); see that module for the conventions (DeviceArray in, preallocated
DeviceArray ``out``, no host round trip).

A key on the device (a uint32 ``(2,)`` DeviceArray) is read by the kernels themselves
(``kernels/cuda/random.py``), so a draw never copies anything to the host, and it yields
exactly the host's values for the same key: the same Philox words, the same conversions
(normals up to the last bits of the device's log/sqrt/cos/sin).

- ``random`` (the primitive a draw on a traced or device key is): split, fold_in, bits,
  uniform, normal, bernoulli and randint run on the device; truncated_normal (a
  data-dependent rejection loop) and permutation (a sort) raise NotImplementedError.
- ``dropout`` / ``drop_path`` and their backwards: the mask is the device bernoulli of the
  CPU impl's draw; inside ``sample_shard`` the draw starts at the shard's first row of the
  global mask (the element's value depends only on its global flat index), so each rank
  gets the rows a single process gets, without drawing the whole batch.
"""
from __future__ import annotations


import numpy as np

_SCALARS = (int, float, np.integer, np.floating)


def _k1(domain_name: str, data: int = 0) -> int:
    """NumPy Philox's second key word for a lucid.random domain: (domain << 32) | data."""
    from . import random as R
    return (getattr(R, domain_name) << 32) | int(data)


def _flat(a):
    """A DeviceArray's numba array as a flat view (outputs are fresh, C-contiguous)."""
    return a.raw.reshape(a.size)


def _scalar(v, fn: str, name: str):
    """``v`` when it is a host scalar (the kernels take it by value); a clear error else."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, _SCALARS):
        raise TypeError(f"lucid.random.{fn}: on a device key, {name} must be a Python or NumPy "
                        f"scalar, got {type(v).__name__}"
                        + (f" of shape {np.shape(v)}" if hasattr(v, "shape") else ""))
    return v


def _split(k, out, num):
    from .kernels.cuda import random as KR
    if not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"lucid.random.split: num must be a positive int, got {num!r}")
    KR.keys(k.raw, _k1("_DOMAIN_SPLIT"), out.raw)


def _fold_in(k, out, data):
    from .kernels.cuda import random as KR
    if (isinstance(data, (bool, np.bool_)) or not isinstance(data, (int, np.integer))
            or not 0 <= int(data) < (1 << 32)):
        raise ValueError(f"lucid.random.fold_in: data must be an int in [0, 2**32), got {data!r}")
    KR.keys(k.raw, _k1("_DOMAIN_FOLD", data), out.raw.reshape(1, 2))


def _bits(k, out, shape):
    from .kernels.cuda import random as KR
    KR.words(k.raw, _k1("_DOMAIN_BITS"), 0, _flat(out))


def _uniform(k, out, shape, dtype, minval, maxval):
    from .kernels.cuda import random as KR
    lo = _scalar(minval, "uniform", "minval")
    hi = _scalar(maxval, "uniform", "maxval")
    # the host computes minval + (maxval - minval) * u with u float64: the difference is
    # taken in the scalars' own arithmetic (float32 for two np.float32), the rest in float64
    KR.uniform(k.raw, _k1("_DOMAIN_BITS"), 0, float(lo), float(hi - lo), _flat(out))


def _normal(k, out, shape, dtype):
    from .kernels.cuda import random as KR
    KR.normal(k.raw, _k1("_DOMAIN_BITS"), _flat(out))


def _bernoulli(k, out, p, shape):
    from .kernels.cuda import random as KR
    p = _scalar(p, "bernoulli", "p")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"lucid.random.bernoulli: p must be in [0, 1], got {p}")
    KR.bernoulli(k.raw, _k1("_DOMAIN_BITS"), 0, float(p), _flat(out))


def _randint(k, out, shape, minval, maxval):
    from .kernels.cuda import random as KR
    lo = _scalar(minval, "randint", "minval")
    hi = _scalar(maxval, "randint", "maxval")
    if hi <= lo:
        raise ValueError(f"lucid.random.randint: need minval < maxval, got {minval}, {maxval}")
    KR.randint(k.raw, _k1("_DOMAIN_BITS"), float(lo), float(hi - lo), _flat(out))


_DEVICE_DRAWS = {"split": _split, "fold_in": _fold_in, "bits": _bits, "uniform": _uniform,
                 "normal": _normal, "bernoulli": _bernoulli, "randint": _randint}


def _random(k, *, out, fn, args, shape, dtype):
    """The ``random`` primitive on a device key: the draw ``fn`` computed on the device."""
    draw = _DEVICE_DRAWS.get(fn)
    if draw is None:
        raise NotImplementedError(
            f"lucid.random.{fn} has no CUDA implementation: draw it from a host key "
            f"(lucid.device_get(key)) and device_put the result; on the device: "
            f"{', '.join(sorted(_DEVICE_DRAWS))}")
    draw(k, out[0], *args)


# ----------------------------------------------------------------------------- dropout

def _draw_mask(key, keep, mask, where):
    """mask = bernoulli(key, keep, global shape)[this shard's rows], drawn on the device."""
    from ._sample_shard import sample_offset
    from .kernels.cuda import random as KR
    rows = mask.shape[0] if mask.shape else 1
    start = sample_offset(rows, where) * (mask.size // rows if rows else 0)
    KR.bernoulli(key.raw, _k1("_DOMAIN_BITS"), start, float(keep), _flat(mask))


def _apply_mask(x, mask, keep, per_sample, out):
    """out = x * mask / keep, elementwise or per sample (row), as the CPU's _apply_mask."""
    from .kernels.cuda import dropout as KD
    from .nn._dropout import _scale
    if not x.is_c_contiguous():
        op = "drop_path" if per_sample else "dropout"
        raise ValueError(f"lucid.nn.functional.{op} (cuda): expected a C-contiguous device "
                         f"array, got a strided view of shape {x.shape}")
    scale = _scale(x.dtype, keep)
    if per_sample:
        rows = x.shape[0]
        cols = x.size // rows if rows else 0
        KD.drop_path_fwd(x.raw.reshape(rows, cols), mask.raw, scale,
                         out.raw.reshape(rows, cols))
    else:
        KD.dropout_fwd(_flat(x), _flat(mask), scale, _flat(out))


def _masking(name, per_sample):
    def forward(x, key, *, out, keep):
        y, mask = out
        _draw_mask(key, keep, mask, name)
        _apply_mask(x, mask, keep, per_sample, y)

    def backward(g, mask, *, out, keep):
        _apply_mask(g, mask, keep, per_sample, out[0])
    return forward, backward


def install() -> None:
    """Register this family's CUDA impls with the core."""
    from . import random as R
    from .nn import _dropout as D
    dropout, dropout_bwd = _masking("dropout", per_sample=False)
    drop_path, drop_path_bwd = _masking("drop_path", per_sample=True)
    table = [(R.random_p, _random), (D.dropout_p, dropout), (D.dropout_bwd_p, dropout_bwd),
             (D.drop_path_p, drop_path), (D.drop_path_bwd_p, drop_path_bwd)]
    for prim, impl in table:
        prim.def_impl(impl, backend="cuda")
