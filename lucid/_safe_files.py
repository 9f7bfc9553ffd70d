"""Reading untrusted files with bounded memory and without blocking (issue 10).

Rules, for every file :mod:`lucid.io` and :mod:`lucid.checkpoint` read:

* regular files only: the path is opened with ``O_NONBLOCK`` (a FIFO does not block the
  open) and the *opened* descriptor is checked with ``fstat`` / ``S_ISREG`` (a symlink to
  ``/dev/zero``, a FIFO, a device or a socket is refused, with no race between check
  and open);
* every size a file declares is checked, before anything is read, against a cap
  (:func:`lucid._limits.max_alloc_bytes`) and against what the file can hold: a zip
  member's compressed size must fit in the file, a stored member cannot inflate, a
  deflated one at most :data:`MAX_DEFLATE_RATIO` times;
* members are streamed: at most the declared size is ever read, and a member that
  does not deliver exactly its declared size is refused;
* encrypted members and compression methods other than stored / deflate are refused.

Every refusal is a ``ValueError`` naming the file, what was expected and what came.
"""
from __future__ import annotations

import io
import math
import os
import stat
import zipfile

import numpy as np

from ._limits import format_bytes, max_alloc_bytes

__all__ = ["open_regular", "check_declared", "read_member", "load_npz", "MAX_DEFLATE_RATIO"]

# Deflate cannot expand more than ~1032:1 (258-byte matches from 2-bit codes).
MAX_DEFLATE_RATIO = 1032
MAX_NPY_HEADER = 10000           # NumPy's own default max_header_size
_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO (named pipe)"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISSOCK, "socket"))


def open_regular(path: str):
    """``path`` opened for binary reading, after checking it is a regular file.

    Returns:
      ``(file, size)``: an open binary file object (the caller closes it) and its size.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "special file")
            raise ValueError(f"{path}: expected a regular file, found a {kind}")
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def check_declared(path: str, what: str, nbytes: int, room: int) -> None:
    """Refuse a declared size above the memory cap or above what the file can hold."""
    cap = max_alloc_bytes()
    if nbytes > cap:
        raise ValueError(f"{path}: {what} declares {format_bytes(nbytes)}, more than the "
                         f"{format_bytes(cap)} of memory available")
    if nbytes > room:
        raise ValueError(f"{path}: {what} declares {nbytes} bytes but the file can hold at "
                         f"most {room} (corrupt or hostile file)")


def _member_info(zf: zipfile.ZipFile, name: str, path: str, file_size: int):
    """The checked ZipInfo of ``name``: not encrypted, stored/deflated, sizes plausible."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ValueError(f"{path}: corrupt archive, member {name!r} is missing") from None
    if info.flag_bits & 0x1:
        raise ValueError(f"{path}: member {name!r} is encrypted; expected a plain zip member")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"{path}: member {name!r} uses zip compression method "
                         f"{info.compress_type}; expected stored (0) or deflate (8)")
    if info.compress_size > file_size:
        raise ValueError(f"{path}: member {name!r} declares {info.compress_size} compressed "
                         f"bytes in a file of {file_size}")
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else MAX_DEFLATE_RATIO
    check_declared(path, f"member {name!r}", info.file_size, info.compress_size * ratio + 64)
    return info


def read_member(zf: zipfile.ZipFile, name: str, path: str, file_size: int,
                limit: int | None = None) -> bytes:
    """The first ``limit`` bytes of member ``name`` (all of it when None), streamed.

    Raises ValueError when the member is missing, encrypted, declares more than the file
    or memory can hold, or delivers fewer bytes than it declares.
    """
    info = _member_info(zf, name, path, file_size)
    want = info.file_size if limit is None else min(limit, info.file_size)
    try:
        with zf.open(info) as f:
            data = _read_exactly(f, want)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as e:
        raise ValueError(f"{path}: corrupt archive, cannot read {name!r} "
                         f"({type(e).__name__}: {e})") from e
    if len(data) != want:
        raise ValueError(f"{path}: member {name!r} declares {info.file_size} bytes but holds "
                         f"only {len(data)}")
    return data


def _read_exactly(f, n: int) -> bytes:
    """Up to ``n`` bytes in chunks (never one read of an untrusted size at once)."""
    parts, left = [], n
    while left > 0:
        chunk = f.read(min(left, 1 << 24))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


# ----------------------------------------------------------------------------- .npz

def load_npz(path: str) -> dict:
    """Every ``.npy`` member of the ``.npz`` at ``path`` (never pickled), bounded and checked."""
    f, size = open_regular(path)
    with f:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise ValueError(f"{path}: corrupt or unreadable .npz file, expected a zip "
                             f"archive of .npy members ({type(e).__name__}: {e})") from e
        with zf:
            out = {}
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    raise ValueError(f"{path}: .npz member {name!r} is not a .npy array; "
                                     "expected only '<key>.npy' members")
                out[name[:-4]] = _read_npy(zf, name, path, size)
            return out


def _read_npy(zf: zipfile.ZipFile, name: str, path: str, file_size: int) -> np.ndarray:
    info = _member_info(zf, name, path, file_size)
    try:
        with zf.open(info) as f:
            shape, fortran, dtype, header_len = _npy_header(f, name, path)
            count = math.prod(shape)
            nbytes = count * dtype.itemsize
            check_declared(path, f"array {name!r} of shape {shape} ({dtype})", nbytes,
                           info.file_size - header_len)
            data = _read_exactly(f, nbytes)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise ValueError(f"{path}: corrupt .npz member {name!r} "
                         f"({type(e).__name__}: {e})") from e
    if len(data) != nbytes:
        raise ValueError(f"{path}: array {name!r} declares {nbytes} bytes of data but the "
                         f"member holds {len(data)}")
    arr = np.frombuffer(data, dtype=dtype, count=count).copy()
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def _npy_header(f, name: str, path: str):
    """(shape, fortran_order, dtype, header bytes) of a .npy stream; refuses huge headers
    and object dtypes before reading further."""
    magic = _read_exactly(f, 8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise ValueError(f"{path}: .npz member {name!r} is not a .npy array (bad magic "
                         f"{magic[:8]!r})")
    width = 2 if magic[6] == 1 else 4
    raw_len = _read_exactly(f, width)
    hlen = int.from_bytes(raw_len, "little") if len(raw_len) == width else -1
    if not 0 <= hlen <= MAX_NPY_HEADER:
        raise ValueError(f"{path}: .npy header of {name!r} declares {hlen} bytes; expected "
                         f"at most {MAX_NPY_HEADER}")
    header = _read_exactly(f, hlen)
    fp = io.BytesIO(b"\x93NUMPY" + bytes([min(magic[6], 2), 0]) + raw_len + header)
    try:
        np.lib.format.read_magic(fp)
        read = (np.lib.format.read_array_header_1_0 if magic[6] == 1
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(fp, max_header_size=MAX_NPY_HEADER)
    except (ValueError, SyntaxError, TypeError) as e:
        raise ValueError(f"{path}: bad .npy header in {name!r} ({e})") from e
    if dtype.hasobject:
        raise ValueError(f"{path}: array {name!r} has dtype {dtype} (Python objects); "
                         "expected numeric data (pickles are never loaded)")
    return tuple(int(s) for s in shape), bool(fortran), dtype, 8 + width + hlen
