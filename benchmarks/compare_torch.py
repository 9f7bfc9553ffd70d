#!/usr/bin/env python
"""lucid (jit and eager) against PyTorch eager + timm and ONNX Runtime on CPU, side by side.

Usage (from the repository root, with the interpreter lucid is installed in; PyTorch,
timm, onnx and onnxruntime may live in another interpreter, ``--ref-python``)::

    python benchmarks/compare_torch.py --ref-python /tmp/lucid-ref/bin/python   # issue 9's table
    python benchmarks/compare_torch.py --quick --models convnext_atto            # a smoke run
    python benchmarks/compare_torch.py --only forward,latency --repeats 9 --json out.json

Implementations: lucid compiled by ``lucid.jit`` (the model's functional ``apply`` as a
function of (params, state, x); for the training step ``jit(value_and_grad(loss))``),
lucid eager, PyTorch eager in its contiguous (NCHW) and channels_last (NHWC) layouts
(the faster is its figure), and ONNX Runtime (CPU execution provider, graph optimisation
level ORT_ENABLE_ALL, ``--threads`` intra-op threads, 1 inter-op thread, sequential
execution) on timm's model exported once per model and batch by
``torch.onnx.export(model, x, path, dynamo=False, opset_version=17)`` in eval mode into
``--onnx-dir`` (a cache; inference rows only). PyTorch and ORT are optional: without
them the script says so and prints lucid's figures alone.

Every timed metric drives one persistent worker process per implementation, turn by
turn, call by call (rotating who goes first), with a ``--pause`` (0.5 s) before each
turn so that the previous library's spinning thread pool (OpenMP, ORT) has gone idle;
each worker runs its call once before the timings (tracing and compilation, first
touch), then ``--warmup`` untimed calls, and for calls under 0.5 s one untimed call
right before each timed one. Reported: the median of ``--repeats`` calls (``--stat
min``: the fastest, which resists other processes' load on a shared machine). Separate
processes let each library keep its own runtime settings: in one shared process the
OpenMP runtimes' settings cannot all be right -- lucid's short OpenMP spin
(GOMP_SPINCOUNT, see lucid/__init__.py) slowed PyTorch's ConvNeXt-T batch-1 forward
from 43 to 58 ms, and PyTorch's default long spin slowed lucid's from 61 to 97 ms.
Every library gets ``--threads`` threads (``lucid.set_num_threads``,
``torch.set_num_threads``, ORT's intra-op threads; the BLAS/OpenMP variables are set to
the same number before NumPy loads). Everything is float32 at 224x224.

Metrics: ``forward`` at ``--batch`` (eval mode); ``latency``: forward at batch 1;
``train``: training step at ``--batch`` (forward + cross-entropy + backward for the
parameter gradients, no optimizer update, drop path 0); ``memory``: peak resident
memory of a training step (VmHWM of a fresh process per implementation doing two
steps: the whole process, imports and tracing included); ``compile``: ConvNeXt-T's
jitted training step (batch 2) in a fresh process with an empty NUMBA_CACHE_DIR (the
first-ever compilation of everything it needs: setup + first call - a later call) and
again in a second process with that cache warm (tracing a cached program: first call -
later call; ``.lower()`` of a fresh jit is shown beside it); ``coldstart`` (not run by
default): a fresh process to the first logits of convnext_tiny, eager, kernels cached.
Speed ratios compare lucid jit with the best of the others; GFLOP/s count 2 x timm's
MACs per image (x3 for a training step).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)  # benchmarks._workers / _report import nothing heavy

from benchmarks import _report  # noqa: E402
from benchmarks._workers import (LUCID_IMPLS, ORT_IMPL, PROBE, TORCH_IMPLS,  # noqa: E402
                                 child_memory, child_worker, export_onnx, library,
                                 onnx_path)

METRICS = ("forward", "latency", "train", "memory", "compile", "coldstart")
DEFAULT_METRICS = METRICS[:-1]
PRIME_BELOW_S = 0.5  # see alternate()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="convnext_tiny,inception_next_tiny",
                   help="comma-separated model names (default: %(default)s)")
    p.add_argument("--batch", type=int, help="batch of forward and training step (default 16)")
    p.add_argument("--repeats", type=int, help="timed calls per metric (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    p.add_argument("--threads", type=int, default=2, help="threads for each (default 2)")
    p.add_argument("--only", default=",".join(DEFAULT_METRICS),
                   help=f"subset of: {','.join(METRICS)} (default: %(default)s)")
    p.add_argument("--pause", type=float, default=0.5,
                   help="seconds of rest before each turn (default: %(default)s)")
    p.add_argument("--ref-python", metavar="PATH",
                   help="interpreter with torch, timm (and onnx, onnxruntime) for the PyTorch "
                        "and ORT workers (default: $LUCID_REF_PYTHON, else this one)")
    p.add_argument("--onnx-dir", metavar="DIR",
                   default=os.path.join(tempfile.gettempdir(), "lucid-bench-onnx"),
                   help="cache of the exported ONNX models (default: %(default)s)")
    p.add_argument("--numba-layer", choices=("workqueue", "omp", "tbb", "default"),
                   default="default",
                   help="NUMBA_THREADING_LAYER of lucid's processes (default: Numba's choice)")
    p.add_argument("--stat", choices=("median", "min"), default="median",
                   help="summary of the timed calls (default: median)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: batch 2, 1 repeat, 1 cold-start run (unless given)")
    p.add_argument("--no-torch", action="store_true", help="measure lucid alone")
    p.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    p.add_argument("--json", metavar="PATH", help="also write all samples to this JSON file")
    p.add_argument("--child-memory", nargs=3, metavar=("IMPL", "MODEL", "BATCH"),
                   help=argparse.SUPPRESS)
    p.add_argument("--child-worker", nargs=4, metavar=("IMPL", "METRIC", "MODEL", "BATCH"),
                   help=argparse.SUPPRESS)
    p.add_argument("--child-export", nargs=3, metavar=("MODEL", "BATCH", "PATH"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.batch = args.batch or (2 if args.quick else 16)
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.cold_runs = 1 if args.quick else 3
    args.only = [m for m in args.only.split(",") if m]
    unknown = sorted(set(args.only) - set(METRICS))
    if unknown:
        p.error(f"--only: unknown metric(s) {unknown}; choose from {','.join(METRICS)}")
    if min(args.batch, args.repeats, args.threads) < 1 or args.warmup < 0 or args.pause < 0:
        p.error("--batch, --repeats and --threads must be >= 1, --warmup and --pause >= 0")
    args.ref_python = args.ref_python or os.environ.get("LUCID_REF_PYTHON") or sys.executable
    return args


_USER_ENV = dict(os.environ)  # before lucid's import adds its thread settings


def thread_env(n: int, numba_layer: str = "default") -> dict:
    """The environment for child processes: ``n`` threads for lucid (Numba + BLAS),
    PyTorch (OpenMP) and ORT, the user's own environment otherwise (not the variables
    lucid's import sets in this process: each child's library sets its own)."""
    env = dict(_USER_ENV)
    if numba_layer != "default":
        env["NUMBA_THREADING_LAYER"] = numba_layer
    for var in ("LUCID_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        env[var] = str(n)
    return env


def probe_reference(python: str) -> dict:
    """Versions of torch, timm, onnx, onnxscript, onnxruntime, numpy in ``python``
    (None: not importable)."""
    try:
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True,
                             timeout=300, env=thread_env(1))
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return {}


# ----------------------------------------------------------------------------- processes

class Setup:
    """Which implementations run, in which interpreter, with which environment."""

    def __init__(self, args, ref: dict):
        self.args = args
        self.ref = ref
        self.torch_ok = not args.no_torch and bool(ref.get("torch") and ref.get("timm"))
        self.ort_ok = self.torch_ok and not args.no_ort and bool(
            ref.get("onnx") and ref.get("onnxruntime"))

    def impls(self, metric: str) -> list:
        out = list(LUCID_IMPLS)
        if self.torch_ok:
            out += TORCH_IMPLS
        if self.ort_ok and metric in ("forward", "latency"):
            out.append(ORT_IMPL)
        return out

    def python(self, impl: str) -> str:
        return sys.executable if library(impl) == "lucid" else self.args.ref_python

    def env(self, impl: str) -> dict:
        lucid = library(impl) == "lucid"
        return thread_env(self.args.threads, self.args.numba_layer if lucid else "default")

    def command(self, impl: str, *child: str) -> list:
        return [self.python(impl), self.args.script, "--threads", str(self.args.threads),
                "--onnx-dir", self.args.onnx_dir, *child]


class Worker:
    """A child process holding one implementation's call (``--child-worker``), driven
    over pipes: ``w()`` makes one untimed call, ``w(timed=True)`` one timed call whose
    seconds it answers. Its stderr goes to a file, quoted when it fails."""

    def __init__(self, setup: Setup, impl, metric, model, batch):
        self.impl = impl
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            setup.command(impl, "--child-worker", impl, metric, model, str(batch)),
            env=setup.env(impl), cwd=_REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True)
        self._expect("ready")

    def _expect(self, word):
        line = self.proc.stdout.readline().strip()
        if not line.startswith(word):
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.seek(0)
            tail = self.log.read()[-2000:].strip()
            self.close()
            raise RuntimeError(f"{self.impl} worker failed (said {line!r}): {tail}")
        return line

    def __call__(self, timed=False):
        try:
            self.proc.stdin.write("time\n" if timed else "run\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):  # it died: reading its answer below reports why
            pass
        return float(self._expect("ok").split()[1])

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_child(cmd: list, env: dict) -> tuple:
    """Run a fresh process; returns (wall seconds, stdout). Raises on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=_REPO)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"child {cmd[1:4]} failed:\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def ensure_onnx(setup: Setup, model: str, batch: int) -> None:
    """Export timm's ``model`` at ``batch`` once into the ONNX cache (a fresh process of
    the reference interpreter, so the ORT workers never load torch)."""
    path = onnx_path(setup.args.onnx_dir, model, batch)
    if not os.path.exists(path):
        os.makedirs(setup.args.onnx_dir, exist_ok=True)
        print(f"... exporting {model} batch {batch} to {path}", file=sys.stderr, flush=True)
        run_child(setup.command(ORT_IMPL, "--child-export", model, str(batch), path),
                  setup.env(ORT_IMPL))


