"""lucid's benchmarks: an asv suite (``bench_*.py``) and a side-by-side comparison with
PyTorch and ONNX Runtime (``compare_torch.py``).

This module holds what the asv suite, ``compare_torch.py`` and ``profile_lucid.py``
share, so that every tool measures the same thing: the models and their GMACs, the
input batch, the forward and the training step, the cold-start programs, and a gauge
of how busy the machine was (:class:`OtherLoad`).

The training step is forward + ``F.cross_entropy`` + backward with gradients w.r.t.
the parameters (``lucid.value_and_grad(..., has_aux=True)``, as in
``lucid.training.make_train_step``) and *no* optimizer update, matching the PyTorch
side (``loss.backward()`` without ``optimizer.step()``). The ``jit_*`` variants compile
the same functions with ``lucid.jit``.

Nothing here imports lucid, torch or even NumPy at module level: asv imports every
module of this folder while discovering benchmarks, a PyTorch-only child process of
``compare_torch.py`` must not load lucid, and a lucid process must import lucid
*before* NumPy (lucid sets BLAS threading variables that NumPy reads when it loads;
measured: a ConvNeXt-T training step ~20% slower when NumPy came first).
"""
from __future__ import annotations

import os
import time

__all__ = ["GMACS", "MODELS", "IMAGE_SIZE", "NUM_CLASSES", "TRAIN_FLOP_FACTOR", "gflop",
           "make_batch", "build_model", "forward_fn", "train_step_fn", "jit_forward_fn",
           "jit_train_step_fn", "COLD_START_LUCID", "COLD_START_TORCH", "COMPILE_LUCID",
           "COMPILE_LUCID_JIT", "OtherLoad"]

# GMACs per 224x224 image (convs + matmuls; timm 1.0.31 FlopCounterMode / 2), from
# /work/shared/reference/timm_architecture.md section 5.
GMACS = {
    "convnext_atto": 0.547,
    "convnext_tiny": 4.456,
    "inception_next_atto": 0.503,
    "inception_next_tiny": 4.189,
}
MODELS = tuple(GMACS)
IMAGE_SIZE = 224
NUM_CLASSES = 1000
# A training step costs about three forwards: the forward, and the backward's two
# GEMMs per layer (input gradient and weight gradient).
TRAIN_FLOP_FACTOR = 3.0


def gflop(model: str, batch: int, train: bool = False) -> float:
    """GFLOP of one forward (or training step) of ``model`` at ``batch`` 224x224 images."""
    return 2.0 * GMACS[model] * batch * (TRAIN_FLOP_FACTOR if train else 1.0)


