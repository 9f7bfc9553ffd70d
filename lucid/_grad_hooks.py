"""The grad-ready hook: a per-thread callback told each differentiated leaf's gradient as
soon as the backward has finished it (the seam ``lucid.distributed`` overlaps its
all-reduce through)."""
from __future__ import annotations

import contextlib
import threading

from ._core import Tracer
from . import tree as _tree

__all__ = ["grad_ready_hook", "active_grad_hook"]

_hooks = threading.local()


def _hook_reporter(boxed, where):
    """(on_final, finish) calling the active grad-ready hook, or (None, no-op)."""
    from ._autodiff import _cast, _zeros
    hook = getattr(_hooks, "grad_ready", None)
    if hook is None:
        return None, lambda: None
    reported = set()
    leaves = [_tree.leaves(b, is_leaf=lambda x: isinstance(x, Tracer)) for b in boxed]

    def on_final(node, ct):
        reported.add(node)
        pos, index = where[node]
        like = _find_leaf(leaves[pos], node)
        g = _zeros(like.primal) if ct is None else _cast(ct, like.dtype)
        if isinstance(g, Tracer):  # inside lucid.jit: an effect of the compiled program
            from ._jit import host_callback
            host_callback(hook, g, args=(pos, index))
        else:
            hook(pos, index, g)

    def finish():  # inputs no output depends on: zero gradients, reported last
        for node in sorted(where.keys() - reported, key=lambda n: n.id):
            on_final(node, None)
    return on_final, finish


def _find_leaf(leaves, node):
    from ._autodiff import GradTracer
    for leaf in leaves:
        if isinstance(leaf, GradTracer) and leaf.node is node:
            return leaf
    raise RuntimeError("lucid internal error: differentiated input not found")


@contextlib.contextmanager
def grad_ready_hook(fn):
    """Within this context, every ``vjp``/``grad`` backward pass on this thread calls
    ``fn(argument_position, leaf_index, gradient)`` once per differentiated leaf, as soon as
    that leaf's gradient is final (before the rest of the backward has run).

    ``argument_position`` counts the differentiated arguments (0 for ``argnums=0``);
    ``leaf_index`` is the leaf's position in ``lucid.tree.leaves`` of that argument. ``fn``
    must copy what it keeps and not modify the gradient in place. This is the seam that
    ``lucid.distributed`` uses to overlap its gradient all-reduce with the backward.
    Inside ``lucid.jit`` the hook runs when the compiled program has produced the
    gradient (an effect of the program, in program order).
    """
    previous = getattr(_hooks, "grad_ready", None)
    _hooks.grad_ready = fn
    try:
        yield
    finally:
        _hooks.grad_ready = previous


def active_grad_hook():
    """The grad-ready hook active on this thread, or None (part of lucid.jit's cache key)."""
    return getattr(_hooks, "grad_ready", None)