# ----------------------------------------------------------------------------- metrics

def alternate(calls: dict, repeats: int, warmup: int, pause: float) -> tuple:
    """Seconds of each call, ``repeats`` times, interleaved call by call after warm-up.

    ``calls`` maps a name to a :class:`Worker`. Each turn starts after ``pause`` seconds
    of rest (the previous worker's thread pool stops spinning). A call shorter than
    ``PRIME_BELOW_S`` is preceded by one untimed call of the same worker, so that its
    threads and caches are as hot as in a loop of its own rather than cooled down by the
    other libraries' turns. A worker that fails drops out (its error is returned); the
    others go on. Returns ({name: [seconds]}, {name: error}).
    """
    samples, errors, short = {name: [] for name in calls}, {}, {}

    def turn(name, timed_calls):
        try:
            for _ in range(timed_calls):
                time.sleep(pause)
                if short.get(name):
                    calls[name]()
                samples[name].append(calls[name](timed=True))
        except RuntimeError as e:
            errors[name] = str(e)

    for name in list(calls):
        turn(name, max(warmup, 1))
        if name not in errors:
            short[name] = samples[name][-1] < PRIME_BELOW_S
            samples[name].clear()
    names = list(calls)
    for r in range(repeats):
        k = r % len(names)  # rotate who goes first, so no one always follows the same one
        for name in names[k:] + names[:k]:
            if name not in errors:
                turn(name, 1)
    return {n: s for n, s in samples.items() if n not in errors}, errors


