"""Count every device->host copy numba makes (``copy_to_host`` of its device arrays, real
or simulated), below lucid's own counter, so a test can assert a computation never went
through the host."""
import contextlib

import numba


def _device_array_class():
    if numba.config.ENABLE_CUDASIM:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        return FakeCUDAArray
    from numba.cuda.cudadrv.devicearray import DeviceNDArray
    return DeviceNDArray


@contextlib.contextmanager
def device_to_host_copies():
    """Yields a list that gets one entry (the array's shape) per device->host copy."""
    cls = _device_array_class()
    original = cls.copy_to_host
    seen = []

    def counting(self, *args, **kwargs):
        seen.append(tuple(self.shape))
        return original(self, *args, **kwargs)

    cls.copy_to_host = counting
    try:
        yield seen
    finally:
        cls.copy_to_host = original
