"""Every ```python block of the README runs on its own, as written (each in a fresh
subprocess, in an empty directory); the quickstart also computes a real gradient.

A block fenced ```python no-test is skipped deliberately: the README says why next to it
(it needs PyTorch/timm or the network, or an NVIDIA GPU). There are exactly two.
"""
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", flags=re.S | re.M)


def _blocks(run: bool):
    found = [(info.strip(), code) for info, code in FENCE.findall(README.read_text())]
    assert all(info in ("", "no-test") for info, _ in found), [i for i, _ in found]
    return [code for info, code in found if (info == "") == run]


def test_only_the_timm_and_gpu_blocks_are_skipped():
    skipped = _blocks(run=False)
    assert len(skipped) == 2 and "import timm" in skipped[0]
    assert 'device_put' in skipped[1] and '"cuda"' in skipped[1]
    assert len(_blocks(run=True)) >= 5


@pytest.mark.parametrize("index", range(len(_blocks(run=True))))
def test_block_runs_as_written(index, tmp_path):
    code = _blocks(run=True)[index]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, env=env, timeout=600)
    assert res.returncode == 0, f"README block {index} failed:\n{code}\n{res.stderr}"


def test_quickstart_matches_finite_differences(capsys):
    quickstart = _blocks(run=True)[0]
    scope = {}
    exec(compile(quickstart, "README quickstart", "exec"), scope)
    loss_fn, params, x, y, grads = (scope[k] for k in ("loss_fn", "params", "x", "y", "grads"))
    eps, i = 1e-2, (3, 1, 2, 0)
    up = {**params, "conv": {**params["conv"], "weight": params["conv"]["weight"].copy()}}
    up["conv"]["weight"][i] += eps
    down = {**params, "conv": {**params["conv"], "weight": params["conv"]["weight"].copy()}}
    down["conv"]["weight"][i] -= eps
    fd = (float(loss_fn(up, x, y)) - float(loss_fn(down, x, y))) / (2 * eps)
    np.testing.assert_allclose(grads["conv"]["weight"][i], fd, rtol=2e-2, atol=1e-5)
    assert "(8, 3, 3, 3)" in capsys.readouterr().out
