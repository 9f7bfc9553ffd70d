"""Composable gradient transformations (Optax names): scale, Adam scaling, momentum, weight
decay, clipping. Combine them with :func:`lucid.optim.chain`; ``adam``/``adamw``/``sgd``
are the same maths fused into one kernel per leaf.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import _leaf
from ._base import (EmptyState, GradientTransformation, as_update, c_array, check_scalar,
                    check_state, describe_path, flatten_none, flatten_up_to, global_norm,
                    is_float_array, learning_rate_at, new_count, next_count, zeros_like_params)
from ._leaf import empty_like, flat, is_device, kernels_of

__all__ = ["ScaleByAdamState", "ScaleByScheduleState", "TraceState", "scale",
           "scale_by_schedule", "scale_by_learning_rate", "scale_by_adam", "trace",
           "add_decayed_weights", "clip_by_global_norm", "default_weight_decay_mask"]


class ScaleByAdamState(NamedTuple):
    """Adam's state: the update count (int64 0-d) and the first and second moments."""

    count: np.ndarray
    mu: Any
    nu: Any


class ScaleByScheduleState(NamedTuple):
    count: np.ndarray


class TraceState(NamedTuple):
    """The momentum buffer of :func:`trace`."""

    trace: Any


def leaves_of(name: str, updates, params, *trees):
    """Flatten ``updates`` and ``trees`` against the structure of ``params`` (or of ``updates``).

    Returns ``(treedef, paths, ref_leaves, update_leaves, [tree_leaves, ...])``.
    """
    ref = updates if params is None else params
    ref_leaves, treedef, paths = flatten_none(ref)
    ups = ref_leaves if params is None else flatten_up_to(treedef, updates, name)
    return treedef, paths, ref_leaves, ups, [flatten_up_to(treedef, t, name) for t in trees]


def state_array(name: str, path, s, like):
    """A state leaf checked against its parameter/update ``like`` (shape and device),
    C-contiguous in its dtype."""
    if not is_float_array(s) or s.shape != like.shape:
        got = (f"shape {s.shape}" if isinstance(s, np.ndarray) or is_device(s)
               else type(s).__name__)
        raise ValueError(f"{name}: the optimizer state at {describe_path(path)} has {got}, "
                         f"expected a float array of shape {like.shape} (state from init of "
                         "other params?)")
    _leaf.check_same_place(name, describe_path(path), like, s,
                           what=("parameter/update", "optimizer state"))
    return c_array(s, like.dtype)


def weight_decay_mask_leaves(name: str, mask, params, treedef) -> list:
    """Resolve ``mask`` (None = all, a bool, a tree of bools, or params -> tree) to leaves."""
    if mask is None:
        return [True] * treedef.num_leaves
    if callable(mask):
        mask = mask(params)
    if isinstance(mask, (bool, np.bool_)):
        return [bool(mask)] * treedef.num_leaves
    out = []
    for m in flatten_up_to(treedef, mask, f"{name} (mask)"):
        if m is not None and not isinstance(m, (bool, np.bool_)):
            raise TypeError(f"{name}: mask leaves must be bools, got {type(m).__name__}")
        out.append(bool(m))
    return out


def default_weight_decay_mask(params):
    """timm's rule: decay only float leaves with ``ndim > 1`` (conv/linear weights); biases,
    norm weights and layer scale (gamma) are skipped."""
    leaves, treedef, _ = flatten_none(params)
    return treedef.unflatten([is_float_array(p) and p.ndim > 1 for p in leaves])


def _map_updates(name, updates, fn):
    """Apply ``fn(u)`` to every non-None update leaf (checked to be a float array)."""
    leaves, treedef, paths = flatten_none(updates)
    out = [None if u is None else fn(as_update(name, path, u, _itself(u)))
           for u, path in zip(leaves, paths)]
    return treedef.unflatten(out)


def _itself(u):
    """``u`` as the array it is checked against (itself; NumPy-converted on the host)."""
    return u if is_device(u) else np.asarray(u)


def scale(step_size: float) -> GradientTransformation:
    """Multiply updates by ``step_size``."""
    name = "lucid.optim.scale"
    step_size = check_scalar(name, "step_size", step_size)

    def update(updates, state, params=None):
        return _map_updates(name, updates, lambda u: _leaf.scaled(u, step_size)), state

    return GradientTransformation(lambda params: EmptyState(), update)


