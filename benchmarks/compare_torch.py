#!/usr/bin/env python
"""lucid against PyTorch eager + timm on CPU, side by side in one process.

Usage (from the repository root, in an environment with lucid, and optionally torch+timm)::

    python benchmarks/compare_torch.py                      # the issue's full table
    python benchmarks/compare_torch.py --quick              # a fast smoke run
    python benchmarks/compare_torch.py --only forward,latency --repeats 9 --json out.json

Every timed metric alternates lucid and PyTorch call by call (rotating who goes first)
after ``--warmup`` untimed calls each (and, for calls under 0.5 s, one untimed call
right before each timed one), and reports the median of ``--repeats`` calls
(``--stat min``: the fastest, which resists other processes' load on a shared machine).
Each library runs in its own persistent worker process, which the parent drives turn by
turn, so both run on the same machine at the same moments, with the same thread count,
yet each with its own runtime defaults: in one shared process the two OpenMP runtimes'
settings cannot both be right -- lucid's short OpenMP spin (GOMP_SPINCOUNT, see
lucid/__init__.py) slowed PyTorch's ConvNeXt-T batch-1 forward from 43 to 58 ms, and
PyTorch's default long spin slowed lucid's from 61 to 97 ms.
PyTorch runs both its contiguous (NCHW) and channels_last (NHWC) layouts; the faster is
its figure. Both libraries get ``--threads`` threads (``lucid.set_num_threads`` and
``torch.set_num_threads``; the BLAS/OpenMP variables are set to the same number before
NumPy loads, since lucid controls BLAS threads only when threadpoolctl is installed).
lucid is imported before NumPy, as its own CLI does (see benchmarks/__init__.py).
Everything is float32 at 224x224.

Metrics: forward at ``--batch`` (eval mode); training step at ``--batch`` (forward +
cross-entropy + backward for the parameter gradients, no optimizer update, drop path 0);
batch-1 forward latency; peak resident memory of a training step (VmHWM of a fresh
process per library and layout: the whole process, imports included); a fresh process
to the first logits of convnext_tiny with kernels cached (interpreter start included,
median of 3); lucid's first-ever compilation of every kernel ConvNeXt-T's forward and
training step need (a fresh process with an empty NUMBA_CACHE_DIR).
GFLOP/s count 2 x timm's MACs per image (x3 for a training step).
Without torch/timm the script says so and prints lucid's figures alone.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("forward", "train", "latency", "memory", "coldstart", "compile")
# (direction, threshold). Speed rows: ratio = lucid/torch throughput, higher is better.
# Memory and cold start: ratio = lucid/torch, lower is better. Compile: lucid seconds.
TARGETS = {"forward": (">=", 1.5), "train": (">=", 1.3), "latency": (">=", 1.2),
           "memory": ("<=", 1.0), "coldstart": ("<=", 0.5), "compile": ("<=", 30.0)}
LAYOUTS = ("NCHW", "NHWC")  # PyTorch's contiguous and channels_last memory formats
PRIME_BELOW_S = 0.5  # see alternate()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="convnext_tiny,inception_next_tiny",
                   help="comma-separated model names (default: %(default)s)")
    p.add_argument("--batch", type=int, help="batch of forward and training step (default 16)")
    p.add_argument("--repeats", type=int, help="timed calls per metric (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    p.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    p.add_argument("--only", default=",".join(METRICS), help="subset of: %(default)s")
    p.add_argument("--numba-layer", choices=("workqueue", "omp", "tbb", "default"),
                   default="default",
                   help="NUMBA_THREADING_LAYER of lucid's processes (default: Numba's choice)")
    p.add_argument("--stat", choices=("median", "min"), default="median",
                   help="summary of the timed calls (default: median)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: batch 2, 1 repeat, 1 cold-start run (unless given)")
    p.add_argument("--no-torch", action="store_true", help="measure lucid alone")
    p.add_argument("--json", metavar="PATH", help="also write all samples to this JSON file")
    p.add_argument("--child-memory", nargs=3, metavar=("IMPL", "MODEL", "BATCH"),
                   help=argparse.SUPPRESS)
    p.add_argument("--child-worker", nargs=4, metavar=("IMPL", "METRIC", "MODEL", "BATCH"),
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
    if min(args.batch, args.repeats, args.threads) < 1 or args.warmup < 0:
        p.error("--batch, --repeats and --threads must be >= 1, --warmup >= 0")
    return args


_USER_ENV = dict(os.environ)  # before lucid's import adds its thread settings


def thread_env(n: int, numba_layer: str = "default") -> dict:
    """The environment for child processes: ``n`` threads for lucid (Numba + BLAS) and
    PyTorch (OpenMP), the user's own environment otherwise (not the variables lucid's
    import sets in this process: each child's library sets its own)."""
    env = dict(_USER_ENV)
    if numba_layer != "default":
        env["NUMBA_THREADING_LAYER"] = numba_layer
    for var in ("LUCID_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        env[var] = str(n)
    return env


def torch_available() -> bool:
    try:
        import timm  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- callables

def lucid_call(model: str, batch: int, train: bool):
    """A zero-argument lucid forward (eval) or training step on a fixed batch."""
    from benchmarks import build_model, forward_fn, make_batch, train_step_fn
    m = build_model(model)
    x, y = make_batch(batch)
    if train:
        step = train_step_fn(m)
        return lambda: step(x, y)
    forward = forward_fn(m)
    return lambda: forward(x)


def torch_call(model: str, batch: int, train: bool, layout: str):
    """The same call in PyTorch eager + timm, in ``layout`` ("NCHW" or "NHWC")."""
    import timm
    import torch
    from benchmarks import NUM_CLASSES, make_batch
    fmt = torch.channels_last if layout == "NHWC" else torch.contiguous_format
    net = timm.create_model(model, num_classes=NUM_CLASSES, drop_path_rate=0.0)
    net = net.to(memory_format=fmt).train(train)
    x, y = make_batch(batch)
    xt = torch.from_numpy(x).contiguous(memory_format=fmt)
    yt = torch.from_numpy(y)
    if train:
        def step():
            net.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(xt), yt)
            loss.backward()
            return loss
        return step

    def forward():
        with torch.inference_mode():
            return net(xt)
    return forward


