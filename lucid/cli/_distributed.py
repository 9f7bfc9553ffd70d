"""What a training run does differently under ``mpiexec -n N lucid train`` (data parallelism).

``--batch-size`` is the global batch: rank r trains on its rows ``shard_bounds(B, r, N)``
of every batch, which are the rows a single process would train on, with the same random
draws (``sample_shard``). Gradients are summed by a :class:`lucid.distributed.GradSync`;
parameters, BatchNorm state and optimizer state start identical on every rank (checked by
hash, then broadcast from rank 0). Rank 0 alone writes checkpoints, logs and weights.
"""
from __future__ import annotations

import contextlib

from .. import distributed
from ..training import TrainState, make_train_step
from . import UserError


def check_world(batch_size: int, world: int) -> None:
    if batch_size < world:
        raise UserError(f"--batch-size {batch_size} is the global batch and must be at least "
                        f"the number of ranks ({world}), so every rank gets a sample")


def prepare(run) -> None:
    """Make every rank start from rank 0's state, after checking that they all agree."""
    if run.world == 1:
        return
    import dataclasses
    import json
    import numpy as np
    ts = run.ts
    config = json.dumps(dataclasses.asdict(run.cfg), sort_keys=True).encode()
    # what each rank built or read on its own must already agree: the same settings and
    # the same parameters (a different --seed, checkpoint file or code version shows here)
    distributed.check_same({"config": np.frombuffer(config, np.uint8), "params": ts.params,
                            "step": np.int64(ts.step)}, "settings or starting parameters")
    params, state, opt_state = distributed.broadcast((ts.params, ts.state, ts.opt_state), root=0)
    run.ts = TrainState(params, state, opt_state, ts.step)
    run.grad_sync = distributed.GradSync(params)
    run.train_step = make_train_step(run.model.apply, run.optimizer,
                                     label_smoothing=run.cfg.label_smoothing,
                                     grad_sync=run.grad_sync)


@contextlib.contextmanager
def step_context(run):
    """Around one training step: this rank's rows of the global batch for the model's
    random draws, and global BatchNorm statistics with ``--sync-bn``."""
    if run.world == 1:
        yield
        return
    lo, _ = distributed.shard_bounds(run.cfg.batch_size, run.rank, run.world)
    with contextlib.ExitStack() as stack:
        stack.enter_context(distributed.sample_shard(lo, run.cfg.batch_size))
        if run.cfg.sync_bn:
            stack.enter_context(distributed.sync_batch_norm())
        yield


def sync_state(run) -> None:
    """Average per-rank BatchNorm running statistics (without --sync-bn they differ)."""
    if run.world == 1 or run.cfg.sync_bn or not run.ts.state:
        return
    from .. import tree
    leaves, treedef = tree.flatten(run.ts.state)
    floats = [l for l in leaves if l.dtype.kind == "f"]
    means = iter(distributed.allreduce(floats, op="mean"))
    state = treedef.unflatten([next(means) if l.dtype.kind == "f" else l for l in leaves])
    run.ts = run.ts._replace(state=state)


def global_partial(run) -> dict:
    """The epoch's running sums over all ranks (rank 0 keeps its own timing)."""
    p = run.partial
    if run.world == 1:
        return dict(p)
    sums = distributed.allreduce({"loss": p["loss"], "correct": p["correct"],
                                  "count": p["count"]}, op="sum")
    return {**sums, "seconds": p["seconds"]}


def check_in_step(run) -> None:
    """At a checkpoint: every rank must still hold the same parameters."""
    if run.world > 1:
        distributed.check_same(run.ts.params, "parameters at step %d" % run.ts.step)
