"""``grad`` and ``value_and_grad`` (JAX semantics) on top of :func:`lucid._autodiff.vjp`."""
from __future__ import annotations

import functools

import numpy as np

from ._autodiff import _FLOAT, vjp
from ._core import Tracer, on_device

__all__ = ["grad", "value_and_grad"]


def _check_argnums(argnums, fname):
    if isinstance(argnums, (bool, np.bool_)):
        raise TypeError(f"lucid.{fname}: argnums must be an int or a tuple of ints, got {argnums!r}")
    if isinstance(argnums, (int, np.integer)):
        return (int(argnums),), True
    if isinstance(argnums, (tuple, list)) and argnums and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_))
            for a in argnums):
        return tuple(int(a) for a in argnums), False
    raise TypeError(f"lucid.{fname}: argnums must be an int or a non-empty tuple of ints, "
                    f"got {argnums!r}")


def _check_differentiable_arg(arg, position, fname):
    """JAX refuses integer and boolean arguments to grad; so does lucid (a clear error
    instead of a silent None or zero)."""
    if isinstance(arg, (bool, np.bool_, int, np.integer)) or (
            isinstance(arg, (np.ndarray, Tracer)) and arg.dtype.kind in "biu"):
        dtype = getattr(arg, "dtype", type(arg).__name__)
        raise TypeError(f"lucid.{fname}: argument {position} is differentiated (argnums) but has "
                        f"integer/bool type {dtype}; grad needs float32/float64 inputs. Cast it "
                        "(x.astype(np.float32)) or leave it out of argnums.")


def value_and_grad(f, argnums=0, has_aux: bool = False):
    """Create a function returning ``f``'s value and its gradient w.r.t. ``argnums``.

    Args:
      f: a function returning a scalar (0-d float array), or ``(scalar, aux)`` with has_aux.
      argnums: which positional argument(s) to differentiate (int or tuple of ints; a
        repeated position gets its gradient repeated, as in JAX).
      has_aux: whether ``f`` returns ``(value, aux)``.
    Returns:
      a function returning ``(value, grads)`` or ``((value, aux), grads)``; ``grads`` is
      shaped like the argument (a tuple of such when ``argnums`` is a tuple).
    """
    nums, single = _check_argnums(argnums, "value_and_grad")
    if not callable(f):
        raise TypeError(f"lucid.value_and_grad: expected a callable, got {type(f).__name__}")

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        for a in nums:
            if not -len(args) <= a < len(args):
                raise ValueError(f"lucid.grad: argnums={argnums} is out of range for a call with "
                                 f"{len(args)} positional argument(s)")
        idx = [a % len(args) for a in nums]
        unique = list(dict.fromkeys(idx))
        for i in unique:
            _check_differentiable_arg(args[i], i, "grad")

        def partial_f(*diff):
            full = list(args)
            for i, d in zip(unique, diff):
                full[i] = d
            return f(*full, **kwargs)

        res = vjp(partial_f, *[args[i] for i in unique], has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        value = _check_scalar(out)
        seed = np.ones((), value.dtype) if not isinstance(value, Tracer) else _ones_like(value)
        if on_device(value):   # the seed goes where the value is (a host->device copy)
            from ._device import device_put
            seed = device_put(seed, value.device)
        grads = vjp_fn(seed, _free=True)
        by_position = dict(zip(unique, grads))
        grads = tuple(by_position[i] for i in idx)
        value_out = (value, res[2]) if has_aux else value
        return value_out, (grads[0] if single else grads)

    return wrapped


def _ones_like(t):
    from .numpy import ones_like
    return ones_like(t)


def _check_scalar(out):
    if isinstance(out, (float, int)) and not isinstance(out, bool):
        out = np.asarray(out, np.float32)
    ok = ((isinstance(out, (np.ndarray, Tracer)) or on_device(out)) and out.shape == ()
          and np.dtype(out.dtype).type in _FLOAT)
    if not ok:
        got = (f"array of shape {tuple(out.shape)} and dtype {out.dtype}"
               if isinstance(out, (np.ndarray, Tracer)) else type(out).__name__)
        raise TypeError(f"lucid.grad: the function must return a scalar float (a 0-d float32/"
                        f"float64 array, e.g. from lucid.numpy.mean), got {got}")
    return out


def grad(f, argnums=0, has_aux: bool = False):
    """Create a function returning the gradient of scalar ``f`` w.r.t. ``argnums``.

    Returns:
      ``grads`` or ``(grads, aux)`` with has_aux (JAX semantics).
    """
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        value, grads = vg(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return wrapped