class Worker:
    """A child process holding one library's call (``--child-worker``), driven over pipes:
    ``run`` makes one untimed call, ``time`` one timed call whose seconds it answers."""

    def __init__(self, script, impl, metric, model, batch, env):
        self.impl = impl
        self.proc = subprocess.Popen(
            [sys.executable, script, "--child-worker", impl, metric, model, str(batch)],
            env=env, cwd=_REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._expect("ready")

    def _expect(self, word):
        line = self.proc.stdout.readline().strip()
        if not line.startswith(word):
            self.close()
            raise RuntimeError(f"worker {self.impl} failed (said {line!r}); see its stderr")
        return line

    def __call__(self, timed=False):
        self.proc.stdin.write("time\n" if timed else "run\n")
        self.proc.stdin.flush()
        return float(self._expect("ok").split()[1])

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def child_worker(impl, metric, model, batch, threads) -> int:
    """(In the worker process.) Build the call, then serve ``run``/``time`` lines."""
    if impl == "lucid":
        import lucid
        lucid.set_num_threads(threads)
        call = lucid_call(model, batch, metric == "train")
    else:
        import torch
        torch.set_num_threads(threads)
        call = torch_call(model, batch, metric == "train", impl.split("_", 1)[1])
    print("ready", flush=True)
    for line in sys.stdin:
        gc.collect()
        t0 = time.perf_counter()
        call()
        print(f"ok {time.perf_counter() - t0!r}", flush=True)
    return 0


def alternate(calls: dict, repeats: int, warmup: int) -> dict:
    """Seconds of each call, ``repeats`` times, interleaved call by call after warm-up.

    ``calls`` maps a name to a :class:`Worker`. A call shorter than ``PRIME_BELOW_S`` is
    preceded by one untimed call of the same library, so that its worker threads and
    caches are as hot as in a loop of its own rather than cooled down by the other
    library's turn.
    """
    short = {}
    for name, call in calls.items():
        for _ in range(max(warmup, 1)):
            short[name] = call(timed=True) < PRIME_BELOW_S
    names, samples = list(calls), {name: [] for name in calls}
    for r in range(repeats):
        k = r % len(names)  # rotate who goes first, so no one always follows the other
        for name in names[k:] + names[:k]:
            if short[name]:
                calls[name]()
            samples[name].append(calls[name](timed=True))
    return samples


# ----------------------------------------------------------------------------- metrics

def _summary(samples, stat):
    return min(samples) if stat == "min" else statistics.median(samples)


def measure_speed(metric: str, model: str, args, torch_ok: bool) -> dict:
    """One forward / train / latency row: medians, throughput, GFLOP/s, ratio."""
    from benchmarks import gflop
    batch = 1 if metric == "latency" else args.batch
    train = metric == "train"
    impls = ["lucid"] + ([f"torch_{layout}" for layout in LAYOUTS] if torch_ok else [])
    calls = {}
    try:
        for impl in impls:
            env = thread_env(args.threads, args.numba_layer if impl == "lucid" else "default")
            calls[impl] = Worker(args.script, impl, metric, model, batch, env)
        repeats = max(args.repeats, 10) if metric == "latency" else args.repeats
        samples = alternate(calls, repeats, args.warmup)
    finally:
        for worker in calls.values():
            worker.close()
    med = {name: _summary(s, args.stat) for name, s in samples.items()}
    row = {"metric": metric, "model": model, "batch": batch, "unit": "s", "samples": samples,
           "lucid": med["lucid"], "gflop": gflop(model, batch, train)}
    if torch_ok:
        layout = min(LAYOUTS, key=lambda lay: med[f"torch_{lay}"])
        row.update(torch=med[f"torch_{layout}"], torch_layout=layout)
        row["ratio"] = row["torch"] / row["lucid"]
    return row


def run_child(argv: list, env: dict) -> tuple:
    """Run a fresh Python process; returns (wall seconds, stdout). Raises on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable] + argv, env=env, capture_output=True, text=True,
                          cwd=_REPO)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"child {argv[:3]} failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def measure_memory(model: str, args, torch_ok: bool, script: str) -> dict:
    """Peak RSS of a fresh process per implementation doing two training steps."""
    impls = ["lucid"] + ([f"torch_{lay}" for lay in LAYOUTS] if torch_ok else [])
    peaks = {}
    for impl in impls:
        env = thread_env(args.threads, args.numba_layer if impl == "lucid" else "default")
        _, out = run_child([script, "--child-memory", impl, model, str(args.batch)], env)
        peaks[impl] = json.loads(out.strip().splitlines()[-1])
    row = {"metric": "memory", "model": model, "batch": args.batch, "unit": "MiB",
           "samples": peaks, "lucid": peaks["lucid"]["peak_mib"]}
    if torch_ok:
        layout = min(LAYOUTS, key=lambda lay: peaks[f"torch_{lay}"]["peak_mib"])
        row.update(torch=peaks[f"torch_{layout}"]["peak_mib"], torch_layout=layout)
        row["ratio"] = row["lucid"] / row["torch"]
    return row


def _rss_mib(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    import resource  # not Linux: ru_maxrss is the peak (kB on Linux, bytes on macOS)
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def child_memory(impl: str, model: str, batch: int, threads: int) -> int:
    """(In the fresh process.) Two training steps, then print the peak RSS as JSON."""
    if impl == "lucid":
        import lucid
        lucid.set_num_threads(threads)
        call = lucid_call(model, batch, train=True)
    else:
        import torch
        torch.set_num_threads(threads)
        call = torch_call(model, batch, True, impl.split("_", 1)[1])
    before = _rss_mib("VmRSS")
    call()
    call()
    print(json.dumps({"peak_mib": _rss_mib("VmHWM"), "rss_before_step_mib": before}))
    return 0


def measure_coldstart(args, torch_ok: bool) -> dict:
    """Wall time of fresh processes from start to convnext_tiny's first logits (batch 1)."""
    from benchmarks import COLD_START_LUCID, COLD_START_TORCH
    programs = {"lucid": COLD_START_LUCID}
    if torch_ok:
        programs["torch"] = COLD_START_TORCH
    env = thread_env(args.threads)
    for code in programs.values():  # warm Numba's cache and the OS file cache, untimed
        run_child(["-c", code], env)
    samples = {name: [] for name in programs}
    for _ in range(args.cold_runs):
        for name, code in programs.items():
            samples[name].append(run_child(["-c", code], env)[0])
    med = {name: _summary(s, args.stat) for name, s in samples.items()}
    row = {"metric": "coldstart", "model": "convnext_tiny", "batch": 1, "unit": "s",
           "samples": samples, "lucid": med["lucid"]}
    if torch_ok:
        row.update(torch=med["torch"], ratio=med["lucid"] / med["torch"])
    return row


def measure_compile(args) -> dict:
    """lucid's fresh process with an empty NUMBA_CACHE_DIR: forward + training step, b2."""
    from benchmarks import COMPILE_LUCID
    env = thread_env(args.threads)
    with tempfile.TemporaryDirectory(prefix="lucid-numba-cache-") as cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
        wall, _ = run_child(["-c", COMPILE_LUCID], env)
    return {"metric": "compile", "model": "convnext_tiny", "batch": 2, "unit": "s",
            "samples": {"lucid": [wall]}, "lucid": wall, "ratio": wall}


def _jobs(args, torch_ok, script):
    """(label, zero-argument measurement) in the order of the issue's table."""
    for metric in ("forward", "train", "latency"):
        if metric in args.only:
            for model in args.models:
                yield f"{metric} {model}", lambda m=metric, mo=model: measure_speed(
                    m, mo, args, torch_ok)
    if "memory" in args.only:
        for model in args.models:
            yield f"memory {model}", lambda mo=model: measure_memory(mo, args, torch_ok, script)
    if "coldstart" in args.only:
        yield "cold start", lambda: measure_coldstart(args, torch_ok)
    if "compile" in args.only:
        yield "first-ever compilation", lambda: measure_compile(args)


def run_all(args, torch_ok: bool, script: str) -> dict:
    """Every requested metric, each with the other processes' CPU share while it ran."""
    from benchmarks import OtherLoad
    rows, whole_run = [], OtherLoad()
    for label, measure in _jobs(args, torch_ok, script):
        print(f"... {label}", file=sys.stderr, flush=True)
        load = OtherLoad()
        row = measure()
        row["other_load"] = load.share()
        rows.append(row)
    machine = machine_info(torch_ok, args.threads, args.numba_layer)
    machine["other_load"] = whole_run.share()
    return {"machine": machine, "rows": rows,
            "settings": {k: v for k, v in vars(args).items() if not k.startswith("child_")}}


def machine_info(torch_ok: bool, threads: int, numba_layer: str) -> dict:
    import numba
    import numpy
    info = {"cpu": _cpu_name(), "logical_cpus": os.cpu_count(), "threads": threads,
            "python": platform.python_version(), "numpy": numpy.__version__,
            "numba": numba.__version__, "numba_threading_layer": _numba_layer(numba_layer)}
    if torch_ok:
        import timm
        import torch
        info.update(torch=torch.__version__, timm=timm.__version__,
                    torch_threads=torch.get_num_threads())
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _numba_layer(requested: str) -> str:
    """The layer lucid's workers run on: the requested one, or Numba's default choice."""
    if requested != "default":
        return requested
    import importlib
    for layer in ("tbb", "omp"):  # Numba's default order of preference, then workqueue
        try:
            importlib.import_module(f"numba.np.ufunc.{layer}pool")
            return f"{layer} (Numba's default)"
        except ImportError:
            continue
    return "workqueue (Numba's default)"


# ----------------------------------------------------------------------------- report

_LABELS = {"forward": "forward, batch {b}", "train": "train step, batch {b}",
           "latency": "forward latency, batch 1", "memory": "peak RSS train step, batch {b}",
           "coldstart": "fresh process to 1st logits", "compile": "1st-ever compile fwd+bwd"}


def _fmt_value(row, key):
    v = row.get(key)
    if v is None:
        return "-"
    if row["unit"] == "MiB":
        return f"{v:.0f} MiB"
    if row["metric"] in ("coldstart", "compile"):
        return f"{v:.2f} s"
    return f"{v * 1e3:.1f} ms"


def _status(row, torch_ok):
    direction, threshold = TARGETS[row["metric"]]
    target = f"{direction} {threshold:g}{' s' if row['metric'] == 'compile' else 'x'}"
    ratio = row.get("ratio")
    if ratio is None:
        return "-", target, "n/a (no torch)"
    met = ratio >= threshold if direction == ">=" else ratio <= threshold
    shown = f"{ratio:.2f} s" if row["metric"] == "compile" else f"{ratio:.2f}x"
    return shown, target, "MET" if met else "NOT MET"


def _pct(v):
    return "?" if v is None else f"{100 * v:.0f}%"


def format_report(report: dict) -> str:
    """The comparison table, then the machine it ran on."""
    rows, torch_ok = report["rows"], "torch" in report["machine"]
    head = ["model", "metric", "lucid", "PyTorch (layout)", "lucid img/s", "torch img/s",
            "lucid GFLOP/s", "torch GFLOP/s", "ratio", "target", "status", "others"]
    table = [head]
    for row in rows:
        speed = row["metric"] in ("forward", "train", "latency")
        torch_v = _fmt_value(row, "torch")
        if row.get("torch_layout"):
            torch_v += f" ({row['torch_layout']})"
        cells = [row["model"], _LABELS[row["metric"]].format(b=row["batch"]),
                 _fmt_value(row, "lucid"), torch_v]
        for key in ("lucid", "torch"):
            cells.append(f"{row['batch'] / row[key]:.2f}" if speed and key in row else "-")
        for key in ("lucid", "torch"):
            cells.append(f"{row['gflop'] / row[key]:.1f}" if speed and key in row else "-")
        load = row.get("other_load")
        table.append(cells + list(_status(row, torch_ok))
                     + [_pct(load)])
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    m = report["machine"]
    lines += ["", "ratio: speed rows = lucid/PyTorch throughput (higher is better); memory and "
              "fresh-process rows = lucid/PyTorch (lower is better); compile = lucid seconds.",
              "others: share of the machine's CPU time used by other processes meanwhile "
              f"(whole run: {_pct(m.get('other_load'))}); well above 0% = figures from a busy "
              "machine.",
              f"machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['threads']} threads "
              f"each; Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']} "
              f"(threading layer {m['numba_threading_layer']})"
              + (f", PyTorch {m['torch']}, timm {m['timm']}" if torch_ok else ", no PyTorch")]
    for row in rows:
        if row["metric"] == "memory":
            lines.append(f"peak RSS {row['model']}: " + "; ".join(
                f"{impl} {v['peak_mib']:.0f} MiB (RSS before the first step "
                f"{v['rss_before_step_mib']:.0f} MiB)" for impl, v in row["samples"].items()))
    s = report["settings"]
    lines.append(f"settings: {s['stat']} of {s['repeats']} timed calls (latency: "
                 f"{max(s['repeats'], 10)}) after {s['warmup']} warm-up, float32, 224x224")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.update(thread_env(args.threads))  # before NumPy, BLAS or torch load
    sys.path.insert(0, _REPO)
    if args.child_memory:
        impl, model, batch = args.child_memory
        return child_memory(impl, model, int(batch), args.threads)
    if args.child_worker:
        impl, metric, model, batch = args.child_worker
        return child_worker(impl, metric, model, int(batch), args.threads)
    import lucid  # before NumPy: see benchmarks/__init__.py
    from benchmarks import GMACS
    unknown = [m for m in args.models if m not in GMACS]
    if unknown:
        raise SystemExit(f"compare_torch: unknown model(s) {unknown}; known: {sorted(GMACS)}")
    lucid.set_num_threads(args.threads)
    args.script = os.path.abspath(__file__)
    torch_ok = not args.no_torch and torch_available()
    if not torch_ok:
        print("PyTorch and/or timm are not importable here (or --no-torch was given): "
              "printing lucid's figures alone.\n", flush=True)
    report = run_all(args, torch_ok, args.script)
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
