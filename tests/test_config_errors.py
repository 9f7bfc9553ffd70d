"""Clear errors for non-finite configuration and huge sizes (issue 10, section 6): refused
up front with a ValueError naming the op or setting, never a NaN run, a MemoryError deep in
NumPy, or an overcommitted allocation."""
import tracemalloc

import numpy as np
import pytest

import lucid
import lucid.numpy as lnp
import lucid.optim as O
from lucid import models
from lucid.cli import UserError
from lucid.cli._run import RunConfig
from lucid.nn import functional as F

NAN, INF = float("nan"), float("inf")
TINY = dict(depths=(1, 1), dims=(8, 16))


@pytest.mark.parametrize("kwargs, match", [
    (dict(layer_scale_init=NAN), "ls_init_value must be a finite float or None, got nan"),
    (dict(ls_init_value=INF), "ls_init_value must be a finite float or None, got inf"),
    (dict(drop_path=NAN), "drop_path_rate must be a float in"),
    (dict(drop_path=1.0), "drop_path_rate must be a float in"),
    (dict(drop_path_rate=-0.1), "drop_path_rate must be a float in"),
    (dict(norm_eps=NAN), "norm_eps must be a positive finite float"),
    (dict(norm_eps=0.0), "norm_eps must be a positive finite float"),
])
def test_convnext_refuses_non_finite_config(kwargs, match):
    with pytest.raises(ValueError, match="lucid.models.ConvNeXtConfig: " + match):
        models.ConvNeXt(**TINY, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(ls_init_value=NAN), "ls_init_value must be a finite float"),
    (dict(drop_path_rate=INF), "drop_path_rate must be a float in"),
    (dict(mlp_ratios=INF), "mlp_ratios must be a positive number"),
])
def test_inception_next_refuses_non_finite_config(kwargs, match):
    with pytest.raises(ValueError, match="lucid.models.InceptionNeXtConfig: " + match):
        models.InceptionNeXt(**kwargs)


@pytest.mark.parametrize("make, match", [
    (lambda: O.adamw(INF), "learning_rate must be in"),
    (lambda: O.adamw(NAN), "learning_rate must be in"),
    (lambda: O.adamw(1e-3, weight_decay=NAN), "weight_decay must be in"),
    (lambda: O.sgd(1e-3, weight_decay=INF), "weight_decay must be in"),
    (lambda: O.clip_by_global_norm(NAN), "max_norm must be in"),
    (lambda: O.clip_by_global_norm(INF), "max_norm must be in"),
    (lambda: O.scale(NAN), "step_size must be in"),
    (lambda: O.add_decayed_weights(NAN), "weight_decay must be in"),
])
def test_optimizers_refuse_non_finite_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_schedule_returning_non_finite_is_refused_at_the_step():
    opt = O.adam(lambda step: INF)
    params = {"w": np.ones(2, np.float32)}
    with pytest.raises(ValueError, match=r"schedule returned inf at step 0"):
        opt.update({"w": np.ones(2, np.float32)}, opt.init(params), params)


@pytest.mark.parametrize("field, value, match", [
    ("lr", INF, "--lr must be a finite number, got inf"),
    ("lr", NAN, "--lr must be a finite number"),
    ("lr", 0.0, "--lr must be positive"),
    ("clip_norm", NAN, "--clip-norm must be a finite number, got nan"),
    ("clip_norm", -1.0, "--clip-norm must be >= 0"),
    ("weight_decay", INF, "--weight-decay must be a finite number"),
    ("warmup_epochs", NAN, "--warmup-epochs must be a finite number"),
    ("drop_path", NAN, "--drop-path must be a finite number"),
    ("label_smoothing", 1.0, r"--label-smoothing must be in \[0, 1\)"),
    ("epochs", 0, "--epochs must be at least 1"),
    ("batch_size", "64", "--batch-size must be an int"),   # e.g. from a tampered checkpoint
])
def test_run_config_check(field, value, match):
    cfg = RunConfig(**{field: value})
    with pytest.raises(UserError, match=match):
        cfg.check()


def test_run_config_defaults_pass():
    RunConfig().check()


def _quick_refusal(fn, match):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20  # refused before allocating (NumPy reports to tracemalloc)


@pytest.mark.parametrize("fn, match", [
    (lambda: lnp.zeros((10 ** 6, 10 ** 7)), r"lucid.numpy.zeros: the output of shape "
                                            r"\(1000000, 10000000\) \(float32\) would need"),
    (lambda: lnp.ones((2 ** 40,)), "lucid.numpy.ones: .* TiB"),
    (lambda: lnp.full((2 ** 33, 2 ** 33), 1.0), "lucid.numpy.full:"),
    (lambda: lnp.arange(0, 10 ** 15), "lucid.numpy.arange: .*int64"),
    (lambda: lnp.arange(0.0, INF), "lucid.numpy.arange: start, stop and step must be finite"),
    (lambda: lnp.eye(10 ** 7), "lucid.numpy.eye:"),
    (lambda: lnp.pad(np.ones((2, 2), np.float32), 10 ** 6), "lucid.numpy.pad: .*2000002"),
    (lambda: lucid.random.normal(lucid.random.key(0), (2 ** 32, 2 ** 32)), "lucid.random.normal:"),
    (lambda: F.conv2d(np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 1, 1), np.float32),
                      padding=10 ** 6), "conv2d: the output of shape"),
    (lambda: F.adaptive_avg_pool2d(np.ones((1, 1, 2, 2), np.float32), 10 ** 7),
     "adaptive_avg_pool2d: the output of shape"),
    (lambda: F.adaptive_avg_pool2d(np.ones((1, 1, 2, 2), np.float32), 2 ** 31),
     "at most 2\\*\\*31 - 1"),
    (lambda: models.ConvNeXt(depths=(1,), dims=(16,), num_classes=10 ** 9).init(
        lucid.random.key(0)), r"lucid.nn \(model parameters\): the parameter of shape"),
])
def test_huge_sizes_refused_before_allocation(fn, match):
    _quick_refusal(fn, match)


def test_cap_can_be_lowered_and_small_arrays_still_work(monkeypatch):
    monkeypatch.setenv("LUCID_MAX_ALLOC_BYTES", "1000")
    assert lnp.zeros((250,)).shape == (250,)
    with pytest.raises(ValueError, match=r"would need 1004 B, more than the 1000 B"):
        lnp.zeros((251,))
