"""Learning-rate schedules: functions ``step -> value`` with Optax's names and semantics.

``step`` counts the updates already applied, so the first update sees ``schedule(0)``
(e.g. ``warmup_cosine_decay_schedule(0.0, ...)`` makes the very first update zero,
exactly as in Optax). Values are Python floats.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from ._base import check_scalar

__all__ = ["Schedule", "constant_schedule", "linear_schedule", "cosine_decay_schedule",
           "exponential_decay",
           "warmup_cosine_decay_schedule", "piecewise_constant_schedule", "step_schedule",
           "join_schedules"]

Schedule = Callable[[int], float]


def _check_steps(name: str, arg: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise TypeError(f"lucid.optim.{name}: {arg} must be an int, got {type(value).__name__}")
    if int(value) < minimum:
        raise ValueError(f"lucid.optim.{name}: {arg} must be >= {minimum}, got {value}")
    return int(value)


def _count(count, name: str) -> float:
    try:
        c = float(count)
    except (TypeError, ValueError) as e:
        raise TypeError(f"lucid.optim.{name}: the step must be a number, got {count!r}") from e
    if math.isnan(c):
        raise ValueError(f"lucid.optim.{name}: the step is NaN")
    return c


def constant_schedule(value: float) -> Schedule:
    """Always ``value``."""
    value = check_scalar("lucid.optim.constant_schedule", "value", value)
    return lambda count: value


def linear_schedule(init_value: float, end_value: float, transition_steps: int,
                    transition_begin: int = 0) -> Schedule:
    """From ``init_value`` to ``end_value`` linearly over ``transition_steps`` steps starting at
    ``transition_begin``, then constant (``transition_steps == 0``: always ``init_value``)."""
    name = "linear_schedule"
    init_value = check_scalar(f"lucid.optim.{name}", "init_value", init_value)
    end_value = check_scalar(f"lucid.optim.{name}", "end_value", end_value)
    steps = _check_steps(name, "transition_steps", transition_steps, 0)
    begin = _check_steps(name, "transition_begin", transition_begin, 0)

    def schedule(count):
        if steps == 0:
            return init_value
        t = min(max(_count(count, name) - begin, 0.0), steps)
        return (init_value - end_value) * (1.0 - t / steps) + end_value

    return schedule


def exponential_decay(init_value: float, transition_steps: int, decay_rate: float,
                      transition_begin: int = 0, staircase: bool = False,
                      end_value: float | None = None) -> Schedule:
    """``init_value * decay_rate ** ((step - transition_begin) / transition_steps)``, as
    ``optax.exponential_decay``: ``init_value`` up to ``transition_begin``; with
    ``staircase`` the exponent is floored (decay in steps); ``end_value`` bounds the
    value (a floor when decaying, a ceiling when ``decay_rate > 1``).

    Deliberate difference from Optax: where Optax warns and returns a constant schedule
    (``transition_steps <= 0``, ``decay_rate == 0``) or clamps a negative
    ``transition_begin``, lucid raises ValueError; ``decay_rate`` must be positive.

    Args:
      init_value: the value at (and before) ``transition_begin``.
      transition_steps: steps per factor of ``decay_rate``, >= 1.
      decay_rate: the factor per ``transition_steps``, > 0.
      transition_begin: steps before the decay starts, >= 0.
      staircase: decay at whole multiples of ``transition_steps`` only.
      end_value: optional bound on the value.
    Returns:
      a schedule ``step -> float``.
    """
    name = "exponential_decay"
    init_value = check_scalar(f"lucid.optim.{name}", "init_value", init_value)
    steps = _check_steps(name, "transition_steps", transition_steps, 1)
    rate = check_scalar(f"lucid.optim.{name}", "decay_rate", decay_rate, lo=0.0, lo_open=True)
    begin = _check_steps(name, "transition_begin", transition_begin, 0)
    if not isinstance(staircase, bool):
        raise TypeError(f"lucid.optim.{name}: staircase must be a bool, got {staircase!r}")
    end = None if end_value is None else check_scalar(f"lucid.optim.{name}", "end_value",
                                                      end_value)
    clip = max if rate < 1.0 else min

    def schedule(count):
        elapsed = _count(count, name) - begin
        if elapsed <= 0:
            value = init_value
        else:
            p = elapsed / steps
            value = init_value * rate ** (math.floor(p) if staircase else p)
        return value if end is None else clip(value, end)

    return schedule


def cosine_decay_schedule(init_value: float, decay_steps: int, alpha: float = 0.0,
                          exponent: float = 1.0) -> Schedule:
    """Cosine decay from ``init_value`` to ``alpha * init_value`` over ``decay_steps``, then
    constant: ``init_value * ((1 - alpha) * (0.5 * (1 + cos(pi * t / decay_steps)))**exponent
    + alpha)``."""
    name = "cosine_decay_schedule"
    init_value = check_scalar(f"lucid.optim.{name}", "init_value", init_value)
    steps = _check_steps(name, "decay_steps", decay_steps, 1)
    alpha = check_scalar(f"lucid.optim.{name}", "alpha", alpha)
    exponent = check_scalar(f"lucid.optim.{name}", "exponent", exponent, lo=0.0, lo_open=True)

    def schedule(count):
        t = min(max(_count(count, name), 0.0), steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * t / steps))
        return init_value * ((1.0 - alpha) * cosine ** exponent + alpha)

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """``schedules[i + 1](step - boundaries[i])`` once ``step >= boundaries[i]``."""
    if len(schedules) != len(boundaries) + 1 or not all(callable(s) for s in schedules):
        raise ValueError("lucid.optim.join_schedules: expected n + 1 callables for n boundaries, "
                         f"got {len(schedules)} schedules and {len(boundaries)} boundaries")
    bounds = [_check_steps("join_schedules", "boundary", b, 0) for b in boundaries]
    if bounds != sorted(bounds):
        raise ValueError(f"lucid.optim.join_schedules: boundaries must be sorted, got {bounds}")

    def schedule(count):
        c = _count(count, "join_schedules")
        chosen, offset = schedules[0], 0
        for s, b in zip(schedules[1:], bounds):
            if c >= b:
                chosen, offset = s, b
        return chosen(c - offset)

    return schedule


def warmup_cosine_decay_schedule(init_value: float, peak_value: float, warmup_steps: int,
                                 decay_steps: int, end_value: float = 0.0,
                                 exponent: float = 1.0) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then cosine
    decay to ``end_value`` at step ``decay_steps`` (which *includes* the warm-up, as in Optax).
    """
    name = "lucid.optim.warmup_cosine_decay_schedule"
    peak_value = check_scalar(name, "peak_value", peak_value)
    end_value = check_scalar(name, "end_value", end_value)
    warmup_steps = _check_steps("warmup_cosine_decay_schedule", "warmup_steps", warmup_steps, 0)
    decay_steps = _check_steps("warmup_cosine_decay_schedule", "decay_steps", decay_steps, 1)
    if decay_steps <= warmup_steps:
        raise ValueError(f"{name}: decay_steps ({decay_steps}) must be larger than warmup_steps "
                         f"({warmup_steps}); it is the total length including the warm-up")
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    return join_schedules(
        [linear_schedule(init_value, peak_value, warmup_steps),
         cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent)],
        [warmup_steps])


def piecewise_constant_schedule(init_value: float,
                                boundaries_and_scales: dict | None = None) -> Schedule:
    """``init_value`` multiplied by every ``scale`` whose boundary step has been reached."""
    name = "lucid.optim.piecewise_constant_schedule"
    init_value = check_scalar(name, "init_value", init_value)
    items = sorted((boundaries_and_scales or {}).items())
    for b, s in items:
        _check_steps("piecewise_constant_schedule", "boundary", b, 0)
        check_scalar(name, "scale", s, lo=0.0)

    def schedule(count):
        c = _count(count, "piecewise_constant_schedule")
        v = init_value
        for b, s in items:
            if c >= b:
                v *= float(s)
        return v

    return schedule


def step_schedule(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """PyTorch's StepLR over update steps: ``init_value * gamma ** (step // step_size)``."""
    name = "lucid.optim.step_schedule"
    init_value = check_scalar(name, "init_value", init_value)
    step_size = _check_steps("step_schedule", "step_size", step_size, 1)
    gamma = check_scalar(name, "gamma", gamma, lo=0.0)

    def schedule(count):
        c = max(_count(count, "step_schedule"), 0.0)
        return init_value * gamma ** (int(c) // step_size)

    return schedule
