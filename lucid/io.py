"""Loading and saving of named arrays (state dicts) without PyTorch.

``load(path)`` / ``save(path, tensors)`` pick the format from the extension: ``.safetensors``
(the safetensors numpy API), ``.npz`` (never pickled) or ``.pth`` / ``.pt`` (the zip format of
``torch.save`` since PyTorch 1.6).  ``.pth`` files are read without torch and without running
code from the file: a restricted unpickler resolves only the globals a state dict needs and
refuses anything else with :class:`UnsafeCheckpointError`.  Written ``.pth`` files load with
``torch.load(path, weights_only=True)``.  Every save is atomic (see :func:`atomic_write`).

Loading never uses memory out of proportion to the file or to the tensors it declares,
and never blocks: see :mod:`lucid._safe_files` for the rules (regular files only,
declared sizes checked before reading, streamed zip members). Overlapping ``.pth``
tensors (stride 0, or more bytes copied from one storage than it holds) come back as
read-only views into their storage instead of being expanded.
"""
from __future__ import annotations

import collections
import collections.abc
import io
import json
import os
import pickle
import zipfile
from typing import Any, Callable, Dict, NamedTuple

import numpy as np

from ._atomic import atomic_write
from ._core import on_device
from ._pth_writer import _STORAGE_DTYPES, _global, _pk, _write_pth  # noqa: F401 (tests)
from ._safe_files import load_npz, open_regular, read_member

__all__ = ["load", "save", "atomic_write", "UnsafeCheckpointError", "SUPPORTED_EXTENSIONS"]

SUPPORTED_EXTENSIONS = (".safetensors", ".npz", ".pth", ".pt")
_UNWRAP_KEYS = ("state_dict", "model_state_dict", "model")
_LEGACY = ("legacy (pre-1.6, non-zip) PyTorch checkpoints are not supported, only the zip "
           "format is; re-save it with torch>=1.6 torch.save()")
_NOT_ZIP = "not a PyTorch zip checkpoint (corrupt, truncated or another format)"


class UnsafeCheckpointError(ValueError):
    """A checkpoint asked to load a global that is not on the allow-list."""


class _FormatError(ValueError):
    """A corrupt or unsupported .pth file; the message names the path."""


def load(path) -> Dict[str, np.ndarray]:
    """Load named arrays from a ``.safetensors``, ``.npz``, ``.pth`` or ``.pt`` file.

    Args:
        path: file to read; the extension selects the format.

    Returns:
        Dict of name -> numpy array.  For ``.pth``, a wrapping checkpoint dict (``{"state_dict":
        ...}``, ``{"model": ...}``) is unwrapped, nested dicts are flattened with "."-joined
        keys, and bfloat16 tensors become float32.
    """
    path = os.fspath(path)
    ext = _extension(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory, expected a {ext} file")
    return {".safetensors": _load_safetensors, ".npz": load_npz}.get(ext, _load_pth)(path)


def save(path, tensors: Dict[str, np.ndarray]) -> None:
    """Atomically save named arrays; the extension of ``path`` selects the format.

    Args:
        path: destination ``.safetensors``, ``.npz``, ``.pth`` or ``.pt`` file.
        tensors: mapping of str keys to numpy arrays, numpy scalars or lucid.DeviceArrays
          (copied to the host).
    """
    path = os.fspath(path)
    ext = _extension(path)
    arrays = _check_tensors(tensors)
    writer = {".safetensors": _write_safetensors, ".npz": _write_npz}.get(ext, _write_pth)
    with atomic_write(path) as f:
        writer(f, arrays, path)


def _extension(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise ValueError(f"unsupported file extension {ext or '(none)'!r} for {path}; "
                         f"expected one of {', '.join(SUPPORTED_EXTENSIONS)}")
    return ext


def _check_tensors(tensors) -> Dict[str, np.ndarray]:
    if not isinstance(tensors, collections.abc.Mapping):
        raise TypeError(f"tensors must be a dict of str -> array, got {type(tensors).__name__}")
    out = {}
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise TypeError(f"tensor keys must be str, got {type(key).__name__} key {key!r}")
        if on_device(value):
            value = value.copy_to_host()   # a device array is saved from a host copy
        if not isinstance(value, (np.ndarray, np.generic)):
            raise TypeError(f"value for key {key!r} must be a numpy array, "
                            f"got {type(value).__name__}")
        arr = np.asarray(value, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"value for key {key!r} has unsupported dtype {arr.dtype}")
        out[key] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    return out


def read_safetensors(path: str):
    """``(arrays, metadata)`` of a safetensors file, read from the checked regular file.

    The file's own bytes are parsed (the safetensors library checks every offset and
    its 100 MB header cap), so memory is about twice the file size.
    """
    import safetensors.numpy

    f, size = open_regular(path)
    with f:
        data = f.read(size)
    try:
        arrays = dict(safetensors.numpy.load(data))
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + n]).get("__metadata__") or {}
    except Exception as e:  # SafetensorError is not exported under a stable name
        raise ValueError(f"{path}: corrupt or unreadable safetensors file "
                         f"({type(e).__name__}: {e})") from e
    return arrays, meta


