"""``lucid eval``, ``predict``, ``summary``, ``list`` and ``bench``."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from . import UserError
from ._model import create, load_weights_into


def _model_options(p, what: str) -> None:
    p.add_argument("--model", default=None, help=f"model name (see `lucid list`), or 'convnext' / "
                   f"'inception_next' with --depths/--dims; needed only when {what}")
    p.add_argument("--depths", default=None, help="stage depths of --model convnext or "
                   "inception_next, e.g. 1,1,2,1 (default: as `lucid train`)")
    p.add_argument("--dims", default=None, help="stage widths of --model convnext or "
                   "inception_next, e.g. 16,32,64,128 (default: as `lucid train`)")


def add_parsers(sub) -> None:
    for add in (_add_eval, _add_predict, _add_summary, _add_list, _add_bench):
        add(sub)


_IN_A_RUN = "the weights are not in a `lucid train` run directory"


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="accuracy and loss of a checkpoint on a dataset",
                       description="Accuracy and loss of a checkpoint on a dataset.")
    p.add_argument("--weights", required=True, help="a training run's last.safetensors or "
                   "model.safetensors, or a weights file (.safetensors/.npz/.pth) with --model")
    _model_options(p, _IN_A_RUN)
    p.add_argument("--data", default=None, help="'synthetic', an image folder or an .npz "
                   "(default: the run's held-out data)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    _device_option(p)
    p.set_defaults(run=_run_eval)


def _device_option(p) -> None:
    p.add_argument("--device", default="cpu", help="where to run: cpu, cuda or cuda:N (needs "
                   "the cuda extra and an NVIDIA GPU; default: %(default)s)")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="top-k classes of images", description="Top-k classes "
                       "of images, preprocessed as the model's pretrained_cfg says (timm's "
                       "resize, centre crop, mean/std).")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (png, jpg, ...)")
    p.add_argument("--weights", required=True, help="weights (.safetensors/.npz/.pth) or a lucid "
                   "training run's last.safetensors / model.safetensors")
    _model_options(p, _IN_A_RUN)
    p.add_argument("--labels", default=None, help="a text file with one class name per line "
                   "(default: the run's classes, or ImageNet's for 1000 classes)")
    p.add_argument("--top", type=int, default=5, help="classes shown per image")
    p.set_defaults(run=_run_predict)


def _add_summary(sub) -> None:
    p = sub.add_parser("summary", help="layer table of a model (or a mermaid flowchart)",
                       description="Layer table of a model: output shapes, parameters and MACs "
                       "per layer (or a mermaid flowchart).")
    p.add_argument("name", help="a registered model (see `lucid list`)")
    p.add_argument("--input-size", type=int, default=224, help="input image side")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs")
    p.add_argument("--mermaid", action="store_true", help="emit a mermaid flowchart instead")
    p.set_defaults(run=_run_summary)


def _add_list(sub) -> None:
    p = sub.add_parser("list", help="registered models", description="List the registered models.")
    p.add_argument("pattern", nargs="?", default=None, help="fnmatch pattern, e.g. 'convnext_*' "
                   "(default: all)")
    p.set_defaults(run=_run_list)


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="quick forward and training-step throughput",
                       description="Median time of a forward pass and of a training step on "
                       "random data (for benchmarks proper: benchmarks/).")
    p.add_argument("name", help="a registered model (see `lucid list`)")
    p.add_argument("--batch-size", type=int, default=16, help="images per call")
    p.add_argument("--input-size", type=int, default=224, help="input image side")
    p.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up call")
    _device_option(p)
    p.set_defaults(run=_run_bench)


# ---------------------------------------------------------------- eval
def _run_eval(args) -> int:
    from ..training import evaluate
    from ..data import batches
    model, meta = _model_from_weights(args.weights, args.model, args.depths, args.dims)
    if args.data is None and meta is None:
        raise UserError("--data is required with a plain weights file outside a `lucid train` "
                        "run directory (a run remembers its data)")
    test = _eval_data(args.data, meta)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    n_classes = _num_classes(model)
    if int(np.max(test.y)) >= n_classes:
        raise UserError(f"the data has labels up to {int(np.max(test.y))} but the model has "
                        f"{n_classes} classes")
    stats = meta["normalize"] if meta else {}
    from .. import distributed  # under mpiexec: each rank evaluates its shard, sums reduced
    world, rank = distributed.init(), distributed.rank()
    size = max(min(args.batch_size, len(test)), world)
    from .._device import device_put
    from ._run import resolve_device
    params, state = device_put((model.params, model.state), resolve_device(args.device))
    res = evaluate(model.apply, params, state,
                   progress(batches(test, size, shuffle=False, mean=stats.get("mean"),
                                    std=stats.get("std"), shard=(rank, world)),
                            -(-len(test) // size), "eval"),
                   sharded=world > 1)
    if rank == 0:
        print(json.dumps({"accuracy": round(res["accuracy"], 6), "loss": round(res["loss"], 6),
                          "images": res["count"]}))
    return 0


def progress(iterable, total: int, desc: str):
    """A progress bar on stderr when it is a terminal; the plain iterable otherwise."""
    import sys
    if not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


def _eval_data(src, meta):
    from ._data import load_one
    from ._run import RunConfig
    from .. import data
    if src is None:
        cfg = RunConfig(**meta["config"])
        from ._data import load_datasets
        return load_datasets(cfg)[1]
    if src == "synthetic":
        image_size = meta["config"]["image_size"] if meta else 32
        return data.load_synthetic("test", n=1000, seed=0, image_size=image_size)
    if not os.path.exists(src):
        raise UserError(f"--data {src!r}: no such file or folder")
    try:
        return load_one(src, meta["config"]["image_size"] if meta else None)
    except (ValueError, OSError) as e:
        raise UserError(f"--data {src!r}: {e}") from None


def _num_classes(model) -> int:
    sd = model.state_dict()
    for key in ("head.fc.weight", "head.fc2.weight"):
        if key in sd:
            return int(sd[key].shape[0])
    raise UserError("cannot tell the model's number of classes")


def _run_meta(path, sibling: bool):
    """The metadata of the `lucid train` run that ``path`` belongs to: its own, when it is a
    training checkpoint, else (with ``sibling``) that of last.safetensors beside it (a run's
    model.safetensors)."""
    from ..checkpoint import CheckpointError, load_checkpoint
    from ._run import CHECKPOINT
    candidates = [path]
    if sibling:
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(path)), CHECKPOINT))
    for candidate in candidates:
        if candidate.endswith(".safetensors") and os.path.isfile(candidate):
            try:
                flat_p, flat_s, _, meta = load_checkpoint(candidate)
            except CheckpointError:
                continue
            return meta, ({**flat_p, **flat_s} if candidate == path else None)
    return None, None


def _model_from_weights(path, name, depths=None, dims=None):
    """(facade with weights loaded, run metadata or None)."""
    from ._run import RunConfig
    from ._model import FAMILIES, build_model, parse_ints
    if not os.path.exists(path):
        raise UserError(f"weights file {path} does not exist")
    meta, flat = _run_meta(path, sibling=name is None)  # an explicit --model wins
    if meta is not None:
        cfg = RunConfig(**meta["config"])
        model = build_model(cfg, num_classes=len(meta["classes"])).facade
        if flat is not None:
            load_weights_into_flat(model, flat, path)
        else:
            load_weights_into(model, path)
        return model, meta
    if name is None:
        raise UserError(f"{path} is a plain weights file outside a `lucid train` run directory: "
                        "say which model it is with --model NAME (and --depths/--dims for "
                        "--model convnext or inception_next)")
    from .. import io
    try:
        sd = io.load(path)
    except (ValueError, TypeError) as e:
        raise UserError(f"cannot read weights {path}: {e}") from None
    classes = _head_classes(sd)
    if name in FAMILIES:
        cfg = RunConfig(model=name, depths=parse_ints(depths, "depths"),
                        dims=parse_ints(dims, "dims"))
        model = build_model(cfg, num_classes=classes or 1000).facade
    else:
        if depths or dims:
            raise UserError(f"--depths/--dims apply to --model convnext or inception_next, not "
                            f"to the registered variant {name!r}")
        model = create(name, num_classes=classes) if classes else create(name)
    load_weights_into(model, path)
    return model, None


def _head_classes(sd) -> int | None:
    for key in ("head.fc.weight", "head.fc2.weight"):
        if key in sd:
            return int(sd[key].shape[0])
    return None


def load_weights_into_flat(model, flat, path):
    try:
        model.load_state_dict(flat, strict=True)
    except ValueError as e:
        raise UserError(f"weights {path} do not fit the model: {str(e).splitlines()[0]}") from None


# ---------------------------------------------------------------- predict
def _run_predict(args) -> int:
    from ._predict import predict_images
    model, meta = _model_from_weights(args.weights, args.model, args.depths, args.dims)
    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    for line in predict_images(model, meta, args.images, args.labels, args.weights, args.top):
        print(line)
    return 0


# ---------------------------------------------------------------- summary / list
def _run_summary(args) -> int:
    from .._summary import summary
    model = create(args.name, num_classes=args.num_classes)
    shape = (1, 3, args.input_size, args.input_size)
    print(summary(model, shape, format="mermaid" if args.mermaid else "table"))
    return 0


def _run_list(args) -> int:
    from .. import models
    names = models.list_models(args.pattern)
    if not names:
        raise UserError(f"no registered model matches {args.pattern!r}; try `lucid list`")
    print("\n".join(names))
    return 0


# ---------------------------------------------------------------- bench
def _run_bench(args) -> int:
    from .. import random as lrandom
    from ..training import make_train_step, TrainState
    from .. import optim
    if args.batch_size < 1 or args.input_size < 32 or args.repeats < 1:
        raise UserError("--batch-size and --repeats must be >= 1 and --input-size >= 32")
    from .._device import block_until_ready, device_put
    from ._run import resolve_device
    model = create(args.name)
    x = lrandom.normal(lrandom.key(0), (args.batch_size, 3, args.input_size, args.input_size))
    y = (np.arange(args.batch_size) % 1000).astype(np.int64)
    opt = optim.sgd(1e-3)
    params, state, xd, opt_state = device_put(
        (model.params, model.state, x, opt.init(model.params)), resolve_device(args.device))
    fwd = _median_time(lambda: block_until_ready(model.apply(params, xd, state=state)),
                       args.repeats, "forward")
    step = make_train_step(model.apply, opt, donate=False)
    ts = TrainState(params, state, opt_state, 0)
    trn = _median_time(lambda: step(ts, x, y, lrandom.key(1)), args.repeats,
                       "training step")
    b = args.batch_size
    print(f"{args.name}  batch {b}  {args.input_size}x{args.input_size}  float32  "
          f"{args.device}")
    print(f"forward        {fwd * 1e3:9.1f} ms   {b / fwd:8.2f} img/s")
    print(f"training step  {trn * 1e3:9.1f} ms   {b / trn:8.2f} img/s")
    return 0


def _median_time(fn, repeats: int, what: str) -> float:
    import sys
    calls = progress(range(repeats + 1), repeats + 1, what)
    times = []
    for i in calls:
        if i == 0 and not sys.stderr.isatty():
            print(f"{what}: warm-up call (compiles or loads kernels), then {repeats} timed",
                  file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        fn()
        if i > 0:  # call 0 is the warm-up: it compiles or loads the cached kernels
            times.append(time.perf_counter() - t0)
    return float(np.median(times))