def _summary(samples, stat):
    return min(samples) if stat == "min" else statistics.median(samples)


def start_workers(setup: Setup, metric: str, model: str, batch: int) -> tuple:
    """({impl: Worker} of those that started, {impl: error} of those that did not)."""
    workers, errors = {}, {}
    for impl in setup.impls(metric):
        print(f"    starting {impl}", file=sys.stderr, flush=True)
        try:
            if impl == ORT_IMPL:
                ensure_onnx(setup, model, batch)
            workers[impl] = Worker(setup, impl, metric, model, batch)
        except RuntimeError as e:
            errors[impl] = str(e)
            last = [ln for ln in str(e).splitlines() if ln.strip()][-1:] or [""]
            print(f"    {impl} unavailable: {last[0][:300]}", file=sys.stderr, flush=True)
    return workers, errors


def measure_speed(setup: Setup, metric: str, model: str) -> dict:
    """One forward / latency / train row: a summary per implementation."""
    from benchmarks import gflop
    args = setup.args
    batch = 1 if metric == "latency" else args.batch
    workers, errors = start_workers(setup, metric, model, batch)
    try:
        repeats = max(args.repeats, 10) if metric == "latency" else args.repeats
        samples, run_errors = alternate(workers, repeats, args.warmup, args.pause)
        errors.update(run_errors)
    finally:
        for worker in workers.values():
            worker.close()
    values = {impl: _summary(s, args.stat) for impl, s in samples.items() if s}
    row = {"metric": metric, "model": model, "batch": batch, "unit": "s", "samples": samples,
           "values": values, "errors": errors, "gflop": gflop(model, batch, metric == "train")}
    return _report.summarize(row)