def make_batch(batch: int, seed: int = 0, size: int = IMAGE_SIZE):
    """A float32 NCHW image batch and int64 labels, the same for lucid and PyTorch."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, size=batch).astype(np.int64)
    return x, y


def build_model(name: str):
    """A freshly initialised lucid model facade (``.params``, ``.state``, ``.apply``)."""
    import lucid.models
    return lucid.models.create_model(name, num_classes=NUM_CLASSES)


def forward_fn(model):
    """``f(x) -> logits``: eval-mode inference of ``model``."""
    params, state, apply = model.params, model.state, model.apply

    def forward(x):
        return apply(params, x, state=state, train=False)

    return forward


def _loss_fn(model):
    """``loss(params, state, x, y, key) -> (loss, (logits, new_state))`` in train mode."""
    import lucid.nn.functional as F
    apply = model.apply

    def loss_fn(p, s, x, y, k):
        logits, new_state = apply(p, x, state=s, train=True, key=k)
        return F.cross_entropy(logits, y), (logits, new_state)

    return loss_fn


def train_step_fn(model):
    """``step(x, y) -> (loss, grads)``: forward + cross-entropy + backward w.r.t. the params."""
    import lucid
    params, state, key = model.params, model.state, lucid.random.key(0)
    grad_fn = lucid.value_and_grad(_loss_fn(model), has_aux=True)

    def step(x, y):
        (loss, _), grads = grad_fn(params, state, x, y, key)
        return loss, grads

    return step


def jit_forward_fn(model):
    """``f(x) -> logits`` compiled by ``lucid.jit``: the model's functional ``apply`` (the
    facade's ``.apply`` is the family's ``apply`` with the model's config) as a function
    of (params, state, x), so the parameters are arguments of the program, not constants."""
    import lucid
    params, state, apply = model.params, model.state, model.apply
    compiled = lucid.jit(lambda p, s, x: apply(p, x, state=s))

    def forward(x):
        return compiled(params, state, x)

    forward.lower = lambda x: compiled.lower(params, state, x)  # the program and its plan
    return forward


def jit_train_step_fn(model):
    """:func:`train_step_fn` as one compiled program: ``lucid.jit(value_and_grad(loss))``
    (the key is an argument, as a real step's fresh key per step would be)."""
    import lucid
    params, state, key = model.params, model.state, lucid.random.key(0)
    compiled = lucid.jit(lucid.value_and_grad(_loss_fn(model), has_aux=True))

    def step(x, y):
        (loss, _), grads = compiled(params, state, x, y, key)
        return loss, grads

    step.lower = lambda x, y: compiled.lower(params, state, x, y, key)
    return step


# Fresh-process programs, from the first import to the first logits of convnext_tiny at
# batch 1. They read the thread count from the environment (LUCID_NUM_THREADS /
# OMP_NUM_THREADS) that their caller sets.
COLD_START_LUCID = """
import lucid
import lucid.models
import numpy as np
model = lucid.models.create_model("convnext_tiny", num_classes=1000)
x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
logits = np.asarray(model.apply(model.params, x))
assert logits.shape == (1, 1000)
"""

COLD_START_TORCH = """
import os
import torch
import timm
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
model = timm.create_model("convnext_tiny", num_classes=1000).eval()
with torch.inference_mode():
    logits = model(torch.randn(1, 3, 224, 224))
assert tuple(logits.shape) == (1, 1000)
"""

# Compiles (with an empty NUMBA_CACHE_DIR, set by the caller) every kernel that
# ConvNeXt-T's forward and training step need: an eval forward, then forward + loss +
# backward, at batch 2 and 224x224 like a user's first run (the arithmetic itself takes
# well under a second of the total).
COMPILE_LUCID = """
import lucid
import lucid.models
import lucid.nn.functional as F
import numpy as np
model = lucid.models.create_model("convnext_tiny", num_classes=1000)
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 224, 224), dtype=np.float32)
y = np.array([1, 2], dtype=np.int64)
model.apply(model.params, x)
def loss_fn(p, x, y):
    logits, _ = model.apply(p, x, state=model.state, train=True, key=lucid.random.key(0))
    return F.cross_entropy(logits, y)
lucid.value_and_grad(loss_fn)(model.params, x, y)
"""


# The same for ConvNeXt-T's jitted training step (batch 2): it prints, as JSON, seconds
# from the start of the script to the model being built ("setup_s": imports, weight
# init), of the first jitted call ("first_call_s": tracing, optimisation, planning,
# every Numba compilation or cache load, one step) and of a second ("second_call_s":
# the step alone), and of ``.lower()`` on a fresh ``lucid.jit`` of the same function
# with everything loaded ("lower_s": tracing + optimisation + planning alone).
COMPILE_LUCID_JIT = """
import time
_t0 = time.perf_counter()
import json
import lucid
import lucid.models
import lucid.nn.functional as F
import numpy as np
model = lucid.models.create_model("convnext_tiny", num_classes=1000)
params, state, key = model.params, model.state, lucid.random.key(0)
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 224, 224), dtype=np.float32)
y = np.array([1, 2], dtype=np.int64)
def loss_fn(p, s, x, y, k):
    logits, new_state = model.apply(p, x, state=s, train=True, key=k)
    return F.cross_entropy(logits, y), (logits, new_state)
step = lucid.jit(lucid.value_and_grad(loss_fn, has_aux=True))
times = {"setup_s": time.perf_counter() - _t0}
for name in ("first_call_s", "second_call_s"):
    t = time.perf_counter()
    (loss, _), grads = step(params, state, x, y, key)
    times[name] = time.perf_counter() - t
assert np.isfinite(float(loss))
fresh = lucid.jit(lucid.value_and_grad(loss_fn, has_aux=True))
t = time.perf_counter()
fresh.lower(params, state, x, y, key)
times["lower_s"] = time.perf_counter() - t
print(json.dumps(times))
"""


class OtherLoad:
    """The share of the machine's CPU time that processes other than ours used since start.

    Read from /proc/stat (steal included) minus this process and its waited-for children;
    anything well above 0 means the figures were taken on a busy machine.
    """

    def __init__(self):
        self._start = self._snapshot()

    @staticmethod
    def _snapshot():
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:9]]
        except OSError:
            return None
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
        t = os.times()
        return time.monotonic(), busy, t.user + t.system + t.children_user + t.children_system

    def share(self):
        end = self._snapshot()
        if end is None or self._start is None:
            return None
        (t0, busy0, own0), (t1, busy1, own1) = self._start, end
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / ((t1 - t0) * os.cpu_count()))
