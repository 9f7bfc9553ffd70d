"""Training loop: the loss goes down, resume equals uninterrupted, checkpoints are atomic."""
import os

import numpy as np
import pytest

import lucid
from lucid import checkpoint
from lucid.cli._run import CHECKPOINT, Run, RunConfig

TINY = dict(depths=[1, 1, 1, 1], dims=[8, 16, 16, 24], train_size=192, test_size=48,
            batch_size=32, epochs=2, image_size=32, lr=4e-3)


def _params_equal(a, b):
    la, lb = lucid.tree.leaves(a), lucid.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("full"))
    run = Run.start(RunConfig(**TINY), out=out, quiet=True)
    run.fit()
    return run


def test_training_lowers_the_loss(tmp_path):
    cfg = RunConfig(**{**TINY, "epochs": 1, "train_size": 128, "schedule": "constant",
                       "lr": 1e-2, "label_smoothing": 0.0})
    run = Run.start(cfg, out=str(tmp_path), quiet=True)
    x, y = next(iter(lucid.data.batches(run.train_set, 32, shuffle=False)))
    before = float(lucid.nn.functional.cross_entropy(run.model.apply(run.ts.params, x), y))
    for _ in range(24):  # overfit one batch; the speed of the fall depends on the init
        run.ts, loss, _ = run.train_step(run.ts, x, y, lucid.random.key(run.ts.step))
    after = float(lucid.nn.functional.cross_entropy(run.model.apply(run.ts.params, x), y))
    assert after < 0.5 * before, (before, after)


def test_outputs_written(uninterrupted):
    out = uninterrupted.out
    for name in (CHECKPOINT, "model.safetensors", "log.json", "log.csv", "curves.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert [r["epoch"] for r in uninterrupted.history] == [1, 2]
    with open(os.path.join(out, "curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# 6 steps per epoch: resume mid-epoch (checkpoint every step), and from the epoch-end
# checkpoint of a run killed two steps into its second epoch.
@pytest.mark.parametrize("stop_after,every,resume_step", [(3, 1, 3), (8, 0, 6)])
def test_resume_equals_uninterrupted(tmp_path, uninterrupted, stop_after, every, resume_step):
    out = str(tmp_path)
    first = Run.start(RunConfig(**TINY), out=out, checkpoint_every=every, quiet=True)
    assert first.fit(stop_after_step=stop_after) == {"stopped_at_step": stop_after}
    resumed = Run.resume(os.path.join(out, CHECKPOINT), out=out, quiet=True)
    assert resumed.ts.step == resume_step
    resumed.fit()
    assert resumed.ts.step == uninterrupted.ts.step
    assert _params_equal(resumed.ts.params, uninterrupted.ts.params)
    assert _params_equal(resumed.ts.opt_state, uninterrupted.ts.opt_state)
    untimed = lambda h: [{k: v for k, v in r.items() if k not in ("images_per_second", "seconds")}
                         for r in h]
    assert untimed(resumed.history) == untimed(uninterrupted.history)


def test_interrupted_checkpoint_write_keeps_the_old_one(tmp_path, monkeypatch):
    path = str(tmp_path / "ck.safetensors")
    params = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    checkpoint.save_checkpoint(path, params=params, state={}, opt_state=(), meta={"step": 1})
    import lucid.io as lio
    real_replace = lio.os.replace

    def crash(*a, **k):  # the process dies after writing the temporary file, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(lio.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(path, params={"w": np.zeros((2, 3), np.float32)}, state={},
                                   opt_state=(), meta={"step": 2})
    monkeypatch.setattr(lio.os, "replace", real_replace)
    flat_p, _, _, meta = checkpoint.load_checkpoint(path)
    assert meta == {"step": 1}
    np.testing.assert_array_equal(flat_p["w"], params["w"])
    assert os.listdir(tmp_path) == ["ck.safetensors"]


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "ck.safetensors"
    checkpoint.save_checkpoint(str(path), params={"w": np.ones(100, np.float32)}, state={},
                               opt_state=(), meta={})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(checkpoint.CheckpointError, match="not a readable lucid checkpoint"):
        checkpoint.load_checkpoint(str(path))


def test_bn_state_gets_no_gradient_and_updates(tmp_path):
    cfg = RunConfig(**{**TINY, "model": "inception_next", "dims": [32, 32, 32, 32], "epochs": 1})
    run = Run.start(cfg, out=str(tmp_path), quiet=True)
    state0 = run.ts.state
    x, y = next(iter(lucid.data.batches(run.train_set, 32, shuffle=False)))
    ts, _, _ = run.train_step(run.ts, x, y, lucid.random.key(0))
    mean0 = state0["stem"][1]["running_mean"]
    mean1 = ts.state["stem"][1]["running_mean"]
    assert not np.array_equal(mean0, mean1)      # running statistics moved (momentum 0.1)
    flat_opt = lucid.tree.flatten_with_path(ts.opt_state)[0]
    assert not any("running" in lucid.tree.path_str(p) for p, _ in flat_opt)
