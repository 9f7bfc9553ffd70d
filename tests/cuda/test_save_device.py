"""Saving device arrays writes host copies: lucid.io.save and training checkpoints of
device trees load back equal to the host originals."""
import numpy as np

import lucid
from lucid.checkpoint import load_checkpoint, save_checkpoint

from _twin import runs_kernels  # noqa: E402

pytestmark = runs_kernels


def test_io_save_and_checkpoints_of_device_trees(tmp_path):
    params = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, np.float64)}
    state = {"s": np.full(2, 3.0, np.float32)}
    opt = lucid.optim.adamw(1e-3)
    p, s = lucid.device_put((params, state), "cuda")
    o = opt.init(p)
    lucid.io.save(tmp_path / "x.safetensors", {"a": p["a"], "b": p["b"]})
    got = lucid.io.load(tmp_path / "x.safetensors")
    for k in params:
        np.testing.assert_array_equal(got[k], params[k])
        assert got[k].dtype == params[k].dtype
    save_checkpoint(str(tmp_path / "c.safetensors"), params=p, state=s, opt_state=o,
                    meta={"step": 0})
    fp, fs, leaves, meta = load_checkpoint(str(tmp_path / "c.safetensors"))
    np.testing.assert_array_equal(fp["a"], params["a"])
    np.testing.assert_array_equal(fs["s"], state["s"])
    want = lucid.tree.leaves(opt.init(params))
    assert len(leaves) == len(want)
    for g, w in zip(leaves, want):
        assert isinstance(g, np.ndarray)
        np.testing.assert_array_equal(g, np.asarray(w))