def measure_memory(setup: Setup, model: str) -> dict:
    """Peak RSS of a fresh process per implementation doing two training steps."""
    args, peaks, errors = setup.args, {}, {}
    for impl in setup.impls("train"):
        try:
            _, out = run_child(setup.command(impl, "--child-memory", impl, model,
                                             str(args.batch)), setup.env(impl))
            peaks[impl] = json.loads(out.strip().splitlines()[-1])
        except RuntimeError as e:
            errors[impl] = str(e)
    row = {"metric": "memory", "model": model, "batch": args.batch, "unit": "MiB",
           "samples": peaks, "values": {k: v["peak_mib"] for k, v in peaks.items()},
           "errors": errors}
    return _report.summarize(row)


def measure_compile(setup: Setup) -> list:
    """ConvNeXt-T's jitted training step in a fresh process with an empty Numba cache
    (first-ever compilation), then in a second one with that cache warm (tracing)."""
    from benchmarks import COMPILE_LUCID_JIT
    env = setup.env("lucid_jit")
    runs, errors = [], {}
    with tempfile.TemporaryDirectory(prefix="lucid-numba-cache-") as cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
        for _ in range(2):
            try:
                wall, out = run_child([sys.executable, "-c", COMPILE_LUCID_JIT], env)
            except RuntimeError as e:
                errors["lucid_jit"] = str(e)
                break
            runs.append(dict(json.loads(out.strip().splitlines()[-1]), wall_s=wall))
    first = second = None
    if runs:
        r = runs[0]
        first = r["setup_s"] + r["first_call_s"] - r["second_call_s"]
    if len(runs) > 1:
        second = runs[1]["first_call_s"] - runs[1]["second_call_s"]
    common = {"model": "convnext_tiny", "batch": 2, "unit": "s", "samples": runs,
              "errors": errors}
    return [dict(common, metric="compile", values={"lucid_jit": first}, ratio=first),
            dict(common, metric="trace", values={"lucid_jit": second}, ratio=second,
                 lower_s=runs[1]["lower_s"] if len(runs) > 1 else None)]


