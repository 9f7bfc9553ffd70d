"""Data-parallel scaling of a full training step (forward, backward, all-reduce, AdamW update).

    python benchmarks/bench_distributed.py [--model convnext_tiny] [--batch 32] [--steps 3]

runs three configurations at the same *global* batch and prints one JSON line each, then
a summary:

* ``1 rank x 1 thread``   one process, ``lucid.set_num_threads(1)``;
* ``2 ranks x 1 thread``  ``mpiexec -n 2``, each rank half the batch, gradients summed by
  ``lucid.distributed.GradSync`` (buckets started during the backward);
* ``1 rank x 2 threads``  one process using both cores through Numba's threads.

Scaling efficiency = throughput(2 ranks) / (2 x throughput(1 rank)). The all-reduce share
hidden behind the backward is ``1 - exposed / alone``: ``exposed`` is the time ``finish``
waits after the backward on the rank whose backward ended last (the other rank's wait also
holds load imbalance; median over steps), ``alone`` the time the same buckets take to
all-reduce with nothing else running (blocking ``Allreduce``, median of 3). Each step is
timed after one warm-up step (compilation, first-touch page faults); the median is reported.
``others_cpu_share`` is the share of the machine's CPU time used by other processes while
a configuration ran (/proc/stat): figures taken while it is well above 0 are not
trustworthy. Needs the ``mpi`` extra (the script allows mpiexec to run as root).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _worker(args) -> None:
    import numpy as np

    import lucid
    import lucid.distributed as dist
    from lucid import models, optim
    from lucid.training import TrainState, make_train_step, step_key

    lucid.set_num_threads(args.threads)
    world, rank = dist.init(), dist.rank()
    model = models.create_model(args.model, num_classes=1000)
    params, state = dist.broadcast((model.params, model.state))
    opt = optim.adamw(1e-4, weight_decay=0.05)
    sync = dist.GradSync(params) if world > 1 else None
    step = make_train_step(model.apply, opt, grad_sync=sync)
    lo, hi = dist.shard_bounds(args.batch, rank, world)
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((hi - lo, 3, args.image_size, args.image_size)).astype(np.float32)
    y = rng.integers(0, 1000, hi - lo)
    ts = TrainState(params, state, opt.init(params), 0)
    key = lucid.random.key(0)
    times, waits = [], []
    for i in range(args.steps + 1):  # step 0 warms up (compile, page faults, bucket order)
        dist.barrier()
        t0 = time.perf_counter()
        with dist.sample_shard(lo, args.batch):
            ts, _, _ = step(ts, x, y, step_key(key, ts.step))
        dt = dist.allreduce(np.array([time.perf_counter() - t0]), op="sum") / world
        if i:
            times.append(float(dt[0]))
            waits.append(_exposed_wait(sync, world))
    alone = _allreduce_alone(sync) if sync else 0.0
    if rank == 0:
        med = float(np.median(times))
        print(json.dumps({"model": args.model, "global_batch": args.batch, "ranks": world,
                          "threads": args.threads, "step_seconds": round(med, 3),
                          "images_per_second": round(args.batch / med, 2),
                          "exposed_wait_seconds": round(float(np.median(waits)), 4),
                          "allreduce_alone_seconds": round(alone, 4),
                          "buckets": len(sync.buckets) if sync else 0,
                          "grad_megabytes": round(sum(b.buffer.nbytes for b in sync.buckets) / 2**20, 1)
                          if sync else 0.0}), flush=True)


def _exposed_wait(sync, world) -> float:
    """The wait of the rank whose backward ended last: the others' waits also include
    waiting for that rank (load imbalance), which is not communication."""
    if sync is None:
        return 0.0
    import numpy as np
    import lucid.distributed as dist
    both = np.zeros((world, 2))
    both[dist.rank()] = (sync.backward_end, sync.wait_seconds)
    both = dist.allreduce(both, op="sum")
    return float(both[np.argmax(both[:, 0]), 1])


def _allreduce_alone(sync) -> float:
    import numpy as np
    from mpi4py import MPI
    import lucid.distributed as dist
    samples = []
    for _ in range(3):
        dist.barrier()
        t0 = time.perf_counter()
        for b in sync.buckets:
            dist.comm().Allreduce(MPI.IN_PLACE, b.buffer, op=MPI.SUM)
        samples.append(time.perf_counter() - t0)
    return float(np.median(samples))


def _launch(ranks: int, threads: int, args) -> dict:
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads)}
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(threads),
           "--model", args.model, "--batch", str(args.batch), "--steps", str(args.steps),
           "--image-size", str(args.image_size)]
    if ranks > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "--oversubscribe",
               "--bind-to", "none", "-n", str(ranks)] + cmd
    busy0, own0, t0 = _cpu_busy(), _children_cpu(), time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    wall = time.perf_counter() - t0
    others = (_cpu_busy() - busy0 - (_children_cpu() - own0)) / (wall * (os.cpu_count() or 1))
    row = json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])
    row["others_cpu_share"] = round(max(0.0, others), 2)
    print(json.dumps(row), flush=True)
    return row


def _cpu_busy() -> float:
    """Seconds of CPU time the whole machine has spent busy (all processes), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(t) for t in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def _children_cpu() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="convnext_tiny")
    p.add_argument("--batch", type=int, default=32, help="global batch")
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return _worker(args)
    one = _launch(1, 1, args)
    two = _launch(2, 1, args)
    threads = _launch(1, 2, args)
    alone = two["allreduce_alone_seconds"]
    hidden = 1.0 - two["exposed_wait_seconds"] / alone if alone > 0 else float("nan")
    print(json.dumps({
        "scaling_efficiency": round(two["images_per_second"] / (2 * one["images_per_second"]), 3),
        "allreduce_hidden_share": round(hidden, 3),
        "two_ranks_over_two_threads": round(two["images_per_second"] / threads["images_per_second"], 3),
    }))


if __name__ == "__main__":
    main()
