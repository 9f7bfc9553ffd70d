"""Writing ``.pth`` files in ``torch.save``'s zip layout (an OrderedDict of contiguous CPU
tensors as protocol-2 pickle opcodes, storages aligned to 64 bytes), without torch."""
from __future__ import annotations

import struct
import zipfile
from typing import Dict

import numpy as np

_ALIGN = 64  # storage alignment inside .pth archives, as torch.save uses
_STORAGE_DTYPES = {  # torch storage class -> numpy dtype (bfloat16 read as raw bits)
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "u2",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "ComplexFloatStorage": "c8",
    "ComplexDoubleStorage": "c16"}
_DTYPE_TO_STORAGE = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items() if k != "BFloat16Storage"}


def _pk(value) -> bytes:
    """Pickle opcodes (protocol 2) for an int, str or tuple of those."""
    if isinstance(value, tuple):
        return b"(" + b"".join(_pk(v) for v in value) + b"t" if value else b")"
    if isinstance(value, str):
        data = value.encode("utf-8")
        return b"X" + struct.pack("<I", len(data)) + data
    value = int(value)
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _state_dict_pickle(arrays: Dict[str, np.ndarray]) -> bytes:
    """data.pkl equivalent to torch.save of an OrderedDict of contiguous CPU tensors."""
    empty_odict = _global("collections", "OrderedDict") + b")R"
    out = [b"\x80\x02", empty_odict]
    for i, (key, arr) in enumerate(arrays.items()):
        strides = tuple(int(np.prod(arr.shape[d + 1:])) for d in range(arr.ndim))
        pid = b"(" + _pk("storage") + _global("torch", _DTYPE_TO_STORAGE[arr.dtype]) \
            + _pk(str(i)) + _pk("cpu") + _pk(arr.size) + b"tQ"
        args = b"(" + pid + _pk(0) + _pk(arr.shape) + _pk(strides) + b"\x89" + empty_odict + b"t"
        out += [_pk(key), _global("torch._utils", "_rebuild_tensor_v2"), args, b"R", b"s"]
    out.append(b".")
    return b"".join(out)


def _write_pth(f, arrays: Dict[str, np.ndarray], path: str) -> None:
    for key, arr in arrays.items():
        if arr.dtype not in _DTYPE_TO_STORAGE:
            raise TypeError(f"cannot save {key!r} to {path}: no torch storage type for {arr.dtype}")
    members = [("data.pkl", _state_dict_pickle(arrays)), ("byteorder", b"little")]
    for i, arr in enumerate(arrays.values()):
        members.append((f"data/{i}", arr.astype(arr.dtype.newbyteorder("<")).tobytes()))
    members += [("version", b"3\n"), (".format_version", b"1"),
                (".storage_alignment", str(_ALIGN).encode())]
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, data in members:
            _write_aligned(zf, f, "archive/" + name, data)


def _write_aligned(zf: zipfile.ZipFile, f, name: str, data: bytes) -> None:
    """Store ``data`` (deterministically) so that it starts at a multiple of _ALIGN in the file."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o600 << 16
    zip64_extra = 20 if len(data) * 1.05 > zipfile.ZIP64_LIMIT else 0  # as zipfile decides
    pad = -(f.tell() + 30 + len(name.encode()) + zip64_extra + 4) % _ALIGN
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    zf.writestr(info, data)
