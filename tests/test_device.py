"""Devices on a machine without a usable CUDA device (the main test process never enables
the simulator): only ``cpu`` is listed, host arrays stay host arrays, and asking for
``cuda`` says why it cannot."""
import numpy as np
import pytest

import lucid


def test_cpu_only_listing_and_put():
    assert lucid.devices()[0] == lucid.Device("cpu")
    assert lucid.devices("cuda") == lucid.devices()[1:]
    x = np.arange(3.0)
    assert lucid.device_put(x, "cpu") is x
    assert lucid.device_get({"x": x})["x"] is x
    assert lucid.device_of(x) == lucid.Device("cpu")


@pytest.mark.skipif(len(lucid.devices()) > 1, reason="a CUDA device is visible")
def test_cuda_unavailable_is_a_clear_error():
    with pytest.raises(RuntimeError, match="device cuda:0 is not available"):
        lucid.device_put(np.ones(2), "cuda")