def scale_by_schedule(step_size_fn) -> GradientTransformation:
    """Multiply updates by ``step_size_fn(count)``; count is 0 for the first update."""
    name = "lucid.optim.scale_by_schedule"
    if not callable(step_size_fn):
        raise TypeError(f"{name}: expected a callable step -> factor, got "
                        f"{type(step_size_fn).__name__}")

    def update(updates, state, params=None):
        check_state(name, state, ScaleByScheduleState)
        factor = learning_rate_at(name, step_size_fn, state.count)
        out = _map_updates(name, updates, lambda u: _leaf.scaled(u, factor))
        return out, ScaleByScheduleState(next_count(state.count))

    return GradientTransformation(lambda params: ScaleByScheduleState(new_count(params)), update)


def scale_by_learning_rate(learning_rate, *, flip_sign: bool = True) -> GradientTransformation:
    """Multiply by ``-learning_rate`` (a float or a schedule), making a descent step."""
    sign = -1.0 if flip_sign else 1.0
    if callable(learning_rate):
        return scale_by_schedule(lambda count: sign * float(learning_rate(count)))
    lr = check_scalar("lucid.optim.scale_by_learning_rate", "learning_rate", learning_rate, lo=0.0)
    return scale(sign * lr)


def check_nesterov(name: str, nesterov) -> bool:
    if not isinstance(nesterov, (bool, np.bool_)):
        raise TypeError(f"{name}: nesterov must be a bool, got {type(nesterov).__name__}")
    return bool(nesterov)


def check_adam_args(name: str, b1, b2, eps, eps_root=0.0):
    return (check_scalar(name, "b1", b1, lo=0.0, hi=1.0, hi_open=True),
            check_scalar(name, "b2", b2, lo=0.0, hi=1.0, hi_open=True),
            check_scalar(name, "eps", eps, lo=0.0),
            check_scalar(name, "eps_root", eps_root, lo=0.0))


def adam_leaf(name, path, g, p, mu, nu, hyper, wd, scale_):
    """One leaf of Adam(W); returns ``(update, mu, nu)``. ``hyper`` = (b1, b2, eps, eps_root,
    nesterov, bias): ``bias`` is (bc1, bc2, bc1_next), or a device step count from which the
    kernel computes them on the device. ``p`` is read only when ``wd != 0``."""
    g = as_update(name, path, g, p)
    mu, nu = state_array(name, path, mu, p), state_array(name, path, nu, p)
    mu_out, nu_out, u_out = empty_like(mu), empty_like(nu), empty_like(g)
    p_flat = flat(c_array(p)) if wd != 0.0 else flat(g)
    b1, b2, eps, eps_root, nesterov, bias = hyper
    args = (flat(g), p_flat, flat(mu), flat(nu))
    outs = (flat(mu_out), flat(nu_out), flat(u_out))
    if is_device(bias):
        _leaf.check_same_place(name, describe_path(path), g, bias,
                               what=("update", "step count"))
        kernels_of(g).adam_update_counted(*args, bias.raw, b1, b2, eps, eps_root, nesterov,
                                          scale_, wd, *outs)
    else:
        kernels_of(g).adam_update(*args, b1, b2, eps, eps_root, *bias, nesterov, scale_, wd,
                                  *outs)
    return u_out, mu_out, nu_out


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                  eps_root: float = 0.0, *, nesterov: bool = False) -> GradientTransformation:
    """Adam's preconditioning: ``m_hat / (sqrt(v_hat + eps_root) + eps)`` with bias correction
    (``nesterov``: Optax's NAdam ``m_hat``, see :func:`lucid.optim.adam`)."""
    name = "lucid.optim.scale_by_adam"
    b1, b2, eps, eps_root = check_adam_args(name, b1, b2, eps, eps_root)
    nesterov = check_nesterov(name, nesterov)

    def init(params):
        return ScaleByAdamState(new_count(params), zeros_like_params(params),
                                zeros_like_params(params))

    def update(updates, state, params=None):
        check_state(name, state, ScaleByAdamState)
        treedef, paths, _, ups, (mus, nus) = leaves_of(name, updates, params, state.mu, state.nu)
        likes = [mu if is_float_array(mu) else None for mu in mus]
        return adam_tree_update(name, treedef, (paths, ups, likes, mus, nus, [0.0] * len(ups)),
                                state.count, (b1, b2, eps, eps_root, nesterov), 1.0)

    return GradientTransformation(init, update)