def _load_safetensors(path: str) -> Dict[str, np.ndarray]:
    return read_safetensors(path)[0]


def _write_safetensors(f, arrays: Dict[str, np.ndarray], path: str) -> None:
    import safetensors.numpy

    try:
        data = safetensors.numpy.save(arrays)
    except Exception as e:  # e.g. an unsupported dtype
        raise TypeError(f"cannot save to {path}: {e}") from e
    f.write(data)


def _write_npz(f, arrays: Dict[str, np.ndarray], path: str) -> None:
    # Written by hand rather than np.savez so that keys like "file" are allowed.
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


class _StorageType(NamedTuple):  # immutable, so a pickle cannot tamper with it
    name: str
    dtype: np.dtype


class _SafeGlobal(NamedTuple):  # immutable stand-in for an allowed torch function
    name: str
    fn: Callable

    def __call__(self, *args):
        return self.fn(*args)




def _rebuild_tensor_v2(storage, offset, size, stride, *_, copied=None):
    """The tensor as a C-contiguous copy, or as a read-only view of ``storage`` when it
    overlaps itself (stride 0, ...) or when copying it would take the elements copied out
    of this storage (``copied``: id(storage) -> count) past the storage's size: so a
    526-byte file cannot declare gigabytes of repeated data. (*_: requires_grad, hooks.)"""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise ValueError(f"tensor storage is not a persistent storage: {type(storage).__name__}")
    offset, size, stride = int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
        raise ValueError(f"bad tensor geometry: offset={offset} size={size} stride={stride}")
    if 0 in size:
        return np.empty(size, storage.dtype)
    if offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.size:
        raise ValueError(f"tensor of size {size} stride {stride} offset {offset} "
                         f"overruns its storage of {storage.size} elements")
    strides = [s * storage.itemsize for s in stride]
    view = np.lib.stride_tricks.as_strided(storage[offset:], size, strides, writeable=False)
    copied = {} if copied is None else copied
    total = copied.get(id(storage), 0) + view.size
    if _overlaps(size, stride) or total > storage.size:
        return view
    copied[id(storage)] = total
    return np.array(view, order="C", copy=True)


def _overlaps(size, stride) -> bool:
    """True unless the strides provably address distinct elements (each dimension's
    stride, in increasing order, steps over the whole extent of the smaller ones)."""
    extent = 0
    for n, s in sorted((d for d in zip(size, stride) if d[0] > 1), key=lambda d: d[1]):
        if s <= extent:
            return True
        extent += (n - 1) * s
    return False


