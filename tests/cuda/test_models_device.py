"""Small ConvNeXt and InceptionNeXt (depths 1,1,1,1, dims 8,16,24,32, 32x32 input) run on
the CUDA device through the core's per-backend impls (``lucid/_cuda_impls.py``): equal to
the CPU within 1e-4 relative, with no device->host copy during the forward."""
import numpy as np
import pytest

import lucid

pytest.importorskip("lucid._core", reason="needs the primitives-as-data core (lucid/_core.py)")

from _count import device_to_host_copies  # noqa: E402
from _twin import runs_kernels  # noqa: E402

pytestmark = runs_kernels


def _family(name):
    from lucid.models import convnext, inception_next
    if name == "convnext":
        return convnext, convnext.ConvNeXtConfig
    return inception_next, inception_next.InceptionNeXtConfig


@pytest.mark.parametrize("name", ["convnext", "inception_next"])
def test_small_model_forward_on_device_equals_cpu(name):
    module, Config = _family(name)
    cfg = Config(num_classes=5, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    params, state = module.init(lucid.random.key(0), cfg)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    want = module.apply(params, x, state=state or None, config=cfg)
    p, s, xd = lucid.device_put((params, state, x), "cuda")
    before = lucid.transfer_counts()["device_to_host"]
    with device_to_host_copies() as seen:
        got = module.apply(p, xd, state=s or None, config=cfg)
    assert seen == [] and lucid.transfer_counts()["device_to_host"] == before
    assert isinstance(got, lucid.DeviceArray) and got.device == lucid.Device("cuda", 0)
    got = lucid.device_get(got)   # the one readout
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_facade_to_cuda_runs_on_the_device():
    model = lucid.models.ConvNeXt(num_classes=3, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    want = model(x)
    model.to("cuda")
    got = model(lucid.device_put(x, "cuda"))
    assert isinstance(got, lucid.DeviceArray)
    np.testing.assert_allclose(lucid.device_get(got), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())


def test_mixing_host_and_device_arrays_names_both_devices():
    import lucid.nn.functional as F
    x = lucid.device_put(np.ones((2, 4), np.float32), "cuda")
    w = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="two devices.*cpu.*cuda|two devices.*cuda.*cpu"):
        F.linear(x, w)


def test_small_convnext_loss_and_gradients_on_device_equal_cpu():
    """Forward + cross-entropy + backward on the device: loss and every parameter gradient
    within 1e-4 of the CPU's; no device->host copy until the loss is read."""
    import lucid.nn.functional as F
    module, Config = _family("convnext")
    cfg = Config(num_classes=5, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32))
    params, _ = module.init(lucid.random.key(0), cfg)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = np.array([1, 3])

    def loss_fn(p, x, y):
        return F.cross_entropy(module.apply(p, x, config=cfg), y, label_smoothing=0.1)

    want_loss, want = lucid.value_and_grad(loss_fn)(params, x, y)
    p, xd, yd = lucid.device_put((params, x, y), "cuda")
    with device_to_host_copies() as seen:
        loss, grads = lucid.value_and_grad(loss_fn)(p, xd, yd)
    assert seen == []
    assert abs(float(loss) - float(want_loss)) <= 1e-4 * abs(float(want_loss))
    for path_got, ref in zip(lucid.tree.leaves(grads), lucid.tree.leaves(want)):
        got = lucid.device_get(path_got)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * (np.abs(ref).max() + 1e-12))