def adam_tree_update(name, treedef, leaves, count, betas_eps, scale_):
    """Adam(W) over one tree's leaves: ``(updates, ScaleByAdamState)``.

    ``leaves`` = (paths, updates, likes, mus, nus, weight decays), one entry per leaf;
    ``betas_eps`` = (b1, b2, eps, eps_root, nesterov); ``count`` is the state's step count.
    """
    b1, b2, eps, eps_root, nesterov = betas_eps
    if is_device(count):  # bias corrections from the count on the device: no host read
        bias = count
    else:
        t = int(count) + 1
        bias = (1.0 - b1 ** t, 1.0 - b2 ** t, 1.0 - b1 ** (t + 1))
    hyper = (b1, b2, eps, eps_root, bool(nesterov), bias)
    out, new_mu, new_nu = [], [], []
    for path, g, like, mu, nu, wd in zip(*leaves):
        if g is not None:
            g, mu, nu = adam_leaf(name, path, g, like, mu, nu, hyper, wd, scale_)
        out.append(g)
        new_mu.append(mu)
        new_nu.append(nu)
    return treedef.unflatten(out), ScaleByAdamState(
        next_count(count), treedef.unflatten(new_mu), treedef.unflatten(new_nu))


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Momentum (no dampening): ``t' = g + decay * t``; the update is ``t'`` or, with
    ``nesterov``, ``g + decay * t'``."""
    name = "lucid.optim.trace"
    decay = check_scalar(name, "decay", decay, lo=0.0)

    def update(updates, state, params=None):
        check_state(name, state, TraceState)
        treedef, paths, _, ups, (bufs,) = leaves_of(name, updates, params, state.trace)
        out, new_bufs = [], []
        for path, g, buf in zip(paths, ups, bufs):
            if g is not None:
                g = as_update(name, path, g, buf if is_float_array(buf) else None)
                buf = state_array(name, path, buf, g)
                u_out, buf_out = empty_like(g), empty_like(buf)
                kernels_of(g).sgd_momentum_update(flat(g), flat(g), flat(buf), decay,
                                                  bool(nesterov), 0.0, 1.0, flat(buf_out),
                                                  flat(u_out))
                g, buf = u_out, buf_out
            out.append(g)
            new_bufs.append(buf)
        return treedef.unflatten(out), TraceState(treedef.unflatten(new_bufs))

    return GradientTransformation(lambda params: TraceState(zeros_like_params(params)), update)


def add_decayed_weights(weight_decay: float = 0.0, mask=None) -> GradientTransformation:
    """Add ``weight_decay * params`` to the updates of the leaves selected by ``mask`` (None:
    all; a tree of bools; or a callable params -> tree of bools)."""
    name = "lucid.optim.add_decayed_weights"
    wd = check_scalar(name, "weight_decay", weight_decay, lo=0.0)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError(f"{name}: needs the parameters: call update(grads, state, params)")
        treedef, paths, ref, ups, _ = leaves_of(name, updates, params)
        decay = weight_decay_mask_leaves(name, mask, params, treedef)
        out = []
        for path, u, p, d in zip(paths, ups, ref, decay):
            if u is not None:
                u = as_update(name, path, u, p)
                if d and wd != 0.0:
                    u = _leaf.plus_scaled(u, p, wd)
            out.append(u)
        return treedef.unflatten(out), state

    return GradientTransformation(lambda params: EmptyState(), update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Scale all updates by ``max_norm / norm`` when their global L2 norm exceeds ``max_norm``."""
    name = "lucid.optim.clip_by_global_norm"
    max_norm = check_scalar(name, "max_norm", max_norm, lo=0.0, lo_open=True)

    def update(updates, state, params=None):
        leaves = [u for u in flatten_none(updates)[0] if u is not None]
        if any(is_device(u) for u in leaves):  # the norm and the decision stay on the device
            norm, norm_in = _leaf.device_norm(name, leaves), {}
            return _map_updates(name, updates,
                                lambda u: _leaf.clipped(u, norm, max_norm, norm_in)), state
        norm = global_norm(updates)
        if norm < max_norm:
            return updates, state
        return _map_updates(name, updates, lambda u: _clip(u, norm, max_norm)), state

    return GradientTransformation(lambda params: EmptyState(), update)


def _clip(u: np.ndarray, norm: float, max_norm: float) -> np.ndarray:
    out = np.divide(u, norm, out=np.empty_like(u))  # (u / norm) * max_norm, as Optax rounds it
    return np.multiply(out, max_norm, out=out)