_ALLOWED_GLOBALS: Dict[tuple, Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _SafeGlobal("_rebuild_tensor_v2", _rebuild_tensor_v2),
    **{("torch._utils", name): _SafeGlobal(name, lambda data, *_: data)  # Parameter -> its data
       for name in ("_rebuild_parameter", "_rebuild_parameter_with_state")},
    **{("torch", name): _StorageType(name, np.dtype(c)) for name, c in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for torch's data.pkl that never imports or calls foreign code."""

    def __init__(self, data: bytes, zf: zipfile.ZipFile, prefix: str, byteorder: str, path: str,
                 file_size: int):
        super().__init__(io.BytesIO(data))
        self._zf, self._prefix, self._byteorder, self._path = zf, prefix, byteorder, path
        self._file_size = file_size
        self._storages: Dict[str, np.ndarray] = {}
        self._copied: Dict[int, int] = {}  # id(storage) -> elements copied out of it

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _SafeGlobal(name, lambda *a: _rebuild_tensor_v2(*a, copied=self._copied))
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self._path}: refusing to load global '{module}.{name}'; only plain "
                "state dicts of tensors can be loaded without running code from the file") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)):
            raise _FormatError(f"{self._path}: unsupported persistent id in data.pkl: {pid!r}")
        _, stype, key, _location, numel = pid
        if key not in self._storages:
            self._storages[key] = self._read_storage(stype, key, int(numel))
        return self._storages[key]

    def _read_storage(self, stype: _StorageType, key: str, numel: int) -> np.ndarray:
        dtype = stype.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
        if numel < 0:
            raise _FormatError(f"{self._path}: storage data/{key} declares {numel} elements")
        need = numel * dtype.itemsize  # read at most this: never the whole member blindly
        raw = _read_member(self._zf, f"{self._prefix}data/{key}", self._path, self._file_size,
                           need)
        if len(raw) < need:
            raise _FormatError(f"{self._path}: storage data/{key} is truncated "
                               f"({len(raw)} bytes, expected {need})")
        arr = np.frombuffer(raw, dtype=dtype, count=numel).astype(stype.dtype, copy=False)
        if stype.name == "BFloat16Storage":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr


def _read_member(zf: zipfile.ZipFile, name: str, path: str, file_size: int,
                 limit: int | None = None) -> bytes:
    try:
        return read_member(zf, name, path, file_size, limit)
    except ValueError as e:  # already names the path and what was wrong
        raise _FormatError(str(e)) from e


def _load_pth(path: str) -> Dict[str, np.ndarray]:
    f, size = open_regular(path)
    with f:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            f.seek(0)
            legacy = f.read(1) == b"\x80"  # pickle PROTO: torch's pre-1.6 format
            raise ValueError(f"{path}: " + (_LEGACY if legacy else _NOT_ZIP)) from e
        with zf:
            return _to_state_dict(_unpickle(zf, path, size), path)


def _unpickle(zf: zipfile.ZipFile, path: str, size: int):
    prefix = _pickle_prefix(zf, path)
    byteorder = "little"
    if prefix + "byteorder" in zf.namelist():
        byteorder = _read_member(zf, prefix + "byteorder", path, size, 16).decode(
            "latin-1").strip()
    if byteorder not in ("little", "big"):
        raise ValueError(f"{path}: unknown byteorder record {byteorder!r}")
    data = _read_member(zf, prefix + "data.pkl", path, size)
    try:
        return _RestrictedUnpickler(data, zf, prefix, byteorder, path, size).load()
    except (UnsafeCheckpointError, _FormatError):
        raise
    except Exception as e:
        raise ValueError(f"{path}: corrupt or unsupported data.pkl "
                         f"({type(e).__name__}: {e})") from e


def _pickle_prefix(zf: zipfile.ZipFile, path: str) -> str:
    names = zf.namelist()
    if any(n.endswith("/constants.pkl") for n in names):
        raise ValueError(f"{path}: TorchScript archives are not supported, "
                         "expected a torch.save() state dict")
    found = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
    if len(found) == 1:
        return found[0][: -len("data.pkl")]
    raise ValueError(f"{path}: corrupt checkpoint, expected exactly one '<name>/data.pkl' "
                     f"in the archive, found {len(found)}")


def _to_state_dict(obj, path: str) -> Dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    for key in _UNWRAP_KEYS:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    out: Dict[str, np.ndarray] = {}
    try:
        _flatten(obj, "", out, path, set())
    except RecursionError as e:
        raise ValueError(f"{path}: dicts nested too deeply") from e
    return out


def _flatten(obj: dict, prefix: str, out: Dict[str, np.ndarray], path: str, seen: set) -> None:
    # A pickle can reference one dict from many places (memo GET): 40 levels of a dict
    # holding the next one twice would flatten to 2**40 keys. A state dict is a tree.
    if id(obj) in seen:
        raise ValueError(f"{path}: the dict at {prefix[:-1] or 'the root'!r} appears more "
                         "than once (shared or recursive); expected a tree of tensors")
    seen.add(id(obj))
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", out, path, seen)
            continue
        if isinstance(value, (bool, int, float)):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
        if name in out:
            raise ValueError(f"{path}: duplicate key {name!r} after flattening nested dicts")
        out[name] = value


