"""Devices and device arrays on the simulated CUDA device: listing, round trips, views,
``__cuda_array_interface__``, transfer counting and the device-mixing error."""
import numpy as np
import pytest

import lucid
from lucid._device import check_same_device


def test_devices_lists_cpu_then_the_simulated_gpu():
    found = lucid.devices()
    assert [str(d) for d in found] == ["cpu", "cuda:0"]
    assert lucid.devices("cuda") == [lucid.Device("cuda", 0)]
    with pytest.raises(ValueError, match="platform"):
        lucid.devices("tpu")


def test_round_trip_keeps_values_structure_and_dtype():
    rng = np.random.default_rng(0)
    tree = {"w": rng.standard_normal((3, 4)).astype(np.float32),
            "b": [rng.standard_normal(5), np.float64(2.5), None, 7], "t": np.arange(6).reshape(2, 3).T}
    dev = lucid.device_put(tree, "cuda")
    assert isinstance(dev["w"], lucid.DeviceArray) and dev["w"].device == lucid.Device("cuda", 0)
    assert dev["b"][2] is None and dev["b"][3] == 7
    back = lucid.device_get(dev)
    for a, b in zip(lucid.tree.leaves(tree), lucid.tree.leaves(back)):
        if isinstance(a, int):
            assert a == b
            continue
        assert isinstance(b, np.ndarray) and b.dtype == np.asarray(a).dtype
        np.testing.assert_array_equal(b, a)
    assert lucid.device_put(dev, "cpu")["w"].dtype == np.float32


def test_device_array_attributes_and_views():
    x = lucid.device_put(np.arange(24, dtype=np.float32).reshape(2, 3, 4), "cuda")
    assert (x.shape, x.dtype, x.ndim, x.size, len(x)) == ((2, 3, 4), np.float32, 3, 24, 2)
    assert lucid.device_of(x) == lucid.Device("cuda", 0)
    assert lucid.device_of(np.zeros(2)) == lucid.Device("cpu")
    v = x.reshape(6, 4)
    np.testing.assert_array_equal(lucid.device_get(v[1]), [4, 5, 6, 7])
    cai = x.__cuda_array_interface__
    assert cai["shape"] == (2, 3, 4) and cai["typestr"] == "<f4" and cai["version"] == 3
    with pytest.raises(ValueError, match="C-contiguous"):
        x[:, 1].reshape(8)


def test_device_names_and_errors():
    x = np.ones(3)
    assert lucid.device_put(x, "gpu")[0].device == lucid.device_put(x, "cuda:0")[0].device
    with pytest.raises(RuntimeError, match="cuda:3 is not available"):
        lucid.device_put(x, "cuda:3")
    with pytest.raises(ValueError, match="expected a device"):
        lucid.device_put(x, "metal")


def test_transfers_are_counted():
    before = lucid.transfer_counts()
    d = lucid.device_put({"a": np.ones(3), "b": np.zeros(2)}, "cuda")
    lucid.device_get(d["a"])
    np.asarray(d["b"])
    after = lucid.transfer_counts()
    assert after["host_to_device"] - before["host_to_device"] == 2
    assert after["device_to_host"] - before["device_to_host"] == 2


def test_mixing_devices_names_both():
    gpu, cpu = lucid.device_put(np.ones(3), "cuda"), np.ones(3)
    with pytest.raises(ValueError, match=r"add: .*argument 0 on cuda:0, argument 1 on cpu"):
        check_same_device("add", gpu, cpu)
    assert check_same_device("add", gpu, 2.0, None, np.float32(1)) == lucid.Device("cuda", 0)
    assert check_same_device("add", cpu, cpu) == lucid.Device("cpu")


def test_module_to_moves_params_and_state_and_back():
    # InceptionNeXt: parameters and BatchNorm buffers (state)
    model = lucid.models.InceptionNeXt(num_classes=3, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    host = {k: v.copy() for k, v in model.state_dict().items()}
    assert model.device == lucid.Device("cpu")
    assert model.to("cuda") is model and model.device == lucid.Device("cuda", 0)
    leaves = lucid.tree.leaves((model.params, model.state))
    assert leaves and all(isinstance(v, lucid.DeviceArray) for v in leaves
                          if isinstance(v, (np.ndarray, lucid.DeviceArray)))
    saved = model.state_dict()   # checkpoints always get host arrays
    assert set(saved) == set(host)
    for k, v in saved.items():
        assert isinstance(v, np.ndarray)
        np.testing.assert_array_equal(v, host[k])
    model.to("cpu")
    assert model.device == lucid.Device("cpu")
    assert all(isinstance(v, np.ndarray) for v in lucid.tree.leaves(model.params))
