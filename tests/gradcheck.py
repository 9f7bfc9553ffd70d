"""Finite-difference checks of VJPs, shared by the test modules.

``check_vjp`` compares <t, vjp(c)> against the central difference
(<f(x + eps t), c> - <f(x - eps t), c>) / (2 eps) in float64, for a random
direction t over every differentiated argument and a random cotangent c.
"""
import numpy as np

import lucid


def _dot(a, b):
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


def check_vjp(f, args, argnums=None, *, eps=1e-6, rtol=1e-5, atol=1e-8, seed=0):
    """Assert that lucid.vjp of ``f`` at ``args`` matches finite differences.

    Args:
      f: function of positional arrays returning an array (or a tuple of arrays).
      args: the positional arguments (float64 arrays are differentiated).
      argnums: indices of arguments to differentiate (default: every float64 array).
    """
    rng = np.random.default_rng(seed)
    args = list(args)
    if argnums is None:
        argnums = [i for i, a in enumerate(args)
                   if isinstance(a, np.ndarray) and a.dtype == np.float64]
    def f_sub(*diff):
        full = list(args)
        for i, d in zip(argnums, diff):
            full[i] = d
        return f(*full)
    primals = [args[i] for i in argnums]
    out, vjp_fn = lucid.vjp(f_sub, *primals)
    outs = out if isinstance(out, tuple) else (out,)
    cts = tuple(rng.standard_normal(np.shape(o)) for o in outs)
    grads = vjp_fn(cts if isinstance(out, tuple) else cts[0])
    dirs = [rng.standard_normal(p.shape) for p in primals]
    lhs = sum(_dot(t, g) for t, g in zip(dirs, grads))
    def phi(sign):
        moved = [p + sign * eps * t for p, t in zip(primals, dirs)]
        o = f_sub(*moved)
        o = o if isinstance(o, tuple) else (o,)
        return sum(_dot(oi, ci) for oi, ci in zip(o, cts))
    rhs = (phi(+1) - phi(-1)) / (2 * eps)
    assert abs(lhs - rhs) <= atol + rtol * max(abs(lhs), abs(rhs)), \
        f"VJP mismatch: <t, vjp(c)> = {lhs!r}, finite difference = {rhs!r}"
    return lhs, rhs


def rel_err(ours, ref):
    """Scale-free error max|ours - ref| / max|ref|."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-30))
