"""Explicit, splittable random keys (JAX style), plus a small global-state convenience API.

A key is a ``uint32`` array of shape ``(2,)``. Keys are split, never reused:

    >>> key = lucid.random.key(0)
    >>> k1, k2 = lucid.random.split(key)
    >>> w = lucid.random.normal(k1, (3, 3))

Bits come from NumPy's Philox counter-based generator, whose stream is fixed by NumPy's
compatibility policy for bit generators; every transformation to floats is done here, so
uniforms are identical across runs, platforms and NumPy versions. Normals go through the
platform's vectorised log/sin/cos and can differ in the last bit between CPUs. float32
draws are computed in float32 (24-bit uniforms, 5x faster than float64), float64 draws
in float64 (53-bit uniforms).
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

from ._core import Primitive, Tracer, aval, bind, on_device
from ._limits import check_alloc

__all__ = ["key", "PRNGKey", "is_key", "split", "fold_in", "bits", "uniform", "normal",
           "truncated_normal", "bernoulli", "permutation", "randint", "seed", "randn", "rand"]

_DOMAIN_SPLIT, _DOMAIN_FOLD, _DOMAIN_BITS = 0, 1, 2
_FLOAT_DTYPES = (np.float32, np.float64)


def key(seed: int) -> np.ndarray:
    """A new key from an integer seed (any Python int; taken modulo 2**64)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"lucid.random.key: expected an integer seed, got {type(seed).__name__}")
    s = int(seed) % (1 << 64)
    return np.array([s >> 32, s & 0xFFFFFFFF], dtype=np.uint32)


PRNGKey = key


def is_key(x) -> bool:
    """True when ``x`` is a lucid key (uint32 array of shape (2,)), concrete, traced or on a
    device."""
    return ((isinstance(x, (np.ndarray, Tracer)) or on_device(x)) and x.dtype == np.uint32
            and tuple(x.shape) == (2,))


def _check_key(k, fn: str) -> int:
    if not is_key(k):
        got = (f"array of dtype {k.dtype} and shape {k.shape}"
               if isinstance(k, np.ndarray) or on_device(k) else type(k).__name__)
        raise TypeError(f"lucid.random.{fn}: expected a key (uint32 array of shape (2,), "
                        f"from lucid.random.key), got {got}")
    return (int(k[0]) << 32) | int(k[1])


def _raw(k64: int, domain: int, data: int, n: int) -> np.ndarray:
    """n raw 64-bit Philox words. Generator.integers over the full uint64 range returns the
    bit generator's words unchanged (the same as ``random_raw``), ~5x faster."""
    gen = np.random.Philox(key=np.array([k64, (domain << 32) | data], dtype=np.uint64))
    if not n:
        return np.zeros(0, np.uint64)
    return np.random.Generator(gen).integers(0, 1 << 64, size=n, dtype=np.uint64)


def _as_key(word) -> np.ndarray:
    w = int(word)
    return np.array([w >> 32, w & 0xFFFFFFFF], dtype=np.uint32)


def split(k, num: int = 2) -> np.ndarray:
    """Split a key into ``num`` new independent keys, shape ``(num, 2)``."""
    k64 = _check_key(k, "split")
    if not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"lucid.random.split: num must be a positive int, got {num!r}")
    raw = _raw(k64, _DOMAIN_SPLIT, 0, int(num))
    return np.stack([_as_key(w) for w in raw])


def fold_in(k, data: int) -> np.ndarray:
    """A new key deterministically derived from ``k`` and an integer ``data`` (0 <= data < 2**32)."""
    k64 = _check_key(k, "fold_in")
    if not isinstance(data, (int, np.integer)) or not 0 <= int(data) < (1 << 32):
        raise ValueError(f"lucid.random.fold_in: data must be an int in [0, 2**32), got {data!r}")
    return _as_key(_raw(k64, _DOMAIN_FOLD, int(data), 1)[0])


def _shape(shape, fn):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError as e:
        raise TypeError(f"lucid.random.{fn}: shape must be a tuple of ints, got {shape!r}") from e
    if any(s < 0 for s in shape):
        raise ValueError(f"lucid.random.{fn}: shape must be non-negative, got {shape}")
    # uint64 words per element: refused before np.prod (int64) could wrap or memory run out
    check_alloc(f"lucid.random.{fn}", shape, np.uint64, "buffer of random 64-bit words")
    return shape


