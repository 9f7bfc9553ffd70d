"""Ctrl-C that always stops a training run.

Python ignores an exception raised inside a weakref callback or a ``__del__`` ("Exception
ignored in ..."), and the default SIGINT handler raises KeyboardInterrupt wherever the
interpreter happens to be, garbage collection included: measured once in CI, a SIGINT
landed in a ``WeakKeyDictionary`` callback and the run went on to its last epoch. Here
the signal is remembered; it raises at once unless it interrupted a finalizer (a weakref
callback or ``__del__``, where the exception could only be printed and lost), and the
loop raises KeyboardInterrupt itself at the next step boundary.
"""
from __future__ import annotations

import os
import signal
import threading


class InterruptGuard:
    """A context manager; :meth:`check` raises KeyboardInterrupt once SIGINT was seen."""

    def __init__(self):
        self.seen = False
        self._previous = None

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        self.seen = True
        if not _inside_finalizer(frame):   # there Python would print and swallow it
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.seen:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _inside_finalizer(frame) -> bool:
    """True when the interrupted frame is a weakref callback or a ``__del__``."""
    code = frame.f_code if frame is not None else None
    if code is None:
        return False
    return code.co_name == "__del__" or code.co_filename.endswith(os.sep + "weakref.py")
