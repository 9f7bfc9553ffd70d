"""Atomic file writes: all of the new content or none of it, and no litter.

The data goes to a temporary file ``.<name>.<pid>.<random>.tmp`` in the target's
directory, which is flushed, fsynced and ``os.replace``d onto the target. On any
exception the temporary file is removed and the previous file is untouched. A save
killed outright (SIGKILL, power loss) cannot remove its temporary file: the next save
of the same target removes those whose writing process no longer exists.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from typing import Any, Iterator

__all__ = ["atomic_write", "remove_stale_temps"]

_UMASK = os.umask(0)
os.umask(_UMASK)
# Temporary files of writers that recorded no pid (older lucid): stale after this long.
_STALE_SECONDS = 3600


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb") -> Iterator[Any]:
    """Write ``path`` atomically.

    Args:
        path: destination file.
        mode: ``"wb"`` (binary) or ``"w"`` (UTF-8 text).

    Returns:
        A context manager yielding the open temporary file.

    Raises:
        OSError: the directory is missing or not writable, or the disk is full; the
          message names ``path`` and the previous file is kept.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: directory {directory} does not exist")
    remove_stale_temps(path)
    prefix = f"{_temp_prefix(path)}{os.getpid()}."
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
    except OSError as e:
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror} (creating a temporary "
                               f"file in {directory})") from e
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _target_mode(path))
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and path not in str(e):
            raise type(e)(e.errno, f"cannot write {path}: {e.strerror or e}; the previous "
                                   "file is unchanged") from e
        raise
    _fsync_dir(directory)


def _temp_prefix(path: str) -> str:
    return f".{os.path.basename(path)[:64]}."


def remove_stale_temps(path) -> list:
    """Remove temporary files that killed saves of ``path`` left behind.

    A temporary file is stale when the process that wrote it (the pid in its name) no
    longer exists, or, for a name without a pid, when it is older than an hour. Files
    of live writers (another process saving right now) are left alone.

    Returns:
      the removed paths.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"(?:(\d+)\.)?[^/]*\.tmp\Z")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            m = pattern.match(entry.name)
            if m and entry.is_file(follow_symlinks=False) and _is_stale(entry, m.group(1)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(entry.path)
    return removed


def _is_stale(entry, pid) -> bool:
    if pid is None:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > _STALE_SECONDS
    pid = int(pid)
    if pid == os.getpid():
        return False  # this process may be writing it (another thread)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False  # alive (another user's) or unknowable: keep
    return False


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