def measure_coldstart(setup: Setup) -> dict:
    """Wall time of fresh processes from start to convnext_tiny's first logits (batch 1)."""
    from benchmarks import COLD_START_LUCID, COLD_START_TORCH
    programs = {"lucid_eager": [sys.executable, "-c", COLD_START_LUCID]}
    if setup.torch_ok:
        programs["torch_NCHW"] = [setup.args.ref_python, "-c", COLD_START_TORCH]
    env = setup.env("lucid_eager")
    for cmd in programs.values():  # warm Numba's cache and the OS file cache, untimed
        run_child(cmd, env)
    samples = {name: [] for name in programs}
    for _ in range(setup.args.cold_runs):
        for name, cmd in programs.items():
            samples[name].append(run_child(cmd, env)[0])
    values = {name: _summary(s, setup.args.stat) for name, s in samples.items()}
    row = {"metric": "coldstart", "model": "convnext_tiny", "batch": 1, "unit": "s",
           "samples": samples, "values": values, "errors": {}}
    return _report.summarize(row)


def _jobs(setup: Setup):
    """(label, zero-argument measurement returning a row or rows) in the issue's order."""
    args = setup.args
    for metric in ("forward", "latency", "train"):
        if metric in args.only:
            for model in args.models:
                yield f"{metric} {model}", lambda m=metric, mo=model: measure_speed(
                    setup, m, mo)
    if "memory" in args.only:
        for model in args.models:
            yield f"memory {model}", lambda mo=model: measure_memory(setup, mo)
    if "compile" in args.only:
        yield "first-ever compilation and tracing", lambda: measure_compile(setup)
    if "coldstart" in args.only:
        yield "cold start", lambda: measure_coldstart(setup)


def run_all(setup: Setup) -> dict:
    """Every requested metric, each with the other processes' CPU share while it ran."""
    from benchmarks import OtherLoad
    rows, whole_run = [], OtherLoad()
    for label, measure in _jobs(setup):
        print(f"... {label}", file=sys.stderr, flush=True)
        load = OtherLoad()
        result = measure()
        share = load.share()
        for row in result if isinstance(result, list) else [result]:
            row["other_load"] = share
            rows.append(row)
    machine = _report.machine_info(setup)
    machine["other_load"] = whole_run.share()
    settings = {k: v for k, v in vars(setup.args).items() if not k.startswith("child_")}
    return {"machine": machine, "rows": rows, "settings": settings}


def _child(args) -> int:
    """Serve as one of the child processes (``--child-*``)."""
    if args.child_export:
        model, batch, path = args.child_export
        return export_onnx(model, int(batch), path)
    if args.child_memory:
        impl, model, batch = args.child_memory
        return child_memory(impl, model, int(batch), args.threads)
    impl, metric, model, batch = args.child_worker
    return child_worker(impl, metric, model, int(batch), args.threads, args.onnx_dir)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.update(thread_env(args.threads))  # before NumPy, BLAS or torch load
    if args.child_export or args.child_memory or args.child_worker:
        return _child(args)
    import lucid  # before NumPy: see benchmarks/__init__.py
    from benchmarks import GMACS
    unknown = [m for m in args.models if m not in GMACS]
    if unknown:
        raise SystemExit(f"compare_torch: unknown model(s) {unknown}; known: {sorted(GMACS)}")
    lucid.set_num_threads(args.threads)
    args.script = os.path.abspath(__file__)
    ref = {} if args.no_torch else probe_reference(args.ref_python)
    setup = Setup(args, ref)
    if not setup.torch_ok:
        print(f"PyTorch and/or timm are not importable by {args.ref_python} (or --no-torch "
              "was given; see --ref-python): printing lucid's figures alone.\n", flush=True)
    elif not setup.ort_ok and not args.no_ort:
        print(f"onnx and/or onnxruntime are not importable by {args.ref_python}: no ONNX "
              "Runtime column.\n", flush=True)
    report = run_all(setup)
    print(_report.format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
