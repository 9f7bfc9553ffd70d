"""Optimizers with Optax semantics: pure ``(init, update)`` pairs over parameter pytrees.

    opt = lucid.optim.adamw(lucid.optim.warmup_cosine_decay_schedule(0.0, 4e-3, 100, 1000))
    opt_state = opt.init(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    params = lucid.optim.apply_updates(params, updates)

States are pytrees of arrays with an int64 0-d ``count`` (checkpoint them with
``lucid.tree.flatten_with_path``; restore with ``lucid.tree.unflatten`` against the
structure of ``opt.init(params)``). A ``None`` gradient leaf (``lucid.grad`` gives
``None`` for non-differentiable leaves) gets a ``None`` update and keeps its state.
Updates and states keep each parameter's dtype; gradients are cast to it.

On a CUDA device (``lucid.DeviceArray`` leaves, e.g. ``lucid.device_put(params, "cuda")``)
the same optimizers run the CUDA kernels and keep everything there: ``init`` makes the
state (count included) on the parameters' device, a host state moved with
``lucid.device_put`` works too, and a step copies nothing to the host except one 8-byte
step-count read per learning-rate schedule (schedules are Python functions of the step).
Parameters, gradients and state must live on one device.
"""
from ._adam import adam, adamw
from ._base import EmptyState, GradientTransformation, apply_updates, chain, global_norm, identity
from ._schedules import (Schedule, constant_schedule, cosine_decay_schedule, exponential_decay,
                         join_schedules, linear_schedule, piecewise_constant_schedule,
                         step_schedule, warmup_cosine_decay_schedule)
from ._sgd import SgdState, sgd
from ._transforms import (ScaleByAdamState, ScaleByScheduleState, TraceState, add_decayed_weights,
                          clip_by_global_norm, default_weight_decay_mask, scale, scale_by_adam,
                          scale_by_learning_rate, scale_by_schedule, trace)

__all__ = [
    "GradientTransformation", "EmptyState", "ScaleByAdamState", "ScaleByScheduleState",
    "TraceState", "SgdState", "Schedule",
    "sgd", "adam", "adamw",
    "apply_updates", "chain", "identity", "global_norm",
    "scale", "scale_by_schedule", "scale_by_learning_rate", "scale_by_adam", "trace",
    "add_decayed_weights", "clip_by_global_norm", "default_weight_decay_mask",
    "constant_schedule", "linear_schedule", "cosine_decay_schedule", "exponential_decay",
    "warmup_cosine_decay_schedule", "piecewise_constant_schedule", "step_schedule",
    "join_schedules",
]
