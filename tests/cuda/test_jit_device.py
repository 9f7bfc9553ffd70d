"""``lucid.jit`` and training on device arrays: the program runs where its inputs live
(arena, constants and scalar arguments on the device), equal to the CPU, with no
device->host copy inside the program; ``lucid train --device cuda`` trains, evaluates and
checkpoints host arrays."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lucid
import lucid.nn.functional as F
import lucid.numpy as lnp

from _count import device_to_host_copies  # noqa: E402
from _twin import runs_kernels  # noqa: E402

pytestmark = runs_kernels


def _close(got, want, rtol=1e-4):
    got = lucid.device_get(got)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * (np.abs(want).max() + 1e-12))


def _small(family, **kw):
    from lucid.models import convnext, inception_next
    module = convnext if family == "convnext" else inception_next
    Config = convnext.ConvNeXtConfig if family == "convnext" else inception_next.InceptionNeXtConfig
    cfg = Config(num_classes=5, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), **kw)
    return module, cfg


def test_jit_on_device_arrays_runs_on_the_device():
    """Constants, Python scalars and the arena live on the device; values equal the CPU's."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((5, 6)).astype(np.float32)
    shift = np.arange(5, dtype=np.float32)   # a host constant captured by the function

    def f(x, w, s):
        h = lnp.multiply(F.linear(x, w), s)
        return lnp.add(lnp.transpose(h, (1, 0)), shift[:, None]), lnp.add(h, 1.0)

    want = f(x, w, 2.5)
    jf = lucid.jit(f)
    xd, wd = lucid.device_put((x, w), "cuda")
    jf(xd, wd, 2.5)   # compile (moves the constants to the device once)
    with device_to_host_copies() as seen:
        got = jf(xd, wd, 2.5)
    assert seen == []
    assert all(isinstance(g, lucid.DeviceArray) for g in got)
    for g, r in zip(got, want):
        _close(g, r, 1e-6)
    assert jf.trace_count == 1


def test_jit_donated_device_argument_is_reused():
    """A donated device input's buffer receives the output (no new allocation)."""
    x = lucid.device_put(np.arange(12, dtype=np.float32).reshape(3, 4), "cuda")
    step = lucid.jit(lambda a: lnp.multiply(a, 2.0), donate_argnums=0)
    before = x.allocation_id()
    y = step(x)
    assert y.allocation_id() == before
    _close(y, np.arange(12, dtype=np.float32).reshape(3, 4) * 2, 0)


@pytest.mark.parametrize("family", ["convnext", "inception_next"])
def test_jit_forward_of_a_small_model_on_device_equals_cpu(family):
    """The optimised program (fused GEMM epilogues, folded eval BatchNorm) on the device."""
    module, cfg = _small(family)
    params, state = module.init(lucid.random.key(0), cfg)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)

    def forward(p, s, x):
        return module.apply(p, x, state=s or None, config=cfg)

    want = forward(params, state, x)
    p, s, xd = lucid.device_put((params, state, x), "cuda")
    with device_to_host_copies() as seen:
        got = lucid.jit(forward)(p, s, xd)
    assert seen == []
    _close(got, want)


@pytest.mark.parametrize("family", ["convnext", "inception_next"])
def test_compiled_train_step_on_device_equals_cpu(family):
    """make_train_step (forward, loss, backward, optimizer update in one program, params and
    optimizer state donated): new parameters, BatchNorm statistics and loss as on the CPU.

    InceptionNeXt's stem conv bias feeds a BatchNorm, so its exact gradient is zero and
    both devices compute rounding noise (~1e-9); Adam would turn that noise into +-lr
    steps of arbitrary sign, so that family is trained with SGD + momentum here."""
    from lucid.training import TrainState, make_train_step
    module, cfg = _small(family)
    params, state = module.init(lucid.random.key(0), cfg)
    opt = (lucid.optim.adamw(1e-2, weight_decay=0.05) if family == "convnext"
           else lucid.optim.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=0.05))

    def apply(p, x, *, state, train, key):
        return module.apply(p, x, state=state or None, config=cfg, train=train, key=key)

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = np.array([1, 4])
    key = lucid.random.key(3)
    dev = lucid.device_put(TrainState(params, state, opt.init(params), 0), "cuda")
    cpu_step = make_train_step(apply, opt, label_smoothing=0.1)   # donates (writes) params
    want, want_loss, _ = cpu_step(TrainState(params, state, opt.init(params), 0), x, y, key)
    got, loss, _ = make_train_step(apply, opt, label_smoothing=0.1)(dev, x, y, key)
    assert abs(loss - want_loss) <= 1e-4 * abs(want_loss)
    assert lucid.device_of(lucid.tree.leaves(got.params)[0]).platform == "cuda"
    for g, r in zip(_groups((got.params, got.state, got.opt_state)),
                    _groups((want.params, want.state, want.opt_state))):
        _close_tree(g, r, 2e-4)


def _groups(tree):
    """Parameter-shaped groups (params, BN state, each optimizer moment): a gradient that is
    zero in exact arithmetic (a conv bias before BatchNorm) is rounding noise on both
    devices, so each group is compared at the scale of its largest value."""
    if isinstance(tree, tuple):
        for item in tree:
            yield from _groups(item)
    else:
        yield tree


def _close_tree(got, want, rtol):
    got = [lucid.device_get(g) for g in lucid.tree.leaves(got)]
    want = [np.asarray(w) for w in lucid.tree.leaves(want)]
    scale = max((float(np.abs(w).max()) for w in want if w.size), default=0.0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale + 1e-30)


def test_cli_train_on_device_checkpoints_host_arrays(tmp_path):
    """`lucid train --device cuda` (simulated device): trains, evaluates, and its checkpoint
    resumes on the CPU with the same numbers a CPU run has."""
    # the simulator runs ~120 us per simulated thread: two steps at batch 2
    args = ["--epochs", "1", "--train-size", "4", "--test-size", "2", "--batch-size", "2",
            "--depths", "1,1,1,1", "--dims", "8,16,24,32", "--quiet"]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")

    def train(device, out):
        res = subprocess.run([sys.executable, "-m", "lucid", "train", *args, "--device", device,
                              "--out", str(out)], capture_output=True, text=True, env=env,
                             timeout=900)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout.strip().splitlines()[-1])

    dev, cpu = train("cuda", tmp_path / "dev"), train("cpu", tmp_path / "cpu")
    assert dev["steps"] == cpu["steps"] == 2
    from lucid.checkpoint import load_checkpoint
    p_dev, _, opt_dev, _ = load_checkpoint(str(tmp_path / "dev" / "last.safetensors"))
    p_cpu, _, opt_cpu, _ = load_checkpoint(str(tmp_path / "cpu" / "last.safetensors"))
    for name, ref in p_cpu.items():
        assert isinstance(p_dev[name], np.ndarray)
        np.testing.assert_allclose(p_dev[name], ref, rtol=1e-3, atol=1e-4)


def test_jit_of_a_facade_moved_to_the_device():
    """``lucid.jit(model)`` after ``model.to("cuda")`` compiles for the device and reads the
    model's current (device) parameters."""
    model = lucid.models.ConvNeXt(num_classes=3, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    want = model(x)
    compiled = lucid.jit(model.to("cuda"))
    got = compiled(lucid.device_put(x, "cuda"))
    assert isinstance(got, lucid.DeviceArray)
    _close(got, want)
