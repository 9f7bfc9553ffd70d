"""A training run: configuration, data, model, optimizer, the epoch loop and its checkpoints.

Every random choice is a pure function of the seed, the epoch and the step (batch
order and augmentation: ``fold_in(data_key, epoch)``, then per batch inside
``lucid.data.batches``; drop path: ``fold_in(train_key, step)``), so a run resumed from
any checkpoint ends with exactly the parameters of an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time

from .. import random as lrandom
from .._device import device_get, device_put
from ..checkpoint import (CheckpointError, load_checkpoint, restore_leaves, restore_tree,
                          save_checkpoint)
from ..training import NonFiniteLossError, TrainState, evaluate, make_train_step, step_key
from . import UserError
from . import _distributed as dist
from ._interrupt import InterruptGuard
from ._data import load_datasets
from ._model import FAMILIES, build_model, check_model_name
from ._report import EpochBar, write_logs

CHECKPOINT = "last.safetensors"


@dataclasses.dataclass
class RunConfig:
    """Every setting that determines a run (saved in its checkpoints)."""
    model: str = "convnext"
    depths: list | None = None
    dims: list | None = None
    data: str = "synthetic"
    image_size: int = 32
    epochs: int = 5
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 4e-3
    schedule: str = "cosine"
    warmup_epochs: float = 0.5
    weight_decay: float = 0.05
    clip_norm: float = 0.0
    drop_path: float = 0.0
    label_smoothing: float = 0.1
    augment: bool = False   # the embedded shapes already vary in position, size and colour
    seed: int = 0
    sync_bn: bool = False   # data parallel: BatchNorm statistics over the global batch
    train_size: int = 10000
    test_size: int = 2000

    def check(self) -> None:
        """Refuse settings no run can use: non-positive sizes, and non-finite or
        out-of-range numbers (``--lr inf``, ``--clip-norm nan``), also from a tampered
        checkpoint's saved config."""
        for name in ("epochs", "batch_size", "image_size", "train_size", "test_size", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{_flag(name)} must be an int, got {value!r}")
            if name != "seed" and value < 1:
                raise UserError(f"{_flag(name)} must be at least 1, got {value}")
        for name in ("lr", "warmup_epochs", "weight_decay", "clip_norm", "drop_path",
                     "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise UserError(f"{_flag(name)} must be a finite number, got {value!r}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        for name in ("warmup_epochs", "weight_decay", "clip_norm"):
            if getattr(self, name) < 0:
                raise UserError(f"{_flag(name)} must be >= 0 (0 turns it off), got "
                                f"{getattr(self, name)}")
        if not 0 <= self.drop_path < 1:
            raise UserError(f"--drop-path must be in [0, 1), got {self.drop_path}")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _keys(seed: int) -> dict:
    k_init, k_data, k_train = lrandom.split(lrandom.key(seed), 3)
    return {"init": k_init, "data": k_data, "train": k_train}


class Run:
    """A training run in progress; build with :meth:`start` or :meth:`resume`, then :meth:`fit`."""

    def __init__(self, cfg: RunConfig, out: str, checkpoint_every: int = 0, quiet: bool = False,
                 device: str = "cpu"):
        cfg.check()
        check_model_name(cfg.model, extra=FAMILIES)
        from .. import distributed
        self.world, self.rank = distributed.init(), distributed.rank()
        dist.check_world(cfg.batch_size, self.world)
        self.device = _device(device, self.world)
        self.cfg, self.out, self.quiet = cfg, out, quiet or self.rank != 0  # rank 0 reports
        self.checkpoint_every = max(0, int(checkpoint_every))
        self.keys = _keys(cfg.seed)
        self.train_set, self.test_set = load_datasets(cfg)
        if cfg.batch_size > len(self.train_set):
            raise UserError(f"--batch-size {cfg.batch_size} is larger than the training set "
                            f"({len(self.train_set)} images); use a smaller batch size")
        self.steps_per_epoch = len(self.train_set) // cfg.batch_size
        self.model = build_model(cfg, num_classes=len(self.train_set.classes))
        self.optimizer = _optimizer(cfg, self.steps_per_epoch)
        self.train_step = make_train_step(self.model.apply, self.optimizer,
                                          label_smoothing=cfg.label_smoothing)
        self.epoch, self.batch, self.history = 0, 0, []
        self.partial = {"loss": 0.0, "correct": 0.0, "count": 0, "seconds": 0.0}

    @classmethod
    def start(cls, cfg: RunConfig, out: str, **kw) -> "Run":
        run = cls(cfg, out, **kw)
        params, state = run.model.init(run.keys["init"])
        run.ts = device_put(TrainState(params, state, run.optimizer.init(params), 0), run.device)
        dist.prepare(run)
        return run

    @classmethod
    def resume(cls, path: str, out: str, **kw) -> "Run":
        try:
            flat_p, flat_s, opt_leaves, meta = load_checkpoint(path)
        except CheckpointError as e:
            raise UserError(f"cannot resume: {e}") from None
        run = cls(RunConfig(**meta["config"]), out, **kw)
        params_t, state_t = run.model.init(run.keys["init"])
        try:
            params = restore_tree(params_t, flat_p, "params")
            state = restore_tree(state_t, flat_s, "state")
            opt_state = restore_leaves(run.optimizer.init(params), opt_leaves, "optimizer state")
        except CheckpointError as e:
            raise UserError(f"cannot resume from {path}: {e}") from None
        run.ts = device_put(TrainState(params, state, opt_state, int(meta["step"])), run.device)
        run.epoch, run.batch = int(meta["epoch"]), int(meta["batch"])
        run.history, run.partial = meta["history"], meta["partial"]
        if run.rank != 0:  # the saved sums are global: rank 0 carries them on
            run.partial = {"loss": 0.0, "correct": 0.0, "count": 0, "seconds": 0.0}
        dist.prepare(run)
        if not run.quiet:
            print(f"resuming {path} at epoch {run.epoch + 1}, step {run.ts.step}")
        return run

    def fit(self, stop_after_step: int | None = None) -> dict:
        """Train until ``cfg.epochs`` (or, for tests, until ``stop_after_step`` steps)."""
        os.makedirs(self.out, exist_ok=True)
        with InterruptGuard() as self.interrupt:
            while self.epoch < self.cfg.epochs:
                if self._train_epoch(stop_after_step):
                    return {"stopped_at_step": self.ts.step}
                self._end_epoch()
        if self.rank == 0:
            params, state = device_get((self.ts.params, self.ts.state))  # host arrays on disk
            self.model.save_weights(params, state, os.path.join(self.out, "model.safetensors"))
        last = self.history[-1] if self.history else {}
        return {"epochs": self.cfg.epochs, "steps": self.ts.step,
                "test_accuracy": last.get("test_accuracy"), "out": self.out}

    def _train_epoch(self, stop_after_step) -> bool:
        from ..data import RandomCropFlip, batches
        cfg, p = self.cfg, self.partial
        epoch_key = lrandom.fold_in(self.keys["data"], self.epoch)
        bar = EpochBar(self.epoch, cfg.epochs, self.steps_per_epoch, self.batch, self.quiet)
        for x, y in batches(self.train_set, cfg.batch_size, key=epoch_key, shuffle=True,
                            drop_last=True, start_batch=self.batch, shard=(self.rank, self.world),
                            augment=RandomCropFlip() if cfg.augment else None):
            t0 = time.perf_counter()
            try:
                with dist.step_context(self):
                    self.ts, loss, acc = self.train_step(self.ts, x, y,
                                                         step_key(self.keys["train"], self.ts.step))
            except NonFiniteLossError as e:
                bar.close()
                raise UserError(f"{e}: training diverged; lower --lr (now {cfg.lr}) or clip "
                                "gradients with --clip-norm 1") from None
            self.interrupt.check()   # a Ctrl-C that Python swallowed stops the run here
            dt = time.perf_counter() - t0
            n = len(y)
            p["loss"] += loss * n
            p["correct"] += acc * n
            p["count"] += n
            p["seconds"] += dt
            self.batch += 1
            bar.update(loss=p["loss"] / p["count"], acc=p["correct"] / p["count"], ips=n / dt)
            if self.checkpoint_every and self.ts.step % self.checkpoint_every == 0 \
                    and self.batch < self.steps_per_epoch:
                self._save()
            if stop_after_step is not None and self.ts.step >= stop_after_step:
                bar.close()
                return True
        bar.close()
        return False

    def _end_epoch(self) -> None:
        from ..data import batches
        dist.sync_state(self)
        p = dist.global_partial(self)
        ev = evaluate(self.model.apply, self.ts.params, self.ts.state,
                      batches(self.test_set, max(min(256, len(self.test_set)), self.world),
                              shuffle=False, mean=self.train_set.mean, std=self.train_set.std,
                              shard=(self.rank, self.world)), sharded=self.world > 1)
        row = {"epoch": self.epoch + 1, "step": self.ts.step,
               "lr": float(self.optimizer_lr(self.ts.step)),
               "train_loss": p["loss"] / max(p["count"], 1),
               "train_accuracy": p["correct"] / max(p["count"], 1),
               "test_loss": ev["loss"], "test_accuracy": ev["accuracy"],
               "images_per_second": p["count"] / max(p["seconds"], 1e-9),
               "seconds": p["seconds"]}
        self.history.append(row)
        # printed even with --quiet, which hides the progress bar only
        print(f"epoch {row['epoch']}/{self.cfg.epochs}  train loss {row['train_loss']:.4f}  "
              f"train acc {row['train_accuracy']:.3f}  held-out loss {row['test_loss']:.4f}  "
              f"held-out acc {row['test_accuracy']:.3f}  {row['images_per_second']:.0f} img/s",
              flush=True)
        self.epoch, self.batch = self.epoch + 1, 0
        self.partial = {"loss": 0.0, "correct": 0.0, "count": 0, "seconds": 0.0}
        self._save()
        if self.rank == 0:
            write_logs(self.out, self.history)

    def optimizer_lr(self, step: int) -> float:
        return _lr_schedule(self.cfg, self.steps_per_epoch)(step)

    def _save(self) -> None:
        """Checkpoint (all ranks call: the sums and statistics are reduced; rank 0 writes)."""
        dist.sync_state(self)
        dist.check_in_step(self)
        partial = dist.global_partial(self)
        if self.rank != 0:
            return
        meta = {"config": dataclasses.asdict(self.cfg), "step": self.ts.step, "epoch": self.epoch,
                "batch": self.batch, "history": self.history, "partial": partial,
                "key": [int(v) for v in lrandom.key(self.cfg.seed)],
                "classes": list(self.train_set.classes), "family": self.model.family,
                "normalize": {"mean": [float(v) for v in self.train_set.mean],
                              "std": [float(v) for v in self.train_set.std]}}
        params, state, opt_state = device_get((self.ts.params, self.ts.state, self.ts.opt_state))
        save_checkpoint(os.path.join(self.out, CHECKPOINT), params=params, state=state,
                        opt_state=opt_state, meta=meta)   # checkpoints hold host arrays


def resolve_device(name: str):
    """The :class:`lucid.Device` a ``--device`` names (a one-line error when there is none)."""
    from .._device import as_device
    try:
        return as_device(name)
    except (RuntimeError, ValueError, TypeError) as e:
        raise UserError(f"--device {name}: {e}") from None


def _device(name: str, world: int):
    """The device a run trains on ('cpu' or a CUDA device), refused clearly when absent."""
    device = resolve_device(name)
    if world > 1 and device.platform != "cpu":
        raise UserError(f"--device {name} under mpiexec: data-parallel training runs on CPU "
                        "ranks only (the all-reduce exchanges host buffers); drop --device")
    return device


def _lr_schedule(cfg: RunConfig, steps_per_epoch: int):
    from .. import optim
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "constant":
        return optim.constant_schedule(cfg.lr)
    if cfg.schedule == "step":
        return optim.step_schedule(cfg.lr, step_size=max(1, math.ceil(total / 3)), gamma=0.1)
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total - 1)
    return optim.warmup_cosine_decay_schedule(0.0, cfg.lr, warmup, total, end_value=cfg.lr * 1e-2)


def _optimizer(cfg: RunConfig, steps_per_epoch: int):
    from .. import optim
    lr = _lr_schedule(cfg, steps_per_epoch)
    if cfg.optimizer == "adamw":
        core = optim.adamw(lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adam":
        core = optim.adam(lr)
    else:
        core = optim.sgd(lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    if cfg.clip_norm and cfg.clip_norm > 0:
        return optim.chain(optim.clip_by_global_norm(cfg.clip_norm), core)
    return core
