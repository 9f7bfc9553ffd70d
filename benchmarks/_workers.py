"""The child processes of ``compare_torch.py``: one library's call, served turn by turn.

An *implementation* ("impl") is one library in one configuration:

- ``lucid_jit``: the model's functional ``apply`` (forward) or ``value_and_grad`` of the
  loss (training step) compiled by ``lucid.jit`` (see ``benchmarks/__init__.py``);
- ``lucid_eager``: the same functions run eagerly;
- ``torch_NCHW`` / ``torch_NHWC``: PyTorch eager + timm, contiguous or channels_last;
- ``ort``: ONNX Runtime, CPU execution provider, on timm's model exported by
  ``torch.onnx.export(..., dynamo=False, opset_version=17)`` (inference only).

Nothing here imports lucid, torch or onnxruntime at module level: each worker imports
only its own library (a PyTorch or ORT worker runs in the reference interpreter, which
may not have lucid at all; a lucid worker must import lucid before NumPy).
"""
from __future__ import annotations

import gc
import json
import os
import sys
import time

LUCID_IMPLS = ("lucid_jit", "lucid_eager")
TORCH_IMPLS = ("torch_NCHW", "torch_NHWC")  # PyTorch's contiguous and channels_last formats
ORT_IMPL = "ort"


def library(impl: str) -> str:
    """"lucid", "torch" or "ort": which interpreter and runtime an impl needs."""
    return impl.split("_", 1)[0]


# ----------------------------------------------------------------------------- calls

def lucid_call(model: str, batch: int, train: bool, jit: bool):
    """A zero-argument lucid forward (eval) or training step on a fixed batch."""
    import benchmarks as B
    m = B.build_model(model)
    x, y = B.make_batch(batch)
    if train:
        step = (B.jit_train_step_fn if jit else B.train_step_fn)(m)
        return lambda: step(x, y)
    forward = (B.jit_forward_fn if jit else B.forward_fn)(m)
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


def onnx_path(onnx_dir: str, model: str, batch: int) -> str:
    return os.path.join(onnx_dir, f"{model}_b{batch}_opset17.onnx")


def export_onnx(model: str, batch: int, path: str) -> int:
    """(In a reference-interpreter process.) timm's model in eval mode -> ``path``,
    static batch; written under a temporary name first so a cached file is never partial."""
    import timm
    import torch
    from benchmarks import NUM_CLASSES, make_batch
    net = timm.create_model(model, num_classes=NUM_CLASSES, drop_path_rate=0.0).eval()
    x = torch.from_numpy(make_batch(batch)[0])
    partial = f"{path}.{os.getpid()}.partial"
    with torch.no_grad():
        torch.onnx.export(net, (x,), partial, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["logits"])
    os.replace(partial, path)
    return 0


def ort_call(model: str, batch: int, threads: int, path: str):
    """ONNX Runtime inference of the exported model: CPU provider, all graph
    optimisations, ``threads`` intra-op threads, one inter-op thread, sequential."""
    import onnxruntime as ort
    from benchmarks import make_batch
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: make_batch(batch)[0]}
    return lambda: sess.run(None, feed)


def make_call(impl: str, metric: str, model: str, batch: int, threads: int, onnx_dir: str):
    """Set ``impl``'s thread count and build its zero-argument call."""
    lib, train = library(impl), metric == "train"
    if lib == "lucid":
        import lucid
        lucid.set_num_threads(threads)
        return lucid_call(model, batch, train, jit=impl == "lucid_jit")
    if lib == "torch":
        import torch
        torch.set_num_threads(threads)
        return torch_call(model, batch, train, impl.split("_", 1)[1])
    if lib == "ort" and not train:
        return ort_call(model, batch, threads, onnx_path(onnx_dir, model, batch))
    raise ValueError(f"compare_torch: no {metric} call for {impl}")


# ----------------------------------------------------------------------------- serving

def child_worker(impl, metric, model, batch, threads, onnx_dir) -> int:
    """(In the worker process.) Build the call, run it once (tracing, compilation, first
    touch of every buffer stay out of the timings), then serve ``run``/``time`` lines."""
    call = make_call(impl, metric, model, batch, threads, onnx_dir)
    call()
    print("ready", flush=True)
    for _ in sys.stdin:
        gc.collect()
        t0 = time.perf_counter()
        call()
        print(f"ok {time.perf_counter() - t0!r}", flush=True)
    return 0


def rss_mib(field: str) -> float:
    """This process's ``VmRSS`` or ``VmHWM`` (peak) in MiB."""
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
    """(In a fresh process.) Two training steps, then print the peak RSS as JSON."""
    call = make_call(impl, "train", model, batch, threads, "")
    before = rss_mib("VmRSS")
    call()
    call()
    print(json.dumps({"peak_mib": rss_mib("VmHWM"), "rss_before_step_mib": before}))
    return 0


PROBE = """
import json
found = {}
for name in ("torch", "timm", "onnx", "onnxscript", "onnxruntime", "numpy"):
    try:
        found[name] = __import__(name).__version__
    except Exception as e:  # ImportError, or a broken install
        found[name] = None
print(json.dumps(found))
"""
