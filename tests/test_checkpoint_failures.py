"""lucid.checkpoint under failures (issue 10, section 6): a failed save keeps the previous
checkpoint and raises an OSError naming the file; killed saves' temporary files are
removed by the next save; truncated, tampered or inconsistent checkpoints raise
CheckpointError (a ValueError) naming the file and what was wrong."""
import errno
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import safetensors.numpy as stn

from lucid import checkpoint as ck
from lucid import optim
from lucid._atomic import remove_stale_temps


def _run(step=1):
    params = {"stem": {"weight": np.full((2, 3), float(step), np.float32)},
              "head": {"bias": np.zeros(2, np.float32)}}
    state = {"bn": {"running_mean": np.zeros(3, np.float32)}}
    opt_state = optim.adam(0.1).init(params)
    meta = {"config": {"model": "x"}, "step": step, "epoch": 0, "batch": 0}
    return dict(params=params, state=state, opt_state=opt_state, meta=meta)


def _temps(directory):
    return sorted(p for p in os.listdir(directory) if p.endswith(".tmp"))


@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch, where):
    path = tmp_path / "last.safetensors"
    ck.save_checkpoint(path, **_run(1))
    before = path.read_bytes()

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, where, enospc)
    with pytest.raises(OSError, match=f"cannot write {path}.*No space left.*previous file is "
                                      "unchanged") as err:
        ck.save_checkpoint(path, **_run(2))
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == before and _temps(tmp_path) == []
    assert ck.load_checkpoint(path)[3]["step"] == 1


def test_read_only_directory_is_a_clear_oserror(tmp_path, monkeypatch):
    """Simulated (the tests may run as root, which ignores directory permissions)."""
    import tempfile
    path = tmp_path / "last.safetensors"
    ck.save_checkpoint(path, **_run(1))

    def read_only(*a, **k):
        raise PermissionError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OSError, match=f"cannot write {path}: Read-only file system"):
        ck.save_checkpoint(path, **_run(2))
    monkeypatch.undo()
    assert ck.load_checkpoint(path)[3]["step"] == 1


_KILLED_SAVE = """
import os, sys
from lucid.io import atomic_write
with atomic_write(sys.argv[1]) as f:
    f.write(b"partial")
    f.flush()
    os._exit(9)   # killed mid-save: no cleanup runs
"""


def test_stale_temps_of_killed_saves_are_removed_by_the_next_save(tmp_path):
    path = tmp_path / "last.safetensors"
    subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(path)], check=False, timeout=120)
    killed = _temps(tmp_path)
    assert len(killed) == 1 and killed[0].startswith(".last.safetensors.")
    old_style = tmp_path / ".last.safetensors.abc123.tmp"      # no pid, from an older lucid
    old_style.write_bytes(b"x")
    os.utime(old_style, (time.time() - 7200,) * 2)
    live = tmp_path / f".last.safetensors.{os.getppid()}.live.tmp"  # a writer still running
    live.write_bytes(b"x")
    other = tmp_path / ".other.safetensors.1.x.tmp"             # another target's temp
    other.write_bytes(b"x")
    ck.save_checkpoint(path, **_run(3))
    assert _temps(tmp_path) == sorted([live.name, other.name])
    assert ck.load_checkpoint(path)[3]["step"] == 3
    assert remove_stale_temps(path) == []


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.5, 0.99])
def test_truncated_checkpoint(tmp_path, fraction):
    good = tmp_path / "good.safetensors"
    ck.save_checkpoint(good, **_run(1))
    data = good.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ck.CheckpointError, match=f"checkpoint {bad} is not a readable"):
        ck.load_checkpoint(bad)


@pytest.mark.parametrize("tensors, meta, match", [
    ({"weights/x": np.ones(1)}, None, "unexpected entry 'weights/x'"),
    ({"opt/0": np.ones(1), "opt/2": np.ones(1)}, None, r"opt/0 \.\. opt/1"),
    ({}, "not json", "metadata is not valid JSON"),
    ({}, [1, 2], "expected metadata with a 'config' object"),
    ({}, {"config": {}, "step": -3}, "'step' must be a non-negative int"),
    ({}, {"config": {}, "epoch": "1"}, "'epoch' must be a non-negative int"),
])
def test_tampered_checkpoint(tmp_path, tensors, meta, match):
    path = tmp_path / "t.safetensors"
    tensors = {k: v.astype(np.float32) for k, v in tensors.items()}
    md = {"format": "lucid-checkpoint-1",
          "meta": meta if isinstance(meta, str) else json.dumps(
              meta if meta is not None else {"config": {}, "step": 1})}
    path.write_bytes(stn.save(tensors or {"params/a": np.ones(1, np.float32)}, metadata=md))
    with pytest.raises(ck.CheckpointError, match=match) as err:
        ck.load_checkpoint(path)
    assert str(path) in str(err.value)


def test_checkpoint_inconsistent_with_the_model(tmp_path):
    path = tmp_path / "c.safetensors"
    ck.save_checkpoint(path, **_run(1))
    flat_p, _, opt_leaves, _ = ck.load_checkpoint(path)
    template = _run(1)["params"]
    assert ck.restore_tree(template, flat_p, "params")["stem"]["weight"].shape == (2, 3)
    wrong = {"stem": {"weight": np.zeros((3, 3), np.float32)}, "head": template["head"]}
    with pytest.raises(ck.CheckpointError, match=r"'stem.weight' has shape \(2, 3\), the model "
                                                 r"expects \(3, 3\)"):
        ck.restore_tree(wrong, flat_p, "params")
    with pytest.raises(ck.CheckpointError, match="missing params entry 'extra'"):
        ck.restore_tree(dict(template, extra=np.zeros(1)), flat_p, "params")
    with pytest.raises(ck.CheckpointError, match=r"entries the model does not have: \['head.bias'"):
        ck.restore_tree({"stem": template["stem"]}, flat_p, "params")
    as64 = {"stem": {"weight": np.zeros((2, 3))}, "head": template["head"]}
    with pytest.raises(ck.CheckpointError, match="dtype float32, the model expects float64"):
        ck.restore_tree(as64, flat_p, "params")
    with pytest.raises(ck.CheckpointError, match="another optimizer"):
        ck.restore_leaves(optim.sgd(0.1).init(template), opt_leaves, "optimizer state")


def test_checkpoint_path_that_is_not_a_regular_file(tmp_path):
    link = tmp_path / "zero.safetensors"
    os.symlink("/dev/zero", link)
    with pytest.raises(ck.CheckpointError, match="expected a regular file, found a character"):
        ck.load_checkpoint(link)
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.load_checkpoint(tmp_path / "none.safetensors")