def _dtype(dtype, fn):
    dt = np.dtype(dtype)
    if dt.type not in _FLOAT_DTYPES:
        raise TypeError(f"lucid.random.{fn}: dtype must be float32 or float64, got {dt}")
    return dt


def bits(k, shape=()) -> np.ndarray:
    """Uniform random uint64 bits of the given shape."""
    shape = _shape(shape, "bits")
    n = int(np.prod(shape, dtype=np.int64))
    return _raw(_check_key(k, "bits"), _DOMAIN_BITS, 0, n).reshape(shape)


def _unit(k, shape, fn) -> np.ndarray:
    """float64 uniform in [0, 1) with 53 random bits."""
    shape = _shape(shape, fn)
    n = int(np.prod(shape, dtype=np.int64))
    raw = _raw(_check_key(k, fn), _DOMAIN_BITS, 0, n)
    return ((raw >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))).reshape(shape)


def uniform(k, shape=(), dtype=np.float32, minval=0.0, maxval=1.0) -> np.ndarray:
    """Uniform samples in ``[minval, maxval)``."""
    dt = _dtype(dtype, "uniform")
    u = _unit(k, shape, "uniform")
    return (minval + (maxval - minval) * u).astype(dt)


def _unit32(k, n: int, fn) -> np.ndarray:
    """n float32 uniforms in [0, 1) with 24 random bits each, two per 64-bit Philox word."""
    raw = _raw(_check_key(k, fn), _DOMAIN_BITS, 0, (n + 1) // 2)
    words = raw.astype("<u8", copy=False).view("<u4")[:n]  # same halves on any byte order
    u = (words >> np.uint32(8)).astype(np.float32)
    u *= np.float32(1.0 / (1 << 24))
    return u


def _standard_normal(k, shape, fn, dtype=np.float64) -> np.ndarray:
    """Box-Muller in the requested precision: float32 draws cost a fifth of float64's
    (24-bit uniforms, so float32 tails end at 5.8 sigma, like JAX's float32 normals)."""
    shape = _shape(shape, fn)
    n = int(np.prod(shape, dtype=np.int64))
    m = (n + 1) // 2
    if np.dtype(dtype) == np.float32:
        u = _unit32(k, 2 * m, fn)
    else:
        u = _unit(k, (2 * m,), fn)
    u1, u2 = u[:m], u[m:]
    np.subtract(1, u1, out=u1)           # u1 in (0, 1]: log is finite
    r = np.log(u1, out=u1)
    r *= -2
    np.sqrt(r, out=r)
    u2 *= 2 * np.pi
    z = np.empty(2 * m, u.dtype)
    np.cos(u2, out=z[:m])
    np.sin(u2, out=z[m:])
    z[:m] *= r
    z[m:] *= r
    return z[:n].reshape(shape)


def normal(k, shape=(), dtype=np.float32) -> np.ndarray:
    """Standard normal samples (Box-Muller over Philox bits, computed in ``dtype``)."""
    dt = _dtype(dtype, "normal")
    return _standard_normal(k, shape, "normal", dt)


def truncated_normal(k, lower=-2.0, upper=2.0, shape=(), dtype=np.float32) -> np.ndarray:
    """Standard normal samples truncated to ``[lower, upper]`` (JAX argument order).

    Samples outside the bounds are redrawn from keys folded in from ``k``, so the
    result is a deterministic function of ``k``.
    """
    dt = _dtype(dtype, "truncated_normal")
    if not lower < upper:
        raise ValueError(f"lucid.random.truncated_normal: need lower < upper, got {lower}, {upper}")
    shape = _shape(shape, "truncated_normal")
    z = _standard_normal(k, shape, "truncated_normal", dt).ravel()
    bad = (z < lower) | (z > upper)
    round_ = 0
    while bad.any():
        round_ += 1
        if round_ > 1000:
            raise ValueError("lucid.random.truncated_normal: bounds reject almost every sample; "
                             f"got lower={lower}, upper={upper}")
        fresh = _standard_normal(fold_in(k, round_), (int(bad.sum()),), "truncated_normal", dt)
        z[bad] = fresh
        bad = (z < lower) | (z > upper)
    return z.reshape(shape)


def bernoulli(k, p=0.5, shape=()) -> np.ndarray:
    """Boolean samples that are True with probability ``p``."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"lucid.random.bernoulli: p must be in [0, 1], got {p}")
    return _unit(k, shape, "bernoulli") < float(p)


def permutation(k, n: int) -> np.ndarray:
    """A random permutation of ``range(n)`` (int64)."""
    return np.argsort(_unit(k, (int(n),), "permutation"), kind="stable")


def randint(k, shape, minval: int, maxval: int) -> np.ndarray:
    """Integers uniform in ``[minval, maxval)`` (int64)."""
    if maxval <= minval:
        raise ValueError(f"lucid.random.randint: need minval < maxval, got {minval}, {maxval}")
    u = _unit(k, shape, "randint")
    return (minval + np.floor(u * (maxval - minval))).astype(np.int64)


# ---- global-state convenience (documentation examples call lucid.random.randn(1, 3, 224, 224)) ----
_global_key = key(0)


def seed(n: int) -> None:
    """Reset the global key used by :func:`randn` and :func:`rand`."""
    global _global_key
    _global_key = key(n)


def _next_global():
    global _global_key
    _global_key, sub = split(_global_key)
    return sub


def _varargs_shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def randn(*shape) -> np.ndarray:
    """float32 standard normal samples from the global key, e.g. ``randn(1, 3, 224, 224)``."""
    shape = _varargs_shape(shape)
    return normal(_next_global(), shape, np.float32)


def rand(*shape) -> np.ndarray:
    """float32 uniform [0, 1) samples from the global key."""
    shape = _varargs_shape(shape)
    return uniform(_next_global(), shape, np.float32)


# ----------------------------------------------------------------------------- under jit
# Inside lucid.jit a key is a traced value: each draw is then one `random` primitive of the
# program (static: the function, its arguments, the result's shape and dtype) whose impl
# is the function above, so compiled and eager runs draw the same numbers. A key on a
# device (a DeviceArray) is drawn from the same way, eagerly: the primitive's device impl
# (lucid/_cuda_impls_random.py) computes the same words there.

random_p = Primitive("random")
random_p.def_abstract(lambda k, *, fn, args, shape, dtype: aval(shape, dtype))
random_p.def_vjp(lambda cts, k, **_: (None,))
_DRAWS: dict = {}


@random_p.def_impl
def _random_impl(k, *, out, fn, args, shape, dtype):
    out[0][...] = _DRAWS[fn](k, *args)


def _out_shape_dtype(fn, a):
    """The shape and dtype a draw returns, from its (bound) arguments."""
    if fn == "fold_in":
        return (2,), np.uint32
    if fn == "split":
        return (int(a["num"]), 2), np.uint32
    if fn == "permutation":
        return (int(a["n"]),), np.int64
    shape = _shape(a["shape"], fn)
    dtype = {"bits": np.uint64, "bernoulli": np.bool_, "randint": np.int64}.get(fn)
    return shape, np.dtype(dtype or _dtype(a["dtype"], fn))


def _traceable(f):
    _DRAWS[f.__name__] = f
    sig = inspect.signature(f)

    @functools.wraps(f)
    def draw(k, *args, **kwargs):
        if not isinstance(k, Tracer) and not on_device(k):
            return f(k, *args, **kwargs)
        if not is_key(k):
            _check_key(k, f.__name__)
        bound = sig.bind(k, *args, **kwargs)
        bound.apply_defaults()
        rest = dict(list(bound.arguments.items())[1:])
        shape, dtype = _out_shape_dtype(f.__name__, rest)
        return bind(random_p, k, fn=f.__name__, args=tuple(rest.values()), shape=shape,
                    dtype=np.dtype(dtype))
    return draw


split, fold_in, bits, uniform, normal, truncated_normal, bernoulli, permutation, randint = (
    _traceable(f) for f in (split, fold_in, bits, uniform, normal, truncated_normal, bernoulli,
                            permutation, randint))
