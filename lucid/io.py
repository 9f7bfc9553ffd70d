"""Loading and saving of named arrays (state dicts) without PyTorch.

``load(path)`` / ``save(path, tensors)`` pick the format from the extension: ``.safetensors``
(the safetensors numpy API), ``.npz`` (never pickled) or ``.pth`` / ``.pt`` (the zip format of
``torch.save`` since PyTorch 1.6).  ``.pth`` files are read without torch and without running
code from the file: a restricted unpickler resolves only the globals a state dict needs and
refuses anything else with :class:`UnsafeCheckpointError`.  Written ``.pth`` files load with
``torch.load(path, weights_only=True)``.  Every save is atomic (see :func:`atomic_write`).
"""
from __future__ import annotations

import collections
import collections.abc
import contextlib
import io
import os
import pickle
import struct
import tempfile
import zipfile
from typing import Any, Callable, Dict, Iterator, NamedTuple

import numpy as np

__all__ = ["load", "save", "atomic_write", "UnsafeCheckpointError", "SUPPORTED_EXTENSIONS"]

SUPPORTED_EXTENSIONS = (".safetensors", ".npz", ".pth", ".pt")
_UNWRAP_KEYS = ("state_dict", "model_state_dict", "model")
_LEGACY = ("legacy (pre-1.6, non-zip) PyTorch checkpoints are not supported, only the zip "
           "format is; re-save it with torch>=1.6 torch.save()")
_NOT_ZIP = "not a PyTorch zip checkpoint (corrupt, truncated or another format)"
_ALIGN = 64  # storage alignment inside .pth archives, as torch.save uses
_UMASK = os.umask(0)
os.umask(_UMASK)


class UnsafeCheckpointError(ValueError):
    """A checkpoint asked to load a global that is not on the allow-list."""


class _FormatError(ValueError):
    """A corrupt or unsupported .pth file; the message names the path."""


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb") -> Iterator[Any]:
    """Write ``path`` atomically: all of the new content or none of it.

    The data goes to a temporary file in the same directory, which is flushed,
    fsynced and ``os.replace``d onto ``path``.  On any exception the temporary
    file is removed and an existing ``path`` is left untouched.

    Args:
        path: destination file.
        mode: ``"wb"`` (binary) or ``"w"`` (UTF-8 text).

    Returns:
        A context manager yielding the open temporary file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: directory {directory} does not exist")
    prefix = f".{os.path.basename(path)[:64]}."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _target_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def _target_mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
    return {".safetensors": _load_safetensors, ".npz": _load_npz}.get(ext, _load_pth)(path)


def save(path, tensors: Dict[str, np.ndarray]) -> None:
    """Atomically save named arrays; the extension of ``path`` selects the format.

    Args:
        path: destination ``.safetensors``, ``.npz``, ``.pth`` or ``.pt`` file.
        tensors: mapping of str keys to numpy arrays or numpy scalars.
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
        if not isinstance(value, (np.ndarray, np.generic)):
            raise TypeError(f"value for key {key!r} must be a numpy array, "
                            f"got {type(value).__name__}")
        arr = np.asarray(value, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"value for key {key!r} has unsupported dtype {arr.dtype}")
        out[key] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    return out


def _load_safetensors(path: str) -> Dict[str, np.ndarray]:
    import safetensors.numpy

    try:
        return dict(safetensors.numpy.load_file(path))
    except Exception as e:  # SafetensorError is not exported under a stable name
        raise ValueError(f"{path}: corrupt or unreadable safetensors file "
                         f"({type(e).__name__}: {e})") from e


def _load_npz(path: str) -> Dict[str, np.ndarray]:
    errors = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("expected an .npz archive, found a single .npy array")
        with npz:
            return {key: npz[key] for key in npz.files}
    except errors as e:
        raise ValueError(f"{path}: corrupt or unreadable .npz file "
                         f"({type(e).__name__}: {e})") from e


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


_STORAGE_DTYPES = {  # torch storage class -> numpy dtype (bfloat16 read as raw bits)
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "u2",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "ComplexFloatStorage": "c8",
    "ComplexDoubleStorage": "c16"}
_DTYPE_TO_STORAGE = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items() if k != "BFloat16Storage"}


def _rebuild_tensor_v2(storage, offset, size, stride, *_):  # *_: requires_grad, hooks, metadata
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
    return np.array(view, order="C", copy=True)


_ALLOWED_GLOBALS: Dict[tuple, Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _SafeGlobal("_rebuild_tensor_v2", _rebuild_tensor_v2),
    **{("torch._utils", name): _SafeGlobal(name, lambda data, *_: data)  # Parameter -> its data
       for name in ("_rebuild_parameter", "_rebuild_parameter_with_state")},
    **{("torch", name): _StorageType(name, np.dtype(c)) for name, c in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for torch's data.pkl that never imports or calls foreign code."""

    def __init__(self, data: bytes, zf: zipfile.ZipFile, prefix: str, byteorder: str, path: str):
        super().__init__(io.BytesIO(data))
        self._zf, self._prefix, self._byteorder, self._path = zf, prefix, byteorder, path
        self._storages: Dict[str, np.ndarray] = {}

    def find_class(self, module, name):
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
        raw = _read_member(self._zf, f"{self._prefix}data/{key}", self._path)
        if len(raw) < numel * dtype.itemsize:
            raise _FormatError(f"{self._path}: storage data/{key} is truncated "
                               f"({len(raw)} bytes, expected {numel * dtype.itemsize})")
        arr = np.frombuffer(raw, dtype=dtype, count=numel).astype(stype.dtype, copy=False)
        if stype.name == "BFloat16Storage":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr


def _read_member(zf: zipfile.ZipFile, name: str, path: str) -> bytes:
    try:
        return zf.read(name)
    except KeyError:
        raise _FormatError(f"{path}: corrupt checkpoint, member {name!r} is missing") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise _FormatError(f"{path}: corrupt checkpoint, cannot read {name!r} "
                           f"({type(e).__name__}: {e})") from e


def _load_pth(path: str) -> Dict[str, np.ndarray]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        with open(path, "rb") as f:
            legacy = f.read(1) == b"\x80"  # pickle PROTO: torch's pre-1.6 format
        raise ValueError(f"{path}: " + (_LEGACY if legacy else _NOT_ZIP)) from e
    with zf:
        prefix = _pickle_prefix(zf, path)
        byteorder = "little"
        if prefix + "byteorder" in zf.namelist():
            byteorder = _read_member(zf, prefix + "byteorder", path).decode("latin-1").strip()
        if byteorder not in ("little", "big"):
            raise ValueError(f"{path}: unknown byteorder record {byteorder!r}")
        data = _read_member(zf, prefix + "data.pkl", path)
        try:
            obj = _RestrictedUnpickler(data, zf, prefix, byteorder, path).load()
        except (UnsafeCheckpointError, _FormatError):
            raise
        except Exception as e:
            raise ValueError(f"{path}: corrupt or unsupported data.pkl "
                             f"({type(e).__name__}: {e})") from e
    return _to_state_dict(obj, path)


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
        _flatten(obj, "", out, path)
    except RecursionError as e:
        raise ValueError(f"{path}: dicts nested too deeply") from e
    return out


def _flatten(obj: dict, prefix: str, out: Dict[str, np.ndarray], path: str) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", out, path)
            continue
        if isinstance(value, (bool, int, float)):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
        if name in out:
            raise ValueError(f"{path}: duplicate key {name!r} after flattening nested dicts")
        out[name] = value


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
