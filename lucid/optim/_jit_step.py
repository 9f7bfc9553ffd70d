"""One optimizer step (``update`` then ``apply_updates``) as a primitive, so a whole
training step, optimizer included, compiles into one ``lucid.jit`` program.

The step is one equation whose inputs are the gradient, optimizer-state and parameter
leaves and whose outputs are the new parameters and state: optimizer states keep their
structure, shapes and dtypes from step to step (Optax's contract), which is its shape
rule. Its implementation runs the eager optimizer (its fused Numba kernels, schedules
evaluated at the concrete step count), so compiled and eager training give identical
numbers. It reads all its inputs before it writes an output, so with ``donate_argnums``
the new parameters and state are written into the old buffers.
"""
from __future__ import annotations

from .. import tree as _tree
from .._core import Primitive, Tracer, aval_of, bind
from ._base import apply_updates

__all__ = ["optimizer_step"]

optimizer_step_p = Primitive("optimizer_step", multiple_results=True)
optimizer_step_p.inplace_ok = True


@optimizer_step_p.def_abstract
def _optimizer_step_abstract(*leaves, optimizer, defs, counts):
    ng, ns, npar = counts
    return tuple(leaves[ng + ns:]) + tuple(leaves[ng:ng + ns])


@optimizer_step_p.def_impl
def _optimizer_step_impl(*leaves, out, optimizer, defs, counts):
    for dst, src in step_results(leaves, out, optimizer, defs, counts):
        dst[...] = src


def step_results(leaves, out, optimizer, defs, counts) -> list:
    """Run one eager step on ``leaves``; ``(out buffer, result)`` pairs, each checked to
    match its buffer's shape and dtype (a backend's impl copies each result in)."""
    grads, state, params = _unflatten(leaves, defs, counts)
    updates, new_state = optimizer.update(grads, state, params)
    new_params = apply_updates(params, updates)
    results = _tree.leaves(new_params) + _tree.leaves(new_state)
    if len(results) != len(out):
        raise ValueError("lucid.optim: the optimizer changed the structure of its state or "
                         "parameters between steps; it cannot run inside lucid.jit")
    for dst, src in zip(out, results):
        if tuple(dst.shape) != tuple(src.shape) or dst.dtype != src.dtype:
            raise ValueError(f"lucid.optim: the optimizer returned a {src.dtype}{src.shape} leaf "
                             f"for a {dst.dtype}{dst.shape} one; it cannot run inside lucid.jit")
    return list(zip(out, results))


optimizer_step_p.def_vjp(lambda cts, *xs, **_: (None,) * len(xs))  # not differentiated


def _unflatten(leaves, defs, counts):
    ng, ns, _ = counts
    g_def, s_def, p_def = defs
    return (g_def.unflatten(leaves[:ng]), s_def.unflatten(leaves[ng:ng + ns]),
            p_def.unflatten(leaves[ng + ns:]))


def optimizer_step(optimizer, grads, opt_state, params):
    """``(new_params, new_opt_state)`` after one step of ``optimizer``: its ``update`` and
    :func:`apply_updates`; under ``lucid.jit`` one primitive of the program.

    Args:
      optimizer: a ``lucid.optim`` GradientTransformation.
      grads, opt_state, params: pytrees as for ``optimizer.update``.
    Returns:
      the new parameters and optimizer state.
    """
    traced = any(isinstance(l, Tracer) for t in (grads, opt_state, params)
                 for l in _tree.leaves(t))
    if not traced:
        updates, new_state = optimizer.update(grads, opt_state, params)
        return apply_updates(params, updates), new_state
    flat = [_tree.flatten(t) for t in (grads, opt_state, params)]
    leaves = tuple(l for ls, _ in flat for l in ls)
    defs = tuple(d for _, d in flat)
    counts = tuple(len(ls) for ls, _ in flat)
    for l in leaves:
        aval_of(l)  # every leaf must be an array (raises on other objects)
    outs = bind(optimizer_step_p, *leaves, optimizer=optimizer, defs=defs, counts=counts)
    npar = counts[2]
    return defs[2].unflatten(list(outs[:npar])), defs[1].unflatten(list(outs[npar:]))
