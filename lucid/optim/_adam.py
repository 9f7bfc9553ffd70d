"""Adam and AdamW as single fused transformations (one Numba pass per parameter leaf)."""
from __future__ import annotations

from ._base import (GradientTransformation, check_learning_rate, check_scalar, check_state,
                    is_float_array, learning_rate_at, new_count, zeros_like_params)
from ._transforms import (ScaleByAdamState, adam_tree_update, check_adam_args, check_nesterov,
                          default_weight_decay_mask, leaves_of, weight_decay_mask_leaves)

__all__ = ["adam", "adamw"]


def adam(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
         eps_root: float = 0.0, *, nesterov: bool = False) -> GradientTransformation:
    """Adam (Kingma & Ba), as ``optax.adam`` / ``torch.optim.Adam``.

    Args:
      learning_rate: a float or a schedule (callable step -> learning rate).
      b1, b2: decay rates of the first and second moment estimates, in [0, 1).
      eps: added to the denominator ``sqrt(v_hat) + eps``.
      eps_root: added inside the square root (0 as in Optax/PyTorch).
      nesterov: NAdam, as ``optax.adam(..., nesterov=True)`` (Dozat 2016): at step t,
        ``m_hat = b1 * m_t / (1 - b1**(t+1)) + (1 - b1) * g_t / (1 - b1**t)``.
    Returns:
      a GradientTransformation whose state is ``ScaleByAdamState(count, mu, nu)``.
    """
    return _adam_family("lucid.optim.adam", learning_rate, (b1, b2, eps, eps_root, nesterov),
                        0.0, None)


def adamw(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 1e-4, mask=default_weight_decay_mask,
          eps_root: float = 0.0, *, nesterov: bool = False) -> GradientTransformation:
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), as ``optax.adamw`` /
    ``torch.optim.AdamW``: ``update = -lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)``.

    Args:
      learning_rate: a float or a schedule (callable step -> learning rate).
      b1, b2, eps, eps_root: as in :func:`adam`.
      weight_decay: the decoupled decay rate (multiplied by the learning rate).
      mask: which leaves decay: a tree of bools shaped like the params, a callable
        params -> such a tree, or None for every leaf. The default is timm's rule: only
        leaves with ndim > 1, so biases, norm parameters and layer scale never decay.
        Deliberate difference from Optax, whose default ``mask=None`` decays every leaf
        (pass ``mask=None`` for Optax's behaviour).
      nesterov: NAdamW: Adam's ``m_hat`` as in :func:`adam` with ``nesterov=True``.
    Returns:
      a GradientTransformation whose state is ``ScaleByAdamState(count, mu, nu)``.
    """
    return _adam_family("lucid.optim.adamw", learning_rate, (b1, b2, eps, eps_root, nesterov),
                        weight_decay, mask)


def _adam_family(name, learning_rate, adam_args, weight_decay, mask):
    learning_rate = check_learning_rate(name, learning_rate)
    b1, b2, eps, eps_root, nesterov = adam_args
    b1, b2, eps, eps_root = check_adam_args(name, b1, b2, eps, eps_root)
    nesterov = check_nesterov(name, nesterov)
    wd = check_scalar(name, "weight_decay", weight_decay, lo=0.0)
    if mask is not None and not callable(mask) and wd == 0.0:
        mask = None  # nothing decays; do not insist that the mask matches

    def init(params):
        return ScaleByAdamState(new_count(params), zeros_like_params(params),
                                zeros_like_params(params))

    def update(grads, state, params=None):
        check_state(name, state, ScaleByAdamState)
        if params is None and wd != 0.0:
            raise ValueError(f"{name}: weight decay needs the parameters: call "
                             "update(grads, state, params)")
        treedef, paths, ref, ups, (mus, nus) = leaves_of(name, grads, params, state.mu, state.nu)
        decay = (weight_decay_mask_leaves(name, mask, params, treedef) if wd != 0.0
                 else [False] * len(ups))
        lr = learning_rate_at(name, learning_rate, state.count)
        likes = [p if params is not None else (mu if is_float_array(mu) else None)
                 for p, mu in zip(ref, mus)]
        wds = [wd if d else 0.0 for d in decay]
        return adam_tree_update(name, treedef, (paths, ups, likes, mus, nus, wds), state.count,
                                (b1, b2, eps, eps_root, nesterov), -lr)

    return GradientTransformation(init, update)
