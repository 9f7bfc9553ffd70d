"""The README's quickstart code runs as written and computes a real gradient."""
import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quickstart_runs_and_matches_finite_differences(capsys):
    quickstart = _python_blocks()[0]
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
