"""asv: whole models at 224x224 float32: forward, training step, its peak memory, cold start,
eager and compiled by ``lucid.jit``.

The training step is forward + cross-entropy + backward w.r.t. the parameters, with no
optimizer update (see ``benchmarks/__init__.py``). ``setup`` builds the model and runs
the measured call once, so compilation (tracing, or loading cached kernels) and
first-touch page faults stay out of the timed region; it is cached per process because
asv re-runs ``setup`` before every sample. A model lucid.jit cannot trace yet raises
NotImplementedError in ``setup``, which asv shows as skipped (n/a).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import lucid  # noqa: F401  (before NumPy: see benchmarks/__init__.py)

from . import COLD_START_LUCID, COMPILE_LUCID, COMPILE_LUCID_JIT, MODELS, build_model, \
    forward_fn, jit_forward_fn, jit_train_step_fn, make_batch, train_step_fn

_FUNCTIONS = {"forward": forward_fn, "train": train_step_fn, "jit_forward": jit_forward_fn,
              "jit_train": jit_train_step_fn}

_prepared: dict = {}


def prepare(model: str, batch: int, kind: str):
    """A zero-argument callable running ``kind`` (a key of ``_FUNCTIONS``) once, already warm."""
    key = (model, batch, kind)
    if key not in _prepared:
        _prepared.clear()  # one model in memory at a time
        m = build_model(model)
        x, y = make_batch(batch)
        fn = _FUNCTIONS[kind](m)
        if kind.endswith("forward"):
            call = lambda: fn(x)  # noqa: E731
        else:
            call = lambda: fn(x, y)  # noqa: E731
        call()
        _prepared[key] = call
    return _prepared[key]


class _ModelBench:
    params = (list(MODELS), [1, 16])
    param_names = ["model", "batch"]
    number = 1
    rounds = 1
    repeat = (1, 5, 60.0)  # at least one sample, at most five, stop after a minute
    warmup_time = 0.0      # setup already ran the call once
    timeout = 1200         # convnext_tiny batch-16 training takes seconds per sample


class TimeForward(_ModelBench):
    """Eval-mode forward (inference)."""

    def setup(self, model, batch):
        self.call = prepare(model, batch, "forward")

    def time_forward(self, model, batch):
        self.call()


class TimeTrainStep(_ModelBench):
    """Forward + cross-entropy + backward (parameter gradients), drop path 0."""

    def setup(self, model, batch):
        self.call = prepare(model, batch, "train")

    def time_train_step(self, model, batch):
        self.call()


class PeakMemTrainStep(_ModelBench):
    """Peak resident memory of the process around a training step (asv counts setup too)."""

    def setup(self, model, batch):
        self.call = prepare(model, batch, "train")

    def peakmem_train_step(self, model, batch):
        self.call()


class TimeJitForward(_ModelBench):
    """Eval-mode forward compiled by ``lucid.jit`` (traced in setup)."""

    def setup(self, model, batch):
        self.call = prepare(model, batch, "jit_forward")

    def time_jit_forward(self, model, batch):
        self.call()


class TimeJitTrainStep(_ModelBench):
    """``lucid.jit(value_and_grad(loss))``: the training step as one planned program."""

    def setup(self, model, batch):
        self.call = prepare(model, batch, "jit_train")

    def time_jit_train_step(self, model, batch):
        self.call()


class PeakMemJitTrainStep(_ModelBench):
    """Peak resident memory of the process around a jitted training step."""

    def setup(self, model, batch):
        self.call = prepare(model, batch, "jit_train")

    def peakmem_jit_train_step(self, model, batch):
        self.call()


_EMPTY_CACHE_SETUP = """
import os, shutil, tempfile
_cache_dir = os.path.join(tempfile.gettempdir(), "lucid-asv-empty-numba-cache")
shutil.rmtree(_cache_dir, ignore_errors=True)
os.environ["NUMBA_CACHE_DIR"] = _cache_dir
"""


class TimerawColdStart:
    """A fresh interpreter: ``import lucid`` -> build convnext_tiny -> first logits (batch 1).

    The kernels load from Numba's cache, which ``setup`` warms. Interpreter start-up is
    not included (asv times the code inside the fresh process).
    """
    number = 1
    rounds = 1
    repeat = (1, 3, 120.0)
    warmup_time = 0.0
    timeout = 1200

    def setup(self):
        subprocess.run([sys.executable, "-c", COLD_START_LUCID], check=True)

    def timeraw_cold_start_cached(self):
        return COLD_START_LUCID


class TimerawCompile:
    """The same fresh processes with an empty temporary NUMBA_CACHE_DIR: every kernel compiles.

    ``cold_start_uncached`` is the forward program above; ``compile_convnext_tiny_train``
    runs an eval forward and a training step (batch 2), i.e. every kernel ConvNeXt-T's
    forward and backward need; ``compile_convnext_tiny_jit_train`` traces, plans and runs
    the jitted training step (batch 2) twice and lowers it once more. Almost all of the
    time is Numba compiling.
    """
    number = 1
    rounds = 1
    repeat = (1, 1, 0.0)
    warmup_time = 0.0
    timeout = 1200

    def timeraw_cold_start_uncached(self):
        return COLD_START_LUCID, _EMPTY_CACHE_SETUP

    def timeraw_compile_convnext_tiny_train(self):
        return COMPILE_LUCID, _EMPTY_CACHE_SETUP

    def timeraw_compile_convnext_tiny_jit_train(self):
        return COMPILE_LUCID_JIT, _EMPTY_CACHE_SETUP

    def teardown(self):
        shutil.rmtree(os.path.join(tempfile.gettempdir(), "lucid-asv-empty-numba-cache"),
                      ignore_errors=True)
