"""``lucid train``: a resumable training run with progress bars, logs, curves and checkpoints."""
from __future__ import annotations

import dataclasses
import json
import os
import time

from . import UserError
from ._run import RunConfig, Run

DEFAULT_OUT = os.path.join("runs", "train")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (default: a small ConvNeXt on the embedded "
                       "shapes dataset)", description="Train a ConvNeXt or InceptionNeXt. With no "
                       "options: a small ConvNeXt on lucid's embedded shapes dataset.")
    d = RunConfig()
    p.add_argument("--model", default=d.model, help="a registered variant (see `lucid list`) or "
                   "'convnext' / 'inception_next' with --depths/--dims (default: %(default)s)")
    p.add_argument("--depths", default=None, help="custom stage depths, e.g. 1,1,3,1 (default: "
                   "1,1,2,1 with --model convnext or inception_next)")
    p.add_argument("--dims", default=None, help="custom stage widths, e.g. 32,64,128,256 (default: "
                   "16,32,64,128 for convnext, 32,64,128,256 for inception_next)")
    p.add_argument("--data", default=d.data, help="'synthetic' (embedded), an image folder "
                   "root/CLASS/*.png, or an .npz with x and y (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=d.image_size, help="image side")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step")
    p.add_argument("--optimizer", choices=("adamw", "adam", "sgd"), default=d.optimizer,
                   help="adamw/adam, or sgd with Nesterov momentum 0.9")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--schedule", choices=("cosine", "constant", "step"), default=d.schedule,
                   help="learning-rate schedule: linear warm-up + cosine, constant, or x0.1 at "
                   "1/3 and 2/3 of the run")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs,
                   help="linear warm-up of the cosine schedule")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="decoupled weight decay (not on biases, norms, layer scale)")
    p.add_argument("--clip-norm", type=float, default=d.clip_norm, help="global-norm gradient "
                   "clipping (0 disables)")
    p.add_argument("--drop-path", type=float, default=d.drop_path,
                   help="stochastic-depth rate of the last block")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing,
                   help="label smoothing of the training loss")
    p.add_argument("--augment", action="store_true",
                   help="random crop (zero padding 4) and horizontal flip of training batches")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of every random choice")
    p.add_argument("--sync-bn", action="store_true", help="under mpiexec: BatchNorm statistics "
                   "over the global batch (all ranks), so N ranks train as one process")
    p.add_argument("--train-size", type=int, default=d.train_size, help="embedded data: training images")
    p.add_argument("--test-size", type=int, default=d.test_size, help="embedded data: held-out images")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                   help="also checkpoint every STEPS steps inside an epoch (default: per epoch)")
    p.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: %(default)s)")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="CKPT",
                   help="continue from CKPT (default: OUT/last.safetensors); the run's saved "
                   "settings are used")
    p.add_argument("--device", default="cpu", help="where to train: cpu, cuda or cuda:N (needs "
                   "the cuda extra and an NVIDIA GPU; default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (the per-epoch lines and "
                   "the summary are still printed)")
    p.set_defaults(run=_run_train)


def _config_from_args(args) -> RunConfig:
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    for name in ("depths", "dims"):
        if values.get(name) is not None:
            try:
                values[name] = [int(v) for v in str(values[name]).split(",")]
            except ValueError:
                raise UserError(f"--{name} must be comma-separated integers like 1,1,3,1, "
                                f"got {values[name]!r}") from None
    return RunConfig(**values)


def _run_train(args) -> int:
    if args.resume is not None:
        ckpt = args.resume or os.path.join(args.out, "last.safetensors")
        run = Run.resume(ckpt, out=args.out, checkpoint_every=args.checkpoint_every,
                         quiet=args.quiet, device=args.device)
    else:
        cfg = _config_from_args(args)
        run = Run.start(cfg, out=args.out, checkpoint_every=args.checkpoint_every,
                        quiet=args.quiet, device=args.device)
    t0 = time.perf_counter()
    summary = run.fit()
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if run.rank == 0:
        print(json.dumps(summary))
    return 0
